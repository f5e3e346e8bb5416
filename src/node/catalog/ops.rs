//! What the catalog keeps of the instances this node owns, and the commands that write them:
//! register, renew, deregister, health and maintenance, checks. Merging what peers gossip is
//! [`super::merge`]; the owner's tick and the instances of failed owners, [`super::tick`].

use super::checks::OwnedCheck;
use super::Catalog;
use crate::names::{InstanceId, ServiceName};
use crate::node::io::Io;
use crate::node::{CommandError, Reply};
use crate::registry::{clip, fit_texts, Check, Entry, Health, Hlc, Instance, InstanceSpec};
use crate::time::Instant;

/// Tombstones answering old versions of deleted entries, held until the datagram that brought
/// them has been read (`Catalog::send_grave_replies`): one per entry, and a datagram carries far
/// fewer entries than this.
pub(crate) const GRAVE_REPLIES_MAX: usize = 256;

/// How the maintenance reason of an instance taken off-line with its node begins: what tells
/// node maintenance from the instance's own when the node comes back, and after a restart.
pub(crate) const NODE_MAINTENANCE: &str = "node maintenance: ";

/// Deadlines of an instance this node owns. Owner-local: a renewal that changes nothing else
/// moves these and sends nothing, so heartbeats cost no cluster traffic.
///
/// Only instances registered through this node's API (or touched by it: a renewal, a health
/// report) or restored from its own data_dir are owned here. An entry that arrives by gossip
/// naming this node as owner is stored but not adopted: nobody outside the node's API can
/// make it fetch a URL or enforce a TTL (issue 14, finding 6).
#[derive(Debug, Clone, Default)]
pub(super) struct Owned {
    /// The checks as this node was given them, never as gossip later rewrote them: the only
    /// URLs and addresses this node probes for the instance.
    pub(super) checks: Vec<OwnedCheck>,
    pub(super) liveness_deadline: Option<Instant>,
}

impl Owned {
    pub(super) fn new(instance: &Instance) -> Owned {
        let mut checks: Vec<OwnedCheck> = instance
            .checks()
            .iter()
            .filter(|c| c.check != Check::None)
            .map(OwnedCheck::of)
            .collect();
        // A filtered collect grows from nothing, and a Vec's first allocation has room for
        // four: 416 B for the one check most instances have, 312 B of it never used, on every
        // instance a node owns (tests/memory.rs, `bytes_per_owned_instance_at_ten_thousand`).
        checks.shrink_to_fit();
        Owned {
            checks,
            liveness_deadline: None,
        }
    }

    /// The earliest moment the owner's tick has something to do for this instance: its
    /// liveness lapses, a check's TTL lapses or its run is due, or a check has been critical
    /// for its `deregister_after` ([`super::owned::OwnedSet`] is indexed by it).
    pub(super) fn next_due(&self) -> Option<Instant> {
        let checks = self.checks.iter().flat_map(|c| {
            let deregister = match (c.critical_since, c.deregister_after) {
                (Some(since), Some(after)) => Some(since + after),
                _ => None,
            };
            [c.ttl_deadline, c.next_check, deregister]
        });
        std::iter::once(self.liveness_deadline)
            .chain(checks)
            .flatten()
            .min()
    }

    /// Take the checks of a registration through our API: those unchanged keep their
    /// deadlines, the others start afresh.
    pub(super) fn take_checks(&mut self, instance: &Instance) {
        let mut fresh = Owned::new(instance).checks;
        for check in &mut fresh {
            if let Some(old) = self
                .checks
                .iter()
                .find(|o| o.id == check.id && o.check == check.check)
            {
                check.clone_from(old);
            }
        }
        self.checks = fresh;
    }
}

impl Catalog {
    // ---- commands ----

