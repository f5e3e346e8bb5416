//! Wire format v2: round trips, every rejection path, hostile lengths and the builder's budget.
//!
//! Hand-made bodies are written byte by byte, following `docs/wire.md`, so that a change to the
//! encoding shows up here as a failing byte, not only as a failing round trip.
//!
//! Over 600 lines: the wire format's tests in one place, one section per message kind and
//! the pinned worked example of docs/wire.md; each section is short.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::bounded::{self, BoundedString, BoundedVec};
use crate::names::{Label, NodeName};

// ---- helpers ----

fn name(s: &str) -> NodeName {
    NodeName::new(s).expect("valid test name")
}

fn label(s: &str) -> Label {
    Label::new(s).expect("valid test label")
}

fn v4() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 7946))
}

fn v6() -> SocketAddr {
    // bincode carries only the IPv6 address and port: flow info and scope id must be zero to
    // survive a round trip (see docs/wire.md).
    SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xbeef),
        u16::MAX,
        0,
        0,
    ))
}

fn profile(addr: SocketAddr, tags: Vec<Tag>) -> Profile {
    Profile {
        addr,
        dc: label("dc1"),
        tags: BoundedVec::new(tags),
    }
}

/// As many tags as allowed, each key and value as long as allowed.
fn tags_at_limits() -> Vec<Tag> {
    (0..TAGS_MAX)
        .map(|i| Tag {
            key: label(&format!("{i:0>width$}", width = Label::MAX_BYTES)),
            value: BoundedString("v".repeat(TAG_VALUE_MAX_BYTES)),
        })
        .collect()
}

fn update(claim: Claim, addr: SocketAddr) -> MemberUpdate {
    MemberUpdate {
        name: name("node-b"),
        incarnation: Incarnation::new(42),
        claim,
        profile: profile(addr, vec![]),
    }
}

fn ping() -> Message {
    Message::Ping(Ping {
        seq: 7,
        target: name("node-a"),
    })
}

/// A datagram holding `messages`, built by the real encoder with the largest budget.
fn datagram(messages: &[Message]) -> Vec<u8> {
    let mut builder = DatagramBuilder::new(DATAGRAM_MAX_BYTES);
    for message in messages {
        assert!(builder.try_push(&encode_message(message)), "{message:?}");
    }
    builder.finish()
}

/// A well-formed envelope around any body, for bodies the encoder would refuse to write.
fn envelope(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OVERHEAD_BYTES + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, 0, MINOR, MAJOR_MAX]);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A message written as kind then fields (one-byte kind) put in its frame.
fn framed(message: &[u8]) -> Vec<u8> {
    encode_frame(u32::from(message[0]), &message[1..])
}

/// The start of a member update body (kind 4) about "a", alive at incarnation 0, with an IPv4
/// address: what follows is the data-centre label.
fn member_prefix() -> Vec<u8> {
    vec![
        4, // kind: Member
        1, b'a', // name
        0,    // incarnation
        0,    // claim: Alive
        0, 10, 0, 0, 1, 5, // addr: V4 10.0.0.1 port 5
    ]
}

fn invalid_name() -> DecodeError {
    DecodeError::InvalidField {
        detail: format!("Other({:?})", bounded::INVALID_NAME),
    }
}

// ---- round trips ----

