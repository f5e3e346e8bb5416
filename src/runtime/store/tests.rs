//! The store against real node snapshots: what a write costs as the registry grows, and what
//! comes back after a crash at any instant of the instance log's life.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::format::{
    to_file_bytes, InstanceRecord, InstancesFile, FORMAT, INSTANCES_FILE, INSTANCES_LOG_FILE,
};
use super::*;
use crate::config::Config;
use crate::names::{InstanceId, Label, ServiceName};
use crate::node::{Command, Identity, Node};
use crate::registry::InstanceSpec;
use crate::time::Instant;

fn me() -> NodeName {
    NodeName::new("n0").unwrap()
}

fn identity() -> Identity {
    Identity {
        name: me(),
        addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
        dc: Label::new("dc1").unwrap(),
        tags: Vec::new(),
    }
}

struct Bench {
    node: Node,
    now: Instant,
    store: Store,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let now = Instant::from_micros(1_700_000_000_000_000);
        let node = Node::new(Config::local(), identity(), 7, now);
        let (store, _) = Store::open(dir.path(), &me()).unwrap();
        Bench {
            node,
            now,
            store,
            _dir: dir,
        }
    }

    fn dir(&self) -> &Path {
        self.store.dir()
    }

    fn command(&mut self, command: Command) {
        self.now = self.now + Duration::from_millis(1);
        self.node.handle_command(self.now, command).unwrap();
    }

    fn register(&mut self, id: &str) {
        let mut spec = InstanceSpec::new(ServiceName::new("web").unwrap(), "10.0.0.1", 80);
        spec.id = Some(InstanceId::new(id).unwrap());
        spec.tags = vec!["primary".into(), "v2".into()];
        self.command(Command::Register(spec));
    }

    fn deregister(&mut self, id: &str) {
        let id = InstanceId::new(id).unwrap();
        self.command(Command::Deregister { id });
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::new(Snapshot::of(&self.node, self.now))
    }

    /// Write the node's state as the writer would; what the files now hold.
    fn commit(&mut self) -> BTreeMap<String, String> {
        let snapshot = self.snapshot();
        self.store.commit(&snapshot).unwrap();
        held(&snapshot)
    }

    fn log_len(&self) -> usize {
        std::fs::read(self.dir().join(INSTANCES_LOG_FILE))
            .unwrap()
            .len()
    }
}

/// The owned instances of a snapshot: id, and version with health (what must come back).
fn held(snapshot: &Snapshot) -> BTreeMap<String, String> {
    snapshot
        .local
        .iter()
        .filter_map(|id| render::owned(snapshot, id))
        .map(|(stored, i)| {
            let v = &stored.version;
            let state = format!("{}.{} {:?}", v.wall_ms, v.counter, i.health);
            (i.id.as_str().to_string(), state)
        })
        .collect()
}

/// What a restart would take back from `dir`.
fn loaded(dir: &Path) -> Result<BTreeMap<String, String>, StoreError> {
    let saved = load::load(dir, &me())?;
    assert!(saved.skipped.is_empty(), "{:?}", saved.skipped);
    Ok(saved
        .restored
        .instances
        .iter()
        .map(|e| {
            let v = &e.version;
            let i = e.instance.as_ref().unwrap();
            let state = format!("{}.{} {:?}", v.wall_ms, v.counter, i.health);
            (e.id.as_str().to_string(), state)
        })
        .collect())
}

/// Bytes the store writes for one more registration, holding `owned` instances already.
fn bytes_for_one_registration(owned: usize) -> u64 {
    let mut bench = Bench::new();
    for n in 0..owned {
        bench.register(&format!("web-{n}"));
    }
    bench.store.begin(bench.snapshot()).unwrap();
    let before = bench.store.written_bytes;
    bench.register("web-new");
    bench.commit();
    bench.store.written_bytes - before
}

/// A registration's write is O(change), not O(owned instances): each group commit rewrote
/// the whole instances.json (4.3 MB at 8,800 owned instances, issue 17).
#[test]
fn a_registration_writes_bytes_in_proportion_to_the_change_not_to_the_registry() {
    let small = bytes_for_one_registration(1_000);
    let large = bytes_for_one_registration(10_000);
    assert!(
        small < 2_000 && large < 2_000,
        "one registration wrote {small} B at 1,000 owned, {large} B at 10,000"
    );
}

