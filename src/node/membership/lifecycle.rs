//! Joining, leaving, reconnecting to failed members and forgetting the long gone.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Membership, PendingJoin};
use crate::node::catalog::Catalog;
use crate::node::io::Io;
use crate::node::{CommandError, Event, Lifecycle};
use crate::swim::gossip::Subject;
use crate::swim::probe::{sample, uniform};
use crate::swim::State;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{MemberUpdate, Message, PUSH_PULL_MEMBERS_MAX};

/// A leaving node tells this many members directly, besides gossiping it.
const LEAVE_DIRECT_MAX: usize = 32;

impl Membership {
    pub(crate) fn start_join(
        &mut self,
        io: &mut Io,
        now: Instant,
        seeds: Vec<SocketAddr>,
    ) -> Result<(), CommandError> {
        if seeds.is_empty() {
            return Err(CommandError::NoSeeds);
        }
        // A config that lists every node of the cluster names this one too: nothing to do.
        let seeds: Vec<SocketAddr> = seeds
            .into_iter()
            .filter(|s| *s != self.profile.addr)
            .collect();
        if seeds.is_empty() {
            return Ok(());
        }
        self.join = Some(PendingJoin { seeds, attempt: 0 });
        self.send_join(io, now);
        Ok(())
    }

    /// Introduce ourselves to every seed; the first to answer with its table completes the join.
    fn send_join(&mut self, io: &mut Io, now: Instant) {
        let Some(join) = self.join.as_mut() else {
            return;
        };
        join.attempt += 1;
        let (seeds, attempt) = (join.seeds.clone(), join.attempt);
        let join = self.padded_join(io);
        for seed in seeds {
            self.send_records(io, seed, true, join.clone(), None);
        }
        let backoff = io
            .config
            .join_retry_interval
            .saturating_mul(1 << (attempt - 1).min(16));
        let wait = backoff.min(io.config.join_retry_max);
        io.timers.schedule(now + wait, Timer::JoinRetry { attempt });
    }

    /// Our record, repeated to fill one datagram: a seed answers a stranger with at most as
    /// many bytes as it sent (`replies`), so the join pays for the table it gets back. The
    /// copies are idempotent at the seed.
    fn padded_join(&self, io: &Io) -> Vec<MemberUpdate> {
        let own = self.own_update();
        let size = bincode::encode_to_vec(&own, crate::wire::wire_config()).map_or(0, |v| v.len());
        let room = io
            .config
            .packet_bytes_max
            .saturating_sub(io.envelope_overhead() + super::dissemination::PUSH_PULL_FRAME_BYTES);
        let copies = room
            .checked_div(size)
            .unwrap_or(1)
            .clamp(1, PUSH_PULL_MEMBERS_MAX);
        vec![own; copies]
    }

    pub(crate) fn on_join_retry(&mut self, io: &mut Io, now: Instant, attempt: u32) {
        if self.join.as_ref().is_some_and(|j| j.attempt == attempt) {
            self.send_join(io, now);
        }
    }

    pub(crate) fn start_leave(&mut self, io: &mut Io, now: Instant) {
        self.lifecycle = Lifecycle::Leaving;
        self.join = None;
        io.changed();
        let goodbye = self.own_update();
        self.queue_member(io, goodbye.clone());
        let direct = sample(self.members.live(), LEAVE_DIRECT_MAX, &mut io.rng, |_| {
            false
        });
        for id in direct {
            if let Some(addr) = self.members.by_id(id).map(|m| m.addr()) {
                self.send(io, addr, &[Message::Member(goodbye.clone())], true);
            }
        }
        let wait = if self.members.live().is_empty() {
            Duration::ZERO
        } else {
            io.config.leave_propagate
        };
        io.timers.schedule(now + wait, Timer::LeaveDone);
    }

    pub(crate) fn on_leave_done(&mut self, io: &mut Io) {
        self.lifecycle = Lifecycle::Stopped;
        io.timers.clear();
        io.registry_tick_at = None;
        self.probes.clear();
        self.relays.clear();
        io.emit(Event::LeaveComplete);
    }

    /// Reach out to one failed member: if it is alive after all (a healed partition), the
    /// digests differ and a push-pull brings both sides together.
    pub(crate) fn on_reconnect_tick(&mut self, io: &mut Io, catalog: &mut Catalog, now: Instant) {
        io.timers
            .schedule(now + io.config.reconnect_interval, Timer::ReconnectTick);
        let failed = self.members.counts().failed;
        if failed == 0 || self.lifecycle != Lifecycle::Active {
            return;
        }
        let pick = uniform(&mut io.rng, failed);
        let addr = self
            .members
            .iter()
            .filter(|(_, m)| m.state == State::Failed)
            .nth(pick)
            .map(|(_, m)| m.addr());
        if let Some(addr) = addr {
            self.send_sync_probe(io, catalog, now, addr);
        }
    }

    pub(crate) fn reap_interval(&self, io: &Io) -> Duration {
        let shortest = io.config.failed_reap_after.min(io.config.left_reap_after);
        (shortest / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    pub(crate) fn on_reap_tick(&mut self, io: &mut Io, now: Instant) {
        io.timers
            .schedule(now + self.reap_interval(io), Timer::ReapTick);
        let (counts, failed_after, left_after) = (
            self.members.counts(),
            io.config.failed_reap_after,
            io.config.left_reap_after,
        );
        if counts.failed + counts.left == 0 {
            return;
        }
        let expired: Vec<_> = self
            .members
            .iter()
            .filter(|(_, m)| match m.state {
                State::Failed => now.saturating_since(m.since) >= failed_after,
                State::Left => now.saturating_since(m.since) >= left_after,
                State::Alive | State::Suspect => false,
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            if let Some(id) = self.members.remove(&name) {
                self.probe_order.forget(id);
            }
            io.broadcasts.forget(&Subject::Member(name.clone()));
            io.stats.members_reaped += 1;
            io.emit(Event::MemberReaped { name });
        }
    }
}
