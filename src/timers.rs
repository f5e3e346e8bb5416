//! The deadline table behind `Node::poll_timeout`.
//!
//! Each timer carries what it guards (a probe's sequence number, a suspicion's incarnation), and
//! the node ignores one whose subject has moved on: a refuted suspicion's timer fires and does
//! nothing. The one exception is the common case: a probe answered in time disarms its two
//! deadlines ([`Timers::cancel`]), or an idle node would wake every period for a timeout that
//! finds its probe answered.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::names::NodeName;
use crate::time::Instant;
use crate::wire::{Incarnation, Seq};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    /// Start the next protocol period's probe.
    ProbeTick,
    /// A direct ping went unanswered: ask others to probe indirectly.
    ProbeTimeout { seq: Seq },
    /// The end of a probe: no ack means suspicion.
    ProbeDeadline { seq: Seq },
    /// We relay an indirect probe; no ack from the target by now means a nack to the origin.
    RelayTimeout { seq: Seq },
    /// A suspicion may have run out.
    Suspicion {
        member: NodeName,
        incarnation: Incarnation,
    },
    /// Gossip queued updates to a few random members.
    GossipTick,
    /// A spaced eager push of new updates.
    EagerPush,
    /// Anti-entropy: compare membership digests with a random member.
    SyncTick,
    /// Try to reach a failed member again.
    ReconnectTick,
    /// Forget long-failed and long-departed members.
    ReapTick,
    /// Try the seeds again if no one has answered our join.
    JoinRetry { attempt: u32 },
    /// A leaving node has said goodbye for long enough.
    LeaveDone,
    /// Enforce TTLs and liveness, start due health checks, collect tombstones.
    RegistryTick,
    /// A query this node asked has run out of time: report what it collected.
    QueryDeadline { seq: u32 },
    /// Push the registry entries peers asked for since the first of them, in one pass.
    PushDue,
    /// Compare registries again soon: the last exchange brought news
    /// (`node::catalog::resync`).
    RegistryResync,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Armed>>,
    next_id: u64,
}

/// A timer in the table. Ordered by deadline, then by when it was armed (ids are unique), so
/// timers due at the same instant fire in the order they were set, and the timer itself
/// needs no order.
#[derive(Debug)]
struct Armed {
    at: Instant,
    id: u64,
    timer: Timer,
}

impl PartialEq for Armed {
    fn eq(&self, other: &Armed) -> bool {
        (self.at, self.id) == (other.at, other.id)
    }
}

impl Eq for Armed {}

impl PartialOrd for Armed {
    fn partial_cmp(&self, other: &Armed) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Armed {
    fn cmp(&self, other: &Armed) -> std::cmp::Ordering {
        (self.at, self.id).cmp(&(other.at, other.id))
    }
}

impl Timers {
    pub fn schedule(&mut self, at: Instant, timer: Timer) {
        self.next_id += 1;
        self.heap.push(Reverse(Armed {
            at,
            id: self.next_id,
            timer,
        }));
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(armed)| armed.at)
    }

    /// Every armed deadline, in no particular order (a shell that wakes once for timers close
    /// together reads them; O(timers)).
    pub fn deadlines(&self) -> impl Iterator<Item = Instant> + Clone + '_ {
        self.heap.iter().map(|Reverse(armed)| armed.at)
    }

    /// The earliest timer due at `now`, removed from the table.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse(armed)) if armed.at <= now => {
                self.heap.pop().map(|Reverse(armed)| armed.timer)
            }
            _ => None,
        }
    }

    /// Disarm `timer` wherever it is armed: what it guards has been settled (a probe
    /// answered), and firing it would only find nothing to do, at the cost of a wake-up of the
    /// shell. O(timers).
    pub fn cancel(&mut self, timer: &Timer) {
        self.heap.retain(|Reverse(armed)| armed.timer != *timer);
    }

    /// Move every armed `timer` due after `latest` to `latest` (a runtime change shortened the
    /// interval it was armed with). Nothing is added: a timer not armed stays so.
    pub fn pull_in(&mut self, timer: &Timer, latest: Instant) {
        let late = |Reverse(armed): &Reverse<Armed>| armed.timer == *timer && armed.at > latest;
        if !self.heap.iter().any(late) {
            return;
        }
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        for Reverse(armed) in &mut entries {
            if armed.timer == *timer && armed.at > latest {
                armed.at = latest;
            }
        }
        self.heap = BinaryHeap::from(entries);
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn clear(&mut self) {
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_then_insertion_order() {
        let mut t = Timers::default();
        let at = |ms: u64| Instant::from_micros(ms * 1_000);
        t.schedule(at(30), Timer::GossipTick);
        t.schedule(at(10), Timer::ProbeTick);
        t.schedule(at(10), Timer::SyncTick);
        assert_eq!(t.next_deadline(), Some(at(10)));
        assert_eq!(t.pop_due(at(5)), None);
        assert_eq!(t.pop_due(at(10)), Some(Timer::ProbeTick));
        assert_eq!(t.pop_due(at(10)), Some(Timer::SyncTick));
        assert_eq!(t.pop_due(at(29)), None);
        assert_eq!(t.pop_due(at(100)), Some(Timer::GossipTick));
        assert!(t.is_empty());
    }

    #[test]
    fn a_cancelled_timer_never_fires_and_the_others_keep_their_order() {
        let mut t = Timers::default();
        let at = |ms: u64| Instant::from_micros(ms * 1_000);
        let seq: Seq = 7;
        t.schedule(at(10), Timer::ProbeTick);
        t.schedule(at(5), Timer::ProbeTimeout { seq });
        t.schedule(at(10), Timer::SyncTick);
        t.schedule(at(5), Timer::ProbeTimeout { seq: 8 });
        t.cancel(&Timer::ProbeTimeout { seq });
        assert_eq!(t.len(), 3);
        assert_eq!(t.next_deadline(), Some(at(5)));
        assert_eq!(t.pop_due(at(10)), Some(Timer::ProbeTimeout { seq: 8 }));
        assert_eq!(t.pop_due(at(10)), Some(Timer::ProbeTick));
        assert_eq!(t.pop_due(at(10)), Some(Timer::SyncTick));
        assert!(t.is_empty());
    }

    #[test]
    fn pull_in_moves_late_timers_only_and_adds_none() {
        let mut t = Timers::default();
        let at = |ms: u64| Instant::from_micros(ms * 1_000);
        t.schedule(at(1_000_000), Timer::ProbeTick);
        t.schedule(at(5), Timer::GossipTick);
        t.pull_in(&Timer::ProbeTick, at(20));
        t.pull_in(&Timer::GossipTick, at(20));
        t.pull_in(&Timer::SyncTick, at(20));
        assert_eq!(t.len(), 2);
        assert_eq!(t.pop_due(at(20)), Some(Timer::GossipTick));
        assert_eq!(t.pop_due(at(20)), Some(Timer::ProbeTick));
        assert!(t.is_empty());
    }
}
