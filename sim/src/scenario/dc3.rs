//! Three data centres in one pool (issue 17).
//!
//! The nodes are split into three data centres of equal size (node `i` in
//! `i * 3 / N`). Inside one the links are the lan model; between two they follow
//! `Params::inter_dc` (80 ms round trip, ±20 ms, 1% loss unless `--loss`, `--dc-rtt`,
//! `--dc-jitter` say otherwise). hera's protocol config is the preset's (`--preset lan|wan`).
//!
//! Phases:
//! 1. **Idle, then writing**: every node registers an instance; two sync intervals for the
//!    bulk syncs of the joins to die down; 60 s with no write, then 60 s
//!    in which a random node registers a new one every 2 s. Measured for each: bytes per node
//!    per second and the share crossing data centres; each write's time to reach every data
//!    centre (one holder in each) and every node.
//! 2. **Crashes**: one node in 30 of each data centre (at least one) crashes, 3 s apart.
//!    Measured: time until every live node of the victim's own data centre declared it
//!    failed, and every live node.
//! 3. **Cut**: the last data centre is cut off for `--duration` (default 10 minutes); each
//!    side registers two new instances. Sampled every second: per side, how many nodes have
//!    quorum, how many members they see alive, how many entries they hold and how many of
//!    those belong to the other side (self-preservation keeps them; a side with quorum
//!    purges them).
//! 4. **Heal**: time until membership agrees everywhere, and the registry (every node holds
//!    the newest write of every entry).
//!
//! Checkers: every crash declared everywhere within `detect_bound`; **no failure declared
//! inside a data centre about a live member, at any time** (a cut between data centres
//! excuses nothing inside one); during the cut each side declares the other failed, the side
//! with quorum purges the other's entries and the side without keeps them; after the heal
//! membership agrees within `converge_bound` and the registry within `registry_bound`; no
//! deleted entry comes back.

use std::time::Duration;

use hera::config::Preset;
use hera::wire::MessageKind;

use super::{expect, Ctx};
use crate::check::{
    crashes_detected, membership_agrees, no_resurrections, registry_agrees, registry_matches_writes,
};
use crate::network::{below, LinkModel, NetStats};
use crate::report::dc3::{Dc3Report, PhaseTraffic, Sample, SideSample};
use crate::report::Percentiles;
use crate::{index_of_name, World};

/// Data centres in the scenario.
pub const DCS: u8 = 3;
/// The steady phase: traffic and write reach are measured over it.
const STEADY: Duration = Duration::from_secs(60);
/// One timed write every this often during the steady phase.
const WRITE_EVERY: Duration = Duration::from_secs(2);
/// The default length of the cut.
const CUT: Duration = Duration::from_secs(600);
/// The timeline's sampling interval.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Node `i`'s data centre among `n` nodes.
pub fn dc_of(i: u32, n: usize) -> u8 {
    (u64::from(i) * u64::from(DCS) / n.max(1) as u64) as u8
}

/// Network counters, the nodes' messages sent by kind, and the time they were read, to
/// measure one phase.
#[derive(Clone, Copy)]
struct Snap {
    net: NetStats,
    messages: [u64; MessageKind::ALL.len()],
    at: u64,
}

/// Messages of each kind the running nodes sent so far.
fn messages_out(w: &World) -> [u64; MessageKind::ALL.len()] {
    let mut sum = [0; MessageKind::ALL.len()];
    for node in (0..w.len() as u32).filter_map(|i| w.node(i)) {
        for (s, m) in sum.iter_mut().zip(node.stats().messages_out) {
            *s += m;
        }
    }
    sum
}

impl Snap {
    fn of(w: &World) -> Snap {
        Snap {
            net: w.net.stats,
            messages: messages_out(w),
            at: w.now_us(),
        }
    }

    /// Traffic per node per second since this snapshot.
    fn traffic(&self, w: &World) -> PhaseTraffic {
        let now = w.net.stats;
        let secs = (w.now_us() - self.at) as f64 / 1e6;
        let per = (w.len() as f64 * secs).max(1e-9);
        let bytes = (now.sent_bytes - self.net.sent_bytes) as f64;
        let cross = (now.cross_dc_sent_bytes - self.net.cross_dc_sent_bytes) as f64;
        PhaseTraffic {
            seconds: secs,
            datagrams_per_node_s: (now.sent - self.net.sent) as f64 / per,
            bytes_per_node_s: bytes / per,
            cross_dc_datagrams_per_node_s: (now.cross_dc_sent - self.net.cross_dc_sent) as f64
                / per,
            cross_dc_bytes_per_node_s: cross / per,
            cross_dc_share: cross / bytes.max(1.0),
            // A crash in the phase takes its node's counts with it: saturate.
            messages_per_node_s: MessageKind::ALL
                .iter()
                .zip(messages_out(w).iter().zip(self.messages))
                .map(|(k, (now, then))| (format!("{k:?}"), now.saturating_sub(then) as f64 / per))
                .filter(|(_, v)| *v > 0.0)
                .collect(),
        }
    }
}

