//! Checkers: what must hold of a run.
//!
//! The [`Monitor`] watches every event as it happens, with no all-pairs state: per node a few
//! counters and an "excused until" time, per crash one row of first-failure times, per watched
//! update one row of first-seen times. A node is *excused* while it is crashed, paused,
//! isolated or leaving, and for a grace period afterwards (a suspicion window plus a few probe
//! periods, the longest a true rumour about it can linger); while any partition is in force,
//! and for the grace period after it heals, everyone is. A suspicion raised, or a failure
//! declared, about a node that is not excused by an observer that is not excused is *false*:
//! the protocol accused a live, connected member.
//!
//! The convergence checkers compare the nodes' views with the truth at one instant:
//! [`membership_agrees`] (every healthy node sees exactly the healthy nodes alive) and
//! [`crashes_detected`] (every crash was declared by every node that was up throughout,
//! within a bound).
//!
//! The registry's checkers are in [`registry`]: the monitor also logs every registry write the
//! simulator makes, follows each to every node (write reach) and watches for deleted entries
//! coming back.

pub mod registry;

use std::collections::HashMap;
use std::time::Duration;

use hera::config::Config;
use hera::node::Event;
use hera::swim::suspicion;
use hera::swim::State;
use serde::Serialize;

use crate::{index_of_name, World};

pub use registry::{
    no_resurrections, owners_gone, registry_agrees, registry_matches_writes, RegistryLog, Write,
};

/// Above this many nodes, [`membership_agrees`] compares state counts only: the by-name
/// comparison is quadratic.
const BY_NAME_CHECK_NODES_MAX: usize = 2_000;
/// False accusations kept for the report (all are counted).
const SAMPLES_MAX: usize = 32;
const NEVER: u64 = u64::MAX;

/// Event counts over the run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    /// Suspicions a node raised itself, after its own probe failed.
    pub suspicions_raised: u64,
    /// Of those, about a live, connected member.
    pub false_suspicions: u64,
    /// `MemberFailed` events, one per observer.
    pub failures_seen: u64,
    /// Of those, about a live, connected member.
    pub false_failures: u64,
    /// Suspicions heard (raised or gossiped), one per observer.
    pub suspicions_seen: u64,
    pub refutations: u64,
    /// Registry writes the simulator made (registrations, updates, deletions).
    pub registry_writes: u64,
    /// Times a node held an entry alive again after it had seen the entry's deletion.
    pub resurrections: u64,
    /// Once data centres are placed: failures declared about a member of the observer's own
    /// data centre that was up and not paused, whatever else was going on (a cut between
    /// data centres excuses nothing inside one).
    pub intra_dc_false_failures: u64,
    /// The same for suspicions an observer raised itself.
    pub intra_dc_false_suspicions: u64,
}

/// What others said about one node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Marks {
    pub suspected: u32,
    pub failed: u32,
}

/// One crash, and when each observer declared it.
#[derive(Debug, Clone)]
struct Crash {
    node: u32,
    at: u64,
    first_suspected: Option<u64>,
    /// Per observer, when it marked the node failed (NEVER: not yet).
    failed_at: Vec<u64>,
}

/// How long detection of one crash took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Detection {
    pub node: u32,
    pub first_suspected: Option<Duration>,
    pub first_failed: Option<Duration>,
    /// The last of the eligible observers; None if one has not yet.
    pub all_failed: Option<Duration>,
}

/// An update whose spread is watched (a join, a registry write).
#[derive(Debug, Clone)]
struct Watch {
    subject: u32,
    started: u64,
    seen_at: Vec<u64>,
    /// Per observer, how many datagram hops the update took to reach it (0: not yet).
    hops: Vec<u16>,
}

/// How far and how fast a watched update spread.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub population: usize,
    pub reached: usize,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub all: Option<Duration>,
    /// Hops (gossip generations) to reach half, 99% and all of those reached.
    pub hops_p50: u16,
    pub hops_p99: u16,
    pub hops_max: u16,
}

