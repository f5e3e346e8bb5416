//! The core driven with manual time, for the tests below that still need a cluster.
//!
//! A tiny in-test cluster: nodes at 127.0.0.1:7000+i, one virtual clock, datagrams in flight
//! delivered after a fixed latency, and a drop filter per directed link (checked on delivery,
//! so cutting a link also loses what is on the wire). Every test states the protocol property
//! it checks and derives its time bounds from the config.
//!
//! The membership protocol's multi-node tests (probes, suspicion, lifecycle, dissemination)
//! run on the simulator's own network in `sim/tests/`; the modules below are due to follow
//! (issue 13), those that reach into the core's private state as unit tests beside the halves
//! they test. This harness goes when the last of them has moved.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use super::membership::claims::Source;
use super::{Command, CommandError, Event, Identity, Lifecycle, Node, Outputs};
use crate::config::Config;
use crate::names::{Label, NodeName};
use crate::swim::suspicion;
use crate::swim::State;
use crate::time::Instant;
use crate::wire::bounded::{BoundedString, BoundedVec};
use crate::wire::{
    self, encode_message, Claim, DatagramBuilder, MemberUpdate, Message, Ping, Profile, Tag,
};

const BASE_PORT: u16 = 7000;
/// One-way delay of every delivered datagram: far below every timeout of every preset, so
/// only the faults a test injects make probes fail.
const LATENCY: Duration = Duration::from_micros(500);
/// The virtual clock starts at a realistic wall time rather than at zero.
const EPOCH: Instant = Instant::from_micros(1_700_000_000_000_000);

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], BASE_PORT + i as u16))
}

/// The harness index behind an address, for the addresses the harness hands out.
fn index_of(to: SocketAddr) -> Option<usize> {
    let ours = to.ip() == std::net::Ipv4Addr::LOCALHOST && to.port() >= BASE_PORT;
    ours.then(|| usize::from(to.port() - BASE_PORT))
}

fn name(i: usize) -> NodeName {
    NodeName::new(&format!("n{i}")).unwrap()
}

fn identity(node_name: NodeName, at: SocketAddr) -> Identity {
    Identity {
        name: node_name,
        addr: at,
        dc: Label::new("dc1").unwrap(),
        tags: Vec::new(),
    }
}

fn decode(payload: &[u8]) -> Vec<Message> {
    wire::decode_datagram(payload).expect("every datagram a node emits decodes")
}

/// A datagram a node emitted (whether or not it was delivered).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    at: Instant,
    from: usize,
    to: SocketAddr,
    payload: Bytes,
}

impl Sent {
    fn messages(&self) -> Vec<Message> {
        decode(&self.payload)
    }
}

/// (delivery time, tie-breaker, from, to, payload).
type Flight = (Instant, u64, usize, usize, Bytes);

struct Cluster {
    config: Config,
    now: Instant,
    /// None: crashed (or not started yet).
    nodes: Vec<Option<Node>>,
    names: Vec<NodeName>,
    /// Datagrams on the wire, earliest delivery first.
    flights: BinaryHeap<Reverse<Flight>>,
    next_flight: u64,
    /// Directed links (from, to) that drop everything.
    cut: BTreeSet<(usize, usize)>,
    /// Nodes cut off from everyone, both directions; they keep running.
    isolated: BTreeSet<usize>,
    sent: Vec<Sent>,
    events: Vec<(Instant, usize, Event)>,
    /// Tags each node started from now on carries (to make its updates larger).
    tags: usize,
    /// The keyring each node started from now on seals with (None: plain datagrams).
    keyring: Option<wire::Keyring>,
}

impl Cluster {
    /// `n` nodes named n0.. at 127.0.0.1:7000.., not yet joined.
    fn new(n: usize, config: Config, seed: u64) -> Cluster {
        Cluster::with_tags(n, config, seed, 0)
    }

