//! The data_dir as untrusted input (the `data_dir` fuzz target, and the seed replay in
//! `tests/fuzz_seeds.rs`): arbitrary bytes as the files a restart reads, through the real
//! loader ([`load::load`], from real files). Checked: no panic; a refusal is a corrupt file
//! that names a file of the input (and, for the log, an offset inside it); what loads holds
//! the registry's invariants, and writing it back with the writer's own encoders and loading
//! that gives the same state.
//!
//! An input is a layout byte, then the file(s) it lays out ([`layout`]):
//!
//! | first byte mod 8 | files |
//! |---|---|
//! | 0 | the rest is `instances.json` |
//! | 1 | the rest is `instances.log`, beside a valid `instances.json` it continues |
//! | 2..=6 | the rest is `keyring.json`, `members.json`, `protocol.json`, `config.json`, `checks.json` |
//! | 7 | `instances.json` (a u32 LE length, then that many bytes) and `instances.log` (the rest) |

// A fuzz harness: its job is to panic when an invariant breaks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::format::*;
use super::load::{load, MEMBERS_KEPT_MAX};
use super::{frame, render, Saved, StoreError};
use crate::names::{InstanceId, NodeName, ServiceName};
use crate::registry::{
    worst_case_entry_bytes_unlisted, CheckSpec, Hlc, Instance, InstanceSpec, SpecCheck,
    ENTRY_MAX_BYTES,
};

/// The node the inputs are loaded as (the seeds' files are written by it).
pub const ME: &str = "n1";

/// The single files of layouts 0 to 6: every file the loader reads.
const SINGLE: [&str; 7] = [
    INSTANCES_FILE,
    INSTANCES_LOG_FILE,
    KEYRING_FILE,
    MEMBERS_FILE,
    PROTOCOL_FILE,
    CONFIG_FILE,
    CHECKS_FILE,
];

/// The generation of the `instances.json` that layout 1 puts beside its log.
pub const BASE_GENERATION: u64 = 1;

/// The data_dir files `data` stands for ([`layout`] in the module doc): (name, content).
pub fn layout(data: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    match mode % 8 {
        1 => vec![
            (INSTANCES_FILE, base_instances_json()),
            (INSTANCES_LOG_FILE, rest.to_vec()),
        ],
        7 => {
            let (len, rest) = rest.split_at(rest.len().min(4));
            let mut le = [0u8; 4];
            le[..len.len()].copy_from_slice(len);
            let len = (u32::from_le_bytes(le) as usize).min(rest.len());
            let (json, log) = rest.split_at(len);
            vec![
                (INSTANCES_FILE, json.to_vec()),
                (INSTANCES_LOG_FILE, log.to_vec()),
            ]
        }
        n => vec![(SINGLE[usize::from(n)], rest.to_vec())],
    }
}

/// The input that lays out `files` (the inverse of [`layout`], for the seeds).
pub fn input_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    match files {
        [(name, bytes)] => {
            let n = SINGLE
                .iter()
                .position(|f| f == name)
                .expect("a data_dir file");
            let mut out = vec![n as u8];
            out.extend_from_slice(bytes);
            out
        }
        [(INSTANCES_FILE, json), (INSTANCES_LOG_FILE, log)] => {
            let mut out = vec![7];
            out.extend_from_slice(&(json.len() as u32).to_le_bytes());
            out.extend_from_slice(json);
            out.extend_from_slice(log);
            out
        }
        _ => panic!("no layout for these files"),
    }
}

/// Load `data`'s files as a data_dir and check what comes of it (the module doc).
pub fn check_data_dir(data: &[u8]) {
    let files = layout(data);
    if files.is_empty() {
        return;
    }
    let me = NodeName::new(ME).expect("a valid name");
    with_scratch(|dir, again| {
        dir.fill(&files);
        match load(dir.path(), &me) {
            Err(e) => check_refusal(&e, dir.path(), &files),
            Ok(saved) => {
                check_loaded(&saved, &me);
                again.fill(&rendered(&saved));
                let reloaded = load(again.path(), &me)
                    .unwrap_or_else(|e| panic!("what loaded, written back, is refused: {e}"));
                assert!(reloaded.skipped.is_empty(), "{:?}", reloaded.skipped);
                assert_same(&saved, &reloaded);
            }
        }
    });
}

