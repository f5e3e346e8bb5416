//! Validated names: parse, don't validate.
//!
//! A value of these types is always well-formed, whether it came from the config, the HTTP API
//! or a datagram, so the rest of the code never re-checks a name.

use std::fmt;
use std::str::FromStr;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty {
        what: &'static str,
    },
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    BadCharacter {
        what: &'static str,
        ch: char,
        /// The punctuation this kind of name allows besides ASCII letters and digits.
        allowed: &'static str,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty { what } => write!(f, "{what} must not be empty"),
            NameError::TooLong { what, len, max } => {
                write!(f, "{what} is {len} bytes long, the limit is {max}")
            }
            NameError::BadCharacter { what, ch, allowed } => write!(
                f,
                "{what} may contain only ASCII letters, digits and {allowed:?}, not {ch:?}"
            ),
        }
    }
}

impl std::error::Error for NameError {}

fn check(what: &'static str, s: &str, max: usize, allowed: &'static str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { what });
    }
    if s.len() > max {
        return Err(NameError::TooLong {
            what,
            len: s.len(),
            max,
        });
    }
    // Byte by byte: every allowed character is ASCII, so a name that passes is ASCII (and a
    // multi-byte character fails on its first byte). Names arrive in every datagram; this is
    // on the decoder's hot path.
    let allowed_byte = |b: &u8| b.is_ascii_alphanumeric() || allowed.as_bytes().contains(b);
    if s.as_bytes().iter().all(allowed_byte) {
        return Ok(());
    }
    let ch = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || allowed.contains(*c)))
        // A byte failed, so a character does; the replacement character is never shown.
        .unwrap_or(char::REPLACEMENT_CHARACTER);
    Err(NameError::BadCharacter { what, ch, allowed })
}

