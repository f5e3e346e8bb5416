//! The figures of the `dc3` scenario: three data centres in one pool.

use std::fmt::Write as _;

use serde::Serialize;

use super::Percentiles;
use crate::network::LinkModel;

/// Traffic over one phase, per node per simulated second.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseTraffic {
    pub seconds: f64,
    pub datagrams_per_node_s: f64,
    pub bytes_per_node_s: f64,
    /// Of those, between two data centres.
    pub cross_dc_datagrams_per_node_s: f64,
    pub cross_dc_bytes_per_node_s: f64,
    /// Cross-DC bytes / all bytes.
    pub cross_dc_share: f64,
    /// Messages sent per node per second, by kind (a datagram may carry several).
    pub messages_per_node_s: Vec<(String, f64)>,
}

/// One side of the cut at one instant (healthy nodes only; means over the side's nodes).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SideSample {
    pub nodes: usize,
    /// Nodes that see a majority reachable (the rest keep stale entries: self-preservation).
    pub with_quorum: usize,
    pub alive_seen_mean: f64,
    /// Live registry entries held.
    pub entries_mean: f64,
    /// Of those, owned by a node on the other side of the cut.
    pub other_side_entries_mean: f64,
}

/// The timeline of the cut (one sample a second) and the heal (one every check step,
/// 100 ms up to 500 nodes).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    /// Seconds since the cut.
    pub t_s: f64,
    pub healed: bool,
    /// The two connected data centres.
    pub majority: SideSample,
    /// The data centre cut off.
    pub minority: SideSample,
}

/// The cut: each side's state at its end, and the traffic during it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CutReport {
    pub seconds: f64,
    /// From the cut until every node of each side saw the other side's nodes not alive.
    pub sides_apart_s: Option<f64>,
    /// From the cut until no node of the cut-off side had quorum (from then on it keeps the
    /// other side's entries: self-preservation).
    pub minority_lost_quorum_s: Option<f64>,
    /// From the cut until the connected side held none of the cut-off side's entries.
    pub majority_purged_s: Option<f64>,
    pub majority: SideSample,
    pub minority: SideSample,
    pub traffic: PhaseTraffic,
}

/// After the heal.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HealReport {
    pub membership_agrees_s: Option<f64>,
    /// Every node holds the newest write of every entry.
    pub registry_agrees_s: Option<f64>,
}

/// Everything `dc3` measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dc3Report {
    pub dcs: u8,
    pub nodes_per_dc: Vec<usize>,
    pub intra_dc: LinkModel,
    pub inter_dc: LinkModel,
    /// 60 s of idle membership (an instance per node, no writes).
    pub idle: PhaseTraffic,
    /// 60 s with a write every 2 s.
    pub writing: PhaseTraffic,
    /// Per write: until one node of every other data centre held it.
    pub write_to_every_dc: Percentiles,
    /// Per write: until every live node held it.
    pub write_to_all: Percentiles,
    /// Per crash: until every live node of the victim's data centre declared it failed.
    pub detection_in_dc: Percentiles,
    /// Per crash: until every live node declared it failed.
    pub detection_everywhere: Percentiles,
    /// Per crash: until the first node declared it failed.
    pub first_failed: Percentiles,
    /// Before the cut (so across data centres too).
    pub false_failures_before_cut: u64,
    pub false_suspicions_before_cut: u64,
    /// Over the whole run, inside one data centre.
    pub intra_dc_false_failures: u64,
    pub intra_dc_false_suspicions: u64,
    pub cut: CutReport,
    pub heal: HealReport,
    pub timeline: Vec<Sample>,
}

impl Dc3Report {
    pub fn render(&self, s: &mut String) {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let p = |p: &Percentiles| {
            format!(
                "p50 {}s p99 {}s max {}s (n={})",
                opt(p.p50_s),
                opt(p.p99_s),
                opt(p.max_s),
                p.count
            )
        };
        let t = |t: &PhaseTraffic| {
            format!(
                "{:.1} datagrams, {:.0} B per node per s; across DCs {:.1} datagrams, {:.0} B \
                 per node per s ({:.1}% of bytes) over {:.0}s",
                t.datagrams_per_node_s,
                t.bytes_per_node_s,
                t.cross_dc_datagrams_per_node_s,
                t.cross_dc_bytes_per_node_s,
                t.cross_dc_share * 100.0,
                t.seconds
            )
        };
        let side = |x: &SideSample| {
            format!(
                "{} nodes, {} with quorum, see {:.1} alive, hold {:.1} entries ({:.1} of the \
                 other side's)",
                x.nodes,
                x.with_quorum,
                x.alive_seen_mean,
                x.entries_mean,
                x.other_side_entries_mean
            )
        };
        let m = &self.inter_dc;
        let _ = writeln!(
            s,
            "  {} data centres of {:?} nodes; between them one way {:.0} ms + U(0, {:.0} ms), \
             loss {:.1}%",
            self.dcs,
            self.nodes_per_dc,
            m.latency_us as f64 / 1e3,
            m.jitter_us as f64 / 1e3,
            m.loss * 100.0
        );
        let _ = writeln!(s, "  idle:    {}", t(&self.idle));
        let kinds: Vec<String> = (self.idle.messages_per_node_s.iter())
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        let _ = writeln!(s, "    idle messages per node per s: {}", kinds.join(", "));
        let _ = writeln!(s, "  writing: {}", t(&self.writing));
        let _ = writeln!(s, "  write to every DC: {}", p(&self.write_to_every_dc));
        let _ = writeln!(s, "  write to all:      {}", p(&self.write_to_all));
        let _ = writeln!(
            s,
            "  crash declared in its DC: {}",
            p(&self.detection_in_dc)
        );
        let _ = writeln!(
            s,
            "  crash declared everywhere: {}",
            p(&self.detection_everywhere)
        );
        let _ = writeln!(s, "  crash first declared:      {}", p(&self.first_failed));
        let _ = writeln!(
            s,
            "  before the cut: {} false failures, {} false suspicions; whole run inside a DC: \
             {} false failures, {} false suspicions",
            self.false_failures_before_cut,
            self.false_suspicions_before_cut,
            self.intra_dc_false_failures,
            self.intra_dc_false_suspicions
        );
        let _ = writeln!(
            s,
            "  cut for {:.0}s: {}",
            self.cut.seconds,
            t(&self.cut.traffic)
        );
        let _ = writeln!(
            s,
            "    connected side at the end: {}",
            side(&self.cut.majority)
        );
        let _ = writeln!(
            s,
            "    cut-off side at the end:   {}",
            side(&self.cut.minority)
        );
        let _ = writeln!(
            s,
            "  after the heal: membership agrees in {}s, registry in {}s",
            opt(self.heal.membership_agrees_s),
            opt(self.heal.registry_agrees_s)
        );
    }
}