#[test]
fn every_message_kind_round_trips() {
    let cases: Vec<(&str, Message)> = vec![
        ("ping", ping()),
        (
            "ping, largest seq, longest name",
            Message::Ping(Ping {
                seq: u32::MAX,
                target: name(&"n".repeat(NodeName::MAX_BYTES)),
            }),
        ),
        ("ack", Message::Ack(Ack { seq: 0 })),
        ("ack, two-byte seq", Message::Ack(Ack { seq: 251 })),
        ("nack", Message::Nack(Nack { seq: 65_536 })),
        (
            "ping-req v4",
            Message::PingReq(PingReq {
                seq: 9,
                target: name("node-c"),
                target_addr: v4(),
            }),
        ),
        (
            "ping-req v6",
            Message::PingReq(PingReq {
                seq: 9,
                target: name("node-c"),
                target_addr: v6(),
            }),
        ),
        ("member alive", Message::Member(update(Claim::Alive, v4()))),
        (
            "member suspect",
            Message::Member(update(Claim::Suspect { by: name("x") }, v6())),
        ),
        (
            "member failed",
            Message::Member(update(Claim::Failed { by: name("y.z") }, v4())),
        ),
        ("member left", Message::Member(update(Claim::Left, v6()))),
        (
            "member, tags at their limits",
            Message::Member(MemberUpdate {
                incarnation: Incarnation::new(u32::MAX),
                profile: profile(v6(), tags_at_limits()),
                ..update(Claim::Alive, v4())
            }),
        ),
        (
            "push-pull, empty",
            Message::PushPull(PushPull {
                reply_wanted: false,
                members: BoundedVec::default(),
            }),
        ),
        (
            "push-pull, every claim, both families",
            Message::PushPull(PushPull {
                reply_wanted: true,
                members: BoundedVec::new(vec![
                    update(Claim::Alive, v4()),
                    update(Claim::Suspect { by: name("s") }, v6()),
                    update(Claim::Failed { by: name("f") }, v4()),
                    update(Claim::Left, v6()),
                ]),
            }),
        ),
        (
            "push-pull, most members",
            Message::PushPull(PushPull {
                reply_wanted: true,
                members: BoundedVec::new(vec![update(Claim::Alive, v4()); PUSH_PULL_MEMBERS_MAX]),
            }),
        ),
        (
            "sync probe",
            Message::SyncProbe(SyncProbe {
                members_digest: u64::MAX,
            }),
        ),
    ];
    for (what, message) in &cases {
        let bytes = datagram(std::slice::from_ref(message));
        assert_eq!(decode_datagram(&bytes), Ok(vec![message.clone()]), "{what}");
    }
    // And all of them in one datagram, in order.
    let all: Vec<Message> = cases.into_iter().map(|(_, m)| m).collect();
    assert_eq!(decode_datagram(&datagram(&all)), Ok(all));
}

#[test]
fn an_empty_datagram_carries_no_messages() {
    let bytes = DatagramBuilder::new(1400).finish();
    assert_eq!(bytes.len(), OVERHEAD_BYTES);
    assert_eq!(decode_datagram(&bytes), Ok(vec![]));
}

#[test]
fn encoding_is_the_documented_one() {
    // docs/wire.md, "Worked example": keep the two in step.
    let bytes = datagram(&[ping()]);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "687202000102000a000807066e6f64652d614cacc3a4");
}

#[test]
fn varints_use_the_documented_byte_forms() {
    // Kind 1 (Ack), the frame's length, then the seq.
    let cases: [(u32, &[u8]); 6] = [
        (0, &[1, 1, 0]),
        (250, &[1, 1, 250]),
        (251, &[1, 3, 251, 251, 0]),
        (65_535, &[1, 3, 251, 0xff, 0xff]),
        (65_536, &[1, 5, 252, 0, 0, 1, 0]),
        (u32::MAX, &[1, 5, 252, 0xff, 0xff, 0xff, 0xff]),
    ];
    for (seq, bytes) in cases {
        assert_eq!(encode_message(&Message::Ack(Ack { seq })), bytes, "{seq}");
    }
    let digest = encode_message(&Message::SyncProbe(SyncProbe {
        members_digest: 1 << 32,
    }));
    assert_eq!(digest, [6, 9, 253, 0, 0, 0, 0, 1, 0, 0, 0]);
    // Decoders accept a longer form than needed; encoders always write the shortest.
    let long_form = envelope(&[1, 5, 252, 5, 0, 0, 0]);
    assert_eq!(
        decode_datagram(&long_form),
        Ok(vec![Message::Ack(Ack { seq: 5 })])
    );
}

