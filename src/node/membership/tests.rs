//! Unit tests of the membership half on one node, with no cluster: what a node says about
//! itself. The multi-node protocol tests are in `sim/tests/`.

use std::net::SocketAddr;

use crate::bounded::BoundedString;
use crate::config::Config;
use crate::names::{Label, NodeName};
use crate::node::{Identity, Node};
use crate::time::Instant;
use crate::wire::{self, Tag};

/// A node's identity at a loopback address, without tags.
fn identity() -> Identity {
    Identity {
        name: NodeName::new("n0").unwrap(),
        addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
        dc: Label::new("dc1").unwrap(),
        tags: Vec::new(),
    }
}

/// Finding 9: tags large enough to make a node's own member update exceed the datagram
/// budget kept it from ever announcing itself, silently. The core says so, with the sizes,
/// and the shell refuses to start (`StartError::ProfileTooLarge`).
#[test]
fn an_own_update_over_the_datagram_budget_is_reported() {
    let epoch = Instant::from_micros(1_700_000_000_000_000);
    let mut big = identity();
    big.tags = (0..wire::TAGS_MAX)
        .map(|t| Tag {
            key: Label::new(&format!("key{t}")).unwrap(),
            value: BoundedString("v".repeat(wire::TAG_VALUE_MAX_BYTES)),
        })
        .collect();
    let node = Node::new(Config::local(), big, 1, epoch);
    let (bytes, room) = node.own_update_fits().unwrap_err();
    assert!(
        bytes > room && room < Config::local().packet_bytes_max,
        "{bytes} {room}"
    );
    let small = Node::new(Config::local(), identity(), 1, epoch);
    assert_eq!(small.own_update_fits(), Ok(()));
}

/// A node alone (no member yet) has nobody to gossip to: its gossip rounds must neither spend
/// the retransmit budget of what it has queued (the updates would be gone before a member
/// arrives to hear them) nor count messages it did not send. They did both: the round filled
/// a datagram, counting a transmission and a sent message per update, for zero targets.
#[test]
fn a_lone_node_spends_no_retransmissions_and_counts_no_sends() {
    use crate::names::{InstanceId, ServiceName};
    use crate::node::Command;
    use crate::registry::InstanceSpec;
    use crate::wire::MessageKind;

    let start = Instant::from_micros(1_700_000_000_000_000);
    let mut node = Node::new(Config::local(), identity(), 1, start);
    let mut spec = InstanceSpec::new(ServiceName::new("db").unwrap(), "10.0.0.1", 5432);
    spec.id = Some(InstanceId::new("db-1").unwrap());
    node.handle_command(start, Command::Register(spec)).unwrap();
    let queued = node.queue_depth();
    assert!(queued >= 1, "the registration is queued for gossip");

    // Ten simulated seconds: fifty gossip intervals of the local preset, far past any
    // retransmit limit. Bounded by the count of timeouts as well as by time.
    let end = start + std::time::Duration::from_secs(10);
    let mut transmits = 0;
    for _ in 0..10_000 {
        let Some(at) = node.poll_timeout().filter(|at| *at <= end) else {
            break;
        };
        node.handle_timeout(at);
        while node.poll_transmit().is_some() {
            transmits += 1;
        }
        while node.poll_event().is_some() {}
    }
    assert_eq!(transmits, 0, "a lone node has nobody to send to");
    let stats = node.stats();
    for kind in [MessageKind::Member, MessageKind::Entry] {
        assert_eq!(
            stats.messages_out[kind.index()],
            0,
            "{kind:?} messages counted as sent by a node with no target"
        );
    }
    assert_eq!(
        node.queue_depth(),
        queued,
        "the updates still wait, with their whole retransmit budget, for a first member"
    );
}

