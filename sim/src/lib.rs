//! hera-sim: a deterministic discrete-event simulator for hera's protocol core.
//!
//! # The model
//!
//! The world runs many real [`hera::Node`]s, the same state machine the `hera` binary runs, and
//! feeds them real encoded datagrams. There are no threads and no real time:
//!
//! - **One virtual clock** (`now`, microseconds since the start of the run) and **one event
//!   queue**, a binary heap of small events (a datagram arriving, a node's deadline) ordered by
//!   time and then by the order they were scheduled, so ties break the same way every run.
//! - **Each node has its own clock**: a fixed offset from the virtual clock (a realistic Unix
//!   time plus a per-node skew), so the core sees wall-clock-like `Instant`s that disagree a
//!   little, as real hosts do.
//! - **One seeded generator** (ChaCha8, whose stream is stable across versions) draws every
//!   random choice of the world: node seeds, clock skews, the network's losses and delays, and
//!   the scenarios' choices. Same seed and same commit: the same run, bit for bit; the world
//!   keeps a running hash of every delivered datagram and every event to prove it.
//! - **Each node's deadline** from `poll_timeout` becomes one timer event; a node is only woken
//!   when its earliest deadline passes or a datagram reaches it.
//! - **Faults**: the [`network`] drops, duplicates, delays and reorders datagrams, and cuts
//!   partitions; a node can be **crashed** (its state is gone; datagrams to it are dropped),
//!   **restarted** (a new `Node` with the same name and address, which joins again), **paused**
//!   (a stalled process: its deadlines and inbound datagrams wait until it wakes, then all are
//!   handled at once, late), or asked to **leave**.
//!
//! Around the world: [`scenario`] (scenarios as code, and the swarm), [`check`] (the online
//! monitor and the convergence checkers), [`report`] (figures, human and JSON).
//!
//! Over 600 lines: `World` is one state machine whose event loop, faults and views share its
//! private queue and slots; what only tests need to see is in [`observe`].

// clippy.toml keeps std's randomly seeded maps out of the core the simulator drives; the
// simulator's own bookkeeping (checkers, link overrides) keeps them, and the test
// `same_seed_same_run_bit_for_bit` checks that the runs stay the same.
#![allow(clippy::disallowed_types)]

pub mod check;
pub mod network;
pub mod observe;
pub mod report;
pub mod scenario;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use hera::config::Config;
use hera::names::{InstanceId, Label, NodeName};
use hera::node::{Event, Lifecycle, Outputs};
use hera::registry::InstanceSpec;
use hera::{Command, CommandError, Identity, Instant, Node, Reply};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::Monitor;
use crate::network::{below, Fate, LinkModel, Network};
use crate::observe::Log;

/// The virtual clock starts here on every node's clock (plus its skew): a realistic Unix time,
/// so that hybrid logical clocks built on it look like real ones.
pub const EPOCH_US: u64 = 1_700_000_000_000_000;
/// Every node listens on this port, at an address derived from its index.
pub const PORT: u16 = 7946;
/// Events handled at one instant beyond which the world is declared livelocked.
const SAME_INSTANT_EVENTS_MAX: u64 = 5_000_000;

/// How a world is built.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    pub nodes: usize,
    pub config: Config,
    pub model: LinkModel,
    pub seed: u64,
    /// Nodes' clocks differ from each other by up to this much.
    pub clock_skew: Duration,
    /// Print a line per state change.
    pub verbose: bool,
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    NotStarted,
    Up,
    Crashed,
}

#[derive(Debug)]
struct Slot {
    node: Option<Node>,
    name: NodeName,
    addr: SocketAddr,
    /// This node's clock minus the virtual clock, in microseconds.
    clock_offset: u64,
    /// Bumped at every crash and restart, so the timer events of an earlier life do nothing.
    life: u32,
    /// The time of the timer event queued for this node, if any.
    timer_at: Option<u64>,
    /// A paused node handles nothing before this time.
    paused_until: u64,
    status: Status,
    /// Bytes of every datagram any node addressed to this slot (before the network's fate):
    /// what an adversary at this address gets back.
    bytes_to: u64,
    /// Tags this node's identity carries from its next start on.
    tags: Vec<hera::wire::Tag>,
}