    pub(crate) fn register(
        &mut self,
        io: &mut Io,
        now: Instant,
        spec: InstanceSpec,
    ) -> Result<Reply, CommandError> {
        let id = match spec.id.clone() {
            Some(id) => id,
            None => self.new_instance_id(io),
        };
        let existing = self.registry.get(&id);
        if let Some(current) = existing {
            if current.service != spec.service {
                return Err(CommandError::IdInUse {
                    id,
                    service: current.service.clone(),
                });
            }
        }
        let mut instance = spec
            .into_instance(id.clone(), self.name.clone(), now.as_millis())
            .map_err(|e| CommandError::Invalid {
                detail: e.to_string(),
            })?;
        let mut existing_equal = false;
        let wall_ms = now.as_millis();
        let mut checks = instance.checks();
        if let Some(current) = existing {
            // Re-registering keeps what the instance's checks and operators established.
            let before = current.checks();
            for check in &mut checks {
                if let Some(old) = before
                    .iter()
                    .find(|o| o.id == check.id && o.check == check.check)
                {
                    check.status = old.status;
                    check.output = old.output.clone();
                    check.since_ms = old.since_ms;
                }
            }
            instance.health = current.health;
            instance.health_since_ms = current.health_since_ms;
            instance.online = current.online;
            instance.maintenance_reason = current.maintenance_reason.clone();
        }
        instance.set_checks(checks, self.node_verdict().as_ref(), wall_ms);
        self.refuse_taken_ids(&id, &instance)?;
        // Checked once the registration is known to be valid, so a malformed one is told so.
        self.room_to_own(io, &id)?;
        self.room_to_hold(io, &id)?;
        if let (Some(reason), true) = (&self.node_maintenance, instance.online) {
            // Registered while the node is in maintenance: off-line with it.
            instance.online = false;
            instance.maintenance_reason =
                Some(clip(&format!("{NODE_MAINTENANCE}{reason}"), usize::MAX));
            fit_texts(&mut instance);
        }
        if let Some(current) = existing {
            existing_equal = *current == instance;
        }
        // Registered through our API: the checks to run are the ones given here.
        if self
            .owned
            .update(&id, |owned| owned.take_checks(&instance))
            .is_none()
        {
            self.own(id.clone(), Owned::new(&instance));
        }
        if existing_equal {
            self.refresh_deadlines(now, &instance, None);
            return Ok(Reply::Registered { id });
        }
        self.refresh_deadlines(now, &instance, None);
        self.owned.update(&id, |owned| {
            for check in &mut owned.checks {
                check.next_check = check.check.interval().map(|_| now);
            }
        });
        self.write(io, now, id.clone(), Some(instance));
        Ok(Reply::Registered { id })
    }

    pub(crate) fn renew(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: &InstanceId,
    ) -> Result<Reply, CommandError> {
        let mut next = self.live_instance(id)?;
        // A renewal here makes us the owner of an instance registered elsewhere.
        self.room_to_own(io, id)?;
        next.owner = self.name.clone();
        let mut checks = next.checks();
        let mut revived = false;
        for check in &mut checks {
            if check.check.ttl().is_some() && check.status == Health::Critical {
                // A heartbeat is the instance saying it is alive.
                check.status = Health::Passing;
                check.output = clip("renewed", usize::MAX);
                check.since_ms = now.as_millis();
                revived = true;
            }
        }
        if revived {
            next.set_checks(checks, self.node_verdict().as_ref(), now.as_millis());
        }
        self.refresh_deadlines(now, &next, None);
        if self.changes(id, &next) {
            self.write(io, now, id.clone(), Some(next));
        }
        Ok(Reply::Done)
    }

    pub(crate) fn deregister(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: &InstanceId,
    ) -> Result<Reply, CommandError> {
        self.live_instance(id)?;
        self.disown(id);
        self.write(io, now, id.clone(), None);
        Ok(Reply::Done)
    }

    pub(crate) fn set_health(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: &InstanceId,
        health: Health,
        output: &str,
    ) -> Result<Reply, CommandError> {
        // The instance's first check (its only one, as the seed API and older clients see it).
        let first = self.live_instance(id)?.checks().into_iter().next();
        let Some(first) = first else {
            return Ok(Reply::Done);
        };
        if self.target_is_ours_or_instance(&first.id.0) {
            return self.set_check(io, now, &first.id.0, health, output);
        }
        Err(CommandError::UnknownInstance { id: id.clone() })
    }