#[test]
fn addresses_use_the_documented_layout() {
    let req = |addr| {
        encode_message(&Message::PingReq(PingReq {
            seq: 1,
            target: name("t"),
            target_addr: addr,
        }))
    };
    assert_eq!(
        req(v4()),
        [2, 11, 1, 1, b't', 0, 10, 0, 0, 1, 251, 0x0a, 0x1f]
    );
    let v6_bytes = req(v6());
    assert_eq!(&v6_bytes[..6], [2, 23, 1, 1, b't', 1]);
    let SocketAddr::V6(addr) = v6() else {
        unreachable!()
    };
    assert_eq!(&v6_bytes[6..22], addr.ip().octets());
    assert_eq!(&v6_bytes[22..], [251, 0xff, 0xff]);
}

// ---- rejections ----

#[test]
fn envelope_rejections() {
    let good = datagram(&[ping()]);
    let with = |at: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[at] = byte;
        bytes
    };
    let mut v3 = with(2, 3);
    // A newer peer's datagram is told apart from garbage even when its layout differs.
    v3.truncate(7);
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        ("empty", vec![], DecodeError::TooShort { len: 0 }),
        ("one byte", vec![b'h'], DecodeError::TooShort { len: 1 }),
        (
            "header only",
            good[..HEADER_BYTES].to_vec(),
            DecodeError::TooShort { len: 8 },
        ),
        (
            "one short of the overhead",
            good[..OVERHEAD_BYTES - 1].to_vec(),
            DecodeError::TooShort { len: 11 },
        ),
        (
            "over the largest UDP payload",
            vec![0; DATAGRAM_MAX_BYTES + 1],
            DecodeError::TooLong { len: 65_508 },
        ),
        (
            "bad magic",
            with(0, b'H'),
            DecodeError::BadMagic { found: *b"Hr" },
        ),
        (
            "garbage",
            vec![0xde, 0xad, 0xbe, 0xef],
            DecodeError::BadMagic {
                found: [0xde, 0xad],
            },
        ),
        (
            "version 3",
            with(2, 3),
            DecodeError::UnsupportedVersion { version: 3 },
        ),
        (
            "version 3, another layout",
            v3,
            DecodeError::UnsupportedVersion { version: 3 },
        ),
        (
            "version 1, the unframed format before it",
            with(2, 1),
            DecodeError::UnsupportedVersion { version: 1 },
        ),
        (
            "version 0",
            with(2, 0),
            DecodeError::UnsupportedVersion { version: 0 },
        ),
        (
            "undefined flag",
            with(3, 0b100),
            DecodeError::UnknownFlags { flags: 0b100 },
        ),
        (
            "sealed, and this decoder holds no key",
            with(3, flags::SEALED),
            DecodeError::UnknownFlags { flags: 1 },
        ),
        (
            "body shorter than declared",
            good[..good.len() - 1].to_vec(),
            DecodeError::Truncated {
                declared: good.len(),
                actual: good.len() - 1,
            },
        ),
        (
            "trailing bytes",
            [good.as_slice(), &[0, 0]].concat(),
            DecodeError::TrailingBytes { extra: 2 },
        ),
    ];
    for (what, bytes, error) in cases {
        assert_eq!(decode_datagram(&bytes), Err(error), "{what}");
    }
}

