//! The core driven with manual time.
//!
//! A tiny in-test cluster: nodes at 127.0.0.1:7000+i, one virtual clock, datagrams in flight
//! delivered after a fixed latency, and a drop filter per directed link (checked on delivery,
//! so cutting a link also loses what is on the wire). Every test states the protocol property
//! it checks and derives its time bounds from the config. The full simulator, with random
//! faults and skewed clocks, is `sim/`; this harness stays small on purpose.
//!
//! Over 600 lines: the harness and its multi-node tests are due to move to `sim/tests/`, and
//! the rest to split by topic beside the halves they test (issue 13's last step).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use super::membership::claims::Source;
use super::{Command, CommandError, Event, Identity, Lifecycle, Node, Outputs};
use crate::bounded::{BoundedString, BoundedVec};
use crate::config::Config;
use crate::names::{Label, NodeName};
use crate::swim::gossip::retransmit_limit;
use crate::swim::suspicion;
use crate::swim::State;
use crate::time::Instant;
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

    fn suspected(&self, subject: &NodeName) -> Vec<(Instant, usize)> {
        self.events
            .iter()
            .filter_map(|(at, i, e)| match e {
                Event::MemberSuspected { name, .. } if name == subject => Some((*at, *i)),
                _ => None,
            })
            .collect()
    }

    fn failed(&self, subject: &NodeName) -> Vec<(Instant, usize)> {
        self.events
            .iter()
            .filter_map(|(at, i, e)| match e {
                Event::MemberFailed { name } if name == subject => Some((*at, *i)),
                _ => None,
            })
            .collect()
    }
}

/// The `(min, max)` suspicion window a node of an `n`-member cluster uses.
fn suspicion_window(config: &Config, n: usize) -> (Duration, Duration) {
    suspicion::bounds(config.suspicion_base, config.suspicion_max_mult, n)
}

// ---- the probe loop ----

/// SWIM §3.1: once per protocol period a node pings a member and gets its ack; the round trip
/// is recorded; a healthy pair never suspects each other and Lifeguard's score stays 0.
#[test]
fn probe_cycle_pings_once_per_interval_and_records_rtt() {
    let config = Config::local();
    let mut c = Cluster::new(2, config.clone(), 1);
    c.join_all();
    c.run_for(config.probe_interval * 2);
    c.node_mut(0).stats_mut().take_rtt_samples();

    let start = c.now;
    let periods = 20;
    c.run_for(config.probe_interval * periods);

    let count = |from: usize, to: usize, want: fn(&Message) -> bool| {
        c.sent_since(start)
            .filter(|s| s.from == from && s.to == addr(to))
            .flat_map(Sent::messages)
            .filter(&want)
            .count() as u32
    };
    let pings = count(0, 1, |m| matches!(m, Message::Ping(_)));
    let acks = count(1, 0, |m| matches!(m, Message::Ack(_)));
    assert!(
        (periods - 1..=periods + 1).contains(&pings),
        "{pings} pings in {periods} periods"
    );
    assert!(
        acks + 1 >= pings && acks <= pings + 1,
        "{acks} acks for {pings} pings"
    );
    assert_eq!(count(0, 1, |m| matches!(m, Message::PingReq(_))), 0);

    let rtts = c.node_mut(0).stats_mut().take_rtt_samples();
    assert!(
        rtts.len() as u32 + 1 >= pings,
        "{} round trips recorded",
        rtts.len()
    );
    assert!(rtts.iter().all(|rtt| *rtt == LATENCY * 2), "{rtts:?}");

    assert!(
        c.events
            .iter()
            .all(|(_, _, e)| !matches!(e, Event::MemberSuspected { .. })),
        "nobody is suspected in a healthy cluster"
    );
    assert_eq!(c.node(0).health_score(), 0);
    assert_eq!(c.node(1).health_score(), 0);
}

