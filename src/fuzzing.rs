//! Property checks on arbitrary input, shared by the fuzz targets in `fuzz/` and the seed-replay
//! test `tests/fuzz_seeds.rs`.
//!
//! Each check takes raw bytes and panics if an invariant is violated; on input it cannot use it
//! simply returns. Keeping them here rather than in the fuzz crate means `cargo test` replays
//! the committed corpus with exactly the code the fuzzer runs, without cargo-fuzz installed.
//!
//! Over 600 lines: one property check per fuzz target (7 targets) and the generators they
//! share; splitting it would scatter what a target asserts from the input it builds.

// A fuzz harness: its job is to panic when an invariant breaks, so the lints that keep
// panics out of the node do not apply here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cluster;

pub use cluster::check_cluster;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::bounded::{BoundedString, BoundedVec};
use crate::config::Config;
use crate::names::{Label, NodeName};
use crate::node::{Event, Identity, Lifecycle, Node, Sink, Transmit};
use crate::swim::State;
use crate::time::Instant;
use crate::wire::seal::{open_with, seal_plaintext, seal_with, NONCE_BYTES};
use crate::wire::{
    decode_body, decode_datagram, decode_frames, decode_frames_reference, encode_message, Ack,
    Claim, DatagramBuilder, DecodeError, Decoded, Incarnation, Key, Keyring, MemberUpdate, Message,
    Nack, Opaque, Ping, PingReq, Profile, PushPull, Query, QueryAnswer, QueryId, QueryOutcome,
    Sealer, SyncProbe, DATAGRAM_MAX_BYTES, OVERHEAD_BYTES, SEALED_OVERHEAD_BYTES,
};

