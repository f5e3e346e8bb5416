//! The node's durable state in its `data_dir`: what it needs to come back from a restart
//! without losing what clients told it (SPEC §10).
//!
//! Kept, one JSON file per concern ([`format`]): the instances registered with this node (with
//! their checks' last status and output, maintenance and reason), the keyring once changed at
//! run time, the members it knew, the protocol's floors (incarnation, registry clock), and
//! the configuration changed at run time ([`save_overrides`]).
//!
//! ```text
//! driver ──snapshot (watch)──> writer task ──spawn_blocking──> instances: append, fsync
//!                                   │                          others: tmp, fsync, rename, fsync dir
//!                                   └──> Durability (watch) ──> NodeHandle acks writes
//! ```
//!
//! Persistence stays off the protocol's path: the driver never waits for a disk. The writer
//! watches the published snapshot, appends the instances that changed to `instances.log`
//! ([`instances`]: O(change), compacted into `instances.json` now and then) and rewrites the
//! other files whose content changed; while one write is in flight, further snapshots replace
//! each other, so a burst of registrations costs one write per fsync, not one per
//! registration (group commit). The HTTP handlers that acknowledge a registration wait until
//! the writer reports it durable ([`Durability`]), so an acknowledged registration survives a
//! `kill -9`.

mod atomic;
mod error;
pub mod format;
mod frame;
// The data_dir fuzz target's and the seed replay's harness: never in a production build.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
#[cfg(any(test, feature = "fuzzing"))]
pub mod hooks;
mod instances;
mod load;
mod lock;
mod render;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

pub use error::StoreError;
pub use load::Saved;
pub use lock::LOCK_FILE;

use crate::names::NodeName;
use crate::runtime::driver::Snapshot;
use crate::wire::Keyring;
use format::{CHECKS_FILE, KEYRING_FILE, MEMBERS_FILE, PROTOCOL_FILE};
use instances::InstanceLog;
use lock::DirLock;

/// The registry clock moves with every write; saving it each time would double the fsyncs of a
/// registration. Saved when it has moved this far instead: a restarted node's floor is then at
/// most this much behind, which matters only if the wall clock also stepped back (the restored
/// instances carry their own versions, and the cluster's entries move the clock on anyway).
const CLOCK_SAVE_STEP_MS: u64 = 60_000;

/// How far the node's state is on disk, published by the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// Every change up to this node version (`Snapshot::version`) is on disk.
    pub written: u64,
    /// Why the last write failed; None once one succeeds again.
    pub error: Option<String>,
}

/// An open, locked data directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: DirLock,
    files: Files,
    instances: InstanceLog,
    /// Bytes written to the directory so far (what a write costs, for tests and metrics).
    written_bytes: u64,
}

impl Store {
    /// Create the directory if need be, lock it, and read what it holds.
    pub fn open(dir: &Path, me: &NodeName) -> Result<(Store, Saved), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let lock = DirLock::acquire(dir)?;
        let saved = load::load(dir, me)?;
        let store = Store {
            dir: dir.to_path_buf(),
            _lock: lock,
            files: Files {
                keep_keyring: saved.keyring.is_some(),
                ..Files::default()
            },
            instances: InstanceLog::new(saved.log_generation),
            written_bytes: 0,
        };
        Ok((store, saved))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write the whole state now, synchronously: at start, so that a directory the node
    /// cannot write is refused before it serves anyone. `snapshot`'s keyring is the one the
    /// node starts with; it is kept on disk from its first change at run time.
    pub fn begin(&mut self, snapshot: Arc<Snapshot>) -> Result<(), StoreError> {
        self.files.start_keyring = snapshot.keyring.clone();
        self.commit(&snapshot)
    }

    /// Make the files hold `snapshot`, durably (blocks on fsync).
    fn commit(&mut self, snapshot: &Arc<Snapshot>) -> Result<(), StoreError> {
        let written = self.instances.commit(&self.dir, snapshot)?;
        self.written_bytes = self.written_bytes.saturating_add(written);
        let changed = self.files.changed(snapshot);
        atomic::replace_files(&self.dir, &changed)?;
        let written: usize = changed.iter().map(|(_, bytes)| bytes.len()).sum();
        self.written_bytes = self.written_bytes.saturating_add(written as u64);
        self.files.written(changed);
        Ok(())
    }

    /// Compact the instance log if it has outgrown its snapshot (blocks on fsync).
    fn compact_if_due(&mut self) -> Result<(), StoreError> {
        if self.instances.compaction_due() {
            let written = self.instances.compact_now(&self.dir)?;
            self.written_bytes = self.written_bytes.saturating_add(written);
        }
        Ok(())
    }

    /// Keep the files up to date with the node's snapshots until the driver stops (then write
    /// its last snapshot and end).
    pub fn spawn_writer(self, snapshots: watch::Receiver<Arc<Snapshot>>) -> Writer {
        let first = snapshots.borrow().version;
        let (durability_tx, durability) = watch::channel(Durability {
            written: first,
            error: None,
        });
        let task = tokio::spawn(write_loop(self, snapshots, durability_tx));
        Writer { durability, task }
    }
}

