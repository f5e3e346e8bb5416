//! The dissemination queue (SWIM §4.1, memberlist's `TransmitLimitedQueue`).
//!
//! Every update waits here to ride on outgoing datagrams. Each is sent about
//! `retransmit_mult · ceil(log10(N + 1))` times, which reaches all N members with high
//! probability; the least-sent go first (newest first among equals), and a newer update about
//! the same subject replaces the queued one, so the queue never holds stale news.
//!
//! Registry entries are bounded ([`INSTANCE_UPDATES_MAX`]); member updates and queries are
//! not, so membership news is never pushed out by a bulk load.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use hashbrown::HashTable;

use crate::names::NodeName;
use crate::wire::DatagramBuilder;

/// What an update is about; one queued update per subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Member(NodeName),
    Instance(crate::names::InstanceId),
    Query(crate::wire::QueryId),
}

/// Registry entries the queue holds at most. Past it, queuing one more drops the queued entry
/// least worth sending: the one sent most often, the oldest among those (where memberlist and
/// Serf drop the oldest past a maximum depth). Anti-entropy (`node/catalog/sync.rs`) delivers
/// whatever gossip dropped, within a `sync_interval` or two.
///
/// Why 1,024 (measured with the simulator's `registry-churn`, 20 nodes × 1,000 instances,
/// docs/scale.md): after the bulk load the queues took 1,501 s to drain unbounded and 174 s at
/// 4,096, gossiping entries every node already held; at 1,024 they drained within the churn
/// that followed, which sent 30% fewer bytes than at 4,096 or unbounded (55% fewer at 256),
/// and the bulk load reached every node as fast (45.7 s; 47.5 s at 256). Smaller, a node's
/// own burst of writes starts going by anti-entropy (a `sync_interval`: 30 s on lan) instead
/// of gossip (milliseconds): 1,024 keeps a thousand-instance deployment on one node on the
/// fast path. Memory: at most 1,024 encoded entries, ~150 KB at ~140 B each.
pub const INSTANCE_UPDATES_MAX: usize = 1_024;

/// How many times each update is sent in a cluster of `members`.
pub fn retransmit_limit(retransmit_mult: u32, members: usize) -> u32 {
    let log = ((members + 1) as f64).log10().ceil().max(1.0) as u32;
    retransmit_mult.max(1) * log
}

/// What [`Broadcasts::fill`] put in a datagram, by subject (counted apart: member updates and
/// registry entries are different message kinds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filled {
    pub members: usize,
    pub instances: usize,
    pub queries: usize,
}

impl Filled {
    pub fn total(&self) -> usize {
        self.members + self.instances + self.queries
    }
}

/// Ordering key: fewest transmissions first, then newest first.
type Key = (u32, std::cmp::Reverse<u64>);

#[derive(Debug)]
struct Queued {
    subject: Subject,
    /// The encoded message, exactly sized: a join burst queues one per member.
    payload: Box<[u8]>,
}

/// The queue. Sized for join bursts, when every node holds an update about nearly every other
/// member at once (10,000 nodes: 10^8 queued updates in a simulation): the subject index holds
/// bare keys and hashes the subjects kept in `queue`, rather than a second copy of each.
#[derive(Debug)]
pub struct Broadcasts {
    queue: BTreeMap<Key, Queued>,
    /// The key of each subject's queued update.
    by_subject: HashTable<Key>,
    /// The keys of the queued registry entries, in queue order: the last is the one to drop.
    instances: BTreeSet<Key>,
    /// At most this many entries in `instances`.
    instances_max: usize,
    next_id: u64,
}

impl Default for Broadcasts {
    fn default() -> Broadcasts {
        Broadcasts::with_instances_max(INSTANCE_UPDATES_MAX)
    }
}

/// The index's hash: SipHash with fixed keys, the same on every run (lookups only).
fn subject_hash(subject: &Subject) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(subject)
}

/// The hash of the subject queued under `key`, for the index's own rehashing.
fn hash_at(queue: &BTreeMap<Key, Queued>, key: &Key) -> u64 {
    queue.get(key).map_or(0, |item| subject_hash(&item.subject))
}

impl Broadcasts {
    /// A queue holding at most `instances_max` registry entries (at least one).
    pub fn with_instances_max(instances_max: usize) -> Broadcasts {
        Broadcasts {
            queue: BTreeMap::new(),
            by_subject: HashTable::new(),
            instances: BTreeSet::new(),
            instances_max: instances_max.max(1),
            next_id: 0,
        }
    }

