//! Memory per member, per registry entry and per grave in the core (issues #4 and #7), measured
//! with a counting allocator on a node holding 10,000 members and on a registry of 10,000
//! entries; where the heap of a node holding 100,000 entries goes, and the peak of a
//! whole-registry push at 100,000 entries (issue 17).
//!
//! Run it alone to read the figures:
//!
//! ```text
//! cargo test --no-default-features --test memory -- --nocapture
//! ```
//!
//! The bounds below keep headroom over the figures measured when they were set (see each
//! constant); a change that makes a record markedly larger fails here. The allocator counts
//! bytes requested; the system allocator adds its own header and rounding per allocation
//! (about 8–16 B), so the allocation counts are printed too.
//!
//! A counting global allocator sees every allocation of the test binary, which is why this
//! lives in its own integration-test binary. Counting is per thread, so the harness's other
//! threads do not disturb a measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use hera::bounded::{BoundedString, BoundedVec};
use hera::config::Preset;
use hera::names::{InstanceId, Label, NodeName, ServiceName};
use hera::node::{Event, Identity, Node, Sink, Transmit};
use hera::registry::{Entry, Hlc, InstanceSpec, Registry};
use hera::time::Instant;
use hera::wire::{
    encode_message, Claim, DatagramBuilder, Incarnation, MemberUpdate, Message, Profile, Tag,
};

/// How many members (and registry entries) the figures are taken at: the scale of issue #4.
const N: usize = 10_000;

/// Heap bytes one member costs a node once the join burst has been gossiped out (no tags).
/// Measured 114 B when set (312 B before the table was compacted); 122 B before the address
/// was packed into the slot (96 → 80 B), 106 B after; 98 B with the slot at 72 B (no
/// live-list back-pointer, the last ack in 4 bytes), 90 B at 64 B (the traits by number),
/// 83 B with the two indexes in 4-byte cells grown by a quarter (`swim::members::index`),
/// 74 B with the names in an arena per table (`swim::members::names`) and the slot packed.
/// Where the 74 B go at 10,000: the slot 45.3 (45 B × 10,065 slots: a 5-byte reference for
/// the 24-byte name, no padding), the names ~10.6 (10-byte names here, "node-00001", and the
/// arena's slack of at most 1/16), the name index and the address index ~5 each (4-byte
/// cells, at most 7/8 full), the live list and the probe order 4 each. The bound leaves 5%
/// headroom: the names inline (83 B) and the arena with an unpacked 48-byte slot (77 B)
/// both fail it.
const MEMBER_BYTES_MAX: usize = 78;

/// The same with every member's update still queued for gossip, as right after a join (every
/// node of a bootstrapping cluster is in this state at once, so it sets the simulator's peak).
/// Measured 290 B when set (372 B with the queue's earlier `HashMap<Subject, _>` index).
const QUEUED_MEMBER_BYTES_MAX: usize = 360;

/// Heap bytes per registry entry (realistic sizes, see `entry`). Measured 293 B (2.28
/// allocations) when set, against the issue's goal of 300 B; the bound is that goal (2%
/// headroom). It was 540 over 489 B measured. Where the bytes go (issue 17):
///
/// | part | first: 896 B, 9.28 allocations | then: 489 B, 2.28 | now: 293 B, 2.28 |
/// |---|---|---|---|
/// | instance | `Arc<Instance>`: 336 (320 inline + 16 of counts) | 280 (264 + 16): `check` 40 → 16 B, tags and meta 24 → 8 B each | inline in its record, 168 B: the rarely set fields (body, liveness, deregistration deadline, output, maintenance reason: 104 B) boxed apart, none held for this instance |
/// | entries map | 172 (0.14): id → `Stored`, 80 B pairs in B-tree leaves of 16, filled in id order so about half full | 172 | ~24: a pointer to the record, ordered by the instance's id |
/// | record (`Stored`) | in the map's pairs (56 B) | same | one `Arc` with the instance: 232 (216 + 16): version, modify index, instance; no second copy of the id (tombstones in a map of their own) |
/// | address text | 8 (1 allocation) | 8 (1) | 8 (1) |
/// | tags | 105: a vector with room for 4 (96 B) and 2 texts (3) | ~0: one list shared by the service's instances | ~0 |
/// | meta | 211: a vector with room for 4 pairs (192 B) and 1.5 pairs' texts (4) | ~0: shared | ~0 |
/// | per-service index | 61: a copy of each id | ~25: a pointer to each instance | ~24: a pointer to each record |
///
/// An instance with any rarely set field holds them in one more allocation (104 B).
const ENTRY_BYTES_MAX: usize = 300;

struct Counting;

