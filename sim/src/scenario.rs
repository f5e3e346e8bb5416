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
//! | `churn` | random crashes, restarts and leaves | agreement once everyone is back |
//! | `swarm` | size, loss, duplication, reordering and faults all drawn from the seed | agreement after heal |
//! | `registry` | ongoing writes, updates and deletions (optionally under `--loss`) | write reach; every node holds the newest writes; no resurrection |
//! | `registry-loss` | the same under 10% loss | the same |
//! | `registry-partition` | 40/60 partition, both sides write the same and new entries | the majority purges, the minority keeps; after heal the last writer wins everywhere |
//! | `registry-delete` | halves: one updates entries, the other deletes them later | after heal the tombstones win everywhere; no resurrection |
//! | `owner-crash` | a tenth of the nodes crash, owning instances | their entries gone everywhere within a bound; the rest intact |
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
pub mod registry;
pub mod settle;

use std::time::Duration;

use hera::config::{Config, Preset};
use hera::swim::suspicion;

use crate::check::{crashes_detected, membership_agrees, no_false_failures};
use crate::network::{below, unit, LinkModel};
use crate::report::{DetectionReport, Report, SpreadReport, Traffic};
use crate::{World, WorldOptions};

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
    /// Live heap bytes of the process, when the caller counts them (the CLI does).
    pub heap_bytes: Option<fn() -> usize>,
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
            heap_bytes: None,
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

/// Every scenario, by name.
pub const SCENARIOS: &[(&str, ScenarioFn)] = &[
    ("join", join),
    ("crash", crash),
    ("loss", loss),
    ("partition", partition),
    ("asymmetric", asymmetric),
    ("isolate", isolate),
    ("pause", pause),
    ("churn", churn),
    ("swarm", swarm),
    ("registry", registry::registry),
    ("registry-loss", registry::registry_loss),
    ("registry-partition", registry::registry_partition),
    ("registry-delete", registry::registry_delete),
    ("owner-crash", registry::owner_crash),
    ("settle", settle::settle),
    ("hostile-clock", hostile::hostile_clock),
    ("hostile-incarnation", hostile::hostile_incarnation),
    ("hostile-twin", hostile::hostile_twin),
    ("hostile-flood", hostile::hostile_flood),
    ("dc3", dc3::dc3),
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
    let f = SCENARIOS
        .iter()
        .find(|(name, _)| *name == params.scenario)
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            let names: Vec<_> = SCENARIOS.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown scenario {:?}; known: {}",
                params.scenario,
                names.join(", ")
            )
        })?;
    let mut params = params;
    if params.scenario == "swarm" {
        draw_swarm(&mut params);
    }
    let mut ctx = Ctx::new(params);
    let result = f(&mut ctx);
    Ok(ctx.finish(result))
}

impl Ctx {
    pub fn new(params: Params) -> Ctx {
        let config = params.preset.config();
        let model = LinkModel::for_preset(params.preset);
        Ctx::with(params, config, model)
    }