/// SWIM §3.1 indirect probes: when A cannot reach C directly but B can, A's ping-reqs make B
/// ping C and relay C's ack, so C is never suspected. Checked with one direction cut and with
/// both.
#[test]
fn indirect_probe_through_a_helper_keeps_the_target_alive() {
    let config = Config::local();
    for both_ways in [false, true] {
        let mut c = Cluster::new(3, config.clone(), 2);
        c.join_all();
        let start = c.now;
        c.cut_link(0, 2);
        if both_ways {
            c.cut_link(2, 0);
        }
        c.run_for(config.probe_interval * 20);

        let req_seqs: Vec<u32> = c
            .sent_since(start)
            .filter(|s| s.from == 0 && s.to == addr(1))
            .flat_map(Sent::messages)
            .filter_map(|m| match m {
                Message::PingReq(r) if r.target == name(2) => Some(r.seq),
                _ => None,
            })
            .collect();
        assert!(!req_seqs.is_empty(), "A never asked B to probe C");
        let relayed_acks = c
            .sent_since(start)
            .filter(|s| s.from == 1 && s.to == addr(0))
            .flat_map(Sent::messages)
            .filter(|m| matches!(m, Message::Ack(a) if req_seqs.contains(&a.seq)))
            .count();
        assert!(relayed_acks > 0, "B relayed none of C's acks to A");
        let relayed_pings = c
            .sent_since(start)
            .filter(|s| s.from == 1 && s.to == addr(2))
            .flat_map(Sent::messages)
            .filter(|m| matches!(m, Message::Ping(p) if p.target == name(2)))
            .count();
        assert!(
            relayed_pings >= req_seqs.len(),
            "B pings C for every ping-req"
        );

        assert!(
            c.suspected(&name(2)).is_empty(),
            "C suspected (both ways: {both_ways})"
        );
        assert!(c.all_alive(&[0, 1, 2]));
    }
}

/// Lifeguard §4.1, nacks: when the target is dead, A's helpers answer A's ping-reqs with nacks,
/// which prove A itself is well, so A's health score stays 0 however many probes fail.
#[test]
fn helpers_send_nacks_for_a_dead_target() {
    let config = Config::local();
    let mut c = Cluster::new(4, config.clone(), 3);
    c.join_all();
    let start = c.now;
    c.crash(3);
    let mut worst_score = 0;
    let bound = config.probe_interval * 8 + suspicion_window(&config, 4).1;
    let took = c.run_until_true(bound, |c| {
        worst_score = (0..3)
            .map(|i| c.node(i).health_score())
            .fold(worst_score, u32::max);
        c.all_see(3, State::Failed)
    });
    assert!(took.is_some(), "the crash went unnoticed for {bound:?}");

    let nacks_to = |i: usize| {
        c.sent_since(start)
            .filter(|s| s.to == addr(i))
            .flat_map(Sent::messages)
            .filter(|m| matches!(m, Message::Nack(_)))
            .count()
    };
    let nacks: usize = (0..3).map(nacks_to).sum();
    let sent: u64 = (0..3).map(|i| c.node(i).stats().nacks_sent).sum();
    assert!(nacks > 0, "no nacks came back");
    assert_eq!(nacks as u64, sent);
    assert_eq!(worst_score, 0, "nacks keep the probers' health at 0");
}

/// Lifeguard §4.1, local health: a node cut off from everyone gets neither acks nor nacks, so
/// its score rises and its probe timeouts (the wait before ping-reqs) stretch by `score + 1`.
#[test]
fn isolated_node_raises_its_health_score_and_slows_down() {
    let config = Config::local();
    let mut c = Cluster::new(4, config.clone(), 4);
    c.join_all();
    let start = c.now;
    c.isolate(0);
    c.run_for(suspicion_window(&config, 4).1);

    assert!(c.node(0).health_score() > 0, "score stayed 0 while cut off");
    // For each probe by n0: the time from its ping to its ping-reqs, in probe timeouts.
    let sent: Vec<&Sent> = c.sent_since(start).filter(|s| s.from == 0).collect();
    let mut ping_at = std::collections::BTreeMap::new();
    let mut waits = Vec::new();
    for s in &sent {
        for m in s.messages() {
            match m {
                Message::Ping(p) => {
                    ping_at.insert(p.seq, s.at);
                }
                Message::PingReq(r) => {
                    if let Some(at) = ping_at.remove(&r.seq) {
                        waits.push(s.at.saturating_since(at));
                    }
                }
                _ => {}
            }
        }
    }
    assert!(waits.len() >= 2, "{waits:?}");
    assert_eq!(
        waits[0], config.probe_timeout,
        "the first probe is not yet stretched"
    );
    assert!(
        waits
            .iter()
            .all(|w| w.as_micros() % config.probe_timeout.as_micros() == 0),
        "waits are whole multiples of the probe timeout: {waits:?}"
    );
    assert!(
        waits.windows(2).all(|w| w[1] >= w[0]) && waits.last() > waits.first(),
        "waits grow while nothing answers: {waits:?}"
    );
}

