#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
//! The message decoder: a hand-written fast path for the kinds a node receives most, with the
//! bincode-derived decoder as the reference for everything else.
//!
//! Every datagram a node handles goes through here, and SWIM traffic is dominated by pings,
//! acks and piggybacked member updates: a full 1,400-byte gossip datagram carries fifty-odd
//! updates. The derived decoder spends most of its time in bincode's generic plumbing (a
//! decoder and a limit count per message, a `Result` per field, values moved through each
//! layer); the fast path reads the same bytes with one cursor and no intermediate copies.
//!
//! The two must never disagree, and the design makes that cheap to guarantee:
//!
//! - the fast path decodes only well-formed messages of the kinds it knows (`Ping` to
//!   `PushPull`, `SyncProbe`, `RegistrySync`); on anything else, or at the first byte it does
//!   not like, it gives up on that message and the reference decodes it from the start. So
//!   registry entries, digests and every error (its kind, and the `Truncated` byte counts) come
//!   from the reference, exactly as before;
//! - where the fast path does decode, it reads what the reference would: same varints, same
//!   per-field limits, same name rules (it builds names with the same constructors). The fuzz
//!   check `hera::fuzzing::check_decode` runs both on every input and asserts they agree;
//! - the reference's memory limit ([`super::DECODE_MEMORY_MAX_BYTES`]) cannot bind on these
//!   kinds (see `FAST_KINDS_MEMORY_BYTES`), so the fast path need not count.
//!
//! Over 600 lines with its tests: the decoder is about 460; the tests compare it, kind by
//! kind, with the bincode reference.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::envelope::{wire_config, DECODE_MEMORY_MAX_BYTES, MESSAGES_MAX};
use super::error::DecodeError;
use super::message::*;
use crate::bounded::{BoundedString, BoundedVec, PREALLOCATE_MAX_BYTES};
use crate::names::{Label, NodeName};
use crate::record::Entry;

/// Bytes of the smallest member update on the wire: a guess at how many messages a body holds,
/// to size the output once instead of growing it several times.
const TYPICAL_MESSAGE_BYTES: usize = 24;

/// The most the reference decoder can count against its memory limit while decoding one message
/// of a fast kind: a push-pull's claimed members (bincode claims the size of every element up
/// front), a member's claimed tags, and every string byte of the largest datagram.
const FAST_KINDS_MEMORY_BYTES: usize = PUSH_PULL_MEMBERS_MAX * std::mem::size_of::<MemberUpdate>()
    + TAGS_MAX * std::mem::size_of::<Tag>()
    + super::DATAGRAM_MAX_BYTES;
const _: () = assert!(FAST_KINDS_MEMORY_BYTES < DECODE_MEMORY_MAX_BYTES);

/// The messages of a body, and how many frames of unknown kinds it skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub messages: Vec<Message>,
    /// Frames of kinds this build does not know: a newer minor's messages, skipped whole.
    pub skipped: u32,
}

/// Decode the frames of a body that has passed the envelope checks.
pub fn decode_frames(body: &[u8]) -> Result<Decoded, DecodeError> {
    decode_messages(body, true)
}

/// The reference decoder alone (bincode's derived `Decode`), for the differential fuzz check
/// and the benches. Nodes use [`decode_frames`].
pub fn decode_frames_reference(body: &[u8]) -> Result<Decoded, DecodeError> {
    decode_messages(body, false)
}

/// The messages of a body, unknown kinds skipped (see [`decode_frames`]).
pub fn decode_body(body: &[u8]) -> Result<Vec<Message>, DecodeError> {
    decode_frames(body).map(|d| d.messages)
}

/// [`decode_frames_reference`]'s messages.
pub fn decode_body_reference(body: &[u8]) -> Result<Vec<Message>, DecodeError> {
    decode_frames_reference(body).map(|d| d.messages)
}

