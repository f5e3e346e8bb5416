//! A rolling upgrade in progress: a cluster in which some nodes speak a newer minor version of
//! the wire format (every datagram they send carries a message kind this build does not know,
//! and every message a field appended after the ones it knows) still converges, and registry
//! writes from either side reach every node.
//!
//! The nodes are the real protocol core (`hera::Node`), driven by a small deterministic loop
//! that delivers datagrams after a fixed delay. What makes a node "newer" is a rewrite of each
//! datagram it sends, exactly as a v2.1 encoder would write it: minor 1 in the header, two
//! bytes appended to each message's frame, and an extra frame of kind 42.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hera::config::Config;
use hera::names::{InstanceId, Label, NodeName, ServiceName};
use hera::registry::{InstanceSpec, SpecCheck};
use hera::swim::State;
use hera::wire::{self, encode_frame, encode_message, DatagramBuilder, DATAGRAM_MAX_BYTES};
use hera::{Command, Event, Identity, Instant, Node, Reply, Sink, Transmit};

/// The kind a newer minor added, unknown to this build.
const NEWER_KIND: u32 = 42;
/// One-way delay of every datagram.
const DELAY_US: u64 = 300;
/// A realistic wall-clock start, in microseconds since the Unix epoch.
const START_US: u64 = 1_800_000_000_000_000;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7_000 + i as u16))
}

#[derive(Default)]
struct Outputs {
    transmits: Vec<Transmit>,
}

impl Sink for Outputs {
    fn transmit(&mut self, transmit: Transmit) {
        self.transmits.push(transmit);
    }
    fn event(&mut self, _event: Event) {}
}

/// `datagram` as a newer minor would send it: this build's minor + 1, two bytes appended to every message, one
/// message of a kind v2.0 does not know.
fn as_newer_minor(datagram: &[u8]) -> Vec<u8> {
    let messages = wire::decode_datagram(datagram).expect("a node's own datagram decodes");
    let mut builder = DatagramBuilder::new(DATAGRAM_MAX_BYTES);
    for message in &messages {
        let frame = encode_message(message);
        let header = match frame[1] {
            0..=250 => 2,
            251 => 4,
            _ => 6,
        };
        let payload = [&frame[header..], &[0xee, 0xff][..]].concat();
        assert!(builder.try_push(&encode_frame(u32::from(frame[0]), &payload)));
    }
    assert!(builder.try_push(&encode_frame(NEWER_KIND, b"a v2.1 message")));
    let mut bytes = builder.finish();
    bytes[4] = wire::MINOR + 1; // minor
    let crc_at = bytes.len() - wire::CHECKSUM_BYTES;
    let crc = crc32fast::hash(&bytes[..crc_at]);
    bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

struct Cluster {
    nodes: Vec<Node>,
    newer: Vec<bool>,
    /// Datagrams in flight by delivery time (then send order): (to, from, bytes).
    in_flight: BTreeMap<(u64, u64), (usize, SocketAddr, Vec<u8>)>,
    sent: u64,
    now_us: u64,
}

impl Cluster {
    fn new(newer: &[bool]) -> Cluster {
        let nodes = (0..newer.len())
            .map(|i| {
                let identity = Identity {
                    name: NodeName::new(&format!("n{i}")).unwrap(),
                    addr: addr(i),
                    dc: Label::new("dc1").unwrap(),
                    tags: Vec::new(),
                };
                Node::new(
                    Config::local(),
                    identity,
                    i as u64 + 1,
                    Instant::from_micros(START_US),
                )
            })
            .collect();
        Cluster {
            nodes,
            newer: newer.to_vec(),
            in_flight: BTreeMap::new(),
            sent: 0,
            now_us: START_US,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.now_us)
    }

    fn command(&mut self, i: usize, command: Command) -> Reply {
        let now = self.now();
        let reply = self.nodes[i]
            .handle_command(now, command)
            .expect("accepted");
        self.flush();
        reply
    }

    /// Move every node's outgoing datagrams onto the network, rewriting the newer nodes'.
    fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            let mut out = Outputs::default();
            self.nodes[i].drain(&mut out);
            for t in out.transmits {
                let Some(to) = (0..self.nodes.len()).find(|&j| addr(j) == t.to) else {
                    continue;
                };
                let bytes = if self.newer[i] {
                    as_newer_minor(&t.payload)
                } else {
                    t.payload.to_vec()
                };
                self.sent += 1;
                self.in_flight
                    .insert((self.now_us + DELAY_US, self.sent), (to, addr(i), bytes));
            }
        }
    }

    /// Run until `done` holds or `limit` of simulated time has passed; true if it held.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Cluster) -> bool) -> bool {
        let end = self.now_us + limit.as_micros() as u64;
        for _ in 0..5_000_000 {
            if done(self) {
                return true;
            }
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|n| n.poll_timeout())
                .map(Instant::as_micros)
                .min();
            let next_datagram = self.in_flight.keys().next().map(|&(at, _)| at);
            let Some(next) = [next_timer, next_datagram].into_iter().flatten().min() else {
                return false;
            };
            if next > end {
                return false;
            }
            self.now_us = self.now_us.max(next);
            let now = self.now();
            if next_datagram == Some(next) {
                let (_, (to, from, bytes)) = self.in_flight.pop_first().expect("a datagram");
                self.nodes[to].handle_datagram(now, from, &bytes);
            } else {
                for node in &mut self.nodes {
                    if node.poll_timeout().is_some_and(|t| t <= now) {
                        node.handle_timeout(now);
                    }
                }
            }
            self.flush();
        }
        false
    }

    fn converged(&self) -> bool {
        let n = self.nodes.len();
        self.nodes.iter().all(|node| {
            let views = node.member_views();
            views.len() == n && views.iter().all(|m| m.state == State::Alive)
        })
    }

    fn everyone_holds(&self, id: &InstanceId) -> bool {
        self.nodes.iter().all(|n| n.registry().get(id).is_some())
    }
}

