//! Joining, leaving, reconnecting to failed members and forgetting the long gone.

use std::net::SocketAddr;
use std::time::Duration;

use super::{CommandError, Event, Lifecycle, Node, PendingJoin};
use crate::swim::gossip::Subject;
use crate::swim::probe::{sample, uniform};
use crate::swim::State;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::Message;

/// A leaving node tells this many members directly, besides gossiping it.
const LEAVE_DIRECT_MAX: usize = 32;

impl Node {
    pub(super) fn start_join(
        &mut self,
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
        self.send_join(now);
        Ok(())
    }

    /// Introduce ourselves to every seed; the first to answer with its table completes the join.
    fn send_join(&mut self, now: Instant) {
        let Some(join) = self.join.as_mut() else {
            return;
        };
        join.attempt += 1;
        let (seeds, attempt) = (join.seeds.clone(), join.attempt);
        for seed in seeds {
            self.send_records(seed, true, vec![self.own_update()]);
        }
        let backoff = self
            .io
            .config
            .join_retry_interval
            .saturating_mul(1 << (attempt - 1).min(16));
        let wait = backoff.min(self.io.config.join_retry_max);
        self.io
            .timers
            .schedule(now + wait, Timer::JoinRetry { attempt });
    }

    pub(super) fn on_join_retry(&mut self, now: Instant, attempt: u32) {
        if self.join.as_ref().is_some_and(|j| j.attempt == attempt) {
            self.send_join(now);
        }
    }

    pub(super) fn start_leave(&mut self, now: Instant) {
        self.lifecycle = Lifecycle::Leaving;
        self.join = None;
        self.io.changed();
        let goodbye = self.own_update();
        self.queue_member(goodbye.clone());
        let direct = sample(
            self.members.live(),
            LEAVE_DIRECT_MAX,
            &mut self.io.rng,
            |_| false,
        );
        for id in direct {
            if let Some(addr) = self.members.by_id(id).map(|m| m.profile.addr) {
                self.send(addr, &[Message::Member(goodbye.clone())], true);
            }
        }
        let wait = if self.members.live().is_empty() {
            Duration::ZERO
        } else {
            self.io.config.leave_propagate
        };
        self.io.timers.schedule(now + wait, Timer::LeaveDone);
    }

    pub(super) fn on_leave_done(&mut self) {
        self.lifecycle = Lifecycle::Stopped;
        self.io.timers.clear();
        self.probes.clear();
        self.relays.clear();
        self.io.emit(Event::LeaveComplete);
    }

    /// Reach out to one failed member: if it is alive after all (a healed partition), the
    /// digests differ and a push-pull brings both sides together.
    pub(super) fn on_reconnect_tick(&mut self, now: Instant) {
        self.io.timers.schedule(
            now + self.io.config.reconnect_interval,
            Timer::ReconnectTick,
        );
        let failed = self.members.counts().failed;
        if failed == 0 || self.lifecycle != Lifecycle::Active {
            return;
        }
        let pick = uniform(&mut self.io.rng, failed);
        let addr = self
            .members
            .iter()
            .filter(|(_, m)| m.state == State::Failed)
            .nth(pick)
            .map(|(_, m)| m.profile.addr);
        if let Some(addr) = addr {
            self.send_sync_probe(addr);
        }
    }

    pub(super) fn reap_interval(&self) -> Duration {
        let shortest = self
            .io
            .config
            .failed_reap_after
            .min(self.io.config.left_reap_after);
        (shortest / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    pub(super) fn on_reap_tick(&mut self, now: Instant) {
        self.io
            .timers
            .schedule(now + self.reap_interval(), Timer::ReapTick);
        let (counts, failed_after, left_after) = (
            self.members.counts(),
            self.io.config.failed_reap_after,
            self.io.config.left_reap_after,
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
            self.io.broadcasts.forget(&Subject::Member(name.clone()));
            self.io.stats.members_reaped += 1;
            self.io.emit(Event::MemberReaped { name });
        }
    }
}
