//! The member table and the merge rule.
//!
//! Over 600 lines with its tests: the table and the merge rule are about 550; the merge
//! rule's cases are tested here, next to it, one per row of the rule.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

mod index;
mod names;

use index::IdIndex;
use names::{NameArena, NameRef};

use crate::bounded::BoundedVec;
use crate::names::{Label, NodeName};
use crate::stable_hash::StableHash;
use crate::time::Instant;
use crate::wire::{Claim, Incarnation, Profile, Tag};

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

/// How far a claim may move a member's incarnation past the one we hold. Only the member
/// raises its incarnation, by one per refutation; a node that missed a few of them, or a member
/// restarted without its data directory, is behind by a handful, not tens of thousands. 2^16
/// refutations at one a second is 18 hours of continuous suspicion, and it keeps any one
/// forged claim 2^15 times short of the half-space where serial order turns ambiguous.
pub const INCARNATION_JUMP_MAX: u32 = 1 << 16;

/// Whether a claim at `claimed` about a member we hold at `known` is believable: not newer,
/// or newer by at most [`INCARNATION_JUMP_MAX`].
pub fn plausible(known: Incarnation, claimed: Incarnation) -> bool {
    !claimed.is_newer_than(known) || claimed.steps_after(known) <= INCARNATION_JUMP_MAX
}

/// The merge rule: does a claim at `incoming` replace what we hold at `current`?
///
/// A newer incarnation (serial order, [`Incarnation::is_newer_than`]) always wins, because only the
/// member itself raises it; at equal incarnation the more severe state wins (see
/// [`State::precedence`]). Within any window of 2^31 incarnations this is a total order on
/// (incarnation, state), so every node that sees the same claims ends in the same state
/// whatever order they arrive in.
pub fn supersedes(current: (Incarnation, State), incoming: (Incarnation, State)) -> bool {
    let (cur_inc, cur_state) = current;
    let (new_inc, new_state) = incoming;
    new_inc.is_newer_than(cur_inc)
        || (new_inc == cur_inc && new_state.precedence() > cur_state.precedence())
}

/// A member's place in the table: valid while the member is there; the table reuses it once
/// the member is removed, so whoever keeps ids must drop them then (see
/// [`super::probe::ProbeOrder::forget`]). Non-zero, so `Option<MemberId>` is 4 bytes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(NonZeroU32);

impl MemberId {
    fn from_index(index: usize) -> Option<MemberId> {
        let plus_one = u32::try_from(index).ok()?.checked_add(1)?;
        NonZeroU32::new(plus_one).map(MemberId)
    }

    fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }

    #[cfg(test)]
    pub(crate) fn for_tests(index: usize) -> MemberId {
        MemberId::from_index(index).expect("a small index")
    }
}

/// The most members a table holds: far beyond any cluster SWIM suits, and it keeps a
/// [`MemberId`] in 4 bytes. Strangers past it are not learnt.
pub const MEMBERS_MAX: usize = 1 << 24;

/// The parts of a profile that most members share (a cluster has few data centres and tag
/// sets), kept once per table rather than once per member.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Traits {
    dc: Label,
    tags: Box<[Tag]>,
}

/// A number for one [`Traits`] in a table's [`TraitsTable`]: 4 bytes in every member where
/// a pointer took 8 (and, with the slot's alignment, the difference between a 72- and a
/// 64-byte slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TraitsId(u32);

/// One traits value in use, and how many members hold it.
#[derive(Debug)]
struct HeldTraits {
    traits: Arc<Traits>,
    holders: u32,
}

/// The traits in use, each kept once, numbered, and counted: dropped with their last holder.
/// At most one entry per member plus the one being taken on in [`Members::set`], so at most
/// [`MEMBERS_MAX`] + 1 entries, numbered in a `u32`.
#[derive(Debug, Default)]
struct TraitsTable {
    /// By number; None: a free number, listed in `free`.
    by_id: Vec<Option<HeldTraits>>,
    free: Vec<TraitsId>,
    /// Numbers by value, to find a profile's traits when some member already has them.
    by_value: BTreeMap<Arc<Traits>, TraitsId>,
}

impl TraitsTable {
    fn get(&self, id: TraitsId) -> Option<&Traits> {
        let held = self.by_id.get(id.0 as usize)?.as_ref()?;
        Some(&held.traits)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_value.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }

