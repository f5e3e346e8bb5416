//! The replicated registry: service instances keyed by id, merged last-writer-wins on hybrid
//! logical clock versions, with tombstones for deletions, and graves (the versions of collected
//! tombstones) while a member that may not have seen them is cut off.
//!
//! This module is the data and the merge rule; the [`crate::Node`] decides when to write,
//! gossips entries, runs anti-entropy and enforces TTLs on the instances it owns
//! (`src/node/catalog/ops.rs`).
//!
//! The maps are persistent (`imbl`): the driver clones the registry into a published snapshot
//! after every change, and a clone shares every node of the trees, so it costs O(1) whatever
//! the registry's size; a change afterwards copies only the O(log n) path it touches.

mod digest;
mod spec;

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

pub use digest::{bucket_of, OriginDigest, BUCKETS};
// The records themselves are vocabulary (`crate::record`); the size rule is the wire's. Both
// are re-exported here, where a reader of the registry looks for them.
pub use crate::record::*;
pub use crate::wire::{
    fit_texts, worst_case_entry_bytes, worst_case_entry_bytes_unlisted, ENTRY_MAX_BYTES,
    TEXT_RESERVE_BYTES,
};
pub use spec::{CheckSpec, InstanceSpec, SpecCheck, SpecError};

use crate::names::{InstanceId, NodeName, ServiceName};

/// One stored entry: the newest version of an id seen, and the instance (None: deleted).
///
/// Held in one allocation (an `Arc`) that the registry's maps share and every snapshot of the
/// registry shares. A live entry's maps hold a pointer each, ordered by its instance's id
/// ([`ById`]), so it costs its record and about 24 B per map and holds its id once (issue 17,
/// `tests/memory.rs`); a tombstone is kept under its id. Never changed in place: a new
/// version is a new record.
#[derive(Debug, Clone)]
pub struct Stored {
    pub version: Hlc,
    /// The registry index when this entry last changed here (Consul's ModifyIndex).
    pub modify_index: u64,
    /// None: deleted (a tombstone).
    pub instance: Option<Instance>,
}

/// The same write: a version names one write of an id (every write takes a fresh one), so
/// equal versions, modify indexes and liveness are the same record, without comparing
/// instances field by field. What [`Registry::changed_since`] compares tombstones by.
impl PartialEq for Stored {
    fn eq(&self, other: &Stored) -> bool {
        self.version == other.version
            && self.modify_index == other.modify_index
            && self.instance.is_some() == other.instance.is_some()
    }
}

/// Counts for metrics and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryCounts {
    pub passing: usize,
    pub warning: usize,
    pub critical: usize,
    pub offline: usize,
    pub tombstones: usize,
}

/// Which of an origin's [`BUCKETS`] to send: bit `b` set means bucket `b`.
pub type BucketMask = u64;

/// Every bucket.
pub const ALL_BUCKETS: BucketMask = u64::MAX;

/// Graves kept at most ([`Registry::grave`]): about 220 B each (`tests/memory.rs`), so 3.6 MB
/// at most per node, for a cluster deleting one instance every 5 s throughout a day-long
/// outage. Past it the oldest go first, and only a partition both that long and that busy can
/// bring their entries back.
pub const GRAVES_MAX: usize = 16_384;

/// An origin with at least this many entries here has its bucket summaries kept up to date
/// ([`Registry::bucket_digests`] is then a lookup, not a scan of the registry): 64 of them,
/// 1 KiB an origin, so at most 4 B an entry (8 B just above the drop line below; 1 B at 1,000
/// entries an origin, issue 17's 100 × 1,000). A smaller origin is summed by a scan when asked:
/// one exchange compares its buckets only if it holds more than `PUSH_WHOLE_MAX` (16) entries
/// (`node/catalog/sync.rs`), and keeping 1 KiB for every such origin would cost more than the
/// entry itself at 100 entries an origin (`tests/memory.rs`). Kept until the origin falls to
/// half of this, so an origin near the line does not build and drop them in turn.
pub const BUCKETS_KEPT_MIN: u32 = 256;

/// Neighbours by id compared on each side of an instance being stored, to find its tag and
/// meta lists held already ([`Registry::apply`]): lists that take turns with a period up to
/// this are shared, and an instance with lists of its own costs at most 2 × 16 comparisons
/// of bounded lists (most end at the first element that differs).
pub const SHARE_NEIGHBOURS: usize = 16;

