//! Sealed datagrams: gossip encrypted and authenticated with the cluster key.
//!
//! With a key configured, every datagram is sealed with ChaCha20-Poly1305 (RFC 8439) instead of
//! carrying a CRC32:
//!
//! ```text
//! 0      2         3       4          16                        16+2+len      32+2+len
//! | "hr" | version | flags | nonce    | body len | messages ... | tag          |
//! |      plain, associated data      |  plain    |  encrypted (length + body)  | Poly1305 |
//! ```
//!
//! - the first four bytes are the plain header with `flags::SEALED` set; they are the AEAD's
//!   associated data, so flipping a flag or the version fails authentication;
//! - the 12-byte nonce is sent in the clear (it must be unique, not secret);
//! - the ciphertext holds the big-endian u16 body length and the body, exactly as in a plain
//!   datagram, so the same message decoder runs on it once opened;
//! - the 16-byte tag replaces the CRC32: it covers integrity as well as authenticity.
//!
//! A sealed datagram is [`SEALED_OVERHEAD_BYTES`] (34) bytes longer than its body, 24 more than
//! a plain one; [`super::DatagramBuilder::sealed`] reserves them so that a sealed datagram never
//! exceeds the node's `packet_bytes_max`.
//!
//! # Nonces
//!
//! A nonce must never repeat under one key: two datagrams sealed with the same (key, nonce)
//! leak the XOR of their plaintexts and let an attacker forge tags. Each node draws a random
//! 96-bit starting point from its seeded generator when its keyring is installed, then counts
//! up by one per datagram (mod 2^96). Within one node's run the sequence cannot repeat before
//! 2^96 datagrams (at a million a second, longer than the age of the universe). Across nodes
//! and restarts, two runs collide only if their ranges overlap in a 2^96 space: for runs of
//! at most 2^40 datagrams each that is about 2^-55 per pair of runs, so even a million runs
//! under one key stay below 2^-16 in all. (A random 32-bit prefix with a counter from zero
//! would do worse: two runs that drew the same prefix would repeat every nonce.) The residual
//! risk is two nodes seeded identically; `hera run` seeds each node from the OS.
//!
//! # Keys
//!
//! A [`Keyring`] holds the primary key, used to seal, and up to [`KEYS_MAX`]` - 1` more that
//! are still accepted when opening, so a cluster rotates keys with no downtime: install the
//! new key everywhere, make it primary everywhere, then remove the old one. Opening tries the
//! primary first, then the others; a datagram no key opens is [`DecodeError::Authentication`].
//! The datagram names no key: a key id would save at most four tag checks (a microsecond)
//! and tell an eavesdropper when a rotation happens.

use std::fmt;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use subtle::ConstantTimeEq;

use super::decode::decode_body;
use super::envelope::{check_prefix, flags, DatagramBuilder};
use super::{DecodeError, Message};

/// Bytes of a cluster key: ChaCha20 takes 256-bit keys.
pub const KEY_BYTES: usize = 32;
pub const NONCE_BYTES: usize = 12;
pub const TAG_BYTES: usize = 16;
/// Magic, version and flags: sent in the clear, authenticated as associated data.
pub const SEALED_HEADER_BYTES: usize = 4;
/// Bytes a sealed datagram adds beyond what a [`DatagramBuilder`] already counts (its header
/// and length prefix): the nonce and the tag.
pub const SEAL_TRAILER_BYTES: usize = NONCE_BYTES + TAG_BYTES;
/// Everything a sealed datagram carries besides its messages: header, nonce, the encrypted
/// length prefix and the tag.
pub const SEALED_OVERHEAD_BYTES: usize = SEALED_HEADER_BYTES + NONCE_BYTES + 2 + TAG_BYTES;
/// Most keys a ring holds: the primary and a few being rotated in or out. Bounds the tag
/// checks one garbage datagram can cost.
pub const KEYS_MAX: usize = 5;

