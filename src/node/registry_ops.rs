//! The registry inside the protocol: local writes, merging and gossiping entries, owner-local
//! TTLs and health checks, purging the instances of failed owners (or keeping them, stale,
//! without quorum), and anti-entropy for the registry.

use std::time::Duration;

use super::{CommandError, Event, Node, Reply};
use crate::names::{InstanceId, NodeName, ServiceName};
use crate::registry::{clip, fit_texts, newer, Check, Entry, Health, Instance, InstanceSpec};
use crate::swim::gossip::Subject;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{encode_message, Message};

/// Tombstones answering old versions of deleted entries, held until the datagram that brought
/// them has been read (`Node::send_grave_replies`): one per entry, and a datagram carries far
/// fewer entries than this.
pub(super) const GRAVE_REPLIES_MAX: usize = 256;

/// Deadlines of an instance this node owns. Owner-local: a renewal that changes nothing else
/// moves these and sends nothing, so heartbeats cost no cluster traffic.
#[derive(Debug, Clone, Default)]
pub(super) struct Owned {
    liveness_deadline: Option<Instant>,
    ttl_deadline: Option<Instant>,
    critical_since: Option<Instant>,
    next_check: Option<Instant>,
}

impl Node {
    // ---- commands ----

    pub(super) fn register(
        &mut self,
        now: Instant,
        spec: InstanceSpec,
    ) -> Result<Reply, CommandError> {
        let id = match spec.id.clone() {
            Some(id) => id,
            None => self.new_instance_id(),
        };
        let existing = self.registry.get(&id).cloned();
        if let Some(current) = &existing {
            if current.service != spec.service {
                return Err(CommandError::IdInUse {
                    id,
                    service: current.service.clone(),
                });
            }
        }
        let mut instance = spec
            .into_instance(id.clone(), self.name.clone(), now.as_millis())
            .map_err(|e| CommandError::Invalid {
                detail: e.to_string(),
            })?;
        if let Some(current) = existing {
            // Re-registering keeps what the instance's checks and operators established.
            if current.check == instance.check {
                instance.health = current.health;
                instance.output = current.output.clone();
                instance.health_since_ms = current.health_since_ms;
            }
            instance.online = current.online;
            instance.maintenance_reason = current.maintenance_reason.clone();
            if *current == instance {
                self.refresh_deadlines(now, &instance);
                return Ok(Reply::Registered { id });
            }
        }
        self.refresh_deadlines(now, &instance);
        if let Some(owned) = self.owned.get_mut(&id) {
            owned.next_check = Some(now);
        }
        self.write(now, id.clone(), Some(instance));
        Ok(Reply::Registered { id })
    }

    pub(super) fn renew(&mut self, now: Instant, id: &InstanceId) -> Result<Reply, CommandError> {
        let current = self.live_instance(id)?;
        let mut next = (*current).clone();
        next.owner = self.name.clone();
        if current.check.ttl().is_some() && current.health == Health::Critical {
            // A heartbeat is the instance saying it is alive.
            self.set_health_fields(&mut next, now, Health::Passing, "renewed");
        }
        self.refresh_deadlines(now, &next);
        if next != *current {
            self.write(now, id.clone(), Some(next));
        }
        Ok(Reply::Done)
    }

    pub(super) fn deregister(
        &mut self,
        now: Instant,
        id: &InstanceId,
    ) -> Result<Reply, CommandError> {
        self.live_instance(id)?;
        self.owned.remove(id);
        self.write(now, id.clone(), None);
        Ok(Reply::Done)
    }

    pub(super) fn set_health(
        &mut self,
        now: Instant,
        id: &InstanceId,
        health: Health,
        output: &str,
    ) -> Result<Reply, CommandError> {
        let current = self.live_instance(id)?;
        let mut next = (*current).clone();
        next.owner = self.name.clone();
        self.set_health_fields(&mut next, now, health, output);
        self.refresh_deadlines(now, &next);
        if next != *current {
            self.write(now, id.clone(), Some(next));
        }
        Ok(Reply::Done)
    }

