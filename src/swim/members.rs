//! The member table and the merge rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::names::NodeName;
use crate::time::Instant;
use crate::wire::{Claim, Incarnation, Profile};

/// A member's SWIM state, as this node believes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Alive,
    Suspect,
    Failed,
    Left,
}

impl State {
    /// Precedence of claims at equal incarnation (SWIM §4.2, with `left` from memberlist):
    /// a suspicion overrides alive, a failure overrides a suspicion, a graceful leave
    /// overrides everything, so a member that left is never reported failed.
    const fn precedence(self) -> u8 {
        match self {
            State::Alive => 0,
            State::Suspect => 1,
            State::Failed => 2,
            State::Left => 3,
        }
    }

    pub fn of(claim: &Claim) -> State {
        match claim {
            Claim::Alive => State::Alive,
            Claim::Suspect { .. } => State::Suspect,
            Claim::Failed { .. } => State::Failed,
            Claim::Left => State::Left,
        }
    }

    /// Still to be probed and gossiped to.
    pub fn is_live(self) -> bool {
        matches!(self, State::Alive | State::Suspect)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Alive => "alive",
            State::Suspect => "suspect",
            State::Failed => "failed",
            State::Left => "left",
        }
    }
}

/// The merge rule: does a claim at `incoming` replace what we hold at `current`?
///
/// A higher incarnation always wins, because only the member itself raises it; at equal
/// incarnation the more severe state wins (see [`State::precedence`]). This is a total order
/// on (incarnation, state), so every node that sees the same claims ends in the same state
/// whatever order they arrive in.
pub fn supersedes(current: (Incarnation, State), incoming: (Incarnation, State)) -> bool {
    let (cur_inc, cur_state) = current;
    let (new_inc, new_state) = incoming;
    new_inc > cur_inc || (new_inc == cur_inc && new_state.precedence() > cur_state.precedence())
}

/// What this node knows of one other member.
#[derive(Debug, Clone)]
pub struct Member {
    pub incarnation: Incarnation,
    pub state: State,
    /// Shared: the snapshot for HTTP clones the table often.
    pub profile: Arc<Profile>,
    /// When the member entered its current state.
    pub since: Instant,
    /// Last time it answered one of our probes.
    pub last_ack: Option<Instant>,
    /// Position in `Members::live`, while live.
    live_slot: Option<u32>,
}

/// Counts of members by state, kept up to date on every change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub alive: usize,
    pub suspect: usize,
    pub failed: usize,
    pub left: usize,
}

impl StateCounts {
    fn slot(&mut self, state: State) -> &mut usize {
        match state {
            State::Alive => &mut self.alive,
            State::Suspect => &mut self.suspect,
            State::Failed => &mut self.failed,
            State::Left => &mut self.left,
        }
    }
}

/// Every other member this node knows of (itself excluded), with an O(1) random pick of a
/// live one and an order-independent digest for anti-entropy.
#[derive(Debug, Default)]
pub struct Members {
    /// Ordered by name: iteration (push-pull records, reconnect picks, reaping) must be the
    /// same on every run with the same seed, and a `HashMap`'s order is random per process.
    map: BTreeMap<NodeName, Member>,
    live: Vec<NodeName>,
    counts: StateCounts,
    digest: u64,
}

impl Members {
    pub fn get(&self, name: &NodeName) -> Option<&Member> {
        self.map.get(name)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeName, &Member)> {
        self.map.iter()
    }

    /// Alive and suspect members, in no particular order.
    pub fn live(&self) -> &[NodeName] {
        &self.live
    }

    pub fn counts(&self) -> StateCounts {
        self.counts
    }

    /// Sum of a hash of (name, incarnation, state) over members that are not gone; two nodes
    /// with the same view (self included by the caller) have the same digest.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn record_ack(&mut self, name: &NodeName, now: Instant) {
        if let Some(m) = self.map.get_mut(name) {
            m.last_ack = Some(now);
        }
    }

    /// Insert or overwrite a member's state. The caller has applied the merge rule.
    pub fn set(
        &mut self,
        name: &NodeName,
        incarnation: Incarnation,
        state: State,
        profile: Arc<Profile>,
        now: Instant,
    ) {
        let previous = self
            .map
            .get(name)
            .map(|m| (m.incarnation, m.state, m.live_slot));
        let mut live_slot = None;
        if let Some((inc, old_state, slot)) = previous {
            *self.counts.slot(old_state) -= 1;
            self.digest = self.digest.wrapping_sub(member_hash(name, inc, old_state));
            live_slot = slot;
        }
        *self.counts.slot(state) += 1;
        self.digest = self
            .digest
            .wrapping_add(member_hash(name, incarnation, state));
        match (live_slot, state.is_live()) {
            (None, true) => {
                live_slot = Some(self.live.len() as u32);
                self.live.push(name.clone());
            }
            (Some(slot), false) => {
                self.remove_live(slot);
                live_slot = None;
            }
            _ => {}
        }
        let since = match previous {
            Some((_, old_state, _)) if old_state == state => {
                self.map.get(name).map_or(now, |m| m.since)
            }
            _ => now,
        };
        let last_ack = self.map.get(name).and_then(|m| m.last_ack);
        self.map.insert(
            name.clone(),
            Member {
                incarnation,
                state,
                profile,
                since,
                last_ack,
                live_slot,
            },
        );
    }

    /// Forget a member entirely (reaping).
    pub fn remove(&mut self, name: &NodeName) -> Option<Member> {
        let m = self.map.remove(name)?;
        *self.counts.slot(m.state) -= 1;
        self.digest = self
            .digest
            .wrapping_sub(member_hash(name, m.incarnation, m.state));
        if let Some(slot) = m.live_slot {
            self.remove_live(slot);
        }
        Some(m)
    }

    fn remove_live(&mut self, slot: u32) {
        let slot = slot as usize;
        self.live.swap_remove(slot);
        if let Some(moved) = self.live.get(slot) {
            if let Some(m) = self.map.get_mut(moved) {
                m.live_slot = Some(slot as u32);
            }
        }
    }
}