    pub(crate) fn set_maintenance(
        &mut self,
        io: &mut Io,
        now: Instant,
        id: &InstanceId,
        enable: bool,
        reason: Option<&str>,
    ) -> Result<Reply, CommandError> {
        let mut next = self.live_instance(id)?;
        next.online = !enable;
        next.maintenance_reason = if enable {
            Some(clip(reason.unwrap_or("maintenance mode"), usize::MAX))
        } else {
            None
        };
        fit_texts(&mut next);
        if self.changes(id, &next) {
            self.write(io, now, id.clone(), Some(next));
        }
        Ok(Reply::Done)
    }

    /// Node maintenance: every instance this node owns off-line (those in their own
    /// maintenance keep theirs), or back on-line (only those node maintenance took).
    pub(crate) fn set_node_maintenance(
        &mut self,
        io: &mut Io,
        now: Instant,
        enable: bool,
        reason: Option<&str>,
    ) -> Reply {
        let taken = |i: &Instance| {
            i.maintenance_reason
                .as_ref()
                .is_some_and(|r| r.0.starts_with(NODE_MAINTENANCE))
        };
        let reason = reason.unwrap_or("maintenance mode").to_string();
        for (id, mut next) in self.held_as_owner() {
            if enable && (next.online || taken(&next)) {
                next.online = false;
                next.maintenance_reason =
                    Some(clip(&format!("{NODE_MAINTENANCE}{reason}"), usize::MAX));
            } else if !enable && taken(&next) {
                next.online = true;
                next.maintenance_reason = None;
            }
            fit_texts(&mut next);
            if self.changes(&id, &next) {
                self.write(io, now, id, Some(next));
            }
        }
        self.node_maintenance = enable.then_some(reason);
        io.changed();
        Reply::Done
    }

    /// Start the HTTP checks of owned instances now; checks of instances owned elsewhere are
    /// their owners' to run, and entries that only name us by gossip are nobody's.
    pub(crate) fn run_checks(
        &mut self,
        io: &mut Io,
        now: Instant,
        service: Option<&ServiceName>,
        id: Option<&InstanceId>,
    ) -> Reply {
        let due: Vec<(InstanceId, String)> = self
            .owned
            .iter()
            .filter(|(owned_id, _)| {
                self.registry.get(owned_id).is_some_and(|i| {
                    i.owner == self.name
                        && service.is_none_or(|s| i.service == *s)
                        && id.is_none_or(|d| i.id == *d)
                })
            })
            .flat_map(|(owned_id, owned)| {
                owned
                    .checks
                    .iter()
                    .filter(|c| c.check.interval().is_some())
                    .map(|c| (owned_id.clone(), c.id.clone()))
            })
            .collect();
        for (id, check) in &due {
            self.start_check(io, now, Some(id), check);
        }
        Reply::ChecksStarted { count: due.len() }
    }

    /// A copy of a live instance, to change and write back.
    pub(super) fn live_instance(&self, id: &InstanceId) -> Result<Instance, CommandError> {
        self.registry
            .get(id)
            .cloned()
            .ok_or_else(|| CommandError::UnknownInstance { id: id.clone() })
    }

    /// Whether writing `next` as `id` would change what the registry holds (a write that
    /// changes nothing is not made, so it is not gossiped).
    pub(super) fn changes(&self, id: &InstanceId, next: &Instance) -> bool {
        self.registry.get(id) != Some(next)
    }

    /// Whether `check` is a check id a report may name (one of ours, or `service:<id>` of an
    /// instance anywhere).
    pub(super) fn target_is_ours_or_instance(&self, check: &str) -> bool {
        check.starts_with("service:")
            || self
                .owned
                .values()
                .any(|o| o.checks.iter().any(|c| c.id == check))
    }