    /// One more holder of `profile`'s traits: `current` when they have not changed (the common
    /// case, without building anything), else the table's copy, else a new entry. None only
    /// if the table has no number left (it cannot: see the type's doc).
    fn take(&mut self, profile: &Profile, current: Option<TraitsId>) -> Option<TraitsId> {
        let same = |t: &Traits| t.dc == profile.dc && *t.tags == *profile.tags.0;
        let found = match current {
            Some(id) if self.get(id).is_some_and(same) => Some(id),
            _ => {
                let traits = Traits {
                    dc: profile.dc.clone(),
                    tags: profile.tags.0.clone().into_boxed_slice(),
                };
                match self.by_value.get(&traits) {
                    Some(id) => Some(*id),
                    None => return self.add(traits),
                }
            }
        };
        let id = found?;
        let held = self.by_id.get_mut(id.0 as usize)?.as_mut()?;
        held.holders = held.holders.saturating_add(1);
        Some(id)
    }

    fn add(&mut self, traits: Traits) -> Option<TraitsId> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => TraitsId(u32::try_from(self.by_id.len()).ok()?),
        };
        let traits = Arc::new(traits);
        let held = Some(HeldTraits {
            traits: traits.clone(),
            holders: 1,
        });
        match self.by_id.get_mut(id.0 as usize) {
            Some(slot) => *slot = held,
            None => {
                super::reserve_gently(&mut self.by_id);
                self.by_id.push(held);
            }
        }
        self.by_value.insert(traits, id);
        Some(id)
    }

    /// A holder lets go of `id`; the entry goes with its last holder.
    fn release(&mut self, id: TraitsId) {
        let Some(slot) = self.by_id.get_mut(id.0 as usize) else {
            return;
        };
        let Some(held) = slot else {
            return;
        };
        held.holders = held.holders.saturating_sub(1);
        if held.holders == 0 {
            if let Some(held) = slot.take() {
                self.by_value.remove(&held.traits);
            }
            self.free.push(id);
        }
    }
}

/// A socket address in 19 bytes, alignment 1, where `SocketAddr` takes 32 (alignment 4): an
/// IPv6 address keeps a flow label and a scope id, which the wire never carries (a decoded
/// address has both zero; `wire::decode`), and every member's address comes from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PackedAddr {
    ip: [u8; 16],
    port: [u8; 2],
    v6: bool,
}

impl PackedAddr {
    /// Packs `addr`, dropping an IPv6 flow label and scope id (zero for wire addresses).
    fn pack(addr: SocketAddr) -> PackedAddr {
        let (ip, v6) = match addr.ip() {
            IpAddr::V4(ip) => {
                let mut b = [0; 16];
                b[..4].copy_from_slice(&ip.octets());
                (b, false)
            }
            IpAddr::V6(ip) => (ip.octets(), true),
        };
        PackedAddr {
            ip,
            port: addr.port().to_le_bytes(),
            v6,
        }
    }

    fn unpack(self) -> SocketAddr {
        let port = u16::from_le_bytes(self.port);
        if self.v6 {
            SocketAddr::from((Ipv6Addr::from(self.ip), port))
        } else {
            let [a, b, c, d, ..] = self.ip;
            SocketAddr::from((Ipv4Addr::new(a, b, c, d), port))
        }
    }
}

/// What this node knows of one other member. Not `Clone`: the table counts the holders of
/// each shared [`Traits`] to know when to drop it.
///
/// Packed (alignment 1): 45 bytes where the fields' alignment would pad it to 48, in every
/// slot of every table (10^8 of them in a 10,000-node simulation). Every field is `Copy` and
/// read by value (the compiler refuses a reference to a misaligned field); an unaligned
/// `since` is one plain load on x86-64.
#[derive(Debug)]
#[repr(Rust, packed)]
pub struct Member {
    /// In the table's [`NameArena`] ([`Members::name`]).
    name: NameRef,
    pub incarnation: Incarnation,
    pub state: State,
    /// Its data centre and tags, in the table's [`TraitsTable`] ([`Members::profile`]).
    traits: TraitsId,
    addr: PackedAddr,
    /// When the member entered its current state.
    pub since: Instant,
    last_ack: AckTime,
}

impl Member {
    /// The address it advertises.
    pub fn addr(&self) -> SocketAddr {
        self.addr.unpack()
    }

    /// Last time it answered one of our probes.
    pub fn last_ack(&self) -> Option<Instant> {
        self.last_ack.get()
    }
}

/// An `Option<Instant>` in 4 bytes rather than 16, as it is in every member record: whole
/// seconds since the epoch plus one, zero meaning never. Only shown (the status page's last
/// contact), never decided on, so a second's precision is enough; it saturates 136 years
/// from the epoch (the node's start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct AckTime(Option<NonZeroU32>);

impl AckTime {
    const MICROS_PER_SECOND: u64 = 1_000_000;

    fn at(instant: Instant) -> AckTime {
        let seconds = instant.as_micros() / Self::MICROS_PER_SECOND;
        let plus_one = u32::try_from(seconds).unwrap_or(u32::MAX - 1) + 1;
        AckTime(NonZeroU32::new(plus_one))
    }

