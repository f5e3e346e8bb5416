//! What the driver publishes for readers (HTTP, CLI, metrics): a consistent copy of the node's
//! views, replaced whenever the node's state changes. Readers never lock the node.

use std::net::SocketAddr;

use std::collections::BTreeSet;

use crate::config::Config;
use crate::names::{InstanceId, NodeName};
use crate::node::{Lifecycle, MemberView, Node, Quorum};
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
    /// its own data_dir (what it persists, and what its agent endpoints list).
    pub local: BTreeSet<InstanceId>,
    /// Why this node is in maintenance (Consul's `_node_maintenance` check), if it is.
    pub node_maintenance: Option<String>,
    /// The node's own checks (Consul's checks without a `ServiceID`).
    pub node_checks: Vec<crate::registry::CheckState>,
    /// Live members, this node left out: an instance whose owner is neither this node nor one
    /// of them is stale (kept only for want of quorum). Kept per owner, not per instance: a
    /// set of every stale instance cost a scan of the whole registry at every change and once
    /// a second idle (issue 17: 100,000 entries made that the node's main cost).
    pub live: BTreeSet<NodeName>,
    /// The protocol timings in force (they change at runtime with `Command::Configure`).
    pub config: Config,
    /// The gossip keyring, if gossip is encrypted (kept on disk by `runtime::store`).
    pub keyring: Option<Keyring>,
}

impl Snapshot {
    /// Kept only for want of quorum: its owner is failed or gone (`Node::is_stale`).
    pub fn is_stale(&self, i: &Instance) -> bool {
        i.owner != self.name && !self.live.contains(&i.owner)
    }

    pub fn of(node: &Node, now: Instant) -> Snapshot {
        Snapshot {
            name: node.name().clone(),
            addr: node.profile().addr,
            incarnation: node.incarnation(),
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
            local: node.local_instances().cloned().collect(),
            node_maintenance: node.node_maintenance().map(str::to_string),
            node_checks: node.node_checks().cloned().collect(),
            live: node
                .member_views()
                .into_iter()
                .filter(|m| !m.is_self && m.state.is_live())
                .map(|m| m.name)
                .collect(),
            config: node.config().clone(),
            keyring: node.keyring().cloned(),
        }
    }
}
