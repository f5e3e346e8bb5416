//! The member table's names, back to back in one string (issue 17).
//!
//! A `NodeName` is 24 bytes wherever it is held (inline up to 24 bytes, else on the heap): in
//! every member slot that was 24 of 64 bytes. Here a member holds a 5-byte [`NameRef`] into
//! its table's [`NameArena`], and a name costs its own bytes there ("n1234": 5 B) plus the
//! arena's growth slack (at most 1/16). The names of removed members stay in the arena as dead
//! bytes until they are half of it, and then the live names are copied into a new one.

use std::ops::Range;

use crate::names::NodeName;

/// Where one member's name is in its table's arena: its first byte's offset and its length, 5
/// bytes of alignment 1 where a `NodeName` took 24 of alignment 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NameRef {
    at: [u8; 4],
    len: u8,
}

// A name's length fits the reference's byte.
const _: () = assert!(NodeName::MAX_BYTES <= u8::MAX as usize);

impl NameRef {
    fn range(self) -> Range<usize> {
        let at = u32::from_le_bytes(self.at) as usize;
        at..at + usize::from(self.len)
    }
}

/// Dead bytes the arena keeps before it compacts, whatever their share: below this, copying
/// the live names would cost more than the bytes it returns.
const DEAD_BYTES_MIN: usize = 4_096;

/// The names of one member table. Its length stays below twice its live names' bytes plus
/// [`DEAD_BYTES_MIN`] (compaction on removal), so at most 2 × 2^24 members × 64 B + 4 kB: the
/// offsets fit a `u32`.
#[derive(Debug, Default)]
pub(super) struct NameArena {
    /// Names, back to back, none with a separator (the references carry the lengths).
    text: String,
    /// Bytes of `text` whose members were removed.
    dead: usize,
}

impl NameArena {
    /// The name at `name` ("" for a reference not from this arena, which the table never
    /// holds: total rather than panicking).
    pub(super) fn get(&self, name: NameRef) -> &str {
        self.text.get(name.range()).unwrap_or("")
    }

    /// Keeps a copy of `name`; None if the arena is past what a `u32` offset reaches (it
    /// cannot be: see the type's doc).
    pub(super) fn add(&mut self, name: &NodeName) -> Option<NameRef> {
        let name = name.as_str();
        let at = u32::try_from(self.text.len()).ok()?;
        let len = u8::try_from(name.len()).ok()?;
        if self.text.capacity() - self.text.len() < name.len() {
            // By a sixteenth, as the table's other vectors grow (`swim::reserve_gently`):
            // doubling would leave up to half of it unused at 10,000 members.
            let more = (self.text.len() / 16).max(256).max(name.len());
            self.text.reserve_exact(more);
        }
        self.text.push_str(name);
        Some(NameRef {
            at: at.to_le_bytes(),
            len,
        })
    }

    /// A member holding `name` was removed; true once its dead bytes call for
    /// [`NameArena::compact`].
    #[must_use]
    pub(super) fn release(&mut self, name: NameRef) -> bool {
        self.dead += usize::from(name.len);
        self.dead > DEAD_BYTES_MIN && self.dead * 2 > self.text.len()
    }

    /// Copies the names `held` refer to (every live member's) into a new arena, and points the
    /// references there. O(live bytes), after at least as many bytes were released.
    pub(super) fn compact<'a>(&mut self, held: impl Iterator<Item = &'a mut NameRef>) {
        let live = self.text.len().saturating_sub(self.dead);
        // Checked before any reference moves: a copy stopped half way would leave some
        // pointing into the new arena and some into the old. The new one holds only live
        // names, fewer bytes than the old one's offsets reached, so this does not refuse.
        if u32::try_from(live).is_err() {
            return;
        }
        let mut next = NameArena {
            text: String::with_capacity(live + live / 16),
            dead: 0,
        };
        for name in held {
            let text = self.get(*name);
            let Ok(at) = u32::try_from(next.text.len()) else {
                return;
            };
            next.text.push_str(text);
            name.at = at.to_le_bytes();
        }
        *self = next;
    }

    /// Bytes held, live and dead (for tests of the bound).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    #[test]
    fn names_read_back_after_compaction() {
        let mut arena = NameArena::default();
        let long = "x".repeat(NodeName::MAX_BYTES);
        let mut held: Vec<Option<(String, NameRef)>> = (0..2_000)
            .map(|i| {
                let s = if i % 7 == 0 {
                    long.clone()
                } else {
                    format!("n{i}")
                };
                let r = arena.add(&name(&s)).unwrap();
                Some((s, r))
            })
            .collect();
        let mut compactions = 0;
        for i in (0..held.len()).filter(|i| i % 5 != 0) {
            let Some((_, r)) = held[i].take() else {
                continue;
            };
            if arena.release(r) {
                arena.compact(held.iter_mut().flatten().map(|(_, r)| r));
                compactions += 1;
            }
        }
        assert!(compactions > 0);
        let kept: Vec<&(String, NameRef)> = held.iter().flatten().collect();
        assert_eq!(kept.len(), 400);
        for (s, r) in &kept {
            assert_eq!(arena.get(*r), s);
        }
        let live: usize = kept.iter().map(|(s, _)| s.len()).sum();
        assert!(arena.len() <= 2 * live + DEAD_BYTES_MIN);
    }

    #[test]
    fn a_reference_from_elsewhere_reads_as_empty() {
        let arena = NameArena::default();
        let stray = NameRef {
            at: 7u32.to_le_bytes(),
            len: 3,
        };
        assert_eq!(arena.get(stray), "");
    }
}