thread_local! {
    /// Live bytes and live allocations made by this thread (frees counted against it).
    static BYTES: Cell<isize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<isize> = const { Cell::new(0) };
    /// The most `BYTES` has been since `peak_during` last reset it.
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// The same live allocations as glibc's malloc counts them in use (`malloc_stats`): each
    /// a chunk of the size asked plus an 8-byte header, rounded up to 16, at least 32 bytes.
    static CHUNKS: Cell<isize> = const { Cell::new(0) };
}

/// The chunk glibc's malloc gives a request of `size` bytes (x86-64).
fn chunk(size: usize) -> isize {
    (size + 8).div_ceil(16).max(2) as isize * 16
}

fn record_chunks(bytes: isize) {
    let _ = CHUNKS.try_with(|c| c.set(c.get() + bytes));
}

fn record(bytes: isize, allocations: isize) {
    // `try_with`: allocations during thread teardown must not touch a destroyed slot.
    let _ = BYTES.try_with(|b| {
        let now = b.get() + bytes;
        b.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
    let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + allocations));
}

// SAFETY: every call is forwarded unchanged to the system allocator; we only count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size() as isize, 1);
        record_chunks(chunk(layout.size()));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(-(layout.size() as isize), -1);
        record_chunks(-chunk(layout.size()));
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size as isize - layout.size() as isize, 0);
        record_chunks(chunk(new_size) - chunk(layout.size()));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap held by what `build` returns (bytes, allocations), on this thread.
fn held<T>(build: impl FnOnce() -> T) -> (T, usize, usize) {
    let (b0, a0) = (BYTES.with(Cell::get), ALLOCATIONS.with(Cell::get));
    let value = build();
    let bytes = BYTES.with(Cell::get) - b0;
    let allocations = ALLOCATIONS.with(Cell::get) - a0;
    (value, bytes.max(0) as usize, allocations.max(0) as usize)
}

/// What `run` returns, and the most heap it held at once above what was held when it began
/// (on this thread, bytes requested).
fn peak_during<T>(run: impl FnOnce() -> T) -> (T, usize) {
    let start = BYTES.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let value = run();
    let peak = PEAK.with(Cell::get) - start;
    (value, peak.max(0) as usize)
}

/// Drops everything the node puts out: no one answers, nothing is counted against the node.
struct Discard;

impl Sink for Discard {
    fn transmit(&mut self, _: Transmit) {}
    fn event(&mut self, _: Event) {}
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 7946))
}

fn label(s: &str) -> Label {
    Label::new(s).expect("a valid label")
}

/// A node that has heard of `n` members by gossip and, if `settle`, has since gossiped every
/// one of those updates out (its broadcast queue is empty again): the steady state of a
/// settled cluster. Without `settle`, each member's update is still queued, as during a join.
/// Run `node`'s timers from `now` until its gossip queue is empty (every update sent its
/// retransmit limit), at most `turns` timer turns.
fn gossip_out(node: &mut Node, mut now: Instant, turns: usize) {
    for _ in 0..turns {
        if node.queue_depth() == 0 {
            return;
        }
        let Some(deadline) = node.poll_timeout() else {
            return;
        };
        now = now.max(deadline);
        node.handle_timeout(now);
        node.drain(&mut Discard);
    }
}

fn node_with_members(n: usize, tags_each: usize, settle: bool) -> Node {
    let mut config = Preset::Lan.config();
    // No probes while we drive the clock: nobody would answer, and suspicions are not the
    // steady state being measured.
    config.probe_interval = std::time::Duration::from_secs(1_000_000);
    let identity = Identity {
        name: NodeName::new("observer").expect("a valid name"),
        addr: addr(0),
        dc: label("dc1"),
        tags: Vec::new(),
    };
    let mut node = Node::new(config, identity, 1, Instant::ZERO);
    let now = Instant::ZERO;
    let roles = ["web", "db", "cache"];
    let mut datagram = DatagramBuilder::new(1_400);
    for i in 1..=n {
        let tags = (0..tags_each)
            .map(|t| Tag {
                key: label(["role", "zone"][t % 2]),
                value: BoundedString(roles[(i + t) % roles.len()].to_string()),
            })
            .collect();
        let update = Message::Member(MemberUpdate {
            name: NodeName::new(&format!("node-{i:05}")).expect("a valid name"),
            incarnation: Incarnation::ZERO,
            claim: Claim::Alive,
            profile: Profile {
                addr: addr(i),
                dc: label("dc1"),
                tags: BoundedVec::new(tags),
            },
        });
        let encoded = encode_message(&update);
        if !datagram.try_push(&encoded) {
            let full = std::mem::replace(&mut datagram, DatagramBuilder::new(1_400));
            node.handle_datagram(now, addr(1), &full.finish());
            node.drain(&mut Discard);
            assert!(datagram.try_push(&encoded));
        }
    }
    if !datagram.is_empty() {
        node.handle_datagram(now, addr(1), &datagram.finish());
        node.drain(&mut Discard);
    }
    assert_eq!(node.counts().alive, n);
    if !settle {
        return node;
    }
    // Let the timers run until every update has been sent its retransmit limit; bounded.
    gossip_out(&mut node, now, 1_000_000);
    assert_eq!(node.queue_depth(), 0, "the join burst was not gossiped out");
    assert_eq!(
        node.counts().alive,
        n,
        "a member changed state while measuring"
    );
    node
}