// ---- suspicion ----

/// Cut n3 of 4 off until someone suspects it, then reconnect it and let it refute. Returns the
/// latest suspicion deadline any node had armed for it.
fn suspect_then_reconnect(c: &mut Cluster) -> Instant {
    let config = c.config.clone();
    c.isolate(3);
    let bound = config.probe_interval * 8;
    let took = c.run_until_true(bound, |c| !c.suspected(&name(3)).is_empty());
    assert!(took.is_some(), "n3 was not suspected within {bound:?}");
    // The first suspecter's deadline is the unconfirmed (longest) one.
    let deadline = (0..3)
        .filter_map(|o| {
            c.node(o)
                .membership
                .suspicions
                .get(&name(3))
                .map(|s| s.deadline())
        })
        .max()
        .expect("a suspicion is armed");
    c.reconnect(3);
    deadline
}

/// Pings `from` sent to `to` in `[since, until)`, and whether each carried a suspicion of `to`.
fn pings_to(c: &Cluster, from: usize, to: usize, since: Instant, until: Instant) -> Vec<bool> {
    c.sent_since(since)
        .filter(|s| s.at < until && s.from == from && s.to == addr(to))
        .map(Sent::messages)
        .filter(|m| {
            m.iter()
                .any(|m| matches!(m, Message::Ping(p) if p.target == name(to)))
        })
        .map(|m| {
            m.iter().any(|m| {
                matches!(m, Message::Member(u)
                    if u.name == name(to) && matches!(u.claim, Claim::Suspect { .. }))
            })
        })
        .collect()
}

/// Lifeguard's buddy system: while a node holds a member suspect, every ping it sends that
/// member carries the suspicion, so a live suspect learns of it from the first probe it gets.
#[test]
fn pings_to_a_suspect_carry_the_suspicion() {
    let mut config = Config::local();
    // A suspicion long enough for every prober's round-robin to come back to the suspect.
    config.suspicion_base = config.probe_interval * 16;
    let mut c = Cluster::new(4, config.clone(), 5);
    c.join_all();
    let start = c.now;
    c.isolate(3);
    let bound = config.probe_interval * 8;
    assert!(c
        .run_until_true(bound, |c| c.all_see(3, State::Suspect))
        .is_some());
    // Let every suspecter's round-robin come back to n3 at least once.
    c.run_for(config.probe_interval * 8);
    assert!(
        c.all_see(3, State::Suspect),
        "still suspected, not yet failed"
    );
    for o in 0..3 {
        let since = c
            .suspected(&name(3))
            .iter()
            .find(|(_, i)| *i == o)
            .map(|(at, _)| *at)
            .unwrap();
        let before = pings_to(&c, o, 3, start, since);
        // Strictly after: a probe started in the same instant may precede the suspicion.
        let during = pings_to(&c, o, 3, since + Duration::from_micros(1), c.now);
        assert!(
            before.iter().all(|carried| !carried),
            "n{o} before suspecting"
        );
        assert!(!during.is_empty(), "n{o} never pinged the suspect");
        assert!(during.iter().all(|carried| *carried), "n{o}: {during:?}");
    }
}

/// SWIM §4.2: a suspect that is alive hears of its suspicion (from a probe or from gossip),
/// raises its incarnation, and everyone sees it alive at the new incarnation; nobody ever marks
/// it failed.
#[test]
fn suspected_member_refutes_with_a_higher_incarnation() {
    let config = Config::local();
    let mut c = Cluster::new(4, config.clone(), 5);
    c.join_all();
    let deadline = suspect_then_reconnect(&mut c);
    let healed = c.now;

    // Buddy pings and gossip both go to a suspect at once; one round trip should do.
    let bound = config.probe_interval * 2;
    let took = c.run_until_true(bound, |c| {
        let inc = c.node(3).incarnation();
        inc > 0 && (0..3).all(|o| c.member_incarnation(o, 3) == Some(inc))
    });
    assert!(took.is_some(), "no refutation within {bound:?}");
    assert!(c
        .events_since(healed)
        .any(|(_, i, e)| *i == 3 && matches!(e, Event::Refuted { .. })));

    // n3 itself suspected the others while cut off; they refute in turn once its probes or
    // anti-entropy tell them (a failure claim it made meanwhile is refuted the same way).
    let bound = config.probe_interval * 8 + config.sync_interval * 2;
    let took = c.run_until_true(bound, |c| c.all_alive(&[0, 1, 2, 3]));
    assert!(took.is_some(), "not all alive within {bound:?}");

    c.run_until(deadline + config.probe_interval);
    assert!(
        c.failed(&name(3)).is_empty(),
        "a live member was marked failed"
    );
    assert!(c.all_see(3, State::Alive));
}