    /// Queue an encoded message, replacing any older one about the same subject. Returns the
    /// subject of the registry entry dropped to stay within the bound, if one was.
    pub fn push(&mut self, subject: Subject, payload: Box<[u8]>) -> Option<Subject> {
        self.next_id += 1;
        let key = (0, std::cmp::Reverse(self.next_id));
        let hash = subject_hash(&subject);
        let is_instance = matches!(subject, Subject::Instance(_));
        let queue = &self.queue;
        let held = |k: &Key| queue.get(k).is_some_and(|item| item.subject == subject);
        match self.by_subject.find_entry(hash, held) {
            Ok(mut entry) => {
                let old = std::mem::replace(entry.get_mut(), key);
                self.queue.remove(&old);
                self.queue.insert(key, Queued { subject, payload });
                if is_instance {
                    self.instances.remove(&old);
                    self.instances.insert(key);
                }
                None
            }
            Err(_) => {
                // Make room first: the newcomer is never the one dropped (it is the newest and
                // has been sent least).
                let dropped = if is_instance && self.instances.len() >= self.instances_max {
                    self.drop_least_worth()
                } else {
                    None
                };
                self.queue.insert(key, Queued { subject, payload });
                let queue = &self.queue;
                self.by_subject
                    .insert_unique(hash, key, |k| hash_at(queue, k));
                if is_instance {
                    self.instances.insert(key);
                }
                dropped
            }
        }
    }

    /// Drop the queued registry entry sent most often (the oldest among equals).
    fn drop_least_worth(&mut self) -> Option<Subject> {
        let key = self.instances.pop_last()?;
        let item = self.queue.remove(&key)?;
        if let Ok(entry) = self
            .by_subject
            .find_entry(subject_hash(&item.subject), |k| *k == key)
        {
            entry.remove();
        }
        Some(item.subject)
    }