/// Arbitrary text as a config file (the `config_file` target): reading and resolving it never
/// panics; an error points at a line of the text; what is accepted passes the one validator,
/// whatever the file said.
#[cfg(feature = "runtime")]
pub fn check_config_file(data: &[u8]) {
    use crate::config::schema::{validate, Naming};
    use crate::runtime::settings::{FileSettings, Overrides, Settings, Tunables, TUNABLE_FIELDS};

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    let file = match FileSettings::parse(text) {
        Ok(file) => file,
        Err(error) => {
            if let Some(line) = error.line {
                assert!((1..=lines).contains(&line), "line {line} of {lines}");
            }
            let _ = error.to_string();
            return;
        }
    };
    for knob in &file.knobs {
        assert!(
            (1..=lines).contains(&knob.line),
            "knob on line {}",
            knob.line
        );
        assert_eq!(knob.knob.meta().check(Naming::File, knob.value), Ok(()));
    }
    // A name from the command line, so the host's name plays no part.
    let cli = Overrides {
        name: Some("fuzz".to_string()),
        ..Overrides::default()
    };
    match Settings::resolve(Some((std::path::Path::new("fuzz.toml"), file)), cli) {
        Ok(settings) => {
            assert_eq!(validate(&settings.config, Naming::File), Ok(()));
            let tunables = Tunables {
                liveness: settings.liveness,
                blocking_waiters_max: settings.blocking_waiters_max,
            };
            for f in &TUNABLE_FIELDS {
                assert_eq!(f.meta.check(Naming::File, (f.get)(&tunables)), Ok(()));
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// Decoding never panics, whatever decodes survives a re-encode unchanged, and the fast
/// decoder agrees with the reference (bincode's derived one) on every input, errors included.
///
/// The bytes go through the whole envelope, as a node receives them, and also straight into
/// the body decoders: the checksum would otherwise hide the message decoder from the fuzzer.
pub fn check_decode(data: &[u8]) {
    match decode_datagram(data) {
        Ok(messages) => {
            let again = reencode(&messages);
            // The encoder writes the shortest form of every integer: never larger than accepted.
            assert!(again.len() <= data.len(), "re-encoding grew the datagram");
        }
        Err(error) => {
            // Labels and messages are built from attacker-chosen values too.
            let _ = (error.kind(), error.to_string());
        }
    }
    if data.len() <= DATAGRAM_MAX_BYTES - OVERHEAD_BYTES {
        let fast = decode_frames(data);
        assert_eq!(
            fast,
            decode_frames_reference(data),
            "the fast decoder disagrees with the reference"
        );
        if let Ok(Decoded { messages, .. }) = fast {
            let again = reencode(&messages);
            assert!(
                again.len() - OVERHEAD_BYTES <= data.len(),
                "re-encoding grew the body"
            );
        }
    }
}

/// Encode `messages` into one datagram, check it decodes to the same, and return it.
fn reencode(messages: &[Message]) -> Vec<u8> {
    let mut builder = DatagramBuilder::new(DATAGRAM_MAX_BYTES);
    for message in messages {
        assert!(
            builder.try_push(&encode_message(message)),
            "a decoded message does not fit again: {message:?}"
        );
    }
    let again = builder.finish();
    assert_eq!(decode_datagram(&again).as_deref(), Ok(messages));
    again
}

/// The keyring of the sealed-datagram checks and their seeds: a primary and an older key still
/// accepted, as during a rotation. Fixed, so committed seeds sealed with them keep opening.
pub fn fuzz_keyring() -> Keyring {
    let mut ring = Keyring::new(Key::from_bytes(*b"hera fuzz: the primary test key."));
    ring.install(Key::from_bytes(*b"hera fuzz: an older key, rotated"))
        .expect("a ring of one has room for a second key");
    ring
}

/// A key outside [`fuzz_keyring`]: what it seals never opens there.
pub fn fuzz_foreign_key() -> Key {
    Key::from_bytes(*b"hera fuzz: a key of another ring")
}

/// The nonce the checks seal with (one fixed nonce is fine for a test key that guards nothing).
pub const FUZZ_NONCE: [u8; NONCE_BYTES] = *b"fuzz nonce 1";

/// The sealed decode path never panics, what opens decodes (or is refused) exactly as
/// [`Sealer::decode`] says, and a sealed datagram changed in any way never opens.
///
/// The first byte picks what the rest is (bits 0-1), and for mode 1 which key seals (bit 2):
///
/// | mode | rest | check |
/// |---|---|---|
/// | 0 | a datagram | opened with [`fuzz_keyring`] as a node would; whatever opens also decodes or is refused cleanly, and re-seals to the same messages |
/// | 1 | a plaintext (length prefix and body) | sealed with a ring key, it always authenticates; then as mode 0 (reaches the decoder behind the tag, and the length check) |
/// | 2 | `n: u8`, then up to `n % 8 + 1` flips (`at: u16 BE`, `xor: u8`), then a plaintext | sealed, then the flips applied: if anything changed it never opens |
/// | 3 | `len: u16 BE`, then a plaintext | sealed, then cut or zero-extended to `len` bytes: if the length changed it never opens |
pub fn check_sealed(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ring = fuzz_keyring();
    match mode % 4 {
        0 => check_open(&ring, rest),
        1 => {
            let key = &ring.keys()[usize::from(mode >> 2) % ring.keys().len()];
            let Some(sealed) = seal_verbatim(key, rest) else {
                return;
            };
            let opened = open_with(ring.keys(), &sealed);
            assert!(
                !matches!(opened, Err(DecodeError::Authentication)),
                "a datagram sealed with a ring key did not authenticate"
            );
            check_open(&ring, &sealed);
        }
        2 => {
            let mut input = Input(rest);
            let Some(n) = input.u8() else { return };
            let mut flips = Vec::new();
            for _ in 0..=n % 8 {
                let (Some(at), Some(xor)) = (input.u16(), input.u8()) else {
                    break;
                };
                flips.push((usize::from(at), xor));
            }
            let Some(good) = seal_verbatim(ring.primary(), input.0) else {
                return;
            };
            let mut bad = good.clone();
            for (at, xor) in flips {
                let len = bad.len();
                bad[at % len] ^= xor;
            }
            refuse_changed(&ring, &good, &bad);
        }
        _ => {
            let mut input = Input(rest);
            let Some(len) = input.u16() else { return };
            let Some(good) = seal_verbatim(ring.primary(), input.0) else {
                return;
            };
            let mut bad = good.clone();
            bad.resize(usize::from(len), 0);
            refuse_changed(&ring, &good, &bad);
        }
    }
}

/// `plaintext` sealed with `key` as it is, unless that would not fit a datagram.
fn seal_verbatim(key: &Key, plaintext: &[u8]) -> Option<Vec<u8>> {
    (plaintext.len() + SEALED_OVERHEAD_BYTES - 2 <= DATAGRAM_MAX_BYTES)
        .then(|| seal_plaintext(key, FUZZ_NONCE, plaintext))
}

/// Open `bytes` with `ring` both ways a node can, and check they agree with each other and
/// with a fresh seal of what decoded.
fn check_open(ring: &Keyring, bytes: &[u8]) {
    let sealer = Sealer::new(ring.clone(), FUZZ_NONCE);
    let decoded = sealer.decode(bytes);
    // As a node receives it (a sender id of its own, its clock at 0 s, as the seeds' send
    // time): the same outcome once, and a replay the second time if it opened.
    let mut node = Sealer::new(ring.clone(), [0xee; NONCE_BYTES]);
    let first = node.receive(bytes);
    assert_eq!(
        first.as_ref().map(|d| &d.messages),
        decoded.as_ref(),
        "Sealer::receive disagrees with Sealer::decode"
    );
    let again = node.receive(bytes);
    if open_with(ring.keys(), bytes).is_ok() {
        assert!(
            matches!(again, Err(DecodeError::Replayed { .. })),
            "a datagram received twice was not refused as a replay: {again:?}"
        );
    } else {
        assert_eq!(again.map(|d| d.messages), decoded.clone());
    }
    match open_with(ring.keys(), bytes) {
        Ok(opened) => {
            // The tag held: only the messages themselves can still be refused.
            let body = decode_body(opened.body());
            assert_eq!(
                decoded, body,
                "Sealer::decode disagrees with open + decode_body"
            );
            match body {
                Ok(messages) => {
                    let mut builder = DatagramBuilder::sealed(DATAGRAM_MAX_BYTES);
                    for message in &messages {
                        assert!(
                            builder.try_push(&encode_message(message)),
                            "a decoded message does not fit again: {message:?}"
                        );
                    }
                    let again = seal_with(ring.primary(), FUZZ_NONCE, builder);
                    assert!(again.len() <= bytes.len(), "re-sealing grew the datagram");
                    assert_eq!(sealer.decode(&again), Ok(messages));
                }
                Err(error) => {
                    let _ = (error.kind(), error.to_string());
                }
            }
        }
        Err(error) => {
            assert_eq!(
                decoded,
                Err(error.clone()),
                "Sealer::decode disagrees with open"
            );
            let _ = (error.kind(), error.to_string());
        }
    }
}

/// `bad` is `good`, a datagram sealed with the ring's primary key, after some change: unless
/// the change undid itself, it must not open.
fn refuse_changed(ring: &Keyring, good: &[u8], bad: &[u8]) {
    if bad == good {
        return;
    }
    match open_with(ring.keys(), bad) {
        Ok(_) => panic!("a changed sealed datagram opened"),
        Err(
            DecodeError::Authentication
            | DecodeError::TooShort { .. }
            | DecodeError::TooLong { .. },
        ) => {}
        // The plain header is checked before the tag.
        Err(
            DecodeError::BadMagic { .. }
            | DecodeError::UnsupportedVersion { .. }
            | DecodeError::UnknownFlags { .. }
            | DecodeError::LabelMismatch { .. }
            | DecodeError::Unsealed,
        ) => assert_ne!(
            good.get(..crate::wire::PREFIX_BYTES),
            bad.get(..crate::wire::PREFIX_BYTES),
            "header checks refused an intact header"
        ),
        Err(other) => panic!("a changed sealed datagram failed as {other:?}"),
    }
    check_open(ring, bad);
}

/// Members the fuzzed node may hear from or about, besides itself.
const PEERS: u8 = 4;
/// One time step unit: a step byte advances the clock by up to 2.55 s, a few probe intervals.
const TICK: Duration = Duration::from_millis(10);

/// Drive one node (lan config, fixed seed) with operations read from `data`, checking its
/// invariants after each.
///
/// The input is a sequence of operations, each a tag byte followed by its arguments; whatever
/// is left when an operation lacks its arguments is ignored:
///
/// | tag % 4 | arguments | operation |
/// |---|---|---|
/// | 0 | `from: u8`, `len: u16 BE`, `len` bytes | raw datagram from peer `from % 4` |
/// | 1 | `step: u8` | advance the clock by `step * 10 ms`, then handle timeouts |
/// | 2 | `from: u8`, `kind: u8`, `a: u32 LE`, `b: u8` | a valid datagram built by the encoder |
/// | 3 | `which: u8` | `which % 16 == 0`: leave; otherwise join through peer `which % 4` |
///
/// Valid datagrams get the fuzzer past the checksum: see [`valid_message`].
pub fn check_node(data: &[u8]) {
    let mut input = Input(data);
    let mut now = Instant::from_micros(1_700_000_000_000_000);
    let mut node = Node::new(Config::lan(), identity(), 0x5eed, now);
    let mut checker = Checker::default();
    checker.after_input(&mut node, now);
    while let Some(tag) = input.u8() {
        match tag % 4 {
            0 => {
                let (Some(from), Some(len)) = (input.u8(), input.u16()) else {
                    return;
                };
                let Some(bytes) = input.bytes(usize::from(len)) else {
                    return;
                };
                node.handle_datagram(now, peer_addr(from), bytes);
            }
            1 => {
                let Some(step) = input.u8() else { return };
                now = now + TICK * u32::from(step);
            }
            2 => {
                let (Some(from), Some(kind), Some(a), Some(b)) =
                    (input.u8(), input.u8(), input.u32(), input.u8())
                else {
                    return;
                };
                let message = valid_message(kind, a, b);
                let mut builder = DatagramBuilder::new(node.config().packet_bytes_max);
                if builder.try_push(&encode_message(&message)) {
                    node.handle_datagram(now, peer_addr(from), &builder.finish());
                }
            }
            _ => {
                let Some(which) = input.u8() else { return };
                let command = if which % 16 == 0 {
                    crate::Command::Leave
                } else {
                    crate::Command::Join {
                        seeds: vec![peer_addr(which)],
                    }
                };
                // Refusals (already leaving) are part of the contract, not a violation.
                let _ = node.handle_command(now, command);
            }
        }
        checker.after_input(&mut node, now);
    }
}

/// What the checks remember between inputs.
#[derive(Debug, Default)]
struct Checker {
    incarnation: Incarnation,
}

impl Checker {
    /// Run due timers as a driver would, drain, and check every invariant.
    fn after_input(&mut self, node: &mut Node, now: Instant) {
        let mut sink = self.checked(node, now);
        node.drain(&mut sink);
    }

    /// Run due timers, check the node's state, and return the sink that checks its outputs.
    fn checked(&mut self, node: &mut Node, now: Instant) -> CheckingSink {
        // A driver calls `handle_timeout` whenever the deadline has passed; it must then move
        // the deadline past `now`, or the driver would spin.
        if node.poll_timeout().is_some_and(|at| at <= now) {
            node.handle_timeout(now);
        }
        if let Some(at) = node.poll_timeout() {
            assert!(
                at > now,
                "deadline {at} not after now {now} once timeouts ran"
            );
        }
        // In serial order (RFC 1982), as members compare them: a refutation may wrap.
        assert!(
            node.incarnation() == self.incarnation
                || node.incarnation().is_newer_than(self.incarnation),
            "incarnation went back from {} to {}",
            self.incarnation,
            node.incarnation()
        );
        self.incarnation = node.incarnation();
        let views = node.member_views();
        assert!(views[0].is_self && views.iter().filter(|v| v.is_self).count() == 1);
        assert!(
            node.member(node.name()).is_none(),
            "holds itself as a member"
        );
        let active = node.lifecycle() == Lifecycle::Active;
        if active {
            assert_eq!(views[0].state, State::Alive, "active, yet not alive");
        }
        CheckingSink {
            name: node.name().clone(),
            incarnation: node.incarnation(),
            active,
            budget_bytes: node.config().packet_bytes_max,
        }
    }
}

/// Checks every datagram the node sends as it is drained.
#[derive(Debug)]
struct CheckingSink {
    name: NodeName,
    incarnation: Incarnation,
    active: bool,
    budget_bytes: usize,
}

impl Sink for CheckingSink {
    fn transmit(&mut self, transmit: Transmit) {
        assert!(
            transmit.payload.len() <= self.budget_bytes,
            "datagram of {} bytes over the {}-byte budget",
            transmit.payload.len(),
            self.budget_bytes
        );
        let messages = match decode_datagram(&transmit.payload) {
            Ok(messages) => messages,
            Err(error) => panic!("sent a datagram that does not decode: {error}"),
        };
        assert!(!messages.is_empty(), "sent an empty datagram");
        let about_me = messages.iter().flat_map(|m| match m {
            Message::Member(update) => std::slice::from_ref(update),
            Message::PushPull(push_pull) => push_pull.members.0.as_slice(),
            _ => &[],
        });
        for update in about_me.filter(|u| u.name == self.name) {
            assert!(
                !update.incarnation.is_newer_than(self.incarnation),
                "claims incarnation {} above its own {}",
                update.incarnation,
                self.incarnation
            );
            if self.active {
                assert_eq!(
                    update.claim,
                    Claim::Alive,
                    "active, yet tells others otherwise"
                );
            }
        }
    }

    fn event(&mut self, event: Event) {
        if let Event::MemberFailed { name } | Event::MemberLeft { name } = &event {
            assert_ne!(*name, self.name, "reported its own failure or departure");
        }
    }
}

/// A well-formed message picked by `kind`, its numbers and names taken from `a` and `b`. Claims
/// about the node itself come up often: they exercise refutation and incarnation handling.
pub fn valid_message(kind: u8, a: u32, b: u8) -> Message {
    let subject = if b & 0b1000_0000 == 0 {
        self_name()
    } else {
        peer_name(b)
    };
    let by = peer_name(b >> 2);
    let claim = match (b >> 4) % 4 {
        0 => Claim::Alive,
        1 => Claim::Suspect { by },
        2 => Claim::Failed { by },
        _ => Claim::Left,
    };
    // Usually the subject's own address, sometimes another's: name conflicts and impostors.
    let addr = match (b & 0b0100_0000 != 0, subject == self_name()) {
        (false, true) => self_addr(),
        (false, false) | (true, true) => peer_addr(b),
        (true, false) => peer_addr(b.wrapping_add(1)),
    };
    let update = MemberUpdate {
        name: subject,
        incarnation: Incarnation::new(a),
        claim,
        profile: profile(addr),
    };
    // Sequence numbers of our own probes start at 1: small ones match outstanding probes.
    let seq = if kind & 0x80 == 0 { a % 64 } else { a };
    match kind % 8 {
        0 => Message::Ping(Ping {
            seq,
            target: if b & 1 == 0 {
                self_name()
            } else {
                peer_name(b)
            },
        }),
        1 => Message::Ack(Ack { seq }),
        2 => Message::PingReq(PingReq {
            seq,
            target: peer_name(b),
            target_addr: peer_addr(b),
        }),
        3 => Message::Nack(Nack { seq }),
        4 | 5 => Message::Member(update),
        6 => Message::PushPull(PushPull {
            reply_wanted: b & 1 == 1,
            members: BoundedVec::new(vec![
                update,
                MemberUpdate {
                    name: peer_name(b.wrapping_add(1)),
                    incarnation: Incarnation::new(a / 2),
                    claim: Claim::Alive,
                    profile: profile(peer_addr(b.wrapping_add(1))),
                },
            ]),
        }),
        // Bit 6 of a kind that is otherwise a sync probe: the cluster query and its answer
        // (bit 7 picks which), so that the relay, the answer and the id memory are fuzzed too.
        7 if kind & 0x40 != 0 => query_message(kind & 0x80 != 0, a, b),
        _ => Message::SyncProbe(SyncProbe {
            members_digest: u64::from(a) << 32 | u64::from(b),
        }),
    }
}

/// A query from a peer (`answer`: a peer's answer to one, usually of ours) about a kind picked
/// by `a` (one past the known kinds: an unknown one), with a key-sized payload or none.
fn query_message(answer: bool, a: u32, b: u8) -> Message {
    // Our own ids sometimes: answers to a query we may be running, and echoes of our own.
    let asker = if b & 0b1000_0000 == 0 {
        self_name()
    } else {
        peer_name(b)
    };
    let id = QueryId { asker, seq: a % 8 };
    if answer {
        let outcome = match a % 3 {
            0 => QueryOutcome::Done(Opaque::new(vec![b; 32]).unwrap_or_default()),
            1 => QueryOutcome::Refused(BoundedString("refused".to_string())),
            _ => QueryOutcome::UnknownKind,
        };
        return Message::QueryAnswer(QueryAnswer {
            id,
            responder: peer_name(b >> 2),
            outcome,
        });
    }
    let payload = if b & 1 == 0 { Vec::new() } else { vec![b; 32] };
    Message::Query(Query {
        id,
        kind: u16::try_from(1 + a % 5).unwrap_or(0),
        // Up to about a minute: the receivers' id memory is bounded by the longest deadline.
        timeout_ms: a % 65_536,
        payload: Opaque::new(payload).unwrap_or_default(),
    })
}

fn identity() -> Identity {
    Identity {
        name: self_name(),
        addr: self_addr(),
        dc: dc(),
        tags: Vec::new(),
    }
}

fn profile(addr: SocketAddr) -> Profile {
    Profile {
        addr,
        dc: dc(),
        tags: BoundedVec::default(),
    }
}

fn self_name() -> NodeName {
    NodeName::new("fuzz-self").expect("a valid constant name")
}

fn self_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 7946))
}

fn peer_name(i: u8) -> NodeName {
    NodeName::new(&format!("peer-{}", i % PEERS)).expect("a valid generated name")
}

fn peer_addr(i: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 0, 10 + i % PEERS), 7946))
}