/// What happens at one point of virtual time.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    at: u64,
    /// Ties at the same time go in the order they were scheduled.
    seq: u64,
    what: What,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    Deliver {
        from: u32,
        to: u32,
        payload: Bytes,
    },
    Timer {
        node: u32,
        life: u32,
    },
    /// ICMP port unreachable, back to `node` (in its life `life`) about a datagram it sent to
    /// `about`, which was down.
    PortUnreachable {
        node: u32,
        life: u32,
        about: u32,
    },
}

/// The simulated cluster: clock, event queue, network, nodes and the monitor watching them.
#[derive(Debug)]
pub struct World {
    now: u64,
    config: Config,
    seed: u64,
    slots: Vec<Slot>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    next_seq: u64,
    rng: ChaCha8Rng,
    clock_skew_us: u64,
    pub net: Network,
    pub monitor: Monitor,
    outputs: Outputs,
    hash: u64,
    verbose: bool,
    /// Inputs handed to nodes (datagrams, timeouts, commands): the work done.
    pub inputs: u64,
    /// The sender of the datagram being handled, so events can be traced to their cause.
    cause: Option<u32>,
    /// Datagram bytes in the queue now, and the most there ever were.
    in_flight_bytes: u64,
    pub in_flight_peak_bytes: u64,
    /// The most events the queue ever held.
    pub queue_peak: usize,
    /// Every datagram sent and every event, kept only when a test asks ([`World::keep_log`]).
    log: Option<Log>,
    /// A datagram to a crashed node comes back to its sender as an ICMP port-unreachable
    /// report one link latency later, as on a host whose process died (off by default: a
    /// crashed host, or a firewall that drops, sends nothing back).
    pub port_unreachable: bool,
}

