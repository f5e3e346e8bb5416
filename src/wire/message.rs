//! The messages of wire format v1. Field-by-field layout: `docs/wire.md`.
//!
//! New kinds are only ever appended: a kind's number is its position in [`Message`].

use std::net::SocketAddr;

use bincode::{Decode, Encode};

use crate::bounded::{BoundedString, BoundedVec};
use crate::names::{Label, NodeName};
use crate::record::Entry;

/// A probe's sequence number; pairs an ack or nack with its ping.
pub type Seq = u32;

/// A member's incarnation: only the member itself raises it, to refute a suspicion (SWIM §4.2).
///
/// Incarnations are compared as serial numbers (RFC 1982, 32 bits): `a` is newer than `b` when
/// it is ahead by less than half the space. A plain `>` made `u32::MAX` the end of the line:
/// one claim at the maximum about a live member left it nothing to refute with (issue 14).
/// With serial order every incarnation has a successor, and refutation wraps. The order is
/// total within any window of 2^31, which honest incarnations never leave (the membership
/// refuses third-party claims that jump further: `swim::members::plausible`).
///
/// That is why this is a type and has no `Ord`: `<` on the number is the bug it prevents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Incarnation(u32);

impl Incarnation {
    /// Where a member's first boot starts.
    pub const ZERO: Incarnation = Incarnation(0);

    pub const fn new(n: u32) -> Incarnation {
        Incarnation(n)
    }

    /// The number, for the wire, the data directory and the HTTP faces.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The successor in serial order: the one after `u32::MAX` is 0.
    #[must_use]
    pub const fn next(self) -> Incarnation {
        Incarnation(self.0.wrapping_add(1))
    }

    /// How many steps `self` is ahead of `earlier`, counting round the serial space.
    pub const fn steps_after(self, earlier: Incarnation) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// Ahead of `other` by less than half the serial space.
    pub const fn is_newer_than(self, other: Incarnation) -> bool {
        let ahead = self.steps_after(other);
        ahead != 0 && ahead < 1 << 31
    }

    /// The later of two incarnations in serial order.
    #[must_use]
    pub const fn later(self, other: Incarnation) -> Incarnation {
        if self.is_newer_than(other) {
            self
        } else {
            other
        }
    }
}

impl std::fmt::Display for Incarnation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// On the wire an incarnation is its number (a varint, as before the type existed).
impl Encode for Incarnation {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.0.encode(encoder)
    }
}

impl<C> Decode<C> for Incarnation {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        u32::decode(decoder).map(Incarnation)
    }
}

impl<'de, C> bincode::BorrowDecode<'de, C> for Incarnation {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        u32::decode(decoder).map(Incarnation)
    }
}

/// Most tags a member may carry; keeps an alive update well inside one datagram.
pub const TAGS_MAX: usize = 16;
/// Longest tag value, in bytes.
pub const TAG_VALUE_MAX_BYTES: usize = 128;
/// Most member records in one push-pull datagram (the MTU binds long before this).
pub const PUSH_PULL_MEMBERS_MAX: usize = 256;

/// Decoded by kind, frame by frame (`decode::reference_message`): some payloads (an entry's
/// appended fields) are read up to the end of their frame, which only the frame knows.
#[derive(Debug, Clone, PartialEq, Eq, Encode)]
pub enum Message {
    /// Are you alive? Sent by a prober, or by a relay on behalf of one.
    Ping(Ping),
    /// Yes: answers a ping, or is relayed back to the member that asked for an indirect probe.
    Ack(Ack),
    /// Please ping `target` for me (SWIM §3.1 indirect probe).
    PingReq(PingReq),
    /// Lifeguard: the relay asked by a ping-req got no ack in time, but it is itself alive.
    Nack(Nack),
    /// A membership change, piggybacked or gossiped.
    Member(MemberUpdate),
    /// A whole membership table (in MTU-sized parts): join, anti-entropy and reconnects.
    PushPull(PushPull),
    /// Anti-entropy summary: a digest of the sender's membership; a mismatch starts a push-pull.
    SyncProbe(SyncProbe),
    /// A registry entry (an instance at a version, or its tombstone), gossiped or pushed.
    Entry(Entry),
    /// Anti-entropy for the registry: one hash of everything the sender holds.
    RegistrySync(RegistrySync),
    /// Per-origin summaries of a range of origins; the receiver pushes what differs.
    RegistryDigest(RegistryDigest),
    /// Per-bucket summaries of one origin's entries, once that origin's summaries differ; the
    /// receiver pushes that origin's entries in the buckets that differ.
    RegistryBuckets(RegistryBuckets),
    /// A request to every live member (a cluster-wide operation), disseminated like any
    /// update; each member applies it and answers the asker directly (`node::query`).
    Query(Query),
    /// One member's answer to a [`Query`], sent straight to the asker's advertised address.
    QueryAnswer(QueryAnswer),
}