/// Online checks over the event stream.
#[derive(Debug)]
pub struct Monitor {
    grace_us: u64,
    excused_until: Vec<u64>,
    all_excused_until: u64,
    /// When each node was last started; NEVER while down.
    up_since: Vec<u64>,
    marks: Vec<Marks>,
    pub counts: Counts,
    /// (time, observer, subject) of the first false failures.
    pub false_failure_samples: Vec<(u64, u32, u32)>,
    pub false_suspicion_samples: Vec<(u64, u32, u32)>,
    crashes: Vec<Crash>,
    open_crash: HashMap<u32, usize>,
    watches: Vec<Watch>,
    join_watch: HashMap<u32, usize>,
    /// Nodes started and not crashed since.
    up_count: usize,
    registry: RegistryLog,
    /// Each node's data centre, once a scenario places them (empty: not counted).
    dc: Vec<u8>,
    /// (time, observer, subject) of the first intra-DC false failures.
    pub intra_dc_false_failure_samples: Vec<(u64, u32, u32)>,
}

impl Monitor {
    pub fn new(config: &Config, nodes: usize) -> Monitor {
        let (_, max) = suspicion::bounds(
            config.suspicion_base,
            config.suspicion_max_mult,
            nodes.max(1),
        );
        let grace = max + config.probe_interval * 10 + config.gossip_interval * 10;
        Monitor {
            grace_us: grace.as_micros() as u64,
            excused_until: Vec::new(),
            all_excused_until: 0,
            up_since: Vec::new(),
            marks: Vec::new(),
            counts: Counts::default(),
            false_failure_samples: Vec::new(),
            false_suspicion_samples: Vec::new(),
            crashes: Vec::new(),
            open_crash: HashMap::new(),
            watches: Vec::new(),
            join_watch: HashMap::new(),
            up_count: 0,
            registry: RegistryLog::default(),
            dc: Vec::new(),
            intra_dc_false_failure_samples: Vec::new(),
        }
    }

    pub fn grace(&self) -> Duration {
        Duration::from_micros(self.grace_us)
    }

    pub(crate) fn add_node(&mut self) {
        self.excused_until.push(0);
        self.up_since.push(NEVER);
        self.marks.push(Marks::default());
        self.registry.add_node();
        if !self.dc.is_empty() {
            self.dc.push(0);
        }
    }

    /// Node `i` is in data centre `dc`: from now on, accusations inside a data centre are
    /// counted apart.
    pub(crate) fn set_dc(&mut self, i: u32, dc: u8) {
        if self.dc.len() < self.up_since.len() {
            self.dc.resize(self.up_since.len(), 0);
        }
        self.dc[i as usize] = dc;
    }

    /// An accusation by `observer` about `subject` inside one data centre, while both were up
    /// and neither was excused on its own account (paused, crashed, isolated, just started).
    fn intra_dc_false(&self, observer: u32, subject: u32, at: u64) -> bool {
        let (o, s) = (observer as usize, subject as usize);
        match (self.dc.get(o), self.dc.get(s)) {
            (Some(a), Some(b)) if a == b => {
                self.up_since[s] != NEVER
                    && at >= self.excused_until[s]
                    && at >= self.excused_until[o]
            }
            _ => false,
        }
    }

    fn excused(&self, i: u32, at: u64) -> bool {
        at < self.all_excused_until || at < self.excused_until[i as usize]
    }

    /// Node `i` may be accused (and may accuse wrongly) until `until` plus the grace period.
    pub fn excuse(&mut self, i: u32, until: u64) {
        let e = &mut self.excused_until[i as usize];
        *e = (*e).max(until.saturating_add(self.grace_us));
    }

    pub(crate) fn excuse_all(&mut self, until: u64) {
        self.all_excused_until = self
            .all_excused_until
            .max(until.saturating_add(self.grace_us));
    }

    pub(crate) fn on_heal(&mut self, now: u64) {
        let until = now + self.grace_us;
        if self.all_excused_until == NEVER {
            self.all_excused_until = until;
        }
        for (e, up) in self.excused_until.iter_mut().zip(&self.up_since) {
            if *e == NEVER && *up != NEVER {
                *e = until;
            }
        }
    }

