//! Registry scenarios: writes under loss and during partitions, deletions racing older writes,
//! owners crashing. Each asserts its fault took effect (datagrams lost or cut, the far side
//! declared failed, the two sides' registries apart) before it asserts recovery: every node
//! holds the newest write of every entry ([`registry_matches_writes`]), no deleted entry came
//! back ([`no_resurrections`]), crashed owners' entries are gone ([`owners_gone`]).
//!
//! Over 600 lines: five scenarios sharing one writer and one set of checks; each is short, and
//! splitting them would scatter the helpers they share.

use std::time::Duration;

use hera::names::{InstanceId, ServiceName};
use hera::registry::InstanceSpec;

use super::{expect, Ctx};
use crate::check::{
    membership_agrees, no_false_failures, no_resurrections, owners_gone, registry_agrees,
    registry_matches_writes,
};
use crate::network::below;
use crate::report::{Percentiles, WriteReachReport};

/// The services instances are registered under (ids are `{service}-{key}`).
const SERVICES: [&str; 4] = ["api", "db", "cache", "web"];
/// Instances each node registers before the fault.
const PER_NODE: usize = 2;
/// Writes to the same entry are at least this far apart in the partition scenarios: far above
/// the nodes' clock skew (50 ms), so the write made last in virtual time carries the newest
/// version, and "last writer wins" can be checked literally.
const SAME_ID_GAP: Duration = Duration::from_secs(2);

impl Ctx {
    /// Node `i` registers instance `key` of `service` (id `{service}-{key}`) through its API.
    pub fn register(
        &mut self,
        i: u32,
        service: &str,
        key: &str,
        port: u16,
        timed: bool,
    ) -> Result<InstanceId, String> {
        let id = InstanceId::new(&format!("{service}-{key}")).map_err(|e| e.to_string())?;
        self.write(i, service, id, port, timed)
    }

    /// Node `i` registers `id` again at another port: a new version, owned by `i`.
    pub fn update(&mut self, i: u32, id: &InstanceId, port: u16) -> Result<InstanceId, String> {
        let service = self
            .world
            .monitor
            .registry()
            .newest(id)
            .and_then(|w| w.service.clone())
            .ok_or_else(|| format!("scenario bug: {id} is not a live entry"))?;
        self.write(i, service.as_str(), id.clone(), port, true)
    }

    fn write(
        &mut self,
        i: u32,
        service: &str,
        id: InstanceId,
        port: u16,
        timed: bool,
    ) -> Result<InstanceId, String> {
        // The resurrection check relies on it.
        if self.world.monitor.registry().was_deleted(&id) {
            return Err(format!(
                "scenario bug: {id} registered again after its deletion"
            ));
        }
        let service = ServiceName::new(service).map_err(|e| e.to_string())?;
        let mut spec = InstanceSpec::new(service, &format!("10.200.{}.{}", i >> 8, i & 255), port);
        spec.id = Some(id.clone());
        self.world
            .register(i, spec, timed)
            .map_err(|e| format!("n{i} refused to register {id}: {e}"))
    }

    /// Node `i` deletes `id` through its API.
    pub fn deregister(&mut self, i: u32, id: &InstanceId) -> Result<(), String> {
        self.world
            .deregister(i, id, true)
            .map_err(|e| format!("n{i} refused to deregister {id}: {e}"))
    }

    /// Every node registers `per_node` instances, 1 ms apart; returns the ids, node by node.
    pub fn register_everywhere(&mut self, per_node: usize) -> Result<Vec<InstanceId>, String> {
        let mut ids = Vec::with_capacity(self.n() * per_node);
        for i in 0..self.n() as u32 {
            for k in 0..per_node {
                let service = SERVICES[(i as usize + k) % SERVICES.len()];
                ids.push(self.register(i, service, &format!("n{i}-{k}"), 8_000, false)?);
            }
            self.world.run_for(Duration::from_millis(1));
        }
        Ok(ids)
    }

    /// After a heal, the registry must agree within this: membership first, then an
    /// anti-entropy round or two (each node compares registries with one random member every
    /// sync interval, and a pushed entry is gossiped on by whoever lacked it).
    pub fn registry_bound(&self) -> Duration {
        self.converge_bound() + self.config().sync_interval * 2
    }

