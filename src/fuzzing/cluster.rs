//! The `cluster` target: three nodes, sans-IO, wired together by a queue of datagrams the
//! input delivers, drops or duplicates, plus well-formed adversarial messages injected as if
//! from a member (spoofed) or from a stranger (issue 14).
//!
//! | tag % 4 | arguments | operation |
//! |---|---|---|
//! | 0 | `which: u8`, `drop: u8` | take in-flight datagram `which % len`: deliver it, or drop it if `drop` is odd |
//! | 1 | `step: u8` | advance the clock by `step * 10 ms`, then run every node's due timers |
//! | 2 | `to: u8`, `from: u8`, `kind: u8`, `a: u32 LE`, `b: u8` | a valid message to node `to % 3` from member `from % 3`'s address, or from a stranger when `from % 4 == 3` |
//! | 3 | `to: u8`, `n: u8` | node `to % 3` gets `n` copies of the last injected message in one datagram |
//!
//! Checked after every operation: no panic (the harness), every node passes the one-node
//! checks (deadline after now once timeouts ran, incarnation never back, never itself a member,
//! alive while active, every datagram within budget and decodable), and a stranger never gets
//! more bytes back than the datagram it sent.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::{dc, Checker, CheckingSink, Input, TICK};
use crate::bounded::BoundedVec;
use crate::config::Config;
use crate::names::NodeName;
use crate::node::{Identity, Node, Outputs, Sink, Transmit};
use crate::wire::{
    encode_message, Ack, Claim, DatagramBuilder, Incarnation, MemberUpdate, Message, Nack, Ping,
    PingReq, Profile, PushPull, RegistryBuckets, RegistryDigest, RegistrySync, SyncProbe,
};

const NODES: usize = 3;
/// Datagrams in flight kept; older ones are dropped (a bounded network).
const IN_FLIGHT_MAX: usize = 256;
/// Copies of one message in a datagram, at most (bounded work per operation).
const COPIES_MAX: usize = 255;

fn name(i: usize) -> NodeName {
    NodeName::new(&format!("c{}", i % NODES)).expect("a valid generated name")
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 1, 1 + (i % NODES) as u8), 7946))
}

fn stranger() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 9, 9), 7946))
}

fn index_of(to: SocketAddr) -> Option<usize> {
    (0..NODES).find(|&i| addr(i) == to)
}

fn profile(at: SocketAddr) -> Profile {
    Profile {
        addr: at,
        dc: dc(),
        tags: BoundedVec::default(),
    }
}

/// A well-formed message about the cluster's own members (or a visitor), its fields from the
/// input: claims at any incarnation, impostor addresses, wrong digests, registry summaries.
fn message(kind: u8, a: u32, b: u8) -> Message {
    let subject = if b & 0b1100_0000 == 0b1100_0000 {
        NodeName::new("visitor").expect("a valid constant name")
    } else {
        name(usize::from(b))
    };
    let by = name(usize::from(b >> 2));
    let claim = match (b >> 4) % 4 {
        0 => Claim::Alive,
        1 => Claim::Suspect { by },
        2 => Claim::Failed { by },
        _ => Claim::Left,
    };
    let at = if b & 0b0010_0000 == 0 {
        addr(usize::from(b))
    } else {
        stranger()
    };
    let update = MemberUpdate {
        name: subject.clone(),
        incarnation: Incarnation::new(a),
        claim,
        profile: profile(at),
    };
    let seq = a % 64;
    match kind % 11 {
        0 => Message::Ping(Ping {
            seq,
            target: subject,
        }),
        1 => Message::Ack(Ack { seq }),
        2 => Message::PingReq(PingReq {
            seq,
            target: subject,
            target_addr: at,
        }),
        3 => Message::Nack(Nack { seq }),
        4 => Message::Member(update),
        5 => Message::PushPull(PushPull {
            reply_wanted: b & 1 == 1,
            members: BoundedVec::new(vec![update]),
        }),
        6 => Message::SyncProbe(SyncProbe {
            members_digest: u64::from(a),
        }),
        7 => Message::RegistrySync(RegistrySync {
            digest: u64::from(a),
        }),
        8 => Message::RegistryDigest(RegistryDigest {
            reply_wanted: b & 1 == 1,
            from: None,
            to: None,
            origins: BoundedVec::default(),
        }),
        9 => Message::RegistryBuckets(RegistryBuckets {
            reply_wanted: b & 1 == 1,
            origin: name(usize::from(b)),
            buckets: BoundedVec::default(),
        }),
        _ => Message::Ack(Ack { seq: a }),
    }
}

/// Checks every output as the one-node target does, and keeps the datagrams to deliver.
struct Tee {
    check: CheckingSink,
    kept: Outputs,
}

impl Sink for Tee {
    fn transmit(&mut self, transmit: Transmit) {
        self.kept.transmit(transmit.clone());
        self.check.transmit(transmit);
    }

    fn event(&mut self, event: crate::node::Event) {
        self.check.event(event);
    }
}