impl World {
    pub fn new(options: WorldOptions) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let clock_skew_us = options.clock_skew.as_micros() as u64;
        let mut world = World {
            now: 0,
            monitor: Monitor::new(&options.config, options.nodes),
            config: options.config,
            seed: options.seed,
            slots: Vec::with_capacity(options.nodes),
            queue: BinaryHeap::new(),
            next_seq: 0,
            net: Network::new(options.model, 0),
            clock_skew_us,
            outputs: Outputs::default(),
            hash: 0xcbf2_9ce4_8422_2325,
            verbose: options.verbose,
            inputs: 0,
            cause: None,
            in_flight_bytes: 0,
            in_flight_peak_bytes: 0,
            queue_peak: 0,
            log: None,
            port_unreachable: false,
            rng: ChaCha8Rng::seed_from_u64(0),
        };
        for _ in 0..options.nodes {
            world.add_slot(&mut rng);
        }
        world.rng = rng;
        world
    }

    fn add_slot(&mut self, rng: &mut ChaCha8Rng) -> u32 {
        let i = self.slots.len() as u32;
        self.slots.push(Slot {
            node: None,
            name: node_name(i),
            addr: addr_of(i),
            clock_offset: EPOCH_US + below(rng, self.clock_skew_us + 1),
            life: 0,
            timer_at: None,
            paused_until: 0,
            status: Status::NotStarted,
            bytes_to: 0,
            tags: Vec::new(),
        });
        self.net.add_node();
        self.monitor.add_node();
        i
    }

    /// One more (not yet started) node; returns its index.
    pub fn add_node(&mut self) -> u32 {
        let mut rng = std::mem::replace(&mut self.rng, ChaCha8Rng::seed_from_u64(0));
        let i = self.add_slot(&mut rng);
        self.rng = rng;
        i
    }

    /// One more (not yet started) node under node `of`'s name, at an address of its own: a
    /// cloned VM whose host name, the default node name, is the same.
    pub fn add_twin(&mut self, of: u32) -> u32 {
        let i = self.add_node();
        self.slots[i as usize].name = self.slots[of as usize].name.clone();
        i
    }

    /// Move not-yet-started node `i`'s clock `ahead` (a host whose clock is wrong). Its own
    /// timers stay consistent; only what it stamps with its wall clock is off.
    pub fn skew_clock(&mut self, i: u32, ahead: Duration) {
        let slot = &mut self.slots[i as usize];
        assert!(
            slot.node.is_none(),
            "scenario bug: skew a running node's clock"
        );
        slot.clock_offset += ahead.as_micros() as u64;
    }

    // ---- views ----

    /// Virtual time since the start of the run.
    pub fn now(&self) -> Duration {
        Duration::from_micros(self.now)
    }

    pub fn now_us(&self) -> u64 {
        self.now
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Running hash of every delivered datagram and every event, in order.
    pub fn trace_hash(&self) -> u64 {
        self.hash
    }

    pub fn node(&self, i: u32) -> Option<&Node> {
        self.slots[i as usize].node.as_ref()
    }

    pub fn name(&self, i: u32) -> &NodeName {
        &self.slots[i as usize].name
    }

    pub fn addr(&self, i: u32) -> SocketAddr {
        self.slots[i as usize].addr
    }

    pub fn status(&self, i: u32) -> Status {
        self.slots[i as usize].status
    }

    pub fn is_paused(&self, i: u32) -> bool {
        self.slots[i as usize].paused_until > self.now
    }

    /// Bytes the nodes addressed to slot `i` so far (lost or not, running or not).
    pub fn bytes_sent_to(&self, i: u32) -> u64 {
        self.slots[i as usize].bytes_to
    }

    /// Running, active (not leaving or left) and not paused.
    pub fn is_healthy(&self, i: u32) -> bool {
        !self.is_paused(i)
            && self
                .node(i)
                .is_some_and(|n| n.lifecycle() == Lifecycle::Active)
    }

    /// Indices of healthy nodes.
    pub fn healthy(&self) -> Vec<u32> {
        (0..self.slots.len() as u32)
            .filter(|&i| self.is_healthy(i))
            .collect()
    }

    /// The world's generator, for scenario choices (part of the same stable stream).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// This node's clock now.
    pub fn local_now(&self, i: u32) -> Instant {
        Instant::from_micros(self.slots[i as usize].clock_offset + self.now)
    }

    /// Bytes the event queue holds, roughly (payloads shared with nothing are counted).
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    // ---- faults and operator actions ----

    /// Place not-yet-started node `i` in data centre `dc` (its identity says `dc{dc+1}`).
    pub fn set_dc(&mut self, i: u32, dc: u8) {
        assert!(
            self.slots[i as usize].node.is_none(),
            "scenario bug: move a running node to another data centre"
        );
        self.net.set_dc(i, dc);
        self.monitor.set_dc(i, dc);
    }

    /// Create node `i` now (it does not join anyone yet).
    pub fn start(&mut self, i: u32) {
        let seed = self.rng.next_u64();
        let now = self.local_now(i);
        let dc =
            Label::new(&format!("dc{}", u32::from(self.net.dc_of(i)) + 1)).expect("a valid label");
        let slot = &mut self.slots[i as usize];
        let identity = Identity {
            name: slot.name.clone(),
            addr: slot.addr,
            dc,
            tags: slot.tags.clone(),
        };
        slot.node = Some(Node::new(self.config.clone(), identity, seed, now));
        slot.life += 1;
        slot.timer_at = None;
        slot.paused_until = 0;
        slot.status = Status::Up;
        self.monitor.on_start(i, self.now);
        self.after_input(i);
    }

    /// Give node `i` a command, as its operator or API would.
    pub fn command(&mut self, i: u32, command: Command) -> Result<Reply, CommandError> {
        let now = self.local_now(i);
        let node = self.slots[i as usize]
            .node
            .as_mut()
            .ok_or(CommandError::NotRunning)?;
        self.inputs += 1;
        let reply = node.handle_command(now, command);
        self.after_input(i);
        reply
    }

    /// Node `i` joins through the nodes `via`.
    pub fn join(&mut self, i: u32, via: &[u32]) {
        let seeds = via.iter().map(|&v| self.addr(v)).collect();
        if let Err(e) = self.command(i, Command::Join { seeds }) {
            self.say(format_args!("{} join refused: {e}", self.name(i)));
        }
    }

    /// Node `i` stops dead: its state is gone, datagrams to it are lost.
    pub fn crash(&mut self, i: u32) {
        let slot = &mut self.slots[i as usize];
        slot.node = None;
        slot.life += 1;
        slot.timer_at = None;
        slot.status = Status::Crashed;
        self.say(format_args!("crash {}", self.name(i)));
        self.monitor.on_crash(i, self.now);
    }

    /// A new process with the same name and address; it joins through `via`.
    pub fn restart(&mut self, i: u32, via: &[u32]) {
        self.say(format_args!("restart {}", self.name(i)));
        self.start(i);
        self.join(i, via);
    }

    /// Node `i` stalls for `d`: nothing reaches it and none of its timers fire until then.
    pub fn pause(&mut self, i: u32, d: Duration) {
        let until = self.now + d.as_micros() as u64;
        self.slots[i as usize].paused_until = until;
        self.say(format_args!("pause {} for {:?}", self.name(i), d));
        self.monitor.excuse(i, until);
    }

    /// A datagram from `from` reaches `to` now, whatever `from` is doing: a replayed or
    /// forged datagram, for tests of what the core accepts. It still meets partitions.
    pub fn inject(&mut self, from: u32, to: u32, payload: Bytes) {
        self.schedule(self.now, What::Deliver { from, to, payload });
    }

    /// Node `i` reads an ICMP port-unreachable report about `about`'s address now, whether or
    /// not `about` is down: a forged report, for tests of what the core makes of one.
    pub fn forge_port_unreachable(&mut self, i: u32, about: u32) {
        let life = self.slots[i as usize].life;
        self.schedule(
            self.now,
            What::PortUnreachable {
                node: i,
                life,
                about,
            },
        );
    }

    // ---- registry writes ----

    /// Node `i` registers (or re-registers) an instance through its API, as a client would; a
    /// write that changed the registry is logged for the registry checkers (and counted in the
    /// write-reach figures if `timed`). Returns the instance's id.
    pub fn register(
        &mut self,
        i: u32,
        spec: InstanceSpec,
        timed: bool,
    ) -> Result<InstanceId, CommandError> {
        let id = self.register_only(i, spec)?;
        self.log_write(i, &id, timed, true);
        Ok(id)
    }

    /// Like [`World::register`] (untimed), but the write is logged for the convergence
    /// checkers only, not followed to the nodes that lack it: for bulk registrations (100,000
    /// instances), where following each would cost every registry change a look at thousands
    /// of open writes. Reach is not measured for them; resurrections are not watched (they
    /// are registrations, not deletions).
    pub fn register_bulk(
        &mut self,
        i: u32,
        spec: InstanceSpec,
    ) -> Result<InstanceId, CommandError> {
        let id = self.register_only(i, spec)?;
        self.log_write(i, &id, false, false);
        Ok(id)
    }

    fn register_only(&mut self, i: u32, spec: InstanceSpec) -> Result<InstanceId, CommandError> {
        match self.command(i, Command::Register(spec))? {
            Reply::Registered { id } => Ok(id),
            other => unreachable!("a registration answered {other:?}"),
        }
    }

    /// Node `i` deletes an instance everywhere (a tombstone), as a client would.
    pub fn deregister(&mut self, i: u32, id: &InstanceId, timed: bool) -> Result<(), CommandError> {
        self.command(i, Command::Deregister { id: id.clone() })?;
        self.log_write(i, id, timed, true);
        Ok(())
    }

    fn log_write(&mut self, i: u32, id: &InstanceId, timed: bool, follow: bool) {
        let Some(stored) = self.node(i).and_then(|n| n.registry().stored(id)) else {
            return;
        };
        let version = stored.version.clone();
        let service = stored.instance.as_ref().map(|x| x.service.clone());
        let what = if service.is_some() {
            "writes"
        } else {
            "deletes"
        };
        self.say(format_args!(
            "{} {what} {id} @{}.{}",
            self.name(i),
            version.wall_ms,
            version.counter
        ));
        self.monitor
            .on_write(self.now, i, id.clone(), service, version, timed, follow);
    }

    pub fn leave(&mut self, i: u32) {
        self.say(format_args!("leave {}", self.name(i)));
        if let Err(e) = self.command(i, Command::Leave) {
            self.say(format_args!("{} leave refused: {e}", self.name(i)));
        }
    }

    /// Full partition: each side is cut off from every other node, both ways.
    pub fn partition(&mut self, sides: &[&[u32]]) {
        self.say(format_args!(
            "partition into sides of {:?} (rest stays together)",
            sides.iter().map(|s| s.len()).collect::<Vec<_>>()
        ));
        self.net.partition(sides);
        self.monitor.excuse_all(u64::MAX);
    }

    /// Nothing from `from_side` reaches `to_side`; the reverse direction works.
    pub fn one_way(&mut self, from_side: &[u32], to_side: &[u32]) {
        self.say(format_args!(
            "one-way cut: {} nodes cannot reach {} nodes",
            from_side.len(),
            to_side.len()
        ));
        self.net.one_way(from_side, to_side);
        self.monitor.excuse_all(u64::MAX);
    }

    pub fn isolate(&mut self, i: u32) {
        self.say(format_args!("isolate {}", self.name(i)));
        self.net.isolate(i);
        // Once healed, the isolated node's stale failure claims reach everyone: until they
        // are refuted, any node may be accused because of this fault.
        self.monitor.excuse_all(u64::MAX);
    }

    /// Heal every partition and link override (loss of the link model stays).
    pub fn heal(&mut self) {
        self.say(format_args!("heal"));
        self.net.heal();
        self.monitor.on_heal(self.now);
    }

    pub fn set_loss(&mut self, loss: f64) {
        self.say(format_args!("loss {:.0}%", loss * 100.0));
        self.net.model.loss = loss;
    }

    // ---- running ----

    /// Run every event up to and including `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d.as_micros() as u64);
    }

    /// Run every event up to and including virtual time `t`, then set the clock to `t`.
    pub fn run_until(&mut self, t: u64) {
        let mut same_instant = 0u64;
        let mut last_at = self.now;
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > t {
                break;
            }
            let Some(Reverse(event)) = self.queue.pop() else {
                break;
            };
            if event.at == last_at {
                same_instant += 1;
                assert!(
                    same_instant < SAME_INSTANT_EVENTS_MAX,
                    "livelock at {}us (seed {})",
                    event.at,
                    self.seed
                );
            } else {
                same_instant = 0;
                last_at = event.at;
            }
            self.now = self.now.max(event.at);
            if let What::Deliver { payload, .. } = &event.what {
                self.in_flight_bytes -= payload.len() as u64;
            }
            self.handle(event);
        }
        self.now = self.now.max(t);
    }

    /// Run until `done` holds (checked every `step`) or `bound` has passed; returns how long
    /// it took, or None if the bound passed first.
    pub fn run_until_true(
        &mut self,
        bound: Duration,
        step: Duration,
        mut done: impl FnMut(&World) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let end = start + bound.as_micros() as u64;
        let step = step.as_micros().max(1) as u64;
        loop {
            if done(self) {
                return Some(Duration::from_micros(self.now - start));
            }
            if self.now >= end {
                return None;
            }
            self.run_until((self.now + step).min(end));
        }
    }

    fn handle(&mut self, event: Scheduled) {
        match event.what {
            What::Deliver { from, to, payload } => {
                let slot = &self.slots[to as usize];
                if !self.net.passes(from, to) {
                    self.net.stats.cut += 1;
                    return;
                }
                if slot.node.is_none() {
                    self.net.stats.to_down_node += 1;
                    let (crashed, sender_life) = (
                        slot.status == Status::Crashed,
                        self.slots[from as usize].life,
                    );
                    if self.port_unreachable && crashed {
                        let at = event.at + self.net.model.latency_us;
                        let (node, about) = (from, to);
                        let life = sender_life;
                        self.schedule(at, What::PortUnreachable { node, life, about });
                    }
                    return;
                }
                if slot.paused_until > event.at {
                    // A stalled process reads its socket when it wakes up.
                    let at = slot.paused_until;
                    self.schedule(at, What::Deliver { from, to, payload });
                    return;
                }
                self.net.stats.delivered += 1;
                self.net.stats.delivered_bytes += payload.len() as u64;
                self.eat(&event.at.to_le_bytes());
                self.eat(&from.to_le_bytes());
                self.eat(&to.to_le_bytes());
                self.eat(&payload);
                let (now, from_addr) = (self.local_now(to), self.addr(from));
                if let Some(node) = self.slots[to as usize].node.as_mut() {
                    self.inputs += 1;
                    node.handle_datagram(now, from_addr, &payload);
                }
                self.cause = Some(from);
                self.after_input(to);
                self.cause = None;
            }
            What::PortUnreachable {
                node: i,
                life,
                about,
            } => {
                let slot = &self.slots[i as usize];
                if slot.life != life || slot.node.is_none() {
                    return;
                }
                self.net.stats.port_unreachable += 1;
                self.eat(&event.at.to_le_bytes());
                self.eat(&about.to_le_bytes());
                let (now, addr) = (self.local_now(i), self.addr(about));
                if let Some(node) = self.slots[i as usize].node.as_mut() {
                    self.inputs += 1;
                    node.handle_port_unreachable(now, addr);
                }
                self.after_input(i);
            }
            What::Timer { node: i, life } => {
                let slot = &mut self.slots[i as usize];
                if slot.life != life || slot.timer_at != Some(event.at) {
                    // A timer event of an earlier life, or superseded by an earlier one.
                    return;
                }
                if slot.paused_until > event.at {
                    let at = slot.paused_until;
                    slot.timer_at = Some(at);
                    self.schedule(at, What::Timer { node: i, life });
                    return;
                }
                slot.timer_at = None;
                let now = self.local_now(i);
                if let Some(node) = self.slots[i as usize].node.as_mut() {
                    self.inputs += 1;
                    node.handle_timeout(now);
                }
                self.after_input(i);
            }
        }
    }

    fn schedule(&mut self, at: u64, what: What) {
        if let What::Deliver { payload, .. } = &what {
            self.in_flight_bytes += payload.len() as u64;
            self.in_flight_peak_bytes = self.in_flight_peak_bytes.max(self.in_flight_bytes);
        }
        self.queue_peak = self.queue_peak.max(self.queue.len() + 1);
        self.next_seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.next_seq,
            what,
        }));
    }

    /// Route what node `i` produced and re-arm its timer.
    fn after_input(&mut self, i: u32) {
        let mut out = std::mem::take(&mut self.outputs);
        let Some(node) = self.slots[i as usize].node.as_mut() else {
            self.outputs = out;
            return;
        };
        node.drain(&mut out);
        let deadline = node.poll_timeout();
        for t in out.transmits.drain(..) {
            if let Some(log) = self.log.as_mut() {
                log.on_send(&self.config, self.now, i, &t);
            }
            self.net.stats.paced_sent += u64::from(t.paced);
            let Some(to) = index_of_addr(t.to).filter(|&to| (to as usize) < self.slots.len())
            else {
                self.net.stats.unroutable += 1;
                continue;
            };
            self.slots[to as usize].bytes_to += t.payload.len() as u64;
            match self.net.fate(&mut self.rng, i, to, t.payload.len()) {
                Fate::Lost => {}
                Fate::Deliver(first, second) => {
                    if let Some(second) = second {
                        let payload = t.payload.clone();
                        self.schedule(
                            self.now + second,
                            What::Deliver {
                                from: i,
                                to,
                                payload,
                            },
                        );
                    }
                    let payload = t.payload;
                    self.schedule(
                        self.now + first,
                        What::Deliver {
                            from: i,
                            to,
                            payload,
                        },
                    );
                }
            }
        }
        let mut registry_changed = false;
        for e in out.events.drain(..) {
            registry_changed |= matches!(e, Event::RegistryChanged { .. });
            self.record_event(i, &e);
        }
        self.outputs = out;
        if registry_changed {
            if let Some(node) = self.slots[i as usize].node.as_ref() {
                self.monitor
                    .on_registry_changed(self.now, i, self.cause, node.registry());
            }
        }
        if let Some(deadline) = deadline {
            let slot = &mut self.slots[i as usize];
            let at = deadline
                .as_micros()
                .saturating_sub(slot.clock_offset)
                .max(self.now);
            if slot.timer_at.is_none_or(|t| at < t) {
                slot.timer_at = Some(at);
                let life = slot.life;
                self.schedule(at, What::Timer { node: i, life });
            }
        }
    }

    fn record_event(&mut self, i: u32, e: &Event) {
        if let Some(log) = self.log.as_mut() {
            log.on_event(self.now, i, e);
        }
        let (kind, subject) = event_key(e);
        self.eat(&self.now.to_le_bytes());
        self.eat(&i.to_le_bytes());
        self.eat(&[kind]);
        self.eat(subject.as_bytes());
        if self.verbose && !matches!(e, Event::Rejected { .. } | Event::RegistryChanged { .. }) {
            let about = match e {
                Event::MemberSuspected { name, .. }
                | Event::MemberRecovered { name }
                | Event::MemberFailed { name } => self
                    .node(i)
                    .and_then(|n| n.member(name))
                    .map(|m| format!(" @{}", { m.incarnation }))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            self.say(format_args!("{} {}{about}", self.name(i), describe(e)));
        }
        self.monitor.on_event(self.now, i, self.cause, e);
    }

    /// FNV-1a over the trace.
    fn eat(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.hash ^= u64::from(*b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// One verbose line, stamped with virtual time.
    pub fn say(&self, what: std::fmt::Arguments<'_>) {
        if self.verbose {
            let t = self.now;
            println!("[{:>5}.{:06}s] {what}", t / 1_000_000, t % 1_000_000);
        }
    }
}

/// A short code and the member an event is about, for the trace hash.
fn event_key(e: &Event) -> (u8, &str) {
    match e {
        Event::MemberJoined { name, .. } => (0, name.as_str()),
        Event::MemberSuspected { name, .. } => (1, name.as_str()),
        Event::MemberRecovered { name } => (2, name.as_str()),
        Event::MemberFailed { name } => (3, name.as_str()),
        Event::MemberLeft { name } => (4, name.as_str()),
        Event::MemberReaped { name } => (5, name.as_str()),
        Event::NameConflict { name, .. } => (6, name.as_str()),
        Event::Refuted { .. } => (7, ""),
        Event::Joined { .. } => (8, ""),
        Event::LeaveComplete => (9, ""),
        Event::Rejected { .. } => (10, ""),
        Event::CheckDue { check, .. } => (11, check.as_str()),
        Event::RegistryChanged { .. } => (12, ""),
        Event::ClockRejected { writer, .. } => (13, writer.as_str()),
        Event::ImplausibleClaim { name, .. } => (14, name.as_str()),
        Event::NameTaken { .. } => (15, ""),
        Event::QueryDone(_) => (16, ""),
    }
}

/// A compact description of an event for verbose output.
fn describe(e: &Event) -> String {
    match e {
        Event::MemberJoined { name, .. } => format!("sees {name} join"),
        Event::MemberSuspected { name, by } => format!("suspects {name} (by {by})"),
        Event::MemberRecovered { name } => format!("sees {name} alive again"),
        Event::MemberFailed { name } => format!("marks {name} failed"),
        Event::MemberLeft { name } => format!("sees {name} leave"),
        Event::MemberReaped { name } => format!("forgets {name}"),
        Event::NameConflict { name, claimed, .. } => {
            format!("refuses {name} claimed from {claimed}")
        }
        Event::Refuted { incarnation } => format!("refutes, incarnation {incarnation}"),
        Event::Joined { via } => format!("joined via {via}"),
        Event::LeaveComplete => "has left".to_string(),
        Event::Rejected { from, error } => format!("rejects a datagram from {from}: {error}"),
        Event::CheckDue { check, .. } => format!("runs the health check {check}"),
        Event::RegistryChanged { index } => format!("registry index {index}"),
        Event::ClockRejected { writer, ahead_ms } => {
            format!("refuses a version by {writer} {ahead_ms} ms ahead")
        }
        Event::ImplausibleClaim {
            name,
            known,
            claimed,
        } => format!("refuses a claim moving {name} from incarnation {known} to {claimed}"),
        Event::NameTaken { holder } => format!("refuses to join: its name is held at {holder}"),
        Event::QueryDone(r) => format!(
            "query {} done: {} answers, {} missing",
            r.id.seq,
            r.answers.len(),
            r.missing.len()
        ),
    }
}

/// Node `i` is named `n{i}`.
pub fn node_name(i: u32) -> NodeName {
    NodeName::new(&format!("n{i}")).expect("a valid node name")
}

/// The index behind a name this simulator handed out.
pub fn index_of_name(name: &NodeName) -> Option<u32> {
    name.as_str().strip_prefix('n')?.parse().ok()
}

/// Node `i` is at 10.a.b.c:7946 with `a.b.c` = i + 1.
pub fn addr_of(i: u32) -> SocketAddr {
    let v = i + 1;
    let ip = Ipv4Addr::new(10, (v >> 16) as u8, (v >> 8) as u8, v as u8);
    SocketAddr::from((ip, PORT))
}

pub fn index_of_addr(addr: SocketAddr) -> Option<u32> {
    match addr {
        SocketAddr::V4(a) if a.port() == PORT && a.ip().octets()[0] == 10 => {
            let [_, a, b, c] = a.ip().octets();
            (u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c)).checked_sub(1)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_round_trip() {
        for i in [0, 1, 255, 256, 9_999, 70_000] {
            assert_eq!(index_of_addr(addr_of(i)), Some(i));
            assert_eq!(index_of_name(&node_name(i)), Some(i));
        }
        assert_eq!(index_of_addr("127.0.0.1:7946".parse().unwrap()), None);
    }
}