#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Live entries by id: a pointer to its record each.
    entries: OrdSet<ById>,
    /// Tombstones by id (few: collected after a grace).
    deleted: OrdMap<InstanceId, Arc<Stored>>,
    /// Live instances by service: listing in (service, id) order and per-service lookups
    /// without a scan. It holds the records themselves (a pointer each, ordered by id, where a
    /// copy of the id took 61 B an entry, tests/memory.rs), so reading a service needs no
    /// lookup in `entries`.
    by_service: OrdMap<ServiceName, OrdSet<ById>>,
    /// Tombstones by the wall time of their version, oldest first, for collection.
    tombstones: OrdSet<(u64, InstanceId)>,
    /// Versions of collected tombstones kept while a member may still hold what they deleted
    /// ([`Registry::grave`]); never an id of `entries`. Not gossiped, not in the digests.
    graves: OrdMap<InstanceId, Hlc>,
    /// The same graves by the wall time of their version, oldest first, for forgetting them.
    graves_by_age: OrdSet<(u64, InstanceId)>,
    /// Per-origin summaries (origin: the node that wrote the version held), kept up to date.
    origins: OrdMap<NodeName, OriginDigest>,
    /// Per-bucket summaries of the origins with [`BUCKETS_KEPT_MIN`] entries or more, kept up to
    /// date. Behind an `Arc` each, so a snapshot's clone shares them, and a change after it
    /// copies one origin's 1 KiB.
    origin_buckets: OrdMap<NodeName, Arc<[OriginDigest; BUCKETS]>>,
    /// The sum of every origin's hash: one number to compare whole registries.
    digest: u64,
    index: u64,
    clock: HlcClock,
}

