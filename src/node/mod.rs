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
//! datagrams to send ([`Node::poll_transmit`], then those of registry pushes owed to peers,
//! [`Node::poll_push`], as many as the sink has room for), then events ([`Node::poll_event`]), then asks
//! for the next deadline ([`Node::poll_timeout`]). The tokio driver, the simulator and the
//! fuzz targets all go through `drain`, so effects happen in the same order everywhere.
//! Randomness comes from a ChaCha8 generator seeded at construction: the same seed, inputs
//! and times give the same outputs, bit for bit.
//!
//! # Where things are
//!
//! `Node` itself only routes: it decodes a datagram, hands each message, timer and command to
//! the half it belongs to, and drains the outputs. The halves are two owned sub-machines that
//! write through one I/O context:
//!
//! - `membership`: SWIM + Lifeguard (members, probes, relays, suspicions, awareness, join);
//! - `catalog`: the registry (entries, owned instances, orphans, owed syncs, graves); it
//!   reads membership only through a `MembershipView` (an owner's state, quorum, cluster size);
//! - `io`: timers, outbox, events, the gossip queue, rng, counters, envelope, config and the
//!   state version, lent to both as `&mut`;
//! - `api`: the types callers see (commands, replies, events, transmits, views);
//! - `keyring`: gossip encryption in the node (which envelope, the keyring commands);
//! - `query`: requests to every member, answered to the asker directly (cluster-wide verbs).

mod api;
mod catalog;
mod io;
mod keyring;
mod membership;
mod query;
mod replies;
mod restore;

use std::net::SocketAddr;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use self::api::{
    Command, CommandError, Event, HeldBound, Identity, KeyringCommand, Lifecycle, MemberView,
    Outputs, Probe, Quorum, Reply, Sink, Transmit,
};
use self::catalog::{Catalog, MembershipView};
pub use self::catalog::{OwnedChanges, OWNED_CHANGES_MAX, RESYNCS_PER_INTERVAL_MAX};
use self::io::Io;
use self::membership::claims::Source;
use self::membership::Membership;
use self::replies::Sender;
use crate::bounded::BoundedVec;
use crate::config::Config;
use crate::names::NodeName;
use crate::registry::BootId;
use crate::registry::Registry;
pub use crate::stats::Refusal;
use crate::stats::Stats;
use crate::swim::members::StateCounts;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{self, Incarnation, Message, Profile};

pub use query::{
    keyring_of, QueryKind, QueryRequest, QueryResult, ANSWERS_PER_ASKER_PER_SEC,
    QUERIES_IN_FLIGHT_MAX, QUERY_TIMEOUT_MAX, QUERY_TIMEOUT_MIN, SEEN_MAX,
};
pub use restore::Restored;

/// The protocol state machine. See the module documentation for its contract.
#[derive(Debug)]
pub struct Node {
    /// What both halves write through: timers, outbox, events, gossip queue, rng, counters,
    /// envelope, config, state version.
    io: Io,
    /// The SWIM + Lifeguard half.
    membership: Membership,
    /// The registry half.
    catalog: Catalog,
    /// Queries this node asked, and those it has heard.
    queries: query::Queries,
}

impl Node {
    pub fn new(config: Config, identity: Identity, rng_seed: u64, now: Instant) -> Node {
        let profile = Profile {
            addr: identity.addr,
            dc: identity.dc,
            tags: BoundedVec::new(identity.tags.into_iter().take(wire::TAGS_MAX).collect()),
        };
        let boot = BootId::of_seed(rng_seed);
        let [a, b, c, d, ..] = boot.0.to_le_bytes();
        let mut node = Node {
            membership: Membership::new(&config, identity.name.clone(), profile, now),
            catalog: Catalog::new(identity.name, boot),
            // The boot's hash, not a draw: the node's random sequence stays as it was.
            queries: query::Queries::new(u32::from_le_bytes([a, b, c, d])),
            io: Io::new(config, ChaCha8Rng::seed_from_u64(rng_seed)),
        };
        node.start_timers(now);
        node
    }