    /// The start of the second it was recorded in.
    fn get(self) -> Option<Instant> {
        self.0.map(|plus_one| {
            Instant::from_micros(u64::from(plus_one.get() - 1) * Self::MICROS_PER_SECOND)
        })
    }
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
///
/// Laid out for 10,000 members per node (issue #4: 10,000 simulated nodes hold 10^8 records
/// between them): a member is one fixed-size slot in a vector, found by name through a hash
/// table of 4-byte slot numbers; the live list (and the probe order) hold slot numbers, not
/// names; names are kept back to back in one arena; data centres and tag sets are shared.
/// About 74 B per member in all with 10-byte names, where a `BTreeMap<NodeName, _>` with a
/// private `Arc<Profile>` per member and names in the side lists cost 310 B
/// (`tests/memory.rs`).
#[derive(Debug, Default)]
pub struct Members {
    /// Members by [`MemberId`]; None: a free slot, listed in `free`.
    slots: Vec<Option<Member>>,
    free: Vec<MemberId>,
    /// Ids by name, hashing the names kept in `slots`. Only looked up, never iterated, so its
    /// order does not matter; [`Members::iter`] goes by name.
    index: IdIndex,
    /// Ids by advertised address, to tell a datagram from a member from one from a stranger
    /// without a scan (`node::replies`). Several members may share one (a restart under a new
    /// name at the old address).
    by_addr: IdIndex,
    live: Vec<MemberId>,
    /// Every member's name, in one string.
    names: NameArena,
    /// The traits in use (data centre and tags), each kept once for every member that has it.
    traits: TraitsTable,
    counts: StateCounts,
    digest: u64,
}

impl Members {
    pub fn get(&self, name: &NodeName) -> Option<&Member> {
        self.find(name).map(|(_, m)| m)
    }

    pub fn id(&self, name: &NodeName) -> Option<MemberId> {
        let (slots, names) = (&self.slots, &self.names);
        let is_named =
            |id: MemberId| member_at(slots, id).is_some_and(|m| names.get(m.name) == name.as_str());
        self.index.find(name_hash(name.as_str()), is_named)
    }

    /// The name of `member` (one of this table's).
    pub fn name(&self, member: &Member) -> NodeName {
        NodeName::from_checked(self.names.get(member.name))
    }

    /// A member and its id.
    pub fn find(&self, name: &NodeName) -> Option<(MemberId, &Member)> {
        let id = self.id(name)?;
        Some((id, self.by_id(id)?))
    }

    pub fn by_id(&self, id: MemberId) -> Option<&Member> {
        member_at(&self.slots, id)
    }