#[test]
fn one_flipped_bit_anywhere_is_caught() {
    let good = datagram(&[ping(), Message::Member(update(Claim::Alive, v6()))]);
    let carried = u32::from_le_bytes(good[good.len() - 4..].try_into().unwrap());
    for bit in 0..good.len() * 8 {
        let mut bytes = good.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let result = decode_datagram(&bytes);
        let at = bit / 8;
        match at {
            0..=1 => assert!(matches!(result, Err(DecodeError::BadMagic { .. }))),
            2 => assert!(matches!(
                result,
                Err(DecodeError::UnsupportedVersion { .. })
            )),
            // The label flag: what follows is read as a label hash we do not expect.
            3 if bit % 8 == 1 => assert!(matches!(result, Err(DecodeError::LabelMismatch { .. }))),
            3 => assert!(matches!(result, Err(DecodeError::UnknownFlags { .. }))),
            6..=7 => assert!(
                matches!(
                    result,
                    Err(DecodeError::Truncated { .. } | DecodeError::TrailingBytes { .. })
                ),
                "bit {bit}: {result:?}"
            ),
            _ => {
                let crc_at = good.len() - CHECKSUM_BYTES;
                let expected = u32::from_le_bytes(bytes[crc_at..].try_into().unwrap());
                let computed = crc32fast::hash(&bytes[..crc_at]);
                assert_ne!(expected, computed);
                if at >= crc_at {
                    assert_eq!(computed, carried);
                }
                assert_eq!(
                    result,
                    Err(DecodeError::Checksum { expected, computed }),
                    "bit {bit}"
                );
            }
        }
    }
}

#[test]
fn body_rejections() {
    let mut cut_ping = encode_message(&ping());
    assert_eq!(cut_ping.len(), 10);
    cut_ping.truncate(7); // in the middle of "node-a"
    let many_acks: Vec<u8> = [1, 1, 0].repeat(MESSAGES_MAX + 1);
    let with_dc = |dc: &[u8]| framed(&[member_prefix().as_slice(), dc].concat());
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        (
            "a frame cut mid-way",
            cut_ping.clone(),
            DecodeError::Truncated {
                declared: 10,
                actual: 7,
            },
        ),
        (
            "a message cut mid-way in a whole frame",
            framed(&[&[0][..], &cut_ping[2..]].concat()),
            // The payload (5 bytes) claims a 6-byte name of which 3 are there.
            DecodeError::Truncated {
                declared: 8,
                actual: 5,
            },
        ),
        (
            "a kind byte and nothing more",
            vec![0],
            DecodeError::Truncated {
                declared: 2,
                actual: 1,
            },
        ),
        (
            "a known kind with an empty frame",
            vec![1, 0],
            DecodeError::Truncated {
                declared: 1,
                actual: 0,
            },
        ),
        (
            "a frame length past the body",
            vec![200, 5, 0, 0],
            DecodeError::Truncated {
                declared: 7,
                actual: 4,
            },
        ),
        (
            "a frame kind wider than u32",
            vec![253, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            DecodeError::InvalidField {
                detail: "frame kind: invalid varint marker".into(),
            },
        ),
        (
            "a frame length marker that is no varint",
            vec![1, 254, 0],
            DecodeError::InvalidField {
                detail: "frame length: invalid varint marker".into(),
            },
        ),
        (
            "node name over its limit",
            framed(&[&[0, 0, 65][..], &[b'n'; 65]].concat()),
            DecodeError::Oversized,
        ),
        (
            "label over its limit",
            with_dc(&[[33].as_slice(), &[b'd'; 33]].concat()),
            DecodeError::Oversized,
        ),
        (
            "tag value over its limit",
            with_dc(&[&[1, b'd', 1, 1, b'k', 129][..], &[b'v'; 129]].concat()),
            DecodeError::Oversized,
        ),
        (
            "too many tags",
            with_dc(&[1, b'd', TAGS_MAX as u8 + 1]),
            DecodeError::Oversized,
        ),
        (
            "too many push-pull members",
            // 257 = varint 251, u16 LE.
            framed(&[5, 1, 251, 0x01, 0x01]),
            DecodeError::Oversized,
        ),
        (
            "unknown claim (a minor may not add one)",
            framed(&[4, 1, b'a', 0, 4]),
            DecodeError::UnknownKind { kind: 4 },
        ),
        (
            "unknown address family",
            framed(&[2, 0, 1, b't', 2]),
            DecodeError::UnknownKind { kind: 2 },
        ),
        ("256 messages", many_acks, DecodeError::TooManyMessages),
        (
            "256 frames, skipped ones counted",
            [200, 0].repeat(MESSAGES_MAX + 1),
            DecodeError::TooManyMessages,
        ),
        ("empty node name", framed(&[0, 0, 0]), invalid_name()),
        (
            "space in a node name",
            framed(&[0, 0, 3, b'a', b' ', b'b']),
            invalid_name(),
        ),
        (
            "non-ASCII node name",
            framed(&[&[0, 0, 2][..], "é".as_bytes()].concat()),
            invalid_name(),
        ),
        ("bad label", with_dc(&[1, b'/']), invalid_name()),
        (
            "bool neither 0 nor 1",
            framed(&[5, 2, 0]),
            DecodeError::InvalidField {
                detail: "InvalidBooleanValue(2)".into(),
            },
        ),
    ];
    for (what, body, error) in cases {
        assert_eq!(decode_datagram(&envelope(&body)), Err(error), "{what}");
    }
    // Exactly at the message limit is fine.
    let acks = [1, 1, 0].repeat(MESSAGES_MAX);
    assert_eq!(
        decode_datagram(&envelope(&acks)).map(|m| m.len()),
        Ok(MESSAGES_MAX)
    );
}