    pub(super) fn set_maintenance(
        &mut self,
        now: Instant,
        id: &InstanceId,
        enable: bool,
        reason: Option<&str>,
    ) -> Result<Reply, CommandError> {
        let current = self.live_instance(id)?;
        let mut next = (*current).clone();
        next.online = !enable;
        next.maintenance_reason = if enable {
            Some(clip(reason.unwrap_or("maintenance mode"), usize::MAX))
        } else {
            None
        };
        fit_texts(&mut next);
        if next != *current {
            self.write(now, id.clone(), Some(next));
        }
        Ok(Reply::Done)
    }

    /// Start the HTTP checks of owned instances now; checks of instances owned elsewhere are
    /// their owners' to run.
    pub(super) fn run_checks(
        &mut self,
        now: Instant,
        service: Option<&ServiceName>,
        id: Option<&InstanceId>,
    ) -> Reply {
        let due: Vec<InstanceId> = self
            .registry
            .instances()
            .filter(|i| i.owner == self.name && matches!(i.check, Check::Http { .. }))
            .filter(|i| service.is_none_or(|s| i.service == *s) && id.is_none_or(|d| i.id == *d))
            .map(|i| i.id.clone())
            .collect();
        for id in &due {
            self.start_check(now, id);
        }
        Reply::ChecksStarted { count: due.len() }
    }

    fn live_instance(&self, id: &InstanceId) -> Result<std::sync::Arc<Instance>, CommandError> {
        self.registry
            .get(id)
            .cloned()
            .ok_or_else(|| CommandError::UnknownInstance { id: id.clone() })
    }

    fn set_health_fields(&self, next: &mut Instance, now: Instant, health: Health, output: &str) {
        if next.health != health {
            next.health_since_ms = now.as_millis();
        }
        next.health = health;
        next.output = clip(output, usize::MAX);
        fit_texts(next);
    }

    /// A UUID v4 from the node's seeded generator (deterministic in the simulator).
    fn new_instance_id(&mut self) -> InstanceId {
        use rand_core::RngCore;
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let text = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        InstanceId::new(&text).expect("a UUID is a valid instance id")
    }

    // ---- writing and merging ----

    /// A local write: version it, store it, gossip it at once.
    fn write(&mut self, now: Instant, id: InstanceId, instance: Option<Instance>) {
        let version = self.registry.next_version(now, &self.name);
        let entry = Entry {
            id,
            version,
            instance: instance.map(Box::new),
        };
        self.merge(now, entry);
    }

    /// Merge an entry; if it is news, track ownership, gossip it on and tell the shell.
    pub(super) fn merge(&mut self, now: Instant, entry: Entry) -> bool {
        let id = entry.id.clone();
        let owner = entry.instance.as_ref().map(|i| i.owner.clone());
        if !self.registry.apply(entry.clone()) {
            return false;
        }
        match owner {
            Some(owner) if owner == self.name => {
                if !self.owned.contains_key(&id) {
                    if let Some(i) = self.registry.get(&id).cloned() {
                        self.refresh_deadlines(now, &i);
                    }
                }
            }
            _ => {
                self.owned.remove(&id);
            }
        }
        let payload = encode_message(&Message::Entry(entry));
        self.broadcasts.push(Subject::Instance(id), payload.into());
        self.want_push();
        self.version += 1;
        let index = self.registry.index();
        self.emit(Event::RegistryChanged { index });
        true
    }

