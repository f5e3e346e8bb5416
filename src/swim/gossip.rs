//! The dissemination queue (SWIM §4.1, memberlist's `TransmitLimitedQueue`).
//!
//! Every update waits here to ride on outgoing datagrams. Each is sent about
//! `retransmit_mult · ceil(log10(N + 1))` times, which reaches all N members with high
//! probability; the least-sent go first (newest first among equals), and a newer update about
//! the same subject replaces the queued one, so the queue never holds stale news.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::names::NodeName;
use crate::wire::DatagramBuilder;

/// What an update is about; one queued update per subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Member(NodeName),
    Instance(crate::names::InstanceId),
}

/// How many times each update is sent in a cluster of `members`.
pub fn retransmit_limit(retransmit_mult: u32, members: usize) -> u32 {
    let log = ((members + 1) as f64).log10().ceil().max(1.0) as u32;
    retransmit_mult.max(1) * log
}

/// Ordering key: fewest transmissions first, then newest first.
type Key = (u32, std::cmp::Reverse<u64>);

#[derive(Debug)]
struct Queued {
    subject: Subject,
    payload: Bytes,
}

#[derive(Debug, Default)]
pub struct Broadcasts {
    queue: BTreeMap<Key, Queued>,
    by_subject: HashMap<Subject, Key>,
    next_id: u64,
}

impl Broadcasts {
    /// Queue an encoded message, replacing any older one about the same subject.
    pub fn push(&mut self, subject: Subject, payload: Bytes) {
        if let Some(old) = self.by_subject.remove(&subject) {
            self.queue.remove(&old);
        }
        self.next_id += 1;
        let key = (0, std::cmp::Reverse(self.next_id));
        self.by_subject.insert(subject.clone(), key);
        self.queue.insert(key, Queued { subject, payload });
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drop whatever is queued about `subject`.
    pub fn forget(&mut self, subject: &Subject) {
        if let Some(key) = self.by_subject.remove(subject) {
            self.queue.remove(&key);
        }
    }

    /// Put as many queued updates into `datagram` as fit, least-sent first, counting one
    /// transmission for each; updates sent `limit` times are dropped. Returns how many went in.
    pub fn fill(&mut self, datagram: &mut DatagramBuilder, limit: u32) -> usize {
        /// The smallest message we queue; below this the datagram is full.
        const SMALLEST_BYTES: usize = 12;
        /// Give up after this many updates that did not fit, so a long queue of large
        /// updates costs little per datagram.
        const MISSES_MAX: usize = 32;
        let mut sent = Vec::new();
        let mut misses = 0;
        for (key, item) in &self.queue {
            if datagram.remaining() < SMALLEST_BYTES || misses >= MISSES_MAX {
                break;
            }
            if datagram.try_push(&item.payload) {
                sent.push(*key);
            } else {
                misses += 1;
            }
        }
        for key in &sent {
            let Some(item) = self.queue.remove(key) else {
                continue;
            };
            let transmits = key.0 + 1;
            if transmits >= limit {
                self.by_subject.remove(&item.subject);
            } else {
                let new_key = (transmits, key.1);
                self.by_subject.insert(item.subject.clone(), new_key);
                self.queue.insert(new_key, item);
            }
        }
        // A join burst queues an update per member; give the index's memory back once the
        // burst has gone out, or every member costs its slot for the node's lifetime.
        if self.by_subject.capacity() > 64 && self.by_subject.len() * 4 < self.by_subject.capacity()
        {
            self.by_subject.shrink_to_fit();
        }
        sent.len()
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
        q.push(subject(1), Bytes::from(vec![1u8; 20]));
        for round in 0..3 {
            let mut d = DatagramBuilder::new(1_400);
            assert_eq!(q.fill(&mut d, 3), 1, "round {round}");
        }
        assert!(q.is_empty());
    }

    #[test]
    fn newer_update_replaces_older_about_same_subject() {
        let mut q = Broadcasts::default();
        q.push(subject(1), Bytes::from(vec![1u8; 20]));
        q.push(subject(1), Bytes::from(vec![2u8; 20]));
        assert_eq!(q.len(), 1);
        let mut d = DatagramBuilder::new(1_400);
        assert_eq!(q.fill(&mut d, 5), 1);
        let bytes = d.finish();
        assert!(bytes.windows(20).any(|w| w == [2u8; 20]));
        assert!(!bytes.windows(20).any(|w| w == [1u8; 20]));
    }

    #[test]
    fn packing_never_exceeds_the_budget_and_least_sent_go_first() {
        let mut q = Broadcasts::default();
        for i in 0..200 {
            q.push(subject(i), Bytes::from(vec![i as u8; 10 + (i % 50)]));
        }
        for budget in [64, 100, 512, 1_400] {
            let mut d = DatagramBuilder::new(budget);
            q.fill(&mut d, 100);
            assert!(d.finish().len() <= budget, "budget {budget}");
        }
        // An update sent fewer times goes before one sent more often.
        let mut q = Broadcasts::default();
        q.push(subject(1), Bytes::from(vec![1u8; 600]));
        let mut d = DatagramBuilder::new(700);
        assert_eq!(q.fill(&mut d, 10), 1);
        q.push(subject(2), Bytes::from(vec![2u8; 600]));
        let mut d = DatagramBuilder::new(700);
        assert_eq!(q.fill(&mut d, 10), 1);
        assert!(d.finish().windows(600).any(|w| w == [2u8; 600]));
    }
}
