//! The registry across faults, on the simulator's network: failed owners, a minority without
//! quorum, a heal that comes back one member at a time, and deletions that outlive a partition.

mod support;

use std::time::Duration;

use hera::registry::Entry;
use hera::swim::State;
use hera::wire::{Claim, MemberUpdate, Message};
use hera::Command;
use hera_sim::network::LinkOverride;
use hera_sim::{node_name as name, World};
use support::registry::{cluster, everyone_holds, holds, id, nobody_holds, spec, spread};
use support::suspicion_window;

#[test]
fn instances_of_a_failed_owner_leave_every_node_after_the_failure_not_the_suspicion() {
    let mut c = cluster(5);
    c.command(4, Command::Register(spec("web", "web-4")))
        .unwrap();
    c.run_for(spread(&c));
    assert!(everyone_holds(&c, &[0, 1, 2, 3], "web-4"));
    c.crash(4);
    // While merely suspected, the instance stays.
    let suspected = c.step_until(c.config().probe_interval * 20, |c| {
        (0..4).any(|i| c.member_state(i, 4) == Some(State::Suspect))
    });
    assert!(suspected.is_some());
    assert!(
        everyone_holds(&c, &[0, 1, 2, 3], "web-4"),
        "dropped on a mere suspicion"
    );
    let (_, max) = suspicion_window(c.config(), 5);
    let gone = c.step_until(max + spread(&c) * 3, |c| {
        nobody_holds(c, &[0, 1, 2, 3], "web-4")
    });
    assert!(gone.is_some(), "instances of a failed owner still held");
    assert!(c.all_see(4, State::Failed));
}

