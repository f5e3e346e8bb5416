//! Member ids by a hash of a key of theirs (the name, the address), in 4 bytes an entry.
//!
//! A `hashbrown::HashTable<MemberId>` spends a control byte beside every 4-byte bucket and
//! doubles: between 4.6 and 9.1 bytes a member (8.2 at 10,000, the simulator's scale, where
//! each byte is ~95 MB over 10^8 records). This index keeps one vector of 4-byte cells, open
//! addressing with linear probing, filled to at most 7/8 and grown by a quarter: between 4.6
//! and 5.7 bytes a member. A cell holds the id and 7 bits of its key's hash, so a probe passes
//! over other keys' cells without reading their members.
//!
//! The key itself stays in the member's slot: lookups and moves take a closure that says
//! whether an id is the one wanted, or what its key hashes to. The caller keeps the rule that
//! a member's key changes only while its id is out of the index. Hashes are fixed (the
//! caller's), so the layout is the same on every run; it never shows (lookups only).

use std::num::NonZeroU32;

use super::{MemberId, MEMBERS_MAX};

/// Bits of a cell that hold the id (`MemberId`'s value, 1 to [`MEMBERS_MAX`]).
const ID_BITS: u32 = 25;
const ID_MASK: u32 = (1 << ID_BITS) - 1;
const _: () = assert!(MEMBERS_MAX <= ID_MASK as usize, "an id fits its bits");

/// Fewest cells once there are any.
const MIN_CELLS: usize = 16;

#[derive(Debug, Default)]
pub(super) struct IdIndex {
    /// 0: empty; else an id and its hash's tag ([`cell`]).
    cells: Vec<u32>,
    len: usize,
}

/// The 7 bits of `hash` kept in its cell (the low ones: the home cell takes the high ones).
fn tag(hash: u64) -> u32 {
    (hash as u32) & 0x7f
}

fn cell(hash: u64, id: MemberId) -> u32 {
    (id.0.get() & ID_MASK) | (tag(hash) << ID_BITS)
}

fn id_of(cell: u32) -> Option<MemberId> {
    NonZeroU32::new(cell & ID_MASK).map(MemberId)
}

/// Where a probe for `hash` starts among `cells` cells (> 0): the hash scaled to the
/// length, so the length need not be a power of two.
fn home(hash: u64, cells: usize) -> usize {
    ((u128::from(hash) * cells as u128) >> 64) as usize
}

impl IdIndex {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ids that may have been stored under `hash` (all that were are among them; a few others
    /// whose tag matches may be too), in probe order. At most every cell once.
    pub(super) fn candidates(&self, hash: u64) -> impl Iterator<Item = MemberId> + '_ {
        let n = self.cells.len();
        let start = if n == 0 { 0 } else { home(hash, n) };
        let wanted = tag(hash);
        (0..n)
            .map(move |k| self.cells[(start + k) % n])
            .take_while(|c| *c != 0)
            .filter(move |c| c >> ID_BITS == wanted)
            .filter_map(id_of)
    }

    /// The first id stored under `hash` that `is` accepts.
    pub(super) fn find(&self, hash: u64, mut is: impl FnMut(MemberId) -> bool) -> Option<MemberId> {
        self.candidates(hash).find(|id| is(*id))
    }

    /// Adds `id` under `hash`; `rehash` gives the hash of any id already in, to move them when
    /// the cells grow. The caller has checked the id is not in yet.
    pub(super) fn insert(&mut self, hash: u64, id: MemberId, rehash: impl Fn(MemberId) -> u64) {
        if (self.len + 1) * 8 > self.cells.len() * 7 {
            self.grow(&rehash);
        }
        self.place(hash, cell(hash, id));
        self.len += 1;
    }

    /// Takes out the first id under `hash` that `is` accepts, moving back the cells after it
    /// that may fill its place (backward-shift deletion: no tombstones, probes stay short).
    pub(super) fn remove(
        &mut self,
        hash: u64,
        mut is: impl FnMut(MemberId) -> bool,
        rehash: impl Fn(MemberId) -> u64,
    ) -> Option<MemberId> {
        let n = self.cells.len();
        if n == 0 {
            return None;
        }
        let start = home(hash, n);
        let wanted = tag(hash);
        let mut found = None;
        for k in 0..n {
            let i = (start + k) % n;
            let c = self.cells[i];
            if c == 0 {
                break;
            }
            if c >> ID_BITS == wanted {
                if let Some(id) = id_of(c).filter(|id| is(*id)) {
                    found = Some((i, id));
                    break;
                }
            }
        }
        let (mut hole, id) = found?;
        self.cells[hole] = 0;
        self.len -= 1;
        let mut j = hole;
        // A load under 1 leaves an empty cell: the walk ends within one turn.
        for _ in 0..n {
            j = (j + 1) % n;
            let c = self.cells[j];
            let Some(moved) = id_of(c) else {
                break;
            };
            let h = home(rehash(moved), n);
            // `c` may fill the hole if the hole lies on its probe path, from `h` to `j`.
            if (j + n - h) % n >= (j + n - hole) % n {
                self.cells[hole] = c;
                self.cells[j] = 0;
                hole = j;
            }
        }
        Some(id)
    }

