//! The registry in the core, on the same manual-time harness: replication, renewal and
//! expiry, health and maintenance, tombstones, ownership, failed owners with and without
//! quorum, and anti-entropy for a late joiner.

use std::time::Duration;

use super::*;
use crate::names::{InstanceId, ServiceName};
use crate::registry::{Entry, Health, InstanceSpec, SpecCheck};

fn id(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

fn spec(service: &str, instance: &str) -> InstanceSpec {
    let mut s = InstanceSpec::new(ServiceName::new(service).unwrap(), "10.0.0.1", 8080);
    s.id = Some(id(instance));
    s
}

fn holds(c: &Cluster, i: usize, instance: &str) -> bool {
    c.nodes[i]
        .as_ref()
        .is_some_and(|n| n.registry().get(&id(instance)).is_some())
}

fn everyone_holds(c: &Cluster, set: &[usize], instance: &str) -> bool {
    set.iter().all(|&i| holds(c, i, instance))
}

fn nobody_holds(c: &Cluster, set: &[usize], instance: &str) -> bool {
    set.iter().all(|&i| !holds(c, i, instance))
}

fn cluster(n: usize) -> Cluster {
    let mut c = Cluster::new(n, Config::local(), 11);
    c.join_all();
    c
}

/// A few gossip rounds: enough for an eagerly pushed update to reach a small cluster.
fn spread(c: &Cluster) -> Duration {
    c.config.gossip_interval * 10
}

#[test]
fn a_registration_reaches_every_node_within_a_few_round_trips() {
    let mut c = cluster(3);
    c.command(0, Command::Register(spec("web", "web-1")))
        .unwrap();
    // Eager push: no wait for a gossip tick, so a handful of one-way latencies.
    let took = c.run_until_true(spread(&c), |c| everyone_holds(c, &[0, 1, 2], "web-1"));
    let took = took.expect("registration spread");
    assert!(
        took < c.config.gossip_interval,
        "took {took:?}, not bound to the gossip tick"
    );
    let seen = c.node(2).registry().get(&id("web-1")).unwrap().clone();
    assert_eq!(seen.owner, c.names[0]);
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
    // Renewing more often than the liveness keeps it, and costs no cluster traffic.
    for _ in 0..4 {
        c.run_for(liveness / 2);
        let datagrams_before = c.sent.len();
        c.command(0, Command::Renew { id: id("s-1") }).unwrap();
        assert_eq!(
            c.sent.len(),
            datagrams_before,
            "a renewal that changes nothing sends nothing"
        );
        assert!(everyone_holds(&c, &[0, 1, 2], "s-1"));
    }
    // Silence: gone everywhere after the liveness plus a tick and a few gossip rounds.
    let bound = liveness + c.config.registry_tick + spread(&c);
    let gone = c.run_until_true(bound, |c| nobody_holds(c, &[0, 1, 2], "s-1"));
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
    let health = |c: &Cluster, i: usize| c.node(i).registry().get(&id("api-1")).map(|x| x.health);
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
        .run_until_true(spread(&c), |c| health(c, 0) == Some(Health::Passing))
        .is_some());
    // No report within the TTL: critical everywhere.
    let bound = ttl + c.config.registry_tick + spread(&c);
    assert!(c
        .run_until_true(bound, |c| health(c, 0) == Some(Health::Critical))
        .is_some());
    assert_eq!(
        c.node(2).registry().get(&id("api-1")).unwrap().output.0,
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
    let offline = |c: &Cluster, i: usize| {
        c.node(i)
            .registry()
            .get(&id("web-1"))
            .is_some_and(|x| !x.online)
    };
    assert!(c
        .run_until_true(spread(&c), |c| (0..3).all(|i| offline(c, i)))
        .is_some());
    let x = c.node(0).registry().get(&id("web-1")).unwrap().clone();
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
        .run_until_true(spread(&c), |c| (0..3).all(|i| !offline(c, i)))
        .is_some());
}

