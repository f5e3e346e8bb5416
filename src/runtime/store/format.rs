//! The files of a data directory and their format: pretty-printed JSON, one file per concern,
//! so an operator can read, diff and back them up with ordinary tools. Each file says which
//! format it is in; a hera that does not know that format refuses it rather than guess.
//!
//! | file | what |
//! |---|---|
//! | `instances.json` | the instances registered with this node, with their check state, as of the last compaction |
//! | `instances.log` | the changes to them since, appended ([`LogRecord`], framed by `frame`) |
//! | `keyring.json` | the gossip keyring, once changed at run time (primary first) |
//! | `members.json` | the members this node knew, to rejoin without `join` |
//! | `protocol.json` | the incarnation and registry clock floors |
//! | `config.json` | configuration changed at run time (`PUT /v1/hera/config`), once changed |
//! | `checks.json` | the node's own checks (Consul's checks without a `ServiceID`), once any |
//!
//! Instances with several checks (issue 18) list them in `checks`, an optional field: files
//! written before it are read unchanged, in the same format.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::names::{InstanceId, NodeName, ServiceName};
use crate::registry::{
    clip, fit_texts, Check, CheckSpec, CheckState, Entry, Health, Hlc, Instance, InstanceSpec,
    SpecCheck,
};
use crate::runtime::settings::{format_key, parse_key};
use crate::wire::{Key, Keyring};

/// The one format this hera writes and reads.
pub const FORMAT: u32 = 1;

pub const INSTANCES_FILE: &str = "instances.json";
pub const INSTANCES_LOG_FILE: &str = "instances.log";
pub const KEYRING_FILE: &str = "keyring.json";
pub const MEMBERS_FILE: &str = "members.json";
pub const PROTOCOL_FILE: &str = "protocol.json";
pub const CONFIG_FILE: &str = "config.json";
pub const CHECKS_FILE: &str = "checks.json";

/// The most a state file other than the instances' may hold. The largest, `members.json`, is
/// [`MEMBERS_KEPT_MAX`](super::load::MEMBERS_KEPT_MAX) = 512 records of a name (at most 64
/// bytes, up to six-fold when JSON escapes it) and an address: under 256 KiB. The others are
/// smaller still: five keys, sixteen node checks, a few counters, a few settings.
pub const STATE_FILE_MAX_BYTES: u64 = 1 << 20;

/// The most `instances.json` may hold. The registry bounds each instance (`ENTRY_MAX_BYTES`)
/// but not how many a node owns, so this is a choice: a record takes ~500 B (4.3 MB at 8,800
/// owned, issue 17), so 256 MiB holds ~500,000 owned instances, 25 times the 20,000 per node
/// the README measures, and more than a node holds comfortably in memory (~500 B each in the
/// registry, and ~1.4 times the file while a restart reads it, `tests/restore_memory.rs`). The
/// writer warns when it writes a larger one, since a restart would refuse it.
pub const INSTANCES_FILE_MAX_BYTES: u64 = 256 << 20;

/// The most `instances.log` may hold: the writer compacts it once it outgrows
/// [`COMPACT_RATIO`](super::instances::COMPACT_RATIO) times the snapshot, so it is at most that
/// much plus the commit that crossed the bound (at most every owned instance once more).
pub const INSTANCES_LOG_MAX_BYTES: u64 =
    (super::instances::COMPACT_RATIO + 1) * INSTANCES_FILE_MAX_BYTES;

/// The most the state file `name` may hold; a larger one is refused unread.
pub fn file_max_bytes(name: &str) -> u64 {
    match name {
        INSTANCES_FILE => INSTANCES_FILE_MAX_BYTES,
        INSTANCES_LOG_FILE => INSTANCES_LOG_MAX_BYTES,
        _ => STATE_FILE_MAX_BYTES,
    }
}

