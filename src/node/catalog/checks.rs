//! The checks this node runs and enforces (issue 18): several per instance, each by its own
//! Consul `CheckID`, and the node's own checks, whose worst status is every owned instance's
//! too (as in Consul, a critical node check makes the node's services critical).
//!
//! Check ids are the node's own namespace (a Consul agent's): an id names one check of one
//! owned instance, or one node check, never two.
//!
//! Over 600 lines with its tests: the code is about 550; the tests beside it (250) build
//! instances with several checks and read them back through the catalog.

use std::time::Duration;

use super::ops::NODE_MAINTENANCE;
use super::Catalog;
use crate::names::InstanceId;
use crate::node::api::Probe;
use crate::node::io::Io;
use crate::node::{CommandError, Event, Reply};
use crate::registry::{
    clip, worst, Check, CheckSpec, CheckState, Health, Instance, InstanceSpec, NodeVerdict,
    CHECKS_MAX,
};
use crate::time::Instant;

/// Most node-level checks (Consul has no bound; a node reports a handful: disk, memory, NTP).
pub const NODE_CHECKS_MAX: usize = 16;

/// The owner-local state of one check: what it is as this node was given it (never as gossip
/// rewrote it) and its deadlines.
#[derive(Debug, Clone)]
pub(super) struct OwnedCheck {
    pub(super) id: String,
    pub(super) check: Check,
    pub(super) deregister_after: Option<Duration>,
    pub(super) ttl_deadline: Option<Instant>,
    pub(super) critical_since: Option<Instant>,
    pub(super) next_check: Option<Instant>,
}

impl OwnedCheck {
    pub(super) fn of(state: &CheckState) -> OwnedCheck {
        OwnedCheck {
            id: state.id.0.clone(),
            check: state.check.clone(),
            deregister_after: state
                .deregister_critical_after_ms
                .map(Duration::from_millis),
            ttl_deadline: None,
            critical_since: None,
            next_check: None,
        }
    }

    /// Arm the deadlines after a write: the TTL runs again if `reported` (this check was
    /// reported, or registered), the critical clock follows `status`, the first run is one
    /// interval away unless one is already due.
    pub(super) fn refresh(&mut self, now: Instant, status: Health, reported: bool) {
        if reported || self.ttl_deadline.is_none() {
            self.ttl_deadline = self.check.ttl().map(|ttl| now + ttl);
        }
        if status != Health::Critical {
            self.critical_since = None;
        } else if self.critical_since.is_none() {
            self.critical_since = Some(now);
        }
        if let (Some(interval), None) = (self.check.interval(), self.next_check) {
            self.next_check = Some(now + interval);
        }
    }

    /// What the shell runs for it, if it is a kind the owner runs.
    fn probe(&self) -> Option<(Probe, Duration, Duration)> {
        match &self.check {
            Check::None | Check::Ttl { .. } => None,
            Check::Http(http) => Some((
                Probe::Http {
                    method: "GET".into(),
                    url: http.url.0.clone(),
                    headers: Vec::new(),
                },
                Duration::from_millis(http.interval_ms),
                Duration::from_millis(http.timeout_ms),
            )),
            Check::Request(request) => Some((
                Probe::Http {
                    method: request.method.0.clone(),
                    url: request.url.0.clone(),
                    headers: request
                        .headers
                        .0
                        .iter()
                        .map(|h| (h.key.0.clone(), h.value.0.clone()))
                        .collect(),
                },
                Duration::from_millis(request.interval_ms),
                Duration::from_millis(request.timeout_ms),
            )),
            Check::Tcp(tcp) => Some((
                Probe::Tcp {
                    address: tcp.address.0.clone(),
                },
                Duration::from_millis(tcp.interval_ms),
                Duration::from_millis(tcp.timeout_ms),
            )),
        }
    }
}

/// A check of the node itself (no `ServiceID`): its state lives here, and on disk.
#[derive(Debug, Clone)]
pub(crate) struct NodeCheck {
    pub(crate) state: CheckState,
    pub(super) run: OwnedCheck,
}

/// Where a check id points.
enum Target {
    Node(usize),
    Instance(InstanceId),
}