/// Which side of the cut each node is on.
struct Sides {
    /// Per node: true on the cut-off side.
    cut_off: Vec<bool>,
}

impl Sides {
    fn sample(&self, w: &World) -> (SideSample, SideSample) {
        let mut sides = [SideSample::default(), SideSample::default()];
        let mut counted = [0usize; 2];
        for i in w.healthy() {
            let Some(node) = w.node(i) else { continue };
            let mine = usize::from(self.cut_off[i as usize]);
            let s = &mut sides[mine];
            counted[mine] += 1;
            s.with_quorum += usize::from(node.quorum().has_quorum);
            s.alive_seen_mean += node.counts().alive as f64;
            for instance in node.registry().instances() {
                s.entries_mean += 1.0;
                let theirs = index_of_name(&instance.owner)
                    .and_then(|o| self.cut_off.get(o as usize))
                    .is_some_and(|&c| usize::from(c) != mine);
                if theirs {
                    s.other_side_entries_mean += 1.0;
                }
            }
        }
        for (s, n) in sides.iter_mut().zip(counted) {
            s.nodes = n;
            let n = n.max(1) as f64;
            s.alive_seen_mean /= n;
            s.entries_mean /= n;
            s.other_side_entries_mean /= n;
        }
        let [majority, minority] = sides;
        (majority, minority)
    }
}

/// The `dc3` scenario (see the module's documentation).
pub fn dc3(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n();
    expect(n >= 2 * usize::from(DCS), || {
        format!("dc3 needs at least {} nodes (2 per data centre)", 2 * DCS)
    })?;
    let mut inter = ctx.params.inter_dc;
    if let Some(l) = ctx.params.loss {
        inter.loss = l;
    }
    ctx.report.loss = inter.loss;
    ctx.world.net.model = LinkModel::for_preset(Preset::Lan);
    ctx.world.net.inter_dc = Some(inter);
    for i in 0..n as u32 {
        ctx.world.set_dc(i, dc_of(i, n));
    }
    let mut r = Dc3Report {
        dcs: DCS,
        nodes_per_dc: (0..DCS)
            .map(|d| (0..n as u32).filter(|&i| dc_of(i, n) == d).count())
            .collect(),
        intra_dc: ctx.world.net.model,
        inter_dc: inter,
        ..Dc3Report::default()
    };

    ctx.bootstrap()?;
    ctx.register_everywhere(1)?;
    let bound = ctx.registry_bound();
    ctx.settle_registry("after the first registrations", bound)?;

    steady(ctx, &mut r)?;
    crashes(ctx, &mut r)?;
    let result = cut_and_heal(ctx, &mut r);
    let c = ctx.world.monitor.counts;
    r.intra_dc_false_failures = c.intra_dc_false_failures;
    r.intra_dc_false_suspicions = c.intra_dc_false_suspicions;
    ctx.report.dc3 = Some(r);
    result?;
    no_intra_dc_false_failures(&ctx.world)?;
    no_resurrections(&ctx.world)
}

