//! Coming back after a restart: the instances this node owned and the floors its protocol
//! state must start above, as the shell kept them (`runtime::store`).

use super::{Node, Reply};
use crate::registry::{Entry, Hlc};
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
}

impl Node {
    pub(super) fn restore(&mut self, now: Instant, restored: Restored) -> Reply {
        self.incarnation = self.incarnation.max(restored.incarnation.saturating_add(1));
        let (wall_ms, counter) = restored.clock;
        self.registry.observe(&Hlc {
            wall_ms,
            counter,
            node: self.name.clone(),
        });
        for entry in restored.instances {
            let ours = entry
                .instance
                .as_ref()
                .is_some_and(|i| i.owner == self.name && i.id == entry.id);
            if !ours {
                continue;
            }
            // Merging stores it, arms its TTL and checks from `now` (one whole TTL for the
            // client to report again), and queues it for gossip: the re-announcement.
            self.merge(now, entry);
        }
        self.version += 1;
        Reply::Done
    }
}
