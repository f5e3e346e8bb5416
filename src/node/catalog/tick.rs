//! The owner's tick: TTLs, liveness and due checks of the instances this node owns, tombstones
//! collected; and the instances of failed owners, purged with quorum and kept (stale) without.

use std::time::Duration;

use super::{Catalog, MembershipView};
use crate::names::{InstanceId, NodeName};
use crate::node::io::Io;
use crate::node::Event;
use crate::registry::Health;
use crate::swim::gossip::Subject;
use crate::time::Instant;
use crate::timers::Timer;

impl Catalog {
    pub(crate) fn on_registry_tick(&mut self, io: &mut Io, view: &MembershipView, now: Instant) {
        io.registry_tick_at = None;
        if self.next_tick_at(io, view, now).is_some() {
            self.registry_tick_work(io, view, now);
        }
        // Asleep until the next deadline, or until an input gives the tick something to do
        // (`Node::keep_registry_ticking`).
        if let Some(at) = self.next_tick_at(io, view, now) {
            io.registry_tick_at = Some(at);
            io.timers.schedule(at, Timer::RegistryTick);
        }
    }

    fn registry_tick_work(&mut self, io: &mut Io, view: &MembershipView, now: Instant) {
        let mut expire = Vec::new();
        let mut ttl_lapsed = Vec::new();
        let mut checks = Vec::new();
        let mut spent: Vec<(InstanceId, String)> = Vec::new();
        // Only the owned instances with a deadline passed are visited (the index of `owned`),
        // and the registry is looked up only for those.
        for (id, owned) in self.owned.due(now) {
            let held = || self.registry.get(id);
            if owned.liveness_deadline.is_some_and(|d| now >= d) {
                if held().is_some() {
                    expire.push(id.clone());
                }
                continue;
            }
            // Consul's per-check DeregisterCriticalServiceAfter.
            let critical_too_long = owned.checks.iter().any(|c| {
                matches!((c.critical_since, c.deregister_after), (Some(since), Some(after))
                    if now.saturating_since(since) >= after)
            });
            if critical_too_long {
                if held().is_some() {
                    expire.push(id.clone());
                }
                continue;
            }
            let due = |check: &super::checks::OwnedCheck| {
                check.ttl_deadline.is_some_and(|d| now >= d)
                    || check.next_check.is_some_and(|d| now >= d)
            };
            if !owned.checks.iter().any(due) {
                continue;
            }
            let Some(instance) = held() else {
                continue;
            };
            let states = instance.checks();
            for check in &owned.checks {
                let status = states.iter().find(|s| s.id.0 == check.id).map(|s| s.status);
                if check.ttl_deadline.is_some_and(|d| now >= d) {
                    match status {
                        Some(Health::Critical) => spent.push((id.clone(), check.id.clone())),
                        Some(_) => ttl_lapsed.push(check.id.clone()),
                        None => {}
                    }
                }
                if check.next_check.is_some_and(|d| now >= d) {
                    checks.push((Some(id.clone()), check.id.clone()));
                }
            }
        }
        // A TTL that lapses on a check already critical changes nothing, and left armed it
        // would stay passed, so the tick would wake every `registry_tick` for it until the
        // next report (`next_tick_at`). Disarmed, the next report or registration arms it
        // again (`OwnedCheck::refresh`).
        for (id, check) in spent {
            self.owned.update(&id, |owned| {
                for c in owned.checks.iter_mut().filter(|c| c.id == check) {
                    c.ttl_deadline = None;
                }
            });
        }
        self.disarm_spent_node_ttls(now);
        let (node_due, node_lapsed) = self.node_checks_due(now);
        ttl_lapsed.extend(node_lapsed);
        checks.extend(node_due.into_iter().map(|c| (None, c)));
        for id in expire {
            io.stats.instances_expired += 1;
            self.disown(&id);
            self.write(io, now, id, None);
        }
        for check in ttl_lapsed {
            let _ = self.set_check(io, now, &check, Health::Critical, "TTL expired");
        }
        for (id, check) in checks {
            self.start_check(io, now, id.as_ref(), &check);
        }
        if let Some(since) = self.orphans_since {
            // Wait out a whole (unconfirmed) suspicion window: by then the rest of a
            // partition's far side is suspected too, and no longer counts as alive.
            let (_, max) = crate::swim::suspicion::bounds(
                io.config.suspicion_base,
                io.config.suspicion_max_mult,
                view.cluster_size(),
            );
            if !self.sees_alive_majority(view) {
                // Cut off: the window starts again once a majority is seen alive. After a heal
                // the far side comes back one member at a time; purging at the first sight of
                // a majority would drop what the members not yet seen back own (and nothing
                // would send it again before an anti-entropy round).
                self.orphans_since = Some(now);
            } else if now.saturating_since(since) >= max {
                self.purge_orphans(io, view);
            }
        }
        let keep_graves = self.keeps_graves(io, view, now);
        let collected = self.registry.collect_tombstones(
            io.wall(now).as_millis(),
            io.config.tombstone_grace.as_millis() as u64,
            keep_graves,
        );
        if collected > 0 {
            io.changed();
        }
        if self.registry.graves() > 0 {
            // Out of the window, every grave goes. In it, one older than `failed_reap_after`
            // guards nobody: any member cut off since before it has been reaped, and no longer
            // reconnects by itself.
            let before_ms = if keep_graves {
                let reap_ms = io.config.failed_reap_after.as_millis() as u64;
                io.wall(now).as_millis().saturating_sub(reap_ms)
            } else {
                u64::MAX
            };
            self.registry.forget_graves(before_ms);
        }
    }