fn spec(service: &str) -> InstanceSpec {
    InstanceSpec {
        service: ServiceName::new(service).unwrap(),
        id: None,
        address: "10.0.0.1".into(),
        port: 80,
        tags: vec![],
        meta: BTreeMap::new(),
        body: None,
        check: SpecCheck::None,
        liveness: None,
        deregister_critical_after: None,
        checks: vec![],
    }
}

fn register(cluster: &mut Cluster, i: usize, service: &str) -> InstanceId {
    match cluster.command(i, Command::Register(spec(service))) {
        Reply::Registered { id } => id,
        other => panic!("a registration answered {other:?}"),
    }
}

#[test]
fn a_cluster_half_on_a_newer_minor_converges_and_carries_writes() {
    // Nodes 0, 2 and 4 speak v2.0; 1, 3 and 5 the newer minor. The seed is an old node.
    let newer = [false, true, false, true, false, true];
    let mut cluster = Cluster::new(&newer);
    for i in 1..newer.len() {
        cluster.command(
            i,
            Command::Join {
                seeds: vec![addr(0)],
            },
        );
    }
    assert!(
        cluster.run_until(Duration::from_secs(30), Cluster::converged),
        "membership converges"
    );
    // Writes from an old node and from a newer one reach every node.
    let from_old = register(&mut cluster, 2, "old-api");
    let from_newer = register(&mut cluster, 3, "new-api");
    assert!(
        cluster.run_until(Duration::from_secs(30), |c| {
            c.everyone_holds(&from_old) && c.everyone_holds(&from_newer)
        }),
        "writes reach every node"
    );
    // Run on a while: nothing is rejected and the cluster stays whole.
    cluster.run_until(Duration::from_secs(10), |_| false);
    assert!(cluster.converged(), "the cluster stays whole");
    for (i, node) in cluster.nodes.iter().enumerate() {
        let stats = node.stats();
        assert_eq!(stats.decode_errors_total(), 0, "n{i} rejected datagrams");
        if newer[i] {
            // Everything a v2.1 node receives from a v2.0 node it knows; from its v2.1 peers
            // it skips the kind only a later build would know (this test's v2.1 has no code
            // for it either).
            assert!(stats.datagrams_in > 0);
        } else {
            assert!(
                stats.messages_skipped > 0,
                "n{i} skipped the newer kind ({} datagrams in)",
                stats.datagrams_in
            );
        }
    }
}