/// Heap per member, net of an empty node's own: (bytes, allocations) per member.
fn per_member(tags_each: usize, settle: bool) -> (f64, f64) {
    let (empty, empty_bytes, empty_allocs) = held(|| node_with_members(0, tags_each, settle));
    let (full, bytes, allocs) = held(|| node_with_members(N, tags_each, settle));
    let per = |total: usize, base: usize| (total.saturating_sub(base)) as f64 / N as f64;
    let figures = (per(bytes, empty_bytes), per(allocs, empty_allocs));
    drop((empty, full));
    figures
}

#[test]
fn bytes_per_member_at_ten_thousand() {
    let (bytes, allocs) = per_member(0, true);
    let (tagged_bytes, tagged_allocs) = per_member(2, true);
    let (queued_bytes, queued_allocs) = per_member(0, false);
    println!(
        "member record: {bytes:.1} B/member ({allocs:.2} allocations/member) with no tags; \
         {tagged_bytes:.1} B/member ({tagged_allocs:.2} allocations/member) with 2 tags; \
         one node holding {N} members, join burst gossiped out"
    );
    println!(
        "member record with its update still queued for gossip: {queued_bytes:.1} B/member \
         ({queued_allocs:.2} allocations/member)"
    );
    assert!(
        bytes <= MEMBER_BYTES_MAX as f64,
        "{bytes:.1} B per member, the bound is {MEMBER_BYTES_MAX}"
    );
    assert!(
        queued_bytes <= QUEUED_MEMBER_BYTES_MAX as f64,
        "{queued_bytes:.1} B per member with its update queued, the bound is \
         {QUEUED_MEMBER_BYTES_MAX}"
    );
}

/// A realistic registration: a ~12-character service name, two tags, one or two meta pairs,
/// an IPv4 address, a TTL check, owned by one of 100 nodes.
fn entry(i: usize) -> Entry {
    let services = [
        "payments-api",
        "checkout-web",
        "search-index",
        "user-profile",
    ];
    let service = ServiceName::new(services[i % services.len()]).expect("a valid service");
    let id = InstanceId::new(&format!("{}-{i:05}", service.as_str())).expect("a valid id");
    let owner = NodeName::new(&format!("node-{:03}", i % 100)).expect("a valid name");
    let mut spec = InstanceSpec::new(
        service,
        &format!("10.0.{}.{}", i / 256 % 256, i % 256),
        8080,
    );
    spec.tags = vec!["v2".to_string(), "primary".to_string()];
    let mut meta = BTreeMap::from([("version".to_string(), "1.4.2".to_string())]);
    if i % 2 == 0 {
        meta.insert("zone".to_string(), "eu-west-1a".to_string());
    }
    spec.meta = meta;
    spec.check = hera::registry::SpecCheck::Ttl {
        ttl: std::time::Duration::from_secs(30),
    };
    let wall_ms = 1_700_000_000_000 + i as u64;
    let instance = spec
        .into_instance(id.clone(), owner.clone(), wall_ms)
        .expect("a valid registration");
    Entry {
        id,
        version: Hlc {
            wall_ms,
            counter: 0,
            node: owner,
        },
        instance: Some(Box::new(instance)),
    }
}

#[test]
fn bytes_per_registry_entry_at_ten_thousand() {
    // Each entry is built inside the measurement (its strings move into the registry); what
    // building it takes and gives back nets out.
    let (registry, bytes, allocs) = held(|| {
        let mut registry = Registry::default();
        for i in 0..N {
            assert!(registry.apply(entry(i)));
        }
        registry
    });
    assert_eq!(registry.len(), N);
    let (bytes, allocs) = (bytes as f64 / N as f64, allocs as f64 / N as f64);
    println!(
        "registry entry: {bytes:.1} B/entry ({allocs:.2} allocations/entry); {N} entries, \
         4 services, 100 owners, 2 tags, 1-2 meta pairs, TTL check (an Instance is {} B \
         inline, a Stored {} B)",
        std::mem::size_of::<hera::registry::Instance>(),
        std::mem::size_of::<hera::registry::Stored>()
    );
    assert!(
        bytes <= ENTRY_BYTES_MAX as f64,
        "{bytes:.1} B per entry, the bound is {ENTRY_BYTES_MAX}"
    );
}