    /// The same, each node with `tags` tags.
    fn with_tags(n: usize, config: Config, seed: u64, tags: usize) -> Cluster {
        let mut cluster = Cluster {
            config,
            now: EPOCH,
            nodes: Vec::new(),
            names: Vec::new(),
            flights: BinaryHeap::new(),
            next_flight: 0,
            cut: BTreeSet::new(),
            isolated: BTreeSet::new(),
            sent: Vec::new(),
            events: Vec::new(),
            tags,
            keyring: None,
        };
        for i in 0..n {
            cluster.start(i, name(i), seed.wrapping_mul(1_000).wrapping_add(i as u64));
        }
        cluster
    }

    /// Start (or restart) a node at index `i`, i.e. at `addr(i)`, under `node_name`.
    fn start(&mut self, i: usize, node_name: NodeName, seed: u64) {
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, || None);
            self.names.resize(i + 1, name(i));
        }
        let mut identity = identity(node_name.clone(), addr(i));
        identity.tags = (0..self.tags)
            .map(|t| Tag {
                key: Label::new(&format!("key{t}")).unwrap(),
                value: BoundedString(format!("value-{t}-of-{node_name}")),
            })
            .collect();
        let mut node = Node::new(self.config.clone(), identity, seed, self.now);
        if let Some(ring) = &self.keyring {
            node.set_keyring(ring.clone());
        }
        self.nodes[i] = Some(node);
        self.names[i] = node_name;
        self.flush(i);
    }

    /// A node that has vanished: nothing reaches it and it sends nothing more.
    fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    fn node_mut(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().expect("node is running")
    }

    fn command(&mut self, i: usize, command: Command) -> Result<(), CommandError> {
        let now = self.now;
        let result = self.node_mut(i).handle_command(now, command).map(|_| ());
        self.flush(i);
        result
    }

    /// Every node but the first joins through the first, then all must see all alive.
    fn join_all(&mut self) {
        for i in 1..self.nodes.len() {
            self.command(
                i,
                Command::Join {
                    seeds: vec![addr(0)],
                },
            )
            .unwrap();
        }
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        // Joining takes a push-pull with the seed, then gossip to spread the newcomers. Nodes
        // joining at the same instant can miss one another's news (each update is sent only
        // `retransmit_mult * log N` times); anti-entropy repairs that within two sync rounds.
        let bound = self.config.probe_interval * 10 + self.config.sync_interval * 2;
        let took = self.run_until_true(bound, |c| c.all_alive(&all));
        assert!(took.is_some(), "the cluster did not form within {bound:?}");
    }

    /// Hand a datagram straight to node `to`, as if from `from`.
    fn inject(&mut self, to: usize, from: SocketAddr, messages: &[Message]) {
        let mut datagram = DatagramBuilder::new(self.config.packet_bytes_max);
        for message in messages {
            assert!(datagram.try_push(&encode_message(message)));
        }
        let bytes = datagram.finish();
        let now = self.now;
        self.node_mut(to).handle_datagram(now, from, &bytes);
        self.flush(to);
    }

    fn isolate(&mut self, i: usize) {
        self.isolated.insert(i);
    }

    fn reconnect(&mut self, i: usize) {
        self.isolated.remove(&i);
    }

    fn cut_link(&mut self, from: usize, to: usize) {
        self.cut.insert((from, to));
    }

    fn dropped(&self, from: usize, to: usize) -> bool {
        self.isolated.contains(&from)
            || self.isolated.contains(&to)
            || self.cut.contains(&(from, to))
    }

    /// Move node `i`'s outputs onto the wire and into the event log.
    fn flush(&mut self, i: usize) {
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        let mut out = Outputs::default();
        node.drain(&mut out);
        for t in out.transmits {
            // The MTU budget holds for every datagram of every test, not only the MTU test.
            assert!(
                t.payload.len() <= self.config.packet_bytes_max,
                "n{i} sent {} bytes, over the {}-byte budget",
                t.payload.len(),
                self.config.packet_bytes_max
            );
            self.sent.push(Sent {
                at: self.now,
                from: i,
                to: t.to,
                payload: t.payload.clone(),
            });
            if let Some(to) = index_of(t.to) {
                self.next_flight += 1;
                let at = self.now + LATENCY;
                self.flights
                    .push(Reverse((at, self.next_flight, i, to, t.payload)));
            }
        }
        for e in out.events {
            self.events.push((self.now, i, e));
        }
    }

    /// When the next thing happens: a delivery or a node's deadline.
    fn next_time(&self) -> Option<Instant> {
        let flight = self.flights.peek().map(|Reverse((at, ..))| *at);
        let timers = self
            .nodes
            .iter()
            .flatten()
            .filter_map(Node::poll_timeout)
            .min();
        match (flight, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advance the clock to the next happening and process everything due then.
    fn step(&mut self, at: Instant) {
        self.now = self.now.max(at);
        let now = self.now;
        while let Some(Reverse((due, ..))) = self.flights.peek() {
            if *due > now {
                break;
            }
            let Some(Reverse((_, _, from, to, payload))) = self.flights.pop() else {
                break;
            };
            if self.dropped(from, to) {
                continue;
            }
            let Some(node) = self.nodes.get_mut(to).and_then(Option::as_mut) else {
                continue;
            };
            node.handle_datagram(now, addr(from), &payload);
            self.flush(to);
        }
        for i in 0..self.nodes.len() {
            let Some(node) = self.nodes[i].as_mut() else {
                continue;
            };
            if node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
                self.flush(i);
            }
        }
    }

    fn run_until(&mut self, deadline: Instant) {
        while let Some(at) = self.next_time().filter(|at| *at <= deadline) {
            self.step(at);
        }
        self.now = self.now.max(deadline);
    }

    fn run_for(&mut self, span: Duration) {
        self.run_until(self.now + span);
    }

    /// Run until `done` holds, for at most `limit` of simulated time; how long it took.
    fn run_until_true(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Cluster) -> bool,
    ) -> Option<Duration> {
        let (start, deadline) = (self.now, self.now + limit);
        loop {
            if done(self) {
                return Some(self.now.saturating_since(start));
            }
            match self.next_time().filter(|at| *at <= deadline) {
                Some(at) => self.step(at),
                None => {
                    self.now = deadline;
                    return done(self).then_some(limit);
                }
            }
        }
    }

    /// What `observer` believes about `subject` (None: unknown to it).
    fn member_state(&self, observer: usize, subject: usize) -> Option<State> {
        self.node(observer)
            .member(&self.names[subject])
            .map(|m| m.state)
    }

    fn member_incarnation(&self, observer: usize, subject: usize) -> Option<u32> {
        self.node(observer)
            .member(&self.names[subject])
            .map(|m| m.incarnation)
    }

    /// Every node of `set` sees every other one alive.
    fn all_alive(&self, set: &[usize]) -> bool {
        set.iter().all(|&o| {
            set.iter()
                .all(|&s| o == s || self.member_state(o, s) == Some(State::Alive))
        })
    }

    /// Every running node but `subject` holds it in `state`.
    fn all_see(&self, subject: usize, state: State) -> bool {
        (0..self.nodes.len())
            .filter(|&o| o != subject && self.nodes[o].is_some())
            .all(|o| self.member_state(o, subject) == Some(state))
    }

    /// Events since `since`, with when and where.
    fn events_since(&self, since: Instant) -> impl Iterator<Item = &(Instant, usize, Event)> {
        self.events.iter().filter(move |(at, ..)| *at >= since)
    }

    /// Datagrams emitted since `since`, decoded.
    fn sent_since(&self, since: Instant) -> impl Iterator<Item = &Sent> {
        self.sent.iter().filter(move |s| s.at >= since)
    }
}

/// The `(min, max)` suspicion window a node of an `n`-member cluster uses.
fn suspicion_window(config: &Config, n: usize) -> (Duration, Duration) {
    suspicion::bounds(config.suspicion_base, config.suspicion_max_mult, n)
}

mod hostile;
mod queries;
mod registry;
mod retune;
mod traffic;