/// Timers guard an incarnation (STYLE habit 3): once a suspicion is refuted, its timer fires
/// at the original deadline and does nothing.
#[test]
fn refuted_suspicion_timer_does_nothing() {
    let config = Config::local();
    let mut c = Cluster::new(4, config.clone(), 6);
    c.join_all();
    let deadline = suspect_then_reconnect(&mut c);
    let bound = config.probe_interval * 2;
    let took = c.run_until_true(bound, |c| {
        (0..3).all(|o| c.node(o).membership.suspicions.is_empty())
    });
    assert!(took.is_some(), "suspicion not lifted within {bound:?}");
    assert!(c.now < deadline, "refuted before the timer was due");

    c.run_until(deadline + Duration::from_millis(1));
    c.run_for(config.probe_interval * 4);
    assert!(c.all_see(3, State::Alive));
    assert!(c.failed(&name(3)).is_empty());
}

/// SWIM §4.2 with Lifeguard: a crashed member is detected by every other member within one
/// round-robin pass of probes plus the longest suspicion, and is never declared failed before
/// the shortest suspicion has run. Checked with the lan and local presets.
#[test]
fn crashed_member_is_failed_everywhere_within_the_bound() {
    for config in [Config::local(), Config::lan()] {
        let n = 5;
        let mut c = Cluster::new(n, config.clone(), 7);
        c.join_all();
        c.run_for(config.probe_interval);
        c.isolate(4);
        let (min, max) = suspicion_window(&config, n);
        // Each survivor probes every member once per pass of n - 1 periods (a pass boundary can
        // add up to one more pass in the worst case); one period for the probe itself; then the
        // unconfirmed suspicion, and a few gossip rounds to spread the verdict.
        let bound = config.probe_interval * (2 * n as u32) + max + config.gossip_interval * 3;
        let took = c.run_until_true(bound, |c| c.all_see(4, State::Failed));
        assert!(
            took.is_some(),
            "{config:?}: not failed everywhere within {bound:?}"
        );

        let first_suspicion = c.suspected(&name(4)).iter().map(|(at, _)| *at).min();
        let first_suspicion = first_suspicion.expect("failure goes through suspicion");
        for (at, i) in c.failed(&name(4)) {
            assert!(
                at.saturating_since(first_suspicion) >= min,
                "n{i} failed n4 {:?} after the first suspicion, under the {min:?} minimum",
                at.saturating_since(first_suspicion)
            );
        }
    }
}

/// Lifeguard §4.2: independent confirmations shrink the suspicion timeout, so with 8 members
/// (enough confirmers) a dead member is declared failed nearer the minimum than the maximum.
/// Confirmers are picked at random, so the latency is averaged over a few seeds.
#[test]
fn confirmations_shrink_the_suspicion_timeout() {
    let config = Config::lan();
    let n = 8;
    let (min, max) = suspicion_window(&config, n);
    let runs = 4;
    let mut total = Duration::ZERO;
    for seed in 0..runs {
        let mut c = Cluster::new(n, config.clone(), 80 + seed);
        c.join_all();
        c.run_for(config.probe_interval);
        c.isolate(7);
        let bound = config.probe_interval * (2 * n as u32) + max + config.gossip_interval * 3;
        let took = c.run_until_true(bound, |c| c.all_see(7, State::Failed));
        assert!(took.is_some(), "not failed everywhere within {bound:?}");

        // The cluster's detection latency: from the first suspicion to the first failure (the
        // others then hear the verdict). Without confirmations it would be the maximum.
        let first_suspicion = c
            .suspected(&name(7))
            .iter()
            .map(|(at, _)| *at)
            .min()
            .unwrap();
        let first_failure = c.failed(&name(7)).iter().map(|(at, _)| *at).min().unwrap();
        let took = first_failure.saturating_since(first_suspicion);
        assert!(took >= min, "{took:?} under the minimum {min:?}");
        assert!(took < max, "{took:?}: no confirmation at all");
        total += took;
    }
    let mean = total / runs as u32;
    assert!(
        mean < (min + max) / 2,
        "mean {mean:?} is nearer the maximum {max:?} than the minimum {min:?}"
    );
}