/// Heap bytes per grave (`Registry::grave`): the id and version of a collected tombstone, in
/// two persistent maps. Measured 219 B when set; `GRAVES_MAX`'s memory bound rests on it.
const GRAVE_BYTES_MAX: usize = 280;

#[test]
fn bytes_per_grave_at_ten_thousand() {
    // What a registry holds once N tombstones are collected, with and without graves.
    let collected = |keep_graves: bool| {
        held(|| {
            let mut registry = Registry::default();
            for i in 0..N {
                let mut e = entry(i);
                e.instance = None;
                assert!(registry.apply(e));
            }
            assert_eq!(registry.collect_tombstones(u64::MAX, 1, keep_graves), N);
            registry
        })
    };
    let (with, bytes, allocs) = collected(true);
    let (without, bytes0, allocs0) = collected(false);
    assert_eq!(
        (with.graves(), without.graves(), with.tombstones()),
        (N, 0, 0)
    );
    let bytes = bytes.saturating_sub(bytes0) as f64 / N as f64;
    let allocs = allocs.saturating_sub(allocs0) as f64 / N as f64;
    println!("grave: {bytes:.1} B/grave ({allocs:.2} allocations/grave); {N} graves");
    assert!(
        bytes <= GRAVE_BYTES_MAX as f64,
        "{bytes:.1} B per grave, the bound is {GRAVE_BYTES_MAX}"
    );
}

/// Heap bytes per instance a node owns: registered through its command, as the HTTP face
/// does, with no member to gossip to (its gossip queue keeps at most 1,024 of them: ~10% of
/// the entries at this size, counted in the figure). Besides the registry entry (~292 B) this
/// holds the node's own record of the instance (its checks as given, with their deadlines: 104
/// B for a TTL check), the owned map's B-tree (~103 B), the owned set the store walks, and the
/// index of the earliest deadlines the owner's tick reads (~74 B: a key of an instant and an id
/// in a B-tree). Measured 953 B when first measured (DHAT: a one-check `Vec` allocated room for
/// four, 416 B), 641 B once sized to fit, 715 B with the deadline index; ~6% headroom.
const OWNED_BYTES_MAX: usize = 760;

fn node_owning(n: usize) -> Node {
    let mut config = Preset::Lan.config();
    config.probe_interval = std::time::Duration::from_secs(1_000_000);
    let identity = Identity {
        name: NodeName::new("owner").expect("a valid name"),
        addr: addr(0),
        dc: label("dc1"),
        tags: Vec::new(),
    };
    let now = Instant::from_micros(1_700_000_000_000_000);
    let mut node = Node::new(config, identity, 1, now);
    for i in 0..n {
        let Entry { id, instance, .. } = entry(i);
        let instance = instance.expect("a live entry");
        let mut spec = InstanceSpec::new(
            instance.service.clone(),
            &format!("10.0.{}.{}", i / 256 % 256, i % 256),
            8080,
        );
        spec.id = Some(id);
        spec.tags = vec!["v2".to_string(), "primary".to_string()];
        spec.meta = BTreeMap::from([("version".to_string(), "1.4.2".to_string())]);
        spec.check = hera::registry::SpecCheck::Ttl {
            ttl: std::time::Duration::from_secs(30),
        };
        node.handle_command(now, hera::node::Command::Register(spec))
            .expect("a valid registration");
        node.drain(&mut Discard);
    }
    node
}

#[test]
fn bytes_per_owned_instance_at_ten_thousand() {
    let (_empty, empty_bytes, empty_allocs) = held(|| node_owning(0));
    let (node, bytes, allocs) = held(|| node_owning(N));
    assert_eq!(node.registry().len(), N);
    let per = |x: usize, e: usize| x.saturating_sub(e) as f64 / N as f64;
    let (bytes, allocs) = (per(bytes, empty_bytes), per(allocs, empty_allocs));
    println!(
        "owned instance: {bytes:.1} B/instance ({allocs:.2} allocations/instance); {N} owned, \
         queue {} left",
        node.queue_depth()
    );
    assert!(
        bytes <= OWNED_BYTES_MAX as f64,
        "{bytes:.1} B per owned instance, the bound is {OWNED_BYTES_MAX}"
    );
}

/// Counts what the node sends; keeps none of it.
#[derive(Default)]
struct Tally {
    paced_bytes: usize,
    paced_datagrams: usize,
}