impl Catalog {
    /// The node's own checks, for the API and the data_dir.
    pub(crate) fn node_checks(&self) -> impl Iterator<Item = &CheckState> {
        self.node_checks.iter().map(|c| &c.state)
    }

    /// The worst of the node's checks, when it is not passing: every owned instance's too.
    pub(super) fn node_verdict(&self) -> Option<NodeVerdict> {
        let status = worst(self.node_checks.iter().map(|c| c.state.status));
        if status == Health::Passing {
            return None;
        }
        let output = self
            .node_checks
            .iter()
            .find(|c| c.state.status == status)
            .map_or(String::new(), |c| {
                format!("node check {}: {}", c.state.id.0, c.state.output.0)
            });
        Some(NodeVerdict { status, output })
    }

    fn target(&self, check: &str) -> Option<Target> {
        if let Some(n) = self.node_checks.iter().position(|c| c.state.id.0 == check) {
            return Some(Target::Node(n));
        }
        if let Some((id, _)) = self
            .owned
            .iter()
            .find(|(_, owned)| owned.checks.iter().any(|c| c.id == check))
        {
            return Some(Target::Instance(id.clone()));
        }
        // `service:<id>` (or `service:<id>:<n>`) of an instance owned elsewhere: a report
        // through this node moves ownership here, as a renewal does. A bare instance id (hera
        // has always taken one) names its first check.
        let Some(rest) = check.strip_prefix("service:") else {
            let id = InstanceId::new(check).ok()?;
            return self.registry.get(&id).map(|_| Target::Instance(id));
        };
        let candidates = [Some(rest), rest.rsplit_once(':').map(|(id, _)| id)];
        candidates.into_iter().flatten().find_map(|id| {
            let id = InstanceId::new(id).ok()?;
            let instance = self.registry.get(&id)?;
            instance
                .checks()
                .iter()
                .any(|c| c.id.0 == check)
                .then_some(Target::Instance(id))
        })
    }

    /// Whether `check` already names a check here other than one of `except`'s.
    fn check_id_taken(&self, check: &str, except: Option<&InstanceId>) -> bool {
        self.node_checks.iter().any(|c| c.state.id.0 == check)
            || self
                .owned
                .iter()
                .any(|(id, owned)| Some(id) != except && owned.checks.iter().any(|c| c.id == check))
    }

    /// Refuse a registration whose check ids name checks of other instances or of the node.
    pub(super) fn refuse_taken_ids(
        &self,
        id: &InstanceId,
        instance: &Instance,
    ) -> Result<(), CommandError> {
        match instance
            .checks()
            .into_iter()
            // An instance registered without a check holds a placeholder of kind None: no
            // check, so its default id clashes with nothing.
            .filter(|c| c.check != Check::None)
            .find(|c| self.check_id_taken(&c.id.0, Some(id)))
        {
            Some(c) => Err(CommandError::Invalid {
                detail: format!("CheckID {:?} is already a check of this node", c.id.0),
            }),
            None => Ok(()),
        }
    }

    /// A report of one check by its id: pass, warn, fail, update, or a probe's result.
    pub(crate) fn set_check(
        &mut self,
        io: &mut Io,
        now: Instant,
        check: &str,
        health: Health,
        output: &str,
    ) -> Result<Reply, CommandError> {
        match self.target(check) {
            None => Err(CommandError::UnknownCheck {
                check: check.to_string(),
            }),
            Some(Target::Node(n)) => {
                let Some(node_check) = self.node_checks.get_mut(n) else {
                    return Ok(Reply::Done);
                };
                let state = &mut node_check.state;
                if state.status != health {
                    state.since_ms = now.as_millis();
                }
                state.status = health;
                state.output = clip(output, usize::MAX);
                node_check.run.refresh(now, health, true);
                self.apply_node_verdict(io, now);
                Ok(Reply::Done)
            }
            Some(Target::Instance(id)) => {
                let mut next = self.live_instance(&id)?;
                // A report here makes us the owner of an instance registered elsewhere.
                self.room_to_own(io, &id)?;
                next.owner = self.name.clone();
                let wall_ms = now.as_millis();
                let mut checks = next.checks();
                let check = match checks.iter().any(|c| c.id.0 == check) {
                    true => check.to_string(),
                    // A bare instance id: its first check.
                    false => checks.first().map_or(String::new(), |c| c.id.0.clone()),
                };
                let check = check.as_str();
                for c in checks.iter_mut().filter(|c| c.id.0 == check) {
                    if c.status != health {
                        c.since_ms = wall_ms;
                    }
                    c.status = health;
                    c.output = clip(output, usize::MAX);
                }
                next.set_checks(checks, self.node_verdict().as_ref(), wall_ms);
                fit_if_needed(&mut next);
                self.refresh_deadlines(now, &next, Some(check));
                if self.changes(&id, &next) {
                    self.write(io, now, id, Some(next));
                }
                Ok(Reply::Done)
            }
        }
    }

