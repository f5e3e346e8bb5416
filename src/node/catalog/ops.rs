//! The registry inside the protocol: local writes, merging and gossiping entries, owner-local
//! TTLs and health checks, purging the instances of failed owners (or keeping them, stale,
//! without quorum), and anti-entropy for the registry.

use std::time::Duration;

use super::checks::OwnedCheck;
use super::{Catalog, MembershipView};
use crate::names::{InstanceId, NodeName, ServiceName};
use crate::node::io::Io;
use crate::node::{CommandError, Event, Reply};
use crate::registry::{clip, fit_texts, newer, Check, Entry, Health, Hlc, Instance, InstanceSpec};
use crate::swim::gossip::Subject;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{encode_message, Message};

/// Tombstones answering old versions of deleted entries, held until the datagram that brought
/// them has been read (`Catalog::send_grave_replies`): one per entry, and a datagram carries far
/// fewer entries than this.
pub(crate) const GRAVE_REPLIES_MAX: usize = 256;

/// How the maintenance reason of an instance taken off-line with its node begins: what tells
/// node maintenance from the instance's own when the node comes back, and after a restart.
pub(crate) const NODE_MAINTENANCE: &str = "node maintenance: ";

/// Deadlines of an instance this node owns. Owner-local: a renewal that changes nothing else
/// moves these and sends nothing, so heartbeats cost no cluster traffic.
///
/// Only instances registered through this node's API (or touched by it: a renewal, a health
/// report) or restored from its own data_dir are owned here. An entry that arrives by gossip
/// naming this node as owner is stored but not adopted: nobody outside the node's API can
/// make it fetch a URL or enforce a TTL (issue 14, finding 6).
#[derive(Debug, Clone)]
pub(super) struct Owned {
    /// The checks as this node was given them, never as gossip later rewrote them: the only
    /// URLs and addresses this node probes for the instance.
    pub(super) checks: Vec<OwnedCheck>,
    liveness_deadline: Option<Instant>,
}

impl Owned {
    fn new(instance: &Instance) -> Owned {
        Owned {
            checks: instance
                .checks()
                .iter()
                .filter(|c| c.check != Check::None)
                .map(OwnedCheck::of)
                .collect(),
            liveness_deadline: None,
        }
    }

    /// Take the checks of a registration through our API: those unchanged keep their
    /// deadlines, the others start afresh.
    pub(super) fn take_checks(&mut self, instance: &Instance) {
        let mut fresh = Owned::new(instance).checks;
        for check in &mut fresh {
            if let Some(old) = self
                .checks
                .iter()
                .find(|o| o.id == check.id && o.check == check.check)
            {
                check.clone_from(old);
            }
        }
        self.checks = fresh;
    }
}

impl Catalog {
    // ---- commands ----

