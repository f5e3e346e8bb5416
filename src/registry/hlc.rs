//! Hybrid logical clocks: versions that follow wall time but never go backwards, and never
//! fall behind a version already seen, so a node with a slow clock cannot make an old write
//! win (Kulkarni et al., "Logical Physical Clocks", 2014).

use std::cmp::Ordering;

use bincode::{Decode, Encode};

use crate::names::NodeName;
use crate::time::Instant;

/// A version: wall milliseconds, a counter for writes within one millisecond (or ahead of
/// the wall clock), and the writing node to break exact ties.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub struct Hlc {
    pub wall_ms: u64,
    pub counter: u32,
    pub node: NodeName,
}

impl Ord for Hlc {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.wall_ms, self.counter, &self.node).cmp(&(other.wall_ms, other.counter, &other.node))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The merge rule of the registry: last writer wins, and `Hlc`'s order is total, so every node
/// that sees the same versions keeps the same one, whatever the order they arrive in.
pub fn newer(current: &Hlc, incoming: &Hlc) -> bool {
    incoming > current
}

/// This node's clock: the highest (wall, counter) it has issued or seen.
#[derive(Debug, Clone, Default)]
pub struct HlcClock {
    wall_ms: u64,
    counter: u32,
}

impl HlcClock {
    /// A version for a local write at `now`.
    pub fn tick(&mut self, now: Instant, node: &NodeName) -> Hlc {
        let physical = now.as_millis();
        if physical > self.wall_ms {
            self.wall_ms = physical;
            self.counter = 0;
        } else {
            self.counter = self.counter.saturating_add(1);
        }
        Hlc {
            wall_ms: self.wall_ms,
            counter: self.counter,
            node: node.clone(),
        }
    }

    /// Move past a version received from another node.
    pub fn observe(&mut self, seen: &Hlc) {
        if (seen.wall_ms, seen.counter) > (self.wall_ms, self.counter) {
            self.wall_ms = seen.wall_ms;
            self.counter = seen.counter;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(wall_ms: u64, counter: u32, node: &str) -> Hlc {
        Hlc {
            wall_ms,
            counter,
            node: NodeName::new(node).unwrap(),
        }
    }

    #[test]
    fn merge_rule_table() {
        let table = [
            (v(10, 0, "a"), v(11, 0, "a"), true),
            (v(11, 0, "a"), v(10, 9, "z"), false),
            (v(10, 1, "a"), v(10, 2, "a"), true),
            (v(10, 2, "a"), v(10, 1, "z"), false),
            (v(10, 1, "a"), v(10, 1, "b"), true),
            (v(10, 1, "b"), v(10, 1, "a"), false),
            (v(10, 1, "a"), v(10, 1, "a"), false),
        ];
        for (current, incoming, expected) in table {
            assert_eq!(
                newer(&current, &incoming),
                expected,
                "{current:?} <- {incoming:?}"
            );
        }
    }

    #[test]
    fn a_slow_clock_still_writes_after_what_it_has_seen() {
        let me = NodeName::new("slow").unwrap();
        let mut clock = HlcClock::default();
        // Another node wrote at wall 5,000 ms; our clock reads 1,000 ms.
        clock.observe(&v(5_000, 3, "fast"));
        let mine = clock.tick(Instant::from_micros(1_000_000), &me);
        assert!(newer(&v(5_000, 3, "fast"), &mine), "{mine:?}");
        let next = clock.tick(Instant::from_micros(1_000_000), &me);
        assert!(newer(&mine, &next));
        // Once wall time passes, versions follow it again.
        let later = clock.tick(Instant::from_micros(6_000_000), &me);
        assert_eq!((later.wall_ms, later.counter), (6_000, 0));
    }
}
