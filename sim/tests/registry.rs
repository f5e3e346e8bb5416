//! The registry on the simulator's network: replication, renewal and expiry, health and
//! maintenance, deletion, ownership, anti-entropy for a late joiner and for one lost entry,
//! and what a gossiped entry may not make a node do. Partitions and failed owners are in
//! `registry_faults.rs`.

mod support;

use std::time::Duration;

use hera::config::schema::{find, Naming, Raw};
use hera::config::{Config, Tuning};
use hera::names::{NodeName, ServiceName};
use hera::node::{Event, Probe, RESYNCS_PER_INTERVAL_MAX};
use hera::registry::{Entry, Health, Hlc, SpecCheck};
use hera::swim::gossip::INSTANCE_UPDATES_MAX;
use hera::wire::{Message, MessageKind};
use hera::{Command, CommandError};
use hera_sim::network::LinkOverride;
use hera_sim::{World, EPOCH_US};
use support::join;
use support::registry::{cluster, everyone_holds, holds, id, nobody_holds, spec, spread};

/// A write reaches every node on eager rounds alone, not only most of them (issue 17). With
/// one eager round per node, each node heard of a write from about `fanout` random others, so
/// about e^-3 of them (5%) heard from no one and waited for a gossip tick or a probe's
/// piggyback: the tail of a write's reach. Eight writes in 64 nodes, each seen by all within
/// half a gossip interval.
#[test]
fn every_write_reaches_all_of_64_nodes_before_a_gossip_tick() {
    let n = 64;
    let mut c = support::cluster(n, hera::config::Config::local(), 17);
    support::join_all(&mut c);
    let all: Vec<u32> = (0..n as u32).collect();
    let within = c.config().gossip_interval / 2;
    for write in 0..8 {
        let name = format!("web-{write}");
        c.command(write % 4, Command::Register(spec("web", &name)))
            .unwrap();
        let took = c.step_until(spread(&c), |c| everyone_holds(c, &all, &name));
        let took = took.unwrap_or_else(|| panic!("{name} never reached all {n} nodes"));
        assert!(
            took < within,
            "{name} took {took:?} to reach all {n} nodes: some waited for a tick (bound {within:?})"
        );
    }
}

#[test]
fn a_registration_reaches_every_node_within_a_few_round_trips() {
    let mut c = cluster(3);
    c.command(0, Command::Register(spec("web", "web-1")))
        .unwrap();
    // Eager push: no wait for a gossip tick, so a handful of one-way latencies.
    let took = c.step_until(spread(&c), |c| everyone_holds(c, &[0, 1, 2], "web-1"));
    let took = took.expect("registration spread");
    assert!(
        took < c.config().gossip_interval,
        "took {took:?}, not bound to the gossip tick"
    );
    let seen = c
        .node(2)
        .unwrap()
        .registry()
        .get(&id("web-1"))
        .unwrap()
        .clone();
    assert_eq!(seen.owner, *c.name(0));
    assert_eq!(seen.health, Health::Passing);
}

#[test]
fn renewal_keeps_an_instance_and_silence_expires_it_everywhere() {
    let mut c = cluster(3);
    let liveness = Duration::from_secs(2);
    let mut s = spec("storage", "s-1");
    s.liveness = Some(liveness);
    c.command(0, Command::Register(s)).unwrap();
    c.run_for(spread(&c));
    // Renewing more often than the liveness keeps it, and costs no cluster traffic. The first
    // renewal comes `spread` after the registration, under the liveness; the owner's tick
    // expires an instance when its liveness lapses, not a tick later, so a first renewal
    // `spread + liveness / 2` late would come after the lapse.
    c.command(0, Command::Renew { id: id("s-1") }).unwrap();
    for _ in 0..4 {
        c.run_for(liveness / 2);
        let datagrams_before = c.sent().len();
        c.command(0, Command::Renew { id: id("s-1") }).unwrap();
        assert_eq!(
            c.sent().len(),
            datagrams_before,
            "a renewal that changes nothing sends nothing"
        );
        assert!(everyone_holds(&c, &[0, 1, 2], "s-1"));
    }
    // Silence: gone everywhere after the liveness plus a tick and a few gossip rounds.
    let bound = liveness + c.config().registry_tick + spread(&c);
    let gone = c.step_until(bound, |c| nobody_holds(c, &[0, 1, 2], "s-1"));
    assert!(gone.is_some(), "expired instance still held");
}

