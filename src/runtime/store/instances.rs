//! The instances this node owns, on disk: `instances.json` as of the last compaction, and
//! `instances.log`, the changes since, appended. A group commit appends only the records that
//! changed (upserts and deletions) and fsyncs the log: its cost is O(change), where rewriting
//! the whole `instances.json` cost O(owned instances) per commit (4.3 MB at 8,800 owned,
//! issue 17).
//!
//! The changes are the ones the node noted since the snapshot last written
//! ([`crate::node::OwnedChanges`]: every id that joined or left its owned set, or whose record
//! changed while owned), so a commit costs O(change), not O(registry): comparing the two
//! snapshots' registries walked every live entry, ~2 ms at 100,000 (issue 17). If the node has
//! forgotten some of them (more than [`crate::node::OWNED_CHANGES_MAX`] since), the commit
//! compacts instead.
//!
//! Compaction: once the log outgrows twice the snapshot (and [`COMPACT_MIN_BYTES`]), the writer
//! writes a fresh `instances.json` of what the log holds, then an empty log of the next
//! generation, each atomically (`atomic`: temporary file, fsync, rename, directory fsync). A
//! crash between the two leaves the new snapshot with the old log, whose generation no longer
//! matches: the log is ignored, the snapshot already holds everything in it. The writer runs it
//! after acknowledging the commit that crossed the bound, so it delays only the next commit,
//! by one write of `instances.json` (~10 MB at 20,000 owned instances); amortised, each log
//! byte costs at most one more byte of snapshot.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::format::{InstanceRecord, LogHeader, LogRecord, FORMAT, INSTANCES_LOG_FILE};
use super::{atomic, frame, render, StoreError};
use crate::names::InstanceId;
use crate::runtime::driver::Snapshot;

/// The log is compacted only past this size, however small the snapshot.
pub const COMPACT_MIN_BYTES: u64 = 4 << 20;

/// The log is compacted past this many times the snapshot's size.
pub const COMPACT_RATIO: u64 = 2;

/// The log is compacted past this many records, far below what a load accepts.
pub const COMPACT_RECORDS: usize = frame::RECORDS_MAX / 2;

#[derive(Debug)]
pub struct InstanceLog {
    /// The snapshot whose owned instances the two files hold; None before the first write.
    base: Option<Arc<Snapshot>>,
    /// The log, open for appending. None after a failed append (its tail may be torn: the
    /// next commit compacts instead of appending after it) and before the first compaction.
    file: Option<File>,
    /// The generation of the files on disk.
    generation: u64,
    log_bytes: u64,
    log_records: usize,
    snapshot_bytes: u64,
}

impl InstanceLog {
    /// `generation`: the one of the files found at start.
    pub fn new(generation: u64) -> InstanceLog {
        InstanceLog {
            base: None,
            file: None,
            generation,
            log_bytes: 0,
            log_records: 0,
            snapshot_bytes: 0,
        }
    }

    /// Make the files hold `snapshot`'s owned instances, durably. Returns the bytes written.
    pub fn commit(&mut self, dir: &Path, snapshot: &Arc<Snapshot>) -> Result<u64, StoreError> {
        let base = match (&self.base, &self.file) {
            (Some(base), Some(_)) if base.name == snapshot.name => base.clone(),
            _ => return self.compact(dir, snapshot),
        };
        if Arc::ptr_eq(&base, snapshot) {
            return Ok(0);
        }
        let Some(Changes { bytes, records }) = changes(&base, snapshot) else {
            return self.compact(dir, snapshot);
        };
        if records > 0 {
            let path = dir.join(INSTANCES_LOG_FILE);
            let file = self.file.as_mut().ok_or_else(|| StoreError::Write {
                file: path.clone(),
                source: std::io::Error::other("the log is not open"),
            })?;
            if let Err(source) = file.write_all(&bytes).and_then(|()| file.sync_data()) {
                self.file = None;
                return Err(StoreError::Write { file: path, source });
            }
            self.log_bytes = self.log_bytes.saturating_add(bytes.len() as u64);
            self.log_records = self.log_records.saturating_add(records);
        }
        self.base = Some(snapshot.clone());
        Ok(bytes.len() as u64)
    }

