//! Scenarios as code, and the swarm.
//!
//! Every scenario has the same two phases (TigerBeetle's VOPR): first a fault, then the heal,
//! after which the cluster must converge within a bound derived from the protocol config. Each
//! one asserts that its fault took effect (datagrams were lost or cut, suspicions were raised)
//! before it asserts anything about recovery, so a fault injector that silently does nothing
//! fails the scenario instead of passing it. A failure carries the seed; `--seed` replays it.
//!
//! | scenario | fault | then requires |
//! |---|---|---|
//! | `join` | none: N nodes join through one seed, then one newcomer | all see all; the newcomer's spread |
//! | `crash` | a few nodes crash | each declared failed by every live node within a bound |
//! | `loss` | uniform loss (default 10%) for the duration | no false failure; agreement after |
//! | `partition` | two halves cut apart | each side declares the other failed; agreement after heal |
//! | `asymmetric` | a quarter of the nodes cannot send to the rest | suspicions; agreement after heal |
//! | `isolate` | one node cut off | it and the others declare each other failed; agreement after |
//! | `pause` | one node stalls past its suspicion window | it is suspected, wakes, refutes |
//! | `flaky` | one node's links lose `--loss` (50%) both ways | no false failure; agreement after |
//! | `churn` | random crashes, restarts and leaves | agreement once everyone is back |
//! | `swarm` | size, loss, duplication, reordering and faults all drawn from the seed | agreement after heal |
//! | `registry` | ongoing writes, updates and deletions (optionally under `--loss`) | write reach; every node holds the newest writes; no resurrection |
//! | `registry-loss` | the same under 10% loss | the same |
//! | `registry-partition` | 40/60 partition, both sides write the same and new entries | the majority purges, the minority keeps; after heal the last writer wins everywhere |
//! | `registry-delete` | halves: one updates entries, the other deletes them later | after heal the tombstones win everywhere; no resurrection |
//! | `owner-crash` | a tenth of the nodes crash, owning instances | their entries gone everywhere within a bound; the rest intact |
//! | `registry-churn` | every node registers `--instances` (1,000) in bulk, one joins late; writes, deletions, 3 crashes (2 restart with their saved instances) | the registry agrees and matches the writes within a bound after the churn; the crashed owner's entries gone |
//! | `settle` | a tenth crash for good, as many newcomers join | bulk sync traffic back at the idle baseline once settled |
//! | `hostile-clock` | an entry and a tombstone stamped far ahead, sent to every node; a node a day ahead | refused and counted; every later write lands everywhere |
//! | `hostile-incarnation` | `left` at `u32::MAX` and implausible incarnation jumps about a live member | counted; the member alive everywhere; its writes land |
//! | `hostile-twin` | a second process under a live member's name joins | the twin stops; the holder keeps every entry, no zombie deleted |
//! | `dc3` | three data centres (80 ms apart, 1% loss): a crash in each, then one cut off for 10 minutes | detection in each DC; no false failure inside a DC; self-preservation on the cut-off side; agreement after the heal |
//! | `hostile-flood` | junk and amplifier datagrams from a stranger, 1,000 a second | no false failure; probe schedule kept; bytes out ≤ bytes in |
//!
//! The registry scenarios are in [`registry`]; `settle` is in [`settle`]; the `hostile` family
//! (issue 14) is in [`hostile`].

pub mod dc3;
pub mod hostile;
pub mod membership;
pub mod registry;
pub mod registry_churn;
pub mod settle;

use std::time::Duration;

use hera::config::{Config, Preset};
use hera::swim::suspicion;

use crate::check::membership_agrees;
use crate::network::{below, LinkModel};
use crate::report::{Report, Traffic};
use crate::{World, WorldOptions};

pub use membership::{
    asymmetric, churn, crash, flaky, isolate, join, loss, partition, pause, swarm,
};

