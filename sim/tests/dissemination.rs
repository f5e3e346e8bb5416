//! Dissemination on the simulator's network: datagram budgets under long queues and large
//! tables, bounded retransmits, and the core's determinism.

mod support;

use hera::bounded::BoundedString;
use hera::config::Config;
use hera::names::{InstanceId, Label, NodeName, ServiceName};
use hera::node::Event;
use hera::registry::InstanceSpec;
use hera::swim::gossip::retransmit_limit;
use hera::swim::State;
use hera::wire::{Claim, Incarnation, MemberUpdate, Message, MessageKind, Tag};
use hera::Command;
use hera_sim::observe::Sent;
use hera_sim::{node_name, World};
use support::{cluster, join, join_all, LATENCY};

/// SPEC §1: every datagram fits the MTU budget, even with long dissemination queues from many
/// members joining at once (a logging world checks every datagram of every test).
#[test]
fn mass_join_keeps_every_datagram_within_budget() {
    let config = Config::local();
    let n = 40;
    let mut w = World::manual(n, config.clone(), 14, LATENCY);
    // Tags make each alive update ~150 bytes, so a queue of n of them overflows any datagram.
    for i in 0..n as u32 {
        let tags = (0..4)
            .map(|t| Tag {
                key: Label::new(&format!("key{t}")).unwrap(),
                value: BoundedString(format!("value-{t}-of-{}", node_name(i))),
            })
            .collect();
        w.set_tags(i, tags);
        w.start(i);
    }
    let mut deepest = 0;
    for i in 1..n as u32 {
        join(&mut w, i);
    }
    let all: Vec<u32> = (0..n as u32).collect();
    // As in `join_all`: gossip, then anti-entropy for what gossip missed.
    let bound = config.probe_interval * 20 + config.sync_interval * 2;
    let took = w.step_until(bound, |w| {
        deepest = all
            .iter()
            .map(|&i| w.node(i).unwrap().queue_depth())
            .fold(deepest, usize::max);
        all.iter()
            .all(|&i| w.node(i).unwrap().counts().alive == n - 1)
            && w.all_alive(&all)
    });
    assert!(
        took.is_some(),
        "{n} nodes did not converge within {bound:?}"
    );
    // The fault took effect: queues were long and datagrams were filled towards the budget.
    assert!(deepest >= n / 2, "the deepest queue held only {deepest}");
    let largest = w.sent().iter().map(|s| s.payload.len()).max().unwrap();
    assert!(
        largest > config.packet_bytes_max * 3 / 4,
        "largest datagram {largest} bytes"
    );
}

/// Anti-entropy past one datagram (SPEC §1): a table of 500 members goes out as several
/// push-pull datagrams, each within budget, and the receiver learns every member. The seed's
/// answer to the join itself is one datagram (a stranger gets no more than it sent, issue 14
/// item 3); the joiner's sync probe right after brings the rest.
#[test]
fn push_pull_of_500_members_is_split_within_budget() {
    let config = Config::local();
    let mut w = cluster(2, config.clone(), 15);
    let members: usize = 500;
    // n0 hears of the 500 by gossip from an address of the world that never starts; their own
    // addresses are outside the world (another port), so nobody can reach them.
    let gossiper = w.add_node();
    let updates = support::unreachable_members(members as u32, true);
    for batch in updates.chunks(8) {
        w.deliver_now(gossiper, 0, batch);
    }
    assert_eq!(
        w.node(0).unwrap().counts().alive,
        members,
        "n0 believed the gossip"
    );
    let start = w.now_us();
    join(&mut w, 1);
    let took = w.step_until(config.join_retry_interval, |w| {
        w.events()
            .iter()
            .any(|(_, i, e)| *i == 1 && matches!(e, Event::Joined { .. }))
    });
    assert!(took.is_some(), "the join did not complete");
    let bound = config.probe_interval * 4;
    let took = w.step_until(bound, |w| w.node(1).unwrap().counts().alive == members + 1);
    assert!(
        took.is_some(),
        "the joiner did not learn the table within {bound:?}"
    );

    let parts = w
        .sent_since(start)
        .filter(|s| s.from == 0 && s.to == w.addr(1))
        .filter(|s| {
            s.messages()
                .iter()
                .any(|m| matches!(m, Message::PushPull(_)))
        })
        .count();
    assert!(
        parts >= 2,
        "{parts} push-pull datagrams for {members} members"
    );
    for k in 0..members {
        let m = w
            .node(1)
            .unwrap()
            .member(&NodeName::new(&format!("m{k}")).unwrap());
        assert_eq!(m.map(|m| m.state), Some(State::Alive), "m{k}");
    }
    assert_eq!(w.member_state(1, 0), Some(State::Alive));
}

