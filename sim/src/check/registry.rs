//! Registry checkers.
//!
//! The monitor keeps a [`RegistryLog`]: every registry write the simulator made through a
//! node's API (the id, the version the node gave it, live or a tombstone), and for each write
//! a spread watch of the nodes that hold it. A node *holds* a write once it stores that
//! version of the entry or a newer one (a write overtaken by a newer one before it arrived
//! counts as arrived: the node is at least as new). After every input that changed a node's
//! registry (`Event::RegistryChanged`), the monitor looks at that node only:
//!
//! - the open writes it does not hold yet: does it now? (write reach, with hop counts);
//! - the deletions it has seen: is any of those entries alive again? (a resurrection).
//!
//! Cost: per change, the open writes (those some live node still lacks, a handful in a
//! healthy cluster) and the deletions that node has seen; nothing all-pairs.
//!
//! The convergence checkers compare nodes at one instant: [`registry_agrees`] (every healthy
//! node holds the same live entries at the same versions), [`registry_matches_writes`] (and
//! they are the newest write of each id: last writer wins, deletions win over older
//! writes, entries of crashed owners are gone), [`owners_gone`] (no live entry of these
//! owners anywhere) and [`no_resurrections`].
//!
//! The log assumes an id is never registered again after its deletion (the scenarios'
//! helpers refuse to); with that, a node holding a deleted id alive is always a resurrection.

use std::collections::HashMap;

use hera::names::{InstanceId, ServiceName};
use hera::registry::{Hlc, Instance, Registry, Stored};

use super::{sample, Monitor, NEVER};
use crate::{Status, World};

/// Writes kept open (followed to the nodes that lack them) at most; beyond this the oldest
/// live write is closed, and its reach stays as measured. Deletions are never closed early:
/// they guard against resurrections.
const OPEN_WRITES_MAX: usize = 4_096;

/// The watch of a write that is not followed (a bulk registration).
pub const UNFOLLOWED: usize = usize::MAX;

/// One registry write the simulator made through a node's API.
#[derive(Debug, Clone)]
pub struct Write {
    pub id: InstanceId,
    /// None for a deletion.
    pub service: Option<ServiceName>,
    pub version: Hlc,
    pub writer: u32,
    /// Virtual time of the write, in microseconds.
    pub at: u64,
    /// Counted in the write-reach figures.
    pub timed: bool,
    /// The spread watch: who holds this version or a newer one ([`UNFOLLOWED`]: none).
    watch: usize,
    /// Nodes marked so far, the writer included (for closing the write cheaply).
    held: usize,
}

impl Write {
    pub fn is_live(&self) -> bool {
        self.service.is_some()
    }

    /// Its spread watch, for [`super::Monitor::seen_at`] ([`UNFOLLOWED`] for a bulk write).
    pub fn watch(&self) -> usize {
        self.watch
    }
}

/// The simulator's log of registry writes, and what each node has made of them.
#[derive(Debug, Default)]
pub struct RegistryLog {
    writes: Vec<Write>,
    /// Writes some live node does not hold yet.
    open: Vec<usize>,
    /// The newest write of each id, by version.
    newest: HashMap<InstanceId, usize>,
    /// Per node, the deletions it has seen and not yet found alive again.
    deleted_seen: Vec<Vec<usize>>,
    /// (time, node, write) of the first resurrections.
    resurrection_samples: Vec<(u64, u32, usize)>,
}

impl RegistryLog {
    pub(super) fn add_node(&mut self) {
        self.deleted_seen.push(Vec::new());
    }

    pub(super) fn on_start(&mut self, i: u32) {
        self.deleted_seen[i as usize].clear();
    }

    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// The newest write of `id`, if the simulator wrote it.
    pub fn newest(&self, id: &InstanceId) -> Option<&Write> {
        self.newest.get(id).map(|&k| &self.writes[k])
    }

    /// Whether `id` was ever deleted (and so must never be registered again).
    pub fn was_deleted(&self, id: &InstanceId) -> bool {
        self.newest(id).is_some_and(|w| !w.is_live())
    }
}

impl Monitor {
    pub fn registry(&self) -> &RegistryLog {
        &self.registry
    }