#[test]
fn ttl_checks_start_critical_pass_and_lapse() {
    let mut c = cluster(3);
    let ttl = Duration::from_secs(1);
    let mut s = spec("api", "api-1");
    s.check = SpecCheck::Ttl { ttl };
    c.command(1, Command::Register(s)).unwrap();
    c.run_for(spread(&c));
    let health = |c: &World, i: u32| {
        c.node(i)
            .unwrap()
            .registry()
            .get(&id("api-1"))
            .map(|x| x.health)
    };
    assert_eq!(
        health(&c, 2),
        Some(Health::Critical),
        "critical until the first report"
    );
    c.command(
        1,
        Command::SetHealth {
            id: id("api-1"),
            health: Health::Passing,
            output: "ok".into(),
        },
    )
    .unwrap();
    assert!(c
        .step_until(spread(&c), |c| health(c, 0) == Some(Health::Passing))
        .is_some());
    // No report within the TTL: critical everywhere.
    let bound = ttl + c.config().registry_tick + spread(&c);
    assert!(c
        .step_until(bound, |c| health(c, 0) == Some(Health::Critical))
        .is_some());
    assert_eq!(
        c.node(2)
            .unwrap()
            .registry()
            .get(&id("api-1"))
            .unwrap()
            .output
            .0,
        "TTL expired"
    );
}

#[test]
fn maintenance_takes_an_instance_off_line_everywhere() {
    let mut c = cluster(3);
    c.command(0, Command::Register(spec("web", "web-1")))
        .unwrap();
    c.run_for(spread(&c));
    c.command(
        2,
        Command::SetMaintenance {
            id: id("web-1"),
            enable: true,
            reason: Some("deploy".into()),
        },
    )
    .unwrap();
    let offline = |c: &World, i: u32| {
        c.node(i)
            .unwrap()
            .registry()
            .get(&id("web-1"))
            .is_some_and(|x| !x.online)
    };
    assert!(c
        .step_until(spread(&c), |c| (0..3).all(|i| offline(c, i)))
        .is_some());
    let x = c
        .node(0)
        .unwrap()
        .registry()
        .get(&id("web-1"))
        .unwrap()
        .clone();
    assert_eq!(
        x.maintenance_reason.as_ref().map(|r| r.0.as_str()),
        Some("deploy")
    );
    assert!(!x.is_serving());
    c.command(
        1,
        Command::SetMaintenance {
            id: id("web-1"),
            enable: false,
            reason: None,
        },
    )
    .unwrap();
    assert!(c
        .step_until(spread(&c), |c| (0..3).all(|i| !offline(c, i)))
        .is_some());
}

#[test]
fn deregistration_is_final_and_an_old_version_does_not_resurrect_it() {
    let mut c = cluster(3);
    c.command(0, Command::Register(spec("web", "web-1")))
        .unwrap();
    c.run_for(spread(&c));
    let old: Entry = c.node(2).unwrap().registry().entry(&id("web-1")).unwrap();
    c.command(1, Command::Deregister { id: id("web-1") })
        .unwrap();
    assert!(c
        .step_until(spread(&c), |c| nobody_holds(c, &[0, 1, 2], "web-1"))
        .is_some());
    // A slow peer's old version arrives late: the tombstone is newer, nothing comes back.
    c.deliver_now(0, 2, &[Message::Entry(old)]);
    c.run_for(spread(&c));
    assert!(nobody_holds(&c, &[0, 1, 2], "web-1"));
    assert_eq!(
        c.command(0, Command::Deregister { id: id("web-1") }).err(),
        Some(CommandError::UnknownInstance { id: id("web-1") })
    );
}