    pub(crate) fn register(
        &mut self,
        io: &mut Io,
        now: Instant,
        spec: InstanceSpec,
    ) -> Result<Reply, CommandError> {
        let id = match spec.id.clone() {
            Some(id) => id,
            None => self.new_instance_id(io),
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
        let mut existing_equal = false;
        let wall_ms = now.as_millis();
        let mut checks = instance.checks();
        if let Some(current) = &existing {
            // Re-registering keeps what the instance's checks and operators established.
            let before = current.checks();
            for check in &mut checks {
                if let Some(old) = before
                    .iter()
                    .find(|o| o.id == check.id && o.check == check.check)
                {
                    check.status = old.status;
                    check.output = old.output.clone();
                    check.since_ms = old.since_ms;
                }
            }
            instance.health = current.health;
            instance.health_since_ms = current.health_since_ms;
            instance.online = current.online;
            instance.maintenance_reason = current.maintenance_reason.clone();
        }
        instance.set_checks(checks, self.node_verdict().as_ref(), wall_ms);
        self.refuse_taken_ids(&id, &instance)?;
        if let (Some(reason), true) = (&self.node_maintenance, instance.online) {
            // Registered while the node is in maintenance: off-line with it.
            instance.online = false;
            instance.maintenance_reason =
                Some(clip(&format!("{NODE_MAINTENANCE}{reason}"), usize::MAX));
            fit_texts(&mut instance);
        }
        if let Some(current) = &existing {
            existing_equal = **current == instance;
        }
        // Registered through our API: the checks to run are the ones given here.
        match self.owned.get_mut(&id) {
            Some(owned) => owned.take_checks(&instance),
            None => {
                self.owned.insert(id.clone(), Owned::new(&instance));
            }
        }
        if existing_equal {
            self.refresh_deadlines(now, &instance, None);
            return Ok(Reply::Registered { id });
        }
        self.refresh_deadlines(now, &instance, None);
        if let Some(owned) = self.owned.get_mut(&id) {
            for check in &mut owned.checks {
                check.next_check = check.check.interval().map(|_| now);
            }
        }
        self.write(io, now, id.clone(), Some(instance));
        Ok(Reply::Registered { id })
    }

    pub(crate) fn renew(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: &InstanceId,
    ) -> Result<Reply, CommandError> {
        let current = self.live_instance(id)?;
        let mut next = (*current).clone();
        next.owner = self.name.clone();
        let mut checks = next.checks();
        let mut revived = false;
        for check in &mut checks {
            if check.check.ttl().is_some() && check.status == Health::Critical {
                // A heartbeat is the instance saying it is alive.
                check.status = Health::Passing;
                check.output = clip("renewed", usize::MAX);
                check.since_ms = now.as_millis();
                revived = true;
            }
        }
        if revived {
            next.set_checks(checks, self.node_verdict().as_ref(), now.as_millis());
        }
        self.refresh_deadlines(now, &next, None);
        if next != *current {
            self.write(io, now, id.clone(), Some(next));
        }
        Ok(Reply::Done)
    }

    pub(crate) fn deregister(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: &InstanceId,
    ) -> Result<Reply, CommandError> {
        self.live_instance(id)?;
        self.owned.remove(id);
        self.write(io, now, id.clone(), None);
        Ok(Reply::Done)
    }

    pub(crate) fn set_health(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: &InstanceId,
        health: Health,
        output: &str,
    ) -> Result<Reply, CommandError> {
        // The instance's first check (its only one, as the seed API and older clients see it).
        let current = self.live_instance(id)?;
        let first = current.checks().into_iter().next();
        let Some(first) = first else {
            return Ok(Reply::Done);
        };
        if self.target_is_ours_or_instance(&first.id.0) {
            return self.set_check(io, now, &first.id.0, health, output);
        }
        Err(CommandError::UnknownInstance { id: id.clone() })
    }

    pub(crate) fn set_maintenance(
        &mut self,
        io: &mut Io,
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
            self.write(io, now, id.clone(), Some(next));
        }
        Ok(Reply::Done)
    }

    /// Node maintenance: every instance this node owns off-line (those in their own
    /// maintenance keep theirs), or back on-line (only those node maintenance took).
    pub(crate) fn set_node_maintenance(
        &mut self,
        io: &mut Io,
        now: Instant,
        enable: bool,
        reason: Option<&str>,
    ) -> Reply {
        let taken = |i: &Instance| {
            i.maintenance_reason
                .as_ref()
                .is_some_and(|r| r.0.starts_with(NODE_MAINTENANCE))
        };
        let reason = reason.unwrap_or("maintenance mode").to_string();
        for (id, current) in self.held_as_owner() {
            let mut next = (*current).clone();
            if enable && (current.online || taken(&current)) {
                next.online = false;
                next.maintenance_reason =
                    Some(clip(&format!("{NODE_MAINTENANCE}{reason}"), usize::MAX));
            } else if !enable && taken(&current) {
                next.online = true;
                next.maintenance_reason = None;
            }
            fit_texts(&mut next);
            if next != *current {
                self.write(io, now, id, Some(next));
            }
        }
        self.node_maintenance = enable.then_some(reason);
        io.changed();
        Reply::Done
    }