/// `instances.json`. Records are read one by one, so one bad record is skipped (with a
/// warning naming it) without losing the others. `S` is the sequence of records: a `Vec` to
/// build one whole, or one streamed from an iterator as it is written (the compaction's).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstancesFile<S> {
    pub format: u32,
    /// The node that wrote the file: its instances name it as their owner.
    pub node: String,
    /// The generation of the `instances.log` that continues this file. Absent in files
    /// written before the log (no log then); a log of another generation is stale (a crash
    /// between a compaction's two renames) and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<u64>,
    pub instances: S,
}

/// The first record of `instances.log`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogHeader {
    pub format: u32,
    pub node: String,
    /// Equal to the `log` of the `instances.json` this log continues.
    pub generation: u64,
}

/// One change in `instances.log`, applied in order over `instances.json`: `{"put": {...}}`
/// (an [`InstanceRecord`], registered or changed) or `{"del": "id"}` (no longer ours).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum LogRecord<R> {
    Put(R),
    Del(String),
}

/// One instance registered with this node, as it stood at its last write.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceRecord {
    pub id: String,
    pub service: String,
    pub address: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// The seed API's JSON object, as the client sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub check: CheckRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_critical_after_ms: Option<u64>,
    /// passing, warning or critical.
    pub health: String,
    #[serde(default)]
    pub output: String,
    pub health_since_ms: u64,
    pub online: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_reason: Option<String>,
    pub version: VersionRecord,
    /// Every check, when the instance has several (or ids of its own); `check` is then none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckStateRecord>,
}

/// One check of several, or one of the node's own.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckStateRecord {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub notes: String,
    pub check: CheckRecord,
    /// passing, warning or critical.
    pub status: String,
    #[serde(default)]
    pub output: String,
    pub since_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_critical_after_ms: Option<u64>,
}

/// `checks.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeChecksFile {
    pub format: u32,
    pub checks: Vec<CheckStateRecord>,
}

fn health_of(text: &str) -> Result<Health, String> {
    match text {
        "passing" => Ok(Health::Passing),
        "warning" => Ok(Health::Warning),
        "critical" => Ok(Health::Critical),
        other => Err(format!(
            "health {other:?} is not passing, warning or critical"
        )),
    }
}

impl CheckRecord {
    fn of(check: &Check) -> CheckRecord {
        match check {
            Check::None => CheckRecord::None,
            Check::Ttl { ttl_ms } => CheckRecord::Ttl { ttl_ms: *ttl_ms },
            Check::Http(h) => CheckRecord::Http {
                url: h.url.0.clone(),
                interval_ms: h.interval_ms,
                timeout_ms: h.timeout_ms,
            },
            Check::Tcp(t) => CheckRecord::Tcp {
                address: t.address.0.clone(),
                interval_ms: t.interval_ms,
                timeout_ms: t.timeout_ms,
            },
            Check::Request(r) => CheckRecord::Request {
                url: r.url.0.clone(),
                method: r.method.0.clone(),
                headers: r
                    .headers
                    .0
                    .iter()
                    .map(|h| (h.key.0.clone(), h.value.0.clone()))
                    .collect(),
                interval_ms: r.interval_ms,
                timeout_ms: r.timeout_ms,
            },
        }
    }

    fn into_spec(self) -> SpecCheck {
        let ms = Duration::from_millis;
        match self {
            CheckRecord::None => SpecCheck::None,
            CheckRecord::Ttl { ttl_ms } => SpecCheck::Ttl { ttl: ms(ttl_ms) },
            CheckRecord::Http {
                url,
                interval_ms,
                timeout_ms,
            } => SpecCheck::Http {
                url,
                interval: ms(interval_ms),
                timeout: ms(timeout_ms),
            },
            CheckRecord::Tcp {
                address,
                interval_ms,
                timeout_ms,
            } => SpecCheck::Tcp {
                address,
                interval: ms(interval_ms),
                timeout: ms(timeout_ms),
            },
            CheckRecord::Request {
                url,
                method,
                headers,
                interval_ms,
                timeout_ms,
            } => SpecCheck::Request {
                url,
                method,
                headers,
                interval: ms(interval_ms),
                timeout: ms(timeout_ms),
            },
        }
    }
}