    /// Node `writer` has just made a write through its API and stores `version` of `id`.
    /// Unless `follow`, only the newest write of `id` is kept (for the convergence
    /// checkers): no watch, never open.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_write(
        &mut self,
        now: u64,
        writer: u32,
        id: InstanceId,
        service: Option<ServiceName>,
        version: Hlc,
        timed: bool,
        follow: bool,
    ) {
        let log = &mut self.registry;
        if log
            .newest
            .get(&id)
            .is_some_and(|&k| log.writes[k].version >= version)
        {
            // A re-registration that changed nothing: no new version was written.
            return;
        }
        self.counts.registry_writes += 1;
        let follow = follow || service.is_none();
        let watch = if follow {
            let watch = self.watch(writer, now);
            let w = &mut self.watches[watch];
            w.seen_at[writer as usize] = now;
            w.hops[writer as usize] = 0;
            watch
        } else {
            UNFOLLOWED
        };
        let log = &mut self.registry;
        let k = log.writes.len();
        if service.is_none() {
            log.deleted_seen[writer as usize].push(k);
        }
        log.newest.insert(id.clone(), k);
        log.writes.push(Write {
            id,
            service,
            version,
            writer,
            at: now,
            timed: timed && follow,
            watch,
            held: 1,
        });
        if !follow {
            return;
        }
        log.open.push(k);
        if log.open.len() > OPEN_WRITES_MAX {
            if let Some(p) = log.open.iter().position(|&o| log.writes[o].is_live()) {
                log.open.remove(p);
            }
        }
    }

    /// Node `i`'s registry changed (after the input that `cause`'s datagram brought, if any).
    pub(crate) fn on_registry_changed(
        &mut self,
        now: u64,
        i: u32,
        cause: Option<u32>,
        registry: &Registry,
    ) {
        let Monitor {
            registry: log,
            watches,
            up_since,
            up_count,
            counts,
            ..
        } = self;
        let node = i as usize;
        let mut full = false;
        for &k in &log.open {
            let w = &mut log.writes[k];
            let watch = &mut watches[w.watch];
            if watch.seen(i) {
                continue;
            }
            let holds = registry
                .stored(&w.id)
                .is_some_and(|s| s.version >= w.version);
            if !holds {
                continue;
            }
            watch.mark(i, cause, now);
            w.held += 1;
            full |= w.held >= *up_count;
            if !w.is_live() {
                log.deleted_seen[node].push(k);
            }
        }
        if full {
            let writes = &log.writes;
            log.open
                .retain(|&k| !held_by_all_up(&watches[writes[k].watch].seen_at, up_since));
        }
        let writes = &log.writes;
        let samples = &mut log.resurrection_samples;
        log.deleted_seen[node].retain(|&k| {
            let alive = registry.get(&writes[k].id).is_some();
            if alive {
                counts.resurrections += 1;
                sample(samples, (now, i, k));
            }
            // Counted once per node and deletion.
            !alive
        });
    }

    /// A node crashed: writes only it lacked are now held by every live node.
    pub(super) fn close_held_writes(&mut self) {
        let Monitor {
            registry: log,
            watches,
            up_since,
            ..
        } = self;
        let writes = &log.writes;
        log.open
            .retain(|&k| !held_by_all_up(&watches[writes[k].watch].seen_at, up_since));
    }

    /// The spread of every timed write; a node counts if `eligible(node, write time)`.
    pub fn write_spreads(&self, eligible: impl Fn(u32, u64) -> bool) -> Vec<super::Spread> {
        self.registry
            .writes
            .iter()
            .filter(|w| w.timed)
            .map(|w| self.spread(w.watch, |o| eligible(o, w.at)))
            .collect()
    }
}

fn held_by_all_up(seen_at: &[u64], up_since: &[u64]) -> bool {
    seen_at
        .iter()
        .zip(up_since)
        .all(|(&seen, &up)| up == NEVER || seen != NEVER)
}

/// A node's live entries, in (service, id) order.
fn live(registry: &Registry) -> impl Iterator<Item = (&Stored, &Instance)> {
    registry.stored_instances()
}