fn dc() -> Label {
    Label::new("dc1").expect("a valid constant label")
}

/// A cursor over the fuzzer's bytes.
#[derive(Debug)]
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_valid_message_kind_decodes() {
        for kind in 0..=255u8 {
            for b in [0u8, 0x55, 0xaa, 0xff] {
                let message = valid_message(kind, 7, b);
                let mut builder = DatagramBuilder::new(1400);
                assert!(builder.try_push(&encode_message(&message)));
                let bytes = builder.finish();
                check_decode(&bytes);
            }
        }
    }

    /// The node fuzz target reaches every message kind a peer may send, the cluster query and
    /// its answer included (they were never generated, so their handling went unfuzzed).
    #[test]
    fn valid_messages_cover_every_kind_a_peer_sends() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in 0..=255u8 {
            for b in [0u8, 0x55, 0xaa, 0xff] {
                seen.insert(format!("{:?}", valid_message(kind, 7, b).kind()));
            }
        }
        for wanted in ["Query", "QueryAnswer", "Ping", "SyncProbe", "PushPull"] {
            assert!(seen.contains(wanted), "{wanted} never generated: {seen:?}");
        }
    }

    #[test]
    fn short_and_empty_inputs_are_fine() {
        check_node(&[]);
        check_node(&[0]);
        check_node(&[1, 255, 1, 255, 1, 255]);
        check_decode(&[]);
        for mode in 0..4 {
            check_sealed(&[mode]);
            check_sealed(&[mode, 0, 0, 0]);
        }
    }

    #[test]
    fn the_fuzz_keys_are_distinct() {
        let ring = fuzz_keyring();
        assert_eq!(ring.keys().len(), 2);
        assert!(!ring.keys().contains(&fuzz_foreign_key()));
    }
}