    /// Start the HTTP checks of owned instances now; checks of instances owned elsewhere are
    /// their owners' to run, and entries that only name us by gossip are nobody's.
    pub(crate) fn run_checks(
        &mut self,
        io: &mut Io,
        now: Instant,
        service: Option<&ServiceName>,
        id: Option<&InstanceId>,
    ) -> Reply {
        let due: Vec<(InstanceId, String)> = self
            .owned
            .iter()
            .filter(|(owned_id, _)| {
                self.registry.get(owned_id).is_some_and(|i| {
                    i.owner == self.name
                        && service.is_none_or(|s| i.service == *s)
                        && id.is_none_or(|d| i.id == *d)
                })
            })
            .flat_map(|(owned_id, owned)| {
                owned
                    .checks
                    .iter()
                    .filter(|c| c.check.interval().is_some())
                    .map(|c| (owned_id.clone(), c.id.clone()))
            })
            .collect();
        for (id, check) in &due {
            self.start_check(io, now, Some(id), check);
        }
        Reply::ChecksStarted { count: due.len() }
    }

    fn live_instance(&self, id: &InstanceId) -> Result<std::sync::Arc<Instance>, CommandError> {
        self.registry
            .get(id)
            .cloned()
            .ok_or_else(|| CommandError::UnknownInstance { id: id.clone() })
    }

    /// Whether `check` is a check id a report may name (one of ours, or `service:<id>` of an
    /// instance anywhere).
    fn target_is_ours_or_instance(&self, check: &str) -> bool {
        check.starts_with("service:")
            || self
                .owned
                .values()
                .any(|o| o.checks.iter().any(|c| c.id == check))
    }

    /// A UUID v4 from the node's seeded generator (deterministic in the simulator).
    fn new_instance_id(&mut self, io: &mut Io) -> InstanceId {
        use rand_core::RngCore;
        let mut b = [0u8; 16];
        io.rng.fill_bytes(&mut b);
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
        // 36 characters of hex digits and dashes: always a valid id.
        #[allow(clippy::expect_used)]
        InstanceId::new(&text).expect("a UUID is a valid instance id")
    }

    // ---- writing and merging ----

    /// A local write: version it, store it, gossip it at once.
    pub(super) fn write(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: InstanceId,
        instance: Option<Instance>,
    ) {
        let version = self.registry.next_version(io.wall(now), &self.name);
        // What we write as ours is this boot's: a stale copy of it coming back is a zombie of
        // ours, which another boot's (a twin's) never is.
        let instance = instance.map(|mut i| {
            if i.owner == self.name {
                i.owner_boot = self.boot;
            }
            i
        });
        if self.epoch.is_none() {
            self.epoch = Some(version.clone());
        }
        let entry = Entry {
            id,
            version,
            instance: instance.map(Box::new),
        };
        self.merge(io, entry);
    }

    /// Merge an entry; if it is news, track ownership, gossip it on and tell the shell.
    fn merge(&mut self, io: &mut Io, entry: Entry) -> bool {
        let id = entry.id.clone();
        let owner = entry.instance.as_ref().map(|i| i.owner.clone());
        if !self.registry.apply(entry.clone()) {
            return false;
        }
        // Ours stays ours (with the check we were given); an entry naming us that we do not
        // own already is not adopted here: only our API and our own data_dir make us owner.
        if owner.as_ref() != Some(&self.name) {
            self.owned.remove(&id);
        }
        let payload = encode_message(&Message::Entry(entry));
        io.broadcasts.push(Subject::Instance(id), payload.into());
        io.want_push();
        io.changed();
        let index = self.registry.index();
        io.emit(Event::RegistryChanged { index });
        true
    }