/// A node with a few instances, then three group commits (a registration; a registration
/// with a deregistration; a health change), the log then cut at every byte from the first
/// commit on, as a crash mid-append leaves it: every acknowledged commit comes back whole, and
/// of the one cut short each instance is as before it or as after it, never lost or mangled.
#[test]
fn a_crash_at_any_byte_of_the_last_appends_loses_nothing_acknowledged() {
    let mut bench = Bench::new();
    for id in ["a", "b", "c"] {
        bench.register(id);
    }
    bench.store.begin(bench.snapshot()).unwrap();
    // (where the log ends, what the files hold) after each acknowledged commit.
    let mut acked = vec![(bench.log_len(), held(&bench.snapshot()))];
    bench.register("d");
    let state = bench.commit();
    acked.push((bench.log_len(), state));
    bench.register("e");
    bench.deregister("b");
    let state = bench.commit();
    acked.push((bench.log_len(), state));
    bench.command(Command::SetHealth {
        id: InstanceId::new("a").unwrap(),
        health: crate::registry::Health::Critical,
        output: "down".into(),
    });
    let state = bench.commit();
    acked.push((bench.log_len(), state));
    let full = std::fs::read(bench.dir().join(INSTANCES_LOG_FILE)).unwrap();
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        bench.dir().join(INSTANCES_FILE),
        copy.path().join(INSTANCES_FILE),
    )
    .unwrap();
    for cut in acked[0].0..=full.len() {
        std::fs::write(copy.path().join(INSTANCES_LOG_FILE), &full[..cut]).unwrap();
        let got = loaded(copy.path()).unwrap();
        let k = acked.iter().rposition(|(end, _)| *end <= cut).unwrap();
        let (end, before) = &acked[k];
        if cut == *end || cut < end + frame::HEADER_BYTES + 2 {
            assert_eq!(&got, before, "log cut at {cut}");
            continue;
        }
        let after = &acked[k + 1].1;
        for id in before.keys().chain(after.keys()).chain(got.keys()) {
            let is = got.get(id);
            assert!(
                is == before.get(id) || is == after.get(id),
                "log cut at {cut}: {id} is {is:?}, neither {:?} nor {:?}",
                before.get(id),
                after.get(id)
            );
        }
    }
}

#[test]
fn a_corrupt_record_before_others_is_refused_naming_the_file_and_offset() {
    let mut bench = Bench::new();
    bench.store.begin(bench.snapshot()).unwrap();
    let first = bench.log_len();
    bench.register("a");
    bench.commit();
    bench.register("b");
    bench.commit();
    let path = bench.dir().join(INSTANCES_LOG_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[first + 20] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let err = loaded(bench.dir()).unwrap_err().to_string();
    assert!(
        err.contains("instances.log")
            && err.contains(&format!("at offset {first}: checksum does not match")),
        "{err}"
    );
}

/// Compaction rewrites instances.json and empties the log, and the content stays; a crash
/// between its two renames (the new snapshot beside the old log) loses nothing either.
#[test]
fn compaction_keeps_the_content_even_when_cut_between_its_two_writes() {
    let mut bench = Bench::new();
    for id in ["a", "b", "c"] {
        bench.register(id);
    }
    bench.store.begin(bench.snapshot()).unwrap();
    bench.register("d");
    bench.deregister("a");
    let expected = bench.commit();
    let old_log = std::fs::read(bench.dir().join(INSTANCES_LOG_FILE)).unwrap();
    let dir = bench.dir().to_path_buf();
    bench.store.instances.compact_now(&dir).unwrap();
    assert!(
        bench.log_len() < old_log.len(),
        "the log starts empty again"
    );
    assert_eq!(loaded(bench.dir()).unwrap(), expected);
    // The crash between the two renames, in a copy: the new snapshot, the old log.
    let cut = tempfile::tempdir().unwrap();
    std::fs::copy(
        bench.dir().join(INSTANCES_FILE),
        cut.path().join(INSTANCES_FILE),
    )
    .unwrap();
    std::fs::write(cut.path().join(INSTANCES_LOG_FILE), &old_log).unwrap();
    assert_eq!(loaded(cut.path()).unwrap(), expected);
    // After the compaction, appends go on in the new log.
    bench.register("e");
    let expected = bench.commit();
    assert_eq!(loaded(bench.dir()).unwrap(), expected);
}

/// The log is compacted once it outgrows twice the snapshot (and its floor).
#[test]
fn compaction_is_due_past_twice_the_snapshot() {
    let mut bench = Bench::new();
    let ids: Vec<String> = (0..64).map(|n| format!("web-{n}")).collect();
    for id in &ids {
        bench.register(id);
    }
    bench.store.begin(bench.snapshot()).unwrap();
    let mut commits = 0;
    while !bench.store.instances.compaction_due() {
        for id in &ids {
            bench.command(Command::SetHealth {
                id: InstanceId::new(id).unwrap(),
                health: crate::registry::Health::Passing,
                output: format!("renewed {commits} {}", "x".repeat(600)),
            });
        }
        bench.commit();
        commits += 1;
        assert!(commits < 1_000, "never due");
    }
    let size = bench.log_len() as u64;
    assert!(size > instances::COMPACT_MIN_BYTES, "{size}");
    bench.store.compact_if_due().unwrap();
    assert!(!bench.store.instances.compaction_due());
    assert_eq!(loaded(bench.dir()).unwrap(), held(&bench.snapshot()));
}

/// A data_dir written before the log (instances.json without "log", no instances.log) loads,
/// and is carried on in the new layout.
#[test]
fn an_instances_json_of_before_the_log_still_loads() {
    let mut bench = Bench::new();
    bench.register("a");
    bench.register("b");
    let snapshot = bench.snapshot();
    let expected = held(&snapshot);
    let mut file = Vec::new();
    render::instances(&snapshot, 1, &mut file).unwrap();
    let mut old: serde_json::Value = serde_json::from_slice(&file).unwrap();
    old.as_object_mut().unwrap().remove("log");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(INSTANCES_FILE), old.to_string()).unwrap();
    assert_eq!(loaded(dir.path()).unwrap(), expected);
    let (mut store, saved) = Store::open(dir.path(), &me()).unwrap();
    assert_eq!(saved.log_generation, 0);
    store.begin(snapshot).unwrap();
    assert!(dir.path().join(INSTANCES_LOG_FILE).exists());
    drop(store);
    assert_eq!(loaded(dir.path()).unwrap(), expected);
}

