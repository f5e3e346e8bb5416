//! The instances this node owns, with their deadlines, indexed by the earliest of them.
//!
//! The owner's tick runs twice a second. Walking every owned instance to find the few with
//! something due cost O(owned) per tick (0.46 ms at 20,000, `benches/core.rs` `owner-tick`);
//! the index makes it O(due · log owned): 518 µs → 135 ns for a tick of 20,000 owned with
//! nothing due (`cargo bench --features fuzzing --bench core -- owner-tick`, same sitting).
//! Every change to an [`Owned`] goes through [`OwnedSet::update`], which moves its key, so the
//! index cannot fall out of step.

use std::collections::{BTreeMap, BTreeSet};

use super::ops::Owned;
use crate::names::InstanceId;
use crate::time::Instant;

#[derive(Debug, Default)]
pub(super) struct OwnedSet {
    by_id: BTreeMap<InstanceId, Owned>,
    /// (earliest deadline, id) of every owned instance that has one.
    due: BTreeSet<(Instant, InstanceId)>,
}

impl OwnedSet {
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn contains_key(&self, id: &InstanceId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Owned ids, in order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &InstanceId> {
        self.by_id.keys()
    }

    /// Owned instances, in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&InstanceId, &Owned)> {
        self.by_id.iter()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Owned> {
        self.by_id.values()
    }

    /// Insert or replace; the previous value if there was one.
    pub(super) fn insert(&mut self, id: InstanceId, owned: Owned) -> Option<Owned> {
        let previous = self.remove(&id);
        if let Some(at) = owned.next_due() {
            self.due.insert((at, id.clone()));
        }
        self.by_id.insert(id, owned);
        previous
    }

    pub(super) fn remove(&mut self, id: &InstanceId) -> Option<Owned> {
        let owned = self.by_id.remove(id)?;
        if let Some(at) = owned.next_due() {
            self.due.remove(&(at, id.clone()));
        }
        Some(owned)
    }

    /// Change what is kept of `id` (None if it is not owned), keeping the index in step.
    pub(super) fn update<R>(
        &mut self,
        id: &InstanceId,
        f: impl FnOnce(&mut Owned) -> R,
    ) -> Option<R> {
        let owned = self.by_id.get_mut(id)?;
        let before = owned.next_due();
        let result = f(owned);
        let after = owned.next_due();
        if before != after {
            if let Some(at) = before {
                self.due.remove(&(at, id.clone()));
            }
            if let Some(at) = after {
                self.due.insert((at, id.clone()));
            }
        }
        Some(result)
    }

    /// The earliest deadline of any owned instance. O(log owned).
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// The owned instances with a deadline at or before `now`, in id order (what the tick
    /// writes comes out in the same order on every run, for replay to be bit for bit).
    pub(super) fn due(&self, now: Instant) -> Vec<(&InstanceId, &Owned)> {
        let mut due: Vec<(&InstanceId, &Owned)> = self
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, id)| self.by_id.get_key_value(id))
            .collect();
        due.sort_unstable_by(|a, b| a.0.cmp(b.0));
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::catalog::checks::OwnedCheck;
    use crate::registry::{Check, Health};
    use std::time::Duration;

    fn id(s: &str) -> InstanceId {
        InstanceId::new(s).unwrap()
    }

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1_000)
    }

    fn ttl_check(ttl_ms: u64) -> OwnedCheck {
        OwnedCheck {
            id: "ttl".into(),
            check: Check::Ttl { ttl_ms },
            deregister_after: None,
            ttl_deadline: None,
            critical_since: None,
            next_check: None,
        }
    }

    /// What the index says is due is exactly what a walk of every owned instance finds, through
    /// every kind of change (insert, update, replace, remove), over a pseudo-random sequence.
    #[test]
    fn the_index_finds_what_a_walk_finds() {
        let mut set = OwnedSet::default();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for step in 0..4_000u64 {
            let key = id(&format!("i-{}", next(64)));
            match next(5) {
                0 => {
                    let owned = Owned {
                        liveness_deadline: (next(2) == 0).then(|| at(next(1_000))),
                        ..Owned::default()
                    };
                    set.insert(key, owned);
                }
                1 => {
                    set.remove(&key);
                }
                2 => {
                    let ms = next(1_000);
                    set.update(&key, |o| o.liveness_deadline = Some(at(ms)));
                }
                _ => {
                    let now = at(next(1_000));
                    let status = [Health::Passing, Health::Critical][next(2) as usize];
                    set.update(&key, |o| {
                        if o.checks.is_empty() {
                            o.checks.push(ttl_check(200));
                        }
                        o.checks[0].deregister_after = Some(Duration::from_millis(300));
                        o.checks[0].refresh(now, status, true);
                    });
                }
            }
            let now = at(next(1_500));
            let walked: Vec<&InstanceId> = set
                .by_id
                .iter()
                .filter(|(_, o)| o.next_due().is_some_and(|d| d <= now))
                .map(|(id, _)| id)
                .collect();
            let indexed: Vec<&InstanceId> = set.due(now).into_iter().map(|(id, _)| id).collect();
            assert_eq!(indexed, walked, "step {step}");
            assert_eq!(
                set.due.len(),
                set.by_id
                    .values()
                    .filter(|o| o.next_due().is_some())
                    .count()
            );
        }
    }
}