    /// Registry entries queued (at most the bound given at construction).
    pub fn instances_len(&self) -> usize {
        self.instances.len()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drop whatever is queued about `subject`.
    pub fn forget(&mut self, subject: &Subject) {
        let queue = &self.queue;
        let held = |k: &Key| queue.get(k).is_some_and(|item| item.subject == *subject);
        if let Ok(entry) = self.by_subject.find_entry(subject_hash(subject), held) {
            let (key, _) = entry.remove();
            self.queue.remove(&key);
            self.instances.remove(&key);
        }
    }

    /// Put as many queued updates into `datagram` as fit, least-sent first, counting one
    /// transmission for each; updates sent `limit` times are dropped. Returns how many went in.
    pub fn fill(&mut self, datagram: &mut DatagramBuilder, limit: u32) -> Filled {
        /// The smallest message we queue; below this the datagram is full.
        const SMALLEST_BYTES: usize = 12;
        /// Give up after this many updates that did not fit, so a long queue of large
        /// updates costs little per datagram.
        const MISSES_MAX: usize = 32;
        let mut sent = Vec::new();
        let mut filled = Filled::default();
        let mut misses = 0;
        for (key, item) in &self.queue {
            if datagram.remaining() < SMALLEST_BYTES || misses >= MISSES_MAX {
                break;
            }
            if datagram.try_push(&item.payload) {
                sent.push(*key);
                match item.subject {
                    Subject::Member(_) => filled.members += 1,
                    Subject::Instance(_) => filled.instances += 1,
                    Subject::Query(_) => filled.queries += 1,
                }
            } else {
                misses += 1;
            }
        }
        for key in &sent {
            let Some(item) = self.queue.remove(key) else {
                continue;
            };
            let Ok(mut entry) = self
                .by_subject
                .find_entry(subject_hash(&item.subject), |k| k == key)
            else {
                continue;
            };
            let transmits = key.0 + 1;
            let is_instance = self.instances.remove(key);
            if transmits >= limit {
                entry.remove();
            } else {
                let new_key = (transmits, key.1);
                *entry.get_mut() = new_key;
                self.queue.insert(new_key, item);
                if is_instance {
                    self.instances.insert(new_key);
                }
            }
        }
        // A join burst queues an update per member; give the index's memory back once the
        // burst has gone out, or every member costs its slot for the node's lifetime.
        if self.by_subject.capacity() > 64 && self.by_subject.len() * 4 < self.by_subject.capacity()
        {
            let queue = &self.queue;
            self.by_subject.shrink_to_fit(|k| hash_at(queue, k));
        }
        filled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(i: usize) -> Subject {
        Subject::Member(NodeName::new(&format!("n{i}")).unwrap())
    }

    fn instance(i: usize) -> Subject {
        Subject::Instance(crate::names::InstanceId::new(&format!("i{i}")).unwrap())
    }

    /// The subjects queued, in the order they would be sent.
    fn queued(q: &Broadcasts) -> Vec<Subject> {
        q.queue.values().map(|item| item.subject.clone()).collect()
    }

    #[test]
    fn retransmit_limit_grows_with_log_n() {
        let table = [
            (0, 4),
            (1, 4),
            (9, 4),
            (10, 8),
            (99, 8),
            (100, 12),
            (1_000, 16),
            (10_000, 20),
        ];
        for (n, limit) in table {
            assert_eq!(retransmit_limit(4, n), limit, "n={n}");
        }
        assert_eq!(retransmit_limit(0, 5), 1);
    }

    #[test]
    fn each_update_is_sent_limit_times_then_dropped() {
        let mut q = Broadcasts::default();
        q.push(subject(1), Box::from(vec![1u8; 20]));
        for round in 0..3 {
            let mut d = DatagramBuilder::new(1_400);
            assert_eq!(q.fill(&mut d, 3).total(), 1, "round {round}");
        }
        assert!(q.is_empty());
    }

    #[test]
    fn newer_update_replaces_older_about_same_subject() {
        let mut q = Broadcasts::default();
        q.push(subject(1), Box::from(vec![1u8; 20]));
        q.push(subject(1), Box::from(vec![2u8; 20]));
        assert_eq!(q.len(), 1);
        let mut d = DatagramBuilder::new(1_400);
        assert_eq!(q.fill(&mut d, 5).total(), 1);
        let bytes = d.finish();
        assert!(bytes.windows(20).any(|w| w == [2u8; 20]));
        assert!(!bytes.windows(20).any(|w| w == [1u8; 20]));
    }

    #[test]
    fn packing_never_exceeds_the_budget_and_least_sent_go_first() {
        let mut q = Broadcasts::default();
        for i in 0..200 {
            q.push(subject(i), Box::from(vec![i as u8; 10 + (i % 50)]));
        }
        for budget in [64, 100, 512, 1_400] {
            let mut d = DatagramBuilder::new(budget);
            q.fill(&mut d, 100);
            assert!(d.finish().len() <= budget, "budget {budget}");
        }
        // An update sent fewer times goes before one sent more often.
        let mut q = Broadcasts::default();
        q.push(subject(1), Box::from(vec![1u8; 600]));
        let mut d = DatagramBuilder::new(700);
        assert_eq!(q.fill(&mut d, 10).total(), 1);
        q.push(subject(2), Box::from(vec![2u8; 600]));
        let mut d = DatagramBuilder::new(700);
        assert_eq!(q.fill(&mut d, 10).total(), 1);
        assert!(d.finish().windows(600).any(|w| w == [2u8; 600]));
    }

    #[test]
    fn a_replaced_entry_stays_one_entry_and_drops_nothing() {
        let mut q = Broadcasts::with_instances_max(2);
        assert_eq!(q.push(instance(1), Box::from(vec![1u8; 20])), None);
        assert_eq!(q.push(instance(2), Box::from(vec![2u8; 20])), None);
        // At the bound, a newer version of a queued entry replaces it: nothing is dropped.
        for v in 3..10u8 {
            assert_eq!(q.push(instance(1), Box::from(vec![v; 20])), None);
        }
        assert_eq!((q.len(), q.instances_len()), (2, 2));
        assert_eq!(queued(&q), [instance(1), instance(2)]);
    }

    #[test]
    fn member_updates_and_queries_are_never_dropped() {
        let mut q = Broadcasts::with_instances_max(3);
        for i in 0..500 {
            assert_eq!(q.push(subject(i), Box::from(vec![1u8; 20])), None);
            if i % 10 == 0 {
                // Only ever an entry makes way, and only for an entry.
                let dropped = q.push(instance(i), Box::from(vec![2u8; 20]));
                assert!(dropped.is_none() || matches!(dropped, Some(Subject::Instance(_))));
            }
        }
        let query = Subject::Query(crate::wire::QueryId {
            asker: NodeName::new("n1").unwrap(),
            seq: 7,
        });
        assert_eq!(q.push(query.clone(), Box::from(vec![3u8; 20])), None);
        assert_eq!(q.instances_len(), 3);
        assert_eq!(q.len(), 500 + 3 + 1);
        let held = queued(&q);
        assert!((0..500).all(|i| held.contains(&subject(i))));
        assert!(held.contains(&query));
        // The three newest entries are the ones kept.
        assert!([470, 480, 490].iter().all(|&i| held.contains(&instance(i))));
    }

    #[test]
    fn the_entry_sent_most_goes_first_then_the_oldest() {
        let mut q = Broadcasts::with_instances_max(3);
        for i in 1..=3 {
            assert_eq!(q.push(instance(i), Box::from(vec![i as u8; 100])), None);
        }
        // One datagram with room for one: the newest, i3, is sent once.
        let mut d = DatagramBuilder::new(150);
        assert_eq!(q.fill(&mut d, 10).instances, 1);
        assert_eq!(queued(&q), [instance(2), instance(1), instance(3)]);
        // The entry sent most makes way, though it is the newest of the three.
        assert_eq!(
            q.push(instance(4), Box::from(vec![4u8; 100])),
            Some(instance(3))
        );
        // Then, all unsent, the oldest.
        assert_eq!(
            q.push(instance(5), Box::from(vec![5u8; 100])),
            Some(instance(1))
        );
        assert_eq!(
            q.push(instance(6), Box::from(vec![6u8; 100])),
            Some(instance(2))
        );
        assert_eq!(queued(&q), [instance(6), instance(5), instance(4)]);
        // An entry forgotten or sent `limit` times leaves room: no drop for the next one.
        q.forget(&instance(5));
        assert_eq!(q.push(instance(7), Box::from(vec![7u8; 100])), None);
        let mut d = DatagramBuilder::new(1_400);
        assert_eq!(q.fill(&mut d, 1).instances, 3);
        assert_eq!(q.instances_len(), 0);
        for i in 8..11 {
            assert_eq!(q.push(instance(i), Box::from(vec![i as u8; 100])), None);
        }
    }
}