/// Keep the configuration changed at run time (`config.json`), now. Blocks on fsync: call it
/// off the async threads. The file is apart from the snapshot the writer follows: the HTTP
/// layer holds the changes, and writes them before it applies and acknowledges one.
pub fn save_overrides(
    dir: &Path,
    overrides: &crate::runtime::overrides::Overrides,
) -> Result<(), StoreError> {
    atomic::replace_files(dir, &[(format::CONFIG_FILE, render::config(overrides))])
}

/// The running writer.
#[derive(Debug)]
pub struct Writer {
    pub durability: watch::Receiver<Durability>,
    pub task: tokio::task::JoinHandle<()>,
}

async fn write_loop(
    store: Store,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    durability: watch::Sender<Durability>,
) {
    let mut failing = false;
    let mut store = Some(store);
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        let Some(mut owned) = store.take() else {
            return;
        };
        // fsync blocks: on the blocking pool, never on the node's own thread.
        let job = tokio::task::spawn_blocking(move || {
            let result = owned.commit(&snapshot).map(|()| snapshot.version);
            (owned, result)
        });
        let Ok((back, result)) = job.await else {
            tracing::error!("the state writer stopped");
            durability.send_modify(|d| d.error = Some("the state writer stopped".into()));
            return;
        };
        store = Some(back);
        match result {
            Ok(version) => {
                if failing {
                    tracing::info!("state written again");
                    failing = false;
                }
                durability.send_replace(Durability {
                    written: version,
                    error: None,
                });
            }
            Err(e) => {
                // Retried with the next snapshot (at least one a second).
                if !failing {
                    tracing::error!("cannot keep the node's state: {e}");
                    failing = true;
                }
                durability.send_modify(|d| d.error = Some(e.to_string()));
            }
        }
        // After the acknowledgement: a compaction delays the next commit, never this one.
        if let Some(mut owned) = store.take() {
            let job = tokio::task::spawn_blocking(move || {
                let result = owned.compact_if_due();
                (owned, result)
            });
            let Ok((back, result)) = job.await else {
                tracing::error!("the state writer stopped");
                return;
            };
            if let Err(e) = result {
                // The next commit compacts again (the log is closed on failure).
                tracing::error!("cannot compact the instance log: {e}");
            }
            store = Some(back);
        }
        if snapshots.changed().await.is_err() {
            // The driver has stopped: write what it last published, compacted (a stopped
            // node's instances are all in instances.json), then end.
            let last = snapshots.borrow().clone();
            let Some(mut owned) = store.take() else {
                return;
            };
            let result = owned
                .commit(&last)
                .and_then(|()| owned.instances.compact_now(&owned.dir).map(|_| ()));
            match result {
                Err(e) => tracing::error!("cannot keep the node's final state: {e}"),
                Ok(()) => {
                    durability.send_replace(Durability {
                        written: last.version,
                        error: None,
                    });
                }
            }
            return;
        }
    }
}

/// The bytes last written of each file but the instances', so only what changed is written
/// again.
#[derive(Debug, Default)]
struct Files {
    last: BTreeMap<&'static str, Vec<u8>>,
    /// The incarnation and registry clock (wall ms) in `protocol.json`.
    floors: Option<(u32, u64)>,
    pending_floors: Option<(u32, u64)>,
    /// The keyring the node started with: written once it differs (a change at run time),
    /// and from then on kept whatever the config file's `encrypt` says.
    start_keyring: Option<Keyring>,
    keep_keyring: bool,
}

impl Files {
    fn changed(&mut self, snapshot: &Snapshot) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = Vec::new();
        let mut consider = |name: &'static str, bytes: Vec<u8>| {
            if self.last.get(name) != Some(&bytes) {
                out.push((name, bytes));
            }
        };
        if !snapshot.node_checks.is_empty() || self.last.contains_key(CHECKS_FILE) {
            consider(CHECKS_FILE, render::node_checks(snapshot));
        }
        let floors = (snapshot.incarnation, snapshot.registry.clock_high_water().0);
        let due = self.floors.is_none_or(|(incarnation, wall_ms)| {
            floors.0 != incarnation || floors.1 >= wall_ms.saturating_add(CLOCK_SAVE_STEP_MS)
        });
        if due {
            self.pending_floors = Some(floors);
            consider(PROTOCOL_FILE, render::protocol(snapshot));
        }
        consider(MEMBERS_FILE, render::members(snapshot));
        if self.keep_keyring || snapshot.keyring != self.start_keyring {
            if let Some(bytes) = render::keyring(snapshot) {
                self.keep_keyring = true;
                consider(KEYRING_FILE, bytes);
            }
        }
        out
    }

    fn written(&mut self, files: Vec<(&'static str, Vec<u8>)>) {
        if let Some(floors) = self.pending_floors.take() {
            self.floors = Some(floors);
        }
        for (name, bytes) in files {
            self.last.insert(name, bytes);
        }
    }
}
