//! A member's life on the simulator's network: joining (backoff, the join transfer), leaving,
//! restarting, a name already taken, and a partition that heals.

mod support;

use std::time::Duration;

use hera::bounded::BoundedVec;
use hera::config::Config;
use hera::names::Label;
use hera::node::{Event, Lifecycle};
use hera::swim::State;
use hera::wire::{self, Claim, Incarnation, MemberUpdate, Message, Ping, Profile};
use hera::{Command, CommandError};
use hera_sim::network::LinkOverride;
use hera_sim::observe::Sent;
use hera_sim::{index_of_addr, node_name, World};
use support::{cluster, join, join_all, suspicion_window, us};

/// A graceful leave (memberlist's `left`): the others mark the leaver left, never suspect or
/// fail it; the leaver reports `LeaveComplete` and from then on ignores every input.
#[test]
fn graceful_leave_is_left_never_failed() {
    let config = Config::local();
    let mut w = cluster(4, config.clone(), 9);
    join_all(&mut w);
    let start = w.now_us();
    w.command(3, Command::Leave).unwrap();
    let bound = config.leave_propagate + config.probe_interval;
    let took = w.step_until(bound, |w| w.all_see(3, State::Left));
    assert!(took.is_some(), "the leave did not spread within {bound:?}");
    let took = w.step_until(bound, |w| {
        w.node(3).unwrap().lifecycle() == Lifecycle::Stopped
    });
    assert!(took.is_some(), "the leaver did not stop within {bound:?}");
    let done = w
        .events_since(start)
        .filter(|(_, i, e)| *i == 3 && *e == Event::LeaveComplete)
        .map(|(at, ..)| *at)
        .collect::<Vec<_>>();
    assert_eq!(done.len(), 1);
    assert!(done[0] >= start + us(config.leave_propagate));

    // Long enough for any stray suspicion to have become a failure.
    w.run_for(config.probe_interval * 8 + suspicion_window(&config, 4).1);
    assert!(w.all_see(3, State::Left));
    assert!(w.suspected(3).is_empty() && w.failed(3).is_empty());
    for o in 0..3 {
        assert!(w
            .events_since(start)
            .any(|(_, i, e)| *i == o && *e == Event::MemberLeft { name: node_name(3) }));
    }

    // Inert: sends nothing, answers nothing, has no deadline, refuses commands.
    assert!(w.sent_since(done[0]).all(|s| s.from != 3));
    assert_eq!(w.node(3).unwrap().poll_timeout(), None);
    w.deliver_now(
        0,
        3,
        &[Message::Ping(Ping {
            seq: 1,
            target: node_name(3),
        })],
    );
    let later = config.probe_interval;
    w.with_node(3, |n, now| n.handle_timeout(now + later));
    assert!(w.sent_since(done[0]).all(|s| s.from != 3));
    assert_eq!(
        w.command(3, Command::Leave).err(),
        Some(CommandError::NotRunning)
    );
}

/// Joining retries until a seed answers, the wait doubling from `join_retry_interval` up to
/// `join_retry_max`; the first answer completes the join.
#[test]
fn join_retries_with_doubling_backoff_until_the_seed_answers() {
    let config = Config::local();
    let mut w = cluster(2, config.clone(), 10);
    w.net.set_link(0, 1, LinkOverride::Blocked);
    w.net.set_link(1, 0, LinkOverride::Blocked);
    join(&mut w, 1);

    let attempts = |w: &World| -> Vec<u64> {
        w.sent()
            .iter()
            .filter(|s| s.from == 1 && s.to == w.addr(0))
            .filter(|s| {
                s.messages().iter().any(|m| {
                    matches!(m, Message::PushPull(p) if p.reply_wanted
                        && p.members.0.iter().any(|u| u.name == node_name(1)))
                })
            })
            .map(|s| s.at)
            .collect()
    };
    // Enough attempts to see the wait reach its cap twice.
    let mut expected = Vec::new();
    let mut wait = config.join_retry_interval;
    while expected
        .iter()
        .filter(|w| **w == config.join_retry_max)
        .count()
        < 2
    {
        expected.push(wait.min(config.join_retry_max));
        wait *= 2;
    }
    let total: Duration = expected.iter().sum();
    let took = w.step_until(total + config.join_retry_max, |w| {
        attempts(w).len() > expected.len()
    });
    assert!(took.is_some());
    assert!(w
        .events()
        .iter()
        .all(|(_, _, e)| !matches!(e, Event::Joined { .. })));

    w.heal();
    let via = w.addr(0);
    let took = w.step_until(config.join_retry_max + config.probe_interval, |w| {
        w.events()
            .iter()
            .any(|(_, i, e)| *i == 1 && *e == Event::Joined { via })
    });
    assert!(
        took.is_some(),
        "the join did not complete once the seed was reachable"
    );
    w.run_for(config.probe_interval);
    assert!(w.all_alive(&[0, 1]));

    let times = attempts(&w);
    let waits: Vec<Duration> = times
        .windows(2)
        .map(|t| Duration::from_micros(t[1] - t[0]))
        .collect();
    assert_eq!(
        waits[..expected.len()],
        expected[..],
        "all waits: {waits:?}"
    );
}