#[test]
fn a_write_on_another_node_moves_ownership() {
    let mut c = cluster(3);
    c.command(0, Command::Register(spec("web", "web-1")))
        .unwrap();
    c.run_for(spread(&c));
    c.command(2, Command::Renew { id: id("web-1") }).unwrap();
    let owner_is_2 = |c: &World| {
        (0..3).all(|i| {
            c.node(i)
                .unwrap()
                .registry()
                .get(&id("web-1"))
                .unwrap()
                .owner
                == *c.name(2)
        })
    };
    assert!(c.step_until(spread(&c), owner_is_2).is_some());
}

#[test]
fn an_id_in_use_by_another_service_is_refused() {
    let mut c = cluster(2);
    c.command(0, Command::Register(spec("web", "x-1"))).unwrap();
    assert_eq!(
        c.command(0, Command::Register(spec("db", "x-1"))).err(),
        Some(CommandError::IdInUse {
            id: id("x-1"),
            service: ServiceName::new("web").unwrap()
        })
    );
}

#[test]
fn a_node_that_joins_late_converges_to_thousands_of_entries() {
    let mut c = cluster(3);
    let total = 2_000;
    for k in 0..total {
        let owner = (k % 3) as u32;
        c.command(owner, Command::Register(spec("bulk", &format!("i-{k}"))))
            .unwrap();
    }
    // A burst this size outruns gossip's retransmit budget; anti-entropy completes it.
    let settled = c.step_until(c.config().sync_interval * 4, |c| {
        (0..3).all(|i| c.node(i).unwrap().registry().len() == total)
    });
    assert!(
        settled.is_some(),
        "the three nodes did not converge on the burst"
    );
    // A fourth node joins through node 0 and must end up with all of them.
    let late = c.add_node();
    c.start(late);
    join(&mut c, late);
    let bound = c.config().sync_interval * 3;
    let took = c.step_until(bound, |c| c.node(3).unwrap().registry().len() == total);
    assert!(
        took.is_some(),
        "late joiner holds {} of {total}",
        c.node(3).unwrap().registry().len()
    );
}

/// Anti-entropy finds the entries it pushes by a pass over the registry. Every origin a peer
/// lacks, asked for in one exchange, is served by one pass, not one an origin (issue 17: at
/// 100 origins × 1,000 entries, one exchange was 100 passes over 100,000 entries). A late
/// joiner lacks the five origins of the cluster; its seed pushes them all with one pass.
#[test]
fn one_exchange_pushes_every_origin_in_one_pass() {
    let origins = 5u32;
    let mut c = cluster(origins as usize);
    let each = 40;
    let total = (origins * each) as usize;
    for owner in 0..origins {
        for k in 0..each {
            let name = format!("i-{owner}-{k}");
            c.command(owner, Command::Register(spec("bulk", &name)))
                .unwrap();
        }
    }
    let settled = c.step_until(c.config().sync_interval * 4, |c| {
        (0..origins).all(|i| {
            let node = c.node(i).unwrap();
            node.registry().len() == total && node.queue_depth() == 0
        })
    });
    assert!(
        settled.is_some(),
        "the cluster did not settle on its entries"
    );
    let stats = |c: &World| {
        let s = c.node(0).unwrap().stats();
        (s.push_passes, s.entries_pushed)
    };
    let (passes_before, pushed_before) = stats(&c);
    let late = c.add_node();
    c.start(late);
    join(&mut c, late);
    let took = c.step_until(c.config().sync_interval / 2, |c| {
        c.node(late).unwrap().registry().len() == total
    });
    assert!(
        took.is_some(),
        "the late joiner holds {} of {total}",
        c.node(late).unwrap().registry().len()
    );
    let (passes, pushed) = stats(&c);
    assert!(
        pushed - pushed_before >= total as u64,
        "the seed pushed {} entries",
        pushed - pushed_before
    );
    assert_eq!(passes - passes_before, 1, "passes for {origins} origins");
}

