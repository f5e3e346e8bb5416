//! Randomised round-robin probe order (SWIM §4.3) and the probes in flight.
//!
//! Members are probed in a shuffled order, each once per pass, so a failed member is probed by
//! everyone within one pass of N periods, not merely in expectation. Newcomers are inserted at
//! a random position in the rest of the current pass.

use std::net::SocketAddr;

use rand_core::RngCore;

use super::members::MemberId;
use crate::names::NodeName;
use crate::time::Instant;

#[derive(Debug, Default)]
pub struct ProbeOrder {
    /// The current pass. None: a member removed from the table since the pass began (its id
    /// may already belong to someone else); kept as a gap so the pass's length, and with it the
    /// random draws of [`ProbeOrder::insert`], do not depend on reaping.
    order: Vec<Option<MemberId>>,
    next: usize,
}

impl ProbeOrder {
    /// The next member to probe for which `probeable` holds; a new shuffled pass over `live`
    /// starts when the current one is used up. None when no member qualifies.
    pub fn next_target(
        &mut self,
        live: &[MemberId],
        rng: &mut impl RngCore,
        probeable: impl Fn(MemberId) -> bool,
    ) -> Option<MemberId> {
        for pass in 0..2 {
            while self.next < self.order.len() {
                let candidate = self.order[self.next];
                self.next += 1;
                if let Some(id) = candidate.filter(|id| probeable(*id)) {
                    return Some(id);
                }
            }
            if pass == 0 {
                self.order.clear();
                self.order.reserve_exact(live.len());
                self.order.extend(live.iter().copied().map(Some));
                shuffle(&mut self.order, rng);
                self.next = 0;
            }
        }
        None
    }

    /// A member just joined: give it a random slot in the rest of this pass.
    pub fn insert(&mut self, id: MemberId, rng: &mut impl RngCore) {
        let remaining = self.order.len() - self.next;
        let at = self.next + uniform(rng, remaining + 1);
        super::reserve_gently(&mut self.order);
        self.order.insert(at, Some(id));
    }

    /// A member left the table: its id may be given to another, who must not take its turn.
    /// O(n), but only on reaping.
    pub fn forget(&mut self, id: MemberId) {
        for entry in &mut self.order {
            if *entry == Some(id) {
                *entry = None;
            }
        }
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
pub fn sample<T: Copy + PartialEq>(
    live: &[T],
    k: usize,
    rng: &mut impl RngCore,
    excluded: impl Fn(&T) -> bool,
) -> Vec<T> {
    let mut picked: Vec<T> = Vec::with_capacity(k);
    if live.len() <= 4 * k.max(1) {
        // Small cluster: shuffle a copy of the indices.
        let mut idx: Vec<usize> = (0..live.len()).collect();
        shuffle(&mut idx, rng);
        picked.extend(
            idx.into_iter()
                .map(|i| &live[i])
                .filter(|n| !excluded(n))
                .take(k)
                .copied(),
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
            picked.push(*candidate);
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
    /// The helpers asked whose nack has not come yet (at most `indirect_checks`, 16): a nack
    /// counts only from one of them, once, so a duplicated or forged nack cannot end a probe
    /// early.
    pub nacks_pending: Vec<SocketAddr>,
    /// Helpers have been asked (the direct ping's timeout ran out, or the network reported
    /// the target's port closed): it happens once per probe.
    pub indirect_asked: bool,
}

/// An indirect probe we run on behalf of another member.
#[derive(Debug, Clone, Copy)]
pub struct Relay {
    pub origin: SocketAddr,
    pub origin_seq: crate::wire::Seq,
    /// Where we pinged the target: a report that its port is closed nacks at once.
    pub target_addr: SocketAddr,
    /// Nacked already (on such a report); the relay stays until its timeout, so an ack that
    /// comes after all (a stale or forged report) is still passed on.
    pub nacked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ids(n: usize) -> Vec<MemberId> {
        (0..n).map(MemberId::for_tests).collect()
    }

    #[test]
    fn every_live_member_is_probed_once_per_pass() {
        let live = ids(10);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut order = ProbeOrder::default();
        let mut seen: Vec<MemberId> = (0..10)
            .map(|_| order.next_target(&live, &mut rng, |_| true).unwrap())
            .collect();
        seen.sort();
        assert_eq!(seen, live);
    }

    #[test]
    fn skips_unprobeable_and_ends_when_none_qualify() {
        let live = ids(4);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut order = ProbeOrder::default();
        let only = live[2];
        for _ in 0..6 {
            assert_eq!(
                order.next_target(&live, &mut rng, |n| n == only),
                Some(only)
            );
        }
        assert_eq!(order.next_target(&live, &mut rng, |_| false), None);
        assert_eq!(order.next_target(&[], &mut rng, |_| true), None);
    }

    #[test]
    fn newcomer_is_probed_within_the_current_pass() {
        let live = ids(5);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut order = ProbeOrder::default();
        order.next_target(&live, &mut rng, |_| true);
        let newcomer = MemberId::for_tests(99);
        order.insert(newcomer, &mut rng);
        let rest: Vec<_> = (0..5)
            .filter_map(|_| order.next_target(&live, &mut rng, |_| true))
            .collect();
        assert!(rest.contains(&newcomer));
    }

    #[test]
    fn a_forgotten_member_loses_its_turn_but_the_pass_keeps_its_length() {
        let live = ids(6);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut order = ProbeOrder::default();
        let first = order.next_target(&live, &mut rng, |_| true).unwrap();
        let gone = *live.iter().find(|id| **id != first).unwrap();
        order.forget(gone);
        assert_eq!(order.len(), 6);
        let rest: Vec<_> = (0..4)
            .filter_map(|_| order.next_target(&live, &mut rng, |_| true))
            .collect();
        assert_eq!(rest.len(), 4);
        assert!(!rest.contains(&gone) && !rest.contains(&first));
    }

    #[test]
    fn sample_is_distinct_and_respects_exclusions() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for n in [0, 1, 3, 10, 100] {
            let live: Vec<usize> = (0..n).collect();
            let picked = sample(&live, 3, &mut rng, |m| *m == 0);
            assert_eq!(picked.len(), 3.min(n.saturating_sub(1)), "n={n}");
            assert!(!picked.contains(&0));
            let mut dedup = picked.clone();
            dedup.sort();
            dedup.dedup();
            assert_eq!(dedup.len(), picked.len());
        }
    }
}
