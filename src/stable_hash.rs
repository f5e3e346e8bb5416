//! The one stable hash behind every digest nodes compare (membership digests, registry
//! summaries, registry buckets): FNV-1a, then murmur3's 64-bit finaliser (fmix64).
//!
//! Stable means the same value on every node, platform and version of hera: a change here is
//! a wire change (two versions would see each other's digests differ forever), which the
//! pinned values in the tests below catch. The finaliser matters: digests are sums of these
//! hashes, and raw FNV-1a values of records that differ only in their last bytes can cancel
//! out in a sum, hiding a divergence from anti-entropy.

/// An FNV-1a state; feed it with [`StableHash::eat`], close it with [`StableHash::finish`].
#[derive(Debug, Clone, Copy)]
pub struct StableHash(u64);

impl Default for StableHash {
    fn default() -> Self {
        StableHash(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHash {
    pub fn eat(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The finalised (fmix64) hash.
    pub fn finish(self) -> u64 {
        mix64(self.0)
    }
}

/// murmur3's 64-bit finaliser: every input bit moves every output bit. On its own it hashes a
/// value that already fits in 64 bits in a handful of instructions.
pub const fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::StableHash;

    fn hash(parts: &[&[u8]]) -> u64 {
        let mut h = StableHash::default();
        for p in parts {
            h.eat(p);
        }
        h.finish()
    }

    /// Pinned: other nodes compare sums of these values, so they must never change.
    #[test]
    fn values_are_pinned() {
        assert_eq!(hash(&[]), 0xefd0_1f60_ba99_2926);
        assert_eq!(hash(&[b"n1"]), hash(&[b"n", b"1"]));
        assert_eq!(hash(&[b"hera"]), 0x8d05_41d4_2ee3_fdeb);
    }
}
