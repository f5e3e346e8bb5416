//! The cluster label: a name every datagram of a cluster carries or binds, so that two clusters
//! sharing a key, or reusing each other's addresses, never merge by accident.
//!
//! A labelled datagram sets `flags::LABELED` and carries a 4-byte hash of the label in its
//! header, so a receiver tells a mismatch apart from corruption or a wrong key and counts it
//! (`label_mismatch`). The hash alone is only a hint; the label itself is bound in full: mixed
//! into the CRC of a plain datagram, and part of the AEAD's associated data of a sealed one.
//! Two labels whose hashes collide are still refused (as a checksum or authentication error).

use std::fmt;

/// Longest cluster label, in bytes.
pub const LABEL_MAX_BYTES: usize = 64;
/// Bytes the label's hash takes in a labelled datagram's header.
pub const LABEL_HASH_BYTES: usize = 4;

/// A valid cluster label: 1 to [`LABEL_MAX_BYTES`] bytes of `A-Z a-z 0-9 . _ -`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterLabel {
    text: String,
    hash: u32,
}

/// Why a cluster label was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelError {
    Empty,
    TooLong { len: usize },
    BadCharacter { at: usize },
}

impl ClusterLabel {
    pub fn new(text: &str) -> Result<ClusterLabel, LabelError> {
        if text.is_empty() {
            return Err(LabelError::Empty);
        }
        if text.len() > LABEL_MAX_BYTES {
            return Err(LabelError::TooLong { len: text.len() });
        }
        if let Some(at) = text
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            return Err(LabelError::BadCharacter { at });
        }
        Ok(ClusterLabel {
            text: text.to_owned(),
            hash: crc32fast::hash(text.as_bytes()),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// What the header carries: CRC-32 of the label's bytes.
    pub fn hash(&self) -> u32 {
        self.hash
    }
}

impl fmt::Debug for ClusterLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterLabel({:?})", self.text)
    }
}

impl fmt::Display for ClusterLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::Empty => write!(f, "a cluster label cannot be empty"),
            LabelError::TooLong { len } => {
                write!(
                    f,
                    "a cluster label is at most {LABEL_MAX_BYTES} bytes, not {len}"
                )
            }
            LabelError::BadCharacter { at } => write!(
                f,
                "a cluster label holds only A-Z a-z 0-9 . _ - (bad character at byte {at})"
            ),
        }
    }
}

impl std::error::Error for LabelError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked() {
        assert_eq!(ClusterLabel::new(""), Err(LabelError::Empty));
        assert_eq!(
            ClusterLabel::new(&"a".repeat(65)),
            Err(LabelError::TooLong { len: 65 })
        );
        assert_eq!(
            ClusterLabel::new("prod eu"),
            Err(LabelError::BadCharacter { at: 4 })
        );
        let label = ClusterLabel::new("prod-eu_1.a").unwrap();
        assert_eq!(label.as_str(), "prod-eu_1.a");
        assert_eq!(label.hash(), crc32fast::hash(b"prod-eu_1.a"));
        assert_ne!(label.hash(), ClusterLabel::new("prod-us").unwrap().hash());
    }
}
