//! Hooks for `benches/store.rs` (feature `fuzzing`, never in a production build): the CPU part
//! of a group commit, apart from its write and fsync.

use super::instances;
use crate::runtime::driver::Snapshot;

/// Find and encode what a group commit from `base` to `snapshot` appends to the instance log:
/// (bytes, records), or None when it would compact instead.
pub fn commit_changes(base: &Snapshot, snapshot: &Snapshot) -> Option<(usize, usize)> {
    instances::changes(base, snapshot).map(|c| (c.bytes.len(), c.records))
}
