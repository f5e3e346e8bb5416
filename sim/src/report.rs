//! The figures a run produces, for people (one block of text) and for machines (`--json`).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::check::{Counts, Detection, Spread};
use crate::network::NetStats;

/// Percentiles of a set of durations, in seconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_s: Option<f64>,
    pub p99_s: Option<f64>,
    pub max_s: Option<f64>,
}

impl Percentiles {
    pub fn of(values: impl IntoIterator<Item = Duration>) -> Percentiles {
        let mut v: Vec<f64> = values.into_iter().map(|d| d.as_secs_f64()).collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            (!v.is_empty()).then(|| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1])
        };
        Percentiles {
            count: v.len(),
            p50_s: at(0.5),
            p99_s: at(0.99),
            max_s: v.last().copied(),
        }
    }
}

/// Crash detection, over every crash of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DetectionReport {
    /// From the crash to the first suspicion anywhere.
    pub first_suspected: Percentiles,
    /// From the crash to the first node declaring it failed.
    pub first_failed: Percentiles,
    /// From the crash to the last live node declaring it failed.
    pub all_failed: Percentiles,
    /// The SWIM paper's expected time to first detection, `T / (1 - e^-1)` (§3.1, with
    /// uniform random targets), plus one period for the probe to run out.
    pub swim_expected_first_suspicion_s: f64,
}

impl DetectionReport {
    pub fn of(detections: &[Detection], probe_interval: Duration) -> DetectionReport {
        let t = probe_interval.as_secs_f64();
        DetectionReport {
            first_suspected: Percentiles::of(detections.iter().filter_map(|d| d.first_suspected)),
            first_failed: Percentiles::of(detections.iter().filter_map(|d| d.first_failed)),
            all_failed: Percentiles::of(detections.iter().filter_map(|d| d.all_failed)),
            swim_expected_first_suspicion_s: t / (1.0 - (-1.0f64).exp()) + t,
        }
    }
}

/// How an update spread, with time also counted in gossip rounds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SpreadReport {
    pub population: usize,
    pub reached: usize,
    pub p50_s: Option<f64>,
    pub p99_s: Option<f64>,
    pub all_s: Option<f64>,
    /// The same times divided by the gossip interval.
    pub p50_rounds: Option<f64>,
    pub p99_rounds: Option<f64>,
    pub all_rounds: Option<f64>,
    /// Datagram hops (gossip generations) to reach 50%, 99% and all.
    pub hops_p50: u16,
    pub hops_p99: u16,
    pub hops_max: u16,
    /// ln N and log2 N, to compare with.
    pub ln_n: f64,
    pub log2_n: f64,
}

impl SpreadReport {
    pub fn of(s: Spread, gossip_interval: Duration) -> SpreadReport {
        let r = |d: Option<Duration>| d.map(|d| d.as_secs_f64() / gossip_interval.as_secs_f64());
        let n = (s.population + 1) as f64;
        SpreadReport {
            population: s.population,
            reached: s.reached,
            p50_s: s.p50.map(|d| d.as_secs_f64()),
            p99_s: s.p99.map(|d| d.as_secs_f64()),
            all_s: s.all.map(|d| d.as_secs_f64()),
            p50_rounds: r(s.p50),
            p99_rounds: r(s.p99),
            all_rounds: r(s.all),
            hops_p50: s.hops_p50,
            hops_p99: s.hops_p99,
            hops_max: s.hops_max,
            ln_n: n.ln(),
            log2_n: n.log2(),
        }
    }
}

/// Traffic per node per simulated second.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Traffic {
    pub datagrams_per_node_s: f64,
    pub bytes_per_node_s: f64,
    pub net: NetStats,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub nodes: usize,
    pub preset: String,
    pub loss: f64,
    pub passed: bool,
    pub failure: Option<String>,
    pub replay: String,
    pub simulated_s: f64,
    /// From the first join to every node seeing every other alive.
    pub bootstrap_s: Option<f64>,
    /// A single join into a settled cluster.
    pub join: Option<SpreadReport>,
    pub detection: Option<DetectionReport>,
    /// From the heal to membership agreeing everywhere.
    pub heal_converged_s: Option<f64>,
    /// A registry write reaching the other nodes.
    pub registry_write: Option<SpreadReport>,
    pub counts: Counts,
    /// False suspicions per node per simulated minute, over the fault phase.
    pub false_suspicions_per_node_min: Option<f64>,
    /// False suspicions per probe sent, over the fault phase.
    pub false_suspicions_per_probe: Option<f64>,
    pub traffic: Traffic,
    pub wall_s: f64,
    /// Simulated node-seconds per wall-clock second.
    pub speed: f64,
    pub trace_hash: String,
    /// Peak resident memory of the process (VmHWM), when read.
    pub peak_rss_bytes: Option<u64>,
    /// Extra figures a scenario measured, by name.
    pub notes: Vec<(String, String)>,
}