/// A bulk load three times the gossip queue's bound for registry entries (issue 17): every
/// node's queue holds at most the bound at every step, entries were dropped from it (the bound
/// took effect), and anti-entropy still brings every node every entry; then the queues empty.
/// Without the bound every node queued all of them and gossiped each `retransmit_limit` times
/// for minutes after the registry agreed.
#[test]
fn a_bulk_load_past_the_queue_bound_converges_with_bounded_queues() {
    let n = 5u32;
    let mut c = cluster(n as usize);
    let total = INSTANCE_UPDATES_MAX * 3;
    let mut peak = 0;
    let queued = |c: &World| {
        (0..n)
            .map(|i| c.node(i).unwrap().queued_entries())
            .max()
            .unwrap_or(0)
    };
    for k in 0..total {
        let owner = k as u32 % n;
        c.command(owner, Command::Register(spec("bulk", &format!("i-{k}"))))
            .unwrap();
        peak = peak.max(queued(&c));
    }
    let bound = c.config().sync_interval * 6;
    let settled = c.step_until(bound, |c| {
        peak = peak.max(queued(c));
        (0..n).all(|i| c.node(i).unwrap().registry().len() == total)
    });
    let held: Vec<usize> = (0..n)
        .map(|i| c.node(i).unwrap().registry().len())
        .collect();
    assert!(
        settled.is_some(),
        "not every node holds all {total} entries {bound:?} after the load: {held:?}"
    );
    let dropped: Vec<u64> = (0..n)
        .map(|i| c.node(i).unwrap().stats().gossip_instances_dropped)
        .collect();
    assert!(
        dropped.iter().all(|&d| d > 0),
        "the bound took no effect: dropped {dropped:?}"
    );
    let drained = c.step_until(bound, |c| {
        peak = peak.max(queued(c));
        (0..n).all(|i| c.node(i).unwrap().queue_depth() == 0)
    });
    assert!(drained.is_some(), "gossip queues never drained");
    assert!(
        peak <= INSTANCE_UPDATES_MAX,
        "a queue held {peak} entries (bound {INSTANCE_UPDATES_MAX})"
    );
    assert_eq!(peak, INSTANCE_UPDATES_MAX, "the queues never filled");
    println!(
        "{total} entries: held everywhere after {settled:?}, queues empty {drained:?} later, \
         dropped per node {dropped:?}"
    );
}

/// `n` nodes on the lan preset (probe interval 1 s, sync interval 30 s: the ratio the early
/// re-syncs are about), joined, then two sync intervals on: every node's sync timer at its
/// own phase, as in a cluster that has run a while.
fn lan_cluster(n: u32, seed: u64) -> World {
    lan_cluster_at(n, seed, support::LATENCY)
}

/// [`lan_cluster`] with `latency` on every link.
fn lan_cluster_at(n: u32, seed: u64, latency: Duration) -> World {
    let mut c = World::manual(n as usize, Config::lan(), seed, latency);
    for i in 0..n {
        c.start(i);
    }
    support::join_all(&mut c);
    c.run_for(c.config().sync_interval * 2);
    c
}

/// Anti-entropy's messages sent so far by nodes `0..n`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct SyncSent {
    /// Membership sync probes: one per regular sync round.
    probes: u64,
    /// Registry hashes: beside every sync probe, and alone in an early re-sync.
    hashes: u64,
    digests: u64,
    buckets: u64,
    entries_pushed: u64,
    resyncs: u64,
}

impl SyncSent {
    fn of(c: &World, nodes: &[u32]) -> SyncSent {
        let mut s = SyncSent::default();
        for n in nodes.iter().filter_map(|&i| c.node(i)) {
            let st = n.stats();
            s.probes += st.messages_out[MessageKind::SyncProbe.index()];
            s.hashes += st.messages_out[MessageKind::RegistrySync.index()];
            s.digests += st.messages_out[MessageKind::RegistryDigest.index()];
            s.buckets += st.messages_out[MessageKind::RegistryBuckets.index()];
            s.entries_pushed += st.entries_pushed;
            s.resyncs += st.registry_resyncs;
        }
        s
    }

