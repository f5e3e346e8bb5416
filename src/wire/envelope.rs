//! The datagram envelope: fixed header, body of framed messages, CRC32.
//!
//! ```text
//! 0      2       3       4       5           6             [10]        +2
//! | "hr" | major | flags | minor | major_max | [label hash] | body len | frames ... | crc32 (LE) |
//! ```
//!
//! The first three bytes never change between versions, so any version tells a newer peer
//! from garbage. The body length is big-endian u16; the CRC32 (IEEE, crc32fast) covers the
//! cluster label's bytes (when labelled) and then every byte before it. A sealed datagram
//! (`flags::SEALED`, cluster key configured) has another layout after the header: `seal`.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};

use super::decode::{decode_frames, Decoded};
use super::error::DecodeError;
use super::label::{ClusterLabel, LABEL_HASH_BYTES};
use super::message::Message;

pub const MAGIC: [u8; 2] = *b"hr";
/// The major version this build writes. Majors do not interoperate: a datagram of another
/// major is refused as a whole (`UnsupportedVersion`), so a major changes only with a new
/// envelope or a change existing messages cannot absorb (see `docs/wire.md` §7).
pub const VERSION: u8 = 2;
/// The minor version of [`VERSION`] this build writes: minors interoperate (unknown message
/// kinds are skipped, fields appended to a message are ignored).
pub const MINOR: u8 = 1;
/// The majors this build decodes, advertised in every datagram's header (`major_max`) so that
/// a later build speaking several majors can pick the highest both sides speak.
pub const MAJOR_MIN: u8 = 2;
pub const MAJOR_MAX: u8 = 2;
/// Magic, major, flags, minor and major_max: the part of the header every datagram has.
pub const PREFIX_BYTES: usize = 6;
/// The body length that follows the header (and, sealed, is encrypted with the body).
pub const LENGTH_BYTES: usize = 2;
/// Header of a plain, unlabelled datagram, up to and including the body length.
pub const HEADER_BYTES: usize = PREFIX_BYTES + LENGTH_BYTES;
pub const CHECKSUM_BYTES: usize = 4;
/// Envelope overhead of a plain, unlabelled datagram.
pub const OVERHEAD_BYTES: usize = HEADER_BYTES + CHECKSUM_BYTES;
/// The largest UDP payload over IPv4; nothing larger can arrive, so nothing larger is accepted.
pub const DATAGRAM_MAX_BYTES: usize = 65_507;
/// Most messages (frames, skipped ones included) one datagram may carry.
pub const MESSAGES_MAX: usize = 255;
/// Decoded-memory ceiling for one message, on top of the per-field limits in `bounded`.
pub const DECODE_MEMORY_MAX_BYTES: usize = 256 * 1024;

/// Flag bits. v2 defines two; any other bit is refused (a minor may not add one).
pub mod flags {
    /// The body is sealed with the cluster key (see `docs/wire.md` §6).
    pub const SEALED: u8 = 0b0000_0001;
    /// The header carries the hash of a cluster label, bound in full by the CRC or the AEAD.
    pub const LABELED: u8 = 0b0000_0010;
    pub const KNOWN: u8 = SEALED | LABELED;
}

/// The one bincode configuration of the protocol: little-endian, varint integers, and a limit.
pub type WireConfig = Configuration<LittleEndian, Varint, Limit<DECODE_MEMORY_MAX_BYTES>>;

pub fn wire_config() -> WireConfig {
    bincode::config::standard().with_limit::<DECODE_MEMORY_MAX_BYTES>()
}

/// Encode one message as its frame: kind, payload length, payload (to be pushed into a
/// [`DatagramBuilder`]).
pub fn encode_message(message: &Message) -> Vec<u8> {
    // Encoding into a Vec fails only if a bounded field is over its limit; every constructor
    // of such a field in this crate checks first, so that would be a bug worth a loud failure.
    #[allow(clippy::expect_used)]
    let inner =
        bincode::encode_to_vec(message, wire_config()).expect("message fields within their limits");
    // bincode writes the variant index first: one byte for every kind below 251.
    let (kind, payload) = inner.split_at(1);
    debug_assert!(kind[0] <= 250, "kind numbers stay one-byte varints");
    encode_frame(u32::from(kind[0]), payload)
}