/// How one run is set up (the CLI's flags).
#[derive(Debug, Clone)]
pub struct Params {
    pub scenario: String,
    pub nodes: usize,
    pub seed: u64,
    /// Loss during the fault phase (scenarios that use loss).
    pub loss: Option<f64>,
    /// Length of the fault phase.
    pub duration: Option<Duration>,
    pub preset: Preset,
    /// Links between data centres (scenarios with data centres).
    pub inter_dc: LinkModel,
    pub verbose: bool,
    /// Instances each node registers (scenarios that register in bulk).
    pub per_node: Option<usize>,
    /// Overrides the preset's `suspicion_base` (the suspicion sweep, issue 17); checked
    /// against the config schema's range by whoever sets it.
    pub suspicion_base: Option<Duration>,
    /// Live heap bytes of the process, when the caller counts them (the CLI does).
    pub heap_bytes: Option<fn() -> usize>,
    /// Datagrams to crashed nodes come back as ICMP port unreachable (`World::port_unreachable`).
    pub port_unreachable: bool,
}

impl Params {
    pub fn new(scenario: &str, nodes: usize, seed: u64) -> Params {
        Params {
            scenario: scenario.to_string(),
            nodes,
            seed,
            loss: None,
            duration: None,
            preset: Preset::Lan,
            inter_dc: LinkModel::inter_dc(),
            verbose: false,
            per_node: None,
            suspicion_base: None,
            heap_bytes: None,
            port_unreachable: false,
        }
    }

    /// The command line that replays this run.
    pub fn replay(&self) -> String {
        let mut s = format!(
            "cargo run --release -p hera-sim -- --scenario {} --nodes {} --seed {} --preset {}",
            self.scenario,
            self.nodes,
            self.seed,
            preset_name(self.preset)
        );
        if let Some(l) = self.loss {
            s += &format!(" --loss {l}");
        }
        if let Some(d) = self.duration {
            s += &format!(" --duration {}", d.as_secs_f64());
        }
        if let Some(k) = self.per_node {
            s += &format!(" --instances {k}");
        }
        if let Some(b) = self.suspicion_base {
            s += &format!(" --suspicion-base {}", b.as_secs_f64() * 1e3);
        }
        if self.port_unreachable {
            s += " --port-unreachable";
        }
        let (m, default) = (self.inter_dc, LinkModel::inter_dc());
        if (m.latency_us, m.jitter_us) != (default.latency_us, default.jitter_us) {
            s += &format!(
                " --dc-rtt {} --dc-jitter {}",
                (2 * m.latency_us + m.jitter_us) as f64 / 1e3,
                m.jitter_us as f64 / 1e3
            );
        }
        s
    }
}

pub fn preset_name(p: Preset) -> &'static str {
    match p {
        Preset::Lan => "lan",
        Preset::Wan => "wan",
        Preset::Local => "local",
    }
}

/// A scenario: runs the world, fills the report, says what went wrong.
pub type ScenarioFn = fn(&mut Ctx) -> Result<(), String>;

/// A scenario by name, and whether it models random loss (`--loss`); a run that asks for loss
/// from one that does not is refused rather than reported as if the loss had been applied.
pub struct Scenario {
    pub name: &'static str,
    pub run: ScenarioFn,
    pub takes_loss: bool,
}

const fn scenario(name: &'static str, run: ScenarioFn, takes_loss: bool) -> Scenario {
    Scenario {
        name,
        run,
        takes_loss,
    }
}

/// Every scenario, by name.
pub const SCENARIOS: &[Scenario] = &[
    scenario("join", join, false),
    scenario("crash", crash, false),
    scenario("loss", loss, true),
    scenario("partition", partition, false),
    scenario("asymmetric", asymmetric, false),
    scenario("isolate", isolate, false),
    scenario("pause", pause, false),
    scenario("flaky", flaky, true),
    scenario("churn", churn, true),
    scenario("swarm", swarm, true),
    scenario("registry", registry::registry, true),
    scenario("registry-loss", registry::registry_loss, true),
    scenario("registry-partition", registry::registry_partition, true),
    scenario("registry-delete", registry::registry_delete, true),
    scenario("owner-crash", registry::owner_crash, true),
    scenario("registry-churn", registry_churn::registry_churn, false),
    scenario("settle", settle::settle, false),
    scenario("hostile-clock", hostile::hostile_clock, false),
    scenario("hostile-incarnation", hostile::hostile_incarnation, false),
    scenario("hostile-twin", hostile::hostile_twin, false),
    scenario("hostile-flood", hostile::hostile_flood, false),
    scenario("dc3", dc3::dc3, true),
];