/// SWIM §4.2 on restart: a node that comes back under the same name and address starts at
/// incarnation 0, learns from the cluster that it was declared failed, refutes with a higher
/// incarnation, and is alive everywhere; its stale failure is not resurrected.
#[test]
fn restarted_node_takes_over_with_a_higher_incarnation() {
    let config = Config::local();
    let mut w = cluster(4, config.clone(), 11);
    join_all(&mut w);
    w.crash(3);
    let bound = config.probe_interval * 8 + suspicion_window(&config, 4).1;
    assert!(w
        .step_until(bound, |w| w.all_see(3, State::Failed))
        .is_some());

    let restarted = w.now_us();
    w.start(3);
    assert_eq!(w.node(3).unwrap().incarnation(), Incarnation::ZERO);
    join(&mut w, 3);
    let bound = config.probe_interval * 4;
    let took = w.step_until(bound, |w| {
        let inc = w.node(3).unwrap().incarnation();
        inc != Incarnation::ZERO
            && w.all_alive(&[0, 1, 2, 3])
            && (0..3).all(|o| w.member_incarnation(o, 3) == Some(inc))
    });
    assert!(
        took.is_some(),
        "the restarted node was not alive everywhere within {bound:?}"
    );
    assert!(w
        .events_since(restarted)
        .any(|(_, i, e)| *i == 3 && matches!(e, Event::Refuted { .. })));
    w.run_for(suspicion_window(&config, 4).1);
    assert!(w.all_alive(&[0, 1, 2, 3]));
}

/// Names are unique: a second node claiming a live member's name from another address is
/// refused with `NameConflict`, and the original stays alive at its own address everywhere.
/// (A twin that joins through a seed stands down by itself, see the core's
/// `a_twin_refuses_to_join_and_names_the_holder`; this is the claim of one that never asked,
/// gossiped above the holder's incarnation.)
#[test]
fn name_conflict_is_refused() {
    let config = Config::local();
    let mut w = cluster(3, config.clone(), 12);
    join_all(&mut w);
    // The claimant's address: a slot of the world that never starts.
    let claimant = w.add_node();
    let start = w.now_us();
    let mut profile = w.node(0).unwrap().member_profile(&node_name(1)).unwrap();
    profile.addr = w.addr(claimant);
    let claim = Message::Member(MemberUpdate {
        name: node_name(1),
        incarnation: w.member_incarnation(0, 1).unwrap().next(),
        claim: Claim::Alive,
        profile,
    });
    for o in [0, 2] {
        w.deliver_now(claimant, o, std::slice::from_ref(&claim));
    }
    w.run_for(config.sync_interval * 2);

    let conflict = Event::NameConflict {
        name: node_name(1),
        known: w.addr(1),
        claimed: w.addr(claimant),
    };
    let refused = w
        .events_since(start)
        .any(|(_, i, e)| [0, 2].contains(i) && *e == conflict);
    assert!(refused, "no member reported the conflict");
    for o in [0, 2] {
        let m = w.node(o).unwrap().member(&node_name(1)).unwrap();
        assert_eq!(
            (m.state, m.addr()),
            (State::Alive, w.addr(1)),
            "seen by n{o}"
        );
    }
    assert!(w.suspected(1).is_empty() && w.failed(1).is_empty());
    assert_eq!(w.node(1).unwrap().lifecycle(), Lifecycle::Active);
}