// ---- lifecycle ----

/// A graceful leave (memberlist's `left`): the others mark the leaver left, never suspect or
/// fail it; the leaver reports `LeaveComplete` and from then on ignores every input.
#[test]
fn graceful_leave_is_left_never_failed() {
    let config = Config::local();
    let mut c = Cluster::new(4, config.clone(), 9);
    c.join_all();
    let start = c.now;
    c.command(3, Command::Leave).unwrap();
    let bound = config.leave_propagate + config.probe_interval;
    let took = c.run_until_true(bound, |c| c.all_see(3, State::Left));
    assert!(took.is_some(), "the leave did not spread within {bound:?}");
    let took = c.run_until_true(bound, |c| c.node(3).lifecycle() == Lifecycle::Stopped);
    assert!(took.is_some(), "the leaver did not stop within {bound:?}");
    let done = c
        .events_since(start)
        .filter(|(_, i, e)| *i == 3 && *e == Event::LeaveComplete)
        .map(|(at, ..)| *at)
        .collect::<Vec<_>>();
    assert_eq!(done.len(), 1);
    assert!(done[0] >= start + config.leave_propagate);

    // Long enough for any stray suspicion to have become a failure.
    c.run_for(config.probe_interval * 8 + suspicion_window(&config, 4).1);
    assert!(c.all_see(3, State::Left));
    assert!(c.suspected(&name(3)).is_empty() && c.failed(&name(3)).is_empty());
    for o in 0..3 {
        assert!(c
            .events_since(start)
            .any(|(_, i, e)| *i == o && *e == Event::MemberLeft { name: name(3) }));
    }

    // Inert: sends nothing, answers nothing, has no deadline, refuses commands.
    assert!(c.sent_since(done[0]).all(|s| s.from != 3));
    assert_eq!(c.node(3).poll_timeout(), None);
    let now = c.now;
    c.inject(
        3,
        addr(0),
        &[Message::Ping(Ping {
            seq: 1,
            target: name(3),
        })],
    );
    c.node_mut(3).handle_timeout(now + config.probe_interval);
    c.flush(3);
    assert!(c.sent_since(done[0]).all(|s| s.from != 3));
    assert_eq!(c.command(3, Command::Leave), Err(CommandError::NotRunning));
}

