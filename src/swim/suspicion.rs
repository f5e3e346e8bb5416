//! Lifeguard's dynamic suspicion timeout (Lifeguard §4.2).
//!
//! A suspicion starts long (`max`) and shrinks towards `min` as independent members confirm
//! it: `timeout(c) = max - (max - min) · ln(c + 1) / ln(k + 1)`, never below `min`. A member
//! that is merely slow refutes during the long early window; a dead one is confirmed quickly
//! by the others' probes and declared failed at the minimum.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::names::NodeName;
use crate::time::Instant;
use crate::wire::Incarnation;

/// The suspicion window for a cluster of `members` nodes:
/// `min = base · max(1, log10 N)`, `max = min · max_mult`.
pub fn bounds(base: Duration, max_mult: u32, members: usize) -> (Duration, Duration) {
    let scale = (members.max(1) as f64).log10().max(1.0);
    // Saturating: a window too long to represent is as good as forever, never a panic.
    let min = Duration::try_from_secs_f64(scale * base.as_secs_f64()).unwrap_or(Duration::MAX);
    (min, min.saturating_mul(max_mult.max(1)))
}

/// The timeout after `confirmations` independent confirmations, out of `k` expected.
pub fn timeout(min: Duration, max: Duration, k: u32, confirmations: u32) -> Duration {
    if k == 0 || max <= min {
        return min;
    }
    let fraction = f64::from(confirmations + 1).ln() / f64::from(k + 1).ln();
    let shrunk = max.as_secs_f64() - (max - min).as_secs_f64() * fraction;
    Duration::try_from_secs_f64(shrunk.max(min.as_secs_f64())).unwrap_or(max)
}

/// A live suspicion of one member at one incarnation.
#[derive(Debug, Clone)]
pub struct Suspicion {
    pub incarnation: Incarnation,
    pub started: Instant,
    min: Duration,
    max: Duration,
    k: u32,
    /// Who has confirmed it, the first suspecter excluded; at most `k` are kept.
    confirmers: BTreeSet<NodeName>,
    first: NodeName,
    /// Our own probes of the member that failed during this suspicion (or started it).
    own_failed_probes: u8,
}

/// Failed probes of our own a node needs before it declares a failure it only heard of: two,
/// so that a single unlucky verification under heavy loss does not condemn a live member
/// whose refutation we missed. The node that raised the suspicion needs only its own probe.
const HEARSAY_PROBES_NEEDED: u8 = 2;

impl Suspicion {
    pub fn new(
        incarnation: Incarnation,
        by: NodeName,
        started: Instant,
        (min, max): (Duration, Duration),
        k: u32,
    ) -> Self {
        Suspicion {
            incarnation,
            started,
            min,
            max,
            k,
            confirmers: BTreeSet::new(),
            first: by,
            own_failed_probes: 0,
        }
    }

    /// Record a confirmation; true if it was new and independent (so worth re-gossiping).
    pub fn confirm(&mut self, by: &NodeName) -> bool {
        if *by == self.first || self.confirmers.len() as u32 >= self.k {
            return false;
        }
        self.confirmers.insert(by.clone())
    }

    /// One of our own probes of the member failed during this suspicion (or started it).
    pub fn witness(&mut self) {
        self.own_failed_probes = self.own_failed_probes.saturating_add(1);
    }

    /// Whether `me` has seen enough with its own probes to declare the member failed.
    pub fn witnessed_by(&self, me: &NodeName) -> bool {
        let needed = if self.first == *me {
            1
        } else {
            HEARSAY_PROBES_NEEDED
        };
        self.own_failed_probes >= needed
    }

    pub fn confirmations(&self) -> u32 {
        self.confirmers.len() as u32
    }

    pub fn first_suspecter(&self) -> &NodeName {
        &self.first
    }

    /// When this suspicion turns into a failure, given the confirmations so far.
    pub fn deadline(&self) -> Instant {
        self.started + timeout(self.min, self.max, self.k, self.confirmations())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_scale_with_log10_of_cluster_size() {
        let base = Duration::from_secs(1);
        let table = [
            (1, 1_000),
            (5, 1_000),
            (10, 1_000),
            (100, 2_000),
            (1_000, 3_000),
        ];
        for (n, min_ms) in table {
            let (min, max) = bounds(base, 4, n);
            assert_eq!(min.as_millis(), min_ms, "n={n}");
            assert_eq!(max, min * 4, "n={n}");
        }
    }

    #[test]
    fn timeout_shrinks_with_confirmations() {
        // k = 3, min 2 s, max 8 s: 8 - 6·ln(c+1)/ln 4.
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(8));
        let table = [
            (0, 8_000),
            (1, 5_000),
            (2, 3_245),
            (3, 2_000),
            (4, 2_000),
            (10, 2_000),
        ];
        for (c, ms) in table {
            assert_eq!(timeout(min, max, 3, c).as_millis(), ms, "c={c}");
        }
        assert_eq!(timeout(min, max, 0, 0), min);
        assert_eq!(timeout(max, min, 3, 0), max);
    }

    #[test]
    fn confirmations_are_independent_and_capped() {
        let name = |s: &str| NodeName::new(s).unwrap();
        let window = (Duration::from_secs(2), Duration::from_secs(8));
        let mut s = Suspicion::new(
            Incarnation::new(4),
            name("a"),
            Instant::from_micros(0),
            window,
            2,
        );
        assert_eq!(s.deadline(), Instant::from_micros(8_000_000));
        assert!(
            !s.confirm(&name("a")),
            "the first suspecter is not a confirmation"
        );
        assert!(s.confirm(&name("b")));
        assert!(!s.confirm(&name("b")), "a repeat is not a confirmation");
        assert!(s.confirm(&name("c")));
        assert!(!s.confirm(&name("d")), "no more than k are counted");
        assert_eq!(s.confirmations(), 2);
        assert_eq!(s.deadline(), Instant::from_micros(2_000_000));
    }
}
