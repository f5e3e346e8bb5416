//! Membership scenarios: joins, crashes, loss, partitions (full and one-way), an isolated
//! node, a stalled process, a node with lossy links, churn, and the swarm that draws all of
//! them from the seed. Each asserts that its fault took effect before it asserts recovery.

use std::time::Duration;

use super::{expect, Ctx, Params};
use crate::check::{crashes_detected, no_false_failures};
use crate::network::{below, unit, LinkOverride};
use crate::report::{DetectionReport, FlakyReport, PauseReport, SpreadReport};

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
    ctx.world.set_loss(0.0);
    let settled = ctx.settle("after the loss stopped", ctx.converge_bound());
    // Suspicions raised under loss may still time out after it stops: still its fault. Checked
    // before agreement, so that a run with false failures reports all of them (the suspicion
    // sweep counts them), and a disagreement they caused is reported as what it is.
    no_false_failures(&ctx.world)?;
    ctx.report.heal_converged_s = Some(settled?.as_secs_f64());
    Ok(())
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
    let before = ctx.world.monitor.marks(x);
    ctx.world.pause(x, d);
    ctx.world.run_for(d);
    let marks = ctx.world.monitor.marks(x);
    let mut report = PauseReport {
        node: x,
        pause_s: d.as_secs_f64(),
        suspected: marks.suspected - before.suspected,
        failed: marks.failed - before.failed,
    };
    ctx.report.pause = Some(report);
    expect(report.suspected > 0, || {
        format!("paused n{x} was never suspected")
    })?;
    let took = ctx.settle("after the pause", ctx.converge_bound())?;
    expect(ctx.world.monitor.counts.refutations > refutations, || {
        format!("n{x} woke and never refuted")
    })?;
    // Suspicions that ran out while it was waking count too.
    let marks = ctx.world.monitor.marks(x);
    report.suspected = marks.suspected - before.suspected;
    report.failed = marks.failed - before.failed;
    ctx.report.pause = Some(report);
    ctx.report.heal_converged_s = Some(took.as_secs_f64());
    ctx.report.note(
        "paused node",
        format!("n{x} for {d:?}, failed {} times", report.failed),
    );
    no_false_failures(&ctx.world)
}

/// One node's links, both ways, lose `--loss` (default 50%) of their datagrams for the duration
/// (default 120 s): a failing NIC, an overflowing receive buffer. The node is live and answers
/// some of the time, and it is the one whose refutations get lost, so this is the race a short
/// suspicion window can lose: no one may declare it (or anyone) failed. Then the links heal
/// and membership must agree.
pub fn flaky(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    let x = ctx.pick(1)[0];
    let p = ctx.params.loss.unwrap_or(0.5);
    ctx.report.loss = p;
    let d = ctx.duration(Duration::from_secs(120));
    let before = ctx.world.monitor.marks(x);
    let lost0 = ctx.world.net.stats.lost;
    // 2(N - 1) sparse overrides; the rest of the network stays loss-free.
    for j in (0..ctx.n() as u32).filter(|&j| j != x) {
        ctx.world.net.set_link(x, j, LinkOverride::Loss(p));
        ctx.world.net.set_link(j, x, LinkOverride::Loss(p));
    }
    ctx.world.run_for(d);
    let marks = ctx.world.monitor.marks(x);
    ctx.report.flaky = Some(FlakyReport {
        node: x,
        link_loss: p,
        suspected: marks.suspected - before.suspected,
        failed: marks.failed - before.failed,
    });
    expect(p == 0.0 || ctx.world.net.stats.lost > lost0, || {
        format!("n{x}'s links at loss {p} dropped no datagram")
    })?;
    ctx.world.heal();
    let settled = ctx.settle("after the flaky links healed", ctx.converge_bound());
    // Failures declared after the heal are still the loss's: counted before agreement.
    let marks = ctx.world.monitor.marks(x);
    if let Some(f) = &mut ctx.report.flaky {
        f.suspected = marks.suspected - before.suspected;
        f.failed = marks.failed - before.failed;
    }
    no_false_failures(&ctx.world)?;
    ctx.report.heal_converged_s = Some(settled?.as_secs_f64());
    Ok(())
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
pub(super) fn draw_swarm(params: &mut Params) {
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