/// Joining retries until a seed answers, the wait doubling from `join_retry_interval` up to
/// `join_retry_max`; the first answer completes the join.
#[test]
fn join_retries_with_doubling_backoff_until_the_seed_answers() {
    let config = Config::local();
    let mut c = Cluster::new(2, config.clone(), 10);
    c.cut_link(0, 1);
    c.cut_link(1, 0);
    c.command(
        1,
        Command::Join {
            seeds: vec![addr(0)],
        },
    )
    .unwrap();

    let attempts = |c: &Cluster| -> Vec<Instant> {
        c.sent
            .iter()
            .filter(|s| s.from == 1 && s.to == addr(0))
            .filter(|s| {
                s.messages().iter().any(|m| {
                    matches!(m, Message::PushPull(p) if p.reply_wanted
                        && p.members.0.iter().any(|u| u.name == name(1)))
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
    let took = c.run_until_true(total + config.join_retry_max, |c| {
        attempts(c).len() > expected.len()
    });
    assert!(took.is_some());
    assert!(c
        .events
        .iter()
        .all(|(_, _, e)| !matches!(e, Event::Joined { .. })));

    c.cut.clear();
    let took = c.run_until_true(config.join_retry_max + config.probe_interval, |c| {
        c.events
            .iter()
            .any(|(_, i, e)| *i == 1 && *e == Event::Joined { via: addr(0) })
    });
    assert!(
        took.is_some(),
        "the join did not complete once the seed was reachable"
    );
    c.run_for(config.probe_interval);
    assert!(c.all_alive(&[0, 1]));

    let times = attempts(&c);
    let waits: Vec<Duration> = times
        .windows(2)
        .map(|w| w[1].saturating_since(w[0]))
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
    let mut c = Cluster::new(4, config.clone(), 11);
    c.join_all();
    c.crash(3);
    let bound = config.probe_interval * 8 + suspicion_window(&config, 4).1;
    assert!(c
        .run_until_true(bound, |c| c.all_see(3, State::Failed))
        .is_some());

    let restarted = c.now;
    c.start(3, name(3), 99);
    assert_eq!(c.node(3).incarnation(), 0);
    c.command(
        3,
        Command::Join {
            seeds: vec![addr(0)],
        },
    )
    .unwrap();
    let bound = config.probe_interval * 4;
    let took = c.run_until_true(bound, |c| {
        let inc = c.node(3).incarnation();
        inc > 0
            && c.all_alive(&[0, 1, 2, 3])
            && (0..3).all(|o| c.member_incarnation(o, 3) == Some(inc))
    });
    assert!(
        took.is_some(),
        "the restarted node was not alive everywhere within {bound:?}"
    );
    assert!(c
        .events_since(restarted)
        .any(|(_, i, e)| *i == 3 && matches!(e, Event::Refuted { .. })));
    c.run_for(suspicion_window(&config, 4).1);
    assert!(c.all_alive(&[0, 1, 2, 3]));
}

/// Names are unique: a second node claiming a live member's name from another address is
/// refused with `NameConflict`, and the original stays alive at its own address everywhere.
/// (A twin that joins through a seed stands down by itself: `hostile::a_twin_refuses_to_join_and_names_the_holder`;
/// this is the claim of one that never asked, gossiped above the holder's incarnation.)
#[test]
fn name_conflict_is_refused() {
    let config = Config::local();
    let mut c = Cluster::new(3, config.clone(), 12);
    c.join_all();
    let start = c.now;
    let mut profile = c.node(0).member(&name(1)).unwrap().profile.to_profile();
    profile.addr = addr(3);
    let claim = Message::Member(MemberUpdate {
        name: name(1),
        incarnation: c.member_incarnation(0, 1).unwrap() + 1,
        claim: Claim::Alive,
        profile,
    });
    for o in [0, 2] {
        c.inject(o, addr(3), std::slice::from_ref(&claim));
    }
    c.run_for(config.sync_interval * 2);

    let refused = c.events_since(start).any(|(_, i, e)| {
        [0, 2].contains(i)
            && *e
                == Event::NameConflict {
                    name: name(1),
                    known: addr(1),
                    claimed: addr(3),
                }
    });
    assert!(refused, "no member reported the conflict");
    for o in [0, 2] {
        let m = c.node(o).member(&name(1)).unwrap();
        assert_eq!(
            (m.state, m.profile.addr),
            (State::Alive, addr(1)),
            "seen by n{o}"
        );
    }
    assert!(c.suspected(&name(1)).is_empty() && c.failed(&name(1)).is_empty());
    assert_eq!(c.node(1).lifecycle(), Lifecycle::Active);
}

/// Healing (SPEC §1): after a partition long enough for each side to fail the other, reconnect
/// attempts to failed members and push-pull bring every node back to alive everywhere within
/// a reconnect interval and a few anti-entropy rounds.
#[test]
fn partition_heals_through_reconnect_and_push_pull() {
    let config = Config::local();
    let n = 6;
    let mut c = Cluster::new(n, config.clone(), 13);
    c.join_all();
    let (left, right) = ([0, 1, 2], [3, 4, 5]);
    for a in left {
        for b in right {
            c.cut_link(a, b);
            c.cut_link(b, a);
        }
    }
    let bound = config.probe_interval * (2 * n as u32) + suspicion_window(&config, n).1 * 2;
    let split = c.run_until_true(bound, |c| {
        left.iter().all(|&a| {
            right.iter().all(|&b| {
                c.member_state(a, b) == Some(State::Failed)
                    && c.member_state(b, a) == Some(State::Failed)
            })
        })
    });
    assert!(
        split.is_some(),
        "the sides did not fail each other within {bound:?}"
    );
    assert!(
        c.all_alive(&left) && c.all_alive(&right),
        "each side stays whole"
    );

    c.cut.clear();
    let all: Vec<usize> = (0..n).collect();
    // Some node's reconnect tick comes within one reconnect interval; its sync probe starts a
    // push-pull across, whose refutations gossip on; anti-entropy mops up the rest.
    let healed_at = c.now;
    let bound = config.reconnect_interval + config.sync_interval * 2;
    let healed = c.run_until_true(bound, |c| c.all_alive(&all));
    assert!(healed.is_some(), "not healed within {bound:?}");
    let across = |s: &Sent| index_of(s.to).is_some_and(|to| (to < 3) != (s.from < 3));
    let push_pulls = c
        .sent_since(healed_at)
        .filter(|s| across(s))
        .flat_map(Sent::messages)
        .filter(|m| matches!(m, Message::PushPull(_)))
        .count();
    assert!(push_pulls > 0, "healed without a push-pull across");
}

// ---- dissemination ----

/// SPEC §1: every datagram fits the MTU budget, even with long dissemination queues from many
/// members joining at once (the harness checks every datagram of every test).
#[test]
fn mass_join_keeps_every_datagram_within_budget() {
    let config = Config::local();
    let n = 40;
    // Tags make each alive update ~150 bytes, so a queue of n of them overflows any datagram.
    let mut c = Cluster::with_tags(n, config.clone(), 14, 4);
    let mut deepest = 0;
    for i in 1..n {
        c.command(
            i,
            Command::Join {
                seeds: vec![addr(0)],
            },
        )
        .unwrap();
    }
    let all: Vec<usize> = (0..n).collect();
    // As in `join_all`: gossip, then anti-entropy for what gossip missed.
    let bound = config.probe_interval * 20 + config.sync_interval * 2;
    let took = c.run_until_true(bound, |c| {
        deepest = (0..n)
            .map(|i| c.node(i).queue_depth())
            .fold(deepest, usize::max);
        (0..n).all(|i| c.node(i).counts().alive == n - 1) && c.all_alive(&all)
    });
    assert!(
        took.is_some(),
        "{n} nodes did not converge within {bound:?}"
    );
    // The fault took effect: queues were long and datagrams were filled towards the budget.
    assert!(deepest >= n / 2, "the deepest queue held only {deepest}");
    let largest = c.sent.iter().map(|s| s.payload.len()).max().unwrap();
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
    let mut c = Cluster::new(2, config.clone(), 15);
    let members = 500;
    let now = c.now;
    for k in 0..members {
        let tag = Tag {
            key: Label::new("role").unwrap(),
            value: BoundedString(format!("worker-{k}")),
        };
        let update = MemberUpdate {
            name: NodeName::new(&format!("m{k}")).unwrap(),
            incarnation: 0,
            claim: Claim::Alive,
            profile: Profile {
                addr: SocketAddr::from(([10, 0, (k / 256) as u8, (k % 256) as u8], 7946)),
                dc: Label::new("dc1").unwrap(),
                tags: BoundedVec::new(vec![tag]),
            },
        };
        let node = c.node_mut(0);
        let (m, cat, io) = (&mut node.membership, &mut node.catalog, &mut node.io);
        assert!(m.apply_update(io, cat, now, update, Source::Gossip));
    }
    c.flush(0);
    let start = c.now;
    c.command(
        1,
        Command::Join {
            seeds: vec![addr(0)],
        },
    )
    .unwrap();
    let took = c.run_until_true(config.join_retry_interval, |c| {
        c.events
            .iter()
            .any(|(_, i, e)| *i == 1 && matches!(e, Event::Joined { .. }))
    });
    assert!(took.is_some(), "the join did not complete");
    let bound = config.probe_interval * 4;
    let took = c.run_until_true(bound, |c| c.node(1).counts().alive == members + 1);
    assert!(
        took.is_some(),
        "the joiner did not learn the table within {bound:?}"
    );

    let parts = c
        .sent_since(start)
        .filter(|s| s.from == 0 && s.to == addr(1))
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
        let m = c.node(1).member(&NodeName::new(&format!("m{k}")).unwrap());
        assert_eq!(m.map(|m| m.state), Some(State::Alive), "m{k}");
    }
    assert_eq!(c.member_state(1, 0), Some(State::Alive));
}

/// SWIM §4.1: the originator of an update sends it `retransmit_mult * ceil(log10(N + 1))` times
/// in all, then drops it from its queue.
#[test]
fn an_update_is_retransmitted_a_bounded_number_of_times() {
    let config = Config::local();
    let n = 5;
    let mut c = Cluster::new(n, config.clone(), 16);
    c.join_all();
    let quiet = c.run_until_true(config.probe_interval * 20, |c| {
        (0..n).all(|i| c.node(i).queue_depth() == 0)
    });
    assert!(quiet.is_some(), "queues never drained after the join");

    // A suspicion that only n0 hears: its refutation is news that n0 alone originates.
    let start = c.now;
    let profile = c.node(0).profile().clone();
    c.inject(
        0,
        addr(1),
        &[Message::Member(MemberUpdate {
            name: name(0),
            incarnation: 0,
            claim: Claim::Suspect { by: name(1) },
            profile,
        })],
    );
    assert_eq!(c.node(0).incarnation(), 1);
    assert_eq!(c.node(0).queue_depth(), 1);
    let bound = config.gossip_interval * 20;
    assert!(c
        .run_until_true(bound, |c| c.node(0).queue_depth() == 0)
        .is_some());
    c.run_for(config.gossip_interval * 10);

    let sends = c
        .sent_since(start)
        .filter(|s| s.from == 0)
        .flat_map(Sent::messages)
        .filter(|m| {
            matches!(m, Message::Member(u)
                if u.name == name(0) && u.incarnation == 1 && u.claim == Claim::Alive)
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
    assert_eq!(c.node(0).queue_depth(), 0);
}

/// Anti-entropy compares sums of per-member hashes: two members moving from (0, failed) to
/// (1, alive), as after a healed partition, must change the sum, or the divergence stays hidden
/// from sync probes (it did with raw FNV-1a values).
#[test]
fn digest_sees_members_come_back_at_a_higher_incarnation() {
    use crate::swim::members::member_hash;
    for a in 0..20 {
        for b in (a + 1)..20 {
            let sum = |inc, state| {
                member_hash(&name(a), inc, state).wrapping_add(member_hash(&name(b), inc, state))
            };
            assert_ne!(sum(0, State::Failed), sum(1, State::Alive), "n{a} n{b}");
        }
    }
}

/// The contract of the module: the same seed and inputs give the same datagrams, byte for
/// byte, at the same times; another seed gives others.
#[test]
fn same_seed_same_transmits() {
    let run = |seed| {
        let config = Config::local();
        let mut c = Cluster::new(4, config.clone(), seed);
        c.join_all();
        c.run_for(config.probe_interval * 6);
        c.isolate(3);
        c.run_for(config.probe_interval * 6);
        c.sent
    };
    let (a, b) = (run(17), run(17));
    assert!(a.len() > 100, "only {} datagrams", a.len());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    assert_ne!(a, run(18));
}

mod hostile;
mod queries;
mod registry;
mod retune;
mod traffic;

/// A newcomer learns the whole table from its seed's answer to its join and passes none of it
/// on (nothing in it is news to the cluster); the cluster still learns of the newcomer, and a
/// stranger learnt from any other push-pull is gossiped as before.
#[test]
fn a_join_transfer_is_believed_but_not_gossiped_on() {
    let config = Config::local();
    let n = 12;
    let mut c = Cluster::new(n, config.clone(), 21);
    c.join_all();
    let quiet = c.run_until_true(config.probe_interval * 30, |c| {
        (0..n).all(|i| c.node(i).queue_depth() == 0)
    });
    assert!(quiet.is_some(), "queues never drained after the join");

    let start = c.now;
    c.start(n, name(n), 21_000 + n as u64);
    c.command(
        n,
        Command::Join {
            seeds: vec![addr(0)],
        },
    )
    .unwrap();
    let joined = c.run_until_true(config.probe_interval, |c| {
        c.events_since(start)
            .any(|(_, i, e)| *i == n && matches!(e, Event::Joined { .. }))
    });
    assert!(joined.is_some(), "the newcomer never joined");
    // It holds every member (the transfer was believed) and queues at most its own record.
    assert_eq!(c.node(n).counts().alive, n);
    assert!(
        c.node(n).queue_depth() <= 1,
        "queued {} after the join",
        c.node(n).queue_depth()
    );
    let all: Vec<usize> = (0..=n).collect();
    let bound = config.probe_interval * 10;
    assert!(c.run_until_true(bound, |c| c.all_alive(&all)).is_some());
    let passed_on = c
        .sent_since(start)
        .filter(|s| s.from == n)
        .flat_map(Sent::messages)
        .filter(|m| matches!(m, Message::Member(u) if u.name != name(n)))
        .count();
    assert_eq!(passed_on, 0, "the newcomer gossiped others' records");

    // The same records from a push-pull that answers no join of ours are gossiped on.
    let stranger = n + 1;
    let record = MemberUpdate {
        name: name(stranger),
        incarnation: 0,
        claim: Claim::Alive,
        profile: Profile {
            addr: addr(stranger),
            dc: Label::new("dc1").unwrap(),
            tags: BoundedVec::default(),
        },
    };
    c.inject(
        n,
        addr(3),
        &[Message::PushPull(wire::PushPull {
            reply_wanted: false,
            members: BoundedVec::new(vec![record]),
        })],
    );
    assert_eq!(
        c.node(n).queue_depth(),
        1,
        "a synced stranger was not queued"
    );
}