    /// Wait until membership agrees and every node holds the newest write of every entry.
    pub fn settle_registry(&mut self, what: &str, bound: Duration) -> Result<Duration, String> {
        let step = self.check_step();
        let check = |w: &crate::World| {
            membership_agrees(w)?;
            registry_agrees(w)?;
            registry_matches_writes(w)
        };
        self.world
            .run_until_true(bound, step, |w| check(w).is_ok())
            .ok_or_else(|| {
                format!(
                    "{what}: the registry still disagrees {bound:?} later: {}",
                    check(&self.world).err().unwrap_or_default()
                )
            })
    }

    /// A random healthy node.
    fn any_healthy(&mut self) -> Option<u32> {
        let healthy = self.world.healthy();
        let k = below(self.world.rng(), healthy.len() as u64) as usize;
        healthy.get(k).copied()
    }

    fn pick_from<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        let k = below(self.world.rng(), items.len() as u64) as usize;
        items.get(k).cloned()
    }

    /// Node `i` holds `id` alive.
    fn holds_live(&self, i: u32, id: &InstanceId) -> bool {
        self.world
            .node(i)
            .is_some_and(|n| n.registry().get(id).is_some())
    }

    /// The last write in the log: the one a scenario just made.
    fn last_write(&self) -> usize {
        self.world.monitor.registry().writes().len() - 1
    }

    /// Whether node `i` stores exactly the version write `k` made (not an older one, not a
    /// newer one of its own).
    fn stores_write(&self, i: u32, k: usize) -> bool {
        let w = &self.world.monitor.registry().writes()[k];
        self.world
            .node(i)
            .and_then(|n| n.registry().stored(&w.id))
            .is_some_and(|s| s.version == w.version)
    }

    /// Loss for a fault phase (`--loss`, default none); it ends with the fault.
    fn fault_loss(&mut self) -> f64 {
        let p = self.params.loss.unwrap_or(0.0);
        self.report.loss = p;
        if p > 0.0 {
            self.world.set_loss(p);
        }
        p
    }

    fn report_write_reach(&mut self) {
        let m = &self.world.monitor;
        let w = &self.world;
        let spreads = m.write_spreads(|o, at| w.is_healthy(o) && m.up_throughout(o, at));
        let gossip = self.config().gossip_interval;
        self.report.write_reach = Some(WriteReachReport::of(&spreads, gossip));
    }
}

/// Ongoing registry traffic: every node registers a few instances, then for the duration a
/// random node registers a new instance, updates one (moving its ownership) or deletes one,
/// five times a second, under `--loss` (default none). Every write's reach to 50%, 99% and
/// all of the live nodes is measured; after the writes (and the loss) stop, every node must
/// hold the newest write of every entry, and no deleted entry may have come back anywhere.
pub fn registry(ctx: &mut Ctx) -> Result<(), String> {
    traffic(ctx, 0.0)
}

/// [`registry`] at 10% uniform loss unless `--loss` says otherwise.
pub fn registry_loss(ctx: &mut Ctx) -> Result<(), String> {
    traffic(ctx, 0.10)
}

