//! The heap a restart takes to read a large data_dir (issue 17): the peak while `Store::open`
//! reads an `instances.json` of 20,000 owned instances, against the file's size.
//!
//! Run it alone to read the figures (release: the load time is printed too):
//!
//! ```text
//! cargo test --release --test restore_memory -- --nocapture
//! ```
//!
//! A counting global allocator sees every allocation of the test binary, which is why this
//! lives in its own integration-test binary. Counting is per thread (`Store::open` reads on the
//! calling thread), so the harness's other threads do not disturb the measurement. It counts
//! bytes requested, not the system allocator's rounding.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hera::names::{InstanceId, NodeName, ServiceName};
use hera::registry::{Hlc, InstanceSpec, SpecCheck};
use hera::runtime::store::format::{to_file_bytes, InstanceRecord, InstancesFile, FORMAT};
use hera::runtime::store::Store;

/// Owned instances in the data_dir: the per-node figure the README measures.
const OWNED: usize = 20_000;

/// The most a load may hold at its peak, as a multiple of `instances.json`'s size, counting
/// the restored instances it returns. Measured (release, 20,000 instances of ~600 B, 4 Dec
/// 2026): 15.7× before the load parsed the file in one pass straight into typed records (the
/// whole text, then a `serde_json::Value` tree of it, twice, then one tree per record kept
/// until the log was replayed), 1.40× after: 1.04× is the restored instances themselves,
/// returned to the caller, and 0.36× the map by id they are gathered in while the log is
/// replayed. The bound leaves room for instances that grow by a field or two; the old load
/// fails it eight times over.
const PEAK_PER_FILE_BYTE_MAX: f64 = 2.0;

#[path = "support/peak_alloc.rs"]
mod peak_alloc;
use peak_alloc::{peak, PeakCounting};

#[global_allocator]
static ALLOCATOR: PeakCounting = PeakCounting;

fn me() -> NodeName {
    NodeName::new("node-0").expect("valid name")
}

/// An instance as a client registers one: a service among 100, two tags, one meta pair, an
/// HTTP check (~500 bytes of pretty JSON, as issue 17 measured the records).
fn record_of(k: usize) -> InstanceRecord {
    let service = ServiceName::new(&format!("svc-{:03}", k % 100)).expect("valid service");
    let mut spec = InstanceSpec::new(
        service,
        &format!("10.1.{}.{}", k / 256 % 256, k % 256),
        8080,
    );
    let id = InstanceId::new(&format!("i-{k:06}")).expect("valid id");
    spec.id = Some(id.clone());
    spec.tags = vec!["v2".into(), "primary".into()];
    spec.meta = BTreeMap::from([("version".to_string(), "1.2.3".to_string())]);
    spec.check = SpecCheck::Http {
        url: format!("http://10.1.{}.{}:8080/health", k / 256 % 256, k % 256),
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(2),
    };
    let instance = spec
        .into_instance(id, me(), 1_700_000_000_000)
        .expect("a valid instance");
    let version = Hlc {
        wall_ms: 1_700_000_000_000 + k as u64,
        counter: 0,
        node: me(),
    };
    InstanceRecord::of(&instance, &version)
}

#[test]
fn a_restart_reads_instances_json_within_a_small_multiple_of_its_size() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = to_file_bytes(&InstancesFile {
        format: FORMAT,
        node: me().as_str().to_string(),
        log: None,
        instances: (0..OWNED).map(record_of).collect::<Vec<_>>(),
    });
    std::fs::write(dir.path().join("instances.json"), &file).expect("written");
    let file_bytes = file.len();
    drop(file);

    #[allow(clippy::disallowed_methods)] // the load's wall time is printed, never asserted
    let began = Instant::now();
    let (opened, peak_bytes, held_bytes) = peak(|| Store::open(dir.path(), &me()));
    let took = began.elapsed();
    let (store, saved) = opened.expect("the data_dir loads");
    assert_eq!(saved.restored.instances.len(), OWNED);
    assert!(saved.skipped.is_empty(), "{:?}", saved.skipped);

    let per_file_byte = peak_bytes as f64 / file_bytes as f64;
    println!(
        "instances.json of {OWNED} instances: {file_bytes} B ({} B each); load peak {peak_bytes} \
         B ({per_file_byte:.2}x the file, {} B per instance), {held_bytes} B held after \
         ({:.2}x); {:.1} ms",
        file_bytes / OWNED,
        peak_bytes / OWNED,
        held_bytes as f64 / file_bytes as f64,
        took.as_secs_f64() * 1e3,
    );
    assert!(
        per_file_byte <= PEAK_PER_FILE_BYTE_MAX,
        "a load of {file_bytes} B peaked at {peak_bytes} B ({per_file_byte:.2}x the file, \
         bound {PEAK_PER_FILE_BYTE_MAX}x)"
    );
    drop((store, saved));
}
