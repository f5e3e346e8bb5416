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
//!
//! Over 600 lines with its tests: sealing and the keyring are about 530; the tests (360)
//! cover each refusal of a tampered, replayed or wrongly keyed datagram.

use std::fmt;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use subtle::ConstantTimeEq;

use super::decode::{decode_body, decode_frames, Decoded};
use super::envelope::{
    check_label, flags, read_header, Datagram, DatagramBuilder, Header, LENGTH_BYTES, PREFIX_BYTES,
};
use super::label::{ClusterLabel, LABEL_HASH_BYTES, LABEL_MAX_BYTES};
use super::replay::ReplayGuard;
use super::{DecodeError, Message};

/// Bytes of a cluster key: ChaCha20 takes 256-bit keys.
pub const KEY_BYTES: usize = 32;
pub const NONCE_BYTES: usize = 12;
pub const TAG_BYTES: usize = 16;
/// The nonce's first bytes: the sender's per-boot id. The other 4 are its counter.
pub const SENDER_ID_BYTES: usize = 8;
/// The send time, Unix seconds as a little-endian u32, on the sender's clock.
pub const SENT_BYTES: usize = 4;
/// What a sealed datagram carries in the clear after its header, authenticated: the send
/// time and the nonce (sender id and counter).
pub const SEAL_FIELDS_BYTES: usize = SENT_BYTES + NONCE_BYTES;
/// Everything an unlabelled sealed datagram carries besides its messages: header, send time,
/// nonce, the encrypted length prefix and the tag (a label adds 4 more).
pub const SEALED_OVERHEAD_BYTES: usize =
    PREFIX_BYTES + SEAL_FIELDS_BYTES + LENGTH_BYTES + TAG_BYTES;
/// The longest associated data: header with a label hash, seal fields, the label.
const AAD_MAX_BYTES: usize = PREFIX_BYTES + LABEL_HASH_BYTES + SEAL_FIELDS_BYTES + LABEL_MAX_BYTES;
/// Most keys a ring holds: the primary and a few being rotated in or out. Bounds the tag
/// checks one garbage datagram can cost.
pub const KEYS_MAX: usize = 5;

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

/// A keyring, the sender id and counter of one node, its cluster label and its replay
/// windows: seals outgoing datagrams, opens incoming ones.
#[derive(Debug, Clone)]
pub struct Sealer {
    keyring: Keyring,
    /// This boot's sender id (see the module doc): the first 8 bytes of every nonce.
    sender: u64,
    /// The next counter under `sender`: the last 4 bytes of the nonce.
    counter: u32,
    label: Option<ClusterLabel>,
    /// Our clock in Unix seconds, as of the last input: the send time of what we seal.
    clock_s: u64,
    guard: ReplayGuard,
}