#[test]
fn invalid_utf8_is_an_invalid_field() {
    for (what, body) in [
        ("node name", vec![0, 0, 2, 0xc3, 0x28]),
        (
            "tag value",
            [member_prefix(), vec![1, b'd', 1, 1, b'k', 1, 0xff]].concat(),
        ),
    ] {
        match decode_datagram(&envelope(&framed(&body))) {
            Err(DecodeError::InvalidField { detail }) => {
                assert!(detail.starts_with("Utf8"), "{what}: {detail}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn hostile_length_prefixes_fail_fast() {
    // Each body claims a huge string or collection in a datagram of 20 to 36 bytes. The
    // allocation bound itself is proven in tests/wire_alloc.rs, which counts allocations.
    let u64_len = |n: u64| [&[253][..], &n.to_le_bytes()].concat();
    let u16_len = |n: u16| [&[251][..], &n.to_le_bytes()].concat();
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        (
            "name of 2^60 bytes",
            [vec![4], u64_len(1 << 60)].concat(),
            DecodeError::Oversized,
        ),
        (
            "name of 2^32 bytes",
            [vec![4], u64_len(1 << 32)].concat(),
            DecodeError::Oversized,
        ),
        (
            "name of 60,000 bytes",
            [vec![4], u16_len(60_000)].concat(),
            DecodeError::Oversized,
        ),
        (
            "2^60 members",
            [vec![5, 1], u64_len(1 << 60)].concat(),
            DecodeError::Oversized,
        ),
        (
            "2^32 members",
            [vec![5, 1], u64_len(1 << 32)].concat(),
            DecodeError::Oversized,
        ),
        (
            "60,000 members",
            [vec![5, 1], u16_len(60_000)].concat(),
            DecodeError::Oversized,
        ),
        (
            "2^60 tags",
            [member_prefix(), vec![1, b'd'], u64_len(1 << 60)].concat(),
            DecodeError::Oversized,
        ),
        (
            "u64::MAX tags",
            [member_prefix(), vec![1, b'd'], u64_len(u64::MAX)].concat(),
            DecodeError::Oversized,
        ),
        (
            "as many members as allowed, none present",
            [vec![5, 1], u16_len(PUSH_PULL_MEMBERS_MAX as u16)].concat(),
            // Counted within the frame's payload, which starts after the kind.
            DecodeError::Truncated {
                declared: 5,
                actual: 4,
            },
        ),
        (
            "longest tag value, none present",
            [member_prefix(), vec![1, b'd', 1, 1, b'k', 128]].concat(),
            DecodeError::Truncated {
                declared: member_prefix().len() - 1 + 6 + 128,
                actual: member_prefix().len() - 1 + 6,
            },
        ),
    ];
    for (what, body, error) in cases {
        let bytes = envelope(&framed(&body));
        assert!(bytes.len() <= 36, "{what}: {} bytes", bytes.len());
        assert_eq!(decode_datagram(&bytes), Err(error), "{what}");
    }
}

#[test]
fn every_error_has_a_metric_label_and_a_message() {
    let errors = [
        DecodeError::TooShort { len: 1 },
        DecodeError::TooLong { len: 1 },
        DecodeError::BadMagic { found: [0, 0] },
        DecodeError::UnsupportedVersion { version: 2 },
        DecodeError::UnknownFlags { flags: 2 },
        DecodeError::Truncated {
            declared: 2,
            actual: 1,
        },
        DecodeError::TrailingBytes { extra: 1 },
        DecodeError::Checksum {
            expected: 1,
            computed: 2,
        },
        DecodeError::Authentication,
        DecodeError::Oversized,
        DecodeError::UnknownKind { kind: 9 },
        DecodeError::TooManyMessages,
        DecodeError::InvalidField { detail: "x".into() },
        DecodeError::Unsealed,
        DecodeError::LabelMismatch {
            ours: None,
            theirs: Some(1),
        },
        DecodeError::Replayed {
            why: Replay::Duplicate,
        },
    ];
    let mut labels: Vec<_> = errors.iter().map(|e| e.kind().as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), errors.len());
    let mut known: Vec<_> = crate::wire::DecodeErrorKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    known.sort_unstable();
    assert_eq!(labels, known, "every kind is counted");
    assert!(errors.iter().all(|e| !e.to_string().is_empty()));
}

// ---- the builder ----

/// A member update whose encoded size depends on the generator: 0 to 16 tags of 0 to 128 bytes.
fn random_message(rng: &mut ChaCha8Rng) -> Message {
    let tags = (0..rng.next_u32() as usize % (TAGS_MAX + 1))
        .map(|i| Tag {
            key: label(&format!("k{i}")),
            value: BoundedString("x".repeat(rng.next_u32() as usize % (TAG_VALUE_MAX_BYTES + 1))),
        })
        .collect();
    let addr = if rng.next_u32() % 2 == 0 { v4() } else { v6() };
    let member = MemberUpdate {
        incarnation: Incarnation::new(rng.next_u32()),
        profile: profile(addr, tags),
        ..update(Claim::Alive, addr)
    };
    match rng.next_u32() % 4 {
        0 => Message::Ack(Ack {
            seq: rng.next_u32(),
        }),
        1 => Message::PushPull(PushPull {
            reply_wanted: true,
            members: BoundedVec::new(vec![member; rng.next_u32() as usize % 8]),
        }),
        _ => Message::Member(member),
    }
}

#[test]
fn the_builder_never_exceeds_its_budget() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0001);
    for round in 0..500 {
        let budget = match round % 3 {
            0 => rng.next_u32() as usize % 64,
            1 => 500 + rng.next_u32() as usize % 1_500,
            _ => rng.next_u32() as usize % (DATAGRAM_MAX_BYTES + 100),
        };
        let limit = budget.clamp(OVERHEAD_BYTES + 1, DATAGRAM_MAX_BYTES);
        let mut builder = DatagramBuilder::new(budget);
        let mut pushed = Vec::new();
        let mut refusals = 0;
        while refusals < 4 && pushed.len() < 2 * MESSAGES_MAX {
            let message = random_message(&mut rng);
            let encoded = encode_message(&message);
            let room = builder.remaining();
            if builder.try_push(&encoded) {
                assert!(encoded.len() <= room);
                pushed.push(message);
            } else {
                assert!(encoded.len() > room || builder.len() == MESSAGES_MAX);
                refusals += 1;
            }
            assert_eq!(builder.len(), pushed.len());
        }
        let bytes = builder.finish();
        assert!(
            bytes.len() <= limit,
            "round {round}: {} > {limit}",
            bytes.len()
        );
        assert_eq!(decode_datagram(&bytes), Ok(pushed), "round {round}");
    }
}