/// A frame of any kind around any payload: how a message is carried, and how a newer minor's
/// kinds look to this build.
pub fn encode_frame(kind: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 6);
    push_varint(&mut out, u64::from(kind));
    push_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// bincode's unsigned varint (`docs/wire.md` §2), shortest form.
fn push_varint(out: &mut Vec<u8>, value: u64) {
    if value <= 250 {
        out.push(value as u8);
    } else if let Ok(v) = u16::try_from(value) {
        out.push(251);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(value) {
        out.push(252);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// What a datagram's clear header says about its sender and layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sender's minor version of [`VERSION`].
    pub minor: u8,
    /// The highest major the sender decodes.
    pub major_max: u8,
    pub flags: u8,
    /// The hash of the sender's cluster label, if it has one.
    pub label_hash: Option<u32>,
}

impl Header {
    pub fn is_sealed(&self) -> bool {
        self.flags & flags::SEALED != 0
    }

    /// Bytes of the clear header: the prefix and, when labelled, the label hash.
    pub fn clear_bytes(&self) -> usize {
        PREFIX_BYTES + self.label_hash.map_or(0, |_| LABEL_HASH_BYTES)
    }
}

/// Check size, magic, version and flags, and read the clear header.
pub fn read_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    check_prefix(bytes)?;
    let too_short = DecodeError::TooShort { len: bytes.len() };
    let prefix = bytes.get(..PREFIX_BYTES).ok_or(too_short.clone())?;
    let flag_bits = prefix[3];
    if flag_bits & !flags::KNOWN != 0 {
        return Err(DecodeError::UnknownFlags { flags: flag_bits });
    }
    let label_hash = if flag_bits & flags::LABELED != 0 {
        let at = PREFIX_BYTES;
        let hash = bytes.get(at..at + LABEL_HASH_BYTES).ok_or(too_short)?;
        Some(u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]]))
    } else {
        None
    };
    Ok(Header {
        minor: prefix[4],
        major_max: prefix[5],
        flags: flag_bits,
        label_hash,
    })
}

/// A datagram from another cluster (or from a node with no label where we have one, or the
/// reverse) is refused before anything else is looked at.
pub fn check_label(header: &Header, ours: Option<&ClusterLabel>) -> Result<(), DecodeError> {
    let ours = ours.map(ClusterLabel::hash);
    if header.label_hash == ours {
        Ok(())
    } else {
        Err(DecodeError::LabelMismatch {
            ours,
            theirs: header.label_hash,
        })
    }
}

/// Packs messages into one datagram without exceeding a byte budget (the MTU).
#[derive(Clone, Debug)]
pub struct DatagramBuilder {
    buf: Vec<u8>,
    budget_bytes: usize,
    messages: usize,
    /// Where the body length goes; the messages follow it.
    len_at: usize,
    /// Bytes the finished datagram adds beyond `buf`: the CRC32, or the tag of a sealed one
    /// (so that sealing never pushes a datagram over the budget).
    trailer_bytes: usize,
    /// The CRC32 state after the cluster label's bytes (fresh when unlabelled).
    crc: crc32fast::Hasher,
}

impl DatagramBuilder {
    /// A plain, unlabelled datagram (CRC32 trailer) of at most `budget_bytes`.
    pub fn new(budget_bytes: usize) -> Self {
        DatagramBuilder::for_cluster(budget_bytes, false, None)
    }

    /// An unlabelled datagram to be sealed by [`super::Sealer::seal`]: at most `budget_bytes`
    /// once sealed.
    pub fn sealed(budget_bytes: usize) -> Self {
        DatagramBuilder::for_cluster(budget_bytes, true, None)
    }