    /// The log has outgrown the snapshot: time to [`InstanceLog::compact_now`].
    pub fn compaction_due(&self) -> bool {
        let bound = COMPACT_MIN_BYTES.max(self.snapshot_bytes.saturating_mul(COMPACT_RATIO));
        self.file.is_some() && (self.log_bytes > bound || self.log_records >= COMPACT_RECORDS)
    }

    /// Rewrite `instances.json` with what the files hold, and start an empty log.
    pub fn compact_now(&mut self, dir: &Path) -> Result<u64, StoreError> {
        match self.base.clone() {
            Some(base) => self.compact(dir, &base),
            None => Ok(0),
        }
    }

    fn compact(&mut self, dir: &Path, snapshot: &Arc<Snapshot>) -> Result<u64, StoreError> {
        self.file = None;
        // A new generation even if this fails half-way: the files never reuse one.
        self.generation = self.generation.wrapping_add(1);
        // Streamed into the temporary file: the compaction holds one record and the writer's
        // buffer, not the file (tests/compaction_memory.rs).
        let generation = self.generation;
        let snapshot_bytes =
            atomic::replace_file_streamed(dir, super::format::INSTANCES_FILE, |out| {
                render::instances(snapshot, generation, out)
            })?;
        if snapshot_bytes > super::format::INSTANCES_FILE_MAX_BYTES {
            tracing::error!(
                bytes = snapshot_bytes,
                max = super::format::INSTANCES_FILE_MAX_BYTES,
                "{} is larger than a restart reads: this node owns more instances than hera is \
                 built for, and will refuse to start with this data_dir (deregister some, or \
                 spread them over more nodes)",
                super::format::INSTANCES_FILE
            );
        }
        let header = LogHeader {
            format: FORMAT,
            node: snapshot.name.as_str().to_string(),
            generation: self.generation,
        };
        let mut log = Vec::new();
        frame::push(&serde_json::to_vec(&header).unwrap_or_default(), &mut log);
        let log_bytes = log.len() as u64;
        let written = snapshot_bytes.saturating_add(log_bytes);
        // The snapshot first, durably (above), then the log: never a new log beside an old
        // snapshot.
        atomic::replace_files(dir, &[(INSTANCES_LOG_FILE, log)])?;
        let path = dir.join(INSTANCES_LOG_FILE);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| StoreError::Write { file: path, source })?;
        self.file = Some(file);
        self.base = Some(snapshot.clone());
        self.log_bytes = log_bytes;
        self.log_records = 0;
        self.snapshot_bytes = snapshot_bytes;
        Ok(written)
    }
}

/// The records a commit appends: framed, and how many.
#[derive(Debug, Default)]
pub struct Changes {
    pub bytes: Vec<u8>,
    pub records: usize,
}

/// What takes the files from `base`'s owned instances to `snapshot`'s: a put of each owned
/// instance that changed, a deletion of each no longer owned. None if they do not fit one
/// append, or `snapshot` no longer remembers every change since `base` (the caller compacts
/// instead).
///
/// The ids come from the node's own account of its changes ([`Snapshot::owned_changes`]):
/// O(changes) whatever the registry's size, where comparing the two registries walked every
/// live entry (~2 ms at 100,000 entries, which bounded commits to ~500/s, issue 17).
pub fn changes(base: &Snapshot, snapshot: &Snapshot) -> Option<Changes> {
    let mut ids: Vec<&InstanceId> = snapshot.owned_changes.since(&base.owned_changes)?.collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Changes::default();
    for id in ids {
        let record = match render::owned(snapshot, id) {
            Some((stored, i)) => LogRecord::Put(InstanceRecord::of(i, &stored.version)),
            None if render::owned(base, id).is_some() => LogRecord::Del(id.as_str().to_string()),
            None => continue,
        };
        // Plain structs: serialising cannot fail (an empty payload would be refused below).
        let payload = serde_json::to_vec(&record).unwrap_or_default();
        if !frame::push(&payload, &mut out.bytes) {
            return None;
        }
        out.records += 1;
    }
    Some(out)
}
