//! The sans-IO protocol state machine.
//!
//! # Contract
//!
//! A [`Node`] never reads a clock, touches a socket or draws from a global random generator.
//! It is driven by three inputs, each given the current time:
//!
//! - [`Node::handle_datagram`]: raw bytes received from a peer (decoding happens inside);
//! - [`Node::handle_timeout`]: called when the deadline from [`Node::poll_timeout`] has passed;
//! - [`Node::handle_command`]: join, leave, and the operator's other requests.
//!
//! After any input the caller drains the outputs, in this order, with [`Node::drain`]:
//! datagrams to send ([`Node::poll_transmit`]), then events ([`Node::poll_event`]), then asks
//! for the next deadline ([`Node::poll_timeout`]). The tokio driver, the simulator and the
//! fuzz targets all go through `drain`, so effects happen in the same order everywhere.
//! Randomness comes from a ChaCha8 generator seeded at construction: the same seed, inputs
//! and times give the same outputs, bit for bit.
//!
//! # Where things are
//!
//! - the probe loop (SWIM §3.1, Lifeguard nacks): [`probing`];
//! - applying a membership claim, suspicion and refutation (SWIM §4.2, Lifeguard §4.2):
//!   [`membership`];
//! - piggybacking, gossip rounds, push-pull and anti-entropy (SWIM §4.1): [`dissemination`];
//! - join, leave, reconnect and reaping: [`lifecycle`].

mod dissemination;
mod keyring;
mod lifecycle;
mod membership;
mod probing;
mod registry_ops;
mod registry_sync;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{Config, Tuning};
use crate::names::{InstanceId, Label, NodeName, ServiceName};
use crate::registry::{Entry, Health, InstanceSpec, Registry};
use crate::stats::Stats;
use crate::swim::awareness::Awareness;
use crate::swim::gossip::Broadcasts;
use crate::swim::members::{member_hash, Members, State, StateCounts};
use crate::swim::probe::{Probe, ProbeOrder, Relay};
use crate::swim::suspicion::Suspicion;
use crate::time::Instant;
use crate::timers::{Timer, Timers};
use crate::wire::bounded::BoundedVec;
use crate::wire::{self, DecodeError, Incarnation, Message, Profile, Seq, Tag};

/// Outstanding indirect probes we relay for others; more requests than this are dropped
/// (a flood of ping-reqs cannot make us allocate without bound).
const RELAYS_MAX: usize = 1_024;
/// Probes of our own in flight: the regular one and confirmation probes.
const PROBES_MAX: usize = 64;
/// Events not yet drained; the oldest are dropped past this.
const EVENTS_MAX: usize = 16_384;

/// Who this node is, as it introduces itself to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: NodeName,
    /// The address others should send to (may differ from the bound one: NAT, 0.0.0.0).
    pub addr: SocketAddr,
    pub dc: Label,
    pub tags: Vec<Tag>,
}

/// Requests from the operator or the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Join the cluster through any of these addresses; retried until one answers.
    Join { seeds: Vec<SocketAddr> },
    /// Leave gracefully: announce it, keep answering for a moment, then stop.
    Leave,
    /// Register (or re-register) a service instance; this node becomes its owner.
    Register(InstanceSpec),
    /// Heartbeat: resets the instance's liveness and TTL; moves ownership here.
    Renew { id: InstanceId },
    /// Delete an instance everywhere (a tombstone).
    Deregister { id: InstanceId },
    /// A TTL check's report (pass / warn / fail / update), or an HTTP check's result.
    SetHealth {
        id: InstanceId,
        health: Health,
        output: String,
    },
    /// Take an instance off-line (maintenance) or back on-line.
    SetMaintenance {
        id: InstanceId,
        enable: bool,
        reason: Option<String>,
    },
    /// Run the HTTP checks of the instances this node owns now (optionally one service or
    /// one instance).
    RunChecks {
        service: Option<ServiceName>,
        id: Option<InstanceId>,
    },
    /// List or change the gossip keyring (only on a node started with a cluster key).
    Keyring(KeyringCommand),
    /// Change protocol timings on the running node (`PUT /v1/hera/config`).
    Configure(Tuning),
    /// Consul's force-leave: declare a failed member gone for good (left), so that its
    /// instances go and nobody waits for it to come back.
    ForceLeave { name: NodeName },
}