/// Most bytes of a query's payload: a keyring operation needs 32; room for future verbs, and
/// small enough that a query always rides along with other gossip in one datagram.
pub const QUERY_PAYLOAD_MAX_BYTES: usize = 256;
/// Most bytes of an answer's payload: a keyring listing needs `KEYS_MAX` × 32 = 160. With the
/// id and the names, an answer stays well inside one datagram (`DATAGRAM_MAX_BYTES`).
pub const ANSWER_PAYLOAD_MAX_BYTES: usize = 512;
/// Longest refusal message in an answer.
pub const ANSWER_ERROR_MAX_BYTES: usize = 256;

/// Bytes that may hold secrets (a key to install, a keyring listing): encoded as a list of
/// bytes, but `Debug` shows only their number, so a logged event or message never shows a key.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Opaque<const MAX: usize>(pub BoundedVec<u8, MAX>);

impl<const MAX: usize> Opaque<MAX> {
    /// The bytes, or None past `MAX` (they could not be encoded).
    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() <= MAX).then(|| Opaque(BoundedVec::new(bytes)))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0 .0
    }
}

impl<const MAX: usize> std::fmt::Debug for Opaque<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opaque({} bytes)", self.0 .0.len())
    }
}

impl<const MAX: usize> Encode for Opaque<MAX> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.0.encode(e)
    }
}

impl<C, const MAX: usize> Decode<C> for Opaque<MAX> {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        BoundedVec::decode(d).map(Opaque)
    }
}

impl<'de, C, const MAX: usize> bincode::BorrowDecode<'de, C> for Opaque<MAX> {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Self::decode(d)
    }
}

/// Names a query cluster-wide: the asker, and the asker's own counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct QueryId {
    pub asker: NodeName,
    pub seq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Query {
    pub id: QueryId,
    /// What is asked (`node::query::QueryKind`); a number, so that a node that does not know
    /// a newer kind can still say so in its answer.
    pub kind: u16,
    /// How long the asker collects answers, in milliseconds; receivers forget the query's id
    /// after about as long.
    pub timeout_ms: u32,
    pub payload: Opaque<QUERY_PAYLOAD_MAX_BYTES>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct QueryAnswer {
    pub id: QueryId,
    /// Who answers; the asker checks the datagram came from this member's address.
    pub responder: NodeName,
    pub outcome: QueryOutcome,
}

/// What a member did with a query.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum QueryOutcome {
    /// Applied; the kind's answer (a keyring: its keys, the primary first).
    Done(Opaque<ANSWER_PAYLOAD_MAX_BYTES>),
    /// Not applied, and why.
    Refused(BoundedString<ANSWER_ERROR_MAX_BYTES>),
    /// The member does not know this kind of query (an older build).
    UnknownKind,
}

/// Most origin summaries in one digest message (the MTU binds first).
pub const DIGEST_ORIGINS_MAX: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct RegistrySync {
    pub digest: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct OriginSummary {
    pub origin: NodeName,
    pub count: u32,
    pub hash: u64,
}

/// The sender's summaries of every origin in `[from, to)` (None: unbounded), sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RegistryDigest {
    /// True on the first leg: the receiver sends its own digest back.
    pub reply_wanted: bool,
    pub from: Option<NodeName>,
    pub to: Option<NodeName>,
    pub origins: BoundedVec<OriginSummary, DIGEST_ORIGINS_MAX>,
}

/// Buckets an origin's entries are split into when its summaries differ: the second level of
/// the registry's anti-entropy exchange, so that one missing entry costs a bucket's worth of
/// entries, not the origin's. A wire constant: every node must split the same way, and 64
/// bucket summaries (13 bytes each at most) fit one datagram with room to spare.
pub const BUCKETS: usize = 64;

/// Bucket summaries in one [`RegistryBuckets`]: one per bucket.
pub const BUCKETS_MAX: usize = BUCKETS;

/// One bucket of one origin's entries: how many, and the sum of their (id, version) hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct BucketSummary {
    pub count: u32,
    pub hash: u64,
}

