//! Anti-entropy for the registry (SWIM §4.1's push-pull, applied to the registry), in three
//! steps, each smaller than the next:
//!
//! 1. beside every membership sync probe, one 8-byte hash of the whole registry
//!    ([`RegistrySync`]): an idle cluster in step exchanges nothing more;
//! 2. on a mismatch, per-origin summaries ([`RegistryDigest`], in ranges of origins that each
//!    fit a datagram); an origin the peer lacks, or a small one, is pushed whole;
//! 3. for a larger origin that differs, per-bucket summaries ([`RegistryBuckets`]): only the
//!    buckets that differ are pushed, so one missing entry costs a bucket (about 1/64 of the
//!    origin), not the origin.
//!
//! Summaries are counts and sums of (id, version) hashes, not "the highest version seen from
//! each origin": gossip is unordered, so a gap below the highest version would not show.
//! Pushed entries go in MTU-bounded datagrams, as many as it takes; a receiver merges them
//! like gossip (and gossips what was news to it). A receiver to which they were news compares
//! again soon, with another peer, instead of a `sync_interval` later ([`super::resync`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::push::Owed;
use super::resync::{Fire, Timings};
use super::{Catalog, MembershipView};
use crate::bounded::BoundedVec;
use crate::names::{InstanceId, NodeName};
use crate::node::io::Io;
use crate::registry::{bucket_of, BucketMask, Entry, OriginDigest, ALL_BUCKETS, BUCKETS};
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{
    encode_message, BucketSummary, Message, MessageKind, OriginSummary, RegistryBuckets,
    RegistryDigest, RegistrySync, DIGEST_ORIGINS_MAX,
};

/// Bytes a digest message adds around its summaries: kind, flag, two optional names, length.
const DIGEST_FRAME_BYTES: usize = 8 + 2 * (1 + NodeName::MAX_BYTES + 1);

/// Largest encoding of one origin summary: name (length byte and bytes), u32 and u64 varints.
fn summary_bytes(origin: &NodeName) -> usize {
    1 + origin.as_str().len() + 5 + 9
}

/// Members we owe a registry comparison on their return (see [`Catalog::owe_sync`]): each costs a
/// name here and one exchange of bucket summaries (about 900 bytes each way) when it comes
/// back. Enough for the far side of a partition in a cluster of hundreds; past it, a return is
/// left to chance and anti-entropy.
pub(crate) const OWED_SYNCS_MAX: usize = 64;

/// An origin with at most this many entries here is pushed whole when it differs: cheaper than
/// a round trip of bucket summaries (64 of them, about 900 bytes, each way).
const PUSH_WHOLE_MAX: u32 = 16;

/// How long the entries a peer asks for wait, so that one pass over the registry serves every
/// origin asked for meanwhile. One exchange asks for up to one origin a datagram (a bucket
/// summary each, sent together), and finding one origin's entries is a pass over the whole
/// registry: at 100 origins × 1,000 entries, one exchange was 100 passes over 100,000
/// entries, most of a simulated node's time (issue 17, docs/scale.md). A burst sent together
/// arrives within a few milliseconds on a LAN; what comes later is served by the next pass.
/// Next to a `sync_interval` of 30 s, the wait is nothing.
pub(crate) const PUSH_BATCH_DELAY: Duration = Duration::from_millis(10);

/// Pushes (a peer and an origin) waiting at most: 100 origins for each of 10 peers in one
/// `PUSH_BATCH_DELAY`, about 60 B each. Past it a push is served at once, by a pass of its own.
pub(crate) const PUSHES_DUE_MAX: usize = 1_024;

/// Entries a peer asked for: those of `origin` in `buckets`.
#[derive(Debug)]
pub(crate) struct PushDue {
    to: SocketAddr,
    origin: NodeName,
    buckets: BucketMask,
}

impl Catalog {
    /// An entry (`id`, written by `origin`) from `from` was news: if `from` was to push it in a
    /// registry comparison, the exchange is doing work, and another soon may find more
    /// ([`super::resync`]).
    pub(super) fn note_sync_news(
        &mut self,
        io: &mut Io,
        now: Instant,
        from: SocketAddr,
        id: &InstanceId,
        origin: &NodeName,
    ) {
        let bucket = bucket_of(id);
        if let Some(at) = self.resync.on_news(now, from, origin, bucket, timings(io)) {
            io.timers.schedule(at, Timer::RegistryResync);
        }
    }

