//! `registry-churn`: a registry of N × K instances (100 × 1,000 at full size) under churn
//! (issue 17).
//!
//! All but one node form the cluster; each registers K instances through its API (five
//! services, two tags, a TTL check), 20 s of bulk registrations, and the registry must agree
//! everywhere. Then for `--duration` (60 s) one node a tenth of a second deletes, updates or
//! adds one of its own instances; three nodes crash: one restarts 10 s later, one once its
//! instances are gone everywhere, each with `Command::Restore` of what it owned (as the
//! driver does from its data directory), and one stays down; the last node joins 20 s in and
//! registers its K. After the churn: every live node holds the newest write of every entry
//! (equal registry digests, then entry by entry against the log) within a bound; the owner
//! that stayed down has no entry left anywhere (SPEC §3: a failed owner's instances are
//! dropped); no deletion came back; no false failure.

use std::time::Duration;

use hera::names::{InstanceId, ServiceName};
use hera::node::{Command, Restored};
use hera::registry::{InstanceSpec, SpecCheck};
use hera::wire::MessageKind;

use super::{expect, Ctx};
use crate::check::{no_false_failures, no_resurrections, registry_agrees};
use crate::network::below;
use crate::report::churn::{ChurnReport, PhaseBytes};
use crate::{Status, World};

