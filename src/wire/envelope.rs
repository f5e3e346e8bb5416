//! The datagram envelope: fixed header, body of messages, CRC32.
//!
//! ```text
//! 0      2        3      4          6              6+len       10+len
//! | "hr" | version | flags | body len | messages ... | crc32 (LE) |
//! ```
//!
//! The body length is big-endian u16; the CRC32 (IEEE, crc32fast) covers every byte before it.
//! A sealed datagram (`flags::SEALED`, cluster key configured) has another layout: `seal`.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};

use super::decode::decode_body;
use super::error::DecodeError;
use super::message::Message;

pub const MAGIC: [u8; 2] = *b"hr";
pub const VERSION: u8 = 1;
pub const HEADER_BYTES: usize = 6;
pub const CHECKSUM_BYTES: usize = 4;
/// Envelope overhead of a plain datagram.
pub const OVERHEAD_BYTES: usize = HEADER_BYTES + CHECKSUM_BYTES;
/// The largest UDP payload over IPv4; nothing larger can arrive, so nothing larger is accepted.
pub const DATAGRAM_MAX_BYTES: usize = 65_507;
/// Most messages one datagram may carry; a 1,400-byte datagram holds far fewer.
pub const MESSAGES_MAX: usize = 255;
/// Decoded-memory ceiling for one message, on top of the per-field limits in `bounded`.
pub const DECODE_MEMORY_MAX_BYTES: usize = 256 * 1024;

/// Flag bits. v1 defines one: the body is sealed with the cluster key (see `docs/wire.md`).
pub mod flags {
    pub const SEALED: u8 = 0b0000_0001;
    pub const KNOWN: u8 = SEALED;
}

/// The one bincode configuration of the protocol: little-endian, varint integers, and a limit.
pub type WireConfig = Configuration<LittleEndian, Varint, Limit<DECODE_MEMORY_MAX_BYTES>>;

pub fn wire_config() -> WireConfig {
    bincode::config::standard().with_limit::<DECODE_MEMORY_MAX_BYTES>()
}

/// Encode one message into its body bytes (to be pushed into a [`DatagramBuilder`]).
pub fn encode_message(message: &Message) -> Vec<u8> {
    // Encoding into a Vec fails only if a bounded field is over its limit; every constructor
    // of such a field in this crate checks first, so that would be a bug worth a loud failure.
    bincode::encode_to_vec(message, wire_config()).expect("message fields within their limits")
}

/// Packs messages into one datagram without exceeding a byte budget (the MTU).
#[derive(Clone, Debug)]
pub struct DatagramBuilder {
    buf: Vec<u8>,
    budget_bytes: usize,
    messages: usize,
    /// Bytes the finished datagram adds beyond `buf`: the CRC32, or the nonce and tag of a
    /// sealed one (so that sealing never pushes a datagram over the budget).
    trailer_bytes: usize,
}

impl DatagramBuilder {
    /// A plain datagram (CRC32 trailer) of at most `budget_bytes`.
    pub fn new(budget_bytes: usize) -> Self {
        DatagramBuilder::with_trailer(budget_bytes, CHECKSUM_BYTES)
    }

    /// A datagram to be sealed by [`super::Sealer::seal`]: at most `budget_bytes` once sealed.
    pub fn sealed(budget_bytes: usize) -> Self {
        DatagramBuilder::with_trailer(budget_bytes, super::seal::SEAL_TRAILER_BYTES)
    }

    fn with_trailer(budget_bytes: usize, trailer_bytes: usize) -> Self {
        let budget_bytes = budget_bytes.clamp(HEADER_BYTES + trailer_bytes + 1, DATAGRAM_MAX_BYTES);
        let mut buf = Vec::with_capacity(budget_bytes);
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.push(0);
        buf.extend_from_slice(&[0, 0]);
        DatagramBuilder {
            buf,
            budget_bytes,
            messages: 0,
            trailer_bytes,
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

    /// Append one encoded message if it fits; false leaves the datagram unchanged.
    #[must_use]
    pub fn try_push(&mut self, encoded: &[u8]) -> bool {
        if encoded.len() > self.remaining() || self.messages >= MESSAGES_MAX {
            return false;
        }
        self.buf.extend_from_slice(encoded);
        self.messages += 1;
        true
    }

    /// Close the datagram: write the body length and the checksum.
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        let body_len = (self.buf.len() - HEADER_BYTES) as u16;
        self.buf[4..6].copy_from_slice(&body_len.to_be_bytes());
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }

    /// Close the datagram for sealing: header with `flags::SEALED` and the length-prefixed
    /// body, no checksum (the AEAD tag covers integrity). `wire::seal` encrypts it in place.
    pub(crate) fn finish_for_sealing(mut self) -> Vec<u8> {
        let body_len = (self.buf.len() - HEADER_BYTES) as u16;
        self.buf[3] = flags::SEALED;
        self.buf[4..6].copy_from_slice(&body_len.to_be_bytes());
        self.buf
    }
}

/// Check the envelope and decode every message in it. Never panics; allocates no more than the
/// datagram's own fields can justify.
pub fn decode_datagram(bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
    let body = open_envelope(bytes)?;
    decode_body(body)
}

/// Check magic, version, flags, length and checksum; return the body.
pub fn open_envelope(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    check_prefix(bytes)?;
    if bytes.len() < OVERHEAD_BYTES {
        return Err(DecodeError::TooShort { len: bytes.len() });
    }
    let flag_bits = bytes[3];
    if flag_bits != 0 {
        // SEALED is defined, but a plain decoder holds no key: the keyring opens those first.
        return Err(DecodeError::UnknownFlags { flags: flag_bits });
    }
    let body_len = u16::from_be_bytes([bytes[4], bytes[5]]) as usize;
    let expected_len = OVERHEAD_BYTES + body_len;
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
    let crc_at = HEADER_BYTES + body_len;
    let carried = u32::from_le_bytes([
        bytes[crc_at],
        bytes[crc_at + 1],
        bytes[crc_at + 2],
        bytes[crc_at + 3],
    ]);
    let computed = crc32fast::hash(&bytes[..crc_at]);
    if carried != computed {
        return Err(DecodeError::Checksum {
            expected: carried,
            computed,
        });
    }
    Ok(&bytes[HEADER_BYTES..crc_at])
}

/// The checks plain and sealed datagrams share: size, magic and version. Both layouts start
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
        Some(&version) if version != VERSION => Err(DecodeError::UnsupportedVersion { version }),
        Some(_) => Ok(()),
    }
}