/// Each frame's message by the fast path where it can (`fast`), else by the reference. The
/// frame bounds every message: what a message leaves unread in its frame (fields a newer
/// minor appended) is ignored, and a frame of an unknown kind is skipped whole.
fn decode_messages(body: &[u8], fast: bool) -> Result<Decoded, DecodeError> {
    let mut messages = Vec::with_capacity(
        (body.len() / TYPICAL_MESSAGE_BYTES)
            .saturating_add(1)
            .min(MESSAGES_MAX),
    );
    let mut skipped = 0u32;
    let mut frames = 0usize;
    let mut at = 0usize;
    // What the fast path remembers (`last_dc`) spans frames.
    let mut last_dc = None;
    while at < body.len() {
        if frames == MESSAGES_MAX {
            return Err(DecodeError::TooManyMessages);
        }
        frames = frames.saturating_add(1);
        // Nearly every frame has a one-byte kind and length: read those inline.
        // `at` is within the body (at most 65,507 bytes): none of these sums can overflow.
        let (kind, payload, next) = match body.get(at..at.saturating_add(2)) {
            Some(&[kind, len]) if kind <= SINGLE_BYTE_MAX && len <= SINGLE_BYTE_MAX => {
                let end = at.saturating_add(2).saturating_add(usize::from(len));
                match body.get(at.saturating_add(2)..end) {
                    Some(payload) => (u32::from(kind), payload, end),
                    None => frame(body, at)?,
                }
            }
            _ => frame(body, at)?,
        };
        at = next;
        let decoded = if fast {
            let mut cursor = Cursor {
                bytes: payload,
                at: 0,
                last_dc: last_dc.take(),
            };
            let message = cursor.message(kind);
            last_dc = cursor.last_dc;
            message
        } else {
            None
        };
        match decoded {
            Some(message) => messages.push(message),
            None => match reference_message(kind, payload)? {
                Some(message) => messages.push(message),
                None => skipped = skipped.saturating_add(1),
            },
        }
    }
    Ok(Decoded { messages, skipped })
}

/// The frame at `at`: its kind, its payload, and where the next frame starts.
fn frame(body: &[u8], at: usize) -> Result<(u32, &[u8], usize), DecodeError> {
    let truncated = |needed: usize| DecodeError::Truncated {
        declared: needed,
        actual: body.len(),
    };
    let mut cursor = Cursor::new(body);
    cursor.at = at;
    let kind = cursor
        .frame_varint(U32_BYTE)
        .map_err(|needed| needed.map_or_else(|| invalid_frame("kind"), truncated))?;
    let len = cursor
        .frame_varint(U64_BYTE)
        .map_err(|needed| needed.map_or_else(|| invalid_frame("length"), truncated))?;
    let start = cursor.at;
    let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    if end > body.len() {
        return Err(truncated(end));
    }
    // The marker check above keeps the kind within u32.
    let kind = u32::try_from(kind).unwrap_or(u32::MAX);
    Ok((kind, &body[start..end], end))
}

fn invalid_frame(what: &str) -> DecodeError {
    DecodeError::InvalidField {
        detail: format!("frame {what}: invalid varint marker"),
    }
}

/// One message of `kind` by the reference decoder; None for a kind this build does not know.
/// The kind numbers are the variants' positions in [`Message`].
fn reference_message(kind: u32, payload: &[u8]) -> Result<Option<Message>, DecodeError> {
    fn one<T: bincode::Decode<()>>(payload: &[u8]) -> Result<T, DecodeError> {
        bincode::decode_from_slice::<T, _>(payload, wire_config())
            .map(|(value, _used)| value)
            .map_err(|e| DecodeError::from_bincode(e, payload.len()))
    }
    Ok(Some(match kind {
        0 => Message::Ping(one(payload)?),
        1 => Message::Ack(one(payload)?),
        2 => Message::PingReq(one(payload)?),
        3 => Message::Nack(one(payload)?),
        4 => Message::Member(one(payload)?),
        5 => Message::PushPull(one(payload)?),
        6 => Message::SyncProbe(one(payload)?),
        7 => Message::Entry(
            Entry::decode_frame(payload, wire_config())
                .map_err(|e| DecodeError::from_bincode(e, payload.len()))?,
        ),
        8 => Message::RegistrySync(one(payload)?),
        9 => Message::RegistryDigest(one(payload)?),
        10 => Message::RegistryBuckets(one(payload)?),
        11 => Message::Query(one(payload)?),
        12 => Message::QueryAnswer(one(payload)?),
        _ => return Ok(None),
    }))
}