/// The services instances are registered under (ids are `{service}-n{node}-{k}`).
const SERVICES: [&str; 5] = ["api", "db", "cache", "web", "queue"];
/// Instances each node registers unless `--instances` says otherwise.
const PER_NODE: usize = 1_000;
/// The bulk registrations are spread over this, in rounds of `ROUND`.
const REGISTER_WINDOW: Duration = Duration::from_secs(20);
const ROUND: Duration = Duration::from_millis(100);
/// Longer than any run: no check expires (its expiry would be a write).
const TTL: Duration = Duration::from_secs(24 * 3600);
/// The churn phase, unless `--duration` says otherwise.
const CHURN: Duration = Duration::from_secs(60);
/// From the start of the churn: the crashes, the quick restart, the late join.
const CRASH_AT: Duration = Duration::from_secs(5);
const QUICK_RESTART_AFTER: Duration = Duration::from_secs(10);
const LATE_JOIN_AT: Duration = Duration::from_secs(20);
/// The longest wait for the gossip queues to empty before the idle window.
const DRAIN_MAX: Duration = Duration::from_secs(3_600);
/// How often the slower checks (entries gone, the late node holding all) look.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// One instance a node owns: its id and service.
type Owned = (InstanceId, &'static str);

fn spec(i: u32, service: &str, id: &InstanceId, port: u16) -> Result<InstanceSpec, String> {
    let name = ServiceName::new(service).map_err(|e| e.to_string())?;
    let mut spec = InstanceSpec::new(
        name,
        &format!("10.{}.{}.{}", i >> 8, i & 255, port % 250),
        port,
    );
    spec.id = Some(id.clone());
    spec.tags = vec![format!("v{}", port % 3), "zone-a".to_string()];
    spec.check = SpecCheck::Ttl { ttl: TTL };
    Ok(spec)
}

fn instance_id(service: &str, i: u32, k: &str) -> Result<InstanceId, String> {
    InstanceId::new(&format!("{service}-n{i}-{k}")).map_err(|e| e.to_string())
}

/// What node `i` would keep of itself in its data directory: its own instances at their
/// versions, its incarnation and its registry clock.
fn saved(world: &World, i: u32) -> Result<Restored, String> {
    let node = world.node(i).ok_or(format!("n{i} is not running"))?;
    let registry = node.registry();
    let instances = registry
        .owned_by(world.name(i))
        .iter()
        .filter_map(|id| registry.entry(id))
        .collect();
    Ok(Restored {
        instances,
        incarnation: node.incarnation(),
        clock: registry.clock_high_water(),
        node_checks: Vec::new(),
    })
}

/// No healthy node holds any of `ids` alive.
fn ids_gone(world: &World, ids: &[InstanceId]) -> bool {
    world.healthy().iter().all(|&i| {
        world
            .node(i)
            .is_some_and(|n| ids.iter().all(|id| n.registry().get(id).is_none()))
    })
}

/// Node `late` holds every id of `ids` still live in the log with its writer up.
fn holds_all(world: &World, late: u32, ids: &[InstanceId]) -> bool {
    let Some(node) = world.node(late) else {
        return false;
    };
    let log = world.monitor.registry();
    ids.iter().all(|id| {
        let expected = log
            .newest(id)
            .is_some_and(|w| w.is_live() && world.status(w.writer) == Status::Up);
        !expected || node.registry().get(id).is_some()
    })
}

/// The most registry entries queued for gossip on any healthy node now.
fn queued_entries(world: &World) -> usize {
    world
        .healthy()
        .iter()
        .filter_map(|&i| world.node(i))
        .map(|x| x.queued_entries())
        .max()
        .unwrap_or(0)
}

/// Traffic counters now: time (µs), datagrams, bytes, the running nodes' messages by kind.
type Snap = (u64, u64, u64, [u64; MessageKind::ALL.len()]);

fn traffic(world: &World) -> Snap {
    let s = world.net.stats;
    let mut messages = [0; MessageKind::ALL.len()];
    for node in (0..world.len() as u32).filter_map(|i| world.node(i)) {
        for (m, n) in messages.iter_mut().zip(node.stats().messages_out) {
            *m += n;
        }
    }
    (world.now_us(), s.sent, s.sent_bytes, messages)
}

fn phase(world: &World, since: Snap) -> PhaseBytes {
    let now = traffic(world);
    let secs = (now.0 - since.0) as f64 / 1e6;
    let per = secs.max(1e-9) * world.healthy().len().max(1) as f64;
    PhaseBytes {
        seconds: secs,
        datagrams_per_node_s: (now.1 - since.1) as f64 / per,
        bytes_per_node_s: (now.2 - since.2) as f64 / per,
        // A crash in the phase takes its node's counts with it: saturate.
        messages_per_node_s: MessageKind::ALL
            .iter()
            .zip(now.3.iter().zip(since.3))
            .map(|(k, (now, then))| (format!("{k:?}"), now.saturating_sub(then) as f64 / per))
            .filter(|(_, v)| *v > 0.0)
            .collect(),
    }
}

impl Ctx {
    /// Node `i` registers the next `count` of its bulk instances (`from` counts them).
    fn register_batch(
        &mut self,
        i: u32,
        from: &mut usize,
        count: usize,
        owned: &mut [Vec<Owned>],
    ) -> Result<(), String> {
        let per_node = self.params.per_node.unwrap_or(PER_NODE);
        let to = (*from + count).min(per_node);
        for k in *from..to {
            let service = SERVICES[k % SERVICES.len()];
            let id = instance_id(service, i, &k.to_string())?;
            let spec = spec(i, service, &id, 8_000 + (k % 1_000) as u16)?;
            self.world
                .register_bulk(i, spec)
                .map_err(|e| format!("n{i} refused to register {id}: {e}"))?;
            owned[i as usize].push((id, service));
        }
        *from = to;
        Ok(())
    }

    /// One churn write by a random healthy owner: delete, update or add one of its own.
    fn churn_write(&mut self, owned: &mut [Vec<Owned>], seq: &mut u32) -> Result<(), String> {
        let writers: Vec<u32> = self
            .world
            .healthy()
            .into_iter()
            .filter(|&i| !owned[i as usize].is_empty())
            .collect();
        if writers.is_empty() {
            return Ok(());
        }
        let i = writers[below(self.world.rng(), writers.len() as u64) as usize];
        let mine = &mut owned[i as usize];
        let k = below(self.world.rng(), mine.len() as u64) as usize;
        let roll = below(self.world.rng(), 10);
        *seq += 1;
        let port = 9_000 + (*seq % 1_000) as u16;
        if roll < 4 {
            let (id, _) = mine.swap_remove(k);
            self.world
                .deregister(i, &id, true)
                .map_err(|e| format!("n{i} refused to deregister {id}: {e}"))
        } else if roll < 7 {
            let (id, service) = mine[k].clone();
            self.world
                .register(i, spec(i, service, &id, port)?, true)
                .map(|_| ())
                .map_err(|e| format!("n{i} refused to update {id}: {e}"))
        } else {
            let service = SERVICES[*seq as usize % SERVICES.len()];
            let id = instance_id(service, i, &format!("c{seq}"))?;
            self.world
                .register(i, spec(i, service, &id, port)?, true)
                .map_err(|e| format!("n{i} refused to register {id}: {e}"))?;
            mine.push((id, service));
            Ok(())
        }
    }

    /// Node `i` comes back: a new process restoring what it saved, joining through node 0.
    fn restart_restoring(&mut self, i: u32, saved: Restored) -> Result<(), String> {
        self.world.say(format_args!(
            "restart {} restoring {} instances",
            self.world.name(i),
            saved.instances.len()
        ));
        self.world.start(i);
        self.world
            .command(i, Command::Restore(Box::new(saved)))
            .map_err(|e| format!("n{i} refused its restore: {e}"))?;
        self.world.join(i, &[0]);
        Ok(())
    }
}

pub fn registry_churn(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n() as u32;
    expect(n >= 5, || "registry-churn needs at least 5 nodes".into())?;
    let per_node = ctx.params.per_node.unwrap_or(PER_NODE);
    let late = n - 1;
    ctx.bootstrap_first(late)?;
    let mut report = ChurnReport {
        per_node,
        instances: per_node * n as usize,
        ..ChurnReport::default()
    };
    let mut owned: Vec<Vec<Owned>> = vec![Vec::new(); n as usize];

    // Bulk registrations: every node but the late one, in rounds.
    let rounds = (REGISTER_WINDOW.as_micros() / ROUND.as_micros()) as usize;
    let batch = per_node.div_ceil(rounds);
    let mut done = vec![0usize; n as usize];
    let start = traffic(&ctx.world);
    while done[..late as usize].iter().any(|&d| d < per_node) {
        for i in 0..late {
            let mut d = done[i as usize];
            ctx.register_batch(i, &mut d, batch, &mut owned)?;
            done[i as usize] = d;
        }
        ctx.world.run_for(ROUND);
        report.queued_entries_peak = report.queued_entries_peak.max(queued_entries(&ctx.world));
    }
    let bound = ctx.registry_bound() + REGISTER_WINDOW;
    ctx.settle_registry("after the bulk registrations", bound)?;
    report.registered_everywhere_s = Some((ctx.world.now_us() - start.0) as f64 / 1e6);
    report.registering = phase(&ctx.world, start);

    // The churn.
    let churn_start = traffic(&ctx.world);
    let t0 = ctx.world.now_us();
    let us = |d: Duration| d.as_micros() as u64;
    let end = t0 + us(ctx.duration(CHURN));
    let mut victims: Vec<u32> = (1..late).collect();
    for k in (1..victims.len()).rev() {
        let j = below(ctx.world.rng(), k as u64 + 1) as usize;
        victims.swap(k, j);
    }
    let (quick, purged, gone) = (victims[0], victims[1], victims[2]);
    let purge_bound = ctx.detect_bound() + ctx.suspicion_max() + ctx.config().registry_tick;
    let hard_end = end + us(CRASH_AT + purge_bound + LOOK_EVERY * 2);
    let (mut quick_saved, mut purged_saved) = (None, None);
    let (mut purged_ids, mut gone_ids) = (Vec::new(), Vec::new());
    let (mut crashed_at, mut quick_back, mut purged_back) = (None, false, false);
    let (mut late_at, mut late_snapshot): (Option<u64>, Vec<InstanceId>) = (None, Vec::new());
    let mut next_look = t0;
    let (mut seq, mut writes) = (0u32, 0usize);
    loop {
        let now = ctx.world.now_us();
        let at = |d: Duration| now >= t0 + us(d);
        if crashed_at.is_none() && at(CRASH_AT) {
            for &v in &[quick, purged, gone] {
                let name = ctx.world.name(v).clone();
                let ids = ctx.world.node(v).map(|x| x.registry().owned_by(&name));
                let ids = ids.unwrap_or_default();
                match v {
                    _ if v == quick => quick_saved = Some(saved(&ctx.world, v)?),
                    _ if v == purged => {
                        purged_saved = Some(saved(&ctx.world, v)?);
                        purged_ids = ids;
                    }
                    _ => gone_ids = ids,
                }
                ctx.world.crash(v);
            }
            crashed_at = Some(now);
        }
        if let (Some(c), Some(s)) = (crashed_at, quick_saved.as_ref()) {
            if !quick_back && now >= c + us(QUICK_RESTART_AFTER) {
                ctx.restart_restoring(quick, s.clone())?;
                quick_back = true;
            }
        }
        if late_at.is_none() && at(LATE_JOIN_AT) {
            late_snapshot = ctx
                .world
                .node(0)
                .map(|x| x.registry().instances().map(|i| i.id.clone()).collect())
                .unwrap_or_default();
            ctx.world.start(late);
            ctx.world.join(late, &[0]);
            late_at = Some(now);
        }
        if late_at.is_some() && done[late as usize] < per_node {
            let mut d = done[late as usize];
            ctx.register_batch(late, &mut d, batch, &mut owned)?;
            done[late as usize] = d;
        }
        if now >= next_look {
            next_look = now + us(LOOK_EVERY);
            if let Some(c) = crashed_at {
                let since = (now - c) as f64 / 1e6;
                if report.crashed_owner_gone_s.is_none() && ids_gone(&ctx.world, &gone_ids) {
                    report.crashed_owner_gone_s = Some(since);
                }
                if !purged_back && ids_gone(&ctx.world, &purged_ids) {
                    report.purged_owner_gone_s = Some(since);
                    if let Some(s) = purged_saved.take() {
                        ctx.restart_restoring(purged, s)?;
                    }
                    purged_back = true;
                }
            }
            if let (Some(l), None) = (late_at, report.late_join_holds_all_s) {
                if holds_all(&ctx.world, late, &late_snapshot) {
                    report.late_join_holds_all_s = Some((now - l) as f64 / 1e6);
                }
            }
        }
        let finished = now >= end && purged_back && done[late as usize] >= per_node;
        if finished || now >= hard_end {
            break;
        }
        if now < end {
            ctx.churn_write(&mut owned, &mut seq)?;
            writes += 1;
        }
        ctx.world.run_for(ROUND);
        report.queued_entries_peak = report.queued_entries_peak.max(queued_entries(&ctx.world));
    }
    report.churn_writes = writes;
    report.churn = phase(&ctx.world, churn_start);
    // The faults took effect: the crashed owners' entries were dropped everywhere.
    expect(report.crashed_owner_gone_s.is_some(), || {
        format!(
            "n{gone} crashed and its {} instances were not gone everywhere {purge_bound:?} later",
            gone_ids.len()
        )
    })?;
    expect(purged_back, || {
        format!(
            "n{purged} crashed and its {} instances were not gone everywhere {purge_bound:?} later",
            purged_ids.len()
        )
    })?;
    for s in [report.crashed_owner_gone_s, report.purged_owner_gone_s] {
        let s = s.unwrap_or(f64::INFINITY);
        expect(
            s <= purge_bound.as_secs_f64() + LOOK_EVERY.as_secs_f64(),
            || {
                format!("a crashed owner's entries went only {s:.1}s after the crash (bound {purge_bound:?})")
            },
        )?;
    }

    // After the churn: everything agrees within a bound.
    let bound = ctx.registry_bound();
    let settled = ctx.settle_registry("after the churn", bound)?;
    report.converged_s = Some(settled.as_secs_f64());
    expect(ids_gone(&ctx.world, &gone_ids), || {
        format!("n{gone}'s instances came back after its crash")
    })?;

    // Idle: once every gossip queue is empty (each entry is sent `retransmit_mult ·
    // log10 N` times, by every node), two sync rounds; then weigh.
    let queues = |w: &World| -> usize {
        w.healthy()
            .iter()
            .filter_map(|&i| w.node(i))
            .map(|x| x.queue_depth())
            .max()
            .unwrap_or(0)
    };
    report.queue_depth_at_converged = queues(&ctx.world);
    let draining = traffic(&ctx.world);
    let mut peak = report.queued_entries_peak;
    report.queues_empty_s = ctx
        .world
        .run_until_true(DRAIN_MAX, LOOK_EVERY, |w| {
            peak = peak.max(queued_entries(w));
            queues(w) == 0
        })
        .map(|d| d.as_secs_f64());
    report.queued_entries_peak = peak;
    report.draining = phase(&ctx.world, draining);
    let idle = traffic(&ctx.world);
    ctx.world.run_for(ctx.config().sync_interval * 2);
    report.idle = phase(&ctx.world, idle);
    registry_agrees(&ctx.world)?;
    let held: usize = ctx
        .world
        .healthy()
        .iter()
        .filter_map(|&i| ctx.world.node(i))
        .map(|x| x.registry().len())
        .sum();
    let up = ctx.world.healthy();
    let dropped: u64 = up
        .iter()
        .filter_map(|&i| ctx.world.node(i))
        .map(|x| x.stats().gossip_instances_dropped)
        .sum();
    report.gossip_dropped_per_node = dropped as f64 / up.len().max(1) as f64;
    if let Some(node) = ctx.world.node(0) {
        report.entries_per_node = node.registry().len();
        report.tombstones_per_node = node.registry().tombstones();
    }
    if let Some(heap) = ctx.params.heap_bytes {
        let h = heap();
        report.heap_idle_bytes = Some(h as u64);
        report.heap_bytes_per_entry = Some(h as f64 / held.max(1) as f64);
    }
    ctx.report.churn = Some(report);
    let m = &ctx.world.monitor;
    let w = &ctx.world;
    let spreads = m.write_spreads(|o, at| w.is_healthy(o) && m.up_throughout(o, at));
    let gossip = ctx.config().gossip_interval;
    ctx.report.write_reach = Some(crate::report::WriteReachReport::of(&spreads, gossip));
    no_false_failures(&ctx.world)?;
    no_resurrections(&ctx.world)
}