#[test]
fn deregistration_is_final_and_an_old_version_does_not_resurrect_it() {
    let mut c = cluster(3);
    c.command(0, Command::Register(spec("web", "web-1")))
        .unwrap();
    c.run_for(spread(&c));
    let old: Entry = c.node(2).registry().entry(&id("web-1")).unwrap();
    c.command(1, Command::Deregister { id: id("web-1") })
        .unwrap();
    assert!(c
        .run_until_true(spread(&c), |c| nobody_holds(c, &[0, 1, 2], "web-1"))
        .is_some());
    // A slow peer's old version arrives late: the tombstone is newer, nothing comes back.
    c.inject(2, addr(0), &[Message::Entry(old)]);
    c.run_for(spread(&c));
    assert!(nobody_holds(&c, &[0, 1, 2], "web-1"));
    assert_eq!(
        c.command(0, Command::Deregister { id: id("web-1") }),
        Err(CommandError::UnknownInstance { id: id("web-1") })
    );
}

#[test]
fn a_write_on_another_node_moves_ownership() {
    let mut c = cluster(3);
    c.command(0, Command::Register(spec("web", "web-1")))
        .unwrap();
    c.run_for(spread(&c));
    c.command(2, Command::Renew { id: id("web-1") }).unwrap();
    let owner_is_2 = |c: &Cluster| {
        (0..3).all(|i| c.node(i).registry().get(&id("web-1")).unwrap().owner == c.names[2])
    };
    assert!(c.run_until_true(spread(&c), owner_is_2).is_some());
}

#[test]
fn an_id_in_use_by_another_service_is_refused() {
    let mut c = cluster(2);
    c.command(0, Command::Register(spec("web", "x-1"))).unwrap();
    assert_eq!(
        c.command(0, Command::Register(spec("db", "x-1"))),
        Err(CommandError::IdInUse {
            id: id("x-1"),
            service: ServiceName::new("web").unwrap()
        })
    );
}

#[test]
fn instances_of_a_failed_owner_leave_every_node_after_the_failure_not_the_suspicion() {
    let mut c = cluster(5);
    c.command(4, Command::Register(spec("web", "web-4")))
        .unwrap();
    c.run_for(spread(&c));
    assert!(everyone_holds(&c, &[0, 1, 2, 3], "web-4"));
    c.crash(4);
    // While merely suspected, the instance stays.
    let suspected = c.run_until_true(c.config.probe_interval * 20, |c| {
        (0..4).any(|i| c.member_state(i, 4) == Some(State::Suspect))
    });
    assert!(suspected.is_some());
    assert!(
        everyone_holds(&c, &[0, 1, 2, 3], "web-4"),
        "dropped on a mere suspicion"
    );
    let (_, max) = suspicion_window(&c.config, 5);
    let gone = c.run_until_true(max + spread(&c) * 3, |c| {
        nobody_holds(c, &[0, 1, 2, 3], "web-4")
    });
    assert!(gone.is_some(), "instances of a failed owner still held");
    assert!(c.all_see(4, State::Failed));
}

/// Five nodes; node 4 registers `web-4`; then {0, 1} are cut off from {2, 3, 4} until node 0
/// holds the whole far side failed. The minority has no quorum. Returns the cluster and the
/// longest suspicion window.
fn split_minority_from_owner() -> (Cluster, Duration) {
    let mut c = cluster(5);
    c.command(4, Command::Register(spec("web", "web-4")))
        .unwrap();
    c.run_for(spread(&c));
    for a in [0, 1] {
        for b in [2, 3, 4] {
            c.cut_link(a, b);
            c.cut_link(b, a);
        }
    }
    let (_, max) = suspicion_window(&c.config, 5);
    let bound = c.config.probe_interval * 20 + max * 2;
    let split = c.run_until_true(bound, |c| {
        [2, 3, 4]
            .iter()
            .all(|&j| c.member_state(0, j) == Some(State::Failed))
    });
    assert!(
        split.is_some(),
        "the minority never marked the far side failed"
    );
    (c, max)
}