/// A read position in a body. Every method returns `None` where the reference decoder would
/// fail (or where the fast path declines), and then the caller falls back to it from the start
/// of the message.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The last data-centre label read, and its bytes. A cluster spans a handful of data
    /// centres, so consecutive member updates nearly always carry the same label: comparing
    /// a few bytes and cloning costs far less than checking and copying them again.
    last_dc: Option<(&'a [u8], Label)>,
}

// bincode's varint markers (`bincode::varint`): a first byte up to 250 is the value itself.
const SINGLE_BYTE_MAX: u8 = 250;
const U16_BYTE: u8 = 251;
const U32_BYTE: u8 = 252;
const U64_BYTE: u8 = 253;

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor {
            bytes,
            at: 0,
            last_dc: None,
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let bytes = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }

    #[inline]
    fn u8(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        // Within the slice, so below usize::MAX.
        self.at = self.at.saturating_add(1);
        Some(byte)
    }

    /// A frame header's varint: `Err(Some(n))` if the body ends before its `n`th byte,
    /// `Err(None)` for a marker too wide for the field.
    fn frame_varint(&mut self, max_marker: u8) -> Result<u64, Option<usize>> {
        let first = *self
            .bytes
            .get(self.at)
            .ok_or(Some(self.at.saturating_add(1)))?;
        let width = match first {
            0..=SINGLE_BYTE_MAX => 0,
            U16_BYTE => 2,
            U32_BYTE => 4,
            U64_BYTE => 8,
            _ => return Err(None),
        };
        if first > SINGLE_BYTE_MAX && first > max_marker {
            return Err(None);
        }
        let end = self.at.saturating_add(1).saturating_add(width);
        if self.bytes.len() < end {
            return Err(Some(end));
        }
        self.varint(max_marker).ok_or(None)
    }

    /// A varint of at most `max_marker`'s width: wider forms are errors to the reference.
    /// Kept inline for the one-byte form (most lengths, kinds and small numbers).
    #[inline(always)]
    fn varint(&mut self, max_marker: u8) -> Option<u64> {
        let first = self.u8()?;
        if first <= SINGLE_BYTE_MAX {
            return Some(u64::from(first));
        }
        self.wide_varint(first, max_marker)
    }

    /// The rest of a varint whose first byte is a width marker.
    fn wide_varint(&mut self, marker: u8, max_marker: u8) -> Option<u64> {
        if marker > max_marker {
            return None;
        }
        match marker {
            U16_BYTE => self.array::<2>().map(|b| u64::from(u16::from_le_bytes(b))),
            U32_BYTE => self.array::<4>().map(|b| u64::from(u32::from_le_bytes(b))),
            _ => self.array::<8>().map(u64::from_le_bytes),
        }
    }

    #[inline(always)]
    fn u16(&mut self) -> Option<u16> {
        // A varint of at most the u16 marker's width holds a u16.
        self.varint(U16_BYTE).and_then(|v| u16::try_from(v).ok())
    }

    #[inline(always)]
    fn u32(&mut self) -> Option<u32> {
        self.varint(U32_BYTE).and_then(|v| u32::try_from(v).ok())
    }

    #[inline(always)]
    fn u64(&mut self) -> Option<u64> {
        self.varint(U64_BYTE)
    }

    #[inline]
    fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// A collection length of at most `max` (`bounded::decode_len`).
    #[inline(always)]
    fn len(&mut self, max: usize) -> Option<usize> {
        usize::try_from(self.u64()?).ok().filter(|&len| len <= max)
    }

    /// A length-prefixed string of at most `max` bytes, borrowed from the datagram.
    #[inline]
    fn str(&mut self, max: usize) -> Option<&'a str> {
        let len = self.len(max)?;
        std::str::from_utf8(self.take(len)?).ok()
    }

    /// A name straight from the datagram's bytes: checked once, by the names' own rules,
    /// with no interim `&str` check (a valid name is ASCII).
    #[inline(always)]
    fn node_name(&mut self) -> Option<NodeName> {
        let len = self.len(NodeName::MAX_BYTES)?;
        NodeName::from_ascii(self.take(len)?)
    }

    #[inline(always)]
    fn label(&mut self) -> Option<Label> {
        let len = self.len(Label::MAX_BYTES)?;
        Label::from_ascii(self.take(len)?)
    }

    /// A member's data centre: the label of the previous update if the bytes are the same.
    #[inline(always)]
    fn dc(&mut self) -> Option<Label> {
        let len = self.len(Label::MAX_BYTES)?;
        let bytes = self.take(len)?;
        if let Some((last, label)) = &self.last_dc {
            if *last == bytes {
                return Some(label.clone());
            }
        }
        let label = Label::from_ascii(bytes)?;
        self.last_dc = Some((bytes, label.clone()));
        Some(label)
    }

    #[inline(always)]
    fn socket_addr(&mut self) -> Option<SocketAddr> {
        match self.u32()? {
            0 => {
                let ip = Ipv4Addr::from(self.array::<4>()?);
                Some(SocketAddr::V4(SocketAddrV4::new(ip, self.u16()?)))
            }
            1 => {
                let ip = Ipv6Addr::from(self.array::<16>()?);
                Some(SocketAddr::V6(SocketAddrV6::new(ip, self.u16()?, 0, 0)))
            }
            _ => None,
        }
    }

    fn tag(&mut self) -> Option<Tag> {
        Some(Tag {
            key: self.label()?,
            value: BoundedString(self.str(TAG_VALUE_MAX_BYTES)?.to_owned()),
        })
    }

    /// A bounded vector. Reserves no more than `BoundedVec`'s own decoder would, nor more
    /// elements than the bytes left could hold (each takes at least one).
    fn vec<T, const MAX: usize>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<BoundedVec<T, MAX>> {
        let len = self.len(MAX)?;
        let mut items = Vec::with_capacity(
            len.min(self.bytes.len().saturating_sub(self.at)).min(
                PREALLOCATE_MAX_BYTES
                    .checked_div(std::mem::size_of::<T>())
                    .unwrap_or(MAX),
            ),
        );
        for _ in 0..len {
            items.push(item(self)?);
        }
        Some(BoundedVec(items))
    }

    /// A member's tags. Most members have none: that case allocates nothing and is kept
    /// inline.
    #[inline(always)]
    fn tags(&mut self) -> Option<BoundedVec<Tag, TAGS_MAX>> {
        if self.bytes.get(self.at) == Some(&0) {
            self.at = self.at.saturating_add(1);
            return Some(BoundedVec::default());
        }
        self.vec(Self::tag)
    }

    // Inlined into `message`: returning 144 bytes through memory costs more than the call.
    #[inline(always)]
    fn member_update(&mut self) -> Option<MemberUpdate> {
        let name = self.node_name()?;
        let incarnation = self.u32()?;
        let claim = match self.u32()? {
            0 => Claim::Alive,
            1 => Claim::Suspect {
                by: self.node_name()?,
            },
            2 => Claim::Failed {
                by: self.node_name()?,
            },
            3 => Claim::Left,
            _ => return None,
        };
        let addr = self.socket_addr()?;
        let dc = self.dc()?;
        let tags = self.tags()?;
        Some(MemberUpdate {
            name,
            incarnation: Incarnation::new(incarnation),
            claim,
            profile: Profile { addr, dc, tags },
        })
    }

    /// One message of a fast kind from its frame's payload; `None` for the other kinds and
    /// for anything malformed. The kind numbers are the variants' positions in [`Message`].
    #[inline(always)]
    fn message(&mut self, kind: u32) -> Option<Message> {
        Some(match kind {
            0 => Message::Ping(Ping {
                seq: self.u32()?,
                target: self.node_name()?,
            }),
            1 => Message::Ack(Ack { seq: self.u32()? }),
            2 => Message::PingReq(PingReq {
                seq: self.u32()?,
                target: self.node_name()?,
                target_addr: self.socket_addr()?,
            }),
            3 => Message::Nack(Nack { seq: self.u32()? }),
            4 => Message::Member(self.member_update()?),
            5 => Message::PushPull(PushPull {
                reply_wanted: self.bool()?,
                members: self.vec(Self::member_update)?,
            }),
            6 => Message::SyncProbe(SyncProbe {
                members_digest: self.u64()?,
            }),
            8 => Message::RegistrySync(RegistrySync {
                digest: self.u64()?,
            }),
            // 7 Entry, 9 RegistryDigest, 10 RegistryBuckets and unknown kinds: the reference.
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_message;

    /// The kind numbers the fast path hard-codes are the variants' positions.
    #[test]
    fn fast_kind_numbers_match_the_enum() {
        let ping = Message::Ping(Ping {
            seq: 1,
            target: NodeName::new("a").unwrap(),
        });
        let cases = [
            (0, ping),
            (1, Message::Ack(Ack { seq: 1 })),
            (3, Message::Nack(Nack { seq: 1 })),
            (
                5,
                Message::PushPull(PushPull {
                    reply_wanted: false,
                    members: BoundedVec::default(),
                }),
            ),
            (6, Message::SyncProbe(SyncProbe { members_digest: 1 })),
            (8, Message::RegistrySync(RegistrySync { digest: 1 })),
        ];
        for (kind, message) in cases {
            let bytes = encode_message(&message);
            assert_eq!(bytes[0], kind, "{message:?}");
            let (found, payload, next) = frame(&bytes, 0).unwrap();
            assert_eq!((found, next), (u32::from(kind), bytes.len()));
            let mut cursor = Cursor::new(payload);
            assert_eq!(cursor.message(found), Some(message));
            assert_eq!(cursor.at, payload.len());
        }
    }

    /// Varints in every width, including the forms too wide for their type, agree with the
    /// reference at every value boundary.
    #[test]
    fn varints_agree_with_bincode() {
        let values = [
            0u64,
            250,
            251,
            255,
            65_535,
            65_536,
            u32::MAX as u64,
            u64::MAX,
        ];
        for v in values {
            let bytes = bincode::encode_to_vec(v, wire_config()).unwrap();
            let reference = |bytes: &[u8]| {
                (
                    bincode::decode_from_slice::<u16, _>(bytes, wire_config()).ok(),
                    bincode::decode_from_slice::<u32, _>(bytes, wire_config()).ok(),
                    bincode::decode_from_slice::<u64, _>(bytes, wire_config()).ok(),
                )
            };
            let fast = |bytes: &[u8]| {
                let read = |f: fn(&mut Cursor) -> Option<u64>| {
                    let mut c = Cursor::new(bytes);
                    f(&mut c).map(|v| (v, c.at))
                };
                let mut c = Cursor::new(bytes);
                let u16s = c.u16().map(|v| (v, c.at));
                let mut c = Cursor::new(bytes);
                let u32s = c.u32().map(|v| (v, c.at));
                (u16s, u32s, read(|c| c.u64()))
            };
            assert_eq!(fast(&bytes), reference(&bytes), "{v}");
            for marker in [254u8, 255] {
                let odd = [
                    marker, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                ];
                assert_eq!(fast(&odd), reference(&odd), "marker {marker}");
            }
        }
    }

    /// The data-centre memo spans messages: repeated, changed (same length or not) and
    /// refused labels, alone, in push-pulls and after a message the reference decodes, all as
    /// the reference says, including after single-byte edits.
    #[test]
    fn data_centres_of_consecutive_updates_decode_as_the_reference_says() {
        let update = |name: &str, dc: &str| MemberUpdate {
            name: NodeName::new(name).unwrap(),
            incarnation: Incarnation::new(1),
            claim: Claim::Alive,
            profile: Profile {
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 7946)),
                dc: Label::new(dc).unwrap(),
                tags: BoundedVec::default(),
            },
        };
        let mut body = Vec::new();
        for (name, dc) in [
            ("a", "dc1"),
            ("b", "dc1"),
            ("c", "dc2"),
            ("d", "dc-east"),
            ("e", "dc2"),
        ] {
            body.extend(encode_message(&Message::Member(update(name, dc))));
        }
        body.extend(encode_message(&Message::PushPull(PushPull {
            reply_wanted: true,
            members: BoundedVec::new(vec![update("f", "dc2"), update("g", "dc3")]),
        })));
        // A kind only the reference decodes, between two updates from the same data centre.
        body.extend(encode_message(&Message::RegistryDigest(RegistryDigest {
            reply_wanted: false,
            from: None,
            to: None,
            origins: BoundedVec::default(),
        })));
        body.extend(encode_message(&Message::Member(update("h", "dc3"))));
        let decoded = decode_body(&body).unwrap();
        assert_eq!(decoded, decode_body_reference(&body).unwrap());
        assert_eq!(decoded.len(), 8);
        for at in 0..body.len() {
            for byte in [0, 1, b'1', b'2', b'_', b' ', 0x80, 0xff] {
                let mut edited = body.clone();
                edited[at] = byte;
                assert_eq!(
                    decode_body(&edited),
                    decode_body_reference(&edited),
                    "{edited:02x?}"
                );
            }
        }
    }

    /// Every valid message kind, then every single-byte edit and every cut of each: the fast
    /// path and the reference agree, on values, on errors and on the bytes consumed.
    #[test]
    fn edits_and_cuts_decode_as_the_reference_says() {
        let mut bodies = Vec::new();
        for kind in 0..8u8 {
            for b in [0u8, 0x55, 0xaa, 0xff] {
                let message = crate::fuzzing::valid_message(kind, 300, b);
                bodies.push(encode_message(&message));
            }
        }
        let with_tags = Message::Member(MemberUpdate {
            name: NodeName::new("n-1").unwrap(),
            incarnation: Incarnation::new(70_000),
            claim: Claim::Alive,
            profile: Profile {
                addr: SocketAddr::from((Ipv6Addr::LOCALHOST, 7946)),
                dc: Label::new("dc").unwrap(),
                tags: BoundedVec::new(vec![Tag {
                    key: Label::new("k").unwrap(),
                    value: BoundedString("v\u{e9}".into()),
                }]),
            },
        });
        bodies.push(encode_message(&with_tags));
        bodies.push(encode_message(&Message::RegistrySync(RegistrySync {
            digest: u64::MAX,
        })));
        let agree = |body: &[u8]| {
            assert_eq!(
                decode_body(body),
                decode_body_reference(body),
                "{body:02x?}"
            );
        };
        for body in &bodies {
            agree(body);
            for cut in 0..body.len() {
                agree(&body[..cut]);
            }
            for at in 0..body.len() {
                for byte in [
                    0, 1, 2, 3, 4, 0x7f, 0x80, 0xc3, 250, 251, 252, 253, 254, 255,
                ] {
                    let mut edited = body.clone();
                    edited[at] = byte;
                    agree(&edited);
                }
            }
        }
    }
}
