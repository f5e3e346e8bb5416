//! Who gets an answer, and how large (issue 14, item 3).
//!
//! Anything can send a datagram with any source address, so an answer is a weapon if it is
//! larger than the question: a few bytes that make a node send its whole registry to a
//! victim's address. The rules, checked for every answer before it is queued:
//!
//! - A **stranger** (a source address no member is advertised at, or only a departed one)
//!   gets at most a bare ack to a ping (no piggybacked gossip, no retransmits spent) and a
//!   join answer no larger than the join it sent (a joining node pads its join, see
//!   `membership::lifecycle`), both under one node-wide rate ([`STRANGER_ANSWERS_PER_SEC`]).
//!   Nothing else: no ping-req relay, no sync, digest, bucket or grave answer.
//! - A **member** at its advertised address (alive or suspect) gets bulk answers, at most one
//!   per message kind per datagram, from a per-peer token bucket ([`PEER_ANSWERS_PER_PROBE`]
//!   per probe interval), and none while more than [`OUTBOX_BYTES_MAX`] wait to be sent. A
//!   member held failed gets only the membership exchange (sync probe, push-pull), under the
//!   same limits: reconnect probes to failed members are how partitions heal.
//!
//! Every refusal is counted by reason (`hera_replies_refused_total{reason}`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::stats::{Refusal, Stats};
use crate::time::Instant;
use crate::wire::MessageKind;

/// Answers to strangers (bare acks and join answers) per second, node-wide. A node joining
/// or a member not yet heard of needs a handful; at ~30 bytes each this caps what any number of
/// spoofed sources can make a node send to strangers at a few KiB/s.
pub(crate) const STRANGER_ANSWERS_PER_SEC: u32 = 64;
/// Bulk answers one member may draw per probe interval (and the bucket's depth). A sync
/// round costs a member two or three (sync probe, registry digest, a few bucket compares);
/// 32 leaves room for a registry with many differing origins after a partition, while a
/// buggy or hostile member's answers are bounded to 32 datagram bursts per interval.
pub(crate) const PEER_ANSWERS_PER_PROBE: u32 = 32;
/// Bulk answers wait while this much is queued to send: the outbox never grows past one
/// answer beyond it, whatever arrives in one read batch. 4 MiB holds a 10,000-member table
/// (about 1 MiB) several times over.
pub(crate) const OUTBOX_BYTES_MAX: usize = 4 << 20;
/// Peers with a token bucket kept; past this, buckets that are full again (the peer has been
/// quiet) are dropped. A member set larger than this at once only costs refusals.
const PEER_BUCKETS_MAX: usize = 4_096;

/// What the sender of the datagram being handled is to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    Stranger,
    /// An alive or suspect member at its advertised address.
    Member,
    /// A member held failed, at its advertised address: it may be back from a partition, so
    /// it gets the membership exchange that heals one (sync probe, push-pull), nothing more.
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: u32,
    refilled: Instant,
}

/// The answer policy's state: the datagram being handled, and the rates.
#[derive(Debug)]
pub(crate) struct Replies {
    sender: Sender,
    from: Option<SocketAddr>,
    /// Bytes of the datagram being handled: a stranger's join answer is at most this.
    bytes_in: usize,
    /// Kinds answered in this datagram, by `MessageKind::index` bit.
    answered: u32,
    buckets: BTreeMap<SocketAddr, Bucket>,
    /// Start of the current one-second window of stranger answers, and answers in it.
    stranger_window: Option<Instant>,
    stranger_answers: u32,
}

impl Default for Replies {
    fn default() -> Self {
        Replies {
            sender: Sender::Stranger,
            from: None,
            bytes_in: 0,
            answered: 0,
            buckets: BTreeMap::new(),
            stranger_window: None,
            stranger_answers: 0,
        }
    }
}

impl Replies {
    /// A datagram of `bytes_in` bytes from `from` is about to be handled.
    pub(crate) fn begin(&mut self, from: SocketAddr, sender: Sender, bytes_in: usize) {
        self.sender = sender;
        self.from = Some(from);
        self.bytes_in = bytes_in;
        self.answered = 0;
    }

    pub(crate) fn sender(&self) -> Sender {
        self.sender
    }

    /// The datagram is handled: no sender until the next one begins.
    pub(crate) fn end(&mut self) {
        self.sender = Sender::Stranger;
        self.from = None;
    }

    /// Where the datagram being handled came from (None outside one).
    pub(crate) fn from(&self) -> Option<SocketAddr> {
        self.from
    }

    /// The largest answer a stranger may get to the datagram being handled.
    pub(crate) fn stranger_budget(&self) -> usize {
        self.bytes_in
    }

    /// May the stranger that sent this datagram get a bare ack or a join answer (of `kind`)?
    /// One per kind per datagram: a datagram of 200 pings gets one ack, not 200.
    pub(crate) fn stranger_answer(
        &mut self,
        now: Instant,
        kind: MessageKind,
        stats: &mut Stats,
    ) -> bool {
        let bit = 1u32 << kind.index();
        if self.answered & bit != 0 {
            stats.reply_refused(Refusal::RepeatedKind);
            return false;
        }
        let window_over = self
            .stranger_window
            .is_none_or(|start| now.saturating_since(start) >= Duration::from_secs(1));
        if window_over {
            self.stranger_window = Some(now);
            self.stranger_answers = 0;
        }
        if self.stranger_answers >= STRANGER_ANSWERS_PER_SEC {
            stats.reply_refused(Refusal::StrangerRate);
            return false;
        }
        self.stranger_answers += 1;
        self.answered |= bit;
        true
    }