    /// A datagram as a node of a cluster sends it: sealed or plain, with the cluster's label.
    pub fn for_cluster(budget_bytes: usize, sealed: bool, label: Option<&ClusterLabel>) -> Self {
        let mut flag_bits = 0;
        let mut clear_bytes = PREFIX_BYTES;
        if sealed {
            flag_bits |= flags::SEALED;
            clear_bytes += super::seal::SEAL_FIELDS_BYTES;
        }
        if label.is_some() {
            flag_bits |= flags::LABELED;
            clear_bytes += LABEL_HASH_BYTES;
        }
        let trailer_bytes = if sealed {
            super::seal::TAG_BYTES
        } else {
            CHECKSUM_BYTES
        };
        let len_at = clear_bytes;
        let budget_bytes = budget_bytes.clamp(
            len_at + LENGTH_BYTES + trailer_bytes + 1,
            DATAGRAM_MAX_BYTES,
        );
        let mut buf = Vec::with_capacity(budget_bytes);
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&[VERSION, flag_bits, MINOR, MAJOR_MAX]);
        let mut crc = crc32fast::Hasher::new();
        if let Some(label) = label {
            buf.extend_from_slice(&label.hash().to_le_bytes());
            crc.update(label.as_bytes());
        }
        // Sealed: the send time, sender id and counter, written by the sealer.
        buf.resize(len_at + LENGTH_BYTES, 0);
        DatagramBuilder {
            buf,
            budget_bytes,
            messages: 0,
            len_at,
            trailer_bytes,
            crc,
        }
    }

    /// Body bytes still free.
    pub fn remaining(&self) -> usize {
        self.budget_bytes
            .saturating_sub(self.buf.len() + self.trailer_bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    pub fn len(&self) -> usize {
        self.messages
    }

    /// Append one encoded message (a frame) if it fits; false leaves the datagram unchanged.
    #[must_use]
    pub fn try_push(&mut self, encoded: &[u8]) -> bool {
        if encoded.len() > self.remaining() || self.messages >= MESSAGES_MAX {
            return false;
        }
        self.buf.extend_from_slice(encoded);
        self.messages += 1;
        true
    }

    fn write_len(&mut self) {
        let body_len = (self.buf.len() - self.len_at - LENGTH_BYTES) as u16;
        self.buf[self.len_at..self.len_at + LENGTH_BYTES].copy_from_slice(&body_len.to_be_bytes());
    }

    /// Close a plain datagram: write the body length and the checksum. A builder made for
    /// sealing must go through [`super::Sealer::seal`] instead.
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        debug_assert!(self.buf[3] & flags::SEALED == 0, "seal a sealed builder");
        self.write_len();
        let mut crc = self.crc.clone();
        crc.update(&self.buf);
        self.buf.extend_from_slice(&crc.finalize().to_le_bytes());
        self.buf
    }

    /// Close the datagram for sealing: the header with `flags::SEALED`, room for the seal's
    /// clear fields, and the length-prefixed body, no checksum (the AEAD tag covers
    /// integrity). `wire::seal` fills the fields and encrypts in place.
    pub(crate) fn finish_for_sealing(mut self) -> Vec<u8> {
        debug_assert!(
            self.buf[3] & flags::SEALED != 0,
            "a builder made for sealing"
        );
        self.write_len();
        self.buf
    }
}

/// A datagram opened and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub header: Header,
    pub messages: Vec<Message>,
    /// Frames of kinds this build does not know (a newer minor's), skipped.
    pub skipped: u32,
}

/// Check the envelope of a plain, unlabelled datagram and decode every message in it (unknown
/// kinds skipped). Never panics; allocates no more than the datagram's own fields can justify.
pub fn decode_datagram(bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
    decode_plain(bytes, None).map(|d| d.messages)
}

/// Check the envelope of a plain datagram against our cluster label and decode it.
pub fn decode_plain(bytes: &[u8], label: Option<&ClusterLabel>) -> Result<Datagram, DecodeError> {
    let (header, body) = open_plain(bytes, label)?;
    let Decoded { messages, skipped } = decode_frames(body)?;
    Ok(Datagram {
        header,
        messages,
        skipped,
    })
}