/// A refusal names one of the input's files and says what is wrong, with the offset in the
/// log when it is the log.
fn check_refusal(err: &StoreError, dir: &Path, files: &[(&str, Vec<u8>)]) {
    let text = err.to_string();
    let StoreError::Corrupt { file, detail } = err else {
        panic!("a refusal other than a corrupt file: {err:?}");
    };
    assert_eq!(file.parent(), Some(dir), "{text}");
    let name = file.file_name().and_then(|n| n.to_str()).expect("a name");
    let (_, content) = files
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("{text}: not a file of the input"));
    assert!(!detail.is_empty() && text.contains(name), "{text}");
    if name == INSTANCES_LOG_FILE {
        let offset: u64 = detail
            .strip_prefix("at offset ")
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{text}: no offset"));
        assert!(
            offset < content.len() as u64 || offset == 0,
            "{text}: offset past the log's {} bytes",
            content.len()
        );
    }
}

/// What loads is within the registry's bounds: each instance owned by this node, under its own
/// id, once, within an entry's size; the members within their bound; each skipped record
/// named by where it was.
fn check_loaded(saved: &Saved, me: &NodeName) {
    let mut last: Option<&InstanceId> = None;
    for entry in &saved.restored.instances {
        let instance = entry
            .instance
            .as_ref()
            .expect("a restored instance is live");
        assert_eq!(&instance.owner, me, "{:?}", entry.id);
        assert_eq!(instance.id, entry.id);
        let bytes = worst_case_entry_bytes_unlisted(instance);
        assert!(bytes <= ENTRY_MAX_BYTES, "{:?}: {bytes} B", entry.id);
        if let Some(last) = last {
            assert!(
                last.as_str() < entry.id.as_str(),
                "{last:?} then {:?}",
                entry.id
            );
        }
        last = Some(&entry.id);
    }
    assert!(saved.members.len() <= MEMBERS_KEPT_MAX);
    for why in &saved.skipped {
        let named = (why.contains("record ")
            && (why.contains(INSTANCES_FILE) || why.contains(INSTANCES_LOG_FILE)))
            || (why.starts_with("check ") && why.contains(CHECKS_FILE));
        assert!(named, "a skipped record not named by where it was: {why}");
    }
}

/// `saved` written back as the writer writes each file.
fn rendered(saved: &Saved) -> Vec<(&'static str, Vec<u8>)> {
    let restored = &saved.restored;
    let mut instances = Vec::new();
    let generation = (saved.log_generation != 0).then_some(saved.log_generation);
    let records = restored.instances.iter().filter_map(|entry| {
        let instance = entry.instance.as_deref()?;
        Some((instance, &entry.version))
    });
    render::instances_of(ME, generation, records, &mut instances).expect("written to memory");
    let mut files = vec![(INSTANCES_FILE, instances)];
    files.push((
        PROTOCOL_FILE,
        to_file_bytes(&ProtocolFile {
            format: FORMAT,
            node: ME.to_string(),
            incarnation: restored.incarnation.get(),
            clock_wall_ms: restored.clock.0,
            clock_counter: restored.clock.1,
        }),
    ));
    files.push((
        MEMBERS_FILE,
        to_file_bytes(&MembersFile {
            format: FORMAT,
            members: (saved.members.iter().enumerate())
                .map(|(n, addr)| MemberRecord {
                    name: format!("m{n}"),
                    addr: *addr,
                })
                .collect(),
        }),
    ));
    if let Some(ring) = &saved.keyring {
        files.push((KEYRING_FILE, to_file_bytes(&KeyringFile::of(ring))));
    }
    if let Some(settings) = &saved.config {
        files.push((
            CONFIG_FILE,
            to_file_bytes(&ConfigFile {
                format: FORMAT,
                settings: settings.clone(),
            }),
        ));
    }
    if !restored.node_checks.is_empty() {
        files.push((
            CHECKS_FILE,
            to_file_bytes(&NodeChecksFile {
                format: FORMAT,
                checks: restored
                    .node_checks
                    .iter()
                    .map(CheckStateRecord::of)
                    .collect(),
            }),
        ));
    }
    files
}

fn assert_same(first: &Saved, again: &Saved) {
    let (a, b) = (&first.restored, &again.restored);
    assert_eq!(
        a.instances, b.instances,
        "instances differ once written back"
    );
    assert_eq!(a.incarnation, b.incarnation);
    assert_eq!(a.clock, b.clock);
    assert_eq!(
        a.node_checks, b.node_checks,
        "node checks differ once written back"
    );
    assert_eq!(first.keyring, again.keyring);
    assert_eq!(first.config, again.config);
    assert_eq!(first.members, again.members);
    assert_eq!(first.log_generation, again.log_generation);
}