    /// An entry from a peer, gossiped or pushed by anti-entropy.
    pub(crate) fn on_entry(
        &mut self,
        io: &mut Io,
        view: &MembershipView,
        now: Instant,
        entry: Entry,
    ) {
        let wall_ms = io.wall(now).as_millis();
        if let Some(ahead_ms) = too_far_ahead(&io.config, wall_ms, &entry.version) {
            // Not merged, not observed, not forwarded: a version this far ahead would drag the
            // registry clock of every node there (issue 14). Nothing changed, so the state
            // version stays; the event is for the (rate-limited) log.
            io.stats.clock_rejections += 1;
            io.emit_quiet(Event::ClockRejected {
                writer: entry.version.node,
                ahead_ms,
            });
            return;
        }
        let grace_ms = io.config.tombstone_grace.as_millis() as u64;
        if self
            .registry
            .is_expired_tombstone(&entry, wall_ms, grace_ms)
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
                io.stats.zombies_refused += 1;
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
                && view
                    .member_state(&instance.owner)
                    .is_some_and(|state| !state.is_live());
            if owner_failed && unknown && view.quorum().has_quorum {
                // Unless the owner is back and we have not heard yet: after a heal, its entries
                // race its refutation. Ask it for them when we see it back.
                let owner = instance.owner.clone();
                self.owe_sync(view, owner);
                return;
            }
            if instance.owner == self.name && self.is_twins(&entry, instance) {
                // Another process runs under our name (a cloned VM, or one started on the other
                // side of a partition) and this is a client's registration with it. Not ours
                // to delete, nor to enforce: leave it to its owner, and count it so the
                // conflict shows.
                io.stats.twin_entries += 1;
            } else if instance.owner == self.name && !view.joining && self.is_zombie(&entry) {
                // Not while joining: a live process holding our name (a twin, refused at join)
                // writes under it, and its entries are not ours to delete.
                // We own it but hold nothing newer: we deleted it and the tombstone has been
                // collected, and a peer cut off for longer than the grace sends it back. The
                // owner has the last word: delete it again, at a version newer than the rumour.
                io.stats.zombies_deleted += 1;
                self.registry.observe(&entry.version);
                self.write(io, now, entry.id, None);
                return;
            }
            if instance.owner != self.name
                && unknown
                && view.member_state(&instance.owner).is_none()
            {
                // An owner we have not heard of: a member too new for its news to have reached
                // us, or one already reaped. Look again once a purge window has passed.
                self.on_member_gone(now);
            }
        }
        let forgotten = entry
            .instance
            .as_deref()
            .filter(|i| self.is_forgotten(&entry, i))
            .cloned();
        if self.merge(io, entry) {
            if let Some(instance) = forgotten {
                self.adopt_forgotten(now, &instance);
            }
        }
    }

    /// The live instances this node holds as their owner, in id order (a snapshot: the
    /// caller may write while walking it).
    pub(super) fn held_as_owner(&self) -> Vec<(InstanceId, std::sync::Arc<Instance>)> {
        self.owned
            .keys()
            .filter_map(|id| {
                let current = self.registry.get(id)?;
                (current.owner == self.name).then(|| (id.clone(), current.clone()))
            })
            .collect()
    }

    /// An instance we wrote in our own name before this boot and no longer hold as ours: we
    /// were restarted without our data_dir (or lost it), and a peer gives it back.
    fn is_forgotten(&self, entry: &Entry, instance: &Instance) -> bool {
        instance.owner == self.name
            && entry.version.node == self.name
            && !self.owned.contains_key(&entry.id)
            && self
                .epoch
                .as_ref()
                .is_none_or(|epoch| entry.version < *epoch)
    }

    /// An entry another boot under our name wrote as its own since this boot began: a twin
    /// process's, live beside us (an earlier boot's entries are older than our epoch).
    fn is_twins(&self, entry: &Entry, instance: &Instance) -> bool {
        instance.owner_boot.is_known()
            && instance.owner_boot != self.boot
            && entry.version.node == self.name
            && self
                .epoch
                .as_ref()
                .is_some_and(|epoch| entry.version >= *epoch)
    }

    /// Take a forgotten instance back for its deadlines: its TTL and its liveness run again
    /// from now, so a client still alive has one TTL to pass again and one that is gone lets
    /// it lapse, instead of the instance reading passing for ever. Its HTTP check is not run:
    /// a URL that arrived by gossip is never fetched (issue 14), so it keeps its last status
    /// until its client registers it again.
    fn adopt_forgotten(&mut self, now: Instant, instance: &Instance) {
        let mut owned = Owned::new(instance);
        owned.checks.retain(|c| c.check.ttl().is_some());
        self.owned.insert(instance.id.clone(), owned);
        self.refresh_deadlines(now, instance, None);
    }

    /// An entry naming us as owner that we do not hold, written by this boot (at or above its
    /// epoch; so not one we forgot by restarting: those we adopt, and enforce their TTLs
    /// again), and marked as this boot's (or by a node too old to mark boots).
    fn is_zombie(&self, entry: &Entry) -> bool {
        self.registry.get(&entry.id).is_none()
            && entry.version.node == self.name
            && entry
                .instance
                .as_ref()
                .is_some_and(|i| !i.owner_boot.is_known() || i.owner_boot == self.boot)
            && self
                .epoch
                .as_ref()
                .is_some_and(|epoch| entry.version >= *epoch)
            && self
                .registry
                .stored(&entry.id)
                .is_none_or(|s| newer(&s.version, &entry.version))
    }

    /// Reset the owner-local deadlines of an instance we own, adopting it (with the checks it
    /// holds) if we did not: called for our API's writes and our own restored state only.
    /// `reported`: the check a report named (its TTL runs again); None: every check's.
    pub(super) fn refresh_deadlines(
        &mut self,
        now: Instant,
        instance: &Instance,
        reported: Option<&str>,
    ) {
        let owned = self
            .owned
            .entry(instance.id.clone())
            .or_insert_with(|| Owned::new(instance));
        owned.liveness_deadline = instance
            .liveness_ms
            .map(|ms| now + Duration::from_millis(ms));
        let states = instance.checks();
        for check in &mut owned.checks {
            let status = states
                .iter()
                .find(|s| s.id.0 == check.id)
                .map_or(Health::Passing, |s| s.status);
            check.refresh(now, status, reported.is_none_or(|r| r == check.id));
        }
    }

    // ---- the owner's tick ----

    pub(crate) fn on_registry_tick(&mut self, io: &mut Io, view: &MembershipView, now: Instant) {
        io.timers
            .schedule(now + io.config.registry_tick, Timer::RegistryTick);
        if !view.active {
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
            // Consul's per-check DeregisterCriticalServiceAfter.
            let critical_too_long = owned.checks.iter().any(|c| {
                matches!((c.critical_since, c.deregister_after), (Some(since), Some(after))
                    if now.saturating_since(since) >= after)
            });
            if critical_too_long {
                expire.push(id.clone());
                continue;
            }
            let states = instance.checks();
            for check in &owned.checks {
                let status = states.iter().find(|s| s.id.0 == check.id).map(|s| s.status);
                if check.ttl_deadline.is_some_and(|d| now >= d)
                    && status.is_some_and(|s| s != Health::Critical)
                {
                    ttl_lapsed.push(check.id.clone());
                }
                if check.next_check.is_some_and(|d| now >= d) {
                    checks.push((Some(id.clone()), check.id.clone()));
                }
            }
        }
        let (node_due, node_lapsed) = self.node_checks_due(now);
        ttl_lapsed.extend(node_lapsed);
        checks.extend(node_due.into_iter().map(|c| (None, c)));
        for id in expire {
            io.stats.instances_expired += 1;
            self.owned.remove(&id);
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
    fn keeps_graves(&mut self, io: &Io, view: &MembershipView, now: Instant) -> bool {
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
    fn sees_alive_majority(&self, view: &MembershipView) -> bool {
        let counts = view.counts();
        let alive = counts.alive + 1;
        let known = alive + counts.suspect + counts.failed;
        alive * 2 > known.max(view.expected_members.unwrap_or(0))
    }

    fn purge_orphans(&mut self, io: &mut Io, view: &MembershipView) {
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
            io.broadcasts.forget(&Subject::Instance(id.clone()));
        }
        io.changed();
        let index = self.registry.index();
        io.emit(Event::RegistryChanged { index });
    }
}

/// How far `version` is ahead of the wall clock (`wall_ms`), if further than the configured
/// `max_clock_offset`.
fn too_far_ahead(config: &crate::config::Config, wall_ms: u64, version: &Hlc) -> Option<u64> {
    let ahead_ms = version.wall_ms.saturating_sub(wall_ms);
    let allowed_ms = u64::try_from(config.max_clock_offset.as_millis()).unwrap_or(u64::MAX);
    (ahead_ms > allowed_ms).then_some(ahead_ms)
}

impl Catalog {
    /// The registry half of a restore: the clock floor, then this node's own instances.
    pub(in crate::node) fn restore(
        &mut self,
        io: &mut Io,
        now: Instant,
        clock: (u64, u32),
        instances: Vec<Entry>,
    ) {
        let (wall_ms, counter) = clock;
        // Our own saved state, trusted like the rest of the data directory (not checked
        // against `max_clock_offset`): the floor is what keeps writes after a restart above
        // the previous boot's when the wall clock went back.
        self.registry.observe(&Hlc {
            wall_ms,
            counter,
            node: self.name.clone(),
        });
        for entry in instances {
            let ours = entry
                .instance
                .as_ref()
                .is_some_and(|i| i.owner == self.name && i.id == entry.id);
            if !ours {
                continue;
            }
            // Merging stores it and queues it for gossip (the re-announcement); adopting it
            // arms its TTL and checks from `now` (one whole TTL for the client to report again).
            let id = entry.id.clone();
            self.merge(io, entry);
            if let Some(instance) = self.registry.get(&id).cloned() {
                if instance.owner == self.name {
                    self.refresh_deadlines(now, &instance, None);
                    // Node maintenance outlives a restart through the instances it took.
                    if let Some(reason) = instance
                        .maintenance_reason
                        .as_ref()
                        .and_then(|r| r.0.strip_prefix(NODE_MAINTENANCE))
                    {
                        self.node_maintenance = Some(reason.to_string());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use crate::config::Config;
    use crate::names::{InstanceId, Label, NodeName, ServiceName};
    use crate::node::{Command, Event, Identity, Node};
    use crate::registry::{Entry, InstanceSpec};
    use crate::time::Instant;

    /// One node that registers `n` instances, each live for a second without renewal, and
    /// runs its timers until they have lapsed; what it sent and reported, in order, and the
    /// tombstones (each with the version its deletion was given).
    fn lapse_all(n: usize) -> (Vec<Vec<u8>>, Vec<Event>, Vec<Option<Entry>>) {
        let identity = Identity {
            name: NodeName::new("n0").unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
            dc: Label::new("dc1").unwrap(),
            tags: Vec::new(),
        };
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut node = Node::new(Config::local(), identity, 7, start);
        let ids: Vec<InstanceId> = (0..n)
            .map(|i| InstanceId::new(&format!("api-{i}")).unwrap())
            .collect();
        for id in &ids {
            let mut spec = InstanceSpec::new(ServiceName::new("api").unwrap(), "10.0.0.1", 80);
            spec.id = Some(id.clone());
            spec.liveness = Some(Duration::from_secs(1));
            node.handle_command(start, Command::Register(spec)).unwrap();
        }
        let end = start + Duration::from_secs(3);
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        for _ in 0..10_000 {
            let Some(at) = node.poll_timeout().filter(|at| *at <= end) else {
                break;
            };
            node.handle_timeout(at);
            while let Some(t) = node.poll_transmit() {
                sent.push(t.payload.to_vec());
            }
            events.extend(std::iter::from_fn(|| node.poll_event()));
        }
        assert_eq!(node.stats().instances_expired, n as u64);
        let tombstones = ids.iter().map(|id| node.registry().entry(id)).collect();
        (sent, events, tombstones)
    }

    /// Instances that lapse in the same tick are deleted in the same order on every run (the
    /// owner's deadlines were kept in a randomly seeded std `HashMap`, so two runs of the same
    /// node with the same seed and inputs deleted them, and versioned the tombstones, in
    /// different orders).
    #[test]
    fn owned_instances_lapse_in_the_same_order_every_run() {
        let first = lapse_all(16);
        for _ in 0..4 {
            assert_eq!(lapse_all(16), first);
        }
    }
}