#[test]
fn the_minority_side_keeps_unreachable_owners_instances_stale_then_purges_them() {
    let (mut c, max) = split_minority_from_owner();
    assert!(!c.node(0).quorum().has_quorum);
    c.run_for(c.config.registry_tick * 5);
    let kept = c
        .node(0)
        .registry()
        .get(&id("web-4"))
        .cloned()
        .expect("kept without quorum");
    assert!(c.node(0).is_stale(&kept), "kept instances are marked stale");
    // The majority side never lost it.
    assert!(everyone_holds(&c, &[2, 3, 4], "web-4"));

    // The owner dies for real during the partition, then the partition heals: the minority
    // regains quorum and purges what belongs to owners that are still failed.
    c.crash(4);
    c.cut.clear();
    let bound = c.config.reconnect_interval * 3 + c.config.sync_interval * 2 + max * 2;
    let purged = c.run_until_true(bound, |c| {
        c.node(0).quorum().has_quorum && !holds(c, 0, "web-4")
    });
    assert!(
        purged.is_some(),
        "stale instances of a still-failed owner were not purged"
    );
}

/// A healed partition comes back one member at a time. The cut-off side regains an alive
/// majority before it has seen every far member back, and must not purge the instances of
/// those it still holds failed at that moment: they are on their way back, and nothing would
/// send their instances again before an anti-entropy round.
#[test]
fn a_side_that_regains_quorum_keeps_the_instances_of_members_not_yet_seen_back() {
    let (mut c, max) = split_minority_from_owner();
    c.run_for(max);
    assert!(holds(&c, 0, "web-4"), "kept (stale) without quorum");

    // The partition heals, but node 0 sees 2 and 3 back well before 4 (here: 4 stays
    // unreachable for a while; it has not failed).
    c.isolate(4);
    c.cut.clear();
    let bound = c.config.reconnect_interval * 3 + c.config.sync_interval;
    let majority = c.run_until_true(bound, |c| {
        c.node(0).quorum().has_quorum
            && [2, 3]
                .iter()
                .all(|&j| c.member_state(0, j) == Some(State::Alive))
    });
    assert!(majority.is_some(), "node 0 never saw 2 and 3 back");
    assert_eq!(c.member_state(0, 4), Some(State::Failed));
    // Several registry ticks, well inside a suspicion window.
    c.run_for(c.config.registry_tick * 5);
    assert!(
        holds(&c, 0, "web-4"),
        "purged the instance of a member not yet seen back"
    );

    // 4 comes back: node 0 holds its instance, no longer stale, without any sync round.
    c.reconnect(4);
    let back = c.run_until_true(bound, |c| c.member_state(0, 4) == Some(State::Alive));
    assert!(back.is_some(), "node 0 never saw 4 back");
    let kept = c.node(0).registry().get(&id("web-4")).cloned();
    assert!(kept.is_some_and(|x| !c.node(0).is_stale(&x)));
}

