// Reads values from outside the process: arithmetic is checked (issue 12), or allowed where it
// stands with its reason.
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
//! Bincode helpers that cap what a hostile length prefix can make us allocate.
//!
//! bincode's own `with_limit` counts decoded memory, not wire bytes: a 20-byte datagram that
//! claims a 60,000-byte string would pass a 64 KiB limit and allocate before the read fails.
//! These helpers check every declared length against a per-field maximum and, for text, against
//! the bytes actually left in the datagram before allocating anything.

use bincode::de::read::Reader;
use bincode::de::{Decode, Decoder};
use bincode::enc::write::Writer;
use bincode::enc::{Encode, Encoder};
use bincode::error::{DecodeError, EncodeError};

/// `DecodeError::Other` payloads, mapped back to typed errors by [`super::DecodeError`].
pub const OVERSIZED: &str = "oversized collection";
pub const INVALID_NAME: &str = "invalid name";
pub const INVALID_VALUE: &str = "invalid value";

pub fn encode_str<E: Encoder>(s: &str, e: &mut E) -> Result<(), EncodeError> {
    (s.len() as u64).encode(e)?;
    e.writer().write(s.as_bytes())
}

/// Decode a length-prefixed UTF-8 string of at most `max` bytes.
pub fn decode_str<D: Decoder>(d: &mut D, max: usize) -> Result<String, DecodeError> {
    decode_str_with(d, max, |s| Ok(s.to_owned()))
}

/// Decode a length-prefixed UTF-8 string of at most `max` bytes and hand it, borrowed, to
/// `build`: names are built straight from the datagram's bytes, with no interim `String`.
pub fn decode_str_with<D: Decoder, T>(
    d: &mut D,
    max: usize,
    build: impl FnOnce(&str) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let len = decode_len(d, max)?;
    d.claim_bytes_read(len)?;
    // Only a slice reader can peek; it tells us whether the bytes are there before we allocate.
    if let Some(bytes) = d.reader().peek_read(len) {
        let s = std::str::from_utf8(bytes).map_err(|inner| DecodeError::Utf8 { inner })?;
        let value = build(s)?;
        d.reader().consume(len);
        return Ok(value);
    }
    let mut buf = vec![0u8; len];
    d.reader().read(&mut buf)?;
    let s = std::str::from_utf8(&buf).map_err(|inner| DecodeError::Utf8 { inner })?;
    build(s)
}

/// Decode a collection length and refuse one above `max` before anything is allocated.
pub fn decode_len<D: Decoder>(d: &mut D, max: usize) -> Result<usize, DecodeError> {
    let len = u64::decode(d)?;
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(DecodeError::Other(OVERSIZED)),
    }
}

/// Most bytes a collection reserves up front on the word of its length prefix alone.
pub(crate) const PREALLOCATE_MAX_BYTES: usize = 1024;

/// A `Vec` that decodes at most `MAX` elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedVec<T, const MAX: usize>(pub Vec<T>);

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        BoundedVec(Vec::new())
    }
}

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    pub fn new(items: Vec<T>) -> Self {
        BoundedVec(items)
    }
}

impl<T: Encode, const MAX: usize> Encode for BoundedVec<T, MAX> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        if self.0.len() > MAX {
            return Err(EncodeError::Other(OVERSIZED));
        }
        (self.0.len() as u64).encode(e)?;
        self.0.iter().try_for_each(|item| item.encode(e))
    }
}

impl<C, T: Decode<C>, const MAX: usize> Decode<C> for BoundedVec<T, MAX> {
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        let len = decode_len(d, MAX)?;
        d.claim_container_read::<T>(len)?;
        // A declared length is only a claim: reserve for what a small prefix costs, and let the
        // vector grow as elements actually decode (each one consumes datagram bytes).
        let mut items = Vec::with_capacity(
            len.min(
                PREALLOCATE_MAX_BYTES
                    .checked_div(std::mem::size_of::<T>())
                    .unwrap_or(PREALLOCATE_MAX_BYTES),
            ),
        );
        for _ in 0..len {
            d.unclaim_bytes_read(std::mem::size_of::<T>());
            items.push(T::decode(d)?);
        }
        Ok(BoundedVec(items))
    }
}

impl<'de, C, T: Decode<C>, const MAX: usize> bincode::BorrowDecode<'de, C> for BoundedVec<T, MAX> {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<Self, DecodeError> {
        Self::decode(d)
    }
}

/// Free text of at most `MAX` bytes (tag values, check output, metadata JSON).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BoundedString<const MAX: usize>(pub String);

impl<const MAX: usize> Encode for BoundedString<MAX> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        if self.0.len() > MAX {
            return Err(EncodeError::Other(OVERSIZED));
        }
        encode_str(&self.0, e)
    }
}

impl<C, const MAX: usize> Decode<C> for BoundedString<MAX> {
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        decode_str(d, MAX).map(BoundedString)
    }
}

impl<'de, C, const MAX: usize> bincode::BorrowDecode<'de, C> for BoundedString<MAX> {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<Self, DecodeError> {
        Self::decode(d)
    }
}