/// Five nodes; node 4 registers `web-4`; then {0, 1} are cut off from {2, 3, 4} until node 0
/// holds the whole far side failed. The minority has no quorum. Returns the cluster and the
/// longest suspicion window.
fn split_minority_from_owner() -> (World, Duration) {
    let mut c = cluster(5);
    c.command(4, Command::Register(spec("web", "web-4")))
        .unwrap();
    c.run_for(spread(&c));
    for a in [0, 1] {
        for b in [2, 3, 4] {
            c.net.set_link(a, b, LinkOverride::Blocked);
            c.net.set_link(b, a, LinkOverride::Blocked);
        }
    }
    let (_, max) = suspicion_window(c.config(), 5);
    let bound = c.config().probe_interval * 20 + max * 2;
    let split = c.step_until(bound, |c| {
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
    assert!(!c.node(0).unwrap().quorum().has_quorum);
    c.run_for(c.config().registry_tick * 5);
    let kept = c
        .node(0)
        .unwrap()
        .registry()
        .get(&id("web-4"))
        .cloned()
        .expect("kept without quorum");
    assert!(
        c.node(0).unwrap().is_stale(&kept),
        "kept instances are marked stale"
    );
    // The majority side never lost it.
    assert!(everyone_holds(&c, &[2, 3, 4], "web-4"));

    // The owner dies for real during the partition, then the partition heals: the minority
    // regains quorum and purges what belongs to owners that are still failed.
    c.crash(4);
    c.heal();
    let bound = c.config().reconnect_interval * 3 + c.config().sync_interval * 2 + max * 2;
    let purged = c.step_until(bound, |c| {
        c.node(0).unwrap().quorum().has_quorum && !holds(c, 0, "web-4")
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
    c.heal();
    c.isolate(4);
    let bound = c.config().reconnect_interval * 3 + c.config().sync_interval;
    let majority = c.step_until(bound, |c| {
        c.node(0).unwrap().quorum().has_quorum
            && [2, 3]
                .iter()
                .all(|&j| c.member_state(0, j) == Some(State::Alive))
    });
    assert!(majority.is_some(), "node 0 never saw 2 and 3 back");
    assert_eq!(c.member_state(0, 4), Some(State::Failed));
    // Several registry ticks, well inside a suspicion window.
    c.run_for(c.config().registry_tick * 5);
    assert!(
        holds(&c, 0, "web-4"),
        "purged the instance of a member not yet seen back"
    );

    // 4 comes back: node 0 holds its instance, no longer stale, without any sync round.
    c.heal();
    let back = c.step_until(bound, |c| c.member_state(0, 4) == Some(State::Alive));
    assert!(back.is_some(), "node 0 never saw 4 back");
    let kept = c.node(0).unwrap().registry().get(&id("web-4")).cloned();
    assert!(kept.is_some_and(|x| !c.node(0).unwrap().is_stale(&x)));
}

/// Right after a heal, an owner's entries can reach a node before the news that the owner is
/// back: the node refuses them (a late rumour of a failed owner's instance must not bring it
/// back), and nothing would send them again before an anti-entropy round. So it remembers the
/// owner, and compares registries with it as soon as it sees it back, not by chance.
#[test]
fn an_entry_refused_while_its_owner_was_failed_is_fetched_when_the_owner_returns() {
    let mut c = cluster(6);
    c.isolate(5);
    let (_, max) = suspicion_window(c.config(), 6);
    let failed = c.step_until(c.config().probe_interval * 20 + max * 3, |c| {
        (0..5).all(|i| c.member_state(i, 5) == Some(State::Failed))
    });
    assert!(
        failed.is_some(),
        "the isolated node was not declared failed"
    );
    // Cut off, node 5 registers an instance; its entry reaches node 0, which holds 5 failed.
    c.command(5, Command::Register(spec("web", "web-5")))
        .unwrap();
    let drained = c.step_until(c.config().sync_interval, |c| {
        c.node(5).unwrap().queue_depth() == 0
    });
    assert!(drained.is_some(), "node 5 kept gossiping its entry");
    let entry: Entry = c.node(5).unwrap().registry().entry(&id("web-5")).unwrap();
    c.deliver_now(5, 0, &[Message::Entry(entry)]);
    assert!(!holds(&c, 0, "web-5"), "a failed owner's entry was taken");

    // Node 5 can reach node 0 again (only node 0, so no one else hands the entry over), and
    // node 0 hears that 5 is alive.
    c.heal();
    for j in 1..5 {
        c.net.set_link(5, j, LinkOverride::Blocked);
        c.net.set_link(j, 5, LinkOverride::Blocked);
    }
    let incarnation = c.member_incarnation(0, 5).unwrap().next();
    let profile = c.node(5).unwrap().profile().clone();
    c.deliver_now(
        1,
        0,
        &[Message::Member(MemberUpdate {
            name: name(5),
            incarnation,
            claim: Claim::Alive,
            profile,
        })],
    );
    assert_eq!(c.member_state(0, 5), Some(State::Alive));
    // At once: a round trip or two, within a gossip interval (a sync round is 10 s here).
    let fetched = c.step_until(c.config().gossip_interval, |c| holds(c, 0, "web-5"));
    assert!(
        fetched.is_some(),
        "the refused entry was not fetched when its owner came back"
    );
}

#[test]
fn an_owner_deletes_its_instance_again_when_a_peer_resurrects_it() {
    let mut c = cluster(3);
    c.command(0, Command::Register(spec("web", "web-1")))
        .unwrap();
    c.run_for(spread(&c));
    let old: Entry = c.node(2).unwrap().registry().entry(&id("web-1")).unwrap();
    c.command(0, Command::Deregister { id: id("web-1") })
        .unwrap();
    // Past the grace, every node has collected the tombstone.
    c.run_for(c.config().tombstone_grace + c.config().registry_tick * 2);
    assert!((0..3).all(|i| c.node(i).unwrap().registry().tombstones() == 0));
    // A peer cut off for longer than the grace sends the old instance back.
    c.deliver_now(2, 1, &[Message::Entry(old)]);
    let gone = c.step_until(spread(&c), |c| nobody_holds(c, &[0, 1, 2], "web-1"));
    assert!(gone.is_some(), "a deleted instance came back for good");
    assert_eq!(c.node(0).unwrap().stats().zombies_deleted, 1);
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
    let (_, max) = suspicion_window(c.config(), 4);
    let cut = c.step_until(c.config().probe_interval * 20 + max * 3, |c| {
        c.member_state(1, 3) == Some(State::Failed) && c.member_state(3, 1) == Some(State::Failed)
    });
    assert!(cut.is_some(), "the two sides never held each other failed");
    c.command(1, Command::Deregister { id: id("web-0") })
        .unwrap();
    c.run_for(c.config().tombstone_grace + c.config().registry_tick * 2);
    for i in 0..3 {
        let r = c.node(i).unwrap().registry();
        assert!(r.stored(&id("web-0")).is_none(), "n{i} kept the tombstone");
        assert!(r.grave(&id("web-0")).is_some(), "n{i} kept no grave");
    }
    assert!(holds(&c, 3, "web-0"), "the cut-off node lost the instance");
    c.heal();
    let mut back = false;
    let bound = c.config().reconnect_interval * 3 + c.config().sync_interval * 2;
    let gone = c.step_until(bound, |c| {
        back |= !nobody_holds(c, &[0, 1, 2], "web-0");
        nobody_holds(c, &[0, 1, 2, 3], "web-0")
    });
    assert!(gone.is_some(), "the cut-off node kept the deleted instance");
    assert!(
        !back,
        "the deleted instance came back on the side that deleted it"
    );
    let refused: u64 = (0..3)
        .map(|i| c.node(i).unwrap().stats().zombies_refused)
        .sum();
    assert!(refused > 0);
    assert_eq!(c.node(0).unwrap().stats().zombies_deleted, 0);
    // Settled: all four agree; a grace after the heal nobody keeps a grave.
    c.run_for(c.config().tombstone_grace + c.config().registry_tick * 2);
    for i in 0..4 {
        let r = c.node(i).unwrap().registry();
        assert_eq!((r.graves(), r.tombstones()), (0, 0), "n{i}");
        assert_eq!(r.digest(), c.node(0).unwrap().registry().digest(), "n{i}");
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
    let tomb: Entry = c.node(1).unwrap().registry().entry(&id("web-1")).unwrap();
    assert!(tomb.instance.is_none());
    c.run_for(c.config().tombstone_grace + c.config().registry_tick * 2);
    c.deliver_now(1, 0, &[Message::Entry(tomb)]);
    c.run_for(spread(&c));
    assert!((0..2).all(|i| c.node(i).unwrap().registry().stored(&id("web-1")).is_none()));
}

#[test]
fn a_returning_owner_brings_its_instances_back() {
    let mut c = cluster(4);
    c.command(3, Command::Register(spec("web", "web-3")))
        .unwrap();
    c.run_for(spread(&c));
    c.isolate(3);
    let (_, max) = suspicion_window(c.config(), 4);
    let gone = c.step_until(c.config().probe_interval * 20 + max * 3, |c| {
        nobody_holds(c, &[0, 1, 2], "web-3")
    });
    assert!(
        gone.is_some(),
        "the majority kept a failed owner's instance"
    );
    // Alone, node 3 has no quorum: it keeps the others' view and its own instance.
    assert!(holds(&c, 3, "web-3"));
    c.heal();
    let bound = c.config().reconnect_interval * 3 + c.config().sync_interval;
    let back = c.step_until(bound, |c| everyone_holds(c, &[0, 1, 2, 3], "web-3"));
    assert!(
        back.is_some(),
        "the returning owner's instance did not flow back"
    );
}