/// Right after a heal, an owner's entries can reach a node before the news that the owner is
/// back: the node refuses them (a late rumour of a failed owner's instance must not bring it
/// back), and nothing would send them again before an anti-entropy round. So it remembers the
/// owner, and compares registries with it as soon as it sees it back, not by chance.
#[test]
fn an_entry_refused_while_its_owner_was_failed_is_fetched_when_the_owner_returns() {
    let mut c = cluster(6);
    c.isolate(5);
    let (_, max) = suspicion_window(&c.config, 6);
    let failed = c.run_until_true(c.config.probe_interval * 20 + max * 3, |c| {
        (0..5).all(|i| c.member_state(i, 5) == Some(State::Failed))
    });
    assert!(
        failed.is_some(),
        "the isolated node was not declared failed"
    );
    // Cut off, node 5 registers an instance; its entry reaches node 0, which holds 5 failed.
    c.command(5, Command::Register(spec("web", "web-5")))
        .unwrap();
    let drained = c.run_until_true(c.config.sync_interval, |c| c.node(5).queue_depth() == 0);
    assert!(drained.is_some(), "node 5 kept gossiping its entry");
    let entry: Entry = c.node(5).registry().entry(&id("web-5")).unwrap();
    c.inject(0, addr(5), &[Message::Entry(entry)]);
    assert!(!holds(&c, 0, "web-5"), "a failed owner's entry was taken");

    // Node 5 can reach node 0 again (only node 0, so no one else hands the entry over), and
    // node 0 hears that 5 is alive.
    c.reconnect(5);
    for j in 1..5 {
        c.cut_link(5, j);
        c.cut_link(j, 5);
    }
    let incarnation = c.member_incarnation(0, 5).unwrap() + 1;
    let profile = c.node(5).profile().clone();
    c.inject(
        0,
        addr(1),
        &[Message::Member(MemberUpdate {
            name: name(5),
            incarnation,
            claim: Claim::Alive,
            profile,
        })],
    );
    assert_eq!(c.member_state(0, 5), Some(State::Alive));
    // At once: a round trip or two, within a gossip interval (a sync round is 10 s here).
    let fetched = c.run_until_true(c.config.gossip_interval, |c| holds(c, 0, "web-5"));
    assert!(
        fetched.is_some(),
        "the refused entry was not fetched when its owner came back"
    );
}

#[test]
fn a_node_that_joins_late_converges_to_thousands_of_entries() {
    let mut c = cluster(3);
    let total = 2_000;
    for k in 0..total {
        let owner = k % 3;
        c.command(owner, Command::Register(spec("bulk", &format!("i-{k}"))))
            .unwrap();
    }
    // A burst this size outruns gossip's retransmit budget; anti-entropy completes it.
    let settled = c.run_until_true(c.config.sync_interval * 4, |c| {
        (0..3).all(|i| c.node(i).registry().len() == total)
    });
    assert!(
        settled.is_some(),
        "the three nodes did not converge on the burst"
    );
    // A fourth node joins through node 0 and must end up with all of them.
    c.start(3, name(3), 77);
    c.command(
        3,
        Command::Join {
            seeds: vec![addr(0)],
        },
    )
    .unwrap();
    let bound = c.config.sync_interval * 3;
    let took = c.run_until_true(bound, |c| c.node(3).registry().len() == total);
    assert!(
        took.is_some(),
        "late joiner holds {} of {total}",
        c.node(3).registry().len()
    );
}

#[test]
fn anti_entropy_sends_the_bucket_that_differs_not_the_whole_origin() {
    let mut c = cluster(3);
    let total = 640;
    for k in 0..total {
        c.command(0, Command::Register(spec("bulk", &format!("i-{k}"))))
            .unwrap();
    }
    let settled = c.run_until_true(c.config.sync_interval * 4, |c| {
        (0..3).all(|i| c.node(i).registry().len() == total)
    });
    assert!(settled.is_some());
    let drained = c.run_until_true(c.config.sync_interval * 4, |c| {
        (0..3).all(|i| c.node(i).queue_depth() == 0)
    });
    assert!(drained.is_some(), "gossip queues never drained");
    // Node 2 loses one entry (as if its gossip had never arrived).
    let lost = id("i-123");
    assert!(c.node_mut(2).catalog.registry.forget(&lost));
    let pushed_before: u64 = (0..3).map(|i| c.node(i).stats().entries_pushed).sum();
    let back = c.run_until_true(c.config.sync_interval * 4, |c| holds(c, 2, "i-123"));
    assert!(
        back.is_some(),
        "anti-entropy did not restore the lost entry"
    );
    let pushed = (0..3)
        .map(|i| c.node(i).stats().entries_pushed)
        .sum::<u64>()
        - pushed_before;
    // One bucket is about 640 / 64 entries; allow a few rounds of it, far below the origin.
    assert!(
        pushed > 0 && pushed < (total / 8) as u64,
        "pushed {pushed} entries"
    );
}