impl Sink for Tally {
    fn transmit(&mut self, t: Transmit) {
        if t.paced {
            self.paced_bytes += t.payload.len();
            self.paced_datagrams += 1;
        }
    }
    fn event(&mut self, _: Event) {}
}

/// A member at `addr(k + 1)` for each `n{k}`, k < `count`, as `node` hears of them.
fn add_members(node: &mut Node, now: Instant, names: impl IntoIterator<Item = (String, usize)>) {
    for (name, at) in names {
        let update = Message::Member(MemberUpdate {
            name: NodeName::new(&name).expect("a valid name"),
            incarnation: Incarnation::ZERO,
            claim: Claim::Alive,
            profile: Profile {
                addr: addr(at),
                dc: label("dc1"),
                tags: BoundedVec::new(Vec::new()),
            },
        });
        let mut datagram = DatagramBuilder::new(1_400);
        assert!(datagram.try_push(&encode_message(&update)));
        node.handle_datagram(now, addr(at), &datagram.finish());
        node.drain(&mut Discard);
    }
}

/// A node `late-pusher` holding `services` × 1,000 of `scripts/registry-scale.py`'s
/// instances, heard from their owners `n0`..`n4` (members at `addr(1..=5)`), and a member
/// `late` at `addr(9)` that has just sent it an empty registry digest: the node owes `late`
/// every entry (every origin whole), due after the batch delay. Returns the node and when
/// the push falls due.
fn node_owing_a_late_joiner(services: usize, now: Instant) -> (Node, Instant) {
    let mut config = Preset::Lan.config();
    config.probe_interval = std::time::Duration::from_secs(1_000_000);
    let identity = Identity {
        name: NodeName::new("late-pusher").expect("a valid name"),
        addr: addr(0),
        dc: label("dc1"),
        tags: Vec::new(),
    };
    let mut node = Node::new(config, identity, 1, now);
    add_members(&mut node, now, (0..5).map(|k| (format!("n{k}"), k + 1)));
    add_members(&mut node, now, [("late".to_string(), 9)]);
    let mut datagrams: Vec<DatagramBuilder> = (0..5).map(|_| DatagramBuilder::new(1_400)).collect();
    for s in 0..services {
        for j in 0..1_000 {
            let k = j % 5;
            let encoded = encode_message(&Message::Entry(script_entry(s, j, 1_700_000_000_000)));
            if !datagrams[k].try_push(&encoded) {
                let full = std::mem::replace(&mut datagrams[k], DatagramBuilder::new(1_400));
                node.handle_datagram(now, addr(k + 1), &full.finish());
                node.drain(&mut Discard);
                assert!(datagrams[k].try_push(&encoded));
            }
        }
    }
    for (k, datagram) in datagrams.into_iter().enumerate() {
        if !datagram.is_empty() {
            node.handle_datagram(now, addr(k + 1), &datagram.finish());
            node.drain(&mut Discard);
        }
    }
    let ask = Message::RegistryDigest(hera::wire::RegistryDigest {
        reply_wanted: false,
        from: None,
        to: None,
        origins: BoundedVec::new(Vec::new()),
    });
    let mut datagram = DatagramBuilder::new(1_400);
    assert!(datagram.try_push(&encode_message(&ask)));
    node.handle_datagram(now, addr(9), &datagram.finish());
    node.drain(&mut Discard);
    (node, now + std::time::Duration::from_millis(10))
}

/// Entries held by the node whose whole-registry push is measured: issue 17's scale.
const PUSHED: usize = 100_000;

/// Datagrams' worth of heap (at the default budget) a whole-registry push may hold at its peak,
/// whatever the registry's size: the datagram being filled, the one the shell holds, an encoded
/// entry, the push's origins and position, the registry's range iterators. The push is made a
/// datagram at a time as the shell takes them (`Node::poll_push`). Measured when set, at
/// 100,000 entries (4 Dec, 16:30): 8,908 B (6.4 datagrams), where making every datagram at once
/// held 13,055,292 B for 11,495,808 B of datagrams (and, before that, 17.9 MB of decoded
/// entries beside 9.4 MB of datagrams, heaptrack on a real node). ~25% headroom.
const PUSH_PEAK_DATAGRAMS_MAX: usize = 8;