    /// An entry from a peer, gossiped or pushed by anti-entropy.
    pub(super) fn on_entry(&mut self, now: Instant, entry: Entry) {
        let grace_ms = self.config.tombstone_grace.as_millis() as u64;
        if self
            .registry
            .is_expired_tombstone(&entry, now.as_millis(), grace_ms)
        {
            return;
        }
        if let Some(instance) = &entry.instance {
            if let Some(grave) = self
                .registry
                .grave(&entry.id)
                .filter(|grave| !newer(grave, &entry.version))
            {
                // Deleted here, its tombstone since collected, while a member was cut off (see
                // `keeps_graves`): this is the old version coming back from that side, which
                // never saw the deletion. Refuse it (the registry would too) and answer with
                // the tombstone, which the sender, holding the entry, takes and gossips on its
                // side: the deletion wins there as it would have within the grace.
                self.stats.zombies_refused += 1;
                if self.grave_replies.len() < GRAVE_REPLIES_MAX {
                    self.grave_replies.push(Entry {
                        id: entry.id,
                        version: grave.clone(),
                        instance: None,
                    });
                }
                return;
            }
            let unknown = self.registry.stored(&entry.id).is_none();
            // A late rumour of an instance whose owner has failed must not bring it back (while
            // we have quorum; without it we keep such instances anyway, marked stale).
            let owner_failed = instance.owner != self.name
                && self
                    .members
                    .get(&instance.owner)
                    .is_some_and(|m| !m.state.is_live());
            if owner_failed && unknown && self.quorum().has_quorum {
                // Unless the owner is back and we have not heard yet: after a heal, its entries
                // race its refutation. Ask it for them when we see it back.
                let owner = instance.owner.clone();
                self.owe_sync(owner);
                return;
            }
            if instance.owner == self.name && self.is_zombie(&entry) {
                // We own it but hold nothing newer: we deleted it and the tombstone has been
                // collected, and a peer cut off for longer than the grace sends it back. The
                // owner has the last word: delete it again, at a version newer than the rumour.
                self.stats.zombies_deleted += 1;
                self.registry.observe(&entry.version);
                self.write(now, entry.id, None);
                return;
            }
            if instance.owner != self.name && unknown && self.members.get(&instance.owner).is_none()
            {
                // An owner we have not heard of: a member too new for its news to have reached
                // us, or one already reaped. Look again once a purge window has passed.
                self.on_member_gone(now);
            }
        }
        self.merge(now, entry);
    }

    /// An entry naming us as owner that we do not hold, written since this node started (so
    /// not one we forgot by restarting: those we adopt, and enforce their TTLs again).
    fn is_zombie(&self, entry: &Entry) -> bool {
        self.registry.get(&entry.id).is_none()
            && entry.version.wall_ms >= self.started.as_millis()
            && self
                .registry
                .stored(&entry.id)
                .is_none_or(|s| newer(&s.version, &entry.version))
    }

    /// Reset the owner-local deadlines of an instance we own.
    fn refresh_deadlines(&mut self, now: Instant, instance: &Instance) {
        let owned = self.owned.entry(instance.id.clone()).or_default();
        owned.liveness_deadline = instance
            .liveness_ms
            .map(|ms| now + Duration::from_millis(ms));
        owned.ttl_deadline = instance.check.ttl().map(|ttl| now + ttl);
        if instance.health != Health::Critical {
            owned.critical_since = None;
        } else if owned.critical_since.is_none() {
            owned.critical_since = Some(now);
        }
        if let Check::Http { interval_ms, .. } = &instance.check {
            if owned.next_check.is_none() {
                owned.next_check = Some(now + Duration::from_millis(*interval_ms));
            }
        }
    }

    fn start_check(&mut self, now: Instant, id: &InstanceId) {
        let Some(instance) = self.registry.get(id).cloned() else {
            return;
        };
        let Check::Http {
            url,
            interval_ms,
            timeout_ms,
        } = &instance.check
        else {
            return;
        };
        if let Some(owned) = self.owned.get_mut(id) {
            owned.next_check = Some(now + Duration::from_millis(*interval_ms));
        }
        self.stats.checks_started += 1;
        self.emit(Event::CheckDue {
            id: id.clone(),
            url: url.0.clone(),
            timeout: Duration::from_millis(*timeout_ms),
        });
    }

    // ---- the owner's tick ----