#[test]
fn an_owner_deletes_its_instance_again_when_a_peer_resurrects_it() {
    let mut c = cluster(3);
    c.command(0, Command::Register(spec("web", "web-1")))
        .unwrap();
    c.run_for(spread(&c));
    let old: Entry = c.node(2).registry().entry(&id("web-1")).unwrap();
    c.command(0, Command::Deregister { id: id("web-1") })
        .unwrap();
    // Past the grace, every node has collected the tombstone.
    c.run_for(c.config.tombstone_grace + c.config.registry_tick * 2);
    assert!((0..3).all(|i| c.node(i).registry().tombstones() == 0));
    // A peer cut off for longer than the grace sends the old instance back.
    c.inject(1, addr(2), &[Message::Entry(old)]);
    let gone = c.run_until_true(spread(&c), |c| nobody_holds(c, &[0, 1, 2], "web-1"));
    assert!(gone.is_some(), "a deleted instance came back for good");
    assert_eq!(c.node(0).stats().zombies_deleted, 1);
}

/// Finding 5: a node cut off for longer than the grace holds, alive, an instance deleted on
/// the other side by a node other than its owner. The tombstone is collected everywhere
/// before the heal; the others keep its grave, refuse the old version when it comes back,
/// and answer with the tombstone, so the deletion wins on the returning node too. No node
/// that had seen the deletion holds the instance alive again, even for a moment; a grace
/// later the graves are gone.
#[test]
fn a_deletion_outlives_a_partition_longer_than_the_grace() {
    let mut c = cluster(4);
    c.command(0, Command::Register(spec("web", "web-0")))
        .unwrap();
    c.run_for(spread(&c));
    assert!(everyone_holds(&c, &[0, 1, 2, 3], "web-0"));
    c.isolate(3);
    let (_, max) = suspicion_window(&c.config, 4);
    let cut = c.run_until_true(c.config.probe_interval * 20 + max * 3, |c| {
        c.member_state(1, 3) == Some(State::Failed) && c.member_state(3, 1) == Some(State::Failed)
    });
    assert!(cut.is_some(), "the two sides never held each other failed");
    c.command(1, Command::Deregister { id: id("web-0") })
        .unwrap();
    c.run_for(c.config.tombstone_grace + c.config.registry_tick * 2);
    for i in 0..3 {
        let r = c.node(i).registry();
        assert!(r.stored(&id("web-0")).is_none(), "n{i} kept the tombstone");
        assert!(r.grave(&id("web-0")).is_some(), "n{i} kept no grave");
    }
    assert!(holds(&c, 3, "web-0"), "the cut-off node lost the instance");
    c.reconnect(3);
    let mut back = false;
    let bound = c.config.reconnect_interval * 3 + c.config.sync_interval * 2;
    let gone = c.run_until_true(bound, |c| {
        back |= !nobody_holds(c, &[0, 1, 2], "web-0");
        nobody_holds(c, &[0, 1, 2, 3], "web-0")
    });
    assert!(gone.is_some(), "the cut-off node kept the deleted instance");
    assert!(
        !back,
        "the deleted instance came back on the side that deleted it"
    );
    let refused: u64 = (0..3).map(|i| c.node(i).stats().zombies_refused).sum();
    assert!(refused > 0);
    assert_eq!(c.node(0).stats().zombies_deleted, 0);
    // Settled: all four agree; a grace after the heal nobody keeps a grave.
    c.run_for(c.config.tombstone_grace + c.config.registry_tick * 2);
    for i in 0..4 {
        let r = c.node(i).registry();
        assert_eq!((r.graves(), r.tombstones()), (0, 0), "n{i}");
        assert_eq!(r.digest(), c.node(0).registry().digest(), "n{i}");
    }
    assert!(nobody_holds(&c, &[0, 1, 2, 3], "web-0"));
}