fn traffic(ctx: &mut Ctx, default_loss: f64) -> Result<(), String> {
    ctx.bootstrap()?;
    let heap0 = ctx.params.heap_bytes.map(|heap| heap());
    let mut live = ctx.register_everywhere(PER_NODE)?;
    ctx.settle_registry("after the first registrations", ctx.registry_bound())?;
    if let (Some(heap), Some(heap0)) = (ctx.params.heap_bytes, heap0) {
        // Let the registrations run out their retransmissions, then weigh the registries:
        // every node holds every entry.
        ctx.world.run_for(Duration::from_secs(10));
        let stored = ctx.n() * live.len();
        let grown = heap().saturating_sub(heap0);
        ctx.report.note(
            "heap per stored entry",
            format!(
                "{:.0} B ({:.1} MiB for {} entries on {} nodes, after 10 s of quiet; \
                 size_of Instance {} B, Stored {} B)",
                grown as f64 / stored as f64,
                grown as f64 / 1048576.0,
                live.len(),
                ctx.n(),
                std::mem::size_of::<hera::registry::Instance>(),
                std::mem::size_of::<hera::registry::Stored>()
            ),
        );
    }
    let (sent0, bytes0, t0) = (
        ctx.world.net.stats.sent,
        ctx.world.net.stats.sent_bytes,
        ctx.world.now(),
    );
    let p = ctx.params.loss.unwrap_or(default_loss);
    ctx.report.loss = p;
    let d = ctx.duration(Duration::from_secs(60));
    let gap = Duration::from_millis(200);
    let (lost0, failed0) = (ctx.world.net.stats.lost, ctx.probes_failed());
    let false0 = ctx.world.monitor.counts.false_failures;
    ctx.world.set_loss(p);
    let (mut added, mut updated, mut deleted) = (0, 0, 0);
    // Bounded: one write per gap.
    let steps = (d.as_micros() / gap.as_micros()) as usize;
    for step in 0..steps {
        let Some(i) = ctx.any_healthy() else { break };
        let port = 10_000 + (step % 50_000) as u16;
        match below(ctx.world.rng(), 10) {
            0..=3 => {
                let service = SERVICES[below(ctx.world.rng(), SERVICES.len() as u64) as usize];
                live.push(ctx.register(i, service, &format!("w{step}"), port, true)?);
                added += 1;
            }
            4..=7 => {
                if let Some(id) = ctx.pick_from(&live) {
                    ctx.update(i, &id, port)?;
                    updated += 1;
                }
            }
            _ if !live.is_empty() => {
                let k = below(ctx.world.rng(), live.len() as u64) as usize;
                // A node that holds it alive deletes it: this one, or the last writer.
                let last_writer = ctx
                    .world
                    .monitor
                    .registry()
                    .newest(&live[k])
                    .map(|w| w.writer);
                let by = Some(i)
                    .filter(|&i| ctx.holds_live(i, &live[k]))
                    .or(last_writer.filter(|&w| ctx.holds_live(w, &live[k])));
                if let Some(by) = by {
                    let id = live.swap_remove(k);
                    ctx.deregister(by, &id)?;
                    deleted += 1;
                }
            }
            _ => {}
        }
        ctx.world.run_for(gap);
    }
    let secs = (ctx.world.now() - t0).as_secs_f64() * ctx.n() as f64;
    ctx.report.note(
        "traffic during the writes",
        format!(
            "{:.1} datagrams and {:.0} bytes per node per s",
            (ctx.world.net.stats.sent - sent0) as f64 / secs,
            (ctx.world.net.stats.sent_bytes - bytes0) as f64 / secs
        ),
    );
    ctx.report.note(
        "registry writes",
        format!(
            "{} first registrations, then {added} added, {updated} updated, {deleted} deleted \
             over {d:?}; {} probes failed meanwhile",
            ctx.n() * PER_NODE,
            ctx.probes_failed() - failed0
        ),
    );
    expect(added + updated + deleted > 0, || {
        "no registry write was made".into()
    })?;
    ctx.loss_took_effect(p, lost0)?;
    no_resurrections(&ctx.world)?;
    ctx.world.set_loss(0.0);
    let took = ctx.settle_registry("after the writes stopped", ctx.registry_bound())?;
    ctx.report.registry_converged_s = Some(took.as_secs_f64());
    ctx.report_write_reach();
    let reach = ctx.report.write_reach.unwrap_or_default();
    // Once every node holds the newest write of every entry, each write has reached everyone.
    expect(reach.reached_all == reach.writes, || {
        format!(
            "only {} of {} writes reached every live node, though the registry agrees",
            reach.reached_all, reach.writes
        )
    })?;
    no_resurrections(&ctx.world)?;
    if p <= 0.10 {
        no_false_failures(&ctx.world)?;
    } else {
        ctx.report.note(
            "false failures under loss",
            ctx.world.monitor.counts.false_failures - false0,
        );
    }
    Ok(())
}

/// The instance ids (node by node), a side of nodes picked at random and the rest.
struct Sides {
    ids: Vec<InstanceId>,
    side: Vec<u32>,
    rest: Vec<u32>,
}

/// The set-up of the partition scenarios: a cluster in which every node has registered
/// `PER_NODE` instances and every node holds them all, split into a side of `size` nodes and
/// the rest (not cut yet).
fn registered_sides(ctx: &mut Ctx, size: usize) -> Result<Sides, String> {
    ctx.bootstrap()?;
    let ids = ctx.register_everywhere(PER_NODE)?;
    ctx.settle_registry("before the partition", ctx.registry_bound())?;
    let n = ctx.n();
    let mut side = ctx.pick(n - 1);
    side.truncate(size);
    side.sort_unstable();
    let rest: Vec<u32> = (0..n as u32).filter(|i| !side.contains(i)).collect();
    Ok(Sides { ids, side, rest })
}

