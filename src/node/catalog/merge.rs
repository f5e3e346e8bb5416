//! Writing entries and merging what peers gossip: the last-writer-wins merge with the clock-offset
//! guard, tombstones and grave replies, and what an entry naming this node as owner may do (a
//! forgotten instance taken back, a twin left alone, a zombie deleted).

use std::net::SocketAddr;
use std::time::Duration;

use super::ops::{Owned, GRAVE_REPLIES_MAX};
use super::{Catalog, MembershipView};
use crate::names::InstanceId;
use crate::node::io::Io;
use crate::node::Event;
use crate::registry::{newer, Entry, Health, Hlc, Instance};
use crate::swim::gossip::Subject;
use crate::time::Instant;
use crate::wire::{encode_message, Message};

impl Catalog {
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
    pub(super) fn merge(&mut self, io: &mut Io, entry: Entry) -> bool {
        let id = entry.id.clone();
        let owner = entry.instance.as_ref().map(|i| i.owner.clone());
        if !self.registry.apply(entry.clone()) {
            return false;
        }
        // Ours stays ours (with the check we were given); an entry naming us that we do not
        // own already is not adopted here: only our API and our own data_dir make us owner.
        if owner.as_ref() != Some(&self.name) {
            self.disown(&id);
        }
        self.note_if_owned(&id);
        let payload = encode_message(&Message::Entry(entry));
        if io
            .broadcasts
            .push(Subject::Instance(id), payload.into())
            .is_some()
        {
            io.stats.gossip_instances_dropped += 1;
        }
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
        from: SocketAddr,
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
        // Past `registry_entries_max`, an id we do not hold is refused (counted): the old
        // version of a deleted one (below) still gets its grave reply, which stores nothing.
        let room = self.may_hold(io, &entry.id);
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
            if !room {
                io.stats.refused_entries_max += 1;
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
        if !room {
            // A tombstone of an id we do not hold (a live entry was refused above).
            io.stats.refused_entries_max += 1;
            return;
        }
        let forgotten = entry
            .instance
            .as_deref()
            .filter(|i| self.is_forgotten(&entry, i))
            .cloned();
        // Only a peer comparing registries with us may have pushed it (`resync`).
        let pushed = self
            .resync
            .is_partner(from)
            .then(|| (entry.id.clone(), entry.version.node.clone()));
        if self.merge(io, entry) {
            if let Some((id, origin)) = pushed {
                self.note_sync_news(io, now, from, &id, &origin);
            }
            // Taken back only within `instances_owned_max`; past it, held but not enforced,
            // like any entry naming us that we do not own.
            if let Some(instance) = forgotten.filter(|i| self.room_to_own(io, &i.id).is_ok()) {
                self.adopt_forgotten(now, &instance);
            }
        }
    }

    /// Copies of the live instances this node holds as their owner, in id order (the caller
    /// may write while walking them).
    pub(super) fn held_as_owner(&self) -> Vec<(InstanceId, Instance)> {
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
    pub(super) fn is_forgotten(&self, entry: &Entry, instance: &Instance) -> bool {
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
    pub(super) fn is_twins(&self, entry: &Entry, instance: &Instance) -> bool {
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
    pub(super) fn adopt_forgotten(&mut self, now: Instant, instance: &Instance) {
        let mut owned = Owned::new(instance);
        owned.checks.retain(|c| c.check.ttl().is_some());
        self.own(instance.id.clone(), owned);
        self.refresh_deadlines(now, instance, None);
    }

    /// An entry naming us as owner that we do not hold, written by this boot (at or above its
    /// epoch; so not one we forgot by restarting: those we adopt, and enforce their TTLs
    /// again), and marked as this boot's (or by a node too old to mark boots).
    pub(super) fn is_zombie(&self, entry: &Entry) -> bool {
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
        if !self.owned.contains_key(&instance.id) {
            self.own(instance.id.clone(), Owned::new(instance));
        }
        let states = instance.checks();
        self.owned.update(&instance.id, |owned| {
            owned.liveness_deadline = instance
                .liveness_ms
                .map(|ms| now + Duration::from_millis(ms));
            for check in &mut owned.checks {
                let status = states
                    .iter()
                    .find(|s| s.id.0 == check.id)
                    .map_or(Health::Passing, |s| s.status);
                check.refresh(now, status, reported.is_none_or(|r| r == check.id));
            }
        });
    }
}

/// How far `version` is ahead of the wall clock (`wall_ms`), if further than the configured
/// `max_clock_offset`.
fn too_far_ahead(config: &crate::config::Config, wall_ms: u64, version: &Hlc) -> Option<u64> {
    let ahead_ms = version.wall_ms.saturating_sub(wall_ms);
    let allowed_ms = u64::try_from(config.max_clock_offset.as_millis()).unwrap_or(u64::MAX);
    (ahead_ms > allowed_ms).then_some(ahead_ms)
}