#[test]
fn the_builder_stops_at_the_message_limit() {
    let mut builder = DatagramBuilder::new(DATAGRAM_MAX_BYTES);
    let ack = encode_message(&Message::Ack(Ack { seq: 1 }));
    for _ in 0..MESSAGES_MAX {
        assert!(builder.try_push(&ack));
    }
    assert!(!builder.try_push(&ack));
    assert_eq!(
        decode_datagram(&builder.finish()).map(|m| m.len()),
        Ok(MESSAGES_MAX)
    );
}

// ---- v2: framing, versions, labels ----

/// A newer minor's datagram: a message of a kind this build does not know (skipped and
/// counted), and a known message with a field appended (read, the extra ignored).
#[test]
fn unknown_kinds_are_skipped_and_appended_fields_ignored() {
    let ack = encode_message(&Message::Ack(Ack { seq: 5 }));
    let ack_with_more = encode_frame(1, &[5, 0xaa, 0xbb, 0xcc]);
    let body = [
        encode_frame(200, &[1, 2, 3]),
        ack.clone(),
        encode_frame(1_000, &[]),
        ack_with_more,
        encode_frame(13, &[0xff; 300]),
        encode_message(&ping()),
    ]
    .concat();
    let expected = Decoded {
        messages: vec![
            Message::Ack(Ack { seq: 5 }),
            Message::Ack(Ack { seq: 5 }),
            ping(),
        ],
        skipped: 3,
    };
    assert_eq!(decode_frames(&body), Ok(expected.clone()));
    assert_eq!(decode_frames_reference(&body), Ok(expected.clone()));
    let datagram = decode_plain(&envelope(&body), None).unwrap();
    assert_eq!(datagram.messages, expected.messages);
    assert_eq!(datagram.skipped, 3);
    // A known message that is malformed inside its frame still rejects the datagram.
    let bad = [ack, encode_frame(0, &[7, 6, b'n'])].concat();
    assert!(matches!(
        decode_datagram(&envelope(&bad)),
        Err(DecodeError::Truncated { .. })
    ));
}

