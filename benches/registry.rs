//! Criterion benches of the registry: last-writer-wins merge throughput and anti-entropy
//! digests, at 10,000 entries (100 origins of 100 instances each: a large deployment).
//!
//! `cargo bench --bench registry`. Sample sizes and times are kept small so that the whole
//! `cargo bench` stays within a few minutes; pass criterion's `--measurement-time` for more.

use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use hera::bounded::{BoundedString, BoundedVec};
use hera::names::{InstanceId, NodeName, ServiceName};
use hera::registry::{
    Check, Entry, Extras, Health, Hlc, Instance, InstanceExtras, MetaPair, OriginDigest, Registry,
};
use hera::wire::{
    decode_datagram, encode_message, DatagramBuilder, Message, OriginSummary, RegistryDigest,
};

const ORIGINS: usize = 100;
const PER_ORIGIN: usize = 100;
/// Updates in one merged stream.
const STREAM: usize = 1_000;
const WALL_MS: u64 = 1_700_000_000_000;

fn origin(o: usize) -> NodeName {
    NodeName::new(&format!("node-{o:03}.dc1")).expect("valid name")
}

fn id(o: usize, i: usize) -> InstanceId {
    InstanceId::new(&format!("web-{o:03}-{i:03}:10.{o}.{i}.7:8080")).expect("valid id")
}

fn text<const MAX: usize>(s: &str) -> BoundedString<MAX> {
    BoundedString(s.to_string())
}

/// A typical instance: a service with two tags, one meta pair and a TTL check.
fn instance(o: usize, i: usize, health: Health) -> Instance {
    Instance {
        service: ServiceName::new(&format!("svc-{}", i % 20)).expect("valid service"),
        id: id(o, i),
        address: text(&format!("10.{o}.{i}.7")),
        port: 8080,
        tags: Arc::new(BoundedVec::new(vec![text("v2"), text("primary")])),
        meta: Arc::new(BoundedVec::new(vec![MetaPair {
            key: text("version"),
            value: text("2.14.1"),
        }])),
        check: Check::Ttl { ttl_ms: 30_000 },
        owner: origin(o),
        owner_boot: hera::registry::BootId(o as u64 + 1),
        health,
        health_since_ms: WALL_MS,
        online: true,
        checks: Default::default(),
        extras: Extras::of(InstanceExtras {
            deregister_critical_after_ms: Some(600_000),
            ..InstanceExtras::default()
        }),
    }
}

fn version(o: usize, wall_ms: u64) -> Hlc {
    Hlc {
        wall_ms,
        counter: 0,
        node: origin(o),
    }
}

fn entry(o: usize, i: usize, wall_ms: u64, health: Option<Health>) -> Entry {
    Entry {
        id: id(o, i),
        version: version(o, wall_ms),
        instance: health.map(|h| Box::new(instance(o, i, h))),
    }
}

fn registry() -> Registry {
    let mut r = Registry::default();
    for o in 0..ORIGINS {
        for i in 0..PER_ORIGIN {
            r.apply(entry(o, i, WALL_MS + (i as u64), Some(Health::Passing)));
        }
    }
    r
}

/// What a node of a large cluster hears over a few seconds, in a fixed pseudo-random order:
/// mostly health changes (newer versions of held entries), many rumours it already holds
/// (gossip reaches each node several times), some stale ones, a few new instances and
/// deregistrations.
fn stream() -> Vec<Entry> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..STREAM)
        .map(|_| {
            let r = next();
            let (o, i) = ((r >> 8) as usize % ORIGINS, (r >> 24) as usize % PER_ORIGIN);
            let held = WALL_MS + i as u64;
            match r % 100 {
                0..=54 => entry(o, i, held + 1_000 + r % 997, Some(Health::Critical)),
                55..=79 => entry(o, i, held, Some(Health::Passing)),
                80..=89 => entry(o, i, held - 1, Some(Health::Warning)),
                90..=94 => entry(o, PER_ORIGIN + i, held + 5, Some(Health::Passing)),
                _ => entry(o, i, held + 2_000, None),
            }
        })
        .collect()
}