/// Healing (SPEC §1): after a partition long enough for each side to fail the other, reconnect
/// attempts to failed members and push-pull bring every node back to alive everywhere within
/// a reconnect interval and a few anti-entropy rounds.
#[test]
fn partition_heals_through_reconnect_and_push_pull() {
    let config = Config::local();
    let n = 6;
    let mut w = cluster(n, config.clone(), 13);
    join_all(&mut w);
    let (left, right) = ([0, 1, 2], [3, 4, 5]);
    for a in left {
        for b in right {
            w.net.set_link(a, b, LinkOverride::Blocked);
            w.net.set_link(b, a, LinkOverride::Blocked);
        }
    }
    let bound = config.probe_interval * (2 * n as u32) + suspicion_window(&config, n).1 * 2;
    let split = w.step_until(bound, |w| {
        left.iter().all(|&a| {
            right.iter().all(|&b| {
                w.member_state(a, b) == Some(State::Failed)
                    && w.member_state(b, a) == Some(State::Failed)
            })
        })
    });
    assert!(
        split.is_some(),
        "the sides did not fail each other within {bound:?}"
    );
    assert!(
        w.all_alive(&left) && w.all_alive(&right),
        "each side stays whole"
    );

    w.heal();
    let all: Vec<u32> = (0..n as u32).collect();
    // Some node's reconnect tick comes within one reconnect interval; its sync probe starts a
    // push-pull across, whose refutations gossip on; anti-entropy mops up the rest.
    let healed_at = w.now_us();
    let bound = config.reconnect_interval + config.sync_interval * 2;
    let healed = w.step_until(bound, |w| w.all_alive(&all));
    assert!(healed.is_some(), "not healed within {bound:?}");
    let across = |s: &Sent| index_of_addr(s.to).is_some_and(|to| (to < 3) != (s.from < 3));
    let push_pulls = w
        .sent_since(healed_at)
        .filter(|s| across(s))
        .flat_map(Sent::messages)
        .filter(|m| matches!(m, Message::PushPull(_)))
        .count();
    assert!(push_pulls > 0, "healed without a push-pull across");
}

/// A newcomer learns the whole table from its seed's answer to its join and passes none of it
/// on (nothing in it is news to the cluster); the cluster still learns of the newcomer, and a
/// stranger learnt from any other push-pull is gossiped as before.
#[test]
fn a_join_transfer_is_believed_but_not_gossiped_on() {
    let config = Config::local();
    let n = 12;
    let mut w = cluster(n, config.clone(), 21);
    join_all(&mut w);
    let quiet = w.step_until(config.probe_interval * 30, |w| {
        (0..n as u32).all(|i| w.node(i).unwrap().queue_depth() == 0)
    });
    assert!(quiet.is_some(), "queues never drained after the join");

    let start = w.now_us();
    let newcomer = w.add_node();
    w.start(newcomer);
    join(&mut w, newcomer);
    let joined = w.step_until(config.probe_interval, |w| {
        w.events_since(start)
            .any(|(_, i, e)| *i == newcomer && matches!(e, Event::Joined { .. }))
    });
    assert!(joined.is_some(), "the newcomer never joined");
    // It holds every member (the transfer was believed) and queues at most its own record.
    let node = w.node(newcomer).unwrap();
    assert_eq!(node.counts().alive, n);
    assert!(
        node.queue_depth() <= 1,
        "queued {} after the join",
        node.queue_depth()
    );
    let all: Vec<u32> = (0..=newcomer).collect();
    let bound = config.probe_interval * 10;
    assert!(w.step_until(bound, |w| w.all_alive(&all)).is_some());
    let passed_on = w
        .sent_since(start)
        .filter(|s| s.from == newcomer)
        .flat_map(Sent::messages)
        .filter(|m| matches!(m, Message::Member(u) if u.name != node_name(newcomer)))
        .count();
    assert_eq!(passed_on, 0, "the newcomer gossiped others' records");

    // The same records from a push-pull that answers no join of ours are gossiped on.
    let stranger = w.add_node();
    let record = MemberUpdate {
        name: node_name(stranger),
        incarnation: Incarnation::ZERO,
        claim: Claim::Alive,
        profile: Profile {
            addr: w.addr(stranger),
            dc: Label::new("dc1").unwrap(),
            tags: BoundedVec::default(),
        },
    };
    w.deliver_now(
        3,
        newcomer,
        &[Message::PushPull(wire::PushPull {
            reply_wanted: false,
            members: BoundedVec::new(vec![record]),
        })],
    );
    assert_eq!(
        w.node(newcomer).unwrap().queue_depth(),
        1,
        "a synced stranger was not queued"
    );
}