impl CheckStateRecord {
    pub fn of(state: &CheckState) -> CheckStateRecord {
        CheckStateRecord {
            id: state.id.0.clone(),
            name: state.name.0.clone(),
            notes: state.notes.0.clone(),
            check: CheckRecord::of(&state.check),
            status: state.status.as_str().to_string(),
            output: state.output.0.clone(),
            since_ms: state.since_ms,
            deregister_critical_after_ms: state.deregister_critical_after_ms,
        }
    }

    /// The registration this record was made from, and the state to put back over it.
    fn into_spec(self) -> Result<(CheckSpec, Health, String, u64), String> {
        let status = health_of(&self.status)?;
        Ok((
            CheckSpec {
                id: Some(self.id),
                name: self.name,
                notes: self.notes,
                kind: self.check.into_spec(),
                deregister_critical_after: self
                    .deregister_critical_after_ms
                    .map(Duration::from_millis),
            },
            status,
            self.output,
            self.since_ms,
        ))
    }

    /// A node check as saved, held to the rules a registration is.
    pub fn into_state(self, owner: &NodeName) -> Result<CheckState, String> {
        let (spec, status, output, since_ms) = self.into_spec()?;
        let mut probe =
            InstanceSpec::new(ServiceName::new("check").map_err(|e| e.to_string())?, "", 0);
        probe.checks = vec![spec];
        let id = InstanceId::new("check").map_err(|e| e.to_string())?;
        let instance = probe
            .into_instance(id, owner.clone(), since_ms)
            .map_err(|e| e.to_string())?;
        let mut state = instance.checks().into_iter().next().ok_or("no check")?;
        state.status = status;
        state.output = clip(&output, usize::MAX);
        state.since_ms = since_ms;
        Ok(state)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum CheckRecord {
    None,
    Ttl {
        ttl_ms: u64,
    },
    Http {
        url: String,
        interval_ms: u64,
        timeout_ms: u64,
    },
    Tcp {
        address: String,
        interval_ms: u64,
        timeout_ms: u64,
    },
    Request {
        url: String,
        method: String,
        headers: Vec<(String, String)>,
        interval_ms: u64,
        timeout_ms: u64,
    },
}

/// A registry version (hybrid logical clock).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRecord {
    pub wall_ms: u64,
    pub counter: u32,
    /// The node that wrote the version.
    pub node: String,
}

/// `keyring.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringFile {
    pub format: u32,
    /// Every key, base64, the primary (the one datagrams are sealed with) first.
    pub keys: Vec<String>,
}

/// `members.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersFile {
    pub format: u32,
    pub members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRecord {
    pub name: String,
    pub addr: SocketAddr,
}

/// `config.json`: each knob changed at run time, by its JSON API name, with the value it was
/// given (`{"ProbeInterval": "2s"}`). Applied over the config file at start.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub format: u32,
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// `protocol.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolFile {
    pub format: u32,
    pub node: String,
    /// The incarnation last announced; the node restarts one above it.
    pub incarnation: u32,
    /// The registry clock's high-water mark; writes after a restart are versioned above it.
    pub clock_wall_ms: u64,
    pub clock_counter: u32,
}

impl InstanceRecord {
    pub fn of(instance: &Instance, version: &Hlc) -> InstanceRecord {
        let check = CheckRecord::of(&instance.check);
        let checks = match &instance.checks.0 {
            Some(list) => list.0.iter().map(CheckStateRecord::of).collect(),
            None => Vec::new(),
        };
        InstanceRecord {
            id: instance.id.as_str().to_string(),
            service: instance.service.as_str().to_string(),
            address: instance.address.0.clone(),
            port: instance.port,
            tags: instance.tags().map(str::to_string).collect(),
            meta: instance
                .meta()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: instance.body.as_ref().map(|b| b.0.clone()),
            check,
            liveness_ms: instance.liveness_ms,
            deregister_critical_after_ms: instance.deregister_critical_after_ms,
            health: instance.health.as_str().to_string(),
            output: instance.output.0.clone(),
            health_since_ms: instance.health_since_ms,
            online: instance.online,
            maintenance_reason: instance.maintenance_reason.as_ref().map(|r| r.0.clone()),
            version: VersionRecord {
                wall_ms: version.wall_ms,
                counter: version.counter,
                node: version.node.as_str().to_string(),
            },
            checks,
        }
    }