    /// A member's profile as it goes on the wire (`member` is one of this table's).
    pub fn profile(&self, member: &Member) -> Profile {
        // Every member's traits are in the table while it is; the empty fallback is never
        // taken, and keeps this total.
        let (dc, tags) = match self.traits.get(member.traits) {
            Some(traits) => (traits.dc.clone(), traits.tags.to_vec()),
            None => (Label::UNKNOWN, Vec::new()),
        };
        Profile {
            addr: member.addr(),
            dc,
            tags: BoundedVec::new(tags),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Is any member whose state satisfies `wanted` advertised at `addr`?
    pub fn any_at(&self, addr: SocketAddr, wanted: impl Fn(State) -> bool) -> bool {
        // Ids whose hash matches are few (usually one): look at each, not just the first.
        self.by_addr.candidates(addr_hash(addr)).any(|id| {
            member_at(&self.slots, id).is_some_and(|m| m.addr() == addr && wanted(m.state))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every member, ordered by name: push-pull records, reconnect picks and reaping must go
    /// in the same order on every run with the same seed. Sorts on each call (O(n log n));
    /// callers are periodic, not per datagram.
    pub fn iter(&self) -> impl Iterator<Item = (NodeName, &Member)> {
        let names = &self.names;
        let mut by_name: Vec<&Member> = self.slots.iter().flatten().collect();
        by_name.sort_unstable_by(|a, b| names.get(a.name).cmp(names.get(b.name)));
        by_name.into_iter().map(|m| (self.name(m), m))
    }

    /// Alive and suspect members, in no particular order.
    pub fn live(&self) -> &[MemberId] {
        &self.live
    }

    pub fn counts(&self) -> StateCounts {
        self.counts
    }

    /// Sum of a hash of (name, incarnation, state) over live (alive and suspect) members; two
    /// nodes with the same live view (self included by the caller) have the same digest.
    /// Failed and left records are left out: a member that joined after a failure never
    /// learns them (strangers are learnt of through good news only), and counting them kept
    /// its digest different from its elders' on every sync round until they were reaped.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn record_ack(&mut self, name: &NodeName, now: Instant) {
        if let Some(id) = self.id(name) {
            if let Some(m) = member_at_mut(&mut self.slots, id) {
                m.last_ack = AckTime::at(now);
            }
        }
    }

    /// Insert a member, or overwrite one's state and profile. The caller has applied the merge
    /// rule. None: a stranger, and the table is full ([`MEMBERS_MAX`]).
    pub fn set(
        &mut self,
        name: &NodeName,
        incarnation: Incarnation,
        state: State,
        profile: &Profile,
        now: Instant,
    ) -> Option<MemberId> {
        if let Some(id) = self.id(name) {
            let m = member_at_mut(&mut self.slots, id)?;
            let traits = self.traits.take(profile, Some(m.traits))?;
            let old = m.traits;
            m.traits = traits;
            let new_addr = PackedAddr::pack(profile.addr);
            let old_addr = std::mem::replace(&mut m.addr, new_addr);
            self.traits.release(old);
            if old_addr != new_addr {
                self.unindex_addr(id, old_addr.unpack());
                self.index_addr(id, new_addr.unpack());
            }
            self.set_state(id, incarnation, state, now);
            return Some(id);
        }
        let id = self.free_id()?;
        let Some(name_ref) = self.names.add(name) else {
            // Cannot happen (the arena's bound is within its offsets'). A freed id goes back
            // to the free list; one past the end was never a slot.
            if id.index() < self.slots.len() {
                self.free.push(id);
            }
            return None;
        };
        let traits = self.traits.take(profile, None)?;
        let member = Member {
            name: name_ref,
            incarnation,
            state,
            traits,
            addr: PackedAddr::pack(profile.addr),
            since: now,
            last_ack: AckTime::default(),
        };
        if state.is_live() {
            super::reserve_gently(&mut self.live);
            self.live.push(id);
        }
        *self.counts.slot(state) += 1;
        self.digest = self
            .digest
            .wrapping_add(digest_part(name, incarnation, state));
        let hash = name_hash(name.as_str());
        if id.index() == self.slots.len() {
            self.slots.push(Some(member));
        } else {
            self.slots[id.index()] = Some(member);
        }
        let (slots, names) = (&self.slots, &self.names);
        self.index
            .insert(hash, id, |id| rehash_name(slots, names, id));
        self.index_addr(id, PackedAddr::pack(profile.addr).unpack());
        Some(id)
    }

    fn index_addr(&mut self, id: MemberId, addr: SocketAddr) {
        let slots = &self.slots;
        self.by_addr
            .insert(addr_hash(addr), id, |id| rehash_addr(slots, id));
    }

    /// Takes `id` out of the address index, where it went in under `addr` (the slot may hold
    /// a newer address already: only the other ids' addresses are read).
    fn unindex_addr(&mut self, id: MemberId, addr: SocketAddr) {
        let slots = &self.slots;
        self.by_addr
            .remove(addr_hash(addr), |i| i == id, |i| rehash_addr(slots, i));
    }

    /// Change a member's state, keeping its profile. The caller has applied the merge rule.
    pub fn set_state(
        &mut self,
        id: MemberId,
        incarnation: Incarnation,
        state: State,
        now: Instant,
    ) {
        let Some(m) = member_at_mut(&mut self.slots, id) else {
            return;
        };
        *self.counts.slot(m.state) -= 1;
        *self.counts.slot(state) += 1;
        let name = self.names.get(m.name);
        self.digest = self
            .digest
            .wrapping_sub(digest_part_of(name, m.incarnation, m.state))
            .wrapping_add(digest_part_of(name, incarnation, state));
        if m.state != state {
            m.since = now;
        }
        let was_live = m.state.is_live();
        m.incarnation = incarnation;
        m.state = state;
        match (was_live, state.is_live()) {
            (false, true) => {
                super::reserve_gently(&mut self.live);
                self.live.push(id);
            }
            (true, false) => self.remove_live(id),
            _ => {}
        }
    }

    /// Forget a member entirely (reaping); returns the id it had, now free for reuse.
    pub fn remove(&mut self, name: &NodeName) -> Option<MemberId> {
        let id = self.id(name)?;
        let (slots, names) = (&self.slots, &self.names);
        self.index.remove(
            name_hash(name.as_str()),
            |i| i == id,
            |i| rehash_name(slots, names, i),
        );
        let addr = member_at(&self.slots, id)?.addr();
        self.unindex_addr(id, addr);
        let m = self.slots.get_mut(id.index())?.take()?;
        *self.counts.slot(m.state) -= 1;
        self.digest = self.digest.wrapping_sub(digest_part_of(
            self.names.get(m.name),
            m.incarnation,
            m.state,
        ));
        if m.state.is_live() {
            self.remove_live(id);
        }
        self.traits.release(m.traits);
        if self.names.release(m.name) {
            let held = self.slots.iter_mut().flatten().map(|m| &mut m.name);
            self.names.compact(held);
        }
        self.free.push(id);
        Some(id)
    }

    /// A slot for a new member: a freed one, or a new one at the end of `slots`.
    fn free_id(&mut self) -> Option<MemberId> {
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        if self.slots.len() >= MEMBERS_MAX {
            return None;
        }
        super::reserve_gently(&mut self.slots);
        MemberId::from_index(self.slots.len())
    }

    /// Takes `id` out of the live list: found by a scan (a member leaves it on a failure or a
    /// leave, rare next to lookups; 10,000 ids are 40 kB read), where a back-pointer in every
    /// slot cost 8 bytes a member. Swapped out, as before, so the list's order stays the same.
    fn remove_live(&mut self, id: MemberId) {
        if let Some(position) = self.live.iter().position(|live| *live == id) {
            self.live.swap_remove(position);
        }
    }
}

/// The name index's hash of the member at `id` (0 for a free slot, which is never indexed).
fn rehash_name(slots: &[Option<Member>], names: &NameArena, id: MemberId) -> u64 {
    member_at(slots, id).map_or(0, |m| name_hash(names.get(m.name)))
}

/// The address index's hash of the member at `id` (0 for a free slot, never indexed).
fn rehash_addr(slots: &[Option<Member>], id: MemberId) -> u64 {
    member_at(slots, id).map_or(0, |m| addr_hash(m.addr()))
}

fn member_at(slots: &[Option<Member>], id: MemberId) -> Option<&Member> {
    slots.get(id.index())?.as_ref()
}

fn member_at_mut(slots: &mut [Option<Member>], id: MemberId) -> Option<&mut Member> {
    slots.get_mut(id.index())?.as_mut()
}

/// The key of both indexes' hashes: SipHash-1-3 with keys drawn at random once per process, as
/// std's `HashMap` does. Names and advertised addresses come from the network: with fixed keys
/// (or a fixed mixer), anyone could compute offline thousands of names or addresses that land
/// in one run of cells, and every lookup of them (each datagram, each claim gossiped) would walk
/// that run. The indexes are only looked up, never iterated, so what the key changes (where a
/// member sits in a table) never shows: runs and simulator traces are the same whatever it is.
fn index_hasher() -> &'static RandomState {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new)
}

/// The name index's hash of a name.
fn name_hash(name: &str) -> u64 {
    index_hasher().hash_one(name)
}

/// The address index's hash, asked for every datagram received (is its sender a member?): the
/// address's bits and port, keyed like [`name_hash`] (~20 ns, against a datagram's µs).
fn addr_hash(addr: SocketAddr) -> u64 {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        // The top bit keeps ::a.b.c.d apart from a.b.c.d.
        IpAddr::V6(v6) => v6.to_bits() ^ (1 << 127),
    };
    index_hasher().hash_one((ip, addr.port()))
}

/// What a member adds to [`Members::digest`]: its hash if live, nothing otherwise.
pub fn digest_part(name: &NodeName, incarnation: Incarnation, state: State) -> u64 {
    digest_part_of(name.as_str(), incarnation, state)
}

/// [`digest_part`] of a name as the table keeps it.
fn digest_part_of(name: &str, incarnation: Incarnation, state: State) -> u64 {
    if state.is_live() {
        member_hash_of(name, incarnation, state)
    } else {
        0
    }
}

/// The stable hash of the member's identity and state: the same on every node and version.
pub fn member_hash(name: &NodeName, incarnation: Incarnation, state: State) -> u64 {
    member_hash_of(name.as_str(), incarnation, state)
}

/// [`member_hash`] of a name as the table keeps it.
fn member_hash_of(name: &str, incarnation: Incarnation, state: State) -> u64 {
    // Finalised (see `stable_hash`): without it, two members going from (0, failed) to
    // (1, alive) could leave the digest, a sum, unchanged.
    let mut h = StableHash::default();
    h.eat(name.as_bytes());
    h.eat(&incarnation.get().to_le_bytes());
    h.eat(&[state.precedence()]);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    use State::*;

    /// The table's slot (`tests/memory.rs` weighs the whole record): 96 bytes with the address
    /// as a `SocketAddr` beside the traits pointer, 80 with it packed into the member, 72
    /// without the live-list back-pointer and with the last ack in 4 bytes, 64 with a 4-byte
    /// traits number for the 8-byte pointer, 48 with the name in the table's arena (a 5-byte
    /// reference for a 24-byte `NodeName`), 45 packed (no padding to `since`'s alignment).
    #[test]
    fn a_member_slot_is_45_bytes() {
        assert_eq!(std::mem::size_of::<Option<Member>>(), 45);
    }

    /// Names found offline to share their hash's top 12 bits under fixed keys (where a probe
    /// starts in a table of 4,096 cells) do not share them here: the indexes' key is not
    /// known outside the process, so nobody can make many members land in one run of cells.
    #[test]
    fn names_crafted_to_collide_under_fixed_keys_spread_in_the_index() {
        use std::hash::{BuildHasherDefault, DefaultHasher};
        let fixed = |name: &NodeName| {
            BuildHasherDefault::<DefaultHasher>::default().hash_one(name.as_str()) >> 52
        };
        let crafted: Vec<NodeName> = (0u32..)
            .map(|k| NodeName::new(&format!("n{k}")).unwrap())
            .filter(|name| fixed(name) == 0)
            .take(32)
            .collect();
        let homes: std::collections::BTreeSet<u64> = crafted
            .iter()
            .map(|name| name_hash(name.as_str()) >> 52)
            .collect();
        assert!(homes.len() > 16, "{} homes for 32 names", homes.len());
    }

    #[test]
    fn packed_addresses_come_back_as_they_went_in() {
        for addr in [
            "10.1.2.3:7946",
            "[2001:db8::1]:65535",
            "[::ffff:10.0.0.1]:1",
            "0.0.0.0:0",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(PackedAddr::pack(addr).unpack(), addr);
        }
        // An IPv4 address and its IPv4-mapped IPv6 form stay apart, as `SocketAddr`s are.
        let v4: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:1".parse().unwrap();
        assert_ne!(PackedAddr::pack(v4), PackedAddr::pack(mapped));
    }

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
            // Serial order: the successor of the maximum is zero, and the maximum is older
            // than a small incarnation (it is half the space behind, not ahead).
            ((u32::MAX, Left), (0, Alive), true),
            ((0, Alive), (u32::MAX, Left), false),
            ((5, Alive), (u32::MAX, Left), false),
        ];
        let inc = |(n, state)| (Incarnation::new(n), state);
        for (current, incoming, expected) in table {
            assert_eq!(
                supersedes(inc(current), inc(incoming)),
                expected,
                "{current:?} <- {incoming:?}"
            );
        }
    }