/// Serving a whole-registry push to a late joiner holds a few datagrams, not the push: a
/// shell that sends each datagram as it takes it (here: drops it) never has the node hold
/// more. Before, all of them (~12 MB at 100,000 entries) were made at once, waited in the
/// driver's pacer for seconds, and glibc kept most of it after (docs/scale.md, issue 17).
#[test]
fn a_whole_registry_push_holds_a_few_datagrams_whatever_the_registry_size() {
    let start = Instant::from_micros(1_700_000_000_000_000);
    let (mut node, due) = node_owing_a_late_joiner(PUSHED / 1_000, start);
    assert_eq!(node.registry().len(), PUSHED);
    let mut tally = Tally::default();
    let ((), peak) = peak_during(|| {
        node.handle_timeout(due);
        node.drain(&mut tally);
    });
    assert!(
        tally.paced_datagrams > PUSHED / 20,
        "every entry pushed: {} datagrams",
        tally.paced_datagrams
    );
    let datagram = node.config().packet_bytes_max;
    println!(
        "whole-registry push of {PUSHED} entries: peak {peak} B above the start ({:.2} \
         datagrams of {datagram} B), {} B in {} paced datagrams",
        peak as f64 / datagram as f64,
        tally.paced_bytes,
        tally.paced_datagrams,
    );
    assert!(
        peak <= PUSH_PEAK_DATAGRAMS_MAX * datagram,
        "{peak} B held at once to push {} B",
        tally.paced_bytes
    );
}

/// `scripts/registry-scale.py`'s registration of instance `j` of service `s`: 10 tag lists
/// (`shard-{j % 10}`) and 3 meta maps (`z{j % 3}`) per service, taking turns by `j`, no check.
fn script_spec(s: usize, j: usize) -> InstanceSpec {
    let service = ServiceName::new(&format!("svc-{s:04}")).expect("a valid service");
    let mut spec = InstanceSpec::new(
        service,
        &format!("10.{}.{}.{}", s % 256, j / 256 % 256, j % 256),
        (8000 + j % 1000) as u16,
    );
    spec.id = Some(InstanceId::new(&format!("svc-{s:04}-{j:05}")).expect("a valid id"));
    spec.tags = vec!["v1".to_string(), format!("shard-{}", j % 10)];
    spec.meta = BTreeMap::from([("zone".to_string(), format!("z{}", j % 3))]);
    spec
}

/// The entry of [`script_spec`]`(s, j)` as its owner `n{j % 5}` gossips it.
fn script_entry(s: usize, j: usize, wall_ms: u64) -> Entry {
    let spec = script_spec(s, j);
    let id = spec.id.clone().expect("an id");
    let owner = NodeName::new(&format!("n{}", j % 5)).expect("a valid name");
    let instance = spec
        .into_instance(id.clone(), owner.clone(), wall_ms)
        .expect("a valid registration");
    Entry {
        id,
        version: Hlc {
            wall_ms,
            counter: j as u32,
            node: owner,
        },
        instance: Some(Box::new(instance)),
    }
}

/// Distinct tag lists and distinct meta maps among the registry's live instances.
fn distinct_lists(registry: &Registry) -> (usize, usize) {
    let mut tags = std::collections::BTreeSet::new();
    let mut meta = std::collections::BTreeSet::new();
    for i in registry.instances() {
        tags.insert(std::sync::Arc::as_ptr(&i.tags) as usize);
        meta.insert(std::sync::Arc::as_ptr(&i.meta) as usize);
    }
    (tags.len(), meta.len())
}