#[test]
fn collected_tombstones_do_not_come_back() {
    let mut c = cluster(2);
    c.command(0, Command::Register(spec("web", "web-1")))
        .unwrap();
    c.run_for(spread(&c));
    c.command(0, Command::Deregister { id: id("web-1") })
        .unwrap();
    c.run_for(spread(&c));
    let tomb: Entry = c.node(1).registry().entry(&id("web-1")).unwrap();
    assert!(tomb.instance.is_none());
    c.run_for(c.config.tombstone_grace + c.config.registry_tick * 2);
    c.inject(0, addr(1), &[Message::Entry(tomb)]);
    c.run_for(spread(&c));
    assert!((0..2).all(|i| c.node(i).registry().stored(&id("web-1")).is_none()));
}

#[test]
fn a_returning_owner_brings_its_instances_back() {
    let mut c = cluster(4);
    c.command(3, Command::Register(spec("web", "web-3")))
        .unwrap();
    c.run_for(spread(&c));
    c.isolate(3);
    let (_, max) = suspicion_window(&c.config, 4);
    let gone = c.run_until_true(c.config.probe_interval * 20 + max * 3, |c| {
        nobody_holds(c, &[0, 1, 2], "web-3")
    });
    assert!(
        gone.is_some(),
        "the majority kept a failed owner's instance"
    );
    // Alone, node 3 has no quorum: it keeps the others' view and its own instance.
    assert!(holds(&c, 3, "web-3"));
    c.reconnect(3);
    let bound = c.config.reconnect_interval * 3 + c.config.sync_interval;
    let back = c.run_until_true(bound, |c| everyone_holds(c, &[0, 1, 2, 3], "web-3"));
    assert!(
        back.is_some(),
        "the returning owner's instance did not flow back"
    );
}

/// An entry as a forger would gossip it: `instance` of service `web`, owned by `owner`, at a
/// version older than every node's start (so not taken for one of the owner's own recent writes).
fn forged(instance: &str, owner: &NodeName, check: SpecCheck, writer: &NodeName) -> Entry {
    let mut s = spec("web", instance);
    s.check = check;
    let mut forged = s
        .into_instance(id(instance), owner.clone(), EPOCH.as_millis() - 60_000)
        .unwrap();
    forged.health = Health::Passing;
    Entry {
        id: id(instance),
        version: crate::registry::Hlc {
            wall_ms: EPOCH.as_millis() - 60_000,
            counter: 0,
            node: writer.clone(),
        },
        instance: Some(Box::new(forged)),
    }
}

fn checks_due(c: &Cluster, node: usize) -> Vec<String> {
    c.events
        .iter()
        .filter(|(_, i, _)| *i == node)
        .filter_map(|(_, _, e)| match e {
            Event::CheckDue {
                probe: crate::node::Probe::Http { url, .. },
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
    let owner = c.names[1].clone();
    let writer = c.names[0].clone();
    let http = SpecCheck::Http {
        url: "http://127.0.0.1:9/secret".into(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
    };
    let ttl = SpecCheck::Ttl {
        ttl: Duration::from_secs(1),
    };
    c.inject(
        1,
        addr(0),
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
    c.run_for(Duration::from_secs(5) + c.config.registry_tick * 2);
    assert_eq!(
        checks_due(&c, 1),
        Vec::<String>::new(),
        "node 1 ran a forged check"
    );
    assert_eq!(c.node(1).stats().checks_started, 0);
    let ttl_entry = c.node(1).registry().get(&id("web-ttl")).unwrap().clone();
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
    let owner = c.names[1].clone();
    let writer = c.names[0].clone();
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
    rewrite.version = crate::registry::Hlc {
        wall_ms: c.now.as_millis() + 1,
        counter: 0,
        node: writer,
    };
    c.inject(1, addr(0), &[Message::Entry(rewrite)]);
    c.run_for(Duration::from_secs(3));
    let urls = checks_due(&c, 1);
    assert!(
        urls.iter().all(|u| u == "http://127.0.0.1:9/health"),
        "node 1 fetched a gossiped URL: {urls:?}"
    );
}