    /// May the sender of this datagram get a bulk answer of `kind` now? Spends a token if so.
    pub(crate) fn bulk(
        &mut self,
        now: Instant,
        kind: MessageKind,
        probe_interval: Duration,
        outbox_bytes: usize,
        stats: &mut Stats,
    ) -> bool {
        let refusal = self.check_bulk(now, kind, probe_interval, outbox_bytes);
        match refusal {
            Some(refusal) => {
                stats.reply_refused(refusal);
                false
            }
            None => true,
        }
    }

    fn check_bulk(
        &mut self,
        now: Instant,
        kind: MessageKind,
        probe_interval: Duration,
        outbox_bytes: usize,
    ) -> Option<Refusal> {
        let heals = matches!(kind, MessageKind::SyncProbe | MessageKind::PushPull);
        let from = match (self.sender, self.from) {
            (Sender::Member, Some(from)) => from,
            (Sender::Failed, Some(from)) if heals => from,
            _ => return Some(Refusal::Stranger),
        };
        let bit = 1u32 << kind.index();
        if self.answered & bit != 0 {
            return Some(Refusal::RepeatedKind);
        }
        if outbox_bytes > OUTBOX_BYTES_MAX {
            return Some(Refusal::Outbox);
        }
        if !self.buckets.contains_key(&from) && self.buckets.len() >= PEER_BUCKETS_MAX {
            self.buckets
                .retain(|_, b| refill(*b, now, probe_interval).tokens < PEER_ANSWERS_PER_PROBE);
            if self.buckets.len() >= PEER_BUCKETS_MAX {
                return Some(Refusal::Peers);
            }
        }
        let bucket = self.buckets.entry(from).or_insert(Bucket {
            tokens: PEER_ANSWERS_PER_PROBE,
            refilled: now,
        });
        *bucket = refill(*bucket, now, probe_interval);
        if bucket.tokens == 0 {
            return Some(Refusal::PeerRate);
        }
        bucket.tokens -= 1;
        self.answered |= bit;
        None
    }
}

/// The bucket topped up to full once a probe interval has passed since it was last filled.
fn refill(bucket: Bucket, now: Instant, probe_interval: Duration) -> Bucket {
    if now.saturating_since(bucket.refilled) >= probe_interval {
        Bucket {
            tokens: PEER_ANSWERS_PER_PROBE,
            refilled: now,
        }
    } else {
        bucket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7001))
    }

    #[test]
    fn strangers_get_no_bulk_answer() {
        let mut r = Replies::default();
        let mut stats = Stats::default();
        r.begin(peer(), Sender::Stranger, 10);
        let interval = Duration::from_secs(1);
        assert!(!r.bulk(
            Instant::ZERO,
            MessageKind::SyncProbe,
            interval,
            0,
            &mut stats
        ));
        assert_eq!(stats.replies_refused[Refusal::Stranger.index()], 1);
    }

    #[test]
    fn one_answer_per_kind_per_datagram_and_a_bucket_per_peer() {
        let mut r = Replies::default();
        let mut stats = Stats::default();
        let interval = Duration::from_secs(1);
        let now = Instant::ZERO;
        r.begin(peer(), Sender::Member, 10);
        assert!(r.bulk(now, MessageKind::SyncProbe, interval, 0, &mut stats));
        assert!(!r.bulk(now, MessageKind::SyncProbe, interval, 0, &mut stats));
        assert!(r.bulk(now, MessageKind::RegistrySync, interval, 0, &mut stats));
        for _ in 2..PEER_ANSWERS_PER_PROBE {
            r.begin(peer(), Sender::Member, 10);
            assert!(r.bulk(now, MessageKind::SyncProbe, interval, 0, &mut stats));
        }
        r.begin(peer(), Sender::Member, 10);
        assert!(!r.bulk(now, MessageKind::SyncProbe, interval, 0, &mut stats));
        assert_eq!(stats.replies_refused[Refusal::PeerRate.index()], 1);
        // A probe interval later the bucket is full again.
        assert!(r.bulk(
            now + interval,
            MessageKind::SyncProbe,
            interval,
            0,
            &mut stats
        ));
        r.begin(peer(), Sender::Member, 10);
        let full = OUTBOX_BYTES_MAX + 1;
        assert!(!r.bulk(
            now + interval,
            MessageKind::SyncProbe,
            interval,
            full,
            &mut stats
        ));
    }

    #[test]
    fn stranger_answers_are_rate_limited_node_wide() {
        let mut r = Replies::default();
        let mut stats = Stats::default();
        let now = Instant::ZERO;
        let ping = MessageKind::Ping;
        r.begin(peer(), Sender::Stranger, 10);
        assert!(r.stranger_answer(now, ping, &mut stats));
        assert!(
            !r.stranger_answer(now, ping, &mut stats),
            "a second ping, same datagram"
        );
        let allowed = (1..STRANGER_ANSWERS_PER_SEC * 2)
            .filter(|_| {
                r.begin(peer(), Sender::Stranger, 10);
                r.stranger_answer(now, ping, &mut stats)
            })
            .count();
        assert_eq!(allowed + 1, STRANGER_ANSWERS_PER_SEC as usize);
        r.begin(peer(), Sender::Stranger, 10);
        assert!(r.stranger_answer(now + Duration::from_secs(1), ping, &mut stats));
    }
}