/// The bytes a name may hold: ASCII letters, digits and `allowed` (all ASCII).
const fn allowed_bytes(allowed: &str) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let allowed = allowed.as_bytes();
    let mut i = 0;
    while i < allowed.len() {
        assert!(allowed[i].is_ascii(), "allowed punctuation is ASCII");
        table[allowed[i] as usize] = true;
        i += 1;
    }
    table
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $max:expr) => {
        name_type!($(#[$doc])* $ty, $what, $max, "._-");
    };
    ($(#[$doc:meta])* $ty:ident, $what:literal, $max:expr, $allowed:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(CompactString);

        impl $ty {
            /// The longest accepted name, in bytes.
            pub const MAX_BYTES: usize = $max;
            const WHAT: &'static str = $what;
            /// Punctuation allowed besides ASCII letters and digits.
            const ALLOWED: &'static str = $allowed;
            /// Which bytes a name may hold: one lookup a byte on the decoder's hot path.
            const BYTES: [bool; 256] = allowed_bytes($allowed);

            pub fn new(s: &str) -> Result<Self, NameError> {
                check(Self::WHAT, s, Self::MAX_BYTES, Self::ALLOWED)?;
                Ok($ty(CompactString::from(s)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A name this crate checked when it first took it in and has kept as text since
            /// (`swim::members` keeps node names in an arena): not checked again.
            #[allow(dead_code)] // the member table keeps node names only
            pub(crate) fn from_checked(s: &str) -> Self {
                debug_assert!(check(Self::WHAT, s, Self::MAX_BYTES, Self::ALLOWED).is_ok());
                $ty(CompactString::from(s))
            }

            /// A name from raw bytes (a datagram's), or `None` where [`Self::new`] would
            /// refuse them. The decoder's fast path: one pass over the bytes, no error built.
            #[inline(always)]
            #[allow(dead_code)] // the decoder reads node names and labels, not every kind
            pub(crate) fn from_ascii(bytes: &[u8]) -> Option<Self> {
                let ok = !bytes.is_empty()
                    && bytes.len() <= Self::MAX_BYTES
                    && bytes.iter().all(|&b| Self::BYTES[usize::from(b)]);
                if !ok {
                    return None;
                }
                // SAFETY: every byte passed `Self::BYTES`, which admits ASCII bytes only
                // (`allowed_bytes` asserts it when the table is built, at compile time), and
                // ASCII is UTF-8. The checked conversion was 17% of decoding a full datagram.
                #[allow(unsafe_code)]
                let s = unsafe { std::str::from_utf8_unchecked(bytes) };
                // `try_new`, not `new`: no panic path to carry (it fails only where an
                // allocation would, and then the reference decoder takes over).
                CompactString::try_new(s).ok().map($ty)
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $ty::new(s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.0.as_str(), f)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $ty::new(&s).map_err(serde::de::Error::custom)
            }
        }

        impl bincode::Encode for $ty {
            fn encode<E: bincode::enc::Encoder>(
                &self,
                e: &mut E,
            ) -> Result<(), bincode::error::EncodeError> {
                crate::bounded::encode_str(self.as_str(), e)
            }
        }

        impl<C> bincode::Decode<C> for $ty {
            fn decode<D: bincode::de::Decoder<Context = C>>(
                d: &mut D,
            ) -> Result<Self, bincode::error::DecodeError> {
                crate::bounded::decode_str_with(d, Self::MAX_BYTES, |s| {
                    $ty::new(s).map_err(|_| {
                        bincode::error::DecodeError::Other(crate::bounded::INVALID_NAME)
                    })
                })
            }
        }

        bincode::impl_borrow_decode!($ty);
    };
}

name_type!(
    /// A node's name, unique in the cluster: 1 to 64 bytes of `[A-Za-z0-9._-]`.
    NodeName,
    "node name",
    64
);

name_type!(
    /// A data-centre label or tag key: 1 to 32 bytes of `[A-Za-z0-9._-]`.
    Label,
    "label",
    32
);

impl Label {
    /// A valid label for a value that cannot be missing: the fallback of a lookup that
    /// never fails, so that it need not panic.
    pub(crate) const UNKNOWN: Label = Label(CompactString::const_new("unknown"));
}

name_type!(
    /// A service's name: 1 to 64 bytes of `[A-Za-z0-9._-]`.
    ServiceName,
    "service name",
    64
);

name_type!(
    /// A service instance's id, unique in the cluster (the registry is keyed by it): 1 to 128
    /// bytes of `[A-Za-z0-9._:-]`; UUIDs fit, and so do the `host:port` style ids that Consul
    /// users (and tools such as registrator) give their services.
    InstanceId,
    "instance id",
    128,
    "._:-"
);

impl InstanceId {
    /// The empty id, which no validated one equals: only a placeholder where a reference to
    /// an id is needed and none can be held (the registry's sets of live records).
    pub(crate) const NONE: InstanceId = InstanceId(CompactString::const_new(""));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_checked() {
        assert!(NodeName::new("n1.dc-a_2").is_ok());
        assert_eq!(
            NodeName::new(""),
            Err(NameError::Empty { what: "node name" })
        );
        assert!(matches!(
            NodeName::new(&"x".repeat(65)),
            Err(NameError::TooLong { len: 65, .. })
        ));
        assert!(matches!(
            NodeName::new("a b"),
            Err(NameError::BadCharacter { ch: ' ', .. })
        ));
        assert!(matches!(
            NodeName::new("é"),
            Err(NameError::BadCharacter { .. })
        ));
        assert!(Label::new(&"d".repeat(32)).is_ok());
        assert!(InstanceId::new("redis:10.0.0.7:6379").is_ok());
        assert!(
            NodeName::new("a:b").is_err(),
            "':' is for instance ids only"
        );
        assert!(Label::new(&"d".repeat(33)).is_err());
    }

    #[test]
    fn serde_refuses_bad_names() {
        let ok: Result<NodeName, _> = serde_json::from_str("\"web-1\"");
        assert!(ok.is_ok());
        let bad: Result<NodeName, _> = serde_json::from_str("\"web 1\"");
        assert!(bad.is_err());
    }
}