/// A partition between `a` and `b` took effect: datagrams were cut (and lost, under loss),
/// and nodes on each side (ten at most) declared every node of the other side failed.
fn partition_took_effect(ctx: &Ctx, loss: f64, a: &[u32], b: &[u32]) -> Result<(), String> {
    expect(ctx.world.net.stats.cut > 0, || {
        "the partition cut no datagram".into()
    })?;
    ctx.loss_took_effect(loss, 0)?;
    for (side, other) in [(a, b), (b, a)] {
        for &i in side.iter().take(10) {
            let failed = ctx.world.node(i).map_or(0, |x| x.counts().failed);
            expect(failed == other.len(), || {
                format!(
                    "n{i} declared {failed} of the {} nodes across the partition failed",
                    other.len()
                )
            })?;
        }
    }
    Ok(())
}

/// Splits the nodes into a minority (40%) and a majority side long enough for each to declare
/// the other failed; while apart, both sides write: the same entries on both sides (2 s
/// apart, each side last for half of them), new entries, deletions. The majority side (it
/// sees an alive majority) purges the minority's instances, the minority keeps the majority's
/// (no quorum). After the heal every node must hold the newest write of every entry, the
/// newest being the one made last, and the purged entries must be back.
pub fn registry_partition(ctx: &mut Ctx) -> Result<(), String> {
    let n = ctx.n();
    let Sides {
        ids,
        side: minority,
        rest: majority,
    } = registered_sides(ctx, (n * 2 / 5).max(1))?;
    let d = ctx.duration(ctx.detect_bound() + ctx.suspicion_max() + Duration::from_secs(10));
    let start = ctx.world.now_us();
    ctx.world.partition(&[&minority]);
    let loss = ctx.fault_loss();
    ctx.world.run_for(SAME_ID_GAP);
    // Conflicting writes: the same ids on both sides, the second side SAME_ID_GAP later.
    let mut conflicts = Vec::new();
    for c in 0..6 {
        let Some(id) = ctx.pick_from(&ids) else { break };
        if conflicts.iter().any(|(x, _)| *x == id) {
            continue;
        }
        conflicts.push((id, c % 2 == 0));
    }
    for round in [0u16, 1] {
        for (id, minority_last) in conflicts.clone() {
            // Round 0: the side that does not write last; round 1: the one that does.
            let side = if minority_last == (round == 1) {
                &minority
            } else {
                &majority
            };
            let Some(by) = ctx.pick_from(side) else {
                continue;
            };
            ctx.update(by, &id, 9_001 + round)?;
        }
        ctx.world.run_for(SAME_ID_GAP);
    }
    // New entries on both sides, and a deletion on each (of an entry not in conflict).
    let mut new_writes = (Vec::new(), Vec::new());
    for (side, out) in [
        (&minority, &mut new_writes.0),
        (&majority, &mut new_writes.1),
    ] {
        for k in 0..3 {
            let Some(by) = ctx.pick_from(side) else {
                continue;
            };
            let service = SERVICES[k % SERVICES.len()];
            ctx.register(by, service, &format!("split-n{by}-{k}"), 9_100, true)?;
            out.push(ctx.last_write());
        }
        let Some(by) = ctx.pick_from(side) else {
            continue;
        };
        let victim = ids
            .iter()
            .find(|id| ctx.holds_live(by, id) && !conflicts.iter().any(|(c, _)| c == *id))
            .cloned();
        if let Some(id) = victim {
            ctx.deregister(by, &id)?;
        }
    }
    let elapsed = Duration::from_micros(ctx.world.now_us() - start);
    ctx.world.run_for(d.saturating_sub(elapsed));
    // The fault took effect: datagrams were cut, the majority declared the minority failed
    // (and the reverse), and each side's new entries stayed on its side.
    partition_took_effect(ctx, loss, &minority, &majority)?;
    for (writes, other) in [(&new_writes.0, &majority), (&new_writes.1, &minority)] {
        for &k in writes {
            if let Some(&o) = other.iter().find(|&&o| ctx.stores_write(o, k)) {
                return Err(format!(
                    "n{o} got write {k} across the partition: the registries were not apart"
                ));
            }
        }
    }
    // The quorum rule took effect: the majority purged the minority's instances; the minority
    // kept the majority's (stale: their owners are failed there).
    let minority_names: Vec<_> = minority
        .iter()
        .map(|&i| ctx.world.name(i).clone())
        .collect();
    for &i in majority.iter().take(10) {
        let Some(node) = ctx.world.node(i) else {
            continue;
        };
        if let Some(x) = node
            .registry()
            .instances()
            .find(|x| minority_names.contains(&x.owner))
        {
            return Err(format!(
                "majority n{i} still holds {} of minority {} after {d:?} apart",
                x.id, x.owner
            ));
        }
    }
    for &i in minority.iter().take(10) {
        let Some(node) = ctx.world.node(i) else {
            continue;
        };
        let stale = node
            .registry()
            .instances()
            .filter(|x| node.is_stale(x))
            .count();
        expect(stale > 0, || {
            format!("minority n{i} kept none of the majority's instances")
        })?;
    }
    ctx.world.heal();
    ctx.world.set_loss(0.0);
    let members = ctx.settle("after the partition healed", ctx.converge_bound())?;
    ctx.report.heal_converged_s = Some(members.as_secs_f64());
    let took = ctx.settle_registry("after the partition healed", ctx.registry_bound())?;
    ctx.report.registry_converged_s = Some((members + took).as_secs_f64());
    // Last writer wins, literally: for each conflict the write made last has the newest version.
    for (id, minority_last) in &conflicts {
        let Some(w) = ctx.world.monitor.registry().newest(id) else {
            continue;
        };
        expect(minority.contains(&w.writer) == *minority_last, || {
            format!(
                "{id}: the newest version is n{}'s, not the last writer's ({} side wrote last)",
                w.writer,
                if *minority_last {
                    "minority"
                } else {
                    "majority"
                }
            )
        })?;
    }
    ctx.report.note(
        "partition",
        format!(
            "{} + {} nodes for {d:?}; {} entries written on both sides",
            minority.len(),
            majority.len(),
            conflicts.len()
        ),
    );
    no_resurrections(&ctx.world)?;
    Ok(())
}

