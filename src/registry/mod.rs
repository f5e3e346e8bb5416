//! The replicated registry: service instances keyed by id, merged last-writer-wins on hybrid
//! logical clock versions, with tombstones for deletions.
//!
//! This module is the data and the merge rule; the [`crate::Node`] decides when to write,
//! gossips entries, runs anti-entropy and enforces TTLs on the instances it owns
//! (`src/node/registry_ops.rs`).

mod entry;
mod hlc;
mod spec;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use entry::{
    clip, Check, Entry, Health, Instance, MetaPair, ADDRESS_MAX_BYTES, BODY_MAX_BYTES,
    ENTRY_MAX_BYTES, META_KEY_MAX_BYTES, META_MAX, META_VALUE_MAX_BYTES, OUTPUT_MAX_BYTES,
    TAGS_MAX, TAG_MAX_BYTES, URL_MAX_BYTES,
};
pub use hlc::{newer, Hlc, HlcClock};
pub use spec::{InstanceSpec, SpecCheck, SpecError};

use crate::names::{InstanceId, NodeName, ServiceName};

/// One stored entry: the newest version seen, and the instance (None: deleted).
#[derive(Debug, Clone)]
pub struct Stored {
    pub version: Hlc,
    /// The registry index when this entry last changed here (Consul's ModifyIndex).
    pub modify_index: u64,
    pub instance: Option<Arc<Instance>>,
    /// Wall milliseconds when a tombstone was written or received, for collection.
    pub deleted_at_ms: u64,
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

/// Per-origin summary for anti-entropy: how many entries a writer's latest versions account
/// for, and an order-independent hash of their (id, version). Gossip arrives in any order, so
/// "the highest version from each origin" would not show a gap; a count and a hash do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OriginDigest {
    pub count: u32,
    pub hash: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<InstanceId, Stored>,
    index: u64,
    clock: HlcClock,
}

impl Registry {
    /// Bumps on every change applied here; blocking queries wait on it.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// A live instance by id.
    pub fn get(&self, id: &InstanceId) -> Option<&Arc<Instance>> {
        self.entries.get(id).and_then(|s| s.instance.as_ref())
    }

    pub fn stored(&self, id: &InstanceId) -> Option<&Stored> {
        self.entries.get(id)
    }

    /// Live instances, ordered by id.
    pub fn instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.entries.values().filter_map(|s| s.instance.as_ref())
    }

    /// Live instances with their modify index.
    pub fn stored_instances(&self) -> impl Iterator<Item = (&Stored, &Arc<Instance>)> {
        self.entries
            .values()
            .filter_map(|s| s.instance.as_ref().map(|i| (s, i)))
    }

    pub fn service<'a>(
        &'a self,
        name: &'a ServiceName,
    ) -> impl Iterator<Item = &'a Arc<Instance>> + 'a {
        self.instances().filter(move |i| i.service == *name)
    }

    /// Every service with the ids of its instances.
    pub fn services(&self) -> BTreeMap<ServiceName, Vec<InstanceId>> {
        let mut out: BTreeMap<ServiceName, Vec<InstanceId>> = BTreeMap::new();
        for i in self.instances() {
            out.entry(i.service.clone()).or_default().push(i.id.clone());
        }
        out
    }

    /// Live instances.
    pub fn len(&self) -> usize {
        self.instances().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn counts(&self) -> RegistryCounts {
        let mut c = RegistryCounts::default();
        for s in self.entries.values() {
            match &s.instance {
                None => c.tombstones += 1,
                Some(i) => {
                    match i.health {
                        Health::Passing => c.passing += 1,
                        Health::Warning => c.warning += 1,
                        Health::Critical => c.critical += 1,
                    }
                    if !i.online {
                        c.offline += 1;
                    }
                }
            }
        }
        c
    }

    /// Version a local write at `now` by `me`.
    pub fn next_version(&mut self, now: crate::time::Instant, me: &NodeName) -> Hlc {
        self.clock.tick(now, me)
    }

    /// Merge an entry (ours or a peer's). True if it replaced what we held.
    pub fn apply(&mut self, entry: Entry, now_ms: u64) -> bool {
        self.clock.observe(&entry.version);
        if let Some(current) = self.entries.get(&entry.id) {
            if !newer(&current.version, &entry.version) {
                return false;
            }
        }
        self.index += 1;
        let deleted_at_ms = if entry.instance.is_none() { now_ms } else { 0 };
        self.entries.insert(
            entry.id,
            Stored {
                version: entry.version,
                modify_index: self.index,
                instance: entry.instance.map(|b| Arc::new(*b)),
                deleted_at_ms,
            },
        );
        true
    }

    /// Forget an entry without a tombstone (its owner failed: if it returns, its entries
    /// come back through anti-entropy at their old versions).
    pub fn forget(&mut self, id: &InstanceId) -> bool {
        if self.entries.remove(id).is_some() {
            self.index += 1;
            return true;
        }
        false
    }

    /// Drop tombstones older than `grace_ms`.
    pub fn collect_tombstones(&mut self, now_ms: u64, grace_ms: u64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, s| {
            s.instance.is_some() || now_ms.saturating_sub(s.deleted_at_ms) < grace_ms
        });
        before - self.entries.len()
    }

    /// The entry as it would be gossiped.
    pub fn entry(&self, id: &InstanceId) -> Option<Entry> {
        self.entries.get(id).map(|s| Entry {
            id: id.clone(),
            version: s.version.clone(),
            instance: s.instance.as_ref().map(|i| Box::new((**i).clone())),
        })
    }

    /// Per-origin digests (origin = the node that wrote the version held).
    pub fn origin_digests(&self) -> BTreeMap<NodeName, OriginDigest> {
        let mut out: BTreeMap<NodeName, OriginDigest> = BTreeMap::new();
        for (id, s) in &self.entries {
            let d = out.entry(s.version.node.clone()).or_default();
            d.count += 1;
            d.hash = d.hash.wrapping_add(entry_hash(id, &s.version));
        }
        out
    }

    /// One number for the whole registry: equal on two nodes that hold the same versions.
    pub fn digest(&self) -> u64 {
        self.entries.iter().fold(0u64, |acc, (id, s)| {
            acc.wrapping_add(entry_hash(id, &s.version))
        })
    }

    /// Every entry whose held version was written by `origin`.
    pub fn entries_from<'a>(&'a self, origin: &'a NodeName) -> impl Iterator<Item = Entry> + 'a {
        self.entries
            .iter()
            .filter(move |(_, s)| s.version.node == *origin)
            .map(|(id, s)| Entry {
                id: id.clone(),
                version: s.version.clone(),
                instance: s.instance.as_ref().map(|i| Box::new((**i).clone())),
            })
    }

    /// Ids of live instances owned by `owner`.
    pub fn owned_by(&self, owner: &NodeName) -> Vec<InstanceId> {
        self.instances()
            .filter(|i| i.owner == *owner)
            .map(|i| i.id.clone())
            .collect()
    }
}

/// A well-mixed 64-bit hash of (id, version), stable across nodes and versions of hera.
fn entry_hash(id: &InstanceId, v: &Hlc) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(id.as_str().as_bytes());
    eat(&[0xff]);
    eat(&v.wall_ms.to_le_bytes());
    eat(&v.counter.to_le_bytes());
    eat(v.node.as_str().as_bytes());
    // Finalise so sums of hashes do not cancel for related inputs.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
