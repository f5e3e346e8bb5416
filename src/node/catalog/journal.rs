//! Which instances this node keeps on disk changed, and in what order: what lets the store's
//! group commit cost O(change) instead of a walk of the whole registry (issue 17).

use crate::names::InstanceId;
use crate::registry::BootId;

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
#[derive(Debug, Clone)]
pub struct OwnedChanges {
    /// The process start whose changes these are: another's numbers mean nothing here.
    boot: BootId,
    /// The ids noted, oldest first: `ids[k]` is change number `forgotten + k + 1`.
    ids: imbl::Vector<InstanceId>,
    /// Changes noted and since forgotten (dropped from the front).
    forgotten: u64,
}

impl OwnedChanges {
    pub(super) fn new(boot: BootId) -> OwnedChanges {
        OwnedChanges {
            boot,
            ids: imbl::Vector::new(),
            forgotten: 0,
        }
    }

    /// Changes noted so far.
    pub fn count(&self) -> u64 {
        self.forgotten + self.ids.len() as u64
    }

    /// The ids noted since `older` (an earlier copy of these changes) was taken, oldest first
    /// (an id may come several times). None if some of them are forgotten already, or `older`
    /// is not an earlier copy of these (another process start's, or a later one): the caller
    /// must not rely on them.
    pub fn since(&self, older: &OwnedChanges) -> Option<impl Iterator<Item = &InstanceId>> {
        if older.boot != self.boot {
            return None;
        }
        let skip = usize::try_from(older.count().checked_sub(self.forgotten)?).ok()?;
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

    const BOOT: BootId = BootId(7);

    fn since(changes: &OwnedChanges, older: &OwnedChanges) -> Option<Vec<String>> {
        let ids = changes.since(older)?;
        Some(ids.map(|id| id.as_str().to_string()).collect())
    }

    #[test]
    fn a_reader_gets_the_changes_after_its_copy_in_order() {
        let mut changes = OwnedChanges::new(BOOT);
        let empty = changes.clone();
        assert_eq!(since(&changes, &empty), Some(vec![]));
        changes.note(&id(1));
        let older = changes.clone();
        changes.note(&id(2));
        changes.note(&id(1));
        assert_eq!(
            since(&changes, &older),
            Some(vec!["web-2".into(), "web-1".into()])
        );
        assert_eq!(since(&changes, &empty).map(|ids| ids.len()), Some(3));
        assert_eq!(since(&changes, &changes), Some(vec![]));
        // The copy taken earlier is unchanged (a published snapshot's).
        assert_eq!(since(&older, &empty), Some(vec!["web-1".into()]));
        // A later copy, or another boot's, is refused, not read as no change.
        assert_eq!(since(&older, &changes), None);
        let mut other = OwnedChanges::new(BootId(8));
        other.note(&id(1));
        assert_eq!(since(&changes, &other), None);
    }

    #[test]
    fn past_the_window_the_oldest_are_forgotten_and_a_reader_behind_is_told() {
        let mut changes = OwnedChanges::new(BOOT);
        let mut marks = Vec::new();
        for n in 0..OWNED_CHANGES_MAX + 10 {
            marks.push(changes.clone());
            changes.note(&id(n));
        }
        assert_eq!(changes.count(), (OWNED_CHANGES_MAX + 10) as u64);
        assert_eq!(changes.ids.len(), OWNED_CHANGES_MAX, "bounded");
        assert_eq!(since(&changes, &marks[9]), None, "change 10 is forgotten");
        let last = since(&changes, &marks[10]).unwrap();
        assert_eq!(last.len(), OWNED_CHANGES_MAX);
        assert_eq!(last[0], "web-10");
        assert_eq!(
            last[OWNED_CHANGES_MAX - 1],
            format!("web-{}", OWNED_CHANGES_MAX + 9)
        );
    }
}