impl Sealer {
    /// `nonce_start` must be drawn at random (from the node's seeded generator): its first 8
    /// bytes are this boot's sender id, the last 4 where its counter starts.
    pub fn new(keyring: Keyring, nonce_start: [u8; NONCE_BYTES]) -> Sealer {
        let (id, counter) = nonce_start.split_at(SENDER_ID_BYTES);
        let sender = u64::from_be_bytes(id.try_into().unwrap_or_default());
        let counter = u32::from_be_bytes(counter.try_into().unwrap_or_default());
        Sealer {
            keyring,
            sender,
            counter,
            label: None,
            clock_s: 0,
            guard: ReplayGuard::new(sender),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn keyring_mut(&mut self) -> &mut Keyring {
        &mut self.keyring
    }

    /// Bind every datagram to `label` (in the associated data), and refuse others'.
    pub fn set_label(&mut self, label: Option<ClusterLabel>) {
        self.label = label;
    }

    pub fn label(&self) -> Option<&ClusterLabel> {
        self.label.as_ref()
    }

    /// Our clock, in Unix seconds: the send time of what we seal from now on, and the time
    /// replay checks measure against.
    pub fn set_clock(&mut self, now_s: u64) {
        self.clock_s = now_s;
    }

    /// Close and seal a datagram with the primary key and the next (sender id, counter).
    #[must_use]
    pub fn seal(&mut self, datagram: DatagramBuilder) -> Vec<u8> {
        let nonce = self.take_nonce();
        let sent_s = u32::try_from(self.clock_s).unwrap_or(u32::MAX);
        seal_parts(
            self.keyring.primary(),
            self.label.as_ref(),
            sent_s,
            nonce,
            datagram,
        )
    }

    /// Authenticate and decrypt a sealed datagram with any key of the ring. No replay check:
    /// nodes use [`Sealer::receive`].
    pub fn open(&self, bytes: &[u8]) -> Result<Opened, DecodeError> {
        open_labelled(self.keyring.keys(), self.label.as_ref(), bytes)
    }

    /// Open and decode the messages of a sealed datagram, with no replay check.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
        decode_body(self.open(bytes)?.body())
    }

    /// What a node does with a sealed datagram: open it, refuse it if it is a replay (the
    /// window remembers it from then on), and decode it.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Datagram, DecodeError> {
        let opened = self.open(bytes)?;
        self.guard
            .check(
                opened.sender,
                opened.counter,
                u64::from(opened.sent_s),
                self.clock_s,
            )
            .map_err(|why| DecodeError::Replayed { why })?;
        let Decoded { messages, skipped } = decode_frames(opened.body())?;
        Ok(Datagram {
            header: opened.header,
            messages,
            skipped,
        })
    }

    fn take_nonce(&mut self) -> [u8; NONCE_BYTES] {
        let mut nonce = [0u8; NONCE_BYTES];
        nonce[..SENDER_ID_BYTES].copy_from_slice(&self.sender.to_be_bytes());
        nonce[SENDER_ID_BYTES..].copy_from_slice(&self.counter.to_be_bytes());
        match self.counter.checked_add(1) {
            Some(next) => self.counter = next,
            None => {
                // Every counter under this id is spent: carry on as a new boot would.
                self.sender = next_sender_id(self.sender);
                self.counter = 0;
                self.guard.set_own(self.sender);
            }
        }
        nonce
    }
}

/// The sender id after `id`'s counters are spent: SplitMix64's step, a bijection, so the ids
/// of one node do not repeat and look as random as the first.
fn next_sender_id(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An opened datagram: its header, its authenticated seal fields and its plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub header: Header,
    /// The sender's per-boot id, its counter and the second it sealed this (its clock).
    pub sender: u64,
    pub counter: u32,
    pub sent_s: u32,
    /// The decrypted length prefix and body.
    plaintext: Vec<u8>,
}

impl Opened {
    /// The messages' bytes, for [`super::decode_frames`].
    pub fn body(&self) -> &[u8] {
        &self.plaintext[LENGTH_BYTES..]
    }
}

/// Seal a datagram with `key` and `nonce`, sent at second 0 and unlabelled: for tests and
/// seeds, which check no time. The caller guarantees the nonce is fresh, so this is no
/// production API: only tests and the `fuzzing` feature have it.
#[cfg(any(test, feature = "fuzzing"))]
#[must_use]
pub fn seal_with(key: &Key, nonce: [u8; NONCE_BYTES], datagram: DatagramBuilder) -> Vec<u8> {
    seal_parts(key, None, 0, nonce, datagram)
}

/// Seal a datagram built for `label`'s cluster with `key`, a fresh `nonce` (sender id and
/// counter) and its send time.
#[must_use]
pub fn seal_parts(
    key: &Key,
    label: Option<&ClusterLabel>,
    sent_s: u32,
    nonce: [u8; NONCE_BYTES],
    datagram: DatagramBuilder,
) -> Vec<u8> {
    let mut buf = datagram.finish_for_sealing();
    let fields_at = if buf[3] & flags::LABELED != 0 {
        PREFIX_BYTES + LABEL_HASH_BYTES
    } else {
        PREFIX_BYTES
    };
    buf[fields_at..fields_at + SENT_BYTES].copy_from_slice(&sent_s.to_le_bytes());
    buf[fields_at + SENT_BYTES..fields_at + SEAL_FIELDS_BYTES].copy_from_slice(&nonce);
    encrypt_in_place(key, label, fields_at + SEAL_FIELDS_BYTES, &mut buf);
    buf
}

