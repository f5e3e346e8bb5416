//! Membership: the node's SWIM + Lifeguard half. It owns the member table, the probe order,
//! the probes and relays in flight, the suspicions, Lifeguard's awareness and the join state,
//! and writes through the node's [`Io`](super::io::Io). It tells the
//! [`Catalog`](super::catalog::Catalog) when a member goes or comes
//! back and when a join completes, and lends it a read-only [`MembershipView`].
//!
//! - applying a claim, suspicion and refutation (SWIM §4.2, Lifeguard §4.2): [`claims`];
//! - the probe loop (SWIM §3.1, Lifeguard nacks): [`probing`];
//! - piggybacking, gossip rounds, push-pull and anti-entropy (SWIM §4.1): [`dissemination`];
//! - join, leave, reconnect and reaping: [`lifecycle`].

pub(crate) mod claims;
mod dissemination;
mod lifecycle;
mod probing;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::catalog::MembershipView;
use super::io::Io;
use super::{Lifecycle, MemberView};
use crate::config::Config;
use crate::names::NodeName;
use crate::swim::awareness::Awareness;
use crate::swim::members::{digest_part, Members, State};
use crate::swim::probe::{Probe, ProbeOrder, Relay};
use crate::swim::suspicion::Suspicion;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{Incarnation, Profile, Seq};

/// Outstanding indirect probes we relay for others; more requests than this are dropped
/// (a flood of ping-reqs cannot make us allocate without bound).
const RELAYS_MAX: usize = 1_024;
/// Probes of our own in flight: the regular one and confirmation probes.
const PROBES_MAX: usize = 64;

#[derive(Debug)]
pub(crate) struct Membership {
    pub(super) name: NodeName,
    pub(super) profile: Arc<Profile>,
    pub(super) incarnation: Incarnation,
    pub(super) lifecycle: Lifecycle,
    pub(super) started: Instant,
    pub(super) members: Members,
    probe_order: ProbeOrder,
    probes: BTreeMap<Seq, Probe>,
    relays: BTreeMap<Seq, Relay>,
    next_seq: Seq,
    pub(super) suspicions: BTreeMap<NodeName, Suspicion>,
    pub(super) awareness: Awareness,
    join: Option<PendingJoin>,
    /// The seeds that answered our join, while their tables may still be arriving.
    join_transfer: Option<JoinTransfer>,
    /// The address of the live member that holds our name, if a seed's table said so: this
    /// node refused to join and stopped (`Event::NameTaken`).
    pub(super) name_taken_by: Option<SocketAddr>,
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

impl Membership {
    pub(crate) fn new(config: &Config, name: NodeName, profile: Profile, now: Instant) -> Self {
        Membership {
            name,
            profile: Arc::new(profile),
            incarnation: Incarnation::ZERO,
            lifecycle: Lifecycle::Active,
            started: now,
            members: Members::default(),
            probe_order: ProbeOrder::default(),
            probes: BTreeMap::new(),
            relays: BTreeMap::new(),
            next_seq: 0,
            suspicions: BTreeMap::new(),
            awareness: Awareness::new(config.awareness_max),
            join: None,
            join_transfer: None,
            name_taken_by: None,
        }
    }

    /// What the catalog may see of membership.
    pub(crate) fn view(&self, expected_members: Option<usize>) -> MembershipView<'_> {
        MembershipView {
            members: &self.members,
            active: self.lifecycle == Lifecycle::Active,
            joining: self.join.is_some(),
            expected_members,
        }
    }

    /// Every member, this node first, then the others by name.
    pub(crate) fn member_views(&self) -> Vec<MemberView> {
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
            name,
            profile: Arc::new(self.members.profile(m)),
            state: m.state,
            incarnation: m.incarnation,
            since: m.since,
            last_ack: m.last_ack(),
            is_self: false,
        }));
        out
    }

    fn own_state(&self) -> State {
        match self.lifecycle {
            Lifecycle::Active => State::Alive,
            Lifecycle::Leaving | Lifecycle::Stopped => State::Left,
        }
    }

    /// Digest of the live membership view, this node included (see `Members::digest`).
    pub(crate) fn full_digest(&self) -> u64 {
        self.members.digest().wrapping_add(digest_part(
            &self.name,
            self.incarnation,
            self.own_state(),
        ))
    }

    /// Members the retransmit limit and suspicion window are computed for.
    fn cluster_size(&self) -> usize {
        self.members.live().len() + 1
    }

    fn next_seq(&mut self) -> Seq {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }
}

impl Membership {
    /// After a runtime change of timings: a periodic timer armed with a longer interval than
    /// its new one is pulled in to `now` plus the new interval, so a change back from a long
    /// interval takes effect at once, not when the long timer fires. A longer new interval
    /// applies from the next tick. Timers are moved, never added: each chain stays one timer.
    pub(super) fn rearm_retuned_timers(&self, io: &mut Io, now: Instant, before: &Config) {
        let probe = self.awareness.scale(io.config.probe_interval);
        let periodic = [
            (
                Timer::ProbeTick,
                before.probe_interval,
                io.config.probe_interval,
                probe,
            ),
            (
                Timer::GossipTick,
                before.gossip_interval,
                io.config.gossip_interval,
                io.config.gossip_interval,
            ),
            (
                Timer::SyncTick,
                before.sync_interval,
                io.config.sync_interval,
                io.config.sync_interval,
            ),
            (
                Timer::ReconnectTick,
                before.reconnect_interval,
                io.config.reconnect_interval,
                io.config.reconnect_interval,
            ),
        ];
        for (timer, old, new, wait) in periodic {
            if new < old {
                io.timers.pull_in(&timer, now + wait);
            }
        }
        // The registry's early re-sync is one-shot, armed one probe interval ahead.
        if io.config.probe_interval < before.probe_interval {
            io.timers
                .pull_in(&Timer::RegistryResync, now + io.config.probe_interval);
        }
    }
}