/// The compaction streams `instances.json` record by record: byte for byte what the file was
/// when it was built whole (`to_file_bytes` of the records gathered), so every hera reads it.
#[test]
fn a_streamed_instances_json_is_the_file_built_whole() {
    let mut bench = Bench::new();
    for id in ["a", "b", "c"] {
        bench.register(id);
    }
    for snapshot in [bench.snapshot(), Bench::new().snapshot()] {
        let whole = to_file_bytes(&InstancesFile {
            format: FORMAT,
            node: snapshot.name.as_str().to_string(),
            log: Some(7),
            instances: (snapshot.local.iter())
                .filter_map(|id| render::owned(&snapshot, id))
                .map(|(stored, i)| InstanceRecord::of(i, &stored.version))
                .collect::<Vec<_>>(),
        });
        let mut streamed = Vec::new();
        let bytes = render::instances(&snapshot, 7, &mut streamed).unwrap();
        assert_eq!(bytes as usize, streamed.len());
        assert_eq!(
            String::from_utf8(streamed).unwrap(),
            String::from_utf8(whole).unwrap()
        );
    }
}

/// Removing instances.json makes a stopped node forget its instances (docs/operations.md):
/// the log that continued it goes with it.
#[test]
fn a_log_without_its_instances_json_is_ignored() {
    let mut bench = Bench::new();
    bench.store.begin(bench.snapshot()).unwrap();
    bench.register("a");
    bench.commit();
    std::fs::remove_file(bench.dir().join(INSTANCES_FILE)).unwrap();
    assert!(loaded(bench.dir()).unwrap().is_empty());
}

/// A restart takes the instances back (`Command::Restore`) and writes them again at once: the
/// fresh instances.json holds them (the owned set once missed the restored ones, and the
/// start's compaction wrote an empty file over them).
#[test]
fn a_restart_writes_back_what_it_restored() {
    let mut bench = Bench::new();
    bench.store.begin(bench.snapshot()).unwrap();
    bench.register("a");
    bench.register("b");
    let expected = bench.commit();
    let dir = bench.dir().to_path_buf();
    let Bench { store, _dir, .. } = bench;
    drop(store);
    let mut again = Bench::new();
    let (store, saved) = Store::open(&dir, &me()).unwrap();
    again.store = store;
    again.command(Command::Restore(Box::new(saved.restored)));
    again.store.begin(again.snapshot()).unwrap();
    assert_eq!(held(&again.snapshot()), expected);
    assert_eq!(loaded(&dir).unwrap(), expected);
    drop(_dir);
}

mod changes;