/// A member held `left` that says, from its own address, it is alive at an incarnation the
/// verdict outranks (restarted without its data) is told the verdict, in one message no larger
/// than the datagram it sent; the same claim from any other address gets nothing.
#[test]
fn a_member_claiming_alive_below_its_verdict_is_told_it_from_its_own_address_only() {
    use crate::bounded::BoundedVec;
    use crate::wire::{Claim, DatagramBuilder, Incarnation, MemberUpdate, Message, Profile};

    let now = Instant::from_micros(1_700_000_000_000_000);
    let mut node = Node::new(Config::local(), identity(), 1, now);
    let member = SocketAddr::from(([127, 0, 0, 1], 7001));
    let other = SocketAddr::from(([127, 0, 0, 1], 7002));
    let claim = |claim: Claim| {
        let update = Message::Member(MemberUpdate {
            name: NodeName::new("n1").unwrap(),
            incarnation: Incarnation::ZERO,
            claim,
            profile: Profile {
                addr: member,
                dc: Label::new("dc1").unwrap(),
                tags: BoundedVec::new(Vec::new()),
            },
        });
        let mut d = DatagramBuilder::new(1_400);
        assert!(d.try_push(&wire::encode_message(&update)));
        d.finish()
    };
    let drain = |node: &mut Node| {
        let mut sent = Vec::new();
        while let Some(t) = node.poll_transmit() {
            sent.push(t);
        }
        while node.poll_event().is_some() {}
        sent
    };
    node.handle_datagram(now, member, &claim(Claim::Alive));
    node.handle_datagram(now, other, &claim(Claim::Left));
    drain(&mut node);

    let stale = claim(Claim::Alive);
    node.handle_datagram(now, other, &stale);
    let told = |sent: &[crate::node::Transmit]| {
        sent.iter()
            .filter(|t| t.to == member)
            .flat_map(|t| wire::decode_datagram(&t.payload).unwrap())
            .any(|m| matches!(m, Message::Member(u) if u.claim == Claim::Left))
    };
    assert!(
        !told(&drain(&mut node)),
        "told on a claim from another address"
    );

    node.handle_datagram(now, member, &stale);
    let sent = drain(&mut node);
    assert!(told(&sent), "the member was not told its verdict");
    for t in sent.iter().filter(|t| t.to == member) {
        assert!(
            t.payload.len() <= stale.len(),
            "{} B answered to {} B",
            t.payload.len(),
            stale.len()
        );
    }
}

/// An answered probe disarms its timeout: the timer used to fire `probe_timeout` after every
/// ping, answered or not, and find nothing to do (one of an idle node's wake-ups a second).
#[test]
fn an_answered_probe_leaves_no_timeout_armed() {
    use crate::node::Command;

    let start = Instant::from_micros(1_700_000_000_000_000);
    let config = Config::local();
    let mut b_identity = identity();
    b_identity.name = NodeName::new("n1").unwrap();
    b_identity.addr = SocketAddr::from(([127, 0, 0, 1], 7001));
    let (a_addr, b_addr) = (identity().addr, b_identity.addr);
    let mut a = Node::new(config.clone(), identity(), 1, start);
    let mut b = Node::new(config.clone(), b_identity, 2, start);
    // Every datagram either sends, delivered at once, until both are quiet.
    let exchange = |a: &mut Node, b: &mut Node, now: Instant| {
        for _ in 0..100 {
            let mut quiet = true;
            while let Some(t) = a.poll_transmit() {
                quiet = false;
                if t.to == b_addr {
                    b.handle_datagram(now, a_addr, &t.payload);
                }
            }
            while let Some(t) = b.poll_transmit() {
                quiet = false;
                if t.to == a_addr {
                    a.handle_datagram(now, b_addr, &t.payload);
                }
            }
            while a.poll_event().is_some() {}
            while b.poll_event().is_some() {}
            if quiet {
                return;
            }
        }
        panic!("the two nodes never went quiet");
    };
    a.handle_command(
        start,
        Command::Join {
            seeds: vec![b_addr],
        },
    )
    .unwrap();
    exchange(&mut a, &mut b, start);
    assert_eq!(a.counts().alive, 1, "a knows b");
    // Run a's timers until it pings b.
    let mut ping_at = None;
    for _ in 0..1_000 {
        let before = a.stats().probes_sent;
        let at = a.poll_timeout().unwrap();
        a.handle_timeout(at);
        if a.stats().probes_sent > before {
            ping_at = Some(at);
            break;
        }
        exchange(&mut a, &mut b, at);
    }
    let ping_at = ping_at.expect("a probed b");
    let timeout_at = ping_at + config.probe_timeout;
    assert!(
        a.timeouts().any(|d| d == timeout_at),
        "the probe's timeout is armed while it waits"
    );
    exchange(&mut a, &mut b, ping_at);
    assert_eq!(a.stats().probes_failed, 0);
    assert!(
        !a.timeouts().any(|d| d == timeout_at),
        "the answered probe's timeout is still armed"
    );
}
