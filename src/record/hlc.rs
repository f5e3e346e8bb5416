// Reads values from outside the process: arithmetic is checked (issue 12), or allowed where it
// stands with its reason.
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
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
    /// A version for a local write at wall time `now`.
    ///
    /// A counter at its maximum moves the wall part on by a millisecond instead of sticking:
    /// a stuck clock would give every later write the same version, and the same version
    /// never wins, so writes would be acknowledged and dropped (issue 14). Only a wall part at
    /// `u64::MAX` cannot move on, and versions that far ahead are refused before they are
    /// observed (`Catalog::on_entry`, `max_clock_offset`).
    pub fn tick(&mut self, now: Instant, node: &NodeName) -> Hlc {
        let physical = now.as_millis();
        if physical > self.wall_ms {
            self.wall_ms = physical;
            self.counter = 0;
        } else if let Some(next) = self.counter.checked_add(1) {
            self.counter = next;
        } else {
            self.wall_ms = self.wall_ms.saturating_add(1);
            self.counter = 0;
        }
        Hlc {
            wall_ms: self.wall_ms,
            counter: self.counter,
            node: node.clone(),
        }
    }

    /// The highest (wall, counter) issued or seen: what a restarted node must start above
    /// (`runtime::store` keeps it).
    pub fn high_water(&self) -> (u64, u32) {
        (self.wall_ms, self.counter)
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
impl Hlc {
    /// A version written by hand, for tests: `wall_ms`, `counter`, by `node`.
    #[allow(clippy::unwrap_used)] // a test's own literal name
    pub(crate) fn at(wall_ms: u64, counter: u32, node: &str) -> Hlc {
        Hlc {
            wall_ms,
            counter,
            node: NodeName::new(node).unwrap(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(wall_ms: u64, counter: u32, node: &str) -> Hlc {
        Hlc::at(wall_ms, counter, node)
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
    fn clock_table() {
        // (clock state, seen remote version or None, local wall ms) -> (wall_ms, counter) issued.
        let table = [
            ((0, 0), None, 5, (5, 0)),
            ((5, 0), None, 5, (5, 1)),
            ((5, 3), None, 4, (5, 4)),
            ((5, 3), None, 6, (6, 0)),
            ((5, 3), Some((9, 2)), 6, (9, 3)),
            ((5, 3), Some((5, 1)), 5, (5, 4)),
            ((5, 3), Some((4, 8)), 7, (7, 0)),
            ((5, 3), Some((7, 0)), 7, (7, 1)),
            // A saturated counter moves the wall part on rather than repeating a version.
            ((5, u32::MAX), None, 5, (6, 0)),
            ((5, 3), Some((9, u32::MAX)), 6, (10, 0)),
        ];
        let me = NodeName::new("me").unwrap();
        for ((wall_ms, counter), seen, now_ms, expected) in table {
            let mut clock = HlcClock { wall_ms, counter };
            if let Some((w, c)) = seen {
                clock.observe(&v(w, c, "peer"));
            }
            let issued = clock.tick(Instant::from_micros(now_ms * 1_000), &me);
            assert_eq!(
                (issued.wall_ms, issued.counter),
                expected,
                "{wall_ms},{counter} seen {seen:?} at {now_ms}"
            );
            if let Some((w, c)) = seen {
                assert!(
                    newer(&v(w, c, "zz-peer"), &issued),
                    "issued after what it saw"
                );
            }
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
