//! Anti-entropy and its early re-syncs at the node: a late joiner, two peers, the lifecycle.

use std::net::SocketAddr;

use crate::bounded::BoundedVec;
use crate::config::Config;
use crate::names::{InstanceId, Label, NodeName, ServiceName};
use crate::node::{Command, Identity, Node};
use crate::registry::{Entry, Hlc, InstanceSpec};
use crate::time::Instant;
use crate::wire::{
    self, encode_message, DatagramBuilder, Incarnation, Message, MessageKind, OriginSummary,
    RegistryDigest, RegistrySync,
};

const START_MS: u64 = 1_700_000_000_000;

fn at(ms: u64) -> Instant {
    Instant::from_micros((START_MS + ms) * 1_000)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn name(text: &str) -> NodeName {
    NodeName::new(text).unwrap()
}

/// The late joiner n0 (local preset: probe interval 500 ms), with n1 and n2 as live members.
fn joiner() -> Node {
    let identity = Identity {
        name: name("n0"),
        addr: addr(7000),
        dc: Label::new("dc1").unwrap(),
        tags: Vec::new(),
    };
    let mut node = Node::new(Config::local(), identity, 7, at(0));
    for (peer, port) in [("n1", 7001), ("n2", 7002)] {
        let alive = Message::Member(wire::MemberUpdate {
            name: name(peer),
            incarnation: Incarnation::ZERO,
            claim: wire::Claim::Alive,
            profile: wire::Profile {
                addr: addr(port),
                dc: Label::new("dc1").unwrap(),
                tags: BoundedVec::new(Vec::new()),
            },
        });
        deliver(&mut node, at(0), port, vec![alive]);
    }
    node
}

/// Datagrams from the peer at `port` carrying `messages`, as many as they take; what the node
/// sends in answer is dropped.
fn deliver(node: &mut Node, now: Instant, port: u16, messages: Vec<Message>) {
    let mut d = DatagramBuilder::new(1_400);
    for m in messages {
        let encoded = encode_message(&m);
        if !d.try_push(&encoded) {
            let full = std::mem::replace(&mut d, DatagramBuilder::new(1_400));
            node.handle_datagram(now, addr(port), &full.finish());
            assert!(d.try_push(&encoded), "one message fits a datagram");
        }
    }
    if !d.is_empty() {
        node.handle_datagram(now, addr(port), &d.finish());
    }
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
}

/// Entry `k` of the `count` that n1 wrote.
fn entry(k: u32) -> Entry {
    let id = InstanceId::new(&format!("i-{k}")).unwrap();
    let spec = InstanceSpec::new(ServiceName::new("api").unwrap(), "10.0.0.1", 80);
    let instance = spec
        .into_instance(id.clone(), name("n1"), START_MS)
        .unwrap();
    Entry {
        id,
        version: Hlc {
            wall_ms: START_MS,
            counter: k,
            node: name("n1"),
        },
        instance: Some(Box::new(instance)),
    }
}

/// n1's summary of its registry: `count` entries of its own, which n0 lacks.
fn digest_of_n1(reply_wanted: bool, count: u32) -> Message {
    Message::RegistryDigest(RegistryDigest {
        reply_wanted,
        from: None,
        to: None,
        origins: BoundedVec::new(vec![OriginSummary {
            origin: name("n1"),
            count,
            hash: 0x5eed,
        }]),
    })
}

fn entries(range: std::ops::Range<u32>) -> Vec<Message> {
    range.map(|k| Message::Entry(entry(k))).collect()
}

fn hash_from_another_peer() -> Message {
    Message::RegistrySync(RegistrySync { digest: 42 })
}

fn digests_sent(node: &Node) -> u64 {
    node.stats().messages_out[MessageKind::RegistryDigest.index()]
}

/// Item 1 of issue 17's leftovers: a late joiner took the whole registry from two peers at
/// once (24.4 MB for a 12.3 MB registry). While n1's push of what n0 lacks is arriving, a
/// registry hash from n2 differs (n0 is still filling up); answering it with n0's digest
/// makes n2 push every origin n0 lacks too. n0 declines until n1's push has gone quiet for a
/// probe interval, then answers as ever.
#[test]
fn a_node_receiving_a_push_declines_a_second_comparison_until_it_is_quiet() {
    let mut n0 = joiner();
    // n1 answered n0's digest: it will push all 100 of its entries.
    deliver(&mut n0, at(10), 7001, vec![digest_of_n1(false, 100)]);
    let before = digests_sent(&n0);
    // Before the first of them lands, n2 compares: declined.
    deliver(&mut n0, at(15), 7002, vec![hash_from_another_peer()]);
    assert_eq!(digests_sent(&n0), before, "answered n2 before n1's push");
    // The push is arriving (paced, over 300 ms); n2 compares again in the middle of it.
    deliver(&mut n0, at(20), 7001, entries(0..30));
    deliver(&mut n0, at(320), 7001, entries(30..60));
    deliver(&mut n0, at(330), 7002, vec![hash_from_another_peer()]);
    assert_eq!(digests_sent(&n0), before, "answered n2 during n1's push");
    deliver(&mut n0, at(400), 7001, entries(60..100));
    assert_eq!(n0.registry().len(), 100);
    // A probe interval (500 ms) after the last of it, n0 is back to answering.
    deliver(&mut n0, at(901), 7002, vec![hash_from_another_peer()]);
    assert_eq!(digests_sent(&n0), before + 1, "n2 never answered");
}

/// Item 2: the early re-sync runs only while the node is active. n1's push brings news (the
/// timer is armed for 500 ms later), then the node leaves (gone at 300 ms after the command):
/// the timer fires while it is leaving and starts no comparison.
#[test]
fn a_leaving_node_starts_no_early_resync() {
    let mut n0 = joiner();
    deliver(&mut n0, at(10), 7001, vec![digest_of_n1(false, 10)]);
    deliver(&mut n0, at(20), 7001, entries(0..10));
    n0.handle_command(at(300), Command::Leave).unwrap();
    while n0.poll_transmit().is_some() {}
    n0.handle_timeout(at(560));
    assert_eq!(n0.lifecycle(), crate::node::Lifecycle::Leaving);
    assert_eq!(n0.stats().registry_resyncs, 0);
}

/// Item 2: with no live member to compare with, the re-sync timer spends nothing of the
/// ceiling: n1 pushes news and leaves, the timer fires with nobody to pick; n1 is back and
/// pushes again, and RESYNCS_PER_INTERVAL_MAX re-syncs are still available.
#[test]
fn a_resync_with_no_live_member_spends_nothing() {
    let mut n0 = joiner();
    for (k, peer, port) in [(0u32, "n1", 7001u16), (1, "n2", 7002)] {
        let left = Message::Member(wire::MemberUpdate {
            name: name(peer),
            incarnation: Incarnation::ZERO,
            claim: wire::Claim::Left,
            profile: wire::Profile {
                addr: addr(port),
                dc: Label::new("dc1").unwrap(),
                tags: BoundedVec::new(Vec::new()),
            },
        });
        if k == 0 {
            deliver(&mut n0, at(10), 7001, vec![digest_of_n1(false, 10)]);
            deliver(&mut n0, at(20), 7001, entries(0..10));
        }
        deliver(&mut n0, at(30), port, vec![left]);
    }
    for peer in ["n1", "n2"] {
        assert!(!n0.member(&name(peer)).unwrap().state.is_live(), "{peer}");
    }
    n0.handle_timeout(at(600));
    assert_eq!(n0.stats().registry_resyncs, 0);
    assert_eq!(n0.catalog.resync.spent(), 0, "the ceiling was spent");
}

/// n2's summary of its registry: empty, so n0 owes it every origin it holds, whole.
fn empty_digest() -> Message {
    Message::RegistryDigest(RegistryDigest {
        reply_wanted: false,
        from: None,
        to: None,
        origins: BoundedVec::new(Vec::new()),
    })
}

/// n0 holds `count` entries of n1's and owes them all to n2 (the batch delay has passed).
fn owing_n2(count: u32) -> Node {
    let mut n0 = joiner();
    deliver(&mut n0, at(10), 7001, entries(0..count));
    assert_eq!(n0.registry().len(), count as usize);
    deliver(&mut n0, at(20), 7002, vec![empty_digest()]);
    n0.handle_timeout(at(20) + super::PUSH_BATCH_DELAY);
    while n0.poll_transmit().is_some() {}
    assert_eq!(n0.pushes_owed(), 1);
    n0
}

/// A push is made as it is pulled, one datagram a call, and resumes past the last entry it
/// sent: entries written meanwhile past that point go out with it; nothing is sent twice.
#[test]
fn a_push_is_made_a_datagram_at_a_time_and_sends_what_came_meanwhile() {
    let mut n0 = owing_n2(200);
    assert_eq!(
        n0.stats().entries_pushed,
        0,
        "nothing made before it is pulled"
    );
    let first = n0.poll_push().expect("a datagram");
    assert!(first.paced && first.to == addr(7002));
    let sent = n0.stats().entries_pushed;
    assert!(
        sent > 0 && sent < 200,
        "{sent} entries in the first datagram"
    );
    // n1 writes 100 more (ids "i-200".. sort past the first datagram's "i-0", "i-1", "i-10"..).
    deliver(&mut n0, at(40), 7001, entries(200..300));
    let mut datagrams = 1;
    while let Some(t) = n0.poll_push() {
        assert!(t.paced && t.to == addr(7002));
        datagrams += 1;
        assert!(datagrams < 1_000, "bounded");
    }
    assert_eq!(n0.stats().entries_pushed, 300);
    assert_eq!(n0.pushes_owed(), 0, "done");
    assert!(datagrams > 10, "{datagrams}");
}

/// A push to a peer that is no longer a live member is dropped at the next pull.
#[test]
fn a_push_to_a_departed_peer_is_dropped() {
    let mut n0 = owing_n2(200);
    assert!(n0.poll_push().is_some());
    let left = Message::Member(wire::MemberUpdate {
        name: name("n2"),
        incarnation: Incarnation::ZERO,
        claim: wire::Claim::Left,
        profile: wire::Profile {
            addr: addr(7002),
            dc: Label::new("dc1").unwrap(),
            tags: BoundedVec::new(Vec::new()),
        },
    });
    deliver(&mut n0, at(40), 7001, vec![left]);
    let sent = n0.stats().entries_pushed;
    assert!(n0.poll_push().is_none());
    assert_eq!(n0.pushes_owed(), 0);
    assert_eq!(n0.stats().entries_pushed, sent);
}

/// A second comparison asking for what the push under way covers changes nothing; `drain`
/// takes a push's datagrams only as far as its sink has room.
#[test]
fn a_repeated_request_keeps_the_push_and_drain_respects_the_sinks_room() {
    struct Room(usize, usize);
    impl crate::node::Sink for Room {
        fn transmit(&mut self, t: crate::node::Transmit) {
            self.1 += usize::from(t.paced);
        }
        fn event(&mut self, _: crate::node::Event) {}
        fn takes_push(&mut self) -> bool {
            let takes = self.0 > 0;
            self.0 = self.0.saturating_sub(1);
            takes
        }
    }
    let mut n0 = owing_n2(200);
    let mut sink = Room(2, 0);
    n0.drain(&mut sink);
    assert_eq!(sink.1, 2, "two datagrams, as the sink had room for");
    let sent = n0.stats().entries_pushed;
    deliver(&mut n0, at(200), 7002, vec![empty_digest()]);
    n0.handle_timeout(at(200) + super::PUSH_BATCH_DELAY);
    while n0.poll_transmit().is_some() {}
    let mut rest = Room(usize::MAX, 0);
    n0.drain(&mut rest);
    assert_eq!(
        n0.stats().entries_pushed,
        200,
        "the push went on, not from the start"
    );
    assert!(sent < 200);
    assert_eq!(n0.pushes_owed(), 0);
}