/// Seal `plaintext` (length prefix and body) verbatim, unlabelled and at second 0, even a
/// prefix that does not match: the fuzz checks use it to reach the decoder behind the tag.
/// Nodes seal with [`Sealer::seal`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn seal_plaintext(key: &Key, nonce: [u8; NONCE_BYTES], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(SEALED_OVERHEAD_BYTES - LENGTH_BYTES + plaintext.len());
    buf.extend_from_slice(&super::MAGIC);
    buf.extend_from_slice(&[
        super::VERSION,
        flags::SEALED,
        super::MINOR,
        super::MAJOR_MAX,
    ]);
    buf.extend_from_slice(&0u32.to_le_bytes());
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(plaintext);
    encrypt_in_place(key, None, PREFIX_BYTES + SEAL_FIELDS_BYTES, &mut buf);
    buf
}

/// The associated data: the clear header and seal fields, then the cluster label. Built on
/// the stack (at most 10 + 16 + 64 bytes).
fn associated_data<'a>(
    clear: &[u8],
    label: Option<&ClusterLabel>,
    space: &'a mut [u8; AAD_MAX_BYTES],
) -> &'a [u8] {
    let label = label.map_or(&[][..], ClusterLabel::as_bytes);
    let len = clear.len() + label.len();
    space[..clear.len()].copy_from_slice(clear);
    space[clear.len()..len].copy_from_slice(label);
    &space[..len]
}

/// `buf` holds the clear header and fields (up to `ciphertext_at`) and the plaintext: encrypt
/// the plaintext in place and append the tag.
fn encrypt_in_place(
    key: &Key,
    label: Option<&ClusterLabel>,
    ciphertext_at: usize,
    buf: &mut Vec<u8>,
) {
    let (clear, ciphertext) = buf.split_at_mut(ciphertext_at);
    let nonce = Nonce::clone_from_slice(&clear[ciphertext_at - NONCE_BYTES..]);
    let mut space = [0u8; AAD_MAX_BYTES];
    let aad = associated_data(clear, label, &mut space);
    // Encryption fails only past ChaCha20's 256 GiB per-message limit; a datagram is < 64 KiB.
    #[allow(clippy::expect_used)]
    let tag = key
        .cipher()
        .encrypt_in_place_detached(&nonce, aad, ciphertext)
        .expect("a datagram is far below the AEAD's message limit");
    buf.extend_from_slice(&tag);
}

/// Check the header of an unlabelled sealed datagram and open it with the first of `keys`
/// that authenticates it. Never panics; allocates one copy of the ciphertext.
pub fn open_with(keys: &[Key], bytes: &[u8]) -> Result<Opened, DecodeError> {
    open_labelled(keys, None, bytes)
}

