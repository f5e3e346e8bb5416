//! Randomised round-robin probe order (SWIM §4.3) and the probes in flight.
//!
//! Members are probed in a shuffled order, each once per pass, so a failed member is probed by
//! everyone within one pass of N periods, not merely in expectation. Newcomers are inserted at
//! a random position in the rest of the current pass.

use std::net::SocketAddr;

use rand_core::RngCore;

use crate::names::NodeName;
use crate::time::Instant;

#[derive(Debug, Default)]
pub struct ProbeOrder {
    order: Vec<NodeName>,
    next: usize,
}

impl ProbeOrder {
    /// The next member to probe for which `probeable` holds; a new shuffled pass over `live`
    /// starts when the current one is used up. None when no member qualifies.
    pub fn next_target(
        &mut self,
        live: &[NodeName],
        rng: &mut impl RngCore,
        probeable: impl Fn(&NodeName) -> bool,
    ) -> Option<NodeName> {
        for pass in 0..2 {
            while self.next < self.order.len() {
                let candidate = &self.order[self.next];
                self.next += 1;
                if probeable(candidate) {
                    return Some(candidate.clone());
                }
            }
            if pass == 0 {
                self.order.clear();
                self.order.extend_from_slice(live);
                shuffle(&mut self.order, rng);
                self.next = 0;
            }
        }
        None
    }

    /// A member just joined: give it a random slot in the rest of this pass.
    pub fn insert(&mut self, name: NodeName, rng: &mut impl RngCore) {
        let remaining = self.order.len() - self.next;
        let at = self.next + uniform(rng, remaining + 1);
        self.order.insert(at, name);
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// A uniform integer in `0..n` (0 when n is 0).
pub fn uniform(rng: &mut impl RngCore, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // Multiply-shift: unbiased enough for choosing members, and cheap.
    ((u64::from(rng.next_u32()) * n as u64) >> 32) as usize
}

/// Fisher–Yates.
pub fn shuffle<T>(items: &mut [T], rng: &mut impl RngCore) {
    for i in (1..items.len()).rev() {
        let j = uniform(rng, i + 1);
        items.swap(i, j);
    }
}

/// Up to `k` distinct members of `live` other than those `excluded`, chosen uniformly.
pub fn sample(
    live: &[NodeName],
    k: usize,
    rng: &mut impl RngCore,
    excluded: impl Fn(&NodeName) -> bool,
) -> Vec<NodeName> {
    let mut picked: Vec<NodeName> = Vec::with_capacity(k);
    if live.len() <= 4 * k.max(1) {
        // Small cluster: shuffle a copy of the indices.
        let mut idx: Vec<usize> = (0..live.len()).collect();
        shuffle(&mut idx, rng);
        picked.extend(
            idx.into_iter()
                .map(|i| &live[i])
                .filter(|n| !excluded(n))
                .take(k)
                .cloned(),
        );
        return picked;
    }
    // Large cluster: rejection sampling, bounded so it always ends.
    for _ in 0..(8 * k) {
        if picked.len() == k {
            break;
        }
        let candidate = &live[uniform(rng, live.len())];
        if !excluded(candidate) && !picked.contains(candidate) {
            picked.push(candidate.clone());
        }
    }
    picked
}

/// Why a probe was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// The protocol period's round-robin probe; its outcome moves the local health score.
    Regular,
    /// Sent at once on hearing that the target is suspected, to confirm or refute quickly.
    Confirm,
}

/// A probe waiting for its ack.
#[derive(Debug, Clone)]
pub struct Probe {
    pub target: NodeName,
    pub addr: SocketAddr,
    pub started: Instant,
    pub kind: ProbeKind,
    /// Nacks we asked for from indirect probers, and how many came back (Lifeguard).
    pub nacks_expected: u32,
    pub nacks_received: u32,
}

/// An indirect probe we run on behalf of another member.
#[derive(Debug, Clone, Copy)]
pub struct Relay {
    pub origin: SocketAddr,
    pub origin_seq: crate::wire::Seq,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn names(n: usize) -> Vec<NodeName> {
        (0..n)
            .map(|i| NodeName::new(&format!("m{i}")).unwrap())
            .collect()
    }

    #[test]
    fn every_live_member_is_probed_once_per_pass() {
        let live = names(10);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut order = ProbeOrder::default();
        let mut seen: Vec<NodeName> = (0..10)
            .map(|_| order.next_target(&live, &mut rng, |_| true).unwrap())
            .collect();
        seen.sort();
        assert_eq!(seen, live);
    }

    #[test]
    fn skips_unprobeable_and_ends_when_none_qualify() {
        let live = names(4);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut order = ProbeOrder::default();
        let only = live[2].clone();
        for _ in 0..6 {
            assert_eq!(
                order.next_target(&live, &mut rng, |n| *n == only),
                Some(only.clone())
            );
        }
        assert_eq!(order.next_target(&live, &mut rng, |_| false), None);
        assert_eq!(order.next_target(&[], &mut rng, |_| true), None);
    }

    #[test]
    fn newcomer_is_probed_within_the_current_pass() {
        let live = names(5);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut order = ProbeOrder::default();
        order.next_target(&live, &mut rng, |_| true);
        let newcomer = NodeName::new("new").unwrap();
        order.insert(newcomer.clone(), &mut rng);
        let rest: Vec<_> = (0..5)
            .filter_map(|_| order.next_target(&live, &mut rng, |_| true))
            .collect();
        assert!(rest.contains(&newcomer));
    }

    #[test]
    fn sample_is_distinct_and_respects_exclusions() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for n in [0, 1, 3, 10, 100] {
            let live = names(n);
            let excluded = NodeName::new("m0").unwrap();
            let picked = sample(&live, 3, &mut rng, |m| *m == excluded);
            assert_eq!(picked.len(), 3.min(n.saturating_sub(1)), "n={n}");
            assert!(!picked.contains(&excluded));
            let mut dedup = picked.clone();
            dedup.sort();
            dedup.dedup();
            assert_eq!(dedup.len(), picked.len());
        }
    }
}