    /// The entry this record stands for, owned by `owner`, checked against every limit a
    /// registration is (the same checks, so a hand-edited file cannot smuggle in more).
    pub fn into_entry(self, owner: &NodeName) -> Result<Entry, String> {
        let service = ServiceName::new(&self.service)
            .map_err(|e| format!("service {:?}: {e}", self.service))?;
        let id = InstanceId::new(&self.id).map_err(|e| format!("id {:?}: {e}", self.id))?;
        let check = self.check.into_spec();
        let mut states = Vec::new();
        let mut specs = Vec::new();
        for record in self.checks {
            let (spec, status, output, since_ms) = record.into_spec()?;
            specs.push(spec);
            states.push((status, output, since_ms));
        }
        let spec = InstanceSpec {
            service,
            id: Some(id.clone()),
            address: self.address,
            port: self.port,
            tags: self.tags,
            meta: self.meta,
            body: self.body,
            check,
            liveness: self.liveness_ms.map(Duration::from_millis),
            deregister_critical_after: self.deregister_critical_after_ms.map(Duration::from_millis),
            checks: specs,
        };
        let mut instance = spec
            .into_restored_instance(id.clone(), owner.clone(), self.health_since_ms)
            .map_err(|e| e.to_string())?;
        if states.is_empty() {
            instance.health = health_of(&self.health)?;
            instance.output = clip(&self.output, usize::MAX);
        } else {
            // Each check's own state; the instance's is theirs and the node's checks', which
            // the restore applies again.
            let mut checks = instance.checks();
            for (check, (status, output, since_ms)) in checks.iter_mut().zip(states) {
                check.status = status;
                check.output = clip(&output, usize::MAX);
                check.since_ms = since_ms;
            }
            instance.set_checks(checks, None, self.health_since_ms);
            health_of(&self.health)?;
        }
        instance.online = self.online;
        instance.maintenance_reason = self.maintenance_reason.map(|r| clip(&r, usize::MAX));
        fit_texts(&mut instance);
        let node = NodeName::new(&self.version.node)
            .map_err(|e| format!("version node {:?}: {e}", self.version.node))?;
        Ok(Entry {
            id,
            version: Hlc {
                wall_ms: self.version.wall_ms,
                counter: self.version.counter,
                node,
            },
            instance: Some(Box::new(instance)),
        })
    }
}

impl KeyringFile {
    pub fn of(keyring: &Keyring) -> KeyringFile {
        KeyringFile {
            format: FORMAT,
            keys: keyring.keys().iter().map(format_key).collect(),
        }
    }

    pub fn into_keyring(self) -> Result<Keyring, String> {
        let keys = self
            .keys
            .iter()
            .enumerate()
            .map(|(n, text)| parse_key(text).map_err(|e| format!("key {}: {e}", n + 1)))
            .collect::<Result<Vec<Key>, String>>()?;
        let mut keys = keys.into_iter();
        let primary = keys
            .next()
            .ok_or("no key: the primary must be listed first")?;
        let mut ring = Keyring::new(primary);
        for key in keys {
            ring.install(key).map_err(|e| e.to_string())?;
        }
        Ok(ring)
    }
}

/// Serialise for a file: pretty JSON and a final newline, for people and `diff`.
pub fn to_file_bytes(value: &impl Serialize) -> Vec<u8> {
    // Serialising these plain structs cannot fail (no maps with non-string keys).
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