    /// `PUT /v1/agent/check/register`: a check of an instance this node owns (`service`), or
    /// of the node itself.
    pub(crate) fn register_check(
        &mut self,
        io: &mut Io,
        now: Instant,
        service: Option<&InstanceId>,
        spec: CheckSpec,
    ) -> Result<Reply, CommandError> {
        let invalid = |detail: String| CommandError::Invalid { detail };
        let Some(id) = service else {
            let check_id = spec
                .id
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| spec.name.clone());
            if self.check_id_taken(&check_id, None)
                && !self.node_checks.iter().any(|c| c.state.id.0 == check_id)
            {
                return Err(invalid(format!(
                    "CheckID {check_id:?} is already a check of an instance"
                )));
            }
            let state = check_state(&self.name, check_id.clone(), spec, now.as_millis())?;
            let mut run = OwnedCheck::of(&state);
            run.refresh(now, state.status, true);
            let full = self.node_checks.len() >= NODE_CHECKS_MAX;
            match self
                .node_checks
                .iter_mut()
                .find(|c| c.state.id.0 == check_id)
            {
                Some(existing) => {
                    *existing = NodeCheck { state, run };
                }
                None if full => {
                    return Err(invalid(format!(
                        "the node has {NODE_CHECKS_MAX} checks, the most it may have"
                    )));
                }
                None => self.node_checks.push(NodeCheck { state, run }),
            }
            self.apply_node_verdict(io, now);
            return Ok(Reply::Done);
        };
        let mut next = self
            .registry
            .get(id)
            .filter(|i| i.owner == self.name && self.owned.contains_key(id))
            .cloned()
            .ok_or_else(|| CommandError::UnknownInstance { id: id.clone() })?;
        let wall_ms = now.as_millis();
        let check_id = spec
            .id
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| {
                // Consul names a stand-alone check without an id by its name.
                spec.name.clone()
            });
        if self.check_id_taken(&check_id, Some(id)) {
            return Err(invalid(format!(
                "CheckID {check_id:?} is already a check of this node"
            )));
        }
        let state = check_state(&self.name, check_id.clone(), spec, wall_ms)?;
        let mut checks: Vec<CheckState> = next
            .checks()
            .into_iter()
            // An instance registered without a check holds a placeholder of kind None.
            .filter(|c| c.id.0 != check_id && c.check != Check::None)
            .collect();
        if checks.len() >= CHECKS_MAX {
            return Err(invalid(format!(
                "instance {id} has {CHECKS_MAX} checks, the most one may have"
            )));
        }
        checks.push(state);
        next.set_checks(checks, self.node_verdict().as_ref(), wall_ms);
        if crate::registry::worst_case_entry_bytes(&next) > crate::registry::ENTRY_MAX_BYTES {
            return Err(invalid(format!(
                "instance {id} with this check would not fit one datagram"
            )));
        }
        self.owned.update(id, |owned| {
            // Registered again under the same id: it starts afresh.
            owned.checks.retain(|c| c.id != check_id);
            owned.take_checks(&next);
        });
        self.refresh_deadlines(now, &next, Some(&check_id));
        self.write(io, now, id.clone(), Some(next));
        Ok(Reply::Done)
    }

    /// `PUT /v1/agent/check/deregister/<id>`.
    pub(crate) fn deregister_check(
        &mut self,
        io: &mut Io,
        now: Instant,
        check: &str,
    ) -> Result<Reply, CommandError> {
        match self.target(check) {
            None => Err(CommandError::UnknownCheck {
                check: check.to_string(),
            }),
            Some(Target::Node(n)) => {
                if n < self.node_checks.len() {
                    self.node_checks.remove(n);
                }
                self.apply_node_verdict(io, now);
                Ok(Reply::Done)
            }
            Some(Target::Instance(id)) => {
                let mut next = self.live_instance(&id)?;
                if !next.checks().iter().any(|c| c.id.0 == check) {
                    // A bare instance id names no check to remove.
                    return Err(CommandError::UnknownCheck {
                        check: check.to_string(),
                    });
                }
                self.room_to_own(io, &id)?;
                next.owner = self.name.clone();
                let checks = next
                    .checks()
                    .into_iter()
                    .filter(|c| c.id.0 != check)
                    .collect();
                next.set_checks(checks, self.node_verdict().as_ref(), now.as_millis());
                self.owned
                    .update(&id, |owned| owned.checks.retain(|c| c.id != check));
                self.refresh_deadlines(now, &next, None);
                if self.changes(&id, &next) {
                    self.write(io, now, id, Some(next));
                }
                Ok(Reply::Done)
            }
        }
    }

    /// The node's checks changed: every instance it owns takes the new verdict.
    pub(super) fn apply_node_verdict(&mut self, io: &mut Io, now: Instant) {
        let verdict = self.node_verdict();
        let wall_ms = now.as_millis();
        for (id, mut next) in self.held_as_owner() {
            next.set_checks(next.checks(), verdict.as_ref(), wall_ms);
            fit_if_needed(&mut next);
            if self.changes(&id, &next) {
                self.write(io, now, id, Some(next));
            }
        }
        io.changed();
    }

    /// Emit a due check of an owned instance (`id`) or of the node (None), with what this
    /// node was given (never what gossip says), and schedule its next run.
    pub(super) fn start_check(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: Option<&InstanceId>,
        check: &str,
    ) {
        // Schedules the check's next run and says what to run now, if it is a kind we run.
        let arm = |run: &mut OwnedCheck| {
            let (probe, interval, timeout) = run.probe()?;
            run.next_check = Some(now + interval);
            Some((probe, timeout))
        };
        let started = match id {
            Some(id) => {
                if self.registry.get(id).is_none() {
                    return;
                }
                self.owned.update(id, |o| {
                    o.checks.iter_mut().find(|c| c.id == check).and_then(arm)
                })
            }
            None => self
                .node_checks
                .iter_mut()
                .find(|c| c.state.id.0 == check)
                .map(|c| arm(&mut c.run)),
        };
        let Some((probe, timeout)) = started.flatten() else {
            return;
        };
        io.stats.checks_started += 1;
        io.emit(Event::CheckDue {
            check: check.to_string(),
            probe,
            timeout,
        });
    }

    /// The node's checks as saved in its data_dir, armed from `now`.
    pub(crate) fn restore_node_checks(
        &mut self,
        io: &mut Io,
        now: Instant,
        checks: Vec<CheckState>,
    ) {
        if checks.is_empty() {
            return;
        }
        for state in checks.into_iter().take(NODE_CHECKS_MAX) {
            if self.node_checks.iter().any(|c| c.state.id == state.id) {
                continue;
            }
            let mut run = OwnedCheck::of(&state);
            run.refresh(now, state.status, true);
            self.node_checks.push(NodeCheck { state, run });
        }
        self.apply_node_verdict(io, now);
    }

    /// Disarm the TTL of every node check whose TTL passed while it was already critical
    /// (see the owned instances' case in `registry_tick_work`).
    pub(super) fn disarm_spent_node_ttls(&mut self, now: Instant) {
        for c in &mut self.node_checks {
            if c.run.ttl_deadline.is_some_and(|d| now >= d) && c.state.status == Health::Critical {
                c.run.ttl_deadline = None;
            }
        }
    }

    /// The earliest deadline of the node's own checks (a run or a TTL). O(node checks).
    pub(super) fn node_checks_next_due(&self) -> Option<Instant> {
        self.node_checks
            .iter()
            .flat_map(|c| [c.run.next_check, c.run.ttl_deadline])
            .flatten()
            .min()
    }

    /// Node checks due at `now`, and TTLs of node checks lapsed: (due, lapsed) ids.
    pub(super) fn node_checks_due(&self, now: Instant) -> (Vec<String>, Vec<String>) {
        let mut due = Vec::new();
        let mut lapsed = Vec::new();
        for c in &self.node_checks {
            if c.run.next_check.is_some_and(|d| now >= d) {
                due.push(c.state.id.0.clone());
            }
            if c.run.ttl_deadline.is_some_and(|d| now >= d) && c.state.status != Health::Critical {
                lapsed.push(c.state.id.0.clone());
            }
        }
        (due, lapsed)
    }
}