/// Check the header of a sealed datagram of `label`'s cluster and open it with the first of
/// `keys` that authenticates it. Never panics; allocates one copy of the ciphertext.
pub fn open_labelled(
    keys: &[Key],
    label: Option<&ClusterLabel>,
    bytes: &[u8],
) -> Result<Opened, DecodeError> {
    let header = read_header(bytes)?;
    if !header.is_sealed() {
        return Err(DecodeError::Unsealed);
    }
    check_label(&header, label)?;
    let fields_at = header.clear_bytes();
    let ciphertext_at = fields_at + SEAL_FIELDS_BYTES;
    if bytes.len() < ciphertext_at + LENGTH_BYTES + TAG_BYTES {
        return Err(DecodeError::TooShort { len: bytes.len() });
    }
    let clear = &bytes[..ciphertext_at];
    let sent_s = u32::from_le_bytes([
        clear[fields_at],
        clear[fields_at + 1],
        clear[fields_at + 2],
        clear[fields_at + 3],
    ]);
    let nonce_bytes = &clear[ciphertext_at - NONCE_BYTES..];
    let nonce = Nonce::from_slice(nonce_bytes);
    let tag_at = bytes.len() - TAG_BYTES;
    let tag = Tag::from_slice(&bytes[tag_at..]);
    let mut space = [0u8; AAD_MAX_BYTES];
    let aad = associated_data(clear, label, &mut space);
    let mut plaintext = bytes[ciphertext_at..tag_at].to_vec();
    for key in keys.iter().take(KEYS_MAX) {
        // ChaCha20-Poly1305 checks the tag before decrypting and leaves the buffer untouched
        // when it fails, so one copy serves every key tried.
        if key
            .cipher()
            .decrypt_in_place_detached(nonce, aad, &mut plaintext, tag)
            .is_ok()
        {
            check_length(&plaintext)?;
            let mut id = [0u8; SENDER_ID_BYTES];
            id.copy_from_slice(&nonce_bytes[..SENDER_ID_BYTES]);
            let mut counter = [0u8; 4];
            counter.copy_from_slice(&nonce_bytes[SENDER_ID_BYTES..]);
            return Ok(Opened {
                header,
                sender: u64::from_be_bytes(id),
                counter: u32::from_be_bytes(counter),
                sent_s,
                plaintext,
            });
        }
    }
    Err(DecodeError::Authentication)
}