    pub(crate) fn on_start(&mut self, i: u32, now: u64) {
        if self.up_since[i as usize] == NEVER {
            self.up_count += 1;
        }
        self.up_since[i as usize] = now;
        // A new process: it has seen no deletion yet.
        self.registry.on_start(i);
        if self.excused_until[i as usize] == NEVER {
            self.excused_until[i as usize] = now + self.grace_us;
        }
        self.open_crash.remove(&i);
    }

    pub(crate) fn on_crash(&mut self, i: u32, now: u64) {
        if self.up_since[i as usize] != NEVER {
            self.up_count -= 1;
        }
        self.up_since[i as usize] = NEVER;
        self.excused_until[i as usize] = NEVER;
        self.open_crash.insert(i, self.crashes.len());
        self.crashes.push(Crash {
            node: i,
            at: now,
            first_suspected: None,
            failed_at: vec![NEVER; self.up_since.len()],
        });
        self.close_held_writes();
    }

    /// One event at `observer`; `cause` sent the datagram that produced it, if one did.
    pub(crate) fn on_event(&mut self, now: u64, observer: u32, cause: Option<u32>, event: &Event) {
        match event {
            Event::MemberSuspected { name, by } => {
                let Some(s) = index_of_name(name) else { return };
                self.counts.suspicions_seen += 1;
                self.marks[s as usize].suspected += 1;
                if let Some(&c) = self.open_crash.get(&s) {
                    self.crashes[c].first_suspected.get_or_insert(now);
                }
                if index_of_name(by) == Some(observer) {
                    self.counts.suspicions_raised += 1;
                    if self.intra_dc_false(observer, s, now) {
                        self.counts.intra_dc_false_suspicions += 1;
                    }
                    if !self.excused(s, now) && !self.excused(observer, now) {
                        self.counts.false_suspicions += 1;
                        sample(&mut self.false_suspicion_samples, (now, observer, s));
                    }
                }
            }
            Event::MemberFailed { name } | Event::MemberReaped { name } => {
                let Some(s) = index_of_name(name) else { return };
                let failed = matches!(event, Event::MemberFailed { .. });
                if let Some(&c) = self.open_crash.get(&s) {
                    let at = &mut self.crashes[c].failed_at[observer as usize];
                    *at = (*at).min(now);
                }
                if !failed {
                    return;
                }
                self.counts.failures_seen += 1;
                self.marks[s as usize].failed += 1;
                if self.intra_dc_false(observer, s, now) {
                    self.counts.intra_dc_false_failures += 1;
                    sample(&mut self.intra_dc_false_failure_samples, (now, observer, s));
                }
                if !self.excused(s, now) && !self.excused(observer, now) {
                    self.counts.false_failures += 1;
                    sample(&mut self.false_failure_samples, (now, observer, s));
                }
            }
            Event::MemberJoined { name, .. } => {
                let Some(s) = index_of_name(name) else { return };
                if let Some(&w) = self.join_watch.get(&s) {
                    self.mark(w, observer, cause, now);
                }
            }
            Event::Refuted { .. } => self.counts.refutations += 1,
            Event::MemberRecovered { .. }
            | Event::MemberLeft { .. }
            | Event::NameConflict { .. }
            | Event::Joined { .. }
            | Event::LeaveComplete
            | Event::Rejected { .. }
            | Event::CheckDue { .. }
            | Event::RegistryChanged { .. }
            | Event::ClockRejected { .. }
            | Event::ImplausibleClaim { .. }
            | Event::NameTaken { .. }
            | Event::QueryDone(_) => {}
        }
    }

    /// What others said about node `i` so far.
    pub fn marks(&self, i: u32) -> Marks {
        self.marks[i as usize]
    }

    /// Whether node `i` was up since before `t` (and still is).
    pub fn up_throughout(&self, i: u32, t: u64) -> bool {
        self.up_since[i as usize] <= t
    }

    // ---- crash detection ----