    // ---- inputs ----

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.membership.lifecycle == Lifecycle::Stopped {
            return;
        }
        self.io.stats.datagrams_in += 1;
        self.io.stats.bytes_in += bytes.len() as u64;
        let datagram = match self.io.decode(now, bytes) {
            Ok(datagram) => datagram,
            Err(error) => {
                self.io.stats.decode_error(error.kind());
                self.io.emit(Event::Rejected { from, error });
                return;
            }
        };
        // Told before any message is applied: a join makes its sender a member, and its answer
        // must still be a stranger's.
        let members = &self.membership.members;
        let sender = if from == self.membership.profile.addr {
            Sender::Stranger
        } else if members.any_at(from, crate::swim::State::is_live) {
            Sender::Member
        } else if members.any_at(from, |s| s == crate::swim::State::Failed) {
            Sender::Failed
        } else {
            Sender::Stranger
        };
        self.io.replies.begin(from, sender, bytes.len());
        // A newer minor's messages: skipped, counted, the rest of the datagram applied.
        self.io.stats.messages_skipped += u64::from(datagram.skipped);
        for message in datagram.messages {
            if self.membership.lifecycle == Lifecycle::Stopped {
                // Stopped by this datagram (our name is taken): the rest is not for us.
                break;
            }
            self.io.stats.message_in(message.kind());
            self.handle_message(now, from, message);
        }
        if self.membership.lifecycle != Lifecycle::Stopped {
            self.catalog.send_grave_replies(&mut self.io, now, from);
        }
        // What is applied from here on (timers, commands) came from no datagram's sender.
        self.io.replies.end();
        self.keep_registry_ticking(now);
    }

    /// The network reported that a datagram we sent to `addr` found no process listening
    /// there (ICMP port unreachable, read by the shell from its socket's error queue). Only
    /// probes and relays waiting on that address act on it (`Membership::on_port_unreachable`).
    pub fn handle_port_unreachable(&mut self, now: Instant, addr: SocketAddr) {
        if self.membership.lifecycle == Lifecycle::Stopped {
            return;
        }
        self.io.set_seal_clock(now);
        self.io.stats.port_unreachable_reports += 1;
        self.membership.on_port_unreachable(&mut self.io, addr);
    }

    /// The shell read the wall clock as `wall` at `now` (its monotonic time). Registry versions
    /// follow the wall clock, which NTP may step while the process runs; `now` stays
    /// monotonic for timers. The driver calls this every turn; without it the wall clock is
    /// `now` (the simulator).
    pub fn set_wall_clock(&mut self, now: Instant, wall: Instant) {
        self.io.set_wall_clock(now, wall);
    }

    /// Bytes of paced transmits ([`Transmit::paced`]) the shell has taken from the node but not
    /// sent yet. A shell that paces calls this every turn; the node then answers no bulk
    /// request while the backlog and its own outbox together are over their cap.
    pub fn set_paced_backlog(&mut self, bytes: usize) {
        self.io.paced_backlog_bytes = bytes;
    }

    /// Deadlines up to `now` have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.io.set_seal_clock(now);
        while let Some(timer) = self.io.timers.pop_due(now) {
            // A stopped node is inert: what was due is dropped, not left due (the driver
            // would spin on a deadline that never moves).
            if self.membership.lifecycle != Lifecycle::Stopped {
                self.handle_timer(now, timer);
            }
        }
        self.keep_registry_ticking(now);
    }

    /// An operator's or client's request; the reply says what was done.
    pub fn handle_command(
        &mut self,
        now: Instant,
        command: Command,
    ) -> Result<Reply, CommandError> {
        let result = self.apply_command(now, command);
        self.keep_registry_ticking(now);
        result
    }

    fn apply_command(&mut self, now: Instant, command: Command) -> Result<Reply, CommandError> {
        if self.membership.lifecycle != Lifecycle::Active {
            return Err(CommandError::NotRunning);
        }
        self.io.set_seal_clock(now);
        let (membership, catalog, io) = (&mut self.membership, &mut self.catalog, &mut self.io);
        match command {
            Command::Join { seeds } => membership.start_join(io, now, seeds).map(|()| Reply::Done),
            Command::Leave => {
                membership.start_leave(io, now);
                Ok(Reply::Done)
            }
            Command::ForceLeave { name } => membership.force_leave(io, catalog, now, &name),
            Command::Register(spec) => catalog.register(io, now, spec),
            Command::Renew { id } => catalog.renew(io, now, &id),
            Command::Deregister { id } => catalog.deregister(io, now, &id),
            Command::SetHealth { id, health, output } => {
                catalog.set_health(io, now, &id, health, &output)
            }
            Command::SetCheck {
                check,
                health,
                output,
            } => catalog.set_check(io, now, &check, health, &output),
            Command::RegisterCheck { service, spec } => {
                catalog.register_check(io, now, service.as_ref(), spec)
            }
            Command::DeregisterCheck { check } => catalog.deregister_check(io, now, &check),
            Command::SetMaintenance { id, enable, reason } => {
                catalog.set_maintenance(io, now, &id, enable, reason.as_deref())
            }
            Command::SetNodeMaintenance { enable, reason } => {
                Ok(catalog.set_node_maintenance(io, now, enable, reason.as_deref()))
            }
            Command::Keyring(op) => self.keyring_command(op),
            Command::Query(request) => self.start_query(now, request),
            Command::Configure(tuning) => {
                let tuned = io
                    .config
                    .tuned(&tuning)
                    .map_err(|e| CommandError::Invalid {
                        detail: e.to_string(),
                    })?;
                let before = std::mem::replace(&mut io.config, tuned);
                membership.rearm_retuned_timers(io, now, &before);
                // Readers see the new timings in the next snapshot.
                io.changed();
                Ok(Reply::Done)
            }
            Command::RunChecks { service, id } => {
                Ok(catalog.run_checks(io, now, service.as_ref(), id.as_ref()))
            }
            Command::Restore(restored) => Ok(self.restore(now, *restored)),
        }
    }

    // ---- outputs ----

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.io.outbox.pop_front()?;
        self.io.outbox_bytes = self.io.outbox_bytes.saturating_sub(t.payload.len());
        Some(t)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.io.events.pop_front()
    }

    /// The earliest time at which [`Node::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // A stopped node waits for nothing.
        if self.membership.lifecycle == Lifecycle::Stopped {
            return None;
        }
        self.io.timers.next_deadline()
    }

    /// Every deadline armed, in no particular order; the earliest is [`Node::poll_timeout`].
    /// A shell may wake once for several close together (a few ms) and call
    /// [`Node::handle_timeout`] once for all of them.
    pub fn timeouts(&self) -> impl Iterator<Item = Instant> + Clone + '_ {
        let stopped = self.membership.lifecycle == Lifecycle::Stopped;
        self.io.timers.deadlines().filter(move |_| !stopped)
    }

    /// The next datagram of a registry push this node owes a peer (anti-entropy: a late
    /// joiner's whole registry, an origin's buckets that differ), encoded now, or None when
    /// nothing is owed. Always [`Transmit::paced`]. The node keeps only what each push still
    /// owes and how far it got (`catalog::push`), so a shell that paces calls this as its pacer
    /// has room ([`Sink::takes_push`]) and the push never waits whole in memory. A push to a
    /// peer that is no longer a live member is dropped here.
    pub fn poll_push(&mut self) -> Option<Transmit> {
        if self.membership.lifecycle == Lifecycle::Stopped {
            return None;
        }
        let members = &self.membership.members;
        self.catalog.next_push(&mut self.io, |to| {
            members.any_at(to, crate::swim::State::is_live)
        })
    }

    /// Peers this node owes a registry push ([`Node::poll_push`]).
    pub fn pushes_owed(&self) -> usize {
        self.catalog.pushes_owed()
    }

    /// Move every pending output into `sink`: datagrams first (then the datagrams of owed
    /// pushes, as many as the sink takes), then events.
    pub fn drain(&mut self, sink: &mut impl Sink) {
        while let Some(t) = self.poll_transmit() {
            sink.transmit(t);
        }
        while sink.takes_push() {
            let Some(t) = self.poll_push() else { break };
            sink.transmit(t);
        }
        while let Some(e) = self.poll_event() {
            sink.event(e);
        }
    }

    // ---- views ----

    pub fn name(&self) -> &NodeName {
        &self.membership.name
    }

    pub fn profile(&self) -> &Profile {
        &self.membership.profile
    }

    pub fn incarnation(&self) -> Incarnation {
        self.membership.incarnation
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.membership.lifecycle
    }

    /// The address of the live member holding this node's name, if a seed's table showed one:
    /// the node refused to join and stopped ([`Event::NameTaken`]).
    pub fn name_taken_by(&self) -> Option<SocketAddr> {
        self.membership.name_taken_by
    }

    /// Whether this node's own member update (its profile, tags included) fits one datagram
    /// with the envelope in force (label, seal). If not, it could never announce itself and
    /// would never join, silently (issue 14): the shell refuses to start. Err holds the
    /// update's encoded bytes and the room a datagram has for it.
    pub fn own_update_fits(&self) -> Result<(), (usize, usize)> {
        let encoded = wire::encode_message(&Message::Member(self.membership.own_update()));
        let room = self.io.new_datagram().remaining();
        if encoded.len() <= room {
            Ok(())
        } else {
            Err((encoded.len(), room))
        }
    }

    pub fn config(&self) -> &Config {
        &self.io.config
    }

    pub fn stats(&self) -> &Stats {
        &self.io.stats
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.io.stats
    }

    /// Lifeguard's local health score (0 is healthy).
    pub fn health_score(&self) -> u32 {
        self.membership.awareness.score()
    }

    /// Updates waiting to be disseminated.
    pub fn queue_depth(&self) -> usize {
        self.io.broadcasts.len()
    }

    /// Registry entries among them: at most [`crate::swim::gossip::INSTANCE_UPDATES_MAX`].
    pub fn queued_entries(&self) -> usize {
        self.io.broadcasts.instances_len()
    }

    /// Changes with every visible change of state.
    pub fn version(&self) -> u64 {
        self.io.version()
    }

    pub fn started(&self) -> Instant {
        self.membership.started
    }

    /// The registry as this node holds it.
    pub fn registry(&self) -> &Registry {
        self.catalog.registry()
    }

    /// The instances this node owns and looks after (TTLs, liveness, checks): those registered
    /// through its API or restored from its own state, never one that only names it by gossip.
    /// A persistent set: cloning it is O(1) whatever its size.
    pub fn local_instances(&self) -> &imbl::OrdSet<crate::names::InstanceId> {
        self.catalog.owned_ids()
    }

    /// The changes to [`Node::local_instances`] and to their records, in order: what the
    /// store appends to its log at each group commit. Persistent: cloning it is O(1).
    pub fn owned_changes(&self) -> &OwnedChanges {
        self.catalog.owned_changes()
    }

    /// Why this node is in maintenance (all its instances off-line), if it is.
    pub fn node_maintenance(&self) -> Option<&str> {
        self.catalog.node_maintenance()
    }

    /// The node's own checks (Consul's checks without a `ServiceID`).
    pub fn node_checks(&self) -> impl Iterator<Item = &crate::registry::CheckState> {
        self.catalog.node_checks()
    }

    /// Its owner is failed, gone or unknown here: kept only until the purge (Eureka's
    /// self-preservation, per partition side: without quorum, until quorum returns).
    pub fn is_stale(&self, instance: &crate::registry::Instance) -> bool {
        self.catalog.owner_gone(&self.view(), &instance.owner)
    }

    /// Other members by state (this node not counted).
    pub fn counts(&self) -> StateCounts {
        self.membership.members.counts()
    }

    /// What this node believes about `name` (None for itself and for strangers).
    pub fn member(&self, name: &NodeName) -> Option<&crate::swim::Member> {
        self.membership.members.get(name)
    }

    /// A member's profile as this node would gossip it.
    pub fn member_profile(&self, name: &NodeName) -> Option<crate::wire::Profile> {
        let members = &self.membership.members;
        members.get(name).map(|m| members.profile(m))
    }

    /// When this node's suspicion of `name` runs out, if it holds one (the simulator's tests
    /// check that a refuted suspicion's timer does nothing at this deadline).
    pub fn suspicion_deadline(&self, name: &NodeName) -> Option<Instant> {
        self.membership.suspicions.get(name).map(|s| s.deadline())
    }

    /// The digest of the live membership, this node included, that sync probes compare.
    pub fn members_digest(&self) -> u64 {
        self.membership.full_digest()
    }

    pub fn quorum(&self) -> Quorum {
        self.view().quorum()
    }

    /// Every member, this node first, then the others by name.
    pub fn member_views(&self) -> Vec<MemberView> {
        self.membership.member_views()
    }

    // ---- routing ----

    /// What the catalog may see of membership.
    fn view(&self) -> MembershipView<'_> {
        self.membership.view(self.io.config.expected_members)
    }

    fn start_timers(&mut self, now: Instant) {
        let io = &mut self.io;
        let probe_at = now + io.jitter(io.config.probe_interval);
        io.timers.schedule(probe_at, Timer::ProbeTick);
        let gossip_at = now + io.jitter(io.config.gossip_interval);
        io.timers.schedule(gossip_at, Timer::GossipTick);
        io.gossip_ticking = true;
        let sync_at = now + io.config.sync_interval / 2 + io.jitter(io.config.sync_interval);
        io.timers.schedule(sync_at, Timer::SyncTick);
        let reconnect_at =
            now + io.config.reconnect_interval + io.jitter(io.config.reconnect_interval);
        io.timers.schedule(reconnect_at, Timer::ReconnectTick);
        let reap_at = now + self.membership.reap_interval(io);
        io.timers.schedule(reap_at, Timer::ReapTick);
        let registry_at = now + io.config.registry_tick;
        io.timers.schedule(registry_at, Timer::RegistryTick);
        io.registry_tick_at = Some(registry_at);
    }

    /// Arm the registry tick, or bring it forward, if the input just handled gave it something
    /// to do sooner: an instance registered or restored, a check reported, a tombstone
    /// received, a member failed. Called after every input, so no path that creates work has
    /// to remember to. O(log owned).
    fn keep_registry_ticking(&mut self, now: Instant) {
        if self.membership.lifecycle == Lifecycle::Stopped {
            return;
        }
        let view = self.membership.view(self.io.config.expected_members);
        let Some(wanted) = self.catalog.next_tick_at(&self.io, &view, now) else {
            return;
        };
        match self.io.registry_tick_at {
            Some(armed) if armed <= wanted => {}
            Some(_) => {
                self.io.timers.pull_in(&Timer::RegistryTick, wanted);
                self.io.registry_tick_at = Some(wanted);
            }
            None => {
                self.io.timers.schedule(wanted, Timer::RegistryTick);
                self.io.registry_tick_at = Some(wanted);
            }
        }
    }

    fn handle_timer(&mut self, now: Instant, timer: Timer) {
        if let Timer::QueryDeadline { seq } = timer {
            return self.on_query_deadline(seq);
        }
        let (membership, catalog, io) = (&mut self.membership, &mut self.catalog, &mut self.io);
        match timer {
            Timer::ProbeTick => membership.on_probe_tick(io, now),
            Timer::ProbeTimeout { seq } => membership.on_probe_timeout(io, seq),
            Timer::ProbeDeadline { seq } => membership.on_probe_deadline(io, catalog, now, seq),
            Timer::RelayTimeout { seq } => membership.on_relay_timeout(io, now, seq),
            Timer::Suspicion {
                member,
                incarnation,
            } => membership.on_suspicion_timeout(io, catalog, now, &member, incarnation),
            Timer::GossipTick => membership.on_gossip_tick(io, now),
            Timer::EagerPush => membership.on_eager_push(io, now),
            Timer::SyncTick => membership.on_sync_tick(io, catalog, now),
            Timer::ReconnectTick => membership.on_reconnect_tick(io, catalog, now),
            Timer::ReapTick => membership.on_reap_tick(io, now),
            Timer::JoinRetry { attempt } => membership.on_join_retry(io, now, attempt),
            Timer::LeaveDone => membership.on_leave_done(io),
            Timer::RegistryTick => {
                let view = membership.view(io.config.expected_members);
                catalog.on_registry_tick(io, &view, now);
            }
            Timer::PushDue => catalog.on_push_due(io),
            Timer::RegistryResync => membership.on_registry_resync(io, catalog, now),
            Timer::QueryDeadline { .. } => {}
        }
    }

    fn handle_message(&mut self, now: Instant, from: SocketAddr, message: Message) {
        let message = match message {
            Message::Query(query) => return self.on_query(now, query),
            Message::QueryAnswer(answer) => return self.on_query_answer(from, answer),
            other => other,
        };
        let (membership, catalog, io) = (&mut self.membership, &mut self.catalog, &mut self.io);
        match message {
            Message::Ping(ping) => membership.on_ping(io, now, from, ping),
            Message::Ack(ack) => membership.on_ack(io, now, ack),
            Message::PingReq(req) => membership.on_ping_req(io, now, from, req),
            Message::Nack(nack) => membership.on_nack(io, catalog, now, from, nack),
            Message::Member(update) => {
                membership.apply_update(io, catalog, now, update, Source::Gossip);
            }
            Message::PushPull(push_pull) => {
                membership.on_push_pull(io, catalog, now, from, push_pull)
            }
            Message::SyncProbe(probe) => membership.on_sync_probe(io, now, from, probe),
            Message::Entry(entry) => {
                let view = membership.view(io.config.expected_members);
                catalog.on_entry(io, &view, now, from, entry)
            }
            Message::RegistrySync(sync) => catalog.on_registry_sync(io, now, from, sync),
            Message::RegistryDigest(digest) => catalog.on_registry_digest(io, now, from, digest),
            Message::RegistryBuckets(buckets) => {
                catalog.on_registry_buckets(io, now, from, buckets)
            }
            // Routed above: they need the whole node (membership, keyring, queries).
            Message::Query(_) | Message::QueryAnswer(_) => {}
        }
    }
}