/// Where the live heap of one of issue 17's five real nodes goes at 100,000 entries: node
/// `n0` of `scripts/registry-scale.py --services 100 --per-service 1000` owns instance `j`
/// of every service with `j % 5 == 0` (registered through its command, as the HTTP face does)
/// and hears the rest from 4 peers in the order the script registers them (by service, then
/// `j`: each peer's datagrams in turn), then gossips its queue out, and the driver's snapshot
/// is taken. Prints the heap after each step; the real node's glibc counted 71.2 MB in use
/// (`malloc_stats`, 4 Dec 12:15), against the ~38 MB `tests/memory.rs`'s entries predict.
#[test]
fn where_the_heap_of_a_node_holding_a_hundred_thousand_entries_goes() {
    const SERVICES: usize = 100;
    const PER_SERVICE: usize = 1_000;
    const PEERS: usize = 4;
    let total = SERVICES * PER_SERVICE;
    let start = Instant::from_micros(1_700_000_000_000_000);
    let wall_ms = 1_700_000_000_000;
    let mut config = Preset::Lan.config();
    config.probe_interval = std::time::Duration::from_secs(1_000_000);
    let identity = Identity {
        name: NodeName::new("n0").expect("a valid name"),
        addr: addr(0),
        dc: label("dc1"),
        tags: Vec::new(),
    };
    let (mut node, empty, empty_allocs) = held(|| Node::new(config, identity, 1, start));
    let peer_name = |k: usize| NodeName::new(&format!("n{k}")).expect("a valid name");
    for k in 1..=PEERS {
        let update = Message::Member(MemberUpdate {
            name: peer_name(k),
            incarnation: Incarnation::ZERO,
            claim: Claim::Alive,
            profile: Profile {
                addr: addr(k),
                dc: label("dc1"),
                tags: BoundedVec::new(Vec::new()),
            },
        });
        let mut datagram = DatagramBuilder::new(1_400);
        assert!(datagram.try_push(&encode_message(&update)));
        node.handle_datagram(start, addr(k), &datagram.finish());
        node.drain(&mut Discard);
    }
    let base = BYTES.with(Cell::get);
    let base_allocs = ALLOCATIONS.with(Cell::get);
    let base_chunks = CHUNKS.with(Cell::get);
    let report = |step: &str, node: &Node| {
        let bytes = BYTES.with(Cell::get) - base;
        let allocs = ALLOCATIONS.with(Cell::get) - base_allocs;
        let chunks = CHUNKS.with(Cell::get) - base_chunks;
        let held = node.registry().len().max(1);
        println!(
            "{step}: {:.1} MB in {allocs} allocations ({:.1} MB in glibc's chunks), {:.0} B \
             and {:.2} allocations an entry ({held} entries, queue {})",
            bytes as f64 / 1e6,
            chunks as f64 / 1e6,
            bytes as f64 / held as f64,
            allocs as f64 / held as f64,
            node.queue_depth()
        );
        bytes
    };
    println!("empty node with {PEERS} members: {empty} B in {empty_allocs} allocations");
    let mut datagrams: Vec<DatagramBuilder> =
        (0..PEERS).map(|_| DatagramBuilder::new(1_400)).collect();
    for s in 0..SERVICES {
        for j in 0..PER_SERVICE {
            let k = j % 5;
            if k == 0 {
                let spec = script_spec(s, j);
                node.handle_command(start, hera::node::Command::Register(spec))
                    .expect("a valid registration");
                node.drain(&mut Discard);
                continue;
            }
            let encoded = encode_message(&Message::Entry(script_entry(s, j, wall_ms)));
            if !datagrams[k - 1].try_push(&encoded) {
                let full = std::mem::replace(&mut datagrams[k - 1], DatagramBuilder::new(1_400));
                node.handle_datagram(start, addr(k), &full.finish());
                node.drain(&mut Discard);
                assert!(datagrams[k - 1].try_push(&encoded));
            }
        }
    }
    for (k, datagram) in datagrams.into_iter().enumerate() {
        if !datagram.is_empty() {
            node.handle_datagram(start, addr(k + 1), &datagram.finish());
            node.drain(&mut Discard);
        }
    }
    assert_eq!(node.registry().len(), total);
    assert_eq!(node.local_instances().len(), total / 5);
    let loaded = report("loaded (20,000 owned, 80,000 heard)", &node);
    // Gossip the queue out, as an idle node has: bounded, and well within any TTL.
    gossip_out(&mut node, start, 100_000);
    let settled = report("queue gossiped out", &node);
    let snapshot = (
        node.registry().clone(),
        node.local_instances().clone(),
        node.owned_changes().clone(),
    );
    report(
        "with the driver's snapshot (registry, owned set, changes)",
        &node,
    );
    let (tags, meta) = distinct_lists(node.registry());
    println!(
        "distinct lists held: {tags} tag lists, {meta} meta maps (the script has 1,000 and 300)"
    );
    drop(snapshot);
    // The registry alone, the same entries applied in the same order (owner `n{j % 5}`).
    let (registry, alone, alone_allocs) = held(|| {
        let mut registry = Registry::default();
        for s in 0..SERVICES {
            for j in 0..PER_SERVICE {
                assert!(registry.apply(script_entry(s, j, wall_ms)));
            }
        }
        registry
    });
    println!(
        "the registry alone: {:.1} MB in {alone_allocs} allocations, {:.0} B an entry; the \
         node's own records of the 20,000 it owns, its indexes and the rest: {:.1} MB",
        alone as f64 / 1e6,
        alone as f64 / registry.len() as f64,
        (settled - alone as isize) as f64 / 1e6
    );
    assert!(loaded >= settled);
    // Measured 315 B an entry once settled (486 B before the lists were shared beyond the
    // nearest neighbours, 100,000 tag lists and 80,100 meta maps); 10% headroom.
    let per_entry = settled as f64 / total as f64;
    assert!(
        per_entry <= NODE_ENTRY_BYTES_MAX as f64,
        "{per_entry:.0} B an entry, the bound is {NODE_ENTRY_BYTES_MAX}"
    );
    assert!(tags <= 2 * SERVICES * 10 && meta <= 2 * SERVICES * 3);
}

/// Heap an entry of `where_the_heap_of_a_node_holding_a_hundred_thousand_entries_goes`.
const NODE_ENTRY_BYTES_MAX: usize = 350;