impl Registry {
    /// Bumps on every change applied here; blocking queries wait on it.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The ids whose entry differs between `older` and this registry (added, changed or
    /// removed; an id may come twice, once as live and once as a tombstone). Live records are
    /// walked in id order and compared by pointer: their set orders and compares by id alone,
    /// so its own diff cannot see a record replaced under the same id. That is O(n) pointer
    /// comparisons (no copy, no I/O; ~2 ms at 100,000 entries); tombstones, few, by diff.
    ///
    /// Too slow for every group commit (issue 17: the store reads the node's
    /// [`crate::node::OwnedChanges`] instead); kept as the independent account the store's
    /// tests check those changes against.
    pub fn changed_since<'a>(
        &'a self,
        older: &'a Registry,
    ) -> impl Iterator<Item = &'a InstanceId> {
        let (mut old, mut new) = (
            older.entries.iter().peekable(),
            self.entries.iter().peekable(),
        );
        let live = std::iter::from_fn(move || loop {
            match (old.peek(), new.peek()) {
                (Some(a), Some(b)) => match a.id().cmp(b.id()) {
                    std::cmp::Ordering::Less => return old.next().map(ById::id),
                    std::cmp::Ordering::Greater => return new.next().map(ById::id),
                    std::cmp::Ordering::Equal => {
                        let (a, b) = (old.next()?, new.next()?);
                        if !Arc::ptr_eq(&a.0, &b.0) && *a.0 != *b.0 {
                            return Some(b.id());
                        }
                    }
                },
                (Some(_), None) => return old.next().map(ById::id),
                (None, Some(_)) => return new.next().map(ById::id),
                (None, None) => return None,
            }
        });
        let deleted = older.deleted.diff(&self.deleted).map(|item| match item {
            imbl::ordmap::DiffItem::Add(id, _)
            | imbl::ordmap::DiffItem::Remove(id, _)
            | imbl::ordmap::DiffItem::Update { new: (id, _), .. } => id,
        });
        live.chain(deleted)
    }

    /// A live instance by id.
    pub fn get(&self, id: &InstanceId) -> Option<&Instance> {
        self.stored(id).and_then(|s| s.instance.as_ref())
    }

    /// An entry by id, tombstones included.
    pub fn stored(&self, id: &InstanceId) -> Option<&Stored> {
        let live = self.entries.get(id).map(|s| &*s.0);
        live.or_else(|| self.deleted.get(id).map(|s| &**s))
    }

    /// Live instances, ordered by (service, id).
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.stored_instances().map(|(_, i)| i)
    }

    /// Live instances with their stored entry (version, modify index), by (service, id).
    pub fn stored_instances(&self) -> impl Iterator<Item = (&Stored, &Instance)> {
        self.by_service
            .values()
            .flat_map(|set| set.iter())
            .filter_map(|s| Some((&*s.0, s.0.instance.as_ref()?)))
    }

    /// The live instances of one service, by id.
    pub fn service<'a>(&'a self, name: &ServiceName) -> impl Iterator<Item = &'a Instance> + 'a {
        self.by_service
            .get(name)
            .into_iter()
            .flat_map(|set| set.iter())
            .filter_map(|s| s.0.instance.as_ref())
    }

    /// Every service with the ids of its live instances, both sorted.
    pub fn services(&self) -> BTreeMap<ServiceName, Vec<InstanceId>> {
        self.by_service
            .iter()
            .map(|(name, set)| (name.clone(), set.iter().map(|s| s.id().clone()).collect()))
            .collect()
    }

    /// Live instances.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries held, live and tombstones: what `registry_entries_max` bounds (graves, bounded
    /// on their own by [`GRAVES_MAX`], are not entries).
    pub fn held(&self) -> usize {
        self.entries.len() + self.deleted.len()
    }

    /// Tombstones not yet collected.
    pub fn tombstones(&self) -> usize {
        self.tombstones.len()
    }

    /// Wall-clock milliseconds of the oldest tombstone's deletion: the first to be collected.
    pub fn oldest_tombstone_ms(&self) -> Option<u64> {
        self.tombstones.get_min().map(|(wall_ms, _)| *wall_ms)
    }

    /// Graves: collected tombstones whose versions are still kept ([`Registry::grave`]).
    pub fn graves(&self) -> usize {
        self.graves.len()
    }

    /// The version of a collected tombstone of `id`, kept past its grace because a member
    /// was cut off meanwhile and may send back what it deleted (see `Node::on_entry`).
    pub fn grave(&self, id: &InstanceId) -> Option<&Hlc> {
        self.graves.get(id)
    }

    /// Live instances by health and on-line state, and tombstones (a scan: for metrics).
    pub fn counts(&self) -> RegistryCounts {
        let mut c = RegistryCounts {
            tombstones: self.tombstones.len(),
            ..RegistryCounts::default()
        };
        for i in self.instances() {
            match i.health {
                Health::Passing => c.passing += 1,
                Health::Warning => c.warning += 1,
                Health::Critical => c.critical += 1,
            }
            if !i.online {
                c.offline += 1;
            }
        }
        c
    }

    /// Version a local write at `now` by `me`.
    pub fn next_version(&mut self, now: crate::time::Instant, me: &NodeName) -> Hlc {
        self.clock.tick(now, me)
    }

    /// The clock's high-water mark: every version issued or seen here is at or below it.
    pub fn clock_high_water(&self) -> (u64, u32) {
        self.clock.high_water()
    }

    /// Move the clock past a version seen (HLC receive rule), without storing anything.
    pub fn observe(&mut self, version: &Hlc) {
        self.clock.observe(version);
    }

    /// Merge an entry (ours or a peer's). True if it replaced what we held.
    ///
    /// What we hold of an id is its stored entry or, once its tombstone is collected, its
    /// grave: an entry older than the grave is the deleted one coming back from a member cut
    /// off for longer than the grace, and loses to the deletion as it would have before.
    ///
    /// An entry whose instance carries an id other than the entry's is refused (only a crafted
    /// one can): the indexes go by both, and must agree.
    pub fn apply(&mut self, entry: Entry) -> bool {
        if entry.instance.as_ref().is_some_and(|i| i.id != entry.id) {
            return false;
        }
        self.clock.observe(&entry.version);
        let current = match self.stored(&entry.id) {
            Some(stored) => Some(&stored.version),
            None => self.graves.get(&entry.id),
        };
        if current.is_some_and(|current| !newer(current, &entry.version)) {
            return false;
        }
        let previous = self.remove(&entry.id);
        self.unbury(&entry.id);
        self.index += 1;
        let stored = match entry.instance {
            Some(mut instance) => {
                instance.extras.compact();
                let previous = previous.as_ref().and_then(|s| s.instance.as_ref());
                self.share_lists(&mut instance, previous);
                Stored {
                    version: entry.version,
                    modify_index: self.index,
                    instance: Some(*instance),
                }
            }
            None => Stored {
                version: entry.version,
                modify_index: self.index,
                instance: None,
            },
        };
        self.insert(entry.id, stored);
        true
    }

    /// Forget an entry without a tombstone (its owner failed: if it returns, its entries
    /// come back through anti-entropy at their old versions).
    pub fn forget(&mut self, id: &InstanceId) -> bool {
        if self.remove(id).is_some() {
            self.index += 1;
            return true;
        }
        false
    }

    /// Drop tombstones whose version is `grace_ms` old. Collection goes by the version's wall
    /// time, not by when a tombstone arrived here, so every node collects one at about the same
    /// time; a node that has collected it ignores it if a slower peer sends it again
    /// ([`Registry::is_expired_tombstone`]), so tombstones do not bounce between nodes.
    ///
    /// With `keep_graves`, the version of each collected tombstone is kept as a grave (at most
    /// [`GRAVES_MAX`], the oldest forgotten first): it leaves the gossiped registry and its
    /// digests all the same, so nodes that keep graves and nodes that do not still agree.
    pub fn collect_tombstones(&mut self, now_ms: u64, grace_ms: u64, keep_graves: bool) -> usize {
        let mut collected = 0;
        while let Some((wall_ms, id)) = self.tombstones.get_min().cloned() {
            if now_ms.saturating_sub(wall_ms) < grace_ms {
                break;
            }
            if let Some(stored) = self.remove(&id) {
                if keep_graves {
                    self.bury(id, stored.version.clone());
                }
            }
            collected += 1;
        }
        collected
    }

    /// Forget the graves whose version is older than `before_ms` (all of them with
    /// `u64::MAX`). Returns how many went.
    pub fn forget_graves(&mut self, before_ms: u64) -> usize {
        let mut forgotten = 0;
        while let Some((wall_ms, id)) = self.graves_by_age.get_min().cloned() {
            if wall_ms >= before_ms {
                break;
            }
            self.unbury(&id);
            forgotten += 1;
        }
        forgotten
    }

    /// A tombstone for an id we do not hold, already past its grace: storing it would only
    /// make us gossip it back to peers that have collected it.
    pub fn is_expired_tombstone(&self, entry: &Entry, now_ms: u64, grace_ms: u64) -> bool {
        entry.instance.is_none()
            && self.stored(&entry.id).is_none()
            && now_ms.saturating_sub(entry.version.wall_ms) >= grace_ms
    }

    /// The entry as it would be gossiped.
    pub fn entry(&self, id: &InstanceId) -> Option<Entry> {
        self.stored(id).map(|s| to_entry(id, s))
    }

    /// Per-origin summaries, by origin name.
    pub fn origin_digests(&self) -> &OrdMap<NodeName, OriginDigest> {
        &self.origins
    }

    /// One number for the whole registry: equal on two nodes that hold the same versions.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Summaries of each bucket of the entries written by `origin`: a lookup for an origin with
    /// [`BUCKETS_KEPT_MIN`] entries or more, else a scan of the registry.
    pub fn bucket_digests(&self, origin: &NodeName) -> [OriginDigest; BUCKETS] {
        match self.origin_buckets.get(origin) {
            Some(kept) => **kept,
            None => self.scan_bucket_digests(origin),
        }
    }

    /// Whether `origin`'s bucket summaries are kept up to date (for tests).
    #[cfg(test)]
    fn keeps_buckets(&self, origin: &NodeName) -> bool {
        self.origin_buckets.contains_key(origin)
    }

    /// [`Registry::bucket_digests`] by a scan of every entry: what the kept summaries are built
    /// from, and the oracle their tests compare them with.
    fn scan_bucket_digests(&self, origin: &NodeName) -> [OriginDigest; BUCKETS] {
        let mut out = [OriginDigest::default(); BUCKETS];
        for (id, s) in self.all().filter(|(_, s)| s.version.node == *origin) {
            out[bucket_of(id)].add(id, &s.version);
        }
        out
    }

    /// Every entry written by `origin` whose bucket is in `buckets`.
    pub fn entries_from<'a>(
        &'a self,
        origin: &'a NodeName,
        buckets: BucketMask,
    ) -> impl Iterator<Item = Entry> + 'a {
        self.all()
            .filter(move |(id, s)| s.version.node == *origin && buckets & (1 << bucket_of(id)) != 0)
            .map(|(id, s)| to_entry(id, s))
    }

    /// Every entry whose origin is in `wanted` and whose bucket is in that origin's mask: what
    /// [`Registry::entries_from`] gives for each origin, in one pass over the registry instead of
    /// one an origin (a lookup of the entry's origin in `wanted` per entry, the bucket's hash
    /// only for the origins wanted). In id order.
    pub fn entries_of<'a>(
        &'a self,
        wanted: &'a BTreeMap<NodeName, BucketMask>,
    ) -> impl Iterator<Item = Entry> + 'a {
        self.entries_of_after(wanted, None)
    }

    /// [`Registry::entries_of`] from the first id past `after` on (all of them for None): a
    /// push owed to a peer resumes here, a datagram at a time, whatever changed since.
    pub fn entries_of_after<'a>(
        &'a self,
        wanted: &'a BTreeMap<NodeName, BucketMask>,
        after: Option<&'a InstanceId>,
    ) -> impl Iterator<Item = Entry> + 'a {
        self.all_after(after)
            .filter(move |(id, s)| {
                wanted
                    .get(&s.version.node)
                    .is_some_and(|mask| mask & (1 << bucket_of(id)) != 0)
            })
            .map(|(id, s)| to_entry(id, s))
    }

    /// Ids of live instances owned by `owner`.
    pub fn owned_by(&self, owner: &NodeName) -> Vec<InstanceId> {
        self.instances()
            .filter(|i| i.owner == *owner)
            .map(|i| i.id.clone())
            .collect()
    }

    /// Make `instance`'s tag and meta lists the very ones of an instance that holds equal
    /// lists, so that a service's instances keep one copy of what they have in common (most
    /// have the same tags and meta; a decoded or newly registered instance brings its own).
    /// The candidates are the version it replaces and up to [`SHARE_NEIGHBOURS`] neighbours by
    /// id on each side in its service, nearest first, until both lists are shared: bounded
    /// comparisons of bounded lists, and no table to keep or clean. Not only the nearest two:
    /// lists that take turns by instance (a shard or zone tag by instance number) are never
    /// held by the next id, and each instance then kept its own (~190 B and 8 allocations an
    /// entry on issue 17's real nodes).
    fn share_lists(&self, instance: &mut Instance, previous: Option<&Instance>) {
        let (mut tags, mut meta) = (false, false);
        if let Some(other) = previous {
            tags = share(&mut instance.tags, &other.tags);
            meta = share(&mut instance.meta, &other.meta);
        }
        let Some(set) = self.by_service.get(&instance.service) else {
            return;
        };
        let id = &instance.id;
        let mut before = set.range::<_, InstanceId>((Unbounded, Excluded(id))).rev();
        let mut after = set.range::<_, InstanceId>((Excluded(id), Unbounded));
        for _ in 0..SHARE_NEIGHBOURS {
            if tags && meta {
                return;
            }
            let (b, a) = (before.next(), after.next());
            if b.is_none() && a.is_none() {
                return;
            }
            for other in [b, a]
                .into_iter()
                .flatten()
                .filter_map(|s| s.0.instance.as_ref())
            {
                tags = tags || share(&mut instance.tags, &other.tags);
                meta = meta || share(&mut instance.meta, &other.meta);
            }
        }
    }

    // ---- keeping the indexes in step with `entries` ----

    fn bury(&mut self, id: InstanceId, version: Hlc) {
        self.graves_by_age.insert((version.wall_ms, id.clone()));
        self.graves.insert(id, version);
        while self.graves.len() > GRAVES_MAX {
            let Some((_, oldest)) = self.graves_by_age.get_min().cloned() else {
                break;
            };
            self.unbury(&oldest);
        }
    }

    fn unbury(&mut self, id: &InstanceId) {
        if let Some(version) = self.graves.remove(id) {
            self.graves_by_age.remove(&(version.wall_ms, id.clone()));
        }
    }

    /// Every entry, live and deleted, by id.
    fn all(&self) -> impl Iterator<Item = (&InstanceId, &Stored)> {
        self.all_after(None)
    }

    /// Every entry, live and deleted, by id, from the first id past `after` (all for None).
    fn all_after<'a>(
        &'a self,
        after: Option<&'a InstanceId>,
    ) -> impl Iterator<Item = (&'a InstanceId, &'a Stored)> + 'a {
        let from = after.map_or(Unbounded, Excluded);
        let mut live = self
            .entries
            .range::<_, InstanceId>((from, Unbounded))
            .map(|s| (s.id(), &*s.0))
            .peekable();
        let mut deleted = self
            .deleted
            .range::<_, InstanceId>((from, Unbounded))
            .map(|(id, s)| (id, &**s))
            .peekable();
        // Two id-ordered sequences with no id in common, merged.
        std::iter::from_fn(move || match (live.peek(), deleted.peek()) {
            (Some((a, _)), Some((b, _))) if b < a => deleted.next(),
            (Some(_), _) => live.next(),
            (None, _) => deleted.next(),
        })
    }

    fn insert(&mut self, id: InstanceId, stored: Stored) {
        let origin = self.origins.entry(stored.version.node.clone()).or_default();
        origin.add(&id, &stored.version);
        let count = origin.count;
        self.digest = self
            .digest
            .wrapping_add(digest::entry_hash(&id, &stored.version));
        if count > BUCKETS_KEPT_MIN / 2 {
            self.buckets_add(&id, &stored.version, count);
        }
        let stored = Arc::new(stored);
        match &stored.instance {
            Some(instance) => {
                let stored = ById(Arc::clone(&stored));
                self.by_service
                    .entry(instance.service.clone())
                    .or_default()
                    .insert(stored.clone());
                self.entries.insert(stored);
            }
            None => {
                self.tombstones.insert((stored.version.wall_ms, id.clone()));
                self.deleted.insert(id, stored);
            }
        }
    }

    /// An entry of an origin now holding `count` entries, this one included, is being stored:
    /// count it in the origin's kept buckets, or, as the origin reaches [`BUCKETS_KEPT_MIN`],
    /// start keeping them (one scan, before the entry is in the maps, so it is added here).
    fn buckets_add(&mut self, id: &InstanceId, version: &Hlc, count: u32) {
        if let Some(kept) = self.origin_buckets.get_mut(&version.node) {
            Arc::make_mut(kept)[bucket_of(id)].add(id, version);
        } else if count >= BUCKETS_KEPT_MIN {
            let mut built = self.scan_bucket_digests(&version.node);
            built[bucket_of(id)].add(id, version);
            self.origin_buckets
                .insert(version.node.clone(), Arc::new(built));
        }
    }

    fn remove(&mut self, id: &InstanceId) -> Option<Arc<Stored>> {
        let stored = match self.entries.remove(id) {
            Some(live) => live.0,
            None => self.deleted.remove(id)?,
        };
        let origin = &stored.version.node;
        if let Some(d) = self.origins.get_mut(origin) {
            d.remove(id, &stored.version);
            let count = d.count;
            if d.is_empty() {
                self.origins.remove(origin);
            }
            if count >= BUCKETS_KEPT_MIN / 2 {
                if let Some(kept) = self.origin_buckets.get_mut(origin) {
                    Arc::make_mut(kept)[bucket_of(id)].remove(id, &stored.version);
                }
            } else if count + 1 >= BUCKETS_KEPT_MIN / 2 {
                // Fell below half the line: drop them.
                self.origin_buckets.remove(origin);
            }
        }
        self.digest = self
            .digest
            .wrapping_sub(digest::entry_hash(id, &stored.version));
        match &stored.instance {
            Some(instance) => {
                if let Some(set) = self.by_service.get_mut(&instance.service) {
                    set.remove(id);
                    if set.is_empty() {
                        self.by_service.remove(&instance.service);
                    }
                }
            }
            None => {
                self.tombstones
                    .remove(&(stored.version.wall_ms, id.clone()));
            }
        }
        Some(stored)
    }
}

