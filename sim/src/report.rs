//! The figures a run produces, for people (one block of text) and for machines (`--json`).

pub mod churn;
pub mod dc3;

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

/// Across registry writes: how long one write took to reach a fraction of the live nodes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Reach {
    /// Seconds. A write that never reached the fraction counts as slower than any other, so
    /// a percentile that falls on one is None.
    pub p50_s: Option<f64>,
    pub p99_s: Option<f64>,
    /// The same times in gossip intervals (the membership figures' rounds).
    pub p50_rounds: Option<f64>,
    pub p99_rounds: Option<f64>,
    /// Datagram hops (gossip generations) the write needed to reach the fraction.
    pub hops_p50: u16,
    pub hops_p99: u16,
}

/// Write reach: for each registry write, the time until 50%, 99% and 100% of the live nodes
/// (those up since before the write, the writer not counted) held it; percentiles over the
/// writes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WriteReachReport {
    pub writes: usize,
    /// Writes that reached every live node.
    pub reached_all: usize,
    /// Live nodes per write, the writer not counted (the largest).
    pub population: usize,
    pub to_half: Reach,
    pub to_p99: Reach,
    pub to_all: Reach,
    pub gossip_interval_s: f64,
    /// ln N and log2 N, to compare the hops with.
    pub ln_n: f64,
    pub log2_n: f64,
}

impl WriteReachReport {
    pub fn of(spreads: &[Spread], gossip_interval: Duration) -> WriteReachReport {
        let gi = gossip_interval.as_secs_f64();
        let reach = |time: fn(&Spread) -> Option<Duration>, hops: fn(&Spread) -> u16| {
            // Missing (never reached) sorts last, as infinitely slow.
            let mut t: Vec<f64> = spreads
                .iter()
                .map(|s| time(s).map_or(f64::INFINITY, |d| d.as_secs_f64()))
                .collect();
            t.sort_by(f64::total_cmp);
            let mut h: Vec<u16> = spreads.iter().map(hops).collect();
            h.sort_unstable();
            let at = |q: f64| {
                let k = ((t.len() as f64 * q).ceil() as usize).clamp(1, t.len().max(1));
                t.get(k - 1).copied().filter(|v| v.is_finite())
            };
            let hop = |q: f64| {
                let k = ((h.len() as f64 * q).ceil() as usize).clamp(1, h.len().max(1));
                h.get(k - 1).copied().unwrap_or(0)
            };
            Reach {
                p50_s: at(0.5),
                p99_s: at(0.99),
                p50_rounds: at(0.5).map(|v| v / gi),
                p99_rounds: at(0.99).map(|v| v / gi),
                hops_p50: hop(0.5),
                hops_p99: hop(0.99),
            }
        };
        let population = spreads.iter().map(|s| s.population).max().unwrap_or(0);
        let n = (population + 1) as f64;
        WriteReachReport {
            writes: spreads.len(),
            reached_all: spreads.iter().filter(|s| s.all.is_some()).count(),
            population,
            to_half: reach(|s| s.p50, |s| s.hops_p50),
            to_p99: reach(|s| s.p99, |s| s.hops_p99),
            to_all: reach(|s| s.all, |s| s.hops_max),
            gossip_interval_s: gi,
            ln_n: n.ln(),
            log2_n: n.log2(),
        }
    }
}

/// One node stalled for a while (`pause`): what the others made of it.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PauseReport {
    pub node: u32,
    pub pause_s: f64,
    /// Suspicions of it heard, one per observer and suspicion (raised or gossiped).
    pub suspected: u32,
    /// Failures of it declared, one per observer: 0 if every suspicion was refuted in time.
    pub failed: u32,
}