impl Report {
    pub fn note(&mut self, key: &str, value: impl ToString) {
        self.notes.push((key.to_string(), value.to_string()));
    }

    /// The human-readable form.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(
            s,
            "scenario {} | {} nodes | preset {} | loss {:.0}% | seed {} | {}",
            self.scenario,
            self.nodes,
            self.preset,
            self.loss * 100.0,
            self.seed,
            if self.passed { "PASSED" } else { "FAILED" }
        );
        if let Some(f) = &self.failure {
            let _ = writeln!(s, "  failure: {f}\n  replay:  {}", self.replay);
        }
        let _ = writeln!(
            s,
            "  simulated {:.1}s in {:.2}s wall: {:.0} node-s/s; {} MiB peak",
            self.simulated_s,
            self.wall_s,
            self.speed,
            self.peak_rss_bytes
                .map_or("-".into(), |b| format!("{:.1}", b as f64 / 1048576.0))
        );
        if let Some(b) = self.bootstrap_s {
            let _ = writeln!(s, "  bootstrap: all nodes see all others after {b:.3}s");
        }
        for (what, w) in [
            ("join", &self.join),
            ("registry write", &self.registry_write),
        ] {
            let Some(w) = w else { continue };
            let _ = writeln!(
                s,
                "  {what} reached 50% in {}s, 99% {}s, all {}s; hops 50% {} 99% {} max {} \
                 (log2 N {:.1}); {}/{} nodes",
                opt(w.p50_s),
                opt(w.p99_s),
                opt(w.all_s),
                w.hops_p50,
                w.hops_p99,
                w.hops_max,
                w.log2_n,
                w.reached,
                w.population
            );
        }
        if let Some(d) = &self.detection {
            let p = |p: &Percentiles| {
                format!(
                    "p50 {}s p99 {}s (n={})",
                    opt(p.p50_s),
                    opt(p.p99_s),
                    p.count
                )
            };
            let _ = writeln!(s, "  crash first suspected: {}", p(&d.first_suspected));
            let _ = writeln!(
                s,
                "  crash first failed:    {}   [SWIM expects first suspicion ~{:.2}s]",
                p(&d.first_failed),
                d.swim_expected_first_suspicion_s
            );
            let _ = writeln!(s, "  crash failed at all:   {}", p(&d.all_failed));
        }
        if let Some(h) = self.heal_converged_s {
            let _ = writeln!(s, "  after heal, membership agrees everywhere in {h:.3}s");
        }
        let c = &self.counts;
        let _ = writeln!(
            s,
            "  false failures {} | false suspicions {} of {} raised ({} /node/min, {} /probe) | refutations {}",
            c.false_failures,
            c.false_suspicions,
            c.suspicions_raised,
            self.false_suspicions_per_node_min.map_or("-".into(), |v| format!("{v:.4}")),
            self.false_suspicions_per_probe.map_or("-".into(), |v| format!("{v:.5}")),
            c.refutations
        );
        let t = &self.traffic;
        let _ = writeln!(
            s,
            "  traffic {:.2} datagrams and {:.0} bytes per node per s; lost {} cut {} to-down {} dup {}",
            t.datagrams_per_node_s,
            t.bytes_per_node_s,
            t.net.lost,
            t.net.cut,
            t.net.to_down_node,
            t.net.duplicated
        );
        for (k, v) in &self.notes {
            let _ = writeln!(s, "  {k}: {v}");
        }
        let _ = write!(s, "  trace hash {}", self.trace_hash);
        s
    }
}