/// The sender's summary of each bucket of `origin`'s entries, bucket `b` at position `b`
/// (positions past the end are empty buckets).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RegistryBuckets {
    /// True on the first leg: the receiver sends its own buckets of this origin back.
    pub reply_wanted: bool,
    pub origin: NodeName,
    pub buckets: BoundedVec<BucketSummary, BUCKETS_MAX>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Ping {
    pub seq: Seq,
    /// Whom the sender believes it is pinging; a node by another name does not answer.
    pub target: NodeName,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Ack {
    pub seq: Seq,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PingReq {
    pub seq: Seq,
    pub target: NodeName,
    pub target_addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Nack {
    pub seq: Seq,
}

/// Everything a member says about itself when it is alive.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Profile {
    /// The address it advertises (may differ from the one it binds).
    pub addr: SocketAddr,
    /// Its data centre.
    pub dc: Label,
    pub tags: BoundedVec<Tag, TAGS_MAX>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Tag {
    pub key: Label,
    pub value: BoundedString<TAG_VALUE_MAX_BYTES>,
}

/// The SWIM states a member moves through. `by` names who made the claim, so that Lifeguard
/// can count independent confirmations of a suspicion.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Claim {
    Alive,
    Suspect { by: NodeName },
    Failed { by: NodeName },
    Left,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct MemberUpdate {
    pub name: NodeName,
    pub incarnation: Incarnation,
    pub claim: Claim,
    /// Carried with every claim so that whoever first hears of a member can reach it.
    pub profile: Profile,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PushPull {
    /// True on the first leg: the receiver answers with its own table.
    pub reply_wanted: bool,
    pub members: BoundedVec<MemberUpdate, PUSH_PULL_MEMBERS_MAX>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct SyncProbe {
    /// Order-independent digest of (name, incarnation, state) of every member the sender knows.
    pub members_digest: u64,
}

/// What kind of message: one per variant of [`Message`], in wire order. Per-kind counters are
/// arrays indexed by [`MessageKind::index`], so counting a message is one increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageKind {
    Ping,
    Ack,
    PingReq,
    Nack,
    Member,
    PushPull,
    SyncProbe,
    Entry,
    RegistrySync,
    RegistryDigest,
    RegistryBuckets,
    Query,
    QueryAnswer,
}

impl MessageKind {
    /// Every kind, in wire order (`ALL[k.index()] == k`).
    pub const ALL: [MessageKind; 13] = [
        MessageKind::Ping,
        MessageKind::Ack,
        MessageKind::PingReq,
        MessageKind::Nack,
        MessageKind::Member,
        MessageKind::PushPull,
        MessageKind::SyncProbe,
        MessageKind::Entry,
        MessageKind::RegistrySync,
        MessageKind::RegistryDigest,
        MessageKind::RegistryBuckets,
        MessageKind::Query,
        MessageKind::QueryAnswer,
    ];

    /// Its position in [`MessageKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name for logs and metric labels (`hera_messages_total{kind=...}`).
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Ping => "ping",
            MessageKind::Ack => "ack",
            MessageKind::PingReq => "ping_req",
            MessageKind::Nack => "nack",
            MessageKind::Member => "member",
            MessageKind::PushPull => "push_pull",
            MessageKind::SyncProbe => "sync_probe",
            MessageKind::Entry => "entry",
            MessageKind::RegistrySync => "registry_sync",
            MessageKind::RegistryDigest => "registry_digest",
            MessageKind::RegistryBuckets => "registry_buckets",
            MessageKind::Query => "query",
            MessageKind::QueryAnswer => "query_answer",
        }
    }
}

impl Message {
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Ping(_) => MessageKind::Ping,
            Message::Ack(_) => MessageKind::Ack,
            Message::PingReq(_) => MessageKind::PingReq,
            Message::Nack(_) => MessageKind::Nack,
            Message::Member(_) => MessageKind::Member,
            Message::PushPull(_) => MessageKind::PushPull,
            Message::SyncProbe(_) => MessageKind::SyncProbe,
            Message::Entry(_) => MessageKind::Entry,
            Message::RegistrySync(_) => MessageKind::RegistrySync,
            Message::RegistryDigest(_) => MessageKind::RegistryDigest,
            Message::RegistryBuckets(_) => MessageKind::RegistryBuckets,
            Message::Query(_) => MessageKind::Query,
            Message::QueryAnswer(_) => MessageKind::QueryAnswer,
        }
    }
}

#[cfg(test)]
mod kind_tests {
    use super::MessageKind;

    #[test]
    fn all_is_in_index_order_with_distinct_names() {
        for (i, k) in MessageKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        let names: std::collections::BTreeSet<_> =
            MessageKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), MessageKind::ALL.len());
    }
}