/// The authenticated length prefix must match the plaintext (only a buggy peer that holds the
/// key could get this wrong).
fn check_length(plaintext: &[u8]) -> Result<(), DecodeError> {
    let declared = usize::from(u16::from_be_bytes([plaintext[0], plaintext[1]]));
    let actual = plaintext.len() - LENGTH_BYTES;
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
    Ok(())
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
        for len in [40, 41, 100, 1_400, DATAGRAM_MAX_BYTES] {
            let mut junk = vec![b'h', b'r', 2, flags::SEALED, 0, 2];
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
        let nonce = PREFIX_BYTES + SENT_BYTES..PREFIX_BYTES + SEAL_FIELDS_BYTES;
        assert_ne!(
            a[nonce.clone()],
            b[nonce.clone()],
            "every datagram has a fresh nonce"
        );
        assert_ne!(
            a[nonce.end..],
            b[nonce.end..],
            "so the same messages encrypt differently"
        );
        let mut mixed = a.clone();
        mixed[nonce.clone()].copy_from_slice(&b[nonce]);
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
    fn a_spent_counter_moves_to_a_new_sender_id() {
        let mut sealer = Sealer::new(Keyring::new(key(1)), [0xff; NONCE_BYTES]);
        assert_eq!(sealer.take_nonce(), [0xff; NONCE_BYTES]);
        let next = sealer.take_nonce();
        assert_eq!(
            next[..SENDER_ID_BYTES],
            next_sender_id(u64::MAX).to_be_bytes()
        );
        assert_eq!(next[SENDER_ID_BYTES..], [0; 4]);
        let mut one = next;
        one[NONCE_BYTES - 1] = 1;
        assert_eq!(sealer.take_nonce(), one);
        // The new id is ours: a datagram carrying it is a reflection.
        let mut receiver = sealer.clone();
        let bytes = sealer.seal(builder(1_400, &messages()));
        assert_eq!(
            receiver.receive(&bytes),
            Err(DecodeError::Replayed {
                why: crate::wire::Replay::OwnSender
            })
        );
    }

    /// A node's datagram is accepted once; the same bytes again, or a copy sent long ago, are
    /// refused; a restarted sender (new id) is accepted at once.
    #[test]
    fn replays_are_refused_and_a_new_boot_is_accepted() {
        use crate::wire::Replay;
        let t = 1_800_000_000;
        let mut alice = Sealer::new(Keyring::new(key(1)), [1; NONCE_BYTES]);
        let mut bob = Sealer::new(Keyring::new(key(1)), [2; NONCE_BYTES]);
        alice.set_clock(t);
        bob.set_clock(t);
        let first = alice.seal(builder(1_400, &messages()));
        let second = alice.seal(builder(1_400, &messages()));
        assert_eq!(bob.receive(&second).map(|d| d.messages), Ok(messages()));
        assert_eq!(
            bob.receive(&first).map(|d| d.messages),
            Ok(messages()),
            "reordered"
        );
        for replay in [&first, &second] {
            assert_eq!(
                bob.receive(replay),
                Err(DecodeError::Replayed {
                    why: Replay::Duplicate
                })
            );
        }
        // Alice reflected back to herself.
        assert_eq!(
            alice.receive(&first),
            Err(DecodeError::Replayed {
                why: Replay::OwnSender
            })
        );
        // Alice restarts: a new id, a counter from anywhere.
        let mut restarted = Sealer::new(Keyring::new(key(1)), [3; NONCE_BYTES]);
        restarted.set_clock(t + 1);
        let fresh = restarted.seal(builder(1_400, &messages()));
        assert!(bob.receive(&fresh).is_ok());
        // A node that never saw the old boot refuses its datagrams once they are old enough.
        let mut carol = Sealer::new(Keyring::new(key(1)), [4; NONCE_BYTES]);
        carol.set_clock(t + crate::wire::replay::TIME_WINDOW_S + 1);
        assert_eq!(
            carol.receive(&first),
            Err(DecodeError::Replayed {
                why: Replay::TooOld {
                    age_s: crate::wire::replay::TIME_WINDOW_S + 1
                }
            })
        );
        // The send time is authenticated: moving it forward breaks the tag.
        let mut forged = first.clone();
        forged[PREFIX_BYTES] ^= 0x40;
        assert_eq!(carol.receive(&forged), Err(DecodeError::Authentication));
    }

    /// The label is bound: sealed with one label, a datagram is refused by another label's
    /// node as a mismatch, and a forged header hash does not get it through the tag.
    #[test]
    fn labels_are_bound_into_the_associated_data() {
        let blue = ClusterLabel::new("blue").unwrap();
        let green = ClusterLabel::new("green").unwrap();
        let mut sender = Sealer::new(Keyring::new(key(1)), [1; NONCE_BYTES]);
        sender.set_label(Some(blue.clone()));
        let mut d = DatagramBuilder::for_cluster(1_400, true, Some(&blue));
        assert!(d.try_push(&encode_message(&messages()[0])));
        let bytes = sender.seal(d);
        assert_eq!(
            bytes.len(),
            SEALED_OVERHEAD_BYTES + LABEL_HASH_BYTES + encode_message(&messages()[0]).len()
        );
        let mut same = Sealer::new(Keyring::new(key(1)), [2; NONCE_BYTES]);
        same.set_label(Some(blue.clone()));
        assert!(same.receive(&bytes).is_ok());
        for label in [Some(green.clone()), None] {
            let mut other = Sealer::new(Keyring::new(key(1)), [3; NONCE_BYTES]);
            other.set_label(label.clone());
            assert_eq!(
                other.receive(&bytes),
                Err(DecodeError::LabelMismatch {
                    ours: label.as_ref().map(ClusterLabel::hash),
                    theirs: Some(blue.hash()),
                })
            );
        }
        // Rewrite the header's hash to green's: the hash matches, the bound label does not.
        let mut forged = bytes.clone();
        forged[PREFIX_BYTES..PREFIX_BYTES + LABEL_HASH_BYTES]
            .copy_from_slice(&green.hash().to_le_bytes());
        let mut other = Sealer::new(Keyring::new(key(1)), [3; NONCE_BYTES]);
        other.set_label(Some(green));
        assert_eq!(other.receive(&forged), Err(DecodeError::Authentication));
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