/// Where the ciphertext (length prefix and body) starts.
const CIPHERTEXT_AT: usize = SEALED_HEADER_BYTES + NONCE_BYTES;

/// A 256-bit cluster key. Its `Debug` never shows the key; comparisons take constant time.
#[derive(Clone)]
pub struct Key([u8; KEY_BYTES]);

impl Key {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Key {
        Key(bytes)
    }

    /// A key from a slice that must be exactly [`KEY_BYTES`] long.
    pub fn from_slice(bytes: &[u8]) -> Result<Key, KeyringError> {
        <[u8; KEY_BYTES]>::try_from(bytes)
            .map(Key)
            .map_err(|_| KeyringError::BadLength { len: bytes.len() })
    }

    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&self.0.into())
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        // Keys come from operators over the API; do not let timing tell how much of a guess
        // matched an installed key.
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why a keyring operation was refused. The ring is unchanged in every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringError {
    /// The node was started without a cluster key, so it sends plain datagrams; a key cannot
    /// be added at run time (the node would cut itself off from its plain peers at once).
    NotEnabled,
    /// The key is not in the ring.
    UnknownKey,
    /// The primary key seals everything this node sends; make another key primary first.
    RemovePrimary,
    /// The ring already holds [`KEYS_MAX`] keys; remove one first.
    Full { max: usize },
    /// Not a 32-byte key.
    BadLength { len: usize },
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringError::NotEnabled => write!(
                f,
                "gossip encryption is not enabled on this node (start it with a key: --encrypt)"
            ),
            KeyringError::UnknownKey => write!(f, "no such key in the keyring"),
            KeyringError::RemovePrimary => {
                write!(
                    f,
                    "the primary key cannot be removed: use another key first"
                )
            }
            KeyringError::Full { max } => {
                write!(f, "the keyring is full ({max} keys): remove one first")
            }
            KeyringError::BadLength { len } => {
                write!(f, "a key is {KEY_BYTES} bytes, this one is {len}")
            }
        }
    }
}

impl std::error::Error for KeyringError {}

/// The keys a node seals with (the primary) and opens with (all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    /// The primary first; never empty, never more than [`KEYS_MAX`].
    keys: Vec<Key>,
}

impl Keyring {
    pub fn new(primary: Key) -> Keyring {
        Keyring {
            keys: vec![primary],
        }
    }

    pub fn primary(&self) -> &Key {
        &self.keys[0]
    }

    /// Every key, the primary first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Accept datagrams sealed with `key` too. Installing a key already present does nothing.
    pub fn install(&mut self, key: Key) -> Result<(), KeyringError> {
        if self.keys.contains(&key) {
            return Ok(());
        }
        if self.keys.len() == KEYS_MAX {
            return Err(KeyringError::Full { max: KEYS_MAX });
        }
        self.keys.push(key);
        Ok(())
    }

    /// Seal with `key` from now on; it must be installed already.
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyringError> {
        let at = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyringError::UnknownKey)?;
        // Rotating the slice keeps the others in the order they were installed.
        self.keys[..=at].rotate_right(1);
        Ok(())
    }

    /// Stop accepting `key`. The primary cannot be removed.
    pub fn remove(&mut self, key: &Key) -> Result<(), KeyringError> {
        match self.keys.iter().position(|k| k == key) {
            None => Err(KeyringError::UnknownKey),
            Some(0) => Err(KeyringError::RemovePrimary),
            Some(at) => {
                self.keys.remove(at);
                Ok(())
            }
        }
    }
}

/// A keyring and the nonce sequence of one node: seals outgoing datagrams, opens incoming ones.
#[derive(Debug, Clone)]
pub struct Sealer {
    keyring: Keyring,
    /// The next nonce, as a 96-bit counter (see the module doc for why it never repeats).
    next_nonce: u128,
}

const NONCE_MASK: u128 = (1 << (8 * NONCE_BYTES)) - 1;