    fn since(self, before: SyncSent) -> SyncSent {
        SyncSent {
            probes: self.probes - before.probes,
            hashes: self.hashes - before.hashes,
            digests: self.digests - before.digests,
            buckets: self.buckets - before.buckets,
            entries_pushed: self.entries_pushed - before.entries_pushed,
            resyncs: self.resyncs - before.resyncs,
        }
    }
}

/// Issue 17: after a bulk load sixteen times the gossip queue's bound (16 nodes × 1,024), most
/// entries reach the other nodes only by anti-entropy. With one exchange per `sync_interval`
/// (30 s), every node held every owner's entries 39.3 s after the load (this seed, before
/// the early re-syncs; 2-4 rounds in docs/scale.md's runs); a node whose exchange brings news
/// now compares again a probe interval later, with another peer: 10.2 s. The bound is half a
/// sync interval. The early re-syncs stay within their ceiling, and stop once the registries
/// agree.
#[test]
fn a_bulk_load_past_the_queue_bound_is_held_everywhere_within_half_a_sync_interval() {
    let n = 16u32;
    let nodes: Vec<u32> = (0..n).collect();
    let mut c = lan_cluster(n, 5);
    let each = INSTANCE_UPDATES_MAX;
    let total = each * n as usize;
    let before = SyncSent::of(&c, &nodes);
    let resyncs = |c: &World| -> Vec<u64> {
        nodes
            .iter()
            .map(|&i| c.node(i).unwrap().stats().registry_resyncs)
            .collect()
    };
    let resyncs_before = resyncs(&c);
    for k in 0..each {
        for owner in 0..n {
            c.command(
                owner,
                Command::Register(spec("bulk", &format!("i-{owner}-{k}"))),
            )
            .unwrap();
        }
    }
    let sync = c.config().sync_interval;
    let held = |c: &World| -> Vec<usize> {
        nodes
            .iter()
            .map(|&i| c.node(i).unwrap().registry().len())
            .collect()
    };
    let settled = c.step_until(sync * 6, |c| held(c).iter().all(|&h| h == total));
    let dropped: Vec<u64> = nodes
        .iter()
        .map(|&i| c.node(i).unwrap().stats().gossip_instances_dropped)
        .collect();
    let loading = SyncSent::of(&c, &nodes).since(before);
    println!("{total} entries held everywhere after {settled:?}; dropped {dropped:?}; {loading:?}");
    // The fault took effect: every node's queue let entries go, left to anti-entropy.
    assert!(
        dropped.iter().all(|&d| d > 0),
        "the bound took no effect: dropped {dropped:?}"
    );
    let took = settled.unwrap_or_else(|| panic!("not held everywhere: {:?}", held(&c)));
    assert!(
        took <= sync / 2,
        "{total} entries held everywhere {took:?} after the load (sync interval {sync:?})"
    );
    // The ceiling: at most RESYNCS_PER_INTERVAL_MAX per node in any sync interval, each node
    // on its own (a sum would hide one node far over it).
    let intervals = took.as_secs().div_ceil(sync.as_secs()) + 1;
    let ceiling = u64::from(RESYNCS_PER_INTERVAL_MAX) * intervals;
    let per_node: Vec<u64> = resyncs(&c)
        .iter()
        .zip(&resyncs_before)
        .map(|(after, before)| after - before)
        .collect();
    assert!(
        loading.resyncs > 0 && per_node.iter().all(|&r| r <= ceiling),
        "early re-syncs per node {per_node:?} (ceiling {ceiling} each)"
    );
    // Back off: once the registries agree, no exchange brings news, and the next sync
    // intervals see regular rounds only.
    c.run_for(sync);
    let after = SyncSent::of(&c, &nodes);
    c.run_for(sync * 4);
    let quiet = SyncSent::of(&c, &nodes).since(after);
    assert_eq!(quiet.resyncs, 0, "{quiet:?}");
    assert_eq!(quiet.hashes, quiet.probes, "{quiet:?}");
}

