//! Order-independent summaries of what a node holds, for anti-entropy.
//!
//! Gossip arrives in any order and may be lost, so "the highest version seen from each origin"
//! would not reveal a gap below it. Instead every held (id, version) is hashed, and summaries
//! are a count plus the wrapping sum of those hashes: equal summaries mean (with overwhelming
//! likelihood) equal contents, whatever the order the entries arrived in, and a summary is
//! updated in O(1) when one entry changes.

use crate::names::InstanceId;
use crate::stable_hash::StableHash;

use crate::record::Hlc;

/// A count and an order-independent hash of (id, version) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OriginDigest {
    pub count: u32,
    pub hash: u64,
}

impl OriginDigest {
    pub fn add(&mut self, id: &InstanceId, version: &Hlc) {
        self.count = self.count.wrapping_add(1);
        self.hash = self.hash.wrapping_add(entry_hash(id, version));
    }

    pub fn remove(&mut self, id: &InstanceId, version: &Hlc) {
        self.count = self.count.wrapping_sub(1);
        self.hash = self.hash.wrapping_sub(entry_hash(id, version));
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

pub use crate::wire::BUCKETS;

/// Which bucket an id falls in: stable across nodes and versions of hera.
pub fn bucket_of(id: &InstanceId) -> usize {
    let mut h = StableHash::default();
    h.eat(id.as_str().as_bytes());
    (h.finish() % BUCKETS as u64) as usize
}

/// A well-mixed 64-bit hash of (id, version), stable across nodes and versions of hera.
pub fn entry_hash(id: &InstanceId, v: &Hlc) -> u64 {
    let mut h = StableHash::default();
    h.eat(id.as_str().as_bytes());
    h.eat(&[0xff]);
    h.eat(&v.wall_ms.to_le_bytes());
    h.eat(&v.counter.to_le_bytes());
    h.eat(v.node.as_str().as_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(wall_ms: u64, counter: u32, node: &str) -> Hlc {
        Hlc::at(wall_ms, counter, node)
    }

    fn id(s: &str) -> InstanceId {
        InstanceId::new(s).unwrap()
    }

    #[test]
    fn summaries_ignore_order_and_see_any_difference() {
        let pairs = [
            (id("a"), v(1, 0, "n")),
            (id("b"), v(2, 0, "n")),
            (id("c"), v(2, 1, "n")),
        ];
        let mut forward = OriginDigest::default();
        pairs.iter().for_each(|(i, v)| forward.add(i, v));
        let mut backward = OriginDigest::default();
        pairs.iter().rev().for_each(|(i, v)| backward.add(i, v));
        assert_eq!(forward, backward);
        // Each kind of difference shows: a missing entry, an older version, another writer.
        let table = [
            (id("c"), v(2, 1, "n"), id("c"), v(2, 0, "n")),
            (id("c"), v(2, 1, "n"), id("c"), v(2, 1, "m")),
            (id("c"), v(2, 1, "n"), id("d"), v(2, 1, "n")),
        ];
        for (old_id, old_v, new_id, new_v) in table {
            let mut changed = forward;
            changed.remove(&old_id, &old_v);
            changed.add(&new_id, &new_v);
            assert_ne!(changed, forward, "{new_id} {new_v:?}");
        }
        let mut emptied = forward;
        pairs.iter().for_each(|(i, v)| emptied.remove(i, v));
        assert!(emptied.is_empty());
        assert_eq!(emptied, OriginDigest::default());
    }

    #[test]
    fn buckets_spread_ids() {
        let mut seen = [0usize; BUCKETS];
        for k in 0..6_400 {
            seen[bucket_of(&id(&format!("i-{k}")))] += 1;
        }
        assert!(seen.iter().all(|&n| (50..=150).contains(&n)), "{seen:?}");
    }
}