    pub fn with(params: Params, config: Config, model: LinkModel) -> Ctx {
        let world = World::new(WorldOptions {
            nodes: params.nodes,
            config,
            model,
            seed: params.seed,
            clock_skew: Duration::from_millis(50),
            verbose: params.verbose,
        });
        let report = Report {
            scenario: params.scenario.clone(),
            seed: params.seed,
            nodes: params.nodes,
            preset: preset_name(params.preset).to_string(),
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
        let n = self.n() as u32;
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

// ---- the scenarios ----

/// N nodes join through one seed; then a newcomer joins a settled cluster and its join is
/// timed to 50%, 99% and 100% of the nodes.
pub fn join(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    if let Some(heap) = ctx.params.heap_bytes {
        ctx.report.note(
            "heap at the end of the rollout",
            format!("{:.1} MiB", heap() as f64 / 1048576.0),
        );
    }
    ctx.world.run_for(Duration::from_secs(5));
    let newcomer = ctx.world.add_node();
    let via = ctx.pick(1)[0];
    let now = ctx.world.now_us();
    let watch = ctx.world.monitor.watch_join(newcomer, now);
    ctx.world.start(newcomer);
    ctx.world.join(newcomer, &[via]);
    let bound = ctx.detect_bound();
    let done = ctx
        .world
        .run_until_true(bound, Duration::from_millis(10), |w| {
            w.monitor.spread(watch, |o| w.is_healthy(o)).all.is_some()
        });
    let spread = ctx.world.monitor.spread(watch, |o| ctx.world.is_healthy(o));
    ctx.report.join = Some(SpreadReport::of(spread, ctx.config().gossip_interval));
    expect(done.is_some(), || {
        format!(
            "the newcomer was seen by {}/{} nodes after {bound:?}",
            spread.reached, spread.population
        )
    })?;
    ctx.settle("after the newcomer's join", ctx.converge_bound())?;
    if let Some(heap) = ctx.params.heap_bytes {
        // Let every queued update run out its retransmissions, then weigh what is left: the
        // member tables dominate, N·(N-1) records.
        ctx.world.run_for(Duration::from_secs(30));
        let n = ctx.world.len();
        let bytes = heap();
        ctx.report.note(
            "heap after settling",
            format!("{:.1} MiB", bytes as f64 / 1048576.0),
        );
        ctx.report.note(
            "heap bytes per member record",
            format!(
                "{:.0} (heap / N(N-1), N = {n})",
                bytes as f64 / (n * (n - 1)) as f64
            ),
        );
    }
    ctx.report.note(
        "core sizes",
        format!(
            "Member {} B (inline in the table, no allocation of its own), NodeName {} B",
            std::mem::size_of::<hera::swim::Member>(),
            std::mem::size_of::<hera::names::NodeName>()
        ),
    );
    no_false_failures(&ctx.world)
}

/// A few nodes crash, a few protocol periods apart; every live node must declare each failed
/// within the detection bound, and no live node may be declared failed.
pub fn crash(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    let k = (ctx.n() / 100).clamp(1, 10);
    let victims = ctx.pick(k);
    let period = ctx.config().probe_interval;
    for &v in &victims {
        ctx.world.crash(v);
        let gap = period * 2 + Duration::from_micros(below(ctx.world.rng(), 1_000_000));
        ctx.world.run_for(gap);
    }
    let bound = ctx.detect_bound();
    ctx.world.run_for(bound);
    // The fault took effect: datagrams went to dead nodes, and each victim was suspected.
    expect(ctx.world.net.stats.to_down_node > 0, || {
        "no datagram reached a crashed node's address".into()
    })?;
    for &v in &victims {
        let m = ctx.world.monitor.marks(v);
        expect(m.suspected > 0, || {
            format!("crashed n{v} was never suspected")
        })?;
    }
    let detections = crashes_detected(&ctx.world, bound)?;
    ctx.report.detection = Some(DetectionReport::of(&detections, period));
    no_false_failures(&ctx.world)?;
    ctx.settle("after the crashes", ctx.converge_bound())?;
    Ok(())
}

/// Uniform loss for the duration: no live node may be declared failed; the false-suspicion
/// rate is measured; once the loss stops, membership agrees.
pub fn loss(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    let p = ctx.params.loss.unwrap_or(0.10);
    ctx.report.loss = p;
    let d = ctx.duration(Duration::from_secs(120));
    let (raised0, false0) = (
        ctx.world.monitor.counts.suspicions_raised,
        ctx.world.monitor.counts.false_suspicions,
    );
    let (probes0, failed0) = (ctx.probes_sent(), ctx.probes_failed());
    ctx.world.set_loss(p);
    ctx.world.run_for(d);
    let probes = ctx.probes_sent() - probes0;
    let failed = ctx.probes_failed() - failed0;
    let c = ctx.world.monitor.counts;
    let false_susp = c.false_suspicions - false0;
    ctx.report.false_suspicions_per_node_min =
        Some(false_susp as f64 / ctx.n() as f64 / (d.as_secs_f64() / 60.0));
    ctx.report.false_suspicions_per_probe = Some(false_susp as f64 / probes.max(1) as f64);
    ctx.report.note(
        "loss phase",
        format!(
            "{probes} probes, {failed} failed, {} suspicions raised",
            c.suspicions_raised - raised0
        ),
    );
    ctx.loss_took_effect(p, 0)?;
    if p >= 0.05 {
        expect(failed > 0, || format!("loss {p} made no probe fail"))?;
    }
    no_false_failures(&ctx.world)?;
    ctx.world.set_loss(0.0);
    let took = ctx.settle("after the loss stopped", ctx.converge_bound())?;
    ctx.report.heal_converged_s = Some(took.as_secs_f64());
    // Suspicions raised under loss may still time out after it stops: still its fault.
    no_false_failures(&ctx.world)
}

/// Two halves cut apart long enough to declare each other failed, then healed.
pub fn partition(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    let mut side = ctx.pick(ctx.n() - 1);
    side.truncate(ctx.n() / 2);
    side.sort_unstable();
    let d = ctx.duration(ctx.detect_bound() + Duration::from_secs(10));
    ctx.world.partition(&[&side]);
    ctx.world.run_for(d);
    // The fault took effect: datagrams were cut, and each side declared the other failed.
    expect(ctx.world.net.stats.cut > 0, || {
        "the partition cut no datagram".into()
    })?;
    let other = ctx.n() - side.len();
    for &i in side.iter().take(20) {
        let failed = ctx.world.node(i).map_or(0, |n| n.counts().failed);
        expect(failed == other, || {
            format!("n{i} declared {failed} of the {other} nodes across the partition failed")
        })?;
    }
    ctx.world.heal();
    let took = ctx.settle("after the partition healed", ctx.converge_bound())?;
    ctx.report.heal_converged_s = Some(took.as_secs_f64());
    Ok(())
}

/// A quarter of the nodes can hear the rest but not reach them.
pub fn asymmetric(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    let mut deaf = ctx.pick(ctx.n() - 1);
    let rest: Vec<u32> = {
        let quarter = (ctx.n() / 4).max(1);
        let mut rest = deaf.split_off(quarter);
        rest.push(0);
        rest.sort_unstable();
        rest
    };
    let muted = deaf;
    let d = ctx.duration(ctx.detect_bound());
    ctx.world.one_way(&muted, &rest);
    ctx.world.run_for(d);
    expect(ctx.world.net.stats.cut > 0, || {
        "the one-way cut dropped nothing".into()
    })?;
    let suspected: u32 = muted
        .iter()
        .map(|&m| ctx.world.monitor.marks(m).suspected)
        .sum();
    expect(suspected > 0, || {
        "no node that cannot send was ever suspected".into()
    })?;
    ctx.world.heal();
    let took = ctx.settle("after the one-way cut healed", ctx.converge_bound())?;
    ctx.report.heal_converged_s = Some(took.as_secs_f64());
    Ok(())
}

/// One node cut off from everyone.
pub fn isolate(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    let x = ctx.pick(1)[0];
    let d = ctx.duration(ctx.detect_bound());
    ctx.world.isolate(x);
    ctx.world.run_for(d);
    let marks = ctx.world.monitor.marks(x);
    expect(marks.failed > 0, || {
        format!("isolated n{x} was never declared failed")
    })?;
    let its_view = ctx.world.node(x).map_or(0, |n| n.counts().failed);
    expect(its_view > 0, || {
        format!("isolated n{x} declared no one failed")
    })?;
    ctx.world.heal();
    let took = ctx.settle("after the isolation healed", ctx.converge_bound())?;
    ctx.report.heal_converged_s = Some(took.as_secs_f64());
    no_false_failures(&ctx.world)
}

/// One node stalls for longer than its suspicion window, then wakes up late: its timers and
/// the datagrams that waited for it are all handled at once.
pub fn pause(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    let x = ctx.pick(1)[0];
    let d = ctx.duration(ctx.suspicion_max() + ctx.config().probe_interval * 10);
    let refutations = ctx.world.monitor.counts.refutations;
    ctx.world.pause(x, d);
    ctx.world.run_for(d);
    let marks = ctx.world.monitor.marks(x);
    expect(marks.suspected > 0, || {
        format!("paused n{x} was never suspected")
    })?;
    let took = ctx.settle("after the pause", ctx.converge_bound())?;
    expect(ctx.world.monitor.counts.refutations > refutations, || {
        format!("n{x} woke and never refuted")
    })?;
    ctx.report.heal_converged_s = Some(took.as_secs_f64());
    ctx.report.note(
        "paused node",
        format!("n{x} for {d:?}, failed {} times", marks.failed),
    );
    no_false_failures(&ctx.world)
}

/// Random crashes, restarts (same name and address) and graceful leaves for the duration; then
/// everyone comes back and membership must agree.
pub fn churn(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    let d = ctx.duration(Duration::from_secs(90));
    let end = ctx.world.now_us() + d.as_micros() as u64;
    let down_max = (ctx.n() / 10).max(1);
    let mut down: Vec<u32> = Vec::new();
    let (mut crashes, mut leaves, mut restarts) = (0, 0, 0);
    let gap = ctx.config().probe_interval * 3;
    // Bounded: one action per gap until the end.
    let steps = d.as_micros() / gap.as_micros().max(1) + 1;
    for _ in 0..steps {
        if ctx.world.now_us() >= end {
            break;
        }
        let restart = !down.is_empty() && (down.len() >= down_max || unit(ctx.world.rng()) < 0.4);
        if restart {
            let k = below(ctx.world.rng(), down.len() as u64) as usize;
            let i = down.swap_remove(k);
            ctx.world.restart(i, &[0]);
            restarts += 1;
        } else if let Some(&i) = ctx.pick(1).first().filter(|i| !down.contains(i)) {
            if unit(ctx.world.rng()) < 0.25 {
                ctx.world.leave(i);
                // The process exits once its goodbye has gone out.
                ctx.world.run_for(ctx.config().leave_propagate * 2);
                ctx.world.crash(i);
                ctx.world.monitor.excuse(i, u64::MAX);
                leaves += 1;
            } else {
                ctx.world.crash(i);
                crashes += 1;
            }
            down.push(i);
        }
        ctx.world.run_for(gap);
    }
    expect(
        crashes + leaves > 0 && ctx.world.net.stats.to_down_node > 0,
        || "churn took no node down".into(),
    )?;
    for i in down.drain(..) {
        ctx.world.restart(i, &[0]);
        restarts += 1;
    }
    ctx.report.note(
        "churn",
        format!("{crashes} crashes, {leaves} leaves, {restarts} restarts"),
    );
    let took = ctx.settle("after churn", ctx.converge_bound())?;
    ctx.report.heal_converged_s = Some(took.as_secs_f64());
    no_false_failures(&ctx.world)
}

/// Draw the swarm's cluster size and network from the seed.
fn draw_swarm(params: &mut Params) {
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed ^ 0x5357_4152_4d00_0000);
    if params.nodes == 0 {
        params.nodes = 5 + below(&mut rng, 60) as usize;
    }
    if params.loss.is_none() {
        params.loss = Some(below(&mut rng, 16) as f64 / 100.0);
    }
}

/// Cluster size, loss, duplication, reordering and a schedule of faults, all from the seed;
/// then everything heals and membership must agree.
pub fn swarm(ctx: &mut Ctx) -> Result<(), String> {
    let loss = ctx.params.loss.unwrap_or(0.0);
    {
        let rng = ctx.world.rng();
        let dup = below(rng, 6) as f64 / 100.0;
        let reorder = below(rng, 11) as f64 / 100.0;
        ctx.world.net.model.duplicate = dup;
        ctx.world.net.model.reorder = reorder;
    }
    ctx.report.note(
        "network",
        format!(
            "loss {loss}, duplicate {}, reorder {}",
            ctx.world.net.model.duplicate, ctx.world.net.model.reorder
        ),
    );
    ctx.bootstrap()?;
    ctx.world.set_loss(loss);
    let d = ctx.duration(Duration::from_secs(120));
    let end = ctx.world.now_us() + d.as_micros() as u64;
    let mut faults = Vec::new();
    let mut crashed: Vec<u32> = Vec::new();
    let (lost0, cut0) = (ctx.world.net.stats.lost, ctx.world.net.stats.cut);
    for _ in 0..64 {
        if ctx.world.now_us() >= end {
            break;
        }
        let kind = below(ctx.world.rng(), 6);
        let hold = Duration::from_secs(5 + below(ctx.world.rng(), 30));
        let x = ctx.pick(1).first().copied().unwrap_or(0);
        match kind {
            0 if !crashed.contains(&x) => {
                ctx.world.crash(x);
                crashed.push(x);
                faults.push("crash");
            }
            1 if !crashed.is_empty() => {
                let i = crashed.remove(0);
                ctx.world.restart(i, &[0]);
                faults.push("restart");
            }
            2 if !crashed.contains(&x) => {
                ctx.world.pause(x, hold);
                faults.push("pause");
            }
            3 if !crashed.contains(&x) => {
                ctx.world.isolate(x);
                ctx.world.run_for(hold);
                ctx.world.heal();
                faults.push("isolate");
            }
            4 => {
                let mut side = ctx.pick(ctx.n() - 1);
                side.truncate((ctx.n() / 2).max(1));
                ctx.world.partition(&[&side]);
                ctx.world.run_for(hold);
                ctx.world.heal();
                faults.push("partition");
            }
            _ => {
                let mut a = ctx.pick(ctx.n() - 1);
                let b = a.split_off((ctx.n() / 4).max(1).min(a.len()));
                ctx.world.one_way(&a, &b);
                ctx.world.run_for(hold);
                ctx.world.heal();
                faults.push("one-way");
            }
        }
        ctx.world.run_for(hold);
    }
    expect(!faults.is_empty(), || "the swarm drew no fault".into())?;
    let net = ctx.world.net.stats;
    expect(
        net.lost > lost0 || net.cut > cut0 || net.to_down_node > 0 || faults.contains(&"pause"),
        || format!("faults {faults:?} dropped nothing"),
    )?;
    ctx.report.note("faults", faults.join(","));
    for i in crashed.drain(..) {
        ctx.world.restart(i, &[0]);
    }
    ctx.world.heal();
    ctx.world.set_loss(0.0);
    let took = ctx.settle("after the swarm healed", ctx.converge_bound())?;
    ctx.report.heal_converged_s = Some(took.as_secs_f64());
    if loss <= 0.10 {
        no_false_failures(&ctx.world)?;
    }
    Ok(())
}

/// Whether every crash so far is declared everywhere (for callers that wait on it).
pub fn all_detected(world: &World) -> bool {
    world
        .monitor
        .detections(|o| world.is_healthy(o))
        .iter()
        .all(|d| d.all_failed.is_some())
}