/// Issue 17: the early re-syncs cost an idle cluster in step nothing. Over ten sync intervals,
/// every registry hash rides a regular round's sync probe, no digest follows (the hashes are
/// equal) and no re-sync starts; then, under a steady trickle of writes that gossip delivers
/// (ten a second, 20 ms links), the exchanges that catch a write in flight push what gossip
/// brings first,
/// which is no news: hardly any re-sync either.
#[test]
fn an_idle_cluster_and_gossiped_writes_start_no_early_resync() {
    let n = 8u32;
    let nodes: Vec<u32> = (0..n).collect();
    // 20 ms one way (a LAN across buildings): writes take tens of milliseconds to spread, so
    // sync rounds catch some in flight.
    let mut c = lan_cluster_at(n, 6, Duration::from_millis(20));
    for k in 0..40 {
        let owner = k % n;
        c.command(owner, Command::Register(spec("web", &format!("w-{k}"))))
            .unwrap();
    }
    let sync = c.config().sync_interval;
    let settled = c.step_until(sync, |c| {
        nodes.iter().all(|&i| {
            c.node(i).unwrap().registry().len() == 40 && c.node(i).unwrap().queue_depth() == 0
        })
    });
    assert!(settled.is_some(), "the writes did not settle");
    c.run_for(sync);
    let before = SyncSent::of(&c, &nodes);
    c.run_for(sync * 10);
    let idle = SyncSent::of(&c, &nodes).since(before);
    println!("idle over {:?}: {idle:?}", sync * 10);
    // One regular round per node per interval (each node's first falls anywhere in it).
    let rounds = u64::from(n) * 10;
    assert!(
        idle.probes >= rounds - u64::from(n) && idle.probes <= rounds + u64::from(n),
        "{idle:?}"
    );
    assert_eq!(
        idle,
        SyncSent {
            probes: idle.probes,
            hashes: idle.probes,
            ..SyncSent::default()
        }
    );
    let before = SyncSent::of(&c, &nodes);
    let tick = Duration::from_millis(100);
    for k in 0..(sync * 10).as_millis() / tick.as_millis() {
        let owner = k as u32 % n;
        // An update of one of the writer's own instances (w-k is node k mod n's).
        let instance = format!("w-{}", owner + n * ((k as u32 / n) % 5));
        let mut s = spec("web", &instance);
        s.port = 9_000 + (k % 1_000) as u16;
        c.command(owner, Command::Register(s)).unwrap();
        c.run_for(tick);
    }
    let trickle = SyncSent::of(&c, &nodes).since(before);
    println!("writing over {:?}: {trickle:?}", sync * 10);
    // The exchanges did catch writes in flight (their hashes differed) ...
    assert!(trickle.digests > 0, "{trickle:?}");
    // ... and what they pushed was rarely news: at most one stray re-sync per node, where a
    // rule that re-synced on a differing hash would start several per interval.
    assert!(trickle.resyncs <= u64::from(n), "{trickle:?}");
}

/// A node at `registry_entries_max` differs from its peers for as long as it is full, and
/// refuses what they push: no news for it, none for them from it, so neither it nor they
/// re-sync early on its account (issue 17: each round with it already costs a push of the
/// buckets it cannot take; early re-syncs must not multiply that).
#[test]
fn a_full_node_starts_no_early_resync() {
    let n = 5u32;
    let nodes: Vec<u32> = (0..n).collect();
    let mut c = lan_cluster(n, 7);
    let full = n - 1;
    let room = 200u64;
    let mut tuning = Tuning::default();
    for (key, value) in [
        ("instances_owned_max", room),
        ("registry_entries_max", room),
    ] {
        let field = find(Naming::File, key).unwrap();
        tuning
            .read(field, Naming::File, Raw::Integer(value as i64))
            .unwrap();
    }
    c.command(full, Command::Configure(tuning)).unwrap();
    let total = 400usize;
    for k in 0..total {
        let owner = k as u32 % (n - 1);
        c.command(owner, Command::Register(spec("bulk", &format!("i-{k}"))))
            .unwrap();
    }
    let sync = c.config().sync_interval;
    let settled = c.step_until(sync * 4, |c| {
        (0..full).all(|i| c.node(i).unwrap().registry().len() == total)
            && nodes.iter().all(|&i| c.node(i).unwrap().queue_depth() == 0)
    });
    assert!(settled.is_some(), "the others did not settle");
    let node = c.node(full).unwrap();
    // The fault took effect: the full node holds its bound and refused the rest.
    assert_eq!(node.registry().len(), room as usize);
    assert!(node.stats().refused_entries_max > 0);
    c.run_for(sync);
    let before = SyncSent::of(&c, &nodes);
    let refused_before = c.node(full).unwrap().stats().refused_entries_max;
    c.run_for(sync * 10);
    let after = SyncSent::of(&c, &nodes).since(before);
    let refused = c.node(full).unwrap().stats().refused_entries_max - refused_before;
    println!(
        "with a full node, over {:?}: {after:?}, refused {refused}",
        sync * 10
    );
    // Rounds with it still differ and push (the waste that is not this change's) ...
    assert!(after.entries_pushed > 0 && refused > 0, "{after:?}");
    // ... but start no early re-sync anywhere.
    assert_eq!(after.resyncs, 0, "{after:?}");
}