    fn place(&mut self, hash: u64, c: u32) {
        let n = self.cells.len();
        let mut i = home(hash, n);
        // Below a full load there is an empty cell: this ends within one turn.
        for _ in 0..n {
            if self.cells[i] == 0 {
                self.cells[i] = c;
                return;
            }
            i = (i + 1) % n;
        }
    }

    fn grow(&mut self, rehash: &impl Fn(MemberId) -> u64) {
        let n = self.cells.len();
        let new_len = (n + n / 4).max(MIN_CELLS);
        let old = std::mem::replace(&mut self.cells, vec![0; new_len]);
        for c in old {
            if let Some(id) = id_of(c) {
                self.place(rehash(id), c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::stable_hash::mix64;

    fn id(i: usize) -> MemberId {
        MemberId::for_tests(i)
    }

    /// Keys are the ids themselves here, hashed by `hash_of` (which may collide on purpose).
    fn check_all_found(index: &IdIndex, live: &[usize], hash_of: &impl Fn(MemberId) -> u64) {
        assert_eq!(index.len(), live.len());
        for &i in live {
            assert_eq!(
                index.find(hash_of(id(i)), |x| x == id(i)),
                Some(id(i)),
                "{i}"
            );
        }
    }

    #[test]
    fn inserts_finds_and_removes_through_growth() {
        let hash_of = |x: MemberId| mix64(u64::from(x.0.get()));
        let mut index = IdIndex::default();
        let mut live = Vec::new();
        for i in 0..5_000 {
            index.insert(hash_of(id(i)), id(i), hash_of);
            live.push(i);
        }
        check_all_found(&index, &live, &hash_of);
        assert!(index.cells.len() * 7 >= live.len() * 8);
        assert!(index.cells.len() <= live.len() * 8 / 7 * 5 / 4 + MIN_CELLS);
        // Remove every third, then look for all: the shifted cells must still be reachable.
        for i in (0..5_000).step_by(3) {
            assert_eq!(
                index.remove(hash_of(id(i)), |x| x == id(i), hash_of),
                Some(id(i))
            );
            assert_eq!(index.remove(hash_of(id(i)), |x| x == id(i), hash_of), None);
        }
        live.retain(|i| i % 3 != 0);
        check_all_found(&index, &live, &hash_of);
        for i in (0..5_000).step_by(3) {
            assert_eq!(index.find(hash_of(id(i)), |x| x == id(i)), None);
        }
    }

    /// Keys that all hash alike (an adversary's names under fixed hash keys, or members
    /// sharing an address): one long run, still found, removed from its middle and wrapped
    /// around the end of the cells.
    #[test]
    fn colliding_keys_wrap_and_shift_back() {
        for hash in [0, u64::MAX, 1 << 63] {
            let hash_of = |_: MemberId| hash;
            let mut index = IdIndex::default();
            for i in 0..100 {
                index.insert(hash, id(i), hash_of);
            }
            let all: Vec<MemberId> = index.candidates(hash).collect();
            assert_eq!(all.len(), 100);
            for i in [50, 0, 99, 7] {
                assert_eq!(index.remove(hash, |x| x == id(i), hash_of), Some(id(i)));
            }
            let live: Vec<usize> = (0..100).filter(|i| ![50, 0, 99, 7].contains(i)).collect();
            check_all_found(&index, &live, &hash_of);
        }
    }

    /// Mixed: some keys collide, some do not, inserted and removed in a pseudo-random order
    /// against a plain model.
    #[test]
    fn agrees_with_a_model_under_churn() {
        let hash_of = |x: MemberId| mix64(u64::from(x.0.get() % 97)) ^ u64::from(x.0.get() % 5);
        let mut index = IdIndex::default();
        let mut model = std::collections::BTreeSet::new();
        let mut state = 1u64;
        for _ in 0..20_000 {
            state = mix64(state);
            let i = (state % 700) as usize;
            if model.insert(i) {
                index.insert(hash_of(id(i)), id(i), hash_of);
            } else {
                model.remove(&i);
                assert_eq!(
                    index.remove(hash_of(id(i)), |x| x == id(i), hash_of),
                    Some(id(i))
                );
            }
        }
        let live: Vec<usize> = model.into_iter().collect();
        check_all_found(&index, &live, &hash_of);
    }

    #[test]
    fn an_empty_index_finds_and_removes_nothing() {
        let mut index = IdIndex::default();
        assert!(index.is_empty());
        assert_eq!(index.find(7, |_| true), None);
        assert_eq!(index.remove(7, |_| true, |_| 7), None);
        assert_eq!(index.candidates(7).count(), 0);
    }

    #[test]
    fn the_largest_id_keeps_its_bits() {
        let largest = MemberId::from_index(MEMBERS_MAX - 1).unwrap();
        let hash = u64::MAX;
        assert_eq!(id_of(cell(hash, largest)), Some(largest));
    }
}