/// A live entry in one of [`Registry`]'s sets: ordered, compared and looked up by its
/// instance's id alone (an id is stored once, so two records under one id are never in one
/// set).
#[derive(Debug, Clone)]
struct ById(Arc<Stored>);

/// What [`ById::id`] reads for a record without an instance (none is put in a set).
static NO_ID: InstanceId = InstanceId::NONE;

impl ById {
    fn id(&self) -> &InstanceId {
        self.0.instance.as_ref().map_or(&NO_ID, |i| &i.id)
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for ById {}

impl PartialOrd for ById {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ById {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id().cmp(other.id())
    }
}

impl std::borrow::Borrow<InstanceId> for ById {
    fn borrow(&self) -> &InstanceId {
        self.id()
    }
}

/// Point `mine` at `theirs` if they hold the same (a shared list is never changed in place:
/// an instance's lists are replaced whole). True if they are one list now.
fn share<T: PartialEq>(mine: &mut Arc<T>, theirs: &Arc<T>) -> bool {
    if Arc::ptr_eq(mine, theirs) {
        return true;
    }
    if **mine == **theirs {
        *mine = Arc::clone(theirs);
        return true;
    }
    false
}

fn to_entry(id: &InstanceId, s: &Stored) -> Entry {
    Entry {
        id: id.clone(),
        version: s.version.clone(),
        instance: s.instance.as_ref().map(|i| Box::new(i.clone())),
    }
}

#[cfg(test)]
mod tests;