/// Keyring operations, in the order a rotation uses them: install the new key on every node,
/// use it on every node, then remove the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringCommand {
    List,
    /// Accept datagrams sealed with this key too.
    Install(wire::Key),
    /// Seal with this (installed) key from now on.
    Use(wire::Key),
    /// Stop accepting this key; refused for the primary.
    Remove(wire::Key),
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Done,
    Registered {
        id: InstanceId,
    },
    ChecksStarted {
        count: usize,
    },
    /// The keyring after a keyring command.
    Keyring {
        primary: wire::Key,
        /// Every key, the primary first.
        keys: Vec<wire::Key>,
    },
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The node has left (or is leaving) the cluster.
    NotRunning,
    /// A join with no address to join through.
    NoSeeds,
    UnknownInstance {
        id: InstanceId,
    },
    /// The id is registered under another service.
    IdInUse {
        id: InstanceId,
        service: ServiceName,
    },
    /// The registration breaks a limit.
    Invalid {
        detail: String,
    },
    /// A keyring command was refused; the keyring is unchanged.
    Keyring(wire::KeyringError),
    UnknownMember {
        name: NodeName,
    },
    /// Force-leave of a member that is alive or suspect (it would refute), or of this node.
    MemberLive {
        name: NodeName,
    },
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::NotRunning => write!(f, "this node is leaving or has left the cluster"),
            CommandError::NoSeeds => write!(f, "no address to join through"),
            CommandError::UnknownInstance { id } => write!(f, "no instance with id {id}"),
            CommandError::IdInUse { id, service } => {
                write!(f, "id {id} is already registered for service {service}")
            }
            CommandError::Invalid { detail } => write!(f, "{detail}"),
            CommandError::Keyring(e) => write!(f, "{e}"),
            CommandError::UnknownMember { name } => write!(f, "no member named {name}"),
            CommandError::MemberLive { name } => write!(
                f,
                "{name} is not failed; only a failed member can be forced to leave (a live one leaves by itself)"
            ),
        }
    }
}

impl std::error::Error for CommandError {}

/// Something that happened, for logs, metrics and watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    MemberJoined {
        name: NodeName,
        addr: SocketAddr,
    },
    MemberSuspected {
        name: NodeName,
        by: NodeName,
    },
    /// A suspect refuted its suspicion, or a failed member came back.
    MemberRecovered {
        name: NodeName,
    },
    MemberFailed {
        name: NodeName,
    },
    MemberLeft {
        name: NodeName,
    },
    MemberReaped {
        name: NodeName,
    },
    /// A second node claimed a live member's name from another address; it was refused.
    NameConflict {
        name: NodeName,
        known: SocketAddr,
        claimed: SocketAddr,
    },
    /// This node refuted a suspicion or failure about itself.
    Refuted {
        incarnation: Incarnation,
    },
    /// A seed answered our join.
    Joined {
        via: SocketAddr,
    },
    /// A graceful leave has finished; the node is inert.
    LeaveComplete,
    /// A datagram was rejected; nothing in the node changed.
    Rejected {
        from: SocketAddr,
        error: DecodeError,
    },
    /// An HTTP health check of an instance this node owns is due: the shell runs it and
    /// answers with `Command::SetHealth`.
    CheckDue {
        id: InstanceId,
        url: String,
        timeout: Duration,
    },
    /// The registry changed; its index is now `index`.
    RegistryChanged {
        index: u64,
    },
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    pub to: SocketAddr,
    pub payload: Bytes,
}

/// Where [`Node::drain`] puts the outputs.
pub trait Sink {
    fn transmit(&mut self, transmit: Transmit);
    fn event(&mut self, event: Event);
}

/// Whether this node still takes part in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Active,
    /// Announcing its departure; still answers probes, starts none.
    Leaving,
    /// Done: ignores every input.
    Stopped,
}

/// Does this node see a majority?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    /// Alive and suspect members, this node included.
    pub reachable: usize,
    /// Every member not gone gracefully: reachable plus failed.
    pub known: usize,
    pub expected: Option<usize>,
    pub has_quorum: bool,
}