impl Sealer {
    /// `nonce_start` must be drawn at random (from the node's seeded generator).
    pub fn new(keyring: Keyring, nonce_start: [u8; NONCE_BYTES]) -> Sealer {
        let mut wide = [0u8; 16];
        wide[16 - NONCE_BYTES..].copy_from_slice(&nonce_start);
        Sealer {
            keyring,
            next_nonce: u128::from_be_bytes(wide),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn keyring_mut(&mut self) -> &mut Keyring {
        &mut self.keyring
    }

    /// Close and seal a datagram with the primary key and the next nonce.
    #[must_use]
    pub fn seal(&mut self, datagram: DatagramBuilder) -> Vec<u8> {
        let nonce = self.take_nonce();
        seal_with(self.keyring.primary(), nonce, datagram)
    }

    /// Authenticate and decrypt a sealed datagram with any key of the ring.
    pub fn open(&self, bytes: &[u8]) -> Result<Opened, DecodeError> {
        open_with(self.keyring.keys(), bytes)
    }

    /// Open and decode the messages of a sealed datagram.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
        decode_body(self.open(bytes)?.body())
    }

    fn take_nonce(&mut self) -> [u8; NONCE_BYTES] {
        let current = self.next_nonce;
        self.next_nonce = current.wrapping_add(1) & NONCE_MASK;
        let wide = current.to_be_bytes();
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&wide[16 - NONCE_BYTES..]);
        nonce
    }
}

/// The plaintext of an opened datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The decrypted length prefix and body.
    plaintext: Vec<u8>,
}

impl Opened {
    /// The messages' bytes, for [`super::decode_body`].
    pub fn body(&self) -> &[u8] {
        &self.plaintext[2..]
    }
}

/// Seal a datagram with `key` and `nonce`. The caller guarantees the nonce is fresh.
#[must_use]
pub fn seal_with(key: &Key, nonce: [u8; NONCE_BYTES], datagram: DatagramBuilder) -> Vec<u8> {
    let mut buf = datagram.finish_for_sealing();
    buf.splice(SEALED_HEADER_BYTES..SEALED_HEADER_BYTES, nonce);
    encrypt_in_place(key, &mut buf);
    buf
}

/// Seal `plaintext` (length prefix and body) verbatim, even a prefix that does not match: the
/// fuzz checks use it to reach the decoder behind the tag. Nodes seal with [`seal_with`].
pub(crate) fn seal_plaintext(key: &Key, nonce: [u8; NONCE_BYTES], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(SEALED_OVERHEAD_BYTES - 2 + plaintext.len());
    buf.extend_from_slice(&super::MAGIC);
    buf.push(super::VERSION);
    buf.push(flags::SEALED);
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(plaintext);
    encrypt_in_place(key, &mut buf);
    buf
}

/// `buf` holds the header, the nonce and the plaintext: encrypt the plaintext in place and
/// append the tag.
fn encrypt_in_place(key: &Key, buf: &mut Vec<u8>) {
    let (header, ciphertext) = buf.split_at_mut(CIPHERTEXT_AT);
    let (header, nonce) = header.split_at(SEALED_HEADER_BYTES);
    // Encryption fails only past ChaCha20's 256 GiB per-message limit; a datagram is < 64 KiB.
    let tag = key
        .cipher()
        .encrypt_in_place_detached(Nonce::from_slice(nonce), header, ciphertext)
        .expect("a datagram is far below the AEAD's message limit");
    buf.extend_from_slice(&tag);
}