/// A directory of this process and thread, reused by every input (creating one per input
/// would cost the fuzzer more than the load), removed when the thread ends.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("hera-fuzz-data-dir-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("a scratch directory");
        Scratch { path }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Make the directory hold `files` and nothing else the loader reads.
    fn fill(&self, files: &[(&str, Vec<u8>)]) {
        for name in SINGLE {
            match std::fs::remove_file(self.path.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        for (name, bytes) in files {
            std::fs::write(self.path.join(name), bytes).expect("a scratch file");
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// This thread's two scratch directories: the input's, and the one it is written back to.
fn with_scratch<T>(f: impl FnOnce(&Scratch, &Scratch) -> T) -> T {
    thread_local! {
        static SCRATCH: (Scratch, Scratch) = (Scratch::new(), Scratch::new());
    }
    SCRATCH.with(|(first, second)| f(first, second))
}

/// Instances as clients register them, each with its version: the seeds' content.
pub fn sample_instances() -> Vec<(Instance, Hlc)> {
    let me = NodeName::new(ME).expect("a valid name");
    (0..3)
        .map(|k| {
            let service = ServiceName::new(["web", "db", "cache"][k]).expect("a valid name");
            let mut spec = InstanceSpec::new(service, &format!("10.0.0.{k}"), 8080);
            let id = InstanceId::new(&format!("i-{k}")).expect("a valid id");
            spec.id = Some(id.clone());
            spec.tags = vec!["v2".into()];
            spec.meta = [("zone".to_string(), "a".to_string())].into();
            spec.check = match k {
                0 => SpecCheck::Ttl {
                    ttl: std::time::Duration::from_secs(30),
                },
                1 => SpecCheck::Http {
                    url: "http://10.0.0.1:8080/health".into(),
                    interval: std::time::Duration::from_secs(10),
                    timeout: std::time::Duration::from_secs(2),
                },
                _ => SpecCheck::None,
            };
            if k == 2 {
                spec.checks = vec![
                    CheckSpec {
                        id: Some("tcp".into()),
                        name: "port".into(),
                        notes: String::new(),
                        kind: SpecCheck::Tcp {
                            address: "10.0.0.2:8080".into(),
                            interval: std::time::Duration::from_secs(5),
                            timeout: std::time::Duration::from_secs(1),
                        },
                        deregister_critical_after: None,
                    },
                    CheckSpec {
                        id: Some("ttl".into()),
                        name: "heartbeat".into(),
                        notes: "renewed by the app".into(),
                        kind: SpecCheck::Ttl {
                            ttl: std::time::Duration::from_secs(60),
                        },
                        deregister_critical_after: Some(std::time::Duration::from_secs(600)),
                    },
                ];
            }
            let instance = spec
                .into_instance(id, me.clone(), 1_700_000_000_000)
                .expect("a valid instance");
            let version = Hlc {
                wall_ms: 1_700_000_000_000 + k as u64,
                counter: k as u32,
                node: me.clone(),
            };
            (instance, version)
        })
        .collect()
}

/// `instances.json` of [`sample_instances`], as a compaction writes it.
pub fn instances_json(node: &str, log: Option<u64>) -> Vec<u8> {
    let instances = sample_instances();
    let mut out = Vec::new();
    render::instances_of(node, log, instances.iter().map(|(i, v)| (i, v)), &mut out)
        .expect("written to memory");
    out
}

/// The `instances.json` layout 1 puts beside its log.
fn base_instances_json() -> Vec<u8> {
    thread_local! {
        static BASE: Vec<u8> = instances_json(ME, Some(BASE_GENERATION));
    }
    BASE.with(Clone::clone)
}

/// `instances.log` as the writer appends it: its header, then each record framed.
pub fn instances_log(header: &LogHeader, records: &[LogRecord<InstanceRecord>]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(frame::push(
        &serde_json::to_vec(header).expect("json"),
        &mut out
    ));
    for record in records {
        assert!(frame::push(
            &serde_json::to_vec(record).expect("json"),
            &mut out
        ));
    }
    out
}

/// The log header of `generation`, as the writer writes it.
pub fn log_header(generation: u64) -> LogHeader {
    LogHeader {
        format: FORMAT,
        node: ME.to_string(),
        generation,
    }
}
