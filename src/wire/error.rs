//! Why a datagram was rejected. The sender is at fault in every case; the node's state is untouched.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the fixed header and checksum.
    TooShort { len: usize },
    /// Larger than any datagram we accept.
    TooLong { len: usize },
    /// Not a hera datagram at all.
    BadMagic { found: [u8; 2] },
    /// A hera datagram of a version this node does not speak (a newer peer, most likely).
    UnsupportedVersion { version: u8 },
    /// Flag bits this version does not define, or a sealed datagram where none was expected.
    UnknownFlags { flags: u8 },
    /// The body is shorter than its declared length, or a message runs past its end.
    Truncated { declared: usize, actual: usize },
    /// Bytes after the declared body and checksum.
    TrailingBytes { extra: usize },
    /// The CRC32 does not match: corrupted in flight.
    Checksum { expected: u32, computed: u32 },
    /// Sealed with a key we do not hold, or tampered with.
    Authentication,
    /// A plain datagram reached a node that holds a cluster key: it is refused, since anyone
    /// could have sent it.
    Unsealed,
    /// A collection or string longer than its limit, or decoding would need too much memory.
    Oversized,
    /// A message kind (or enum variant) this version does not know.
    UnknownKind { kind: u32 },
    /// More messages than one datagram may carry.
    TooManyMessages,
    /// A field that decodes but is not valid (a bad name, invalid UTF-8, a bad value).
    InvalidField { detail: String },
}

/// The kind of a [`DecodeError`], without its details: per-kind counters are arrays indexed by
/// [`DecodeErrorKind::index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DecodeErrorKind {
    TooShort,
    TooLong,
    BadMagic,
    UnsupportedVersion,
    UnknownFlags,
    Truncated,
    TrailingBytes,
    Checksum,
    Authentication,
    Unsealed,
    Oversized,
    UnknownKind,
    TooManyMessages,
    InvalidField,
}

impl DecodeErrorKind {
    /// Every kind (`ALL[k.index()] == k`).
    pub const ALL: [DecodeErrorKind; 14] = [
        DecodeErrorKind::TooShort,
        DecodeErrorKind::TooLong,
        DecodeErrorKind::BadMagic,
        DecodeErrorKind::UnsupportedVersion,
        DecodeErrorKind::UnknownFlags,
        DecodeErrorKind::Truncated,
        DecodeErrorKind::TrailingBytes,
        DecodeErrorKind::Checksum,
        DecodeErrorKind::Authentication,
        DecodeErrorKind::Unsealed,
        DecodeErrorKind::Oversized,
        DecodeErrorKind::UnknownKind,
        DecodeErrorKind::TooManyMessages,
        DecodeErrorKind::InvalidField,
    ];

    /// Its position in [`DecodeErrorKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A stable label for metrics: `hera_decode_errors_total{kind=...}`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DecodeErrorKind::TooShort => "too_short",
            DecodeErrorKind::TooLong => "too_long",
            DecodeErrorKind::BadMagic => "bad_magic",
            DecodeErrorKind::UnsupportedVersion => "unsupported_version",
            DecodeErrorKind::UnknownFlags => "unknown_flags",
            DecodeErrorKind::Truncated => "truncated",
            DecodeErrorKind::TrailingBytes => "trailing_bytes",
            DecodeErrorKind::Checksum => "checksum",
            DecodeErrorKind::Authentication => "authentication",
            DecodeErrorKind::Unsealed => "unsealed",
            DecodeErrorKind::Oversized => "oversized",
            DecodeErrorKind::UnknownKind => "unknown_kind",
            DecodeErrorKind::TooManyMessages => "too_many_messages",
            DecodeErrorKind::InvalidField => "invalid_field",
        }
    }
}

impl DecodeError {
    pub fn kind(&self) -> DecodeErrorKind {
        match self {
            DecodeError::TooShort { .. } => DecodeErrorKind::TooShort,
            DecodeError::TooLong { .. } => DecodeErrorKind::TooLong,
            DecodeError::BadMagic { .. } => DecodeErrorKind::BadMagic,
            DecodeError::UnsupportedVersion { .. } => DecodeErrorKind::UnsupportedVersion,
            DecodeError::UnknownFlags { .. } => DecodeErrorKind::UnknownFlags,
            DecodeError::Truncated { .. } => DecodeErrorKind::Truncated,
            DecodeError::TrailingBytes { .. } => DecodeErrorKind::TrailingBytes,
            DecodeError::Checksum { .. } => DecodeErrorKind::Checksum,
            DecodeError::Authentication => DecodeErrorKind::Authentication,
            DecodeError::Unsealed => DecodeErrorKind::Unsealed,
            DecodeError::Oversized => DecodeErrorKind::Oversized,
            DecodeError::UnknownKind { .. } => DecodeErrorKind::UnknownKind,
            DecodeError::TooManyMessages => DecodeErrorKind::TooManyMessages,
            DecodeError::InvalidField { .. } => DecodeErrorKind::InvalidField,
        }
    }

    /// Map bincode's error for a message whose body spans `declared` bytes of which `actual`
    /// were present.
    pub(crate) fn from_bincode(e: bincode::error::DecodeError, body_len: usize) -> Self {
        use bincode::error::DecodeError as B;
        match e {
            B::UnexpectedEnd { additional } => DecodeError::Truncated {
                declared: body_len + additional,
                actual: body_len,
            },
            B::LimitExceeded => DecodeError::Oversized,
            B::Other(super::bounded::OVERSIZED) => DecodeError::Oversized,
            B::UnexpectedVariant { found, .. } => DecodeError::UnknownKind { kind: found },
            B::OutsideUsizeRange(_) => DecodeError::Oversized,
            other => DecodeError::InvalidField {
                detail: other.to_string(),
            },
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort { len } => write!(f, "datagram of {len} bytes is too short"),
            DecodeError::TooLong { len } => write!(f, "datagram of {len} bytes is too long"),
            DecodeError::BadMagic { found } => write!(f, "bad magic {found:02x?}: not hera"),
            DecodeError::UnsupportedVersion { version } => {
                write!(
                    f,
                    "protocol version {version} is not supported (this node speaks 1)"
                )
            }
            DecodeError::UnknownFlags { flags } => write!(f, "unknown flags {flags:#04x}"),
            DecodeError::Truncated { declared, actual } => {
                write!(f, "truncated: needs {declared} bytes, has {actual}")
            }
            DecodeError::TrailingBytes { extra } => write!(f, "{extra} trailing bytes"),
            DecodeError::Checksum { expected, computed } => {
                write!(
                    f,
                    "checksum mismatch: carried {expected:#010x}, computed {computed:#010x}"
                )
            }
            DecodeError::Authentication => {
                write!(f, "authentication failed: unknown key or tampered")
            }
            DecodeError::Unsealed => {
                write!(f, "plain datagram refused: this cluster seals its gossip")
            }
            DecodeError::Oversized => write!(f, "a collection exceeds its size limit"),
            DecodeError::UnknownKind { kind } => write!(f, "unknown message kind {kind}"),
            DecodeError::TooManyMessages => write!(f, "too many messages in one datagram"),
            DecodeError::InvalidField { detail } => write!(f, "invalid field: {detail}"),
        }
    }
}

impl std::error::Error for DecodeError {}