/// Splits the nodes in two halves; one side updates a few entries, the other deletes the same
/// entries 2 s later. After the heal the deletion (the newest write) must win everywhere: every
/// node holds the tombstone, and no node that had seen a deletion ever held the entry alive
/// again, though the older live version reaches it from the other side.
pub fn registry_delete(ctx: &mut Ctx) -> Result<(), String> {
    let Sides {
        ids,
        side: a,
        rest: b,
    } = registered_sides(ctx, ctx.n() / 2)?;
    let d = ctx.duration(ctx.detect_bound() + Duration::from_secs(10));
    let start = ctx.world.now_us();
    ctx.world.partition(&[&a]);
    let loss = ctx.fault_loss();
    ctx.world.run_for(SAME_ID_GAP);
    // Entries owned on both sides (ids are registered node by node).
    let mut doomed = Vec::new();
    for side in [&a, &b] {
        for _ in 0..3 {
            let Some(owner) = ctx.pick_from(side) else {
                continue;
            };
            let id = ids[owner as usize * PER_NODE].clone();
            if !doomed.contains(&id) {
                doomed.push(id);
            }
        }
    }
    let mut updates = Vec::new();
    for id in &doomed {
        let Some(by) = ctx.pick_from(&b) else {
            continue;
        };
        ctx.update(by, id, 9_500)?;
        updates.push(ctx.last_write());
    }
    ctx.world.run_for(SAME_ID_GAP);
    let mut deletions = Vec::new();
    for id in &doomed {
        let Some(by) = ctx.pick_from(&a) else {
            continue;
        };
        ctx.deregister(by, id)?;
        deletions.push(ctx.last_write());
    }
    let elapsed = Duration::from_micros(ctx.world.now_us() - start);
    ctx.world.run_for(d.saturating_sub(elapsed));
    // The fault took effect: datagrams were cut, each side declared the other failed, and
    // neither side's writes reached the other.
    partition_took_effect(ctx, loss, &a, &b)?;
    for (writes, other) in [(&updates, &a), (&deletions, &b)] {
        for &k in writes {
            if let Some(&o) = other.iter().find(|&&o| ctx.stores_write(o, k)) {
                return Err(format!(
                    "n{o} got write {k} across the partition: the registries were not apart"
                ));
            }
        }
    }
    no_resurrections(&ctx.world)?;
    ctx.world.heal();
    ctx.world.set_loss(0.0);
    let members = ctx.settle("after the partition healed", ctx.converge_bound())?;
    ctx.report.heal_converged_s = Some(members.as_secs_f64());
    let took = ctx.settle_registry("after the partition healed", ctx.registry_bound())?;
    ctx.report.registry_converged_s = Some((members + took).as_secs_f64());
    // Every node holds the deletion: its tombstone, or past the grace (a partition longer than
    // `tombstone_grace`) its grave, which the node keeps for a grace after the heal.
    for id in &doomed {
        for i in ctx.world.healthy() {
            let Some(registry) = ctx.world.node(i).map(|x| x.registry()) else {
                continue;
            };
            let tombstone = registry.stored(id).is_some_and(|s| s.instance.is_none());
            expect(tombstone || registry.grave(id).is_some(), || {
                format!("n{i} holds neither a tombstone nor a grave of deleted {id}")
            })?;
        }
    }
    ctx.report.note(
        "deleted during the partition",
        format!(
            "{} entries, each updated on the other side {SAME_ID_GAP:?} earlier",
            doomed.len()
        ),
    );
    no_resurrections(&ctx.world)
}