/// The stream packed into 1,400-byte datagrams, as gossip and anti-entropy push it.
fn datagrams(entries: &[Entry]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut d = DatagramBuilder::new(1_400);
    for e in entries {
        let encoded = encode_message(&Message::Entry(e.clone()));
        if !d.try_push(&encoded) {
            out.push(std::mem::replace(&mut d, DatagramBuilder::new(1_400)).finish());
            assert!(d.try_push(&encoded), "an entry fits an empty datagram");
        }
    }
    out.push(d.finish());
    out
}

fn merge(c: &mut Criterion) {
    let held = registry();
    let updates = stream();
    let packed = datagrams(&updates);
    println!(
        "registry: {} entries held; stream of {} updates in {} datagrams",
        held.len(),
        updates.len(),
        packed.len()
    );
    let mut g = c.benchmark_group("registry-merge");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(updates.len() as u64));
    // The registry is cloned per batch (O(1): persistent maps), so each run merges into the
    // same 10,000 entries and pays the copy-on-write a published snapshot causes.
    g.bench_function("apply 1,000 remote updates into 10,000 entries", |b| {
        b.iter_batched(
            || (held.clone(), updates.clone()),
            |(mut r, ups)| {
                let mut changed = 0;
                for e in ups {
                    changed += usize::from(r.apply(e));
                }
                (r, changed)
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function(
        "decode+apply the same updates from 1,400-byte datagrams",
        |b| {
            b.iter_batched(
                || held.clone(),
                |mut r| {
                    for d in &packed {
                        for m in decode_datagram(black_box(d)).expect("valid datagram") {
                            if let Message::Entry(e) = m {
                                r.apply(e);
                            }
                        }
                    }
                    r
                },
                BatchSize::LargeInput,
            )
        },
    );
    g.finish();
}

fn digests(c: &mut Criterion) {
    let held = registry();
    let mut g = c.benchmark_group("registry-digest");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    // Step 2 of anti-entropy: one summary per origin, kept up to date on every merge; sending
    // them is a walk of 100 origins and an encode.
    g.throughput(Throughput::Elements(ORIGINS as u64));
    g.bench_function("per-origin digest message, 100 origins", |b| {
        b.iter(|| {
            let origins = held
                .origin_digests()
                .iter()
                .map(|(origin, d)| OriginSummary {
                    origin: origin.clone(),
                    count: d.count,
                    hash: d.hash,
                })
                .collect();
            encode_message(&Message::RegistryDigest(RegistryDigest {
                reply_wanted: true,
                from: None,
                to: None,
                origins: BoundedVec::new(origins),
            }))
        })
    });
    // Step 3: the 64 bucket summaries of one origin, a scan of all 10,000 entries.
    g.throughput(Throughput::Elements((ORIGINS * PER_ORIGIN) as u64));
    let one = origin(42);
    g.bench_function(
        "bucket digests of one origin, scan of 10,000 entries",
        |b| b.iter(|| held.bucket_digests(black_box(&one))),
    );
    // From scratch: hashing every (id, version) held, what a rebuild would cost.
    let pairs: Vec<(InstanceId, Hlc)> = (0..ORIGINS)
        .flat_map(|o| (0..PER_ORIGIN).map(move |i| (id(o, i), version(o, WALL_MS))))
        .collect();
    g.bench_function(
        "hash 10,000 (id, version) pairs into per-origin digests",
        |b| {
            b.iter(|| {
                let mut per_origin = vec![OriginDigest::default(); ORIGINS];
                for (n, (id, v)) in pairs.iter().enumerate() {
                    per_origin[n / PER_ORIGIN].add(id, v);
                }
                per_origin
            })
        },
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500));
    targets = merge, digests
}
criterion_main!(benches);