    /// The re-sync timer fired: whether to compare registries with a peer now. Re-arms the
    /// timer itself while news is still arriving.
    /// `can_sync`: the node is active and some member is live (otherwise nothing is spent).
    pub(crate) fn resync_due(&mut self, io: &mut Io, now: Instant, can_sync: bool) -> bool {
        match self.resync.on_timer(now, timings(io), can_sync) {
            Fire::Sync => true,
            Fire::Later(at) => {
                io.timers.schedule(at, Timer::RegistryResync);
                false
            }
            Fire::Skip => false,
        }
    }

    /// Peers to leave out of an early re-sync: those we just compared with.
    pub(crate) fn recent_sync_partners(&self, io: &Io, now: Instant) -> Vec<SocketAddr> {
        self.resync.recent_partners(now, timings(io))
    }

    /// Is a comparison's push still arriving ([`super::resync::Resync::receiving`])? Then this
    /// node neither starts nor answers another comparison: the second peer would push the same
    /// entries again.
    pub(crate) fn receiving_push(&self, io: &Io, now: Instant) -> bool {
        self.resync.receiving(now, timings(io))
    }

    /// Sent beside the membership sync probe: one hash of the whole registry.
    pub(crate) fn registry_sync_message(&self) -> Message {
        Message::RegistrySync(RegistrySync {
            digest: self.registry.digest(),
        })
    }

    pub(crate) fn on_registry_sync(
        &mut self,
        io: &mut Io,
        now: Instant,
        from: SocketAddr,
        sync: RegistrySync,
    ) {
        if sync.digest == self.registry.digest() {
            return;
        }
        // Still receiving another peer's push: our hash differs because its entries are on
        // their way; answering would have this peer push them too. Declined, not deferred: the
        // peer's next regular or early round asks again, and our own early re-sync waits for
        // the push to go quiet (`Fire::Later`).
        if self.receiving_push(io, now) {
            io.stats.registry_syncs_declined += 1;
            return;
        }
        if io.may_answer(now, MessageKind::RegistrySync) {
            io.stats.registry_syncs += 1;
            self.send_registry_digest(io, from, true);
        }
    }