#[test]
fn anti_entropy_sends_the_bucket_that_differs_not_the_whole_origin() {
    let mut c = cluster(3);
    let total = 640;
    let lost = 123;
    for k in (0..total).filter(|k| *k != lost) {
        c.command(0, Command::Register(spec("bulk", &format!("i-{k}"))))
            .unwrap();
    }
    let settled = c.step_until(c.config().sync_interval * 4, |c| {
        (0..3).all(|i| c.node(i).unwrap().registry().len() == total - 1)
    });
    assert!(settled.is_some());
    let drained = c.step_until(c.config().sync_interval * 4, |c| {
        (0..3).all(|i| c.node(i).unwrap().queue_depth() == 0)
    });
    assert!(drained.is_some(), "gossip queues never drained");
    // Node 2 misses one entry: nothing reaches it while node 0 writes it and gossip carries
    // it, until the gossip queues have let it go.
    c.net.set_link(0, 2, LinkOverride::Blocked);
    c.net.set_link(1, 2, LinkOverride::Blocked);
    c.command(0, Command::Register(spec("bulk", &format!("i-{lost}"))))
        .unwrap();
    let drained = c.step_until(c.config().sync_interval, |c| {
        holds(c, 1, &format!("i-{lost}")) && (0..2).all(|i| c.node(i).unwrap().queue_depth() == 0)
    });
    assert!(drained.is_some(), "gossip queues never drained");
    // The last transmission may still be in flight when the queues empty: let it arrive at
    // the blocked links and be dropped there before healing them.
    c.run_for(support::LATENCY * 4);
    c.heal();
    assert!(!holds(&c, 2, &format!("i-{lost}")), "the fault took effect");
    let pushed_before: u64 = (0..3)
        .map(|i| c.node(i).unwrap().stats().entries_pushed)
        .sum();
    let paced_before = c.net.stats.paced_sent;
    let back = c.step_until(c.config().sync_interval * 4, |c| {
        holds(c, 2, &format!("i-{lost}"))
    });
    assert!(
        back.is_some(),
        "anti-entropy did not restore the lost entry"
    );
    let pushed = (0..3)
        .map(|i| c.node(i).unwrap().stats().entries_pushed)
        .sum::<u64>()
        - pushed_before;
    // One bucket is about 640 / 64 entries; allow a few rounds of it, far below the origin.
    assert!(
        pushed > 0 && pushed < (total / 8) as u64,
        "pushed {pushed} entries"
    );
    // The repair went out as paced datagrams (a driver spreads them out), at most one per
    // entry pushed; probes, acks and gossip are never paced.
    let paced = c.net.stats.paced_sent - paced_before;
    assert!(
        paced > 0 && paced <= pushed,
        "{paced} paced datagrams for {pushed} entries"
    );
}