/// A run in progress: the world, what it is for, and what it measured.
#[derive(Debug)]
pub struct Ctx {
    pub world: World,
    pub params: Params,
    pub report: Report,
}

/// What a run leaves behind.
#[derive(Debug)]
pub struct Outcome {
    pub world: World,
    pub report: Report,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.report.passed
    }
}

/// Run the named scenario. Unknown names are an error before anything runs.
pub fn run(params: Params) -> Result<Outcome, String> {
    let scenario = SCENARIOS
        .iter()
        .find(|s| s.name == params.scenario)
        .ok_or_else(|| {
            let names: Vec<_> = SCENARIOS.iter().map(|s| s.name).collect();
            format!(
                "unknown scenario {:?}; known: {}",
                params.scenario,
                names.join(", ")
            )
        })?;
    if let (Some(loss), false) = (params.loss, scenario.takes_loss) {
        let lossy: Vec<_> = SCENARIOS
            .iter()
            .filter(|s| s.takes_loss)
            .map(|s| s.name)
            .collect();
        return Err(format!(
            "scenario {:?} does not model random loss, so --loss {loss} would not be applied; \
             scenarios that take --loss: {}",
            params.scenario,
            lossy.join(", ")
        ));
    }
    let f = scenario.run;
    let mut params = params;
    if params.scenario == "swarm" {
        membership::draw_swarm(&mut params);
    }
    let mut ctx = Ctx::new(params);
    let result = f(&mut ctx);
    Ok(ctx.finish(result))
}

impl Ctx {
    pub fn new(params: Params) -> Ctx {
        let mut config = params.preset.config();
        if let Some(base) = params.suspicion_base {
            config.suspicion_base = base;
        }
        let model = LinkModel::for_preset(params.preset);
        Ctx::with(params, config, model)
    }

    pub fn with(params: Params, config: Config, model: LinkModel) -> Ctx {
        let suspicion_base_s = config.suspicion_base.as_secs_f64();
        let mut world = World::new(WorldOptions {
            nodes: params.nodes,
            config,
            model,
            seed: params.seed,
            clock_skew: Duration::from_millis(50),
            verbose: params.verbose,
        });
        world.port_unreachable = params.port_unreachable;
        let report = Report {
            scenario: params.scenario.clone(),
            seed: params.seed,
            nodes: params.nodes,
            preset: preset_name(params.preset).to_string(),
            suspicion_base_s,
            loss: params.loss.unwrap_or(0.0),
            replay: params.replay(),
            ..Report::default()
        };
        Ctx {
            world,
            params,
            report,
        }
    }

    fn finish(mut self, result: Result<(), String>) -> Outcome {
        let w = &self.world;
        let secs = w.now().as_secs_f64().max(1e-9);
        let n = w.len() as f64;
        let net = w.net.stats;
        self.report.simulated_s = secs;
        self.report.counts = w.monitor.counts;
        self.report.traffic = Traffic {
            datagrams_per_node_s: net.sent as f64 / n / secs,
            bytes_per_node_s: net.sent_bytes as f64 / n / secs,
            net,
        };
        self.report.trace_hash = format!("{:016x}", w.trace_hash());
        self.report.queue_peak_events = w.queue_peak;
        self.report.in_flight_peak_bytes = w.in_flight_peak_bytes;
        self.report.passed = result.is_ok();
        self.report.failure = result.err();
        Outcome {
            world: self.world,
            report: self.report,
        }
    }

    fn config(&self) -> &Config {
        self.world.config()
    }

    fn n(&self) -> usize {
        self.params.nodes
    }

    /// The longest suspicion for this cluster size.
    fn suspicion_max(&self) -> Duration {
        let c = self.config();
        suspicion::bounds(c.suspicion_base, c.suspicion_max_mult, self.n()).1
    }

    /// Every crash should be declared everywhere within this: ten protocol periods for some
    /// member to probe it (the chance that none does falls by e each period), the longest
    /// suspicion, and time for the failure to spread.
    pub fn detect_bound(&self) -> Duration {
        self.config().probe_interval * 10 + self.suspicion_max() + Duration::from_secs(10)
    }