    /// Our per-origin summaries, in ranges that each fit one datagram.
    pub(crate) fn send_registry_digest(&mut self, io: &mut Io, to: SocketAddr, reply_wanted: bool) {
        let room = io.config.packet_bytes_max - io.envelope_overhead() - DIGEST_FRAME_BYTES;
        let mut chunks: Vec<Vec<OriginSummary>> = Vec::new();
        let mut chunk: Vec<OriginSummary> = Vec::new();
        let mut used = 0;
        for (origin, d) in self.registry.origin_digests().iter() {
            let size = summary_bytes(origin);
            if !chunk.is_empty() && (used + size > room || chunk.len() == DIGEST_ORIGINS_MAX) {
                chunks.push(std::mem::take(&mut chunk));
                used = 0;
            }
            used += size;
            chunk.push(OriginSummary {
                origin: origin.clone(),
                count: d.count,
                hash: d.hash,
            });
        }
        // The last chunk, even empty: an empty registry still sends one digest.
        chunks.push(chunk);
        // Chunk i covers [its first origin, the next chunk's first origin); the first starts
        // unbounded, so that origins the receiver holds below ours are covered too.
        let starts: Vec<Option<NodeName>> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| match i {
                0 => None,
                _ => c.first().map(|s| s.origin.clone()),
            })
            .collect();
        for (i, origins) in chunks.into_iter().enumerate() {
            let digest = RegistryDigest {
                reply_wanted,
                from: starts[i].clone(),
                to: starts.get(i + 1).cloned().flatten(),
                origins: BoundedVec::new(origins),
            };
            io.send(to, &[Message::RegistryDigest(digest)]);
        }
    }

    /// Note what the sender of `digest` will push us whole ([`super::resync`]): each origin it
    /// holds that differs from ours and that we lack or both hold few of. The sender decides
    /// by the same rule ([`Catalog::on_registry_digest`], on its side) from the same two
    /// summaries.
    ///
    /// Called on a first leg even if our answering digest is then refused (the sender pushes
    /// nothing): its gossip of those origins then counts as news and may start an early
    /// re-sync, which a bulk load's spread was measured to need (see the buckets' case in
    /// [`Catalog::on_registry_buckets`]).
    fn expect_whole_pushes(
        &mut self,
        io: &Io,
        now: Instant,
        from: SocketAddr,
        digest: &RegistryDigest,
    ) {
        // Only a member becomes a partner: spoofed digests from sixteen strangers would push
        // the real partners out, and their exchanges would stop counting as news.
        if io.replies.sender() != crate::node::replies::Sender::Member {
            return;
        }
        self.resync.exchanged(now, from, timings(io));
        let ours = self.registry.origin_digests();
        // A node that holds nothing of anyone else's (a late joiner, an empty restart) is
        // being filled in by this peer. One holding part of others' origins (during a bulk
        // load, every node) is not: declining comparisons there slowed the spread.
        let newcomer = ours
            .iter()
            .all(|(origin, d)| *origin == self.name || d.is_empty());
        let mut fills_in = false;
        for s in &digest.origins.0 {
            let theirs = OriginDigest {
                count: s.count,
                hash: s.hash,
            };
            let held = ours.get(&s.origin);
            let whole = match held {
                None => true,
                Some(o) => *o != theirs && o.count.max(theirs.count) <= PUSH_WHOLE_MAX,
            };
            if whole && !theirs.is_empty() {
                self.resync.expect_push(from, &s.origin, ALL_BUCKETS);
                fills_in |= newcomer;
            }
        }
        if fills_in {
            self.resync.expect_fill_in(from);
        }
    }

    /// For each origin in the digest's range whose summary differs from ours: push it whole if
    /// the sender lacks it or both sides hold few of its entries, else (first leg only, so one
    /// side starts it) compare buckets. On a first leg, answer with our own digest.
    pub(crate) fn on_registry_digest(
        &mut self,
        io: &mut Io,
        now: Instant,
        from: SocketAddr,
        digest: RegistryDigest,
    ) {
        self.expect_whole_pushes(io, now, from, &digest);
        let in_range = |o: &NodeName| {
            digest.from.as_ref().is_none_or(|f| o >= f) && digest.to.as_ref().is_none_or(|t| o < t)
        };
        let theirs: std::collections::BTreeMap<&NodeName, OriginDigest> = digest
            .origins
            .0
            .iter()
            .map(|s| {
                let d = OriginDigest {
                    count: s.count,
                    hash: s.hash,
                };
                (&s.origin, d)
            })
            .collect();
        let mut push_whole = Vec::new();
        let mut compare_buckets = Vec::new();
        for (origin, ours) in self.registry.origin_digests().iter() {
            if !in_range(origin) {
                continue;
            }
            // The choice depends only on what both sides see, so both make the same one: the
            // second leg does not push an origin whose buckets the first leg compares.
            match theirs.get(origin) {
                Some(t) if t == ours => {}
                Some(t) if ours.count.max(t.count) > PUSH_WHOLE_MAX => {
                    if digest.reply_wanted {
                        compare_buckets.push(origin.clone());
                    }
                }
                _ => push_whole.push(origin.clone()),
            }
        }
        let answers_digest = digest.reply_wanted && digest.from.is_none();
        let answers = !push_whole.is_empty() || !compare_buckets.is_empty() || answers_digest;
        if !answers || !io.may_answer(now, MessageKind::RegistryDigest) {
            return;
        }
        for origin in push_whole {
            self.push_entries(io, now, from, origin, ALL_BUCKETS);
        }
        for origin in compare_buckets {
            self.send_registry_buckets(io, from, origin, true);
        }
        if answers_digest {
            self.send_registry_digest(io, from, false);
        }
    }

    fn send_registry_buckets(
        &mut self,
        io: &mut Io,
        to: SocketAddr,
        origin: NodeName,
        reply_wanted: bool,
    ) {
        let buckets = self
            .registry
            .bucket_digests(&origin)
            .iter()
            .map(|d| BucketSummary {
                count: d.count,
                hash: d.hash,
            })
            .collect();
        let message = Message::RegistryBuckets(RegistryBuckets {
            reply_wanted,
            origin,
            buckets: BoundedVec::new(buckets),
        });
        io.send(to, &[message]);
    }

    /// Push our entries of the origin in every bucket whose summary differs from the sender's;
    /// on a first leg, answer with our buckets so the sender pushes what we lack.
    pub(crate) fn on_registry_buckets(
        &mut self,
        io: &mut Io,
        now: Instant,
        from: SocketAddr,
        buckets: RegistryBuckets,
    ) {
        let ours = self.registry.bucket_digests(&buckets.origin);
        let mut differing: BucketMask = 0;
        // The sender applies the same rule to the same two summaries: it pushes its buckets
        // that differ and hold something.
        let mut theirs_differing: BucketMask = 0;
        for (b, ours) in ours.iter().enumerate().take(BUCKETS) {
            let theirs = buckets
                .buckets
                .0
                .get(b)
                .map_or(OriginDigest::default(), |s| OriginDigest {
                    count: s.count,
                    hash: s.hash,
                });
            if theirs != *ours && !ours.is_empty() {
                differing |= 1 << b;
            }
            if theirs != *ours && !theirs.is_empty() {
                theirs_differing |= 1 << b;
            }
        }
        // Expected even if our answer is refused below (the sender then pushes nothing): the
        // sender's gossip of those buckets counts as news and may start an early re-sync. Noting
        // them only when the answer went out was measured to slow a bulk load's spread
        // (`registry-churn --nodes 50`, seeds 1 and 2: 37.9 -> 45.6 s and 26.5 -> 34.3 s until
        // every node held every entry), so it stays; a stale expectation lapses with the
        // partner's exchange (`Resync::exchanged`).
        self.resync.exchanged(now, from, timings(io));
        if theirs_differing != 0 {
            self.resync
                .expect_push(from, &buckets.origin, theirs_differing);
        }
        let answers = differing != 0 || buckets.reply_wanted;
        if !answers || !io.may_answer(now, MessageKind::RegistryBuckets) {
            return;
        }
        if buckets.reply_wanted {
            self.send_registry_buckets(io, from, buckets.origin.clone(), false);
        }
        if differing != 0 {
            self.push_entries(io, now, from, buckets.origin, differing);
        }
    }

    /// Push our entries written by `origin` in `buckets`, with every other push asked for in
    /// the next [`PUSH_BATCH_DELAY`] ([`Catalog::on_push_due`]).
    fn push_entries(
        &mut self,
        io: &mut Io,
        now: Instant,
        to: SocketAddr,
        origin: NodeName,
        buckets: BucketMask,
    ) {
        let same = |d: &&mut PushDue| d.to == to && d.origin == origin;
        if let Some(due) = self.pushes_due.iter_mut().find(same) {
            due.buckets |= buckets;
            return;
        }
        if self.pushes_due.len() >= PUSHES_DUE_MAX {
            let wanted = BTreeMap::from([(origin, buckets)]);
            return self.owe_push(io, to, wanted);
        }
        if self.pushes_due.is_empty() {
            io.timers.schedule(now + PUSH_BATCH_DELAY, Timer::PushDue);
        }
        self.pushes_due.push(PushDue {
            to,
            origin,
            buckets,
        });
    }

    /// Owe what peers asked for since the first push fell due: one push for each peer,
    /// whatever the number of origins it asked for, encoded as the shell takes its datagrams
    /// ([`super::push`]).
    pub(crate) fn on_push_due(&mut self, io: &mut Io) {
        let mut due = std::mem::take(&mut self.pushes_due);
        due.sort_by_key(|d| d.to);
        for peer in due.chunk_by(|a, b| a.to == b.to) {
            let wanted: BTreeMap<NodeName, BucketMask> =
                peer.iter().map(|d| (d.origin.clone(), d.buckets)).collect();
            self.owe_push(io, peer[0].to, wanted);
        }
    }

    /// Owe `to` our entries in `wanted`; a push started (or restarted) is one pass over the
    /// registry, and one refused because too many peers are owed one is counted as a bulk
    /// answer refused for a full outbox (the peer's next comparison asks again).
    fn owe_push(&mut self, io: &mut Io, to: SocketAddr, wanted: BTreeMap<NodeName, BucketMask>) {
        match self.pushes.owe(to, wanted) {
            Owed::Started => io.stats.push_passes += 1,
            Owed::Covered => {}
            Owed::Refused => io.stats.reply_refused(crate::stats::Refusal::Outbox),
        }
    }

    /// Send the sender of the datagram just read the tombstones [`Catalog::on_entry`] answered
    /// its old versions of deleted entries with.
    pub(crate) fn send_grave_replies(&mut self, io: &mut Io, now: Instant, to: SocketAddr) {
        if !self.grave_replies.is_empty() {
            let entries = std::mem::take(&mut self.grave_replies);
            if io.may_answer(now, MessageKind::Entry) {
                send_entries(io, to, entries);
            }
        }
    }

    /// After a join, ask the seed for its registry (and offer ours).
    pub(crate) fn after_join(&mut self, io: &mut Io, seed: SocketAddr) {
        self.send_registry_digest(io, seed, true);
    }

    /// A failed or departed member is back: it may hold entries we purged, and lack changes
    /// made meanwhile. Rather than wait for a random sync round, a couple of the members that
    /// see it return (each with chance 2/N, so about two in all, not N) compare registries
    /// with it now. And every member that refused entries it owns while holding it failed asks
    /// it for the entries it wrote (one origin's buckets, not the whole registry): nothing else
    /// would send them again before an anti-entropy round.
    pub(crate) fn on_member_back(
        &mut self,
        io: &mut Io,
        view: &MembershipView,
        name: &NodeName,
        addr: SocketAddr,
    ) {
        if self.owed_syncs.remove(name) {
            self.send_registry_buckets(io, addr, name.clone(), true);
        }
        let n = view.cluster_size().max(1);
        if crate::swim::probe::uniform(&mut io.rng, n) < 2 {
            self.send_registry_digest(io, addr, true);
        }
    }

    /// We refused an entry because we hold its owner failed: ask the owner for its entries if
    /// it comes back. Marks of members no longer held failed or left (back by another way, or
    /// reaped) are dropped to make room.
    pub(crate) fn owe_sync(&mut self, view: &MembershipView, owner: NodeName) {
        if self.owed_syncs.len() >= OWED_SYNCS_MAX {
            self.owed_syncs
                .retain(|m| view.member_state(m).is_some_and(|state| !state.is_live()));
        }
        if self.owed_syncs.len() < OWED_SYNCS_MAX {
            self.owed_syncs.insert(owner);
        }
    }
}