/// An entry as a forger would gossip it: `instance` of service `web`, owned by `owner`, at a
/// version older than every node's start (so not taken for one of the owner's own recent writes).
fn forged(instance: &str, owner: &NodeName, check: SpecCheck, writer: &NodeName) -> Entry {
    let mut s = spec("web", instance);
    s.check = check;
    let mut forged = s
        .into_instance(id(instance), owner.clone(), EPOCH_US / 1_000 - 60_000)
        .unwrap();
    forged.health = Health::Passing;
    Entry {
        id: id(instance),
        version: Hlc {
            wall_ms: EPOCH_US / 1_000 - 60_000,
            counter: 0,
            node: writer.clone(),
        },
        instance: Some(Box::new(forged)),
    }
}

fn checks_due(c: &World, node: u32) -> Vec<String> {
    c.events()
        .iter()
        .filter(|(_, i, _)| *i == node)
        .filter_map(|(_, _, e)| match e {
            Event::CheckDue {
                probe: Probe::Http { url, .. },
                ..
            } => Some(url.clone()),
            _ => None,
        })
        .collect()
}

/// Issue 14, finding 6: an entry gossiped in node 1's name, with an HTTP check and a TTL
/// check, must not make node 1 fetch the URL nor enforce the TTL: checks run only for what was
/// registered through the node's own API (or restored from its own data_dir).
#[test]
fn an_entry_gossiped_in_a_nodes_name_makes_it_run_no_check_and_enforce_no_ttl() {
    let mut c = cluster(2);
    let owner = c.name(1).clone();
    let writer = c.name(0).clone();
    let http = SpecCheck::Http {
        url: "http://127.0.0.1:9/secret".into(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
    };
    let ttl = SpecCheck::Ttl {
        ttl: Duration::from_secs(1),
    };
    c.deliver_now(
        0,
        1,
        &[
            Message::Entry(forged("web-http", &owner, http, &writer)),
            Message::Entry(forged("web-ttl", &owner, ttl, &writer)),
        ],
    );
    assert!(holds(&c, 1, "web-http") && holds(&c, 1, "web-ttl"));
    c.command(
        1,
        Command::RunChecks {
            service: None,
            id: None,
        },
    )
    .unwrap();
    c.run_for(Duration::from_secs(5) + c.config().registry_tick * 2);
    assert_eq!(
        checks_due(&c, 1),
        Vec::<String>::new(),
        "node 1 ran a forged check"
    );
    assert_eq!(c.node(1).unwrap().stats().checks_started, 0);
    let ttl_entry = c
        .node(1)
        .unwrap()
        .registry()
        .get(&id("web-ttl"))
        .unwrap()
        .clone();
    assert_eq!(
        ttl_entry.health,
        Health::Passing,
        "node 1 enforced a forged TTL"
    );
}

/// A gossiped version of an instance this node registered, with another check URL, does not
/// change what the node fetches: it runs the check it was given through its API.
#[test]
fn a_gossiped_rewrite_of_an_owned_instance_does_not_change_the_url_it_fetches() {
    let mut c = cluster(2);
    let mut s = spec("web", "web-1");
    s.check = SpecCheck::Http {
        url: "http://127.0.0.1:9/health".into(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
    };
    c.command(1, Command::Register(s)).unwrap();
    c.run_for(Duration::from_millis(1_500));
    assert!(checks_due(&c, 1).contains(&"http://127.0.0.1:9/health".to_string()));
    let owner = c.name(1).clone();
    let writer = c.name(0).clone();
    let mut rewrite = forged(
        "web-1",
        &owner,
        SpecCheck::Http {
            url: "http://169.254.169.254/latest/meta-data".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        },
        &writer,
    );
    rewrite.version = Hlc {
        wall_ms: c.local_now(0).as_millis() + 1,
        counter: 0,
        node: writer,
    };
    c.deliver_now(0, 1, &[Message::Entry(rewrite)]);
    c.run_for(Duration::from_secs(3));
    let urls = checks_due(&c, 1);
    assert!(
        urls.iter().all(|u| u == "http://127.0.0.1:9/health"),
        "node 1 fetched a gossiped URL: {urls:?}"
    );
}