    /// After a heal, membership must agree within this: a few reconnect attempts (each node
    /// retries one failed member per interval), an anti-entropy round and a suspicion window.
    pub fn converge_bound(&self) -> Duration {
        let c = self.config();
        c.reconnect_interval * 4
            + c.sync_interval
            + self.suspicion_max() * 2
            + Duration::from_secs(30)
    }

    fn duration(&self, default: Duration) -> Duration {
        self.params.duration.unwrap_or(default)
    }

    pub(crate) fn check_step(&self) -> Duration {
        // Checking agreement costs O(N) (O(N²) by name below 2,000 nodes): check less often
        // in large clusters.
        if self.n() > 500 {
            Duration::from_millis(500)
        } else {
            Duration::from_millis(100)
        }
    }

    /// Start every node, joining each through node 0 in a staggered rollout, and wait until
    /// every node sees every other alive.
    pub fn bootstrap(&mut self) -> Result<(), String> {
        self.bootstrap_first(self.n() as u32)
    }

    /// [`Ctx::bootstrap`] of nodes `0..n` only; the rest stay unstarted (to join later).
    pub fn bootstrap_first(&mut self, n: u32) -> Result<(), String> {
        // 2 ms apart up to 2,000 nodes; larger clusters join 100 a second. Every join is news
        // to every node, and each node passes on only so many updates a second (about 250 at
        // 10,000 nodes: 25 to a datagram, 200 rounds a second, each sent 20 times); joins
        // faster than that grow every queue, and the simulator's memory with N².
        let stagger_us: u64 = if n <= 2_000 { 2_000 } else { 10_000 };
        self.world.start(0);
        for i in 1..n {
            self.world.run_until(u64::from(i) * stagger_us);
            self.world.start(i);
            self.world.join(i, &[0]);
        }
        let bound = Duration::from_secs(120) + Duration::from_millis(20 * u64::from(n));
        let step = self.check_step();
        let took = self
            .world
            .run_until_true(bound, step, |w| membership_agrees(w).is_ok())
            .ok_or_else(|| {
                format!(
                    "bootstrap: no agreement {bound:?} after the last join: {}",
                    membership_agrees(&self.world).err().unwrap_or_default()
                )
            })?;
        self.report.bootstrap_s = Some(self.world.now().as_secs_f64());
        self.world.say(format_args!(
            "bootstrap done: {} nodes agree ({took:?} after the last join)",
            n
        ));
        Ok(())
    }

    /// Wait until membership agrees everywhere, within `bound`.
    pub fn settle(&mut self, what: &str, bound: Duration) -> Result<Duration, String> {
        let step = self.check_step();
        self.world
            .run_until_true(bound, step, |w| membership_agrees(w).is_ok())
            .ok_or_else(|| {
                format!(
                    "{what}: membership still disagrees {bound:?} later: {}",
                    membership_agrees(&self.world).err().unwrap_or_default()
                )
            })
    }

    /// `k` distinct random nodes other than node 0 (the seed everyone joined through).
    pub fn pick(&mut self, k: usize) -> Vec<u32> {
        let mut all: Vec<u32> = (1..self.n() as u32).collect();
        let rng = self.world.rng();
        for i in (1..all.len()).rev() {
            let j = below(rng, i as u64 + 1) as usize;
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }

    /// Loss `p` took effect: datagrams were dropped since the network had dropped `lost_before`.
    pub fn loss_took_effect(&self, p: f64, lost_before: u64) -> Result<(), String> {
        expect(p == 0.0 || self.world.net.stats.lost > lost_before, || {
            format!("loss {p} dropped no datagram")
        })
    }

    fn probes_sent(&self) -> u64 {
        (0..self.world.len() as u32)
            .filter_map(|i| self.world.node(i))
            .map(|n| n.stats().probes_sent)
            .sum()
    }

    fn probes_failed(&self) -> u64 {
        (0..self.world.len() as u32)
            .filter_map(|i| self.world.node(i))
            .map(|n| n.stats().probes_failed)
            .sum()
    }
}

fn expect(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// Whether every crash so far is declared everywhere (for callers that wait on it).
pub fn all_detected(world: &World) -> bool {
    world
        .monitor
        .detections(|o| world.is_healthy(o))
        .iter()
        .all(|d| d.all_failed.is_some())
}