    /// A UUID v4 from the node's seeded generator (deterministic in the simulator).
    pub(super) fn new_instance_id(&mut self, io: &mut Io) -> InstanceId {
        use rand_core::RngCore;
        let mut b = [0u8; 16];
        io.rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let text = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        // 36 characters of hex digits and dashes: always a valid id.
        #[allow(clippy::expect_used)]
        InstanceId::new(&text).expect("a UUID is a valid instance id")
    }
}

impl Catalog {
    /// The registry half of a restore: the clock floor, then this node's own instances.
    pub(in crate::node) fn restore(
        &mut self,
        io: &mut Io,
        now: Instant,
        clock: (u64, u32),
        instances: Vec<Entry>,
    ) {
        let (wall_ms, counter) = clock;
        // Our own saved state, trusted like the rest of the data directory (not checked
        // against `max_clock_offset`): the floor is what keeps writes after a restart above
        // the previous boot's when the wall clock went back.
        self.registry.observe(&Hlc {
            wall_ms,
            counter,
            node: self.name.clone(),
        });
        for entry in instances {
            let ours = entry
                .instance
                .as_ref()
                .is_some_and(|i| i.owner == self.name && i.id == entry.id);
            if !ours {
                continue;
            }
            // Merging stores it and queues it for gossip (the re-announcement); adopting it
            // arms its TTL and checks from `now` (one whole TTL for the client to report again).
            let id = entry.id.clone();
            self.merge(io, entry);
            if let Some(instance) = self.registry.get(&id).cloned() {
                if instance.owner == self.name {
                    self.refresh_deadlines(now, &instance, None);
                    // Node maintenance outlives a restart through the instances it took.
                    if let Some(reason) = instance
                        .maintenance_reason
                        .as_ref()
                        .and_then(|r| r.0.strip_prefix(NODE_MAINTENANCE))
                    {
                        self.node_maintenance = Some(reason.to_string());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use crate::config::Config;
    use crate::names::{InstanceId, Label, NodeName, ServiceName};
    use crate::node::{Command, Event, Identity, Node};
    use crate::registry::{Entry, InstanceSpec};
    use crate::time::Instant;

    /// One node that registers `n` instances, each live for a second without renewal, and
    /// runs its timers until they have lapsed; what it sent and reported, in order, and the
    /// tombstones (each with the version its deletion was given).
    fn lapse_all(n: usize) -> (Vec<Vec<u8>>, Vec<Event>, Vec<Option<Entry>>) {
        let identity = Identity {
            name: NodeName::new("n0").unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
            dc: Label::new("dc1").unwrap(),
            tags: Vec::new(),
        };
        let start = Instant::from_micros(1_700_000_000_000_000);
        let mut node = Node::new(Config::local(), identity, 7, start);
        let ids: Vec<InstanceId> = (0..n)
            .map(|i| InstanceId::new(&format!("api-{i}")).unwrap())
            .collect();
        for id in &ids {
            let mut spec = InstanceSpec::new(ServiceName::new("api").unwrap(), "10.0.0.1", 80);
            spec.id = Some(id.clone());
            spec.liveness = Some(Duration::from_secs(1));
            node.handle_command(start, Command::Register(spec)).unwrap();
        }
        let end = start + Duration::from_secs(3);
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        for _ in 0..10_000 {
            let Some(at) = node.poll_timeout().filter(|at| *at <= end) else {
                break;
            };
            node.handle_timeout(at);
            while let Some(t) = node.poll_transmit() {
                sent.push(t.payload.to_vec());
            }
            events.extend(std::iter::from_fn(|| node.poll_event()));
        }
        assert_eq!(node.stats().instances_expired, n as u64);
        let tombstones = ids.iter().map(|id| node.registry().entry(id)).collect();
        (sent, events, tombstones)
    }

    /// Instances that lapse in the same tick are deleted in the same order on every run (the
    /// owner's deadlines were kept in a randomly seeded std `HashMap`, so two runs of the same
    /// node with the same seed and inputs deleted them, and versioned the tombstones, in
    /// different orders).
    #[test]
    fn owned_instances_lapse_in_the_same_order_every_run() {
        let first = lapse_all(16);
        for _ in 0..4 {
            assert_eq!(lapse_all(16), first);
        }
    }
}