    #[test]
    fn plausibility_table() {
        let table = [
            (5, 5, true),
            (5, 4, true),
            (5, 6, true),
            (5, 5 + INCARNATION_JUMP_MAX, true),
            (5, 6 + INCARNATION_JUMP_MAX, false),
            (5, u32::MAX, true), // older in serial order: harmless, and ignored
            (u32::MAX - 1, 3, true),
            (0, 1 << 30, false),
        ];
        for (known, claimed, expected) in table {
            let (k, c) = (Incarnation::new(known), Incarnation::new(claimed));
            assert_eq!(plausible(k, c), expected, "{known} <- {claimed}");
        }
    }

    #[test]
    fn merge_rule_is_a_total_order() {
        let states = [Alive, Suspect, Failed, Left];
        let window = [u32::MAX - 1, u32::MAX, 0, 1].map(Incarnation::new);
        for a_inc in window {
            for b_inc in window {
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

    fn profile() -> Profile {
        profile_in("dc1", 1)
    }

    fn profile_in(dc: &str, port: u16) -> Profile {
        Profile {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dc: Label::new(dc).unwrap(),
            tags: BoundedVec::new(Vec::new()),
        }
    }

    fn names(n: usize) -> Vec<NodeName> {
        (0..n)
            .map(|i| NodeName::new(&format!("n{i}")).unwrap())
            .collect()
    }

    #[test]
    fn table_keeps_counts_live_list_and_digest_in_step() {
        let mut m = Members::default();
        let now = Instant::ZERO;
        let names = names(5);
        for n in &names {
            m.set(n, Incarnation::new(0), Alive, &profile(), now);
        }
        assert_eq!(m.live().len(), 5);
        m.set(&names[1], Incarnation::new(0), Suspect, &profile(), now);
        m.set(&names[2], Incarnation::new(0), Failed, &profile(), now);
        let id3 = m.id(&names[3]).unwrap();
        m.set_state(id3, Incarnation::new(0), Left, now);
        assert_eq!(
            m.counts(),
            StateCounts {
                alive: 2,
                suspect: 1,
                failed: 1,
                left: 1
            }
        );
        let live_names = |m: &Members| {
            let mut live: Vec<NodeName> = m
                .live()
                .iter()
                .map(|id| m.name(m.by_id(*id).unwrap()))
                .collect();
            live.sort();
            live
        };
        assert_eq!(
            live_names(&m),
            vec![names[0].clone(), names[1].clone(), names[4].clone()]
        );
        m.remove(&names[4]);
        m.remove(&names[2]);
        assert_eq!(m.live().len(), 2);
        assert_eq!(m.len(), 3);
        for id in m.live() {
            assert!(m.by_id(*id).unwrap().state.is_live());
        }
        assert!(m.get(&names[4]).is_none());

        // The digest depends only on the final contents, not on the path.
        let mut other = Members::default();
        other.set(&names[3], Incarnation::new(0), Left, &profile(), now);
        other.set(&names[1], Incarnation::new(0), Suspect, &profile(), now);
        other.set(&names[0], Incarnation::new(0), Alive, &profile(), now);
        assert_eq!(m.digest(), other.digest());

        // A freed slot is reused, and the newcomer is found by name.
        let newcomer = NodeName::new("late").unwrap();
        let id = m
            .set(&newcomer, Incarnation::new(0), Alive, &profile(), now)
            .unwrap();
        assert!(id == m.id(&newcomer).unwrap() && m.name(m.by_id(id).unwrap()) == newcomer);
        assert_eq!(m.slots.len(), 5, "a freed slot was reused");
    }

    /// The address index answers "is this sender a member?" for every datagram: members that
    /// share a host (ports), IPv6 members and an IPv4 address beside its IPv6-mapped twin are
    /// each found at their own address and nowhere else.
    #[test]
    fn members_are_found_by_address_alone() {
        let mut m = Members::default();
        let v4 = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let v6 = |port| SocketAddr::from(([0, 0, 0, 0, 0, 0xffff, 0x7f00, 1], port));
        let at: Vec<SocketAddr> = (7000..7040).map(v4).chain((7000..7040).map(v6)).collect();
        for (i, addr) in at.iter().enumerate() {
            let profile = Profile {
                addr: *addr,
                ..profile()
            };
            let name = NodeName::new(&format!("m{i}")).unwrap();
            m.set(&name, Incarnation::ZERO, Alive, &profile, Instant::ZERO);
        }
        for addr in &at {
            assert!(m.any_at(*addr, State::is_live), "{addr}");
            assert!(!m.any_at(*addr, |s| s == Failed), "{addr}");
        }
        for absent in [
            v4(7040),
            v6(7040),
            v4(6999),
            SocketAddr::from(([127, 0, 0, 2], 7000)),
        ] {
            assert!(!m.any_at(absent, |_| true), "{absent}");
        }
    }

    /// Removing members leaves their names' bytes dead in the arena until they are half of it;
    /// the compaction then moves every other name, and each is still found by name and by
    /// address, reads back as itself, and counts in the digest as in a table built fresh.
    #[test]
    fn names_stay_found_after_the_arena_compacts() {
        let mut m = Members::default();
        let long = |i: usize| NodeName::new(&format!("{i:0>64}")).unwrap();
        let all: Vec<NodeName> = (0..3_000).map(long).collect();
        for (i, n) in all.iter().enumerate() {
            let p = profile_in("dc1", i as u16);
            m.set(n, Incarnation::new(1), Alive, &p, Instant::ZERO);
        }
        let full = m.names.len();
        assert_eq!(full, 3_000 * 64);
        let mut fresh = Members::default();
        for (i, n) in all.iter().enumerate() {
            if i % 3 == 0 {
                let p = profile_in("dc1", i as u16);
                fresh.set(n, Incarnation::new(1), Alive, &p, Instant::ZERO);
            } else {
                m.remove(n);
            }
        }
        assert!(m.names.len() < full / 2, "compacted: {}", m.names.len());
        for (i, n) in all.iter().enumerate() {
            let found = m.find(n);
            assert_eq!(found.is_some(), i % 3 == 0, "{n}");
            if let Some((id, member)) = found {
                assert_eq!(m.name(member), *n);
                assert_eq!(m.by_id(id).map(|b| m.name(b)), Some(n.clone()));
                let at = SocketAddr::from(([127, 0, 0, 1], i as u16));
                assert!(m.any_at(at, State::is_live));
            }
        }
        assert_eq!(m.len(), 1_000);
        assert_eq!(m.digest(), fresh.digest());
        let order: Vec<NodeName> = m.iter().map(|(n, _)| n).collect();
        let expected: Vec<NodeName> = all.iter().step_by(3).cloned().collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn iteration_goes_by_name_whatever_the_insertion_order() {
        let mut m = Members::default();
        for i in [3, 9, 1, 7, 5, 0, 8, 2, 6, 4] {
            let name = NodeName::new(&format!("m{i}")).unwrap();
            m.set(&name, Incarnation::new(0), Alive, &profile(), Instant::ZERO);
        }
        m.remove(&NodeName::new("m5").unwrap());
        let order: Vec<String> = m.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            order,
            ["m0", "m1", "m2", "m3", "m4", "m6", "m7", "m8", "m9"]
        );
    }

    #[test]
    fn traits_are_shared_and_dropped_with_their_last_member() {
        let mut m = Members::default();
        let names = names(3);
        let now = Instant::ZERO;
        for (i, n) in names.iter().enumerate() {
            m.set(
                n,
                Incarnation::new(0),
                Alive,
                &profile_in("dc1", i as u16),
                now,
            );
        }
        assert_eq!(m.traits.len(), 1, "one copy of dc1 for three members");
        let (a, b) = (m.get(&names[0]).unwrap(), m.get(&names[1]).unwrap());
        assert_eq!({ a.traits }, { b.traits });
        assert_eq!(m.profile(b), profile_in("dc1", 1));

        // A member moving to another dc takes new traits; the old stay while others hold them.
        m.set(
            &names[0],
            Incarnation::new(1),
            Alive,
            &profile_in("dc2", 7),
            now,
        );
        assert_eq!(m.traits.len(), 2);
        assert_eq!(m.profile(m.get(&names[0]).unwrap()), profile_in("dc2", 7));
        m.remove(&names[0]);
        assert_eq!(m.traits.len(), 1, "dc2 went with its last member");
        m.remove(&names[1]);
        m.remove(&names[2]);
        assert!(m.traits.is_empty());
    }

    /// Tags come from the network: a member per tag set is the most the table can be made to
    /// hold, and numbers freed by departed members are taken again rather than growing it.
    #[test]
    fn traits_numbers_are_reused_and_each_member_reads_its_own() {
        let mut m = Members::default();
        let names = names(50);
        let tagged = |i: usize| Profile {
            tags: BoundedVec::new(vec![Tag {
                key: Label::new("k").unwrap(),
                value: crate::bounded::BoundedString(format!("v{i}")),
            }]),
            ..profile_in("dc1", i as u16)
        };
        for round in 0..3 {
            for (i, n) in names.iter().enumerate() {
                m.set(
                    n,
                    Incarnation::new(round),
                    Alive,
                    &tagged(i + 100 * round as usize),
                    Instant::ZERO,
                );
            }
            assert_eq!(m.traits.len(), names.len(), "round {round}");
            assert!(
                m.traits.by_id.len() <= names.len() + 1,
                "round {round}: numbers reused"
            );
            for (i, n) in names.iter().enumerate() {
                let member = m.get(n).unwrap();
                assert_eq!(m.profile(member), tagged(i + 100 * round as usize));
            }
        }
        for n in &names {
            m.remove(n);
        }
        assert!(m.traits.is_empty());
        assert!(m.traits.by_id.iter().all(Option::is_none));
        assert_eq!(m.traits.free.len(), m.traits.by_id.len());
    }

    #[test]
    fn since_moves_only_with_the_state() {
        let mut m = Members::default();
        let name = NodeName::new("a").unwrap();
        let id = m
            .set(
                &name,
                Incarnation::new(0),
                Alive,
                &profile(),
                Instant::from_micros(1),
            )
            .unwrap();
        m.set(
            &name,
            Incarnation::new(1),
            Alive,
            &profile(),
            Instant::from_micros(2),
        );
        assert_eq!({ m.by_id(id).unwrap().since }, Instant::from_micros(1));
        m.record_ack(&name, Instant::from_micros(3_500_000));
        m.set_state(id, Incarnation::new(1), Suspect, Instant::from_micros(4));
        let member = m.by_id(id).unwrap();
        assert_eq!({ member.since }, Instant::from_micros(4));
        // Kept to the second: the start of the second it came in.
        assert_eq!(member.last_ack(), Some(Instant::from_micros(3_000_000)));
        assert_eq!(AckTime::at(Instant::ZERO).get(), Some(Instant::ZERO));
        assert_eq!(AckTime::default().get(), None);
        // Past 2^32 - 2 seconds it saturates rather than wrapping to "never" or to the start.
        let far = Instant::from_micros(u64::MAX);
        assert_eq!(
            AckTime::at(far).get(),
            Some(Instant::from_micros(u64::from(u32::MAX - 1) * 1_000_000))
        );
    }

    /// Anti-entropy compares sums of per-member hashes: two members moving from (0, failed) to
    /// (1, alive), as after a healed partition, must change the sum, or the divergence stays
    /// hidden from sync probes (it did with raw FNV-1a values).
    #[test]
    fn digest_sees_members_come_back_at_a_higher_incarnation() {
        let name = |i: usize| NodeName::new(&format!("n{i}")).unwrap();
        for a in 0..20 {
            for b in (a + 1)..20 {
                let sum = |inc, state| {
                    member_hash(&name(a), inc, state).wrapping_add(member_hash(
                        &name(b),
                        inc,
                        state,
                    ))
                };
                assert_ne!(
                    sum(Incarnation::ZERO, Failed),
                    sum(Incarnation::new(1), Alive),
                    "n{a} n{b}"
                );
            }
        }
    }
}