    /// Detection times of every crash so far; `eligible` picks the observers that count.
    pub fn detections(&self, eligible: impl Fn(u32) -> bool) -> Vec<Detection> {
        let since = |at: u64, t: u64| Duration::from_micros(t - at);
        self.crashes
            .iter()
            .map(|c| {
                let observers = (0..self.up_since.len() as u32)
                    .filter(|&o| o != c.node && self.up_throughout(o, c.at) && eligible(o));
                let mut first = NEVER;
                let mut last = 0;
                let mut missing = false;
                for o in observers {
                    let t = c.failed_at[o as usize];
                    first = first.min(t);
                    if t == NEVER {
                        missing = true;
                    } else {
                        last = last.max(t);
                    }
                }
                Detection {
                    node: c.node,
                    first_suspected: c.first_suspected.map(|t| since(c.at, t)),
                    first_failed: (first != NEVER).then(|| since(c.at, first)),
                    all_failed: (!missing).then(|| since(c.at, last.max(c.at))),
                }
            })
            .collect()
    }

    // ---- spread of updates ----

    /// Watch who sees node `subject` join, from now.
    pub fn watch_join(&mut self, subject: u32, now: u64) -> usize {
        let w = self.watch(subject, now);
        self.join_watch.insert(subject, w);
        w
    }

    /// Watch an update whose arrival the caller reports with [`Monitor::mark`].
    pub fn watch(&mut self, subject: u32, now: u64) -> usize {
        self.watches.push(Watch {
            subject,
            started: now,
            seen_at: vec![NEVER; self.up_since.len()],
            hops: vec![0; self.up_since.len()],
        });
        self.watches.len() - 1
    }

    /// `observer` has the watched update now; `cause` is the node whose datagram brought it.
    pub fn mark(&mut self, watch: usize, observer: u32, cause: Option<u32>, now: u64) {
        self.watches[watch].mark(observer, cause, now);
    }

    /// When `observer` got the watched update (virtual µs), if it has.
    pub fn seen_at(&self, watch: usize, observer: u32) -> Option<u64> {
        self.watches[watch]
            .seen_at
            .get(observer as usize)
            .copied()
            .filter(|&t| t != NEVER)
    }

    pub fn seen(&self, watch: usize, observer: u32) -> bool {
        self.watches[watch]
            .seen_at
            .get(observer as usize)
            .is_some_and(|&t| t != NEVER)
    }

    /// How the watched update spread over the observers `eligible` picks.
    pub fn spread(&self, watch: usize, eligible: impl Fn(u32) -> bool) -> Spread {
        let w = &self.watches[watch];
        let mut times: Vec<u64> = (0..w.seen_at.len() as u32)
            .filter(|&o| o != w.subject && eligible(o))
            .map(|o| w.seen_at[o as usize])
            .collect();
        times.sort_unstable();
        let mut hops: Vec<u16> = (0..w.seen_at.len())
            .filter(|&o| o != w.subject as usize && w.seen_at[o] != NEVER)
            .map(|o| w.hops[o])
            .collect();
        hops.sort_unstable();
        let hop_at = |q: f64| {
            let k = ((hops.len() as f64 * q).ceil() as usize).clamp(1, hops.len().max(1));
            hops.get(k - 1).copied().unwrap_or(0)
        };
        let population = times.len();
        let reached = times.iter().filter(|&&t| t != NEVER).count();
        let at = |fraction: f64| {
            let k = ((population as f64 * fraction).ceil() as usize).clamp(1, population.max(1));
            times
                .get(k - 1)
                .filter(|&&t| t != NEVER)
                .map(|&t| Duration::from_micros(t - w.started))
        };
        Spread {
            population,
            reached,
            p50: at(0.5),
            p99: at(0.99),
            all: at(1.0),
            hops_p50: hop_at(0.5),
            hops_p99: hop_at(0.99),
            hops_max: hop_at(1.0),
        }
    }
}

impl Watch {
    /// `observer` has the update now; `cause` is the node whose datagram brought it.
    fn mark(&mut self, observer: u32, cause: Option<u32>, now: u64) {
        let o = observer as usize;
        if o >= self.seen_at.len() || self.seen_at[o] != NEVER {
            return;
        }
        self.seen_at[o] = now;
        // The origin is hop 0; everyone else is one hop further than whoever told it.
        self.hops[o] = match cause {
            Some(c) if c == self.subject => 1,
            Some(c) => self.hops.get(c as usize).map_or(1, |h| h.saturating_add(1)),
            None => 1,
        };
    }