/// The header says which minor the sender writes and up to which major it reads; a newer
/// minor's datagram decodes, and the major to answer with is the highest both speak.
#[test]
fn the_header_advertises_the_versions_spoken() {
    let mut bytes = datagram(&[ping()]);
    assert_eq!(bytes[2..6], [VERSION, 0, MINOR, MAJOR_MAX]);
    let header = read_header(&bytes).unwrap();
    assert_eq!((header.minor, header.major_max), (MINOR, MAJOR_MAX));
    // A v2.7 peer that also reads v3.
    bytes[4] = 7;
    bytes[5] = 3;
    let crc_at = bytes.len() - CHECKSUM_BYTES;
    let crc = crc32fast::hash(&bytes[..crc_at]);
    bytes[crc_at..].copy_from_slice(&crc.to_le_bytes());
    let opened = decode_plain(&bytes, None).unwrap();
    assert_eq!((opened.header.minor, opened.header.major_max), (7, 3));
    assert_eq!(opened.messages, vec![ping()]);
    assert_eq!(major_for(None), Some(VERSION));
    assert_eq!(major_for(Some(3)), Some(VERSION));
    assert_eq!(major_for(Some(VERSION)), Some(VERSION));
    assert_eq!(major_for(Some(1)), None);
}

/// A labelled plain datagram: the hash in the header tells a mismatch apart, the label bound
/// into the CRC refuses a datagram whose header hash was rewritten.
#[test]
fn plain_datagrams_carry_and_bind_the_cluster_label() {
    let blue = ClusterLabel::new("blue").unwrap();
    let green = ClusterLabel::new("green").unwrap();
    let mut builder = DatagramBuilder::for_cluster(1_400, false, Some(&blue));
    assert_eq!(
        builder.remaining(),
        1_400 - OVERHEAD_BYTES - label::LABEL_HASH_BYTES
    );
    assert!(builder.try_push(&encode_message(&ping())));
    let bytes = builder.finish();
    assert_eq!(bytes[3], flags::LABELED);
    assert_eq!(bytes[6..10], blue.hash().to_le_bytes());
    assert_eq!(
        decode_plain(&bytes, Some(&blue)).map(|d| d.messages),
        Ok(vec![ping()])
    );
    for ours in [Some(&green), None] {
        assert_eq!(
            decode_plain(&bytes, ours),
            Err(DecodeError::LabelMismatch {
                ours: ours.map(ClusterLabel::hash),
                theirs: Some(blue.hash()),
            })
        );
    }
    // An unlabelled datagram reaching a labelled node.
    assert_eq!(
        decode_plain(&datagram(&[ping()]), Some(&blue)),
        Err(DecodeError::LabelMismatch {
            ours: Some(blue.hash()),
            theirs: None,
        })
    );
    let mut forged = bytes.clone();
    forged[6..10].copy_from_slice(&green.hash().to_le_bytes());
    assert!(matches!(
        decode_plain(&forged, Some(&green)),
        Err(DecodeError::Checksum { .. })
    ));
}