/// Check the header of a sealed datagram and open it with the first of `keys` that
/// authenticates it. Never panics; allocates one copy of the ciphertext.
pub fn open_with(keys: &[Key], bytes: &[u8]) -> Result<Opened, DecodeError> {
    check_prefix(bytes)?;
    let flag_bits = *bytes
        .get(3)
        .ok_or(DecodeError::TooShort { len: bytes.len() })?;
    if flag_bits & !flags::KNOWN != 0 {
        return Err(DecodeError::UnknownFlags { flags: flag_bits });
    }
    if flag_bits & flags::SEALED == 0 {
        return Err(DecodeError::Unsealed);
    }
    if bytes.len() < SEALED_OVERHEAD_BYTES {
        return Err(DecodeError::TooShort { len: bytes.len() });
    }
    let header = &bytes[..SEALED_HEADER_BYTES];
    let nonce = Nonce::from_slice(&bytes[SEALED_HEADER_BYTES..CIPHERTEXT_AT]);
    let tag_at = bytes.len() - TAG_BYTES;
    let tag = Tag::from_slice(&bytes[tag_at..]);
    let ciphertext = &bytes[CIPHERTEXT_AT..tag_at];
    let mut plaintext = ciphertext.to_vec();
    for key in keys.iter().take(KEYS_MAX) {
        // ChaCha20-Poly1305 checks the tag before decrypting and leaves the buffer untouched
        // when it fails, so one copy serves every key tried.
        if key
            .cipher()
            .decrypt_in_place_detached(nonce, header, &mut plaintext, tag)
            .is_ok()
        {
            return check_length(plaintext);
        }
    }
    Err(DecodeError::Authentication)
}