struct World {
    now: crate::time::Instant,
    nodes: Vec<Node>,
    checkers: Vec<Checker>,
    /// (from, to, payload) in flight.
    flights: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    last: Option<Message>,
}

impl World {
    fn new() -> World {
        let now = crate::time::Instant::from_micros(1_700_000_000_000_000);
        let nodes = (0..NODES)
            .map(|i| {
                let identity = Identity {
                    name: name(i),
                    addr: addr(i),
                    dc: dc(),
                    tags: Vec::new(),
                };
                Node::new(Config::local(), identity, 0x5eed + i as u64, now)
            })
            .collect();
        let mut w = World {
            now,
            nodes,
            checkers: (0..NODES).map(|_| Checker::default()).collect(),
            flights: Vec::new(),
            last: None,
        };
        for i in 1..NODES {
            let seeds = vec![addr(0)];
            let _ = w.nodes[i].handle_command(now, crate::Command::Join { seeds });
        }
        for i in 0..NODES {
            w.after(i);
        }
        w
    }

    /// Run node `i`'s due timers, check it, and move what it sent onto the network.
    fn after(&mut self, i: usize) {
        let now = self.now;
        let check = self.checkers[i].checked(&mut self.nodes[i], now);
        self.drain(i, check);
    }

    /// Move node `i`'s outputs onto the network through `check`; bytes sent to the stranger.
    fn drain(&mut self, i: usize, check: CheckingSink) -> usize {
        let mut tee = Tee {
            check,
            kept: Outputs::default(),
        };
        self.nodes[i].drain(&mut tee);
        let mut to_stranger = 0;
        for t in tee.kept.transmits {
            if t.to == stranger() {
                to_stranger += t.payload.len();
            }
            if self.flights.len() >= IN_FLIGHT_MAX {
                self.flights.remove(0);
            }
            self.flights.push((addr(i), t.to, t.payload.to_vec()));
        }
        to_stranger
    }

    fn inject(&mut self, to: usize, from: SocketAddr, message: &Message, copies: usize) {
        let mut datagram = DatagramBuilder::new(self.nodes[to].config().packet_bytes_max);
        let encoded = encode_message(message);
        for _ in 0..copies.clamp(1, COPIES_MAX) {
            if !datagram.try_push(&encoded) {
                break;
            }
        }
        let bytes = datagram.finish();
        let now = self.now;
        self.nodes[to].handle_datagram(now, from, &bytes);
        // The direct answer, before any timer runs: a forged member record makes the stranger
        // a member, and gossip rounds then include it (docs/security.md says what bounds that).
        let node = &self.nodes[to];
        let check = CheckingSink {
            name: node.name().clone(),
            incarnation: node.incarnation(),
            active: node.lifecycle() == crate::node::Lifecycle::Active,
            budget_bytes: node.config().packet_bytes_max,
        };
        let back = self.drain(to, check);
        self.after(to);
        if from == stranger() {
            assert!(
                back <= bytes.len(),
                "a stranger got {back} bytes back for a {}-byte datagram of {:?}",
                bytes.len(),
                message.kind()
            );
        }
    }
}

/// Drive three nodes with operations read from `data` (see the module table).
pub fn check_cluster(data: &[u8]) {
    let mut input = Input(data);
    let mut w = World::new();
    while let Some(tag) = input.u8() {
        match tag % 4 {
            0 => {
                let (Some(which), Some(drop)) = (input.u8(), input.u8()) else {
                    return;
                };
                if w.flights.is_empty() {
                    continue;
                }
                let (from, to, payload) = w.flights.remove(usize::from(which) % w.flights.len());
                if let (Some(to), false) = (index_of(to), drop % 2 == 1) {
                    let now = w.now;
                    w.nodes[to].handle_datagram(now, from, &payload);
                    w.after(to);
                }
            }
            1 => {
                let Some(step) = input.u8() else { return };
                w.now = w.now + TICK * u32::from(step);
                for i in 0..NODES {
                    w.after(i);
                }
            }
            2 => {
                let (Some(to), Some(from), Some(kind), Some(a), Some(b)) =
                    (input.u8(), input.u8(), input.u8(), input.u32(), input.u8())
                else {
                    return;
                };
                let from = if from % 4 == 3 {
                    stranger()
                } else {
                    addr(usize::from(from))
                };
                let m = message(kind, a, b);
                w.inject(usize::from(to) % NODES, from, &m, 1);
                w.last = Some(m);
            }
            _ => {
                let (Some(to), Some(n)) = (input.u8(), input.u8()) else {
                    return;
                };
                if let Some(m) = w.last.clone() {
                    w.inject(usize::from(to) % NODES, stranger(), &m, usize::from(n));
                }
            }
        }
    }
    // A quiet minute at the end: every timer chain runs, nothing spins.
    for _ in 0..60 {
        w.now = w.now + Duration::from_secs(1);
        for i in 0..NODES {
            w.after(i);
        }
    }
}