/// Every healthy node holds the same live entries at the same versions (tombstones aside).
pub fn registry_agrees(world: &World) -> Result<(), String> {
    let healthy = world.healthy();
    let Some(&first) = healthy.first() else {
        return Ok(());
    };
    let Some(reference) = world.node(first).map(|n| n.registry()) else {
        return Ok(());
    };
    // Equal digests: the same entries at the same versions, tombstones included.
    let digest = reference.digest();
    for &i in &healthy[1..] {
        let Some(registry) = world.node(i).map(|n| n.registry()) else {
            continue;
        };
        if registry.digest() == digest {
            continue;
        }
        let mut theirs = live(registry);
        let mut ours = live(reference);
        // Bounded by the shorter listing, then one more step to see which ran out.
        loop {
            match (ours.next(), theirs.next()) {
                (None, None) => break,
                (Some((s, x)), Some((t, y))) if x.id == y.id && s.version == t.version => {}
                (a, b) => {
                    let show = |e: Option<(&Stored, &Instance)>| {
                        e.map_or("nothing more".to_string(), |(s, x)| {
                            format!("{} @{}.{}", x.id, s.version.wall_ms, s.version.counter)
                        })
                    };
                    return Err(format!(
                        "{} holds {} live entries, {} holds {}; first difference: {} has {}, {} \
                         has {}",
                        world.name(first),
                        reference.len(),
                        world.name(i),
                        registry.len(),
                        world.name(first),
                        show(a),
                        world.name(i),
                        show(b)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Every healthy node holds exactly the newest write of each id the simulator wrote: live at
/// that version if the newest write is a registration whose writer (its owner) is still up,
/// absent if it is a deletion or its owner crashed.
pub fn registry_matches_writes(world: &World) -> Result<(), String> {
    let log = &world.monitor.registry;
    let mut expected: Vec<(&ServiceName, &InstanceId, &Hlc)> = log
        .newest
        .values()
        .map(|&k| &log.writes[k])
        .filter(|w| world.status(w.writer) == Status::Up)
        .filter_map(|w| w.service.as_ref().map(|s| (s, &w.id, &w.version)))
        .collect();
    expected.sort_unstable();
    let describe = |id: &InstanceId| match log.newest(id) {
        None => "never written by the simulator".to_string(),
        Some(w) if !w.is_live() => format!("deleted by {}", world.name(w.writer)),
        Some(w) if world.status(w.writer) != Status::Up => {
            format!("owned by crashed {}", world.name(w.writer))
        }
        Some(w) => format!(
            "written last by {} @{}.{}",
            world.name(w.writer),
            w.version.wall_ms,
            w.version.counter
        ),
    };
    for i in world.healthy() {
        let Some(registry) = world.node(i).map(|n| n.registry()) else {
            continue;
        };
        let held: Vec<(&ServiceName, &InstanceId, &Hlc)> = live(registry)
            .map(|(s, x)| (&x.service, &x.id, &s.version))
            .collect();
        if held == expected {
            continue;
        }
        let name = world.name(i);
        let (mut a, mut b) = (0, 0);
        // Bounded: every step moves past one entry of each listing, or returns.
        let problem = loop {
            match (expected.get(a), held.get(b)) {
                (Some(e), Some(h)) if e == h => {
                    a += 1;
                    b += 1;
                }
                (Some(e), Some(h)) if (e.0, e.1) == (h.0, h.1) => {
                    break format!(
                        "{name} holds {} @{}.{} by {}, the newest write is {}",
                        h.1,
                        h.2.wall_ms,
                        h.2.counter,
                        h.2.node,
                        describe(e.1)
                    );
                }
                (Some(e), h) if h.is_none_or(|h| (e.0, e.1) < (h.0, h.1)) => {
                    break format!("{name} lacks {} ({})", e.1, describe(e.1));
                }
                (_, Some(h)) => {
                    break format!("{name} holds {} alive ({})", h.1, describe(h.1));
                }
                (_, None) => break format!("{name} differs from the log"),
            }
        };
        return Err(format!(
            "{problem}; it holds {} live entries, {} expected",
            held.len(),
            expected.len()
        ));
    }
    Ok(())
}

/// No healthy node holds a live entry owned by one of `owners`.
pub fn owners_gone(world: &World, owners: &[u32]) -> Result<(), String> {
    let names: Vec<_> = owners.iter().map(|&o| world.name(o).clone()).collect();
    for i in world.healthy() {
        let Some(registry) = world.node(i).map(|n| n.registry()) else {
            continue;
        };
        if let Some(x) = registry.instances().find(|x| names.contains(&x.owner)) {
            return Err(format!(
                "{} still holds {} owned by crashed {}",
                world.name(i),
                x.id,
                x.owner
            ));
        }
    }
    Ok(())
}

/// No node ever held an entry alive again after it had seen the entry's deletion.
pub fn no_resurrections(world: &World) -> Result<(), String> {
    let m = &world.monitor;
    if m.counts.resurrections == 0 {
        return Ok(());
    }
    let samples: Vec<String> = m
        .registry
        .resurrection_samples
        .iter()
        .take(5)
        .map(|&(t, i, k)| {
            let w = &m.registry.writes[k];
            format!(
                "{} held {} alive at {:.3}s after its deletion by {} at {:.3}s",
                world.name(i),
                w.id,
                t as f64 / 1e6,
                world.name(w.writer),
                w.at as f64 / 1e6
            )
        })
        .collect();
    Err(format!(
        "{} resurrections: {}",
        m.counts.resurrections,
        samples.join("; ")
    ))
}
