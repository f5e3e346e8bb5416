//! Which instances this node keeps on disk changed, and in what order: what lets the store's
//! group commit cost O(change) instead of a walk of the whole registry (issue 17).

use crate::names::InstanceId;

/// Changes remembered at most. The store reads the changes since its last commit, made while
/// that commit's fsync ran (a few ms; a compaction's ~100 ms at 20,000 owned instances): a
/// few hundred at the 4,000 registrations/s of docs/scale.md. Past the window a commit
/// rewrites the owned instances whole (a compaction), which costs what appending this many
/// records would, within a small factor. 4,096 ids cost at most ~100 kB (24 B each inline,
/// plus the text of ids over 24 bytes), whatever the registry's size.
pub const OWNED_CHANGES_MAX: usize = 4_096;

/// The ids of the instances this node keeps (or kept) on disk whose record may have changed,
/// numbered in the order of the changes: an id is noted when it joins or leaves the owned set
/// and whenever the registry takes a new record of it while it is owned. An id may be noted
/// several times. A change of any other entry cannot change what the node keeps on disk (the
/// store keeps an instance that is owned, live, and names this node as owner).
///
/// A persistent vector: the driver's snapshot clones it at every change in O(1), and a reader
/// holding an older snapshot asks the newer one for the changes since (O(log n + changes)).
/// Bounded: the oldest [`OWNED_CHANGES_MAX`]-th change back is forgotten, and a reader whose
/// snapshot is older than that is told so ([`OwnedChanges::since`] returns None).
#[derive(Debug, Clone, Default)]
pub struct OwnedChanges {
    /// The ids noted, oldest first: `ids[k]` is change number `forgotten + k + 1`.
    ids: imbl::Vector<InstanceId>,
    /// Changes noted and since forgotten (dropped from the front).
    forgotten: u64,
}

impl OwnedChanges {
    /// Changes noted so far: the mark a reader keeps to ask for the changes since.
    pub fn count(&self) -> u64 {
        self.forgotten + self.ids.len() as u64
    }

    /// The ids noted after the first `count` changes, oldest first (an id may come several
    /// times). None if some of them are forgotten already, or `count` is ahead of these
    /// changes (a mark taken from another node's): the caller must not rely on them.
    pub fn since(&self, count: u64) -> Option<impl Iterator<Item = &InstanceId>> {
        let skip = usize::try_from(count.checked_sub(self.forgotten)?).ok()?;
        (skip <= self.ids.len()).then(|| self.ids.focus().narrow(skip..).into_iter())
    }

    /// Note a change of `id`'s record, or of whether it is owned.
    pub(super) fn note(&mut self, id: &InstanceId) {
        self.ids.push_back(id.clone());
        if self.ids.len() > OWNED_CHANGES_MAX {
            self.ids.pop_front();
            self.forgotten += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> InstanceId {
        InstanceId::new(&format!("web-{n}")).unwrap()
    }

    fn since(changes: &OwnedChanges, count: u64) -> Option<Vec<String>> {
        let ids = changes.since(count)?;
        Some(ids.map(|id| id.as_str().to_string()).collect())
    }

    #[test]
    fn a_reader_gets_the_changes_after_its_mark_in_order() {
        let mut changes = OwnedChanges::default();
        assert_eq!(since(&changes, 0), Some(vec![]));
        changes.note(&id(1));
        let mark = changes.count();
        let older = changes.clone();
        changes.note(&id(2));
        changes.note(&id(1));
        assert_eq!(mark, 1);
        assert_eq!(
            since(&changes, mark),
            Some(vec!["web-2".into(), "web-1".into()])
        );
        assert_eq!(since(&changes, 0).map(|ids| ids.len()), Some(3));
        assert_eq!(since(&changes, 3), Some(vec![]));
        // A clone taken earlier is unchanged (a published snapshot's).
        assert_eq!(since(&older, 0), Some(vec!["web-1".into()]));
        // A mark from the future (another node's count) is refused, not read as empty.
        assert_eq!(since(&older, 3), None);
    }

    #[test]
    fn past_the_window_the_oldest_are_forgotten_and_a_reader_behind_is_told() {
        let mut changes = OwnedChanges::default();
        for n in 0..OWNED_CHANGES_MAX + 10 {
            changes.note(&id(n));
        }
        assert_eq!(changes.count(), (OWNED_CHANGES_MAX + 10) as u64);
        assert_eq!(changes.ids.len(), OWNED_CHANGES_MAX, "bounded");
        assert_eq!(since(&changes, 9), None, "change 10 is forgotten");
        let last = since(&changes, 10).unwrap();
        assert_eq!(last.len(), OWNED_CHANGES_MAX);
        assert_eq!(last[0], "web-10");
        assert_eq!(
            last[OWNED_CHANGES_MAX - 1],
            format!("web-{}", OWNED_CHANGES_MAX + 9)
        );
    }
}