    pub(super) fn on_registry_tick(&mut self, now: Instant) {
        self.timers
            .schedule(now + self.config.registry_tick, Timer::RegistryTick);
        if self.lifecycle != super::Lifecycle::Active {
            return;
        }
        let mut expire = Vec::new();
        let mut ttl_lapsed = Vec::new();
        let mut checks = Vec::new();
        for (id, owned) in &self.owned {
            let Some(instance) = self.registry.get(id) else {
                continue;
            };
            if owned.liveness_deadline.is_some_and(|d| now >= d) {
                expire.push(id.clone());
                continue;
            }
            if let (Some(since), Some(after)) =
                (owned.critical_since, instance.deregister_critical_after_ms)
            {
                if now.saturating_since(since) >= Duration::from_millis(after) {
                    expire.push(id.clone());
                    continue;
                }
            }
            if owned.ttl_deadline.is_some_and(|d| now >= d) && instance.health != Health::Critical {
                ttl_lapsed.push(id.clone());
            }
            if owned.next_check.is_some_and(|d| now >= d) {
                checks.push(id.clone());
            }
        }
        for id in expire {
            self.stats.instances_expired += 1;
            self.owned.remove(&id);
            self.write(now, id, None);
        }
        for id in ttl_lapsed {
            if let Some(current) = self.registry.get(&id).cloned() {
                let mut next = (*current).clone();
                self.set_health_fields(&mut next, now, Health::Critical, "TTL expired");
                if let Some(owned) = self.owned.get_mut(&id) {
                    owned.critical_since = Some(now);
                }
                self.write(now, id, Some(next));
            }
        }
        for id in checks {
            self.start_check(now, &id);
        }
        if let Some(since) = self.orphans_since {
            // Wait out a whole (unconfirmed) suspicion window: by then the rest of a
            // partition's far side is suspected too, and no longer counts as alive.
            let (_, max) = crate::swim::suspicion::bounds(
                self.config.suspicion_base,
                self.config.suspicion_max_mult,
                self.cluster_size(),
            );
            if !self.sees_alive_majority() {
                // Cut off: the window starts again once a majority is seen alive. After a heal
                // the far side comes back one member at a time; purging at the first sight of
                // a majority would drop what the members not yet seen back own (and nothing
                // would send it again before an anti-entropy round).
                self.orphans_since = Some(now);
            } else if now.saturating_since(since) >= max {
                self.purge_orphans();
            }
        }
        let keep_graves = self.keeps_graves(now);
        let collected = self.registry.collect_tombstones(
            now.as_millis(),
            self.config.tombstone_grace.as_millis() as u64,
            keep_graves,
        );
        if collected > 0 {
            self.version += 1;
        }
        if self.registry.graves() > 0 {
            // Out of the window, every grave goes. In it, one older than `failed_reap_after`
            // guards nobody: any member cut off since before it has been reaped, and no longer
            // reconnects by itself.
            let before_ms = if keep_graves {
                let reap_ms = self.config.failed_reap_after.as_millis() as u64;
                now.as_millis().saturating_sub(reap_ms)
            } else {
                u64::MAX
            };
            self.registry.forget_graves(before_ms);
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
    /// deletion's version, and [`Node::on_entry`] answers the old version with the tombstone.
    /// After a grace of contact, anti-entropy has compared registries with the returned side
    /// (the bound the grace itself rests on), so the graves can go. Left members are not
    /// counted: a node that left has stopped, and comes back empty.
    ///
    /// Holding a member failed covers more than a partition (a crashed node keeps graves until
    /// it is reaped), so this errs towards keeping; [`GRAVES_MAX`] bounds the cost, and a
    /// cluster with no member failed keeps none.
    ///
    /// [`GRAVES_MAX`]: crate::registry::GRAVES_MAX
    fn keeps_graves(&mut self, now: Instant) -> bool {
        if self.members.counts().failed > 0 {
            self.graves_until = Some(now + self.config.tombstone_grace);
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
    pub(super) fn on_member_gone(&mut self, now: Instant) {
        if self.orphans_since.is_none() {
            self.orphans_since = Some(now);
        }
    }

    /// The owner is neither us nor a live member: failed, left, or unknown (reaped, or so new
    /// that its news has not reached us yet).
    pub(super) fn owner_gone(&self, owner: &NodeName) -> bool {
        *owner != self.name && self.members.get(owner).is_none_or(|m| !m.state.is_live())
    }

    /// A majority of the members we know of is alive (suspects not counted).
    fn sees_alive_majority(&self) -> bool {
        let counts = self.members.counts();
        let alive = counts.alive + 1;
        let known = alive + counts.suspect + counts.failed;
        alive * 2 > known.max(self.config.expected_members.unwrap_or(0))
    }

    fn purge_orphans(&mut self) {
        self.orphans_since = None;
        let gone: Vec<InstanceId> = self
            .registry
            .instances()
            .filter(|i| self.owner_gone(&i.owner))
            .map(|i| i.id.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        for id in &gone {
            self.registry.forget(id);
            self.broadcasts.forget(&Subject::Instance(id.clone()));
        }
        self.version += 1;
        let index = self.registry.index();
        self.emit(Event::RegistryChanged { index });
    }
}