    /// When the registry tick should run next, if at all.
    ///
    /// - At the earliest deadline of what this node owns (an instance's liveness, a check's
    ///   TTL, next run or critical clock, a node check's) or of its oldest tombstone's grace:
    ///   an owning node with a check every 10 s wakes for it, not twice a second, and meets
    ///   each deadline when it falls rather than up to a `registry_tick` late.
    /// - A `registry_tick` from now at the latest while work waits that has no deadline here:
    ///   instances of a gone owner awaiting the purge (it waits for a majority), graves to
    ///   forget, or a member held failed (it keeps graves); and while a deadline passed stays
    ///   passed (a lapsed TTL stays lapsed until reported), as the tick always did.
    /// - Never, with none of these, or while inactive (joining, leaving). O(log owned).
    pub(crate) fn next_tick_at(
        &self,
        io: &Io,
        view: &MembershipView,
        now: Instant,
    ) -> Option<Instant> {
        if !view.active {
            return None;
        }
        let tick = io.config.registry_tick;
        // Tombstones age by the wall clock (`collect_tombstones`); the tick's clock is the
        // node's, so the wait is converted from the wall clock's reading now.
        let tombstone_due = self.registry.oldest_tombstone_ms().map(|wall_ms| {
            let grace_ms = io.config.tombstone_grace.as_millis() as u64;
            let due_ms = wall_ms.saturating_add(grace_ms);
            let now_ms = io.wall(now).as_millis();
            now + Duration::from_millis(due_ms.saturating_sub(now_ms))
        });
        let earliest = [
            self.owned.next_due(),
            self.node_checks_next_due(),
            tombstone_due,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| if at > now { at } else { now + tick });
        let undated =
            self.orphans_since.is_some() || self.registry.graves() > 0 || view.counts().failed > 0;
        match (earliest, undated) {
            (Some(at), true) => Some(at.min(now + tick)),
            (None, true) => Some(now + tick),
            (at, false) => at,
        }
    }

    /// Whether collected tombstones are kept as graves ([`crate::registry::Registry::grave`]):
    /// while a member is held failed, and for a grace after the last one is not (it came back,
    /// or was reaped).
    ///
    /// A member cut off for longer than the grace (a partition: each side holds the other
    /// failed) still holds, live, what was deleted meanwhile on our side. Once our tombstone is
    /// collected, nothing would tell its old version from a write made on its side that we
    /// never saw, and anti-entropy would bring the entry back everywhere after the heal (the
    /// owner's zombie rule helps only if the owner saw the deletion). A grave keeps the
    /// deletion's version, and [`Catalog::on_entry`] answers the old version with the tombstone.
    /// After a grace of contact, anti-entropy has compared registries with the returned side
    /// (the bound the grace itself rests on), so the graves can go. Left members are not
    /// counted: a node that left has stopped, and comes back empty.
    ///
    /// Holding a member failed covers more than a partition (a crashed node keeps graves until
    /// it is reaped), so this errs towards keeping; [`GRAVES_MAX`] bounds the cost, and a
    /// cluster with no member failed keeps none.
    ///
    /// [`GRAVES_MAX`]: crate::registry::GRAVES_MAX
    pub(super) fn keeps_graves(&mut self, io: &Io, view: &MembershipView, now: Instant) -> bool {
        if view.counts().failed > 0 {
            self.graves_until = Some(now + io.config.tombstone_grace);
        }
        self.graves_until.is_some_and(|until| now < until)
    }

    /// A member failed or left: drop the instances it owned, unless we lack quorum, in which
    /// case we are probably the cut-off side and keep them (stale) until we see a majority.
    ///
    /// The decision waits one whole (maximum) suspicion window: a partition shows itself as
    /// one failure after another, and the first can arrive while the rest of the far side is
    /// still only suspected. It then counts only members known alive (not suspects). On the
    /// cut-off side the window runs from when a majority is seen alive again, so that the
    /// members of a healed partition are all seen back before anything of theirs is purged.
    pub(crate) fn on_member_gone(&mut self, now: Instant) {
        if self.orphans_since.is_none() {
            self.orphans_since = Some(now);
        }
    }

    /// The owner is neither us nor a live member: failed, left, or unknown (reaped, or so new
    /// that its news has not reached us yet).
    pub(crate) fn owner_gone(&self, view: &MembershipView, owner: &NodeName) -> bool {
        *owner != self.name
            && view
                .member_state(owner)
                .is_none_or(|state| !state.is_live())
    }

    /// A majority of the members we know of is alive (suspects not counted).
    pub(super) fn sees_alive_majority(&self, view: &MembershipView) -> bool {
        let counts = view.counts();
        let alive = counts.alive + 1;
        let known = alive + counts.suspect + counts.failed;
        alive * 2 > known.max(view.expected_members.unwrap_or(0))
    }

    pub(super) fn purge_orphans(&mut self, io: &mut Io, view: &MembershipView) {
        self.orphans_since = None;
        let gone: Vec<InstanceId> = self
            .registry
            .instances()
            .filter(|i| self.owner_gone(view, &i.owner))
            .map(|i| i.id.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        for id in &gone {
            self.registry.forget(id);
            self.note_if_owned(id);
            io.broadcasts.forget(&Subject::Instance(id.clone()));
        }
        io.changed();
        let index = self.registry.index();
        io.emit(Event::RegistryChanged { index });
    }
}