/// Pack entries into datagrams within the budget, without piggybacking, paced
/// ([`crate::node::Transmit::paced`]). Only for the few grave replies of one datagram; a push
/// that may be thousands of datagrams is owed and made on demand ([`super::push`]).
fn send_entries(io: &mut Io, to: SocketAddr, entries: impl IntoIterator<Item = Entry>) {
    let mut datagram = io.new_datagram();
    for entry in entries {
        let encoded = encode_message(&Message::Entry(entry));
        if !datagram.try_push(&encoded) {
            let full = std::mem::replace(&mut datagram, io.new_datagram());
            if !full.is_empty() {
                io.transmit_paced(to, full);
            }
            if !datagram.try_push(&encoded) {
                // Entries are bounded to fit a default datagram (ENTRY_MAX_BYTES); only a
                // budget configured below that, or a peer with a larger one, gets here.
                io.stats.entries_unsendable += 1;
                continue;
            }
        }
        io.stats.entries_pushed += 1;
        io.stats.messages_out(MessageKind::Entry, 1);
    }
    if !datagram.is_empty() {
        io.transmit_paced(to, datagram);
    }
}

/// The timings the re-sync pace reads, as configured now.
fn timings(io: &Io) -> Timings {
    Timings {
        probe_interval: io.config.probe_interval,
        sync_interval: io.config.sync_interval,
    }
}

#[cfg(test)]
mod tests;