/// Minor 1 appended `owner_boot` to a live entry: it survives the wire, an entry from a
/// minor-0 sender (without it) still decodes, as "not said", and bytes a later minor appends
/// after it are ignored.
#[test]
fn an_entrys_owner_boot_is_appended_and_optional() {
    use crate::names::{InstanceId, ServiceName};
    use crate::registry::{BootId, Entry, Hlc, InstanceSpec};
    let id = InstanceId::new("web-1").unwrap();
    let owner = NodeName::new("node-a").unwrap();
    let mut instance = InstanceSpec::new(ServiceName::new("web").unwrap(), "10.0.0.1", 80)
        .into_instance(id.clone(), owner.clone(), 1_000)
        .unwrap();
    instance.owner_boot = BootId(0x1234_5678_9abc_def0);
    let entry = Entry {
        id,
        version: Hlc {
            wall_ms: 1_000,
            counter: 0,
            node: owner,
        },
        instance: Some(Box::new(instance)),
    };
    let frame = encode_message(&Message::Entry(entry.clone()));
    assert_eq!(
        decode_datagram(&envelope(&frame)),
        Ok(vec![Message::Entry(entry.clone())])
    );
    // The boot's varint is the payload's last 9 bytes (0xFD and 8 bytes); the frame header
    // is the kind and a two-byte length form (the payload is longer than 250 bytes or not).
    let header = if frame[1] <= 250 { 2 } else { 4 };
    let payload = &frame[header..];
    let minor_0 = &payload[..payload.len() - 9];
    let mut old = entry.clone();
    if let Some(i) = old.instance.as_deref_mut() {
        i.owner_boot = BootId::UNKNOWN;
    }
    assert_eq!(
        decode_datagram(&envelope(&encode_frame(7, minor_0))),
        Ok(vec![Message::Entry(old)])
    );
    let newer = [payload, &[0xee, 0xff][..]].concat();
    assert_eq!(
        decode_datagram(&envelope(&encode_frame(7, &newer))),
        Ok(vec![Message::Entry(entry)])
    );
}

/// An entry carries its id twice (the entry's and its instance's); the registry's indexes go
/// by both, so an entry in which they differ (only a crafted one can) is refused where it is
/// read, as a malformed field, before any state sees it.
#[test]
fn an_entry_whose_instance_names_another_id_is_refused_by_the_decoder() {
    use crate::names::{InstanceId, ServiceName};
    use crate::registry::{Entry, Hlc, InstanceSpec};
    let owner = NodeName::new("node-a").unwrap();
    let instance = InstanceSpec::new(ServiceName::new("web").unwrap(), "10.0.0.1", 80)
        .into_instance(InstanceId::new("web-2").unwrap(), owner.clone(), 1_000)
        .unwrap();
    let entry = Entry {
        id: InstanceId::new("web-1").unwrap(),
        version: Hlc {
            wall_ms: 1_000,
            counter: 0,
            node: owner,
        },
        instance: Some(Box::new(instance)),
    };
    let frame = encode_message(&Message::Entry(entry));
    assert!(matches!(
        decode_datagram(&envelope(&frame)),
        Err(DecodeError::InvalidField { .. })
    ));
}