/// The authenticated length prefix must match the plaintext (only a buggy peer that holds the
/// key could get this wrong).
fn check_length(plaintext: Vec<u8>) -> Result<Opened, DecodeError> {
    let declared = usize::from(u16::from_be_bytes([plaintext[0], plaintext[1]]));
    let actual = plaintext.len() - 2;
    if declared > actual {
        return Err(DecodeError::Truncated {
            declared: declared + SEALED_OVERHEAD_BYTES,
            actual: actual + SEALED_OVERHEAD_BYTES,
        });
    }
    if declared < actual {
        return Err(DecodeError::TrailingBytes {
            extra: actual - declared,
        });
    }
    Ok(Opened { plaintext })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::NodeName;
    use crate::wire::{decode_datagram, encode_message, Ack, Ping, DATAGRAM_MAX_BYTES};

    fn key(byte: u8) -> Key {
        Key::from_bytes([byte; KEY_BYTES])
    }

    fn messages() -> Vec<Message> {
        vec![
            Message::Ping(Ping {
                seq: 7,
                target: NodeName::new("n1").unwrap(),
            }),
            Message::Ack(Ack { seq: 9 }),
        ]
    }

    fn builder(budget: usize, messages: &[Message]) -> DatagramBuilder {
        let mut d = DatagramBuilder::sealed(budget);
        for m in messages {
            assert!(d.try_push(&encode_message(m)));
        }
        d
    }

    /// A ping with a long target name: big enough that 255 of them overflow 9,000 bytes.
    fn wide_ping() -> Vec<u8> {
        encode_message(&Message::Ping(Ping {
            seq: u32::MAX,
            target: NodeName::new(&"n".repeat(40)).unwrap(),
        }))
    }

    fn sealed(k: &Key) -> Vec<u8> {
        seal_with(k, [3; NONCE_BYTES], builder(1_400, &messages()))
    }

    #[test]
    fn round_trip_with_the_primary_and_with_an_older_key() {
        let mut sealer = Sealer::new(Keyring::new(key(1)), [0; NONCE_BYTES]);
        let bytes = sealer.seal(builder(1_400, &messages()));
        assert_eq!(bytes[3], flags::SEALED);
        assert_eq!(sealer.decode(&bytes), Ok(messages()));
        // The overhead is exactly what the constants say.
        let body: usize = messages().iter().map(|m| encode_message(m).len()).sum();
        assert_eq!(bytes.len(), body + SEALED_OVERHEAD_BYTES);
        // Rotation: a peer that made a new key primary still opens the old one's datagrams.
        let mut peer = Keyring::new(key(2));
        peer.install(key(1)).unwrap();
        let peer = Sealer::new(peer, [9; NONCE_BYTES]);
        assert_eq!(peer.decode(&bytes), Ok(messages()));
    }

    #[test]
    fn a_plain_decoder_refuses_sealed_datagrams_and_a_sealed_one_plain_datagrams() {
        let bytes = sealed(&key(1));
        assert_eq!(
            decode_datagram(&bytes),
            Err(DecodeError::UnknownFlags {
                flags: flags::SEALED
            })
        );
        let mut plain = DatagramBuilder::new(1_400);
        assert!(plain.try_push(&encode_message(&messages()[0])));
        let plain = plain.finish();
        assert_eq!(open_with(&[key(1)], &plain), Err(DecodeError::Unsealed));
    }

    #[test]
    fn wrong_key_tampering_truncation_and_garbage_fail_authentication() {
        let k = key(1);
        let good = sealed(&k);
        assert_eq!(
            open_with(&[key(2), key(3)], &good),
            Err(DecodeError::Authentication)
        );
        // Every byte after the magic and version matters: flags, nonce, ciphertext, tag.
        for at in 3..good.len() {
            for bit in [0x01, 0x80] {
                let mut bad = good.clone();
                bad[at] ^= bit;
                match open_with(std::slice::from_ref(&k), &bad) {
                    Err(DecodeError::Authentication) => {}
                    // The flags byte is checked before the tag: clearing SEALED or setting an
                    // unknown bit is refused as such.
                    Err(DecodeError::UnknownFlags { .. } | DecodeError::Unsealed) if at == 3 => {}
                    other => panic!("byte {at} bit {bit:#x}: {other:?}"),
                }
            }
        }
        // Cut anywhere: too short for the layout, or the tag no longer matches.
        for len in 0..good.len() {
            let result = open_with(std::slice::from_ref(&k), &good[..len]);
            assert!(
                matches!(
                    result,
                    Err(DecodeError::Authentication | DecodeError::TooShort { .. })
                ),
                "cut at {len}: {result:?}"
            );
        }
        // Extra bytes appended shift the tag: refused too.
        let mut longer = good.clone();
        longer.extend_from_slice(&[0; 5]);
        assert_eq!(
            open_with(std::slice::from_ref(&k), &longer),
            Err(DecodeError::Authentication)
        );
        // Garbage behind a valid sealed header, of every length up to a few datagrams' worth.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for len in [34, 35, 100, 1_400, DATAGRAM_MAX_BYTES] {
            let mut junk = vec![b'h', b'r', 1, flags::SEALED];
            while junk.len() < len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                junk.push(state as u8);
            }
            assert_eq!(
                open_with(std::slice::from_ref(&k), &junk),
                Err(DecodeError::Authentication),
                "{len} bytes"
            );
        }
        assert_eq!(
            open_with(std::slice::from_ref(&k), &[0; DATAGRAM_MAX_BYTES + 1]),
            Err(DecodeError::TooLong {
                len: DATAGRAM_MAX_BYTES + 1
            })
        );
    }

    #[test]
    fn a_replayed_header_with_another_body_fails() {
        // Splice the nonce and tag of one datagram onto the ciphertext of another.
        let k = key(1);
        let mut sealer = Sealer::new(Keyring::new(k.clone()), [0; NONCE_BYTES]);
        let a = sealer.seal(builder(1_400, &messages()));
        let b = sealer.seal(builder(1_400, &messages()));
        assert_ne!(a[4..16], b[4..16], "every datagram has a fresh nonce");
        assert_ne!(a[16..], b[16..], "so the same messages encrypt differently");
        let mut mixed = a.clone();
        mixed[4..16].copy_from_slice(&b[4..16]);
        assert_eq!(open_with(&[k], &mixed), Err(DecodeError::Authentication));
    }

    #[test]
    fn sealed_datagrams_never_exceed_the_budget() {
        for budget in [40, 512, 1_400, 9_000] {
            let mut sealer = Sealer::new(Keyring::new(key(1)), [0xff; NONCE_BYTES]);
            let mut d = DatagramBuilder::sealed(budget);
            let ping = wide_ping();
            while d.try_push(&ping) {}
            assert!(d.remaining() < ping.len());
            let bytes = sealer.seal(d);
            assert!(bytes.len() <= budget, "{} > {budget}", bytes.len());
            assert!(bytes.len() + ping.len() > budget, "the budget was used");
        }
    }

    #[test]
    fn the_nonce_counts_up_across_the_96_bit_boundary() {
        let mut sealer = Sealer::new(Keyring::new(key(1)), [0xff; NONCE_BYTES]);
        assert_eq!(sealer.take_nonce(), [0xff; NONCE_BYTES]);
        assert_eq!(sealer.take_nonce(), [0; NONCE_BYTES]);
        let mut one = [0; NONCE_BYTES];
        one[NONCE_BYTES - 1] = 1;
        assert_eq!(sealer.take_nonce(), one);
    }

    #[test]
    fn keyring_operations_and_their_refusals() {
        let (a, b, c) = (key(1), key(2), key(3));
        let mut ring = Keyring::new(a.clone());
        assert_eq!(ring.remove(&a), Err(KeyringError::RemovePrimary));
        assert_eq!(ring.use_key(&b), Err(KeyringError::UnknownKey));
        assert_eq!(ring.remove(&b), Err(KeyringError::UnknownKey));
        ring.install(b.clone()).unwrap();
        ring.install(b.clone()).unwrap();
        ring.install(c.clone()).unwrap();
        assert_eq!(ring.keys(), [a.clone(), b.clone(), c.clone()]);
        ring.use_key(&c).unwrap();
        assert_eq!(ring.primary(), &c);
        assert_eq!(ring.keys(), [c.clone(), a.clone(), b.clone()]);
        ring.remove(&a).unwrap();
        assert_eq!(ring.keys(), [c.clone(), b.clone()]);
        for i in 10..13 {
            ring.install(key(i)).unwrap();
        }
        assert_eq!(
            ring.install(key(20)),
            Err(KeyringError::Full { max: KEYS_MAX })
        );
        assert_eq!(ring.keys().len(), KEYS_MAX);
        assert_eq!(
            Key::from_slice(&[0; 16]),
            Err(KeyringError::BadLength { len: 16 })
        );
        assert_eq!(format!("{:?}", key(7)), "Key(..)", "never print a key");
    }

    /// Not a benchmark (the criterion benches are elsewhere): a rough cost figure for the
    /// report, printed with `--nocapture`. Asserts only that sealing is not absurdly slow.
    #[test]
    fn seal_and_open_cost_is_small() {
        let mut sealer = Sealer::new(Keyring::new(key(1)), [0; NONCE_BYTES]);
        let ack = wide_ping();
        let rounds: u32 = 2_000;
        let full = |sealed: bool| {
            let mut d = if sealed {
                DatagramBuilder::sealed(1_400)
            } else {
                DatagramBuilder::new(1_400)
            };
            while d.try_push(&ack) {}
            d
        };
        // Build the datagrams first so that only the envelope work is timed.
        let plain: Vec<_> = (0..rounds).map(|_| full(false)).collect();
        let to_seal: Vec<_> = (0..rounds).map(|_| full(true)).collect();
        #[allow(clippy::disallowed_methods)] // a test timing itself, not protocol logic
        let started = std::time::Instant::now();
        for d in plain {
            let bytes = d.finish();
            assert!(crate::wire::open_envelope(&bytes).is_ok());
        }
        #[allow(clippy::disallowed_methods)]
        let crc_per = started.elapsed() / rounds;
        #[allow(clippy::disallowed_methods)]
        let started = std::time::Instant::now();
        for d in to_seal {
            let bytes = sealer.seal(d);
            assert!(bytes.len() > 1_350);
            assert!(sealer.open(&bytes).is_ok());
        }
        #[allow(clippy::disallowed_methods)]
        let per = started.elapsed() / rounds;
        println!("~1,400-byte datagram: seal+open {per:?}, plain finish+check {crc_per:?}");
        assert!(per < std::time::Duration::from_millis(5), "{per:?}");
    }
}