/// Phase 1: idle traffic, then a trickle of writes; write reach per data centre.
fn steady(ctx: &mut Ctx, r: &mut Dc3Report) -> Result<(), String> {
    let n = ctx.n();
    // Let the joins' and first registrations' bulk syncs die down first.
    ctx.world.run_for(ctx.config().sync_interval * 2);
    let snap = Snap::of(&ctx.world);
    ctx.world.run_for(STEADY);
    r.idle = snap.traffic(&ctx.world);
    let snap = Snap::of(&ctx.world);
    let first_write = ctx.world.monitor.registry().writes().len();
    let end = ctx.world.now_us() + STEADY.as_micros() as u64;
    let mut k = 0u32;
    while ctx.world.now_us() + (WRITE_EVERY.as_micros() as u64) <= end {
        let healthy = ctx.world.healthy();
        let i = healthy[below(ctx.world.rng(), healthy.len() as u64) as usize];
        ctx.register(i, "web", &format!("steady-{k}"), 9_000, true)?;
        k += 1;
        ctx.world.run_for(WRITE_EVERY);
    }
    ctx.world.run_until(end);
    r.writing = snap.traffic(&ctx.world);

    // Per write: the first holder in each other data centre, and the last node.
    let w = &ctx.world;
    let m = &w.monitor;
    let (mut every_dc, mut all) = (Vec::new(), Vec::new());
    for write in &m.registry().writes()[first_write..] {
        let since = |t: u64| Duration::from_micros(t.saturating_sub(write.at));
        let eligible = |o: u32| o != write.writer && w.is_healthy(o);
        let mut slowest_dc = Some(0u64);
        for d in (0..DCS).filter(|&d| d != dc_of(write.writer, n)) {
            let first = (0..n as u32)
                .filter(|&o| dc_of(o, n) == d && eligible(o))
                .filter_map(|o| m.seen_at(write.watch(), o))
                .min();
            slowest_dc = match (slowest_dc, first) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        let last = (0..n as u32)
            .filter(|&o| eligible(o))
            .map(|o| m.seen_at(write.watch(), o))
            .try_fold(0u64, |acc, t| t.map(|t| acc.max(t)));
        expect(slowest_dc.is_some() && last.is_some(), || {
            format!("{} did not reach every node", write.id)
        })?;
        every_dc.extend(slowest_dc.map(since));
        all.extend(last.map(since));
    }
    r.write_to_every_dc = Percentiles::of(every_dc);
    r.write_to_all = Percentiles::of(all);
    Ok(())
}

/// Phase 2: one crash per data centre; detection inside the victim's data centre and
/// everywhere.
fn crashes(ctx: &mut Ctx, r: &mut Dc3Report) -> Result<(), String> {
    let n = ctx.n();
    let per_dc = (n / usize::from(DCS) / 30).max(1);
    let mut victims = Vec::new();
    for d in 0..DCS {
        let mut members: Vec<u32> = (1..n as u32).filter(|&i| dc_of(i, n) == d).collect();
        for _ in 0..per_dc {
            let k = below(ctx.world.rng(), members.len() as u64) as usize;
            victims.push(members.swap_remove(k));
        }
    }
    for &v in &victims {
        ctx.world.crash(v);
        ctx.world.run_for(Duration::from_secs(3));
    }
    let bound = ctx.detect_bound();
    ctx.world.run_for(bound);
    let w = &ctx.world;
    let everywhere = crashes_detected(w, bound)?;
    let in_dc = victims.iter().filter_map(|&v| {
        let d = dc_of(v, n);
        w.monitor
            .detections(|o| w.is_healthy(o) && dc_of(o, n) == d)
            .into_iter()
            .find(|x| x.node == v)
            .and_then(|x| x.all_failed)
    });
    r.detection_in_dc = Percentiles::of(in_dc);
    r.detection_everywhere = Percentiles::of(everywhere.iter().filter_map(|d| d.all_failed));
    r.first_failed = Percentiles::of(everywhere.iter().filter_map(|d| d.first_failed));
    let c = w.monitor.counts;
    r.false_failures_before_cut = c.false_failures;
    r.false_suspicions_before_cut = c.false_suspicions;
    // The crashed nodes' entries go (their owners are gone); then all agree again.
    let bound = ctx.registry_bound();
    ctx.settle_registry("after the crashes", bound)?;
    Ok(())
}

/// Phases 3 and 4: the last data centre cut off, then healed.
fn cut_and_heal(ctx: &mut Ctx, r: &mut Dc3Report) -> Result<(), String> {
    let n = ctx.n();
    let healthy = ctx.world.healthy();
    let sides = Sides {
        cut_off: (0..ctx.world.len() as u32)
            .map(|i| dc_of(i, n) == DCS - 1)
            .collect(),
    };
    let minority: Vec<u32> = healthy
        .iter()
        .copied()
        .filter(|&i| sides.cut_off[i as usize])
        .collect();
    let majority: Vec<u32> = healthy
        .iter()
        .copied()
        .filter(|&i| !sides.cut_off[i as usize])
        .collect();
    let cut_len = ctx.params.duration.unwrap_or(CUT);
    // Shorter, and the sides may still be telling each other apart at the heal: what the
    // checks below would report is the scenario's set-up, not a fault.
    let detect = ctx.detect_bound();
    expect(cut_len >= detect, || {
        format!("--duration {cut_len:?}: the cut must outlast detection ({detect:?} here)")
    })?;
    let snap = Snap::of(&ctx.world);
    let start = ctx.world.now_us();
    ctx.world.partition(&[&minority]);
    let sample_us = SAMPLE_EVERY.as_micros() as u64;
    let mut wrote = false;
    while ctx.world.now_us() < start + cut_len.as_micros() as u64 {
        let t = ctx.world.now_us();
        if !wrote && t >= start + 5_000_000 {
            // Each side writes where the other cannot see it.
            for (side, name) in [(&majority, "major"), (&minority, "minor")] {
                for k in 0..2 {
                    let i = side[below(ctx.world.rng(), side.len() as u64) as usize];
                    ctx.register(i, "api", &format!("cut-{name}-{k}"), 9_100, false)?;
                }
            }
            wrote = true;
        }
        let (majority_s, minority_s) = sides.sample(&ctx.world);
        r.timeline.push(Sample {
            t_s: (t - start) as f64 / 1e6,
            healed: false,
            majority: majority_s,
            minority: minority_s,
        });
        ctx.world
            .run_until((t + sample_us).min(start + cut_len.as_micros() as u64));
    }
    r.cut.seconds = cut_len.as_secs_f64();
    let first = |f: &dyn Fn(&Sample) -> bool| r.timeline.iter().find(|x| f(x)).map(|x| x.t_s);
    r.cut.minority_lost_quorum_s = first(&|x| x.minority.with_quorum == 0);
    r.cut.majority_purged_s = first(&|x| x.majority.other_side_entries_mean == 0.0);
    r.cut.sides_apart_s = first(&|x| {
        x.majority.alive_seen_mean <= (majority.len() - 1) as f64
            && x.minority.alive_seen_mean <= (minority.len() - 1) as f64
    });
    r.cut.traffic = snap.traffic(&ctx.world);
    let (majority_s, minority_s) = sides.sample(&ctx.world);
    r.cut.majority = majority_s;
    r.cut.minority = minority_s;
    // The cut took effect, and self-preservation did what it is for.
    expect(ctx.world.net.stats.cut > snap.net.cut, || {
        "the cut dropped no datagram".into()
    })?;
    let (maj, min) = (majority_s, minority_s);
    expect(
        maj.alive_seen_mean <= (majority.len() - 1) as f64
            && min.alive_seen_mean <= (minority.len() - 1) as f64,
        || format!("the sides still see each other alive after the cut: {maj:?} {min:?}"),
    )?;
    expect(
        maj.with_quorum == majority.len() && min.with_quorum == 0,
        || format!("quorum: {maj:?} {min:?}"),
    )?;
    expect(maj.other_side_entries_mean == 0.0, || {
        format!("the side with quorum kept the cut-off side's entries: {maj:?}")
    })?;
    expect(min.other_side_entries_mean > 0.0, || {
        format!("the side without quorum purged the other side's entries: {min:?}")
    })?;

    // Heal: sample on, every check step, until both membership and the registry agree.
    ctx.world.heal();
    let healed = ctx.world.now_us();
    let bound = ctx.registry_bound().max(ctx.converge_bound());
    let step = ctx.check_step().as_micros() as u64;
    let mut next_sample = healed;
    loop {
        let now = ctx.world.now_us();
        if now >= next_sample {
            let (majority_s, minority_s) = sides.sample(&ctx.world);
            r.timeline.push(Sample {
                t_s: (now - start) as f64 / 1e6,
                healed: true,
                majority: majority_s,
                minority: minority_s,
            });
            // Finer than during the cut: the heal takes seconds.
            next_sample += step;
        }
        let since = (now - healed) as f64 / 1e6;
        if r.heal.membership_agrees_s.is_none() && membership_agrees(&ctx.world).is_ok() {
            r.heal.membership_agrees_s = Some(since);
        }
        if r.heal.membership_agrees_s.is_some()
            && registry_agrees(&ctx.world).is_ok()
            && registry_matches_writes(&ctx.world).is_ok()
        {
            r.heal.registry_agrees_s = Some(since);
            break;
        }
        if now >= healed + bound.as_micros() as u64 {
            break;
        }
        ctx.world.run_until(now + step);
    }
    ctx.report.heal_converged_s = r.heal.membership_agrees_s;
    ctx.report.registry_converged_s = r.heal.registry_agrees_s;
    let membership_bound = ctx.converge_bound().as_secs_f64();
    expect(
        r.heal
            .membership_agrees_s
            .is_some_and(|t| t <= membership_bound),
        || {
            format!(
                "membership did not agree within {membership_bound:.1}s of the heal: {}",
                membership_agrees(&ctx.world).err().unwrap_or_default()
            )
        },
    )?;
    expect(r.heal.registry_agrees_s.is_some(), || {
        let why = registry_agrees(&ctx.world)
            .and_then(|()| registry_matches_writes(&ctx.world))
            .err()
            .unwrap_or_default();
        format!("the registry did not agree within {bound:?} of the heal: {why}")
    })
}

/// No failure was declared inside a data centre about a live member.
fn no_intra_dc_false_failures(w: &World) -> Result<(), String> {
    let m = &w.monitor;
    expect(m.counts.intra_dc_false_failures == 0, || {
        let samples: Vec<String> = m
            .intra_dc_false_failure_samples
            .iter()
            .take(5)
            .map(|(t, o, s)| format!("n{o} declared n{s} failed at {:.3}s", *t as f64 / 1e6))
            .collect();
        format!(
            "{} failures declared inside a data centre about a live member: {}",
            m.counts.intra_dc_false_failures,
            samples.join("; ")
        )
    })
}