/// Check magic, version, flags, length and checksum of a plain, unlabelled datagram; return
/// the body.
pub fn open_envelope(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    open_plain(bytes, None).map(|(_, body)| body)
}

/// Check magic, version, flags, label, length and checksum; return the header and the body.
pub fn open_plain<'a>(
    bytes: &'a [u8],
    label: Option<&ClusterLabel>,
) -> Result<(Header, &'a [u8]), DecodeError> {
    let header = read_header(bytes)?;
    if header.is_sealed() {
        // SEALED is defined, but a plain decoder holds no key: the keyring opens those first.
        return Err(DecodeError::UnknownFlags {
            flags: header.flags,
        });
    }
    check_label(&header, label)?;
    let len_at = header.clear_bytes();
    let overhead = len_at + LENGTH_BYTES + CHECKSUM_BYTES;
    if bytes.len() < overhead {
        return Err(DecodeError::TooShort { len: bytes.len() });
    }
    let body_len = usize::from(u16::from_be_bytes([bytes[len_at], bytes[len_at + 1]]));
    let expected_len = overhead + body_len;
    if bytes.len() < expected_len {
        return Err(DecodeError::Truncated {
            declared: expected_len,
            actual: bytes.len(),
        });
    }
    if bytes.len() > expected_len {
        return Err(DecodeError::TrailingBytes {
            extra: bytes.len() - expected_len,
        });
    }
    let crc_at = expected_len - CHECKSUM_BYTES;
    let carried = u32::from_le_bytes([
        bytes[crc_at],
        bytes[crc_at + 1],
        bytes[crc_at + 2],
        bytes[crc_at + 3],
    ]);
    let mut crc = crc32fast::Hasher::new();
    if let Some(label) = label {
        crc.update(label.as_bytes());
    }
    crc.update(&bytes[..crc_at]);
    let computed = crc.finalize();
    if carried != computed {
        return Err(DecodeError::Checksum {
            expected: carried,
            computed,
        });
    }
    Ok((header, &bytes[len_at + LENGTH_BYTES..crc_at]))
}

/// The checks every datagram shares: size, magic and major version. Every version starts
/// with the same three bytes, so garbage and newer peers are told apart the same way.
pub(crate) fn check_prefix(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() > DATAGRAM_MAX_BYTES {
        return Err(DecodeError::TooLong { len: bytes.len() });
    }
    if bytes.len() < 2 || bytes[..2] != MAGIC {
        let mut found = [0u8; 2];
        found[..bytes.len().min(2)].copy_from_slice(&bytes[..bytes.len().min(2)]);
        if bytes.len() < 2 {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        return Err(DecodeError::BadMagic { found });
    }
    // The version comes before the length check: a newer peer's datagram is told apart from
    // garbage even if its layout (and so its shortest datagram) differs from ours.
    match bytes.get(2) {
        None => Err(DecodeError::TooShort { len: bytes.len() }),
        Some(&version) if !(MAJOR_MIN..=MAJOR_MAX).contains(&version) => {
            Err(DecodeError::UnsupportedVersion { version })
        }
        Some(_) => Ok(()),
    }
}

/// The major to send a peer whose datagrams advertised `their_max` (None: not heard from
/// yet): the highest major both decode, or None if they share none. This build speaks one
/// major, so it is always [`VERSION`] when any; a build speaking two sends the lower to a peer
/// it has not heard from, and the higher once the peer's header shows it decodes it.
pub fn major_for(their_max: Option<u8>) -> Option<u8> {
    match their_max {
        None => Some(MAJOR_MIN),
        Some(theirs) if theirs >= MAJOR_MAX => Some(MAJOR_MAX),
        Some(theirs) if theirs >= MAJOR_MIN => Some(theirs),
        Some(_) => None,
    }
}