/// One member as the outside world sees it (this node included).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    pub name: NodeName,
    pub profile: Arc<Profile>,
    pub state: State,
    pub incarnation: Incarnation,
    pub since: Instant,
    pub last_ack: Option<Instant>,
    pub is_self: bool,
}

/// The protocol state machine. See the module documentation for its contract.
#[derive(Debug)]
pub struct Node {
    config: Config,
    name: NodeName,
    profile: Arc<Profile>,
    incarnation: Incarnation,
    lifecycle: Lifecycle,
    started: Instant,
    rng: ChaCha8Rng,
    members: Members,
    probe_order: ProbeOrder,
    probes: HashMap<Seq, Probe>,
    relays: HashMap<Seq, Relay>,
    next_seq: Seq,
    suspicions: HashMap<NodeName, Suspicion>,
    awareness: Awareness,
    broadcasts: Broadcasts,
    push_scheduled: bool,
    last_push: Option<Instant>,
    join: Option<PendingJoin>,
    /// The seeds that answered our join, while their tables may still be arriving.
    join_transfer: Option<JoinTransfer>,
    timers: Timers,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Bumped on every change visible through the views, so shells republish only on change.
    version: u64,
    registry: Registry,
    /// Deadlines of the instances this node owns (owner-local: never gossiped).
    owned: HashMap<InstanceId, registry_ops::Owned>,
    /// Since when instances of failed or departed owners await the purge decision.
    orphans_since: Option<Instant>,
    /// Members held failed whose entries we refused: compare registries with them when they
    /// come back (at most `registry_sync::OWED_SYNCS_MAX`).
    owed_syncs: BTreeSet<NodeName>,
    /// Collected tombstones are kept as graves until then: a grace after the last registry
    /// tick that saw a member held failed (`Node::keeps_graves`).
    graves_until: Option<Instant>,
    /// Tombstones to send back to the sender of the datagram being read, which brought old
    /// versions of entries deleted here (at most `registry_ops::GRAVE_REPLIES_MAX`).
    grave_replies: Vec<Entry>,
    /// The cluster key and nonce sequence; None sends and accepts plain datagrams.
    sealer: Option<wire::Sealer>,
    /// The cluster label every datagram carries (`keyring.rs`); None: unlabelled.
    label: Option<wire::ClusterLabel>,
}

#[derive(Debug, Clone)]
struct PendingJoin {
    seeds: Vec<SocketAddr>,
    attempt: u32,
}

/// A completed join whose seeds' tables may still be arriving (see `Source::JoinTransfer`).
#[derive(Debug, Clone)]
struct JoinTransfer {
    seeds: Vec<SocketAddr>,
    until: Instant,
}

impl Node {
    pub fn new(config: Config, identity: Identity, rng_seed: u64, now: Instant) -> Node {
        let profile = Profile {
            addr: identity.addr,
            dc: identity.dc,
            tags: BoundedVec::new(identity.tags.into_iter().take(wire::TAGS_MAX).collect()),
        };
        let mut node = Node {
            awareness: Awareness::new(config.awareness_max),
            config,
            name: identity.name,
            profile: Arc::new(profile),
            incarnation: 0,
            lifecycle: Lifecycle::Active,
            started: now,
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            members: Members::default(),
            probe_order: ProbeOrder::default(),
            probes: HashMap::new(),
            relays: HashMap::new(),
            next_seq: 0,
            suspicions: HashMap::new(),
            broadcasts: Broadcasts::default(),
            push_scheduled: false,
            last_push: None,
            join: None,
            join_transfer: None,
            timers: Timers::default(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            version: 0,
            registry: Registry::default(),
            owned: HashMap::new(),
            orphans_since: None,
            owed_syncs: BTreeSet::new(),
            graves_until: None,
            grave_replies: Vec::new(),
            sealer: None,
            label: None,
        };
        node.start_timers(now);
        node
    }

    // ---- inputs ----

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.lifecycle == Lifecycle::Stopped {
            return;
        }
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let datagram = match self.decode(now, bytes) {
            Ok(datagram) => datagram,
            Err(error) => {
                self.stats.decode_error(error.kind());
                self.emit(Event::Rejected { from, error });
                return;
            }
        };
        // A newer minor's messages: skipped, counted, the rest of the datagram applied.
        self.stats.messages_skipped += u64::from(datagram.skipped);
        for message in datagram.messages {
            self.stats.message_in(message.kind());
            self.handle_message(now, from, message);
        }
        self.send_grave_replies(from);
    }

