//! What a snapshot of the node looks like on disk: the bytes of each state file.

use std::io::Write as _;

use super::format::*;
use super::load::MEMBERS_KEPT_MAX;
use crate::names::InstanceId;
use crate::registry::{Hlc, Instance, Stored};
use crate::runtime::driver::Snapshot;

/// `instances.json`, continued by the log of `generation`, written straight into `out`: one
/// record is built and serialised at a time, so a compaction holds the writer's buffer and one
/// record, never the file: at 100,000 owned instances, 66 KB above the settled heap where
/// gathering the records and building the 60 MB text whole took 224 MB
/// (`tests/compaction_memory.rs`). Returns the bytes written.
pub fn instances(
    snapshot: &Snapshot,
    generation: u64,
    out: impl std::io::Write,
) -> std::io::Result<u64> {
    // From the ids this node owns, not a scan of the registry: at 100,000 entries the scan
    // (an owner and an id compared per entry) was most of a registration's cost (issue 17).
    let records = snapshot
        .local
        .iter()
        .filter_map(|id| owned(snapshot, id))
        .map(|(stored, i)| (i, &stored.version));
    instances_of(snapshot.name.as_str(), Some(generation), records, out)
}

/// `instances.json` of `node`'s `records` (continued by the log of `log`, if any), streamed
/// into `out` byte for byte as [`to_file_bytes`] writes an [`InstancesFile`] of them.
pub fn instances_of<'a>(
    node: &str,
    log: Option<u64>,
    records: impl Iterator<Item = (&'a Instance, &'a Hlc)>,
    out: impl std::io::Write,
) -> std::io::Result<u64> {
    let mut out = Counting {
        inner: out,
        bytes: 0,
    };
    let file = InstancesFile {
        format: FORMAT,
        node: node.to_string(),
        log,
        instances: Streamed(std::cell::Cell::new(Some(
            records.map(|(i, version)| InstanceRecord::of(i, version)),
        ))),
    };
    serde_json::to_writer_pretty(&mut out, &file).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(out.bytes)
}

/// A sequence serialised from an iterator as it is drained (once: a second serialisation
/// writes an empty one), so the records never stand together in memory.
struct Streamed<I>(std::cell::Cell<Option<I>>);

impl<I: Iterator<Item = InstanceRecord>> serde::Serialize for Streamed<I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.take().into_iter().flatten())
    }
}

/// A writer that counts what goes through it.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: std::io::Write> std::io::Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes = self.bytes.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An instance this node keeps on disk: one it owns and looks after, live, naming it.
pub fn owned<'a>(snapshot: &'a Snapshot, id: &InstanceId) -> Option<(&'a Stored, &'a Instance)> {
    if !snapshot.local.contains(id) {
        return None;
    }
    let stored = snapshot.registry.stored(id)?;
    let instance = stored.instance.as_ref()?;
    (instance.owner == snapshot.name).then_some((stored, instance))
}

/// The node's own checks, once it has had any (an empty list keeps removals on disk).
pub fn node_checks(snapshot: &Snapshot) -> Vec<u8> {
    to_file_bytes(&NodeChecksFile {
        format: FORMAT,
        checks: snapshot
            .node_checks
            .iter()
            .map(CheckStateRecord::of)
            .collect(),
    })
}

/// Names and addresses only: states change all the time, and a restarted node asks the
/// cluster for them anyway.
pub fn members(snapshot: &Snapshot) -> Vec<u8> {
    let members = snapshot
        .members
        .iter()
        .filter(|m| !m.is_self)
        .take(MEMBERS_KEPT_MAX)
        .map(|m| MemberRecord {
            name: m.name.as_str().to_string(),
            addr: m.profile.addr,
        })
        .collect();
    to_file_bytes(&MembersFile {
        format: FORMAT,
        members,
    })
}

pub fn protocol(snapshot: &Snapshot) -> Vec<u8> {
    let (clock_wall_ms, clock_counter) = snapshot.registry.clock_high_water();
    to_file_bytes(&ProtocolFile {
        format: FORMAT,
        node: snapshot.name.as_str().to_string(),
        incarnation: snapshot.incarnation,
        clock_wall_ms,
        clock_counter,
    })
}

pub fn keyring(snapshot: &Snapshot) -> Option<Vec<u8>> {
    snapshot
        .keyring
        .as_ref()
        .map(|ring| to_file_bytes(&KeyringFile::of(ring)))
}

pub fn config(overrides: &crate::runtime::overrides::Overrides) -> Vec<u8> {
    to_file_bytes(&ConfigFile {
        format: FORMAT,
        settings: overrides.as_map().clone(),
    })
}
