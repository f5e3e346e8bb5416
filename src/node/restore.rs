//! Coming back after a restart: the instances this node owned and the floors its protocol
//! state must start above, as the shell kept them (`runtime::store`).

use super::{Node, Reply};
use crate::registry::Entry;
use crate::time::Instant;
use crate::wire::Incarnation;

/// What a node kept of itself across a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restored {
    /// Instances this node owned, each at the version it last wrote. Restored at that version,
    /// not re-written: a newer copy in the cluster (a deregistration through another node, a
    /// renewal that moved ownership) wins when anti-entropy brings it.
    pub instances: Vec<Entry>,
    /// The incarnation this node last announced. Peers may hold it failed or left at that
    /// incarnation; it comes back one above, so its first alive claim supersedes theirs.
    pub incarnation: Incarnation,
    /// The registry clock's high-water mark (wall ms, counter): writes after the restart are
    /// versioned above every version issued before it, even if the wall clock went back.
    pub clock: (u64, u32),
    /// The node's own checks (Consul's checks without a `ServiceID`), as last saved.
    pub node_checks: Vec<crate::registry::CheckState>,
}

impl Node {
    pub(super) fn restore(&mut self, now: Instant, restored: Restored) -> Reply {
        let membership = &mut self.membership;
        membership.incarnation = membership.incarnation.later(restored.incarnation.next());
        self.catalog
            .restore(&mut self.io, now, restored.clock, restored.instances);
        self.catalog
            .restore_node_checks(&mut self.io, now, restored.node_checks);
        self.io.changed();
        Reply::Done
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::names::{Label, NodeName, ServiceName};
    use crate::node::{Command, Identity};
    use crate::registry::{Health, Hlc, InstanceSpec, SpecCheck};

    fn node(name: &str, now: Instant) -> Node {
        let identity = Identity {
            name: NodeName::new(name).unwrap(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            dc: Label::new("dc1").unwrap(),
            tags: Vec::new(),
        };
        Node::new(Config::local(), identity, 7, now)
    }

    fn saved(id: &str, owner: &str, wall_ms: u64) -> Entry {
        let mut spec = InstanceSpec::new(ServiceName::new("web").unwrap(), "10.0.0.1", 80);
        spec.check = SpecCheck::Ttl {
            ttl: Duration::from_secs(10),
        };
        let id = crate::names::InstanceId::new(id).unwrap();
        let owner = NodeName::new(owner).unwrap();
        let mut instance = spec.into_instance(id.clone(), owner.clone(), 0).unwrap();
        instance.health = Health::Passing;
        Entry {
            id,
            version: Hlc {
                wall_ms,
                counter: 0,
                node: owner,
            },
            instance: Some(Box::new(instance)),
        }
    }

    #[test]
    fn own_instances_come_back_at_their_versions_with_ttls_rearmed_from_the_restart() {
        let start = Instant::from_micros(100_000_000);
        let mut n = node("n1", start);
        let restored = Restored {
            instances: vec![saved("web-1", "n1", 5_000), saved("web-2", "n2", 5_000)],
            incarnation: Incarnation::new(7),
            clock: (90_000_000, 3),
            node_checks: Vec::new(),
        };
        n.handle_command(start, Command::Restore(Box::new(restored)))
            .unwrap();
        assert_eq!(n.incarnation().get(), 8, "one above the last announced");
        let id = crate::names::InstanceId::new("web-1").unwrap();
        assert_eq!(n.registry().stored(&id).unwrap().version.wall_ms, 5_000);
        assert_eq!(
            n.registry().instances().count(),
            1,
            "another node's entry is not ours"
        );
        assert!(n.queue_depth() > 0, "re-announced");
        // Writes after the restart are versioned above the saved clock.
        assert!(n.registry().clock_high_water() >= (90_000_000, 3));

        // The TTL runs from the restart: passing until 10 s after it, critical after.
        n.handle_timeout(start + Duration::from_secs(9));
        assert_eq!(n.registry().get(&id).unwrap().health, Health::Passing);
        n.handle_timeout(start + Duration::from_secs(11));
        assert_eq!(n.registry().get(&id).unwrap().health, Health::Critical);
    }
}