    /// Deadlines up to `now` have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.set_seal_clock(now);
        while let Some(timer) = self.timers.pop_due(now) {
            if self.lifecycle == Lifecycle::Stopped {
                return;
            }
            self.handle_timer(now, timer);
        }
    }

    /// An operator's or client's request; the reply says what was done.
    pub fn handle_command(
        &mut self,
        now: Instant,
        command: Command,
    ) -> Result<Reply, CommandError> {
        if self.lifecycle != Lifecycle::Active {
            return Err(CommandError::NotRunning);
        }
        self.set_seal_clock(now);
        match command {
            Command::Join { seeds } => self.start_join(now, seeds).map(|()| Reply::Done),
            Command::Leave => {
                self.start_leave(now);
                Ok(Reply::Done)
            }
            Command::ForceLeave { name } => self.force_leave(now, &name),
            Command::Register(spec) => self.register(now, spec),
            Command::Renew { id } => self.renew(now, &id),
            Command::Deregister { id } => self.deregister(now, &id),
            Command::SetHealth { id, health, output } => self.set_health(now, &id, health, &output),
            Command::SetMaintenance { id, enable, reason } => {
                self.set_maintenance(now, &id, enable, reason.as_deref())
            }
            Command::Keyring(op) => self.keyring_command(op),
            Command::Configure(tuning) => {
                self.config = self
                    .config
                    .tuned(&tuning)
                    .map_err(|detail| CommandError::Invalid { detail })?;
                // Readers see the new timings in the next snapshot.
                self.version += 1;
                Ok(Reply::Done)
            }
            Command::RunChecks { service, id } => {
                Ok(self.run_checks(now, service.as_ref(), id.as_ref()))
            }
        }
    }

    // ---- outputs ----

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest time at which [`Node::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Move every pending output into `sink`: datagrams first, then events.
    pub fn drain(&mut self, sink: &mut impl Sink) {
        while let Some(t) = self.poll_transmit() {
            sink.transmit(t);
        }
        while let Some(e) = self.poll_event() {
            sink.event(e);
        }
    }

    // ---- views ----

    pub fn name(&self) -> &NodeName {
        &self.name
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Lifeguard's local health score (0 is healthy).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// Updates waiting to be disseminated.
    pub fn queue_depth(&self) -> usize {
        self.broadcasts.len()
    }

    /// Changes with every visible change of state.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// The registry as this node holds it.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Its owner is failed, gone or unknown here: kept only until the purge (Eureka's
    /// self-preservation, per partition side: without quorum, until quorum returns).
    pub fn is_stale(&self, instance: &crate::registry::Instance) -> bool {
        self.owner_gone(&instance.owner)
    }

    /// Other members by state (this node not counted).
    pub fn counts(&self) -> StateCounts {
        self.members.counts()
    }

    /// What this node believes about `name` (None for itself and for strangers).
    pub fn member(&self, name: &NodeName) -> Option<&crate::swim::Member> {
        self.members.get(name)
    }

    pub fn quorum(&self) -> Quorum {
        let counts = self.members.counts();
        let reachable = counts.alive + counts.suspect + 1;
        let known = reachable + counts.failed;
        let expected = self.config.expected_members;
        let of = known.max(expected.unwrap_or(0));
        Quorum {
            reachable,
            known,
            expected,
            has_quorum: reachable * 2 > of,
        }
    }

    /// Every member, this node first, then the others by name.
    pub fn member_views(&self) -> Vec<MemberView> {
        let mut out = Vec::with_capacity(self.members.len() + 1);
        out.push(MemberView {
            name: self.name.clone(),
            profile: self.profile.clone(),
            state: self.own_state(),
            incarnation: self.incarnation,
            since: self.started,
            last_ack: None,
            is_self: true,
        });
        // `Members::iter` goes by name already.
        out.extend(self.members.iter().map(|(name, m)| MemberView {
            name: name.clone(),
            profile: Arc::new(m.profile.to_profile()),
            state: m.state,
            incarnation: m.incarnation,
            since: m.since,
            last_ack: m.last_ack(),
            is_self: false,
        }));
        out
    }

    // ---- internals shared by the submodules ----

    fn own_state(&self) -> State {
        match self.lifecycle {
            Lifecycle::Active => State::Alive,
            Lifecycle::Leaving | Lifecycle::Stopped => State::Left,
        }
    }

    /// Digest of the whole membership view, this node included.
    fn full_digest(&self) -> u64 {
        self.members.digest().wrapping_add(member_hash(
            &self.name,
            self.incarnation,
            self.own_state(),
        ))
    }

    /// Members the retransmit limit and suspicion window are computed for.
    fn cluster_size(&self) -> usize {
        self.members.live().len() + 1
    }

    fn emit(&mut self, event: Event) {
        if self.events.len() == EVENTS_MAX {
            self.events.pop_front();
        }
        self.version += 1;
        self.events.push_back(event);
    }

    fn next_seq(&mut self) -> Seq {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    /// A random delay in `0..span`, to keep nodes started together from probing in lockstep.
    fn jitter(&mut self, span: Duration) -> Duration {
        let micros = span.as_micros().min(u128::from(u32::MAX)) as usize;
        Duration::from_micros(crate::swim::probe::uniform(&mut self.rng, micros) as u64)
    }

    fn start_timers(&mut self, now: Instant) {
        let probe_at = now + self.jitter(self.config.probe_interval);
        self.timers.schedule(probe_at, Timer::ProbeTick);
        let gossip_at = now + self.jitter(self.config.gossip_interval);
        self.timers.schedule(gossip_at, Timer::GossipTick);
        let sync_at = now + self.config.sync_interval / 2 + self.jitter(self.config.sync_interval);
        self.timers.schedule(sync_at, Timer::SyncTick);
        let reconnect_at =
            now + self.config.reconnect_interval + self.jitter(self.config.reconnect_interval);
        self.timers.schedule(reconnect_at, Timer::ReconnectTick);
        self.timers
            .schedule(now + self.reap_interval(), Timer::ReapTick);
        self.timers
            .schedule(now + self.config.registry_tick, Timer::RegistryTick);
    }

    fn handle_timer(&mut self, now: Instant, timer: Timer) {
        match timer {
            Timer::ProbeTick => self.on_probe_tick(now),
            Timer::ProbeTimeout { seq } => self.on_probe_timeout(seq),
            Timer::ProbeDeadline { seq } => self.on_probe_deadline(now, seq),
            Timer::RelayTimeout { seq } => self.on_relay_timeout(now, seq),
            Timer::Suspicion {
                member,
                incarnation,
            } => self.on_suspicion_timeout(now, &member, incarnation),
            Timer::GossipTick => self.on_gossip_tick(now),
            Timer::EagerPush => self.on_eager_push(now),
            Timer::SyncTick => self.on_sync_tick(now),
            Timer::ReconnectTick => self.on_reconnect_tick(now),
            Timer::ReapTick => self.on_reap_tick(now),
            Timer::JoinRetry { attempt } => self.on_join_retry(now, attempt),
            Timer::LeaveDone => self.on_leave_done(),
            Timer::RegistryTick => self.on_registry_tick(now),
        }
    }

    fn handle_message(&mut self, now: Instant, from: SocketAddr, message: Message) {
        match message {
            Message::Ping(ping) => self.on_ping(now, from, ping),
            Message::Ack(ack) => self.on_ack(now, ack),
            Message::PingReq(req) => self.on_ping_req(now, from, req),
            Message::Nack(nack) => self.on_nack(now, nack),
            Message::Member(update) => {
                self.apply_update(now, update, membership::Source::Gossip);
            }
            Message::PushPull(push_pull) => self.on_push_pull(now, from, push_pull),
            Message::SyncProbe(probe) => self.on_sync_probe(now, from, probe),
            Message::Entry(entry) => self.on_entry(now, entry),
            Message::RegistrySync(sync) => self.on_registry_sync(from, sync),
            Message::RegistryDigest(digest) => self.on_registry_digest(from, digest),
            Message::RegistryBuckets(buckets) => self.on_registry_buckets(from, buckets),
        }
    }
}