/// One node whose links lose much of what it sends and receives (`flaky`): what the others
/// made of it. It stays live and connected, so every failure of it is false.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FlakyReport {
    pub node: u32,
    /// Loss on each of its links, both ways.
    pub link_loss: f64,
    /// Suspicions of it heard, one per observer and suspicion (raised or gossiped).
    pub suspected: u32,
    /// Failures of it declared, one per observer.
    pub failed: u32,
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
    /// The protocol's `suspicion_base` in this run: the preset's, or `--suspicion-base`.
    pub suspicion_base_s: f64,
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
    /// Registry writes reaching the other nodes.
    pub write_reach: Option<WriteReachReport>,
    /// From the heal (or the end of the fault) to every node holding the newest write of
    /// every entry.
    pub registry_converged_s: Option<f64>,
    /// From an owner's crash to its entries being gone from every live node.
    pub owner_entries_gone: Option<Percentiles>,
    /// The three-data-centre scenario's figures.
    pub dc3: Option<dc3::Dc3Report>,
    /// The `registry-churn` scenario's figures.
    pub churn: Option<churn::ChurnReport>,
    /// The `pause` scenario's paused node.
    pub pause: Option<PauseReport>,
    /// The `flaky` scenario's node.
    pub flaky: Option<FlakyReport>,
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
    /// Peak of the live heap bytes (the CLI's counting allocator), when counted.
    pub peak_heap_bytes: Option<u64>,
    /// The most events the world's queue held at once, and the most datagram bytes in it.
    pub queue_peak_events: usize,
    pub in_flight_peak_bytes: u64,
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
            "scenario {} | {} nodes | preset {} (suspicion base {}s) | loss {:.0}% | seed {} | {}",
            self.scenario,
            self.nodes,
            self.preset,
            self.suspicion_base_s,
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
        if let Some(h) = self.peak_heap_bytes {
            let _ = writeln!(
                s,
                "  peak heap {:.1} MiB; event queue peak {} events, {:.1} MiB of datagrams in flight",
                h as f64 / 1048576.0,
                self.queue_peak_events,
                self.in_flight_peak_bytes as f64 / 1048576.0
            );
        }
        if let Some(b) = self.bootstrap_s {
            let _ = writeln!(s, "  bootstrap: all nodes see all others after {b:.3}s");
        }
        if let Some(w) = &self.join {
            let _ = writeln!(
                s,
                "  join reached 50% in {}s, 99% {}s, all {}s; hops 50% {} 99% {} max {} \
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
        if let Some(w) = &self.write_reach {
            let _ = writeln!(
                s,
                "  registry writes: {} timed, {} reached all {} live nodes (log2 N {:.1}, gossip \
                 interval {}s)",
                w.writes, w.reached_all, w.population, w.log2_n, w.gossip_interval_s
            );
            let r = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.1}"));
            for (what, x) in [("50%", &w.to_half), ("99%", &w.to_p99), ("all", &w.to_all)] {
                let _ = writeln!(
                    s,
                    "    to {what:<3}: p50 {}s ({} rounds, {} hops)  p99 {}s ({} rounds, {} hops)",
                    opt(x.p50_s),
                    r(x.p50_rounds),
                    x.hops_p50,
                    opt(x.p99_s),
                    r(x.p99_rounds),
                    x.hops_p99
                );
            }
        }
        if let Some(p) = &self.owner_entries_gone {
            let _ = writeln!(
                s,
                "  crashed owners' entries gone everywhere: p50 {}s max {}s (n={})",
                opt(p.p50_s),
                opt(p.max_s),
                p.count
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
        if let Some(h) = self.registry_converged_s {
            let _ = writeln!(
                s,
                "  registry agrees everywhere (newest write of each entry) {h:.3}s after the \
                 fault ended"
            );
        }
        let c = &self.counts;
        let _ = writeln!(
            s,
            "  false failures {} | false suspicions {} of {} raised ({} /node/min, {} /probe) | refutations {} | registry writes {} resurrections {}",
            c.false_failures,
            c.false_suspicions,
            c.suspicions_raised,
            self.false_suspicions_per_node_min.map_or("-".into(), |v| format!("{v:.4}")),
            self.false_suspicions_per_probe.map_or("-".into(), |v| format!("{v:.5}")),
            c.refutations,
            c.registry_writes,
            c.resurrections
        );
        let t = &self.traffic;
        let _ = writeln!(
            s,
            "  traffic {:.2} datagrams and {:.0} bytes per node per s; lost {} cut {} to-down {} dup {}{}",
            t.datagrams_per_node_s,
            t.bytes_per_node_s,
            t.net.lost,
            t.net.cut,
            t.net.to_down_node,
            t.net.duplicated,
            match t.net.port_unreachable {
                0 => String::new(),
                n => format!(" port-unreachable {n}"),
            }
        );
        if let Some(d) = &self.dc3 {
            d.render(&mut s);
        }
        if let Some(c) = &self.churn {
            c.render(&mut s);
        }
        for (k, v) in &self.notes {
            let _ = writeln!(s, "  {k}: {v}");
        }
        let _ = write!(s, "  trace hash {}", self.trace_hash);
        s
    }
}