/// FNV-1a over the member's identity and state: stable across nodes, versions and platforms.
pub fn member_hash(name: &NodeName, incarnation: Incarnation, state: State) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(name.as_str().as_bytes());
    eat(&incarnation.to_le_bytes());
    eat(&[state.precedence()]);
    // Finalise (murmur3's fmix64): the digest is a sum of these hashes, and raw FNV-1a values
    // of records that differ only in their last bytes cancel out in sums, e.g. two members
    // going from (0, failed) to (1, alive) could leave the digest unchanged, hiding the
    // divergence from anti-entropy.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Label;
    use crate::wire::bounded::BoundedVec;

    use State::*;

    #[test]
    fn merge_rule_table() {
        // (current, incoming, supersedes)
        let table = [
            ((1, Alive), (1, Alive), false),
            ((1, Alive), (2, Alive), true),
            ((2, Alive), (1, Alive), false),
            ((1, Alive), (1, Suspect), true),
            ((1, Alive), (0, Suspect), false),
            ((1, Suspect), (1, Alive), false),
            ((1, Suspect), (2, Alive), true),
            ((1, Suspect), (1, Suspect), false),
            ((1, Suspect), (1, Failed), true),
            ((1, Failed), (1, Suspect), false),
            ((1, Failed), (1, Alive), false),
            ((1, Failed), (2, Alive), true),
            ((1, Failed), (2, Suspect), true),
            ((1, Failed), (1, Left), true),
            ((1, Left), (1, Failed), false),
            ((1, Left), (2, Failed), true),
            ((1, Left), (2, Alive), true),
            ((1, Left), (1, Left), false),
            ((0, Alive), (0, Left), true),
        ];
        for (current, incoming, expected) in table {
            assert_eq!(
                supersedes(current, incoming),
                expected,
                "{current:?} <- {incoming:?}"
            );
        }
    }

    #[test]
    fn merge_rule_is_a_total_order() {
        let states = [Alive, Suspect, Failed, Left];
        for a_inc in 0..3 {
            for b_inc in 0..3 {
                for a in states {
                    for b in states {
                        let (x, y) = ((a_inc, a), (b_inc, b));
                        let both = supersedes(x, y) && supersedes(y, x);
                        let neither = !supersedes(x, y) && !supersedes(y, x);
                        assert!(!both, "{x:?} {y:?}");
                        assert_eq!(neither, x == y, "{x:?} {y:?}");
                    }
                }
            }
        }
    }

    fn profile() -> Arc<Profile> {
        Arc::new(Profile {
            addr: "127.0.0.1:1".parse().unwrap(),
            dc: Label::new("dc1").unwrap(),
            tags: BoundedVec::new(Vec::new()),
        })
    }

    #[test]
    fn table_keeps_counts_live_list_and_digest_in_step() {
        let mut m = Members::default();
        let now = Instant::ZERO;
        let names: Vec<NodeName> = (0..5)
            .map(|i| NodeName::new(&format!("n{i}")).unwrap())
            .collect();
        for n in &names {
            m.set(n, 0, Alive, profile(), now);
        }
        assert_eq!(m.live().len(), 5);
        m.set(&names[1], 0, Suspect, profile(), now);
        m.set(&names[2], 0, Failed, profile(), now);
        m.set(&names[3], 0, Left, profile(), now);
        assert_eq!(
            m.counts(),
            StateCounts {
                alive: 2,
                suspect: 1,
                failed: 1,
                left: 1
            }
        );
        let mut live: Vec<_> = m.live().to_vec();
        live.sort();
        assert_eq!(
            live,
            vec![names[0].clone(), names[1].clone(), names[4].clone()]
        );
        m.remove(&names[4]);
        m.remove(&names[2]);
        assert_eq!(m.live().len(), 2);
        for n in m.live() {
            assert!(m.get(n).unwrap().state.is_live());
        }

        // The digest depends only on the final contents, not on the path.
        let mut other = Members::default();
        other.set(&names[3], 0, Left, profile(), now);
        other.set(&names[1], 0, Suspect, profile(), now);
        other.set(&names[0], 0, Alive, profile(), now);
        assert_eq!(m.digest(), other.digest());
    }
}