/// A tenth of the nodes (at least one) crash, a few protocol periods apart, each owning a few
/// instances. The core purges a failed owner's instances once it has waited out a whole
/// suspicion window after the failure, if it sees an alive majority; so each crashed owner's
/// entries must be gone from every live node within the detection bound plus one suspicion
/// window and one registry tick. The rest of the registry must stay intact.
pub fn owner_crash(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    ctx.register_everywhere(PER_NODE)?;
    ctx.settle_registry("before the crashes", ctx.registry_bound())?;
    let k = (ctx.n() / 10).max(1);
    let victims = ctx.pick(k);
    let loss = ctx.fault_loss();
    let period = ctx.config().probe_interval;
    let mut crashed_at = Vec::new();
    for &v in &victims {
        ctx.world.crash(v);
        crashed_at.push(ctx.world.now_us());
        let gap = period * 2 + Duration::from_micros(below(ctx.world.rng(), 1_000_000));
        ctx.world.run_for(gap);
    }
    let bound = ctx.detect_bound() + ctx.suspicion_max() + ctx.config().registry_tick;
    let last = *crashed_at.last().unwrap_or(&0);
    let mut gone_at: Vec<Option<u64>> = vec![None; victims.len()];
    let step = Duration::from_millis(100);
    let wait = bound.saturating_sub(Duration::from_micros(ctx.world.now_us() - last));
    ctx.world.run_until_true(wait, step, |w| {
        for (v, at) in victims.iter().zip(gone_at.iter_mut()) {
            if at.is_none() && owners_gone(w, &[*v]).is_ok() {
                *at = Some(w.now_us());
            }
        }
        gone_at.iter().all(Option::is_some)
    });
    // The fault took effect: datagrams went to dead nodes, each victim was suspected.
    expect(ctx.world.net.stats.to_down_node > 0, || {
        "no datagram reached a crashed node's address".into()
    })?;
    ctx.loss_took_effect(loss, 0)?;
    for &v in &victims {
        expect(ctx.world.monitor.marks(v).suspected > 0, || {
            format!("crashed n{v} was never suspected")
        })?;
    }
    let mut took = Vec::new();
    for ((v, at), crash) in victims.iter().zip(&gone_at).zip(&crashed_at) {
        let Some(at) = at else {
            return Err(format!(
                "{} ({bound:?} after n{v} crashed)",
                owners_gone(&ctx.world, &[*v]).err().unwrap_or_default()
            ));
        };
        took.push(Duration::from_micros(at - crash));
    }
    ctx.report.owner_entries_gone = Some(Percentiles::of(took));
    ctx.report
        .note("owner purge bound", format!("{bound:?} after each crash"));
    ctx.world.set_loss(0.0);
    let settled = ctx.settle_registry("after the purge", ctx.registry_bound())?;
    ctx.report.registry_converged_s = Some(settled.as_secs_f64());
    if loss <= 0.10 {
        no_false_failures(&ctx.world)?;
    }
    no_resurrections(&ctx.world)
}
