//! The heap a compaction takes to write `instances.json` (issue 17): the peak above the settled
//! heap while the store writes a snapshot of 100,000 owned instances, against one record and
//! against the file.
//!
//! Run it alone to read the figures (release: the write time is printed too):
//!
//! ```text
//! cargo test --release --test compaction_memory -- --nocapture
//! ```
//!
//! As `tests/restore_memory.rs`: a counting global allocator sees every allocation of this
//! binary, counted per thread (`Store::begin` writes on the calling thread), in bytes requested.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hera::config::Config;
use hera::names::{InstanceId, Label, NodeName, ServiceName};
use hera::node::{Command, Identity, Node, Restored};
use hera::registry::{Entry, Hlc, InstanceSpec, SpecCheck};
use hera::runtime::driver::Snapshot;
use hera::runtime::store::format::{to_file_bytes, InstanceRecord, InstancesFile, FORMAT};
use hera::runtime::store::Store;
use hera::time::Instant;

#[path = "support/peak_alloc.rs"]
mod peak_alloc;
use peak_alloc::{peak, PeakCounting};

#[global_allocator]
static ALLOCATOR: PeakCounting = PeakCounting;

/// Owned instances: the 100,000 of docs/scale.md's registry, all on one node (the worst case
/// for one compaction).
const OWNED: usize = 100_000;

/// The most a compaction may hold above the settled heap. Measured (4 Dec 2026, 100,000
/// instances of 600 B, a 60 MB file; docs/scale.md): 66,415 B streamed, the file's 64 KiB
/// write buffer and one record; 223.5 MB (3.72 times the file) when it was built whole. 1 MiB
/// leaves room for the small state files written beside it and for records that grow, and is
/// under 2% of the file.
const PEAK_MAX_BYTES: usize = 1 << 20;

const WALL_MS: u64 = 1_700_000_000_000;

fn me() -> NodeName {
    NodeName::new("node-0").expect("valid name")
}

/// An instance as a client registers one: a service among 100, two tags, one meta pair, an
/// HTTP check (as `tests/restore_memory.rs`).
fn spec_of(k: usize) -> InstanceSpec {
    let service = ServiceName::new(&format!("svc-{:03}", k % 100)).expect("valid service");
    let address = format!("10.1.{}.{}", k / 256 % 256, k % 256);
    let mut spec = InstanceSpec::new(service, &address, 8080);
    spec.id = Some(InstanceId::new(&format!("i-{k:06}")).expect("valid id"));
    spec.tags = vec!["v2".into(), "primary".into()];
    spec.meta = BTreeMap::from([("version".to_string(), "1.2.3".to_string())]);
    spec.check = SpecCheck::Http {
        url: format!("http://{address}:8080/health"),
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(2),
    };
    spec
}

/// A node owning `OWNED` instances, given back to it as a restart does (`Command::Restore`:
/// 100,000 registrations through the API take minutes in a test build).
fn snapshot() -> Arc<Snapshot> {
    let identity = Identity {
        name: me(),
        addr: SocketAddr::from(([10, 0, 0, 1], 7946)),
        dc: Label::new("dc1").expect("valid"),
        tags: vec![],
    };
    let now = Instant::from_micros(WALL_MS * 1_000);
    let mut node = Node::new(Config::lan(), identity, 1, now);
    let instances = (0..OWNED)
        .map(|k| {
            let spec = spec_of(k);
            let id = spec.id.clone().expect("an id");
            let instance = spec
                .into_instance(id.clone(), me(), WALL_MS)
                .expect("a valid instance");
            let version = Hlc {
                wall_ms: WALL_MS + k as u64,
                counter: 0,
                node: me(),
            };
            Entry {
                id,
                version,
                instance: Some(Box::new(instance)),
            }
        })
        .collect();
    let restored = Restored {
        instances,
        ..Restored::default()
    };
    node.handle_command(now, Command::Restore(Box::new(restored)))
        .expect("restored");
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
    assert_eq!(node.local_instances().len(), OWNED);
    Arc::new(Snapshot::of(&node, now))
}

/// What a compaction held before it streamed (to 4 Dec 2026): every record gathered, then the
/// whole file's text built from them, then written. Measured beside the streamed one, in the
/// same binary, for the figures in docs/scale.md.
fn whole_file(snapshot: &Snapshot) -> Vec<u8> {
    let records: Vec<InstanceRecord> = (snapshot.local.iter())
        .filter_map(|id| {
            let stored = snapshot.registry.stored(id)?;
            Some(InstanceRecord::of(
                stored.instance.as_ref()?,
                &stored.version,
            ))
        })
        .collect();
    to_file_bytes(&InstancesFile {
        format: FORMAT,
        node: snapshot.name.as_str().to_string(),
        log: Some(1),
        instances: records,
    })
}

#[test]
fn a_compaction_holds_a_buffer_and_a_record_not_the_file() {
    let snapshot = snapshot();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut store, saved) = Store::open(dir.path(), &me()).expect("an empty data_dir");
    assert!(saved.empty);
    drop(saved);

    // The first write of a store compacts: it writes instances.json whole, then an empty log.
    #[allow(clippy::disallowed_methods)] // the write's wall time is printed, never asserted
    let began = std::time::Instant::now();
    let (written, peak_bytes, held_bytes) = peak(|| store.begin(snapshot.clone()));
    let took = began.elapsed();
    written.expect("written");
    let file_bytes = std::fs::metadata(dir.path().join("instances.json"))
        .expect("instances.json written")
        .len() as usize;
    let (whole, whole_peak, _) = peak(|| whole_file(&snapshot).len());
    println!(
        "compaction of {OWNED} instances: instances.json {file_bytes} B ({} B each); peak \
         {peak_bytes} B above the settled heap ({:.4}x the file), {held_bytes} B held after, \
         {:.1} ms; built whole (before 4 Dec) the file alone peaked at {whole_peak} B ({:.2}x)",
        file_bytes / OWNED,
        peak_bytes as f64 / file_bytes as f64,
        took.as_secs_f64() * 1e3,
        whole_peak as f64 / file_bytes as f64,
    );
    assert_eq!(
        whole, file_bytes,
        "the streamed file is the one built whole"
    );

    drop(store);
    let (_store, saved) = Store::open(dir.path(), &me()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        saved.restored.instances.len(),
        OWNED,
        "the file reads back whole"
    );
    assert!(
        peak_bytes <= PEAK_MAX_BYTES,
        "a compaction writing {file_bytes} B peaked at {peak_bytes} B above the settled heap \
         (bound {PEAK_MAX_BYTES} B)"
    );
}
