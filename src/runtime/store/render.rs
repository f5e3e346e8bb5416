//! What a snapshot of the node looks like on disk: the bytes of each state file.

use super::format::*;
use super::load::MEMBERS_KEPT_MAX;
use crate::names::InstanceId;
use crate::registry::{Instance, Stored};
use crate::runtime::driver::Snapshot;

/// `instances.json`, continued by the log of `generation`.
pub fn instances(snapshot: &Snapshot, generation: u64) -> Vec<u8> {
    // From the ids this node owns, not a scan of the registry: at 100,000 entries the scan
    // (an owner and an id compared per entry) was most of a registration's cost (issue 17).
    let instances = snapshot
        .local
        .iter()
        .filter_map(|id| owned(snapshot, id))
        .map(|(stored, i)| InstanceRecord::of(i, &stored.version))
        .collect();
    to_file_bytes(&InstancesFile {
        format: FORMAT,
        node: snapshot.name.as_str().to_string(),
        log: Some(generation),
        instances,
    })
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