/// Instances whose tags and meta take turns by instance (`scripts/registry-scale.py`: 10 tag
/// lists and 3 meta maps a service, by `j % 10` and `j % 3`) keep one copy of each list a
/// service uses, in whatever order they arrive, not one per instance: on issue 17's real
/// nodes every one of the 100,000 instances held its own (found by
/// `where_the_heap_of_a_node_holding_a_hundred_thousand_entries_goes`), ~190 B and 8
/// allocations an entry, when an instance's neighbours by id, the only ones compared, never
/// had its lists.
#[test]
fn lists_that_take_turns_by_instance_are_shared() {
    const SERVICES: usize = 10;
    const PER_SERVICE: usize = 1_000;
    let mut in_order: Vec<(usize, usize)> = (0..SERVICES)
        .flat_map(|s| (0..PER_SERVICE).map(move |j| (s, j)))
        .collect();
    let mut shuffled = in_order.clone();
    // A fixed shuffle (Fisher-Yates with a 64-bit LCG): arrival by anti-entropy buckets.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..shuffled.len()).rev() {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        shuffled.swap(i, (x >> 33) as usize % (i + 1));
    }
    for (name, order) in [("in id order", &mut in_order), ("shuffled", &mut shuffled)] {
        let (registry, bytes, allocs) = held(|| {
            let mut registry = Registry::default();
            for &(s, j) in order.iter() {
                assert!(registry.apply(script_entry(s, j, 1_700_000_000_000)));
            }
            registry
        });
        let n = registry.len();
        let (tags, meta) = distinct_lists(&registry);
        println!(
            "script-shaped registry, {name}: {:.1} B/entry ({:.2} allocations/entry); {tags} tag \
             lists, {meta} meta maps for {n} instances",
            bytes as f64 / n as f64,
            allocs as f64 / n as f64,
        );
        assert!(
            tags <= n / 20 && meta <= n / 20,
            "{name}: {tags} tag lists and {meta} meta maps for {n} instances of {SERVICES} \
             services"
        );
    }
}

/// glibc's `mallinfo2` (2.33 and later): the main arena's figures, in bytes.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[repr(C)]
#[derive(Debug)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    fn mallinfo2() -> MallInfo2;
    fn malloc_trim(pad: usize) -> i32;
}

/// This process's resident KiB (/proc/self/status VmRSS).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A measurement, not a bound (push30, item 2): what `malloc_trim(0)` gives back after a
/// transient of the old whole-registry push's shape (~10,000 datagrams of ~1.4 KB, ~14 MB,
/// freed with small allocations made meanwhile still live above them, as the node's gossip and
/// registry work kept them on a real node), beside a node holding 100,000 entries, and what the
/// call costs. Run it alone:
///
/// ```text
/// cargo test --release --test memory -- --ignored --nocapture malloc_trim
/// ```
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
#[ignore = "a measurement; run alone with --ignored --nocapture"]
#[allow(clippy::disallowed_methods)] // the test times the call on purpose
fn what_malloc_trim_gives_back_after_a_push_sized_transient() {
    let (node, _) =
        node_owing_a_late_joiner(PUSHED / 1_000, Instant::from_micros(1_700_000_000_000_000));
    let rss_node = rss_kib();
    let mut pinned = Vec::new();
    let transient: Vec<Vec<u8>> = (0..10_000)
        .map(|k| {
            if k % 16 == 0 {
                pinned.push(Box::new([k as u8; 64]));
            }
            vec![k as u8; 1_400]
        })
        .collect();
    let rss_peak = rss_kib();
    drop(transient);
    // SAFETY: glibc functions without preconditions; the struct matches glibc's layout.
    let before = unsafe { mallinfo2() };
    let rss_before = rss_kib();
    let t0 = std::time::Instant::now();
    // SAFETY: as above.
    let released = unsafe { malloc_trim(0) };
    let took = t0.elapsed();
    let after = unsafe { mallinfo2() };
    let rss_after = rss_kib();
    // And once more, with nothing new to give back: the price of a trigger that fires in vain.
    let t1 = std::time::Instant::now();
    let _ = unsafe { malloc_trim(0) };
    let again = t1.elapsed();
    println!(
        "malloc_trim at {} entries: RSS {rss_node} KiB with the node, {rss_peak} at the \
         transient's peak, {rss_before} after it was freed, {rss_after} after malloc_trim(0) \
         (released: {released}); the call took {took:?} ({again:?} again at once); arena {} -> \
         {} B, in use {} B, free {} -> {} B, {} pinned",
        node.registry().len(),
        before.arena,
        after.arena,
        before.uordblks,
        before.fordblks,
        after.fordblks,
        pinned.len(),
    );
}