/// Clip texts if a grown output would not let the entry fit a datagram.
fn fit_if_needed(instance: &mut Instance) {
    crate::registry::fit_texts(instance);
}

/// A stand-alone check's state as registered, through the same rules as a service's.
fn check_state(
    node: &crate::names::NodeName,
    check_id: String,
    spec: CheckSpec,
    now_ms: u64,
) -> Result<CheckState, CommandError> {
    if check_id.is_empty() {
        return Err(CommandError::Invalid {
            detail: "a check needs a CheckID or a Name".into(),
        });
    }
    if check_id.starts_with(NODE_MAINTENANCE) {
        return Err(CommandError::Invalid {
            detail: format!("CheckID {check_id:?} is reserved"),
        });
    }
    // Built as the check of a throwaway instance: one place holds every rule.
    let mut probe = InstanceSpec::new(
        crate::names::ServiceName::new("check").map_err(|e| CommandError::Invalid {
            detail: e.to_string(),
        })?,
        "",
        0,
    );
    probe.checks = vec![CheckSpec {
        id: Some(check_id),
        ..spec
    }];
    let instance = probe
        .into_instance(
            InstanceId::new("check").map_err(|e| CommandError::Invalid {
                detail: e.to_string(),
            })?,
            node.clone(),
            now_ms,
        )
        .map_err(|e| CommandError::Invalid {
            detail: e.to_string(),
        })?;
    instance
        .checks()
        .into_iter()
        .next()
        .ok_or_else(|| CommandError::Invalid {
            detail: "no check".into(),
        })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use crate::config::Config;
    use crate::names::{InstanceId, Label, NodeName, ServiceName};
    use crate::node::{Command, CommandError, Identity, Node};
    use crate::registry::{CheckSpec, Health, InstanceSpec, SpecCheck};
    use crate::time::Instant;

    fn node(start: Instant) -> Node {
        let identity = Identity {
            name: NodeName::new("n0").unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
            dc: Label::new("dc1").unwrap(),
            tags: Vec::new(),
        };
        Node::new(Config::local(), identity, 7, start)
    }

    fn ttl(id: &str, secs: u64, deregister_after: Option<Duration>) -> CheckSpec {
        CheckSpec {
            id: Some(id.to_string()),
            name: String::new(),
            notes: String::new(),
            kind: SpecCheck::Ttl {
                ttl: Duration::from_secs(secs),
            },
            deregister_critical_after: deregister_after,
        }
    }

    fn register(n: &mut Node, now: Instant, id: &str, checks: Vec<CheckSpec>) {
        let mut spec = InstanceSpec::new(ServiceName::new("db").unwrap(), "10.0.0.1", 5432);
        spec.id = Some(InstanceId::new(id).unwrap());
        spec.checks = checks;
        n.handle_command(now, Command::Register(spec)).unwrap();
    }

    /// A node-level TTL check `id` (30 s), critical until its first report.
    fn register_node_check(n: &mut Node, now: Instant, id: &str) {
        let spec = CheckSpec {
            id: Some(id.into()),
            name: id.into(),
            ..ttl(id, 30, None)
        };
        let command = Command::RegisterCheck {
            service: None,
            spec,
        };
        n.handle_command(now, command).unwrap();
    }

    fn report(n: &mut Node, now: Instant, check: &str, health: Health) {
        let command = Command::SetCheck {
            check: check.to_string(),
            health,
            output: String::new(),
        };
        n.handle_command(now, command).unwrap();
    }

    /// Run the node's timers up to `until`; how many times it woke.
    fn run_until(n: &mut Node, until: Instant) -> usize {
        let mut wakes = 0;
        for _ in 0..100_000 {
            let Some(at) = n.poll_timeout().filter(|at| *at <= until) else {
                break;
            };
            n.handle_timeout(at);
            while n.poll_transmit().is_some() {}
            while n.poll_event().is_some() {}
            wakes += 1;
        }
        wakes
    }

    fn status(n: &Node, id: &str, check: &str) -> Option<Health> {
        let instance = n.registry().get(&InstanceId::new(id).unwrap())?.clone();
        instance
            .checks()
            .iter()
            .find(|c| c.id.0 == check)
            .map(|c| c.status)
    }

    /// The registry tick runs only while it has work: an idle node (nothing owned, no
    /// tombstone, no member failed) stops waking for it, and a registration starts it again,
    /// in time for the instance's TTL to lapse as it always did.
    #[test]
    fn the_registry_tick_stops_while_idle_and_a_registration_restarts_it() {
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut n = node(start);
        let tick = n.config().registry_tick;
        let idle_until = start + Duration::from_secs(5);
        let wakes = run_until(&mut n, idle_until);
        assert_eq!(
            n.io.registry_tick_at, None,
            "an idle node keeps its registry tick"
        );
        // 5 s of `local` timings: ten probe periods; a registry tick every 100 ms was 50 more.
        assert!(wakes < 20, "{wakes} wake-ups in 5 s idle");
        register(&mut n, idle_until, "db-1", vec![ttl("fast", 1, None)]);
        assert!(
            n.io.registry_tick_at.is_some(),
            "a registration did not restart the tick"
        );
        report(&mut n, idle_until, "fast", Health::Passing);
        run_until(&mut n, idle_until + Duration::from_secs(1) + tick);
        assert_eq!(status(&n, "db-1", "fast"), Some(Health::Critical));
    }

    /// An owning node wakes for its deadlines, not every `registry_tick`: with one TTL check
    /// of 30 s reported passing, five idle seconds cost no more wake-ups than owning nothing,
    /// and the TTL lapses when it falls, not up to a tick later.
    #[test]
    fn an_owning_node_sleeps_until_its_next_deadline() {
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut n = node(start);
        register(&mut n, start, "db-1", vec![ttl("slow", 30, None)]);
        report(&mut n, start, "slow", Health::Passing);
        let idle_until = start + Duration::from_secs(5);
        let wakes = run_until(&mut n, idle_until);
        // 5 s of `local` timings: ten probe periods; a registry tick every 100 ms was 50 more.
        assert!(wakes < 20, "{wakes} wake-ups in 5 s, owning one instance");
        assert_eq!(
            n.io.registry_tick_at,
            Some(start + Duration::from_secs(30)),
            "the tick is not armed for the TTL's deadline"
        );
        let deadline = start + Duration::from_secs(30);
        run_until(&mut n, deadline - Duration::from_millis(1));
        assert_eq!(status(&n, "db-1", "slow"), Some(Health::Passing));
        run_until(&mut n, deadline);
        assert_eq!(
            status(&n, "db-1", "slow"),
            Some(Health::Critical),
            "the TTL did not lapse at its deadline"
        );
    }

    /// A TTL that lapses again on a check already critical leaves the tick asleep: it is
    /// disarmed until the next report, which arms it again and is met at its deadline.
    #[test]
    fn a_critical_ttl_does_not_keep_the_tick_awake() {
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut n = node(start);
        register(&mut n, start, "db-1", vec![ttl("slow", 2, None)]);
        // Never reported: it starts critical, and its TTL lapses at 2 s without a change.
        let lapsed = start + Duration::from_secs(3);
        run_until(&mut n, lapsed);
        assert_eq!(status(&n, "db-1", "slow"), Some(Health::Critical));
        let idle_until = lapsed + Duration::from_secs(5);
        let wakes = run_until(&mut n, idle_until);
        assert!(wakes < 20, "{wakes} wake-ups in 5 s with a critical TTL");
        assert_eq!(n.io.registry_tick_at, None, "the tick stays armed");
        report(&mut n, idle_until, "slow", Health::Passing);
        run_until(
            &mut n,
            idle_until + Duration::from_secs(2) - Duration::from_millis(1),
        );
        assert_eq!(status(&n, "db-1", "slow"), Some(Health::Passing));
        run_until(&mut n, idle_until + Duration::from_secs(2));
        assert_eq!(status(&n, "db-1", "slow"), Some(Health::Critical));
    }

    /// A report that moves a deadline earlier than the one the tick sleeps for brings the
    /// tick forward.
    #[test]
    fn a_sooner_deadline_brings_the_tick_forward() {
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut n = node(start);
        register(&mut n, start, "db-1", vec![ttl("slow", 30, None)]);
        report(&mut n, start, "slow", Health::Passing);
        // Past the first tick: asleep until the slow TTL.
        let later = start + Duration::from_secs(1);
        run_until(&mut n, later);
        assert_eq!(n.io.registry_tick_at, Some(start + Duration::from_secs(30)));
        register(&mut n, later, "db-2", vec![ttl("fast", 2, None)]);
        report(&mut n, later, "fast", Health::Passing);
        assert_eq!(
            n.io.registry_tick_at,
            Some(later + Duration::from_secs(2)),
            "the tick was not brought forward to the sooner TTL"
        );
        run_until(&mut n, later + Duration::from_secs(2));
        assert_eq!(status(&n, "db-2", "fast"), Some(Health::Critical));
        assert_eq!(status(&n, "db-1", "slow"), Some(Health::Passing));
    }

    #[test]
    fn one_lapsed_ttl_of_two_makes_only_that_check_and_the_instance_critical() {
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut n = node(start);
        register(
            &mut n,
            start,
            "db-1",
            vec![ttl("fast", 1, None), ttl("slow", 60, None)],
        );
        report(&mut n, start, "fast", Health::Passing);
        report(&mut n, start, "slow", Health::Passing);
        let id = InstanceId::new("db-1").unwrap();
        assert_eq!(n.registry().get(&id).unwrap().health, Health::Passing);
        run_until(&mut n, start + Duration::from_secs(3));
        assert_eq!(status(&n, "db-1", "fast"), Some(Health::Critical));
        assert_eq!(status(&n, "db-1", "slow"), Some(Health::Passing));
        let instance = n.registry().get(&id).unwrap().clone();
        assert_eq!(instance.health, Health::Critical);
        assert_eq!(instance.output.0, "TTL expired");
    }

    #[test]
    fn a_check_critical_past_its_own_deregister_after_removes_the_instance() {
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut n = node(start);
        register(
            &mut n,
            start,
            "db-1",
            vec![
                ttl("fast", 1, Some(Duration::from_secs(2))),
                ttl("slow", 600, None),
            ],
        );
        report(&mut n, start, "fast", Health::Passing);
        report(&mut n, start, "slow", Health::Passing);
        run_until(&mut n, start + Duration::from_secs(2));
        assert!(status(&n, "db-1", "fast").is_some(), "not yet");
        run_until(&mut n, start + Duration::from_secs(6));
        assert!(
            n.registry()
                .get(&InstanceId::new("db-1").unwrap())
                .is_none(),
            "deregistered"
        );
    }

    #[test]
    fn check_ids_are_the_nodes_own() {
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut n = node(start);
        register(&mut n, start, "db-1", vec![ttl("shared", 30, None)]);
        let mut spec = InstanceSpec::new(ServiceName::new("db").unwrap(), "10.0.0.2", 5432);
        spec.id = Some(InstanceId::new("db-2").unwrap());
        spec.checks = vec![ttl("shared", 30, None)];
        let refused = n.handle_command(start, Command::Register(spec));
        assert!(
            matches!(&refused, Err(CommandError::Invalid { detail }) if detail.contains("shared")),
            "{refused:?}"
        );
        let unknown = n.handle_command(
            start,
            Command::SetCheck {
                check: "nope".into(),
                health: Health::Passing,
                output: String::new(),
            },
        );
        assert!(matches!(unknown, Err(CommandError::UnknownCheck { .. })));
        // A bare instance id, as hera always took, names its first check.
        report(&mut n, start, "db-1", Health::Passing);
        assert_eq!(status(&n, "db-1", "shared"), Some(Health::Passing));
        let removed = n.handle_command(
            start,
            Command::DeregisterCheck {
                check: "db-1".into(),
            },
        );
        assert!(matches!(removed, Err(CommandError::UnknownCheck { .. })));
    }

    /// A check of one instance may carry the id Consul would give another's default check
    /// (Consul allows any CheckID). An instance registered without checks has none, so its
    /// registration is no clash and is taken; one with a default check does clash, and is
    /// refused by name.
    #[test]
    fn an_instance_without_checks_is_taken_beside_a_check_named_as_its_default() {
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut n = node(start);
        register(&mut n, start, "db-1", vec![ttl("service:db-2", 30, None)]);
        let mut spec = InstanceSpec::new(ServiceName::new("db").unwrap(), "10.0.0.2", 5432);
        spec.id = Some(InstanceId::new("db-2").unwrap());
        let taken = n.handle_command(start, Command::Register(spec.clone()));
        assert!(taken.is_ok(), "{taken:?}");
        spec.id = Some(InstanceId::new("db-3").unwrap());
        spec.checks = vec![ttl("service:db-2", 30, None)];
        let refused = n.handle_command(start, Command::Register(spec));
        assert!(
            matches!(&refused, Err(CommandError::Invalid { detail }) if detail.contains("service:db-2")),
            "{refused:?}"
        );
        // The report goes to the check that has the id, not to db-2.
        report(&mut n, start, "service:db-2", Health::Passing);
        assert_eq!(status(&n, "db-1", "service:db-2"), Some(Health::Passing));
    }

    /// An instance registered at the size limit in the plain form (no list) is turned into the
    /// list form when a node check fails it; the entry must still fit one datagram, or it is
    /// never sent again (`entries_unsendable`) and the cluster keeps it passing.
    #[test]
    fn an_instance_at_the_size_limit_still_fits_once_a_node_check_fails_it() {
        use crate::registry::{worst_case_entry_bytes, ENTRY_MAX_BYTES};
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut n = node(start);
        let id = InstanceId::new(&"i".repeat(InstanceId::MAX_BYTES)).unwrap();
        let spec_of = |body: usize| {
            let mut spec = InstanceSpec::new(ServiceName::new("db").unwrap(), "10.0.0.1", 5432);
            spec.id = Some(id.clone());
            spec.body = Some("b".repeat(body));
            spec
        };
        // The longest body the registration takes.
        let body = (0..=crate::registry::BODY_MAX_BYTES)
            .rev()
            .find(|&b| {
                spec_of(b)
                    .into_instance(id.clone(), NodeName::new("n0").unwrap(), 1)
                    .is_ok()
            })
            .unwrap();
        n.handle_command(start, Command::Register(spec_of(body)))
            .unwrap();
        register_node_check(&mut n, start, "disk");
        let instance = n.registry().get(&id).unwrap().clone();
        assert_eq!(instance.health, Health::Critical);
        let bytes = worst_case_entry_bytes(&instance);
        assert!(bytes <= ENTRY_MAX_BYTES, "{bytes} bytes (body {body})");
    }

    #[test]
    fn a_node_check_rules_every_owned_instance_and_leaves_their_own_checks_alone() {
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut n = node(start);
        register(&mut n, start, "db-1", vec![ttl("db-ttl", 30, None)]);
        register(&mut n, start, "db-2", Vec::new());
        report(&mut n, start, "db-ttl", Health::Passing);
        register_node_check(&mut n, start, "disk");
        for id in ["db-1", "db-2"] {
            let i = n.registry().get(&InstanceId::new(id).unwrap()).unwrap();
            assert_eq!(
                i.health,
                Health::Critical,
                "{id}: a new TTL check is critical"
            );
        }
        assert_eq!(status(&n, "db-1", "db-ttl"), Some(Health::Passing));
        report(&mut n, start, "disk", Health::Passing);
        for id in ["db-1", "db-2"] {
            let i = n.registry().get(&InstanceId::new(id).unwrap()).unwrap();
            assert_eq!(i.health, Health::Passing, "{id}");
        }
        // Back to the plain form: one check of the default id costs what it did.
        let db2 = n.registry().get(&InstanceId::new("db-2").unwrap()).unwrap();
        assert!(db2.checks.0.is_none());
    }
}
