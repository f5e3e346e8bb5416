//! What the driver publishes for readers (HTTP, CLI, metrics): a consistent copy of the node's
//! views, replaced whenever the node's state changes. Readers never lock the node.

use std::net::SocketAddr;

use crate::config::Config;
use crate::names::{InstanceId, NodeName};
use crate::node::{Lifecycle, MemberView, Node, OwnedChanges, Quorum};
use crate::registry::{Instance, Registry};
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::Keyring;

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: NodeName,
    pub addr: SocketAddr,
    pub incarnation: u32,
    pub lifecycle: Lifecycle,
    /// The live member holding this node's name, if a seed's table showed one: the node
    /// refused to join and stopped (`Event::NameTaken`).
    pub name_taken_by: Option<SocketAddr>,
    /// This node first, then the others by name.
    pub members: Vec<MemberView>,
    pub quorum: Quorum,
    pub stats: Stats,
    pub health_score: u32,
    pub queue_depth: usize,
    /// The node's change counter when this was taken.
    pub version: u64,
    pub taken_at: Instant,
    pub started: Instant,
    /// The registry (entries are shared, so this copy is cheap).
    pub registry: Registry,
    /// Instances this node owns and looks after: registered through its API or restored from
    /// its own data_dir (what it persists, and what its agent endpoints list). Persistent:
    /// shared with the node's own set, not copied per snapshot (issue 17).
    pub local: imbl::OrdSet<InstanceId>,
    /// The changes to `local` and to its instances' records, in order: the store's group
    /// commit reads those since its last snapshot here (O(change), issue 17). Shared, O(1).
    pub owned_changes: OwnedChanges,
    /// Why this node is in maintenance (Consul's `_node_maintenance` check), if it is.
    pub node_maintenance: Option<String>,
    /// The node's own checks (Consul's checks without a `ServiceID`).
    pub node_checks: Vec<crate::registry::CheckState>,
    /// The protocol timings in force (they change at runtime with `Command::Configure`).
    pub config: Config,
    /// The gossip keyring, if gossip is encrypted (kept on disk by `runtime::store`).
    pub keyring: Option<Keyring>,
}

impl Snapshot {
    /// Kept only for want of quorum: its owner is failed or gone (`Node::is_stale`). Looked
    /// up per owner in `members` (sorted by name after this node), not kept as a set of stale
    /// instances: that cost a scan of the whole registry at every change (issue 17).
    pub fn is_stale(&self, i: &Instance) -> bool {
        if i.owner == self.name {
            return false;
        }
        let others = self.members.get(1..).unwrap_or_default();
        match others.binary_search_by(|m| m.name.cmp(&i.owner)) {
            Ok(at) => !others[at].state.is_live(),
            Err(_) => true,
        }
    }

    pub fn of(node: &Node, now: Instant) -> Snapshot {
        Snapshot {
            name: node.name().clone(),
            addr: node.profile().addr,
            incarnation: node.incarnation().get(),
            name_taken_by: node.name_taken_by(),
            lifecycle: node.lifecycle(),
            members: node.member_views(),
            quorum: node.quorum(),
            stats: node.stats().clone(),
            health_score: node.health_score(),
            queue_depth: node.queue_depth(),
            version: node.version(),
            taken_at: now,
            started: node.started(),
            registry: node.registry().clone(),
            local: node.local_instances().clone(),
            owned_changes: node.owned_changes().clone(),
            node_maintenance: node.node_maintenance().map(str::to_string),
            node_checks: node.node_checks().cloned().collect(),
            config: node.config().clone(),
            keyring: node.keyring().cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::names::{Label, ServiceName};
    use crate::node::Identity;
    use crate::registry::InstanceSpec;
    use crate::swim::State;

    fn owned_by(owner: &str) -> Instance {
        let spec = InstanceSpec::new(ServiceName::new("web").unwrap(), "10.0.0.1", 80);
        spec.into_instance(
            InstanceId::new("web-1").unwrap(),
            NodeName::new(owner).unwrap(),
            1,
        )
        .unwrap()
    }

    /// A lone node, n0, and the instant it started.
    fn node_n0() -> (Node, Instant) {
        let epoch = Instant::from_micros(1_700_000_000_000_000);
        let identity = Identity {
            name: NodeName::new("n0").unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
            dc: Label::new("dc1").unwrap(),
            tags: Vec::new(),
        };
        (Node::new(Config::local(), identity, 1, epoch), epoch)
    }

    /// The owned ids are shared with the node, not copied: a snapshot per change cost a copy
    /// of every owned id (issue 17).
    #[test]
    fn a_snapshot_shares_the_owned_ids_with_the_node() {
        let (mut node, epoch) = node_n0();
        for n in 0..1_000 {
            let mut spec = InstanceSpec::new(ServiceName::new("web").unwrap(), "10.0.0.1", 80);
            spec.id = Some(InstanceId::new(&format!("web-{n}")).unwrap());
            node.handle_command(epoch, crate::node::Command::Register(spec))
                .unwrap();
        }
        let first = Snapshot::of(&node, epoch);
        let second = Snapshot::of(&node, epoch);
        assert_eq!(first.local.len(), 1_000);
        assert!(first.local.ptr_eq(&second.local));
        assert!(first.local.ptr_eq(node.local_instances()));
    }

    /// The same rule as `Node::is_stale`, from the published members: an instance is stale
    /// when its owner is neither this node nor a live (alive or suspect) member.
    #[test]
    fn an_instance_is_stale_when_its_owner_is_not_a_live_member() {
        let (node, epoch) = node_n0();
        let mut s = Snapshot::of(&node, epoch);
        let me = s.members[0].clone();
        for (name, state) in [
            ("a-failed", State::Failed),
            ("b-alive", State::Alive),
            ("c-left", State::Left),
            ("d-suspect", State::Suspect),
        ] {
            s.members.push(MemberView {
                name: NodeName::new(name).unwrap(),
                state,
                is_self: false,
                ..me.clone()
            });
        }
        assert!(!s.is_stale(&owned_by("n0")), "this node's own");
        assert!(!s.is_stale(&owned_by("b-alive")));
        assert!(!s.is_stale(&owned_by("d-suspect")));
        assert!(s.is_stale(&owned_by("a-failed")));
        assert!(s.is_stale(&owned_by("c-left")));
        assert!(s.is_stale(&owned_by("e-never-seen")));
    }
}
