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
    /// The datagram's cluster label (its hash; None: unlabelled) is not ours: another
    /// cluster's, reaching us through a shared key or a reused address.
    LabelMismatch {
        ours: Option<u32>,
        theirs: Option<u32>,
    },
    /// A sealed datagram seen before, or sent too long ago (or too far ahead) to be checked
    /// against its sender's window.
    Replayed { why: Replay },
}

/// Why a sealed datagram was refused as a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Its counter was already accepted from its sender.
    Duplicate,
    /// Its counter is further behind its sender's newest than the window remembers.
    BehindWindow,
    /// Sent more than the time window before our clock (a replay from a forgotten boot).
    TooOld { age_s: u64 },
    /// Sent more than the time window after our clock: a sender with a wrong clock.
    FromTheFuture { ahead_s: u64 },
    /// It carries this node's own sender id: one of our datagrams reflected back.
    OwnSender,
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
    LabelMismatch,
    Replayed,
}

impl DecodeErrorKind {
    /// Every kind (`ALL[k.index()] == k`).
    pub const ALL: [DecodeErrorKind; 16] = [
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
        DecodeErrorKind::LabelMismatch,
        DecodeErrorKind::Replayed,
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
            DecodeErrorKind::LabelMismatch => "label_mismatch",
            DecodeErrorKind::Replayed => "replayed",
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
            DecodeError::LabelMismatch { .. } => DecodeErrorKind::LabelMismatch,
            DecodeError::Replayed { .. } => DecodeErrorKind::Replayed,
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
            B::Other(crate::bounded::OVERSIZED) => DecodeError::Oversized,
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
                    "protocol version {version} is not supported (this node speaks {}..={})",
                    super::MAJOR_MIN,
                    super::MAJOR_MAX
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
            DecodeError::LabelMismatch { ours, theirs } => {
                let show = |hash: &Option<u32>| match hash {
                    Some(hash) => format!("label hash {hash:#010x}"),
                    None => "no label".to_string(),
                };
                write!(
                    f,
                    "cluster label mismatch: the datagram has {}, this node {}: another \
                     cluster shares this node's key or addresses (set the same cluster_label \
                     on every node of one cluster)",
                    show(theirs),
                    show(ours)
                )
            }
            DecodeError::Replayed { why } => match why {
                Replay::Duplicate => write!(f, "replayed datagram: already received"),
                Replay::BehindWindow => {
                    write!(
                        f,
                        "replayed datagram: older than its sender's replay window"
                    )
                }
                Replay::TooOld { age_s } => write!(
                    f,
                    "replayed datagram: sent {age_s} s ago, beyond the time window (or this \
                     node's clock is far ahead)"
                ),
                Replay::FromTheFuture { ahead_s } => write!(
                    f,
                    "datagram sent {ahead_s} s ahead of this node's clock, beyond the time \
                     window: the sender's clock is wrong"
                ),
                Replay::OwnSender => {
                    write!(f, "replayed datagram: carries this node's own sender id")
                }
            },
        }
    }
}

impl std::error::Error for DecodeError {}