    fn seen(&self, observer: u32) -> bool {
        self.seen_at
            .get(observer as usize)
            .is_some_and(|&t| t != NEVER)
    }
}

fn sample<T>(samples: &mut Vec<T>, s: T) {
    if samples.len() < SAMPLES_MAX {
        samples.push(s);
    }
}

/// Every healthy node sees every other healthy node alive and no one else alive or suspect.
pub fn membership_agrees(world: &World) -> Result<(), String> {
    let healthy = world.healthy();
    let by_name = world.len() <= BY_NAME_CHECK_NODES_MAX;
    for &i in &healthy {
        let Some(node) = world.node(i) else { continue };
        let c = node.counts();
        if c.alive != healthy.len() - 1 || c.suspect != 0 {
            return Err(format!(
                "{} sees {} alive and {} suspect, expected {} alive",
                world.name(i),
                c.alive,
                c.suspect,
                healthy.len() - 1
            ));
        }
        if !by_name {
            continue;
        }
        for &j in &healthy {
            if i == j {
                continue;
            }
            let state = node.member(world.name(j)).map(|m| m.state);
            if state != Some(State::Alive) {
                return Err(format!(
                    "{} sees {} as {:?}",
                    world.name(i),
                    world.name(j),
                    state
                ));
            }
        }
    }
    Ok(())
}

/// Every crash was declared by every node up throughout, within `bound` of the crash.
pub fn crashes_detected(world: &World, bound: Duration) -> Result<Vec<Detection>, String> {
    let detections = world.monitor.detections(|o| world.is_healthy(o));
    for d in &detections {
        match d.all_failed {
            Some(t) if t <= bound => {}
            Some(t) => {
                return Err(format!(
                "n{} crashed and was declared failed everywhere only after {t:?} (bound {bound:?})",
                d.node
            ))
            }
            None => {
                return Err(format!(
                    "n{} crashed and some nodes never declared it failed",
                    d.node
                ))
            }
        }
    }
    Ok(detections)
}

/// No live, connected node was declared failed.
pub fn no_false_failures(world: &World) -> Result<(), String> {
    let m = &world.monitor;
    if m.counts.false_failures == 0 {
        return Ok(());
    }
    let samples: Vec<String> = m
        .false_failure_samples
        .iter()
        .take(5)
        .map(|(t, o, s)| format!("n{o} declared n{s} failed at {:.3}s", *t as f64 / 1e6))
        .collect();
    Err(format!(
        "{} false failures: {}",
        m.counts.false_failures,
        samples.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use hera::config::Preset;

    use super::*;
    use crate::node_name;

    /// The intra-DC count ignores the excuse a partition gives everyone, and only that.
    #[test]
    fn failures_inside_a_data_centre_count_even_during_a_cut() {
        let mut m = Monitor::new(&Preset::Lan.config(), 4);
        for i in 0..4 {
            m.add_node();
            m.set_dc(i, u8::from(i >= 2));
        }
        for i in 0..4 {
            m.on_start(i, 0);
        }
        let late = m.grace_us + 1;
        m.excuse_all(u64::MAX);
        let failed = |s: u32| Event::MemberFailed { name: node_name(s) };
        // Across data centres, during the cut: excused, not counted.
        m.on_event(late, 0, None, &failed(2));
        assert_eq!(m.counts.intra_dc_false_failures, 0);
        // Inside one: counted, though the partition excuses it for the usual check.
        m.on_event(late, 0, None, &failed(1));
        assert_eq!(m.counts.intra_dc_false_failures, 1);
        assert_eq!(m.counts.false_failures, 0);
        // About a crashed member: a true failure.
        m.on_crash(3, late);
        m.on_event(late + 1, 2, None, &failed(3));
        assert_eq!(m.counts.intra_dc_false_failures, 1);
        assert_eq!(m.intra_dc_false_failure_samples, vec![(late, 0, 1)]);
    }
}
