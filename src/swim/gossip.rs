//! The dissemination queue (SWIM §4.1, memberlist's `TransmitLimitedQueue`).
//!
//! Every update waits here to ride on outgoing datagrams. Each is sent about
//! `retransmit_mult · ceil(log10(N + 1))` times, which reaches all N members with high
//! probability; the least-sent go first (newest first among equals), and a newer update about
//! the same subject replaces the queued one, so the queue never holds stale news.

use std::collections::BTreeMap;
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
#[derive(Debug, Default)]
pub struct Broadcasts {
    queue: BTreeMap<Key, Queued>,
    /// The key of each subject's queued update.
    by_subject: HashTable<Key>,
    next_id: u64,
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
    /// Queue an encoded message, replacing any older one about the same subject.
    pub fn push(&mut self, subject: Subject, payload: Box<[u8]>) {
        self.next_id += 1;
        let key = (0, std::cmp::Reverse(self.next_id));
        let hash = subject_hash(&subject);
        let queue = &self.queue;
        let held = |k: &Key| queue.get(k).is_some_and(|item| item.subject == subject);
        match self.by_subject.find_entry(hash, held) {
            Ok(mut entry) => {
                let old = std::mem::replace(entry.get_mut(), key);
                self.queue.remove(&old);
                self.queue.insert(key, Queued { subject, payload });
            }
            Err(_) => {
                self.queue.insert(key, Queued { subject, payload });
                let queue = &self.queue;
                self.by_subject
                    .insert_unique(hash, key, |k| hash_at(queue, k));
            }
        }
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
            if transmits >= limit {
                entry.remove();
            } else {
                let new_key = (transmits, key.1);
                *entry.get_mut() = new_key;
                self.queue.insert(new_key, item);
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
}