/// SWIM §4.1: the originator of an update sends it `retransmit_mult * ceil(log10(N + 1))` times
/// in all, then drops it from its queue.
#[test]
fn an_update_is_retransmitted_a_bounded_number_of_times() {
    let config = Config::local();
    let n = 5;
    let mut w = cluster(n, config.clone(), 16);
    join_all(&mut w);
    let quiet = w.step_until(config.probe_interval * 20, |w| {
        (0..n as u32).all(|i| w.node(i).unwrap().queue_depth() == 0)
    });
    assert!(quiet.is_some(), "queues never drained after the join");

    // A suspicion that only n0 hears: its refutation is news that n0 alone originates.
    let start = w.now_us();
    let profile = w.node(0).unwrap().profile().clone();
    w.deliver_now(
        1,
        0,
        &[Message::Member(MemberUpdate {
            name: node_name(0),
            incarnation: Incarnation::ZERO,
            claim: Claim::Suspect { by: node_name(1) },
            profile,
        })],
    );
    assert_eq!(w.node(0).unwrap().incarnation(), Incarnation::new(1));
    assert_eq!(w.node(0).unwrap().queue_depth(), 1);
    let bound = config.gossip_interval * 20;
    assert!(w
        .step_until(bound, |w| w.node(0).unwrap().queue_depth() == 0)
        .is_some());
    w.run_for(config.gossip_interval * 10);

    let sends = w
        .sent_since(start)
        .filter(|s| s.from == 0)
        .flat_map(Sent::messages)
        .filter(|m| {
            matches!(m, Message::Member(u)
                if u.name == node_name(0) && u.incarnation == Incarnation::new(1) && u.claim == Claim::Alive)
        })
        .count();
    // Each transmission is one gossip round (its copies go to up to `gossip_fanout` members)
    // or one piggyback.
    let limit = retransmit_limit(config.retransmit_mult, n);
    assert!(sends as u32 >= limit, "{sends} sends, limit {limit}");
    assert!(
        sends as u32 <= limit * config.gossip_fanout as u32,
        "{sends} sends, limit {limit}"
    );
    assert_eq!(w.node(0).unwrap().queue_depth(), 0);
}

/// `messages_out` (`hera_gossip_messages_total{direction="out"}`) counts what went on the
/// wire, by kind: a gossip round's datagram goes to up to `gossip_fanout` members, and every
/// copy's messages count, as every copy's bytes do. Counted once per round, the figures said
/// each node sent each registry entry `retransmit_limit` times (12 at 100 nodes, docs/scale.md)
/// while up to `gossip_fanout` times that went out.
#[test]
fn messages_out_counts_every_copy_on_the_wire() {
    let config = Config::local();
    let n = 8;
    let mut w = cluster(n, config.clone(), 23);
    join_all(&mut w);
    let counted = |w: &World| -> Vec<[u64; MessageKind::ALL.len()]> {
        (0..n as u32)
            .map(|i| w.node(i).unwrap().stats().messages_out)
            .collect()
    };
    let before = counted(&w);
    let logged = w.sent().len();
    for k in 0..40 {
        let mut spec = InstanceSpec::new(ServiceName::new("web").unwrap(), "10.0.0.1", 80);
        spec.id = Some(InstanceId::new(&format!("web-{k}")).unwrap());
        w.command(k % 3, Command::Register(spec)).unwrap();
        w.run_for(config.gossip_interval / 3);
    }
    let drained = w.step_until(config.sync_interval, |w| {
        (0..n as u32).all(|i| w.node(i).unwrap().queue_depth() == 0)
    });
    assert!(drained.is_some(), "queues never drained");
    let after = counted(&w);
    let mut sent = vec![[0u64; MessageKind::ALL.len()]; n];
    for s in &w.sent()[logged..] {
        for m in s.messages() {
            sent[s.from as usize][m.kind().index()] += 1;
        }
    }
    for i in 0..n {
        let delta: Vec<u64> = (0..MessageKind::ALL.len())
            .map(|k| after[i][k] - before[i][k])
            .collect();
        assert_eq!(delta, sent[i], "n{i}: counted (left) against sent, by kind");
    }
    let entries: u64 = sent.iter().map(|s| s[MessageKind::Entry.index()]).sum();
    assert!(entries > 0, "no entry was gossiped");
}

/// The contract of the core: the same seed and inputs give the same datagrams, byte for byte,
/// at the same times; another seed gives others.
#[test]
fn same_seed_same_transmits() {
    let run = |seed| {
        let config = Config::local();
        let mut w = cluster(4, config.clone(), seed);
        join_all(&mut w);
        w.run_for(config.probe_interval * 6);
        w.isolate(3);
        w.run_for(config.probe_interval * 6);
        w.sent().to_vec()
    };
    let (a, b) = (run(17), run(17));
    assert!(a.len() > 100, "only {} datagrams", a.len());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    assert_ne!(a, run(18));
}
