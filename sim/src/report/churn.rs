//! The figures of the `registry-churn` scenario: a registry of N × K instances under churn.

use std::fmt::Write as _;

use serde::Serialize;

/// Traffic over one phase, per healthy node per simulated second.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseBytes {
    pub seconds: f64,
    pub datagrams_per_node_s: f64,
    pub bytes_per_node_s: f64,
    /// Messages sent per node per second, by kind (a datagram may carry several).
    pub messages_per_node_s: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ChurnReport {
    /// Instances each node registered in bulk, and all of them.
    pub per_node: usize,
    pub instances: usize,
    /// From the first bulk registration until every node held every one.
    pub registered_everywhere_s: Option<f64>,
    pub registering: PhaseBytes,
    /// Writes during the churn (registrations, updates, deletions), all timed.
    pub churn_writes: usize,
    pub churn: PhaseBytes,
    /// From the late node's join until it held every live entry node 0 held when it joined.
    pub late_join_holds_all_s: Option<f64>,
    /// From the crash of the owner that never came back until none of its entries was left.
    pub crashed_owner_gone_s: Option<f64>,
    /// From the crash of the owner restarted after its purge until its entries were gone
    /// everywhere (it restarted then, restoring them).
    pub purged_owner_gone_s: Option<f64>,
    /// From the end of the churn until every node held the newest write of every entry.
    pub converged_s: Option<f64>,
    /// The longest gossip queue (updates waiting for retransmission) at that point, and how
    /// long after it every queue was empty (None: not within an hour).
    pub queue_depth_at_converged: usize,
    pub queues_empty_s: Option<f64>,
    /// The most registry entries any node's gossip queue held, looked at every 100 ms of the
    /// registrations and the churn and every second while the queues drained (the core bounds
    /// it: `hera::swim::gossip::INSTANCE_UPDATES_MAX`).
    pub queued_entries_peak: usize,
    /// Entries dropped from the gossip queues before their last retransmission, to keep them
    /// within that bound, per node (`gossip_instances_dropped`, averaged over the nodes up at
    /// the end).
    pub gossip_dropped_per_node: f64,
    /// Traffic while the queues drain (every entry already held everywhere).
    pub draining: PhaseBytes,
    pub idle: PhaseBytes,
    /// Live entries and tombstones node 0 holds at the end.
    pub entries_per_node: usize,
    pub tombstones_per_node: usize,
    /// Live heap of the process once idle, per live entry held (summed over the nodes).
    pub heap_bytes_per_entry: Option<f64>,
    pub heap_idle_bytes: Option<u64>,
}

impl ChurnReport {
    pub fn render(&self, s: &mut String) {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let phase = |p: &PhaseBytes| {
            let kinds: Vec<String> = p
                .messages_per_node_s
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect();
            format!(
                "{:.1} datagrams and {:.0} B per node per s over {:.0} s ({})",
                p.datagrams_per_node_s,
                p.bytes_per_node_s,
                p.seconds,
                kinds.join(", ")
            )
        };
        let _ = writeln!(
            s,
            "  registry churn: {} instances ({} per node); held everywhere {} s after the first \
             registration; {}",
            self.instances,
            self.per_node,
            opt(self.registered_everywhere_s),
            phase(&self.registering)
        );
        let _ = writeln!(
            s,
            "    churn: {} writes; {}",
            self.churn_writes,
            phase(&self.churn)
        );
        let _ = writeln!(
            s,
            "    late joiner held all in {} s; crashed owner's entries gone in {} s (purged then \
             restarted: {} s)",
            opt(self.late_join_holds_all_s),
            opt(self.crashed_owner_gone_s),
            opt(self.purged_owner_gone_s)
        );
        let _ = writeln!(
            s,
            "    converged {} s after the churn; longest gossip queue then {}, all empty {} s \
             later; idle {}",
            self.converged_s
                .map_or("-".to_string(), |v| format!("{v:.3}")),
            self.queue_depth_at_converged,
            opt(self.queues_empty_s),
            phase(&self.idle)
        );
        let _ = writeln!(s, "    while the queues drained: {}", phase(&self.draining));
        let _ = writeln!(
            s,
            "    gossip queues: at most {} entries queued on a node; {:.0} dropped per node",
            self.queued_entries_peak, self.gossip_dropped_per_node
        );
        let _ = writeln!(
            s,
            "    per node: {} entries, {} tombstones; heap once idle {} MiB, {} B per entry held",
            self.entries_per_node,
            self.tombstones_per_node,
            self.heap_idle_bytes
                .map_or("-".to_string(), |b| format!("{:.0}", b as f64 / 1048576.0)),
            self.heap_bytes_per_entry
                .map_or("-".to_string(), |b| format!("{b:.0}"))
        );
    }
}
