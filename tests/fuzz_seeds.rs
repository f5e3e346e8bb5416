//! Replays the fuzz corpus seeds under `fuzz/seeds/` through the fuzz targets' checks, so that
//! `cargo test --features fuzzing` (as scripts/test.sh runs it) covers them without cargo-fuzz.
//!
//! The generated seeds are written by the real encoder (and, for `decode_sealed`, sealed with
//! the fixed test keys of `hera::fuzzing::fuzz_keyring`). `seeds_match_the_encoder` fails when the
//! encoding changes; regenerate them with
//! `HERA_WRITE_SEEDS=1 cargo test --features fuzzing --test fuzz_seeds seeds_match` (the DNS seeds need the
//! default `runtime` feature).
//!
//! Over 600 lines: one replay and one seed writer per fuzz target, kept together so a new
//! target cannot get its fuzzing without its seeds.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use hera::bounded::{BoundedString, BoundedVec};
use hera::fuzzing::{
    check_cluster, check_decode, check_node, check_sealed, fuzz_foreign_key, fuzz_keyring,
    valid_message, FUZZ_NONCE,
};
use hera::names::{Label, NodeName};
use hera::wire::seal::seal_with;
use hera::wire::{
    encode_message, flags, Ack, Claim, DatagramBuilder, Incarnation, Key, MemberUpdate, Message,
    Nack, Opaque, Ping, PingReq, Profile, PushPull, Query, QueryAnswer, QueryId, QueryOutcome,
    SyncProbe, Tag, DATAGRAM_MAX_BYTES, HEADER_BYTES, TAGS_MAX, TAG_VALUE_MAX_BYTES,
};

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
}

fn name(s: &str) -> NodeName {
    NodeName::new(s).expect("valid seed name")
}

fn label(s: &str) -> Label {
    Label::new(s).expect("valid seed label")
}

fn datagram(messages: &[Message]) -> Vec<u8> {
    let mut builder = DatagramBuilder::new(DATAGRAM_MAX_BYTES);
    for message in messages {
        assert!(builder.try_push(&encode_message(message)));
    }
    builder.finish()
}

/// Re-seal `bytes` after an edit: fix the body length and the CRC.
fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(bytes.len().saturating_sub(4));
    let body_len = (bytes.len() - HEADER_BYTES) as u16;
    bytes[HEADER_BYTES - 2..HEADER_BYTES].copy_from_slice(&body_len.to_be_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

fn member(claim: Claim, addr: SocketAddr, tags: Vec<Tag>) -> MemberUpdate {
    MemberUpdate {
        name: name("peer-1"),
        incarnation: Incarnation::new(3),
        claim,
        profile: Profile {
            addr,
            dc: label("dc1"),
            tags: BoundedVec::new(tags),
        },
    }
}

fn v4() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 0, 11), 7946))
}

fn v6() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, 7946))
}

/// Valid datagrams of every kind, and the edge cases the decoder must reject.
fn query_id() -> QueryId {
    QueryId {
        asker: name("peer-1"),
        seq: 3,
    }
}

fn decode_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let ping = Message::Ping(Ping {
        seq: 1,
        target: name("fuzz-self"),
    });
    let full_tags: Vec<Tag> = (0..TAGS_MAX)
        .map(|i| Tag {
            key: label(&format!("key-{i}")),
            value: BoundedString("v".repeat(TAG_VALUE_MAX_BYTES)),
        })
        .collect();
    let ping_bytes = datagram(std::slice::from_ref(&ping));
    let with = |at: usize, byte: u8| {
        let mut bytes = ping_bytes.clone();
        bytes[at] = byte;
        bytes
    };
    vec![
        ("ping", ping_bytes.clone()),
        ("ack", datagram(&[Message::Ack(Ack { seq: 70_000 })])),
        ("nack", datagram(&[Message::Nack(Nack { seq: 2 })])),
        (
            "ping-req-v4",
            datagram(&[Message::PingReq(PingReq {
                seq: 3,
                target: name("peer-2"),
                target_addr: v4(),
            })]),
        ),
        (
            "ping-req-v6",
            datagram(&[Message::PingReq(PingReq {
                seq: 3,
                target: name("peer-2"),
                target_addr: v6(),
            })]),
        ),
        (
            "member-alive",
            datagram(&[Message::Member(member(Claim::Alive, v4(), vec![]))]),
        ),
        (
            "member-suspect",
            datagram(&[Message::Member(member(
                Claim::Suspect { by: name("peer-2") },
                v4(),
                vec![],
            ))]),
        ),
        (
            "member-failed",
            datagram(&[Message::Member(member(
                Claim::Failed { by: name("peer-2") },
                v6(),
                vec![],
            ))]),
        ),
        (
            "member-left",
            datagram(&[Message::Member(member(Claim::Left, v4(), vec![]))]),
        ),
        (
            "member-full-tags",
            datagram(&[Message::Member(member(Claim::Alive, v6(), full_tags))]),
        ),
        (
            "push-pull",
            datagram(&[Message::PushPull(PushPull {
                reply_wanted: true,
                members: BoundedVec::new(vec![
                    member(Claim::Alive, v4(), vec![]),
                    member(Claim::Suspect { by: name("x") }, v6(), vec![]),
                ]),
            })]),
        ),
        (
            "sync-probe",
            datagram(&[Message::SyncProbe(SyncProbe {
                members_digest: 0x0123_4567_89ab_cdef,
            })]),
        ),
        (
            "several",
            datagram(&[
                ping.clone(),
                Message::Ack(Ack { seq: 1 }),
                Message::Member(member(Claim::Alive, v4(), vec![])),
            ]),
        ),
        ("empty-body", DatagramBuilder::new(1400).finish()),
        ("empty", vec![]),
        ("bad-magic", with(0, b'x')),
        ("version-3", with(2, 3)),
        ("version-1", with(2, 1)),
        ("newer-minor", reseal(with(4, 9))),
        ("labelled", with(3, flags::LABELED)),
        ("sealed", with(3, flags::SEALED)),
        ("truncated", ping_bytes[..ping_bytes.len() - 1].to_vec()),
        ("trailing", [ping_bytes.as_slice(), &[0]].concat()),
        ("bad-crc", with(ping_bytes.len() - 1, 0)),
        (
            "unknown-kind-skipped",
            reseal(
                [
                    &ping_bytes[..ping_bytes.len() - 4],
                    &[200, 2, 0xaa, 0xbb],
                    &[0; 4],
                ]
                .concat(),
            ),
        ),
        (
            "appended-field",
            reseal([&ping_bytes[..HEADER_BYTES], &[1, 3, 7, 0xaa, 0xbb], &[0; 4]].concat()),
        ),
        (
            "frame-past-the-body",
            reseal([&ping_bytes[..HEADER_BYTES], &[200, 9, 0], &[0; 4]].concat()),
        ),
        (
            "name-2-pow-60",
            reseal(
                [
                    &ping_bytes[..HEADER_BYTES],
                    &[4, 9, 253],
                    &(1u64 << 60).to_le_bytes(),
                    &[0; 4],
                ]
                .concat(),
            ),
        ),
        (
            "members-60000",
            reseal(
                [
                    &ping_bytes[..HEADER_BYTES],
                    &[5, 4, 1, 251, 0x60, 0xea],
                    &[0; 4],
                ]
                .concat(),
            ),
        ),
        (
            "too-many-messages",
            reseal(
                [
                    &ping_bytes[..HEADER_BYTES],
                    &[1, 1, 0].repeat(256)[..],
                    &[0; 4],
                ]
                .concat(),
            ),
        ),
        (
            "query",
            datagram(&[Message::Query(Query {
                id: query_id(),
                kind: 2,
                timeout_ms: 5_000,
                payload: Opaque::new(vec![7; 32]).expect("a key fits"),
            })]),
        ),
        (
            "query-answer-done",
            datagram(&[Message::QueryAnswer(QueryAnswer {
                id: query_id(),
                responder: name("peer-2"),
                outcome: QueryOutcome::Done(Opaque::new(vec![7; 64]).expect("two keys fit")),
            })]),
        ),
        (
            "query-answer-refused",
            datagram(&[Message::QueryAnswer(QueryAnswer {
                id: query_id(),
                responder: name("peer-2"),
                outcome: QueryOutcome::Refused(BoundedString("no such key".into())),
            })]),
        ),
        (
            "query-answer-unknown-kind",
            datagram(&[Message::QueryAnswer(QueryAnswer {
                id: query_id(),
                responder: name("peer-2"),
                outcome: QueryOutcome::UnknownKind,
            })]),
        ),
    ]
}

/// Operation sequences for `check_node` (framing in `hera::fuzzing::check_node`).
fn node_seeds() -> Vec<(&'static str, Vec<u8>)> {
    /// Tag 0: a raw datagram from peer `from`.
    fn raw(from: u8, bytes: &[u8]) -> Vec<u8> {
        [&[0, from][..], &(bytes.len() as u16).to_be_bytes(), bytes].concat()
    }
    /// Tag 2: a valid message built from (kind, a, b).
    fn valid(from: u8, kind: u8, a: u32, b: u8) -> Vec<u8> {
        [&[2, from, kind][..], &a.to_le_bytes(), &[b]].concat()
    }
    fn tick(steps: u8) -> Vec<u8> {
        vec![1, steps]
    }
    let join = vec![3, 1];
    let leave = vec![3, 0];
    // A peer answers the join with its table: the node then has members to probe.
    let push_pull_reply = datagram(&[Message::PushPull(PushPull {
        reply_wanted: false,
        members: BoundedVec::new(
            (0..4)
                .map(|i| MemberUpdate {
                    name: name(&format!("peer-{i}")),
                    incarnation: Incarnation::new(1),
                    claim: Claim::Alive,
                    profile: Profile {
                        addr: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 10 + i), 7946)),
                        dc: label("dc1"),
                        tags: BoundedVec::default(),
                    },
                })
                .collect(),
        ),
    })]);
    let cluster = [join.clone(), raw(1, &push_pull_reply)].concat();
    let ticks = |n: usize| tick(100).repeat(n);
    // valid_message's `b`: bit 7 picks a peer as subject, bits 4-5 the claim, bit 6 the address.
    let (alive, suspect, failed, left) = (0x00, 0x10, 0x20, 0x30);
    vec![
        ("idle", ticks(10)),
        ("join-unanswered", [join.clone(), ticks(40)].concat()),
        ("cluster", [cluster.clone(), ticks(20)].concat()),
        (
            "cluster-silent-peers-fail",
            [cluster.clone(), tick(255).repeat(40)].concat(),
        ),
        (
            "suspected-self",
            [cluster.clone(), valid(2, 4, 0, suspect), ticks(5)].concat(),
        ),
        (
            "failed-self-high-incarnation",
            [valid(2, 4, 1_000, failed), ticks(2)].concat(),
        ),
        (
            "left-self-max-incarnation",
            [
                valid(2, 4, u32::MAX, left),
                valid(2, 4, u32::MAX, suspect),
                ticks(2),
            ]
            .concat(),
        ),
        (
            "impostor-alive-self",
            [valid(3, 4, 5, alive | 0x40), ticks(2)].concat(),
        ),
        (
            "peer-suspected-then-refuted",
            [
                cluster.clone(),
                valid(0, 4, 1, 0x80 | 0x01 | suspect),
                tick(30),
                valid(1, 4, 2, 0x80 | 0x01 | alive),
                ticks(10),
            ]
            .concat(),
        ),
        (
            "peer-failed-name-conflict",
            [
                cluster.clone(),
                valid(0, 4, 9, 0x80 | 0x02 | failed),
                valid(0, 4, 10, 0x80 | 0x02 | 0x40 | alive),
                ticks(5),
            ]
            .concat(),
        ),
        (
            "probes-answered",
            [
                cluster.clone(),
                tick(100),
                valid(1, 1, 1, 0),
                tick(100),
                valid(2, 1, 2, 0),
                valid(3, 3, 3, 0),
                ticks(5),
            ]
            .concat(),
        ),
        (
            "ping-and-ping-req",
            [
                cluster.clone(),
                valid(1, 0, 4, 0),
                valid(1, 2, 5, 0x83),
                ticks(3),
            ]
            .concat(),
        ),
        (
            "push-pull-wanting-reply",
            [valid(1, 6, 7, 0x81), ticks(2)].concat(),
        ),
        (
            "sync-probe",
            [cluster.clone(), valid(1, 7, 99, 3), ticks(3)].concat(),
        ),
        // valid_message's kind 0x47 is a peer's cluster query (the kind from `a`: 1 lists the
        // keyring, 2 installs the payload as a key, 5 is unknown), 0xC7 an answer to one.
        (
            "query-relayed-and-answered",
            [
                cluster.clone(),
                valid(1, 0x47, 0, 0x80),
                valid(2, 0x47, 1, 0x81),
                valid(3, 0x47, 4, 0x82),
                valid(1, 0x47, 0, 0x80),
                valid(2, 0xC7, 1, 0x00),
                ticks(3),
            ]
            .concat(),
        ),
        ("leave-alone", [leave.clone(), ticks(5)].concat()),
        (
            "leave-in-cluster",
            [
                cluster.clone(),
                tick(50),
                leave,
                ticks(10),
                valid(1, 4, 1, suspect),
            ]
            .concat(),
        ),
        (
            "garbage-datagrams",
            [
                raw(0, b"hello"),
                raw(1, &[0x68, 0x72, 2, 0]),
                raw(2, &push_pull_reply[..push_pull_reply.len() - 1]),
                ticks(2),
            ]
            .concat(),
        ),
    ]
}

/// Inputs for `check_sealed` (framing in `hera::fuzzing::check_sealed`: the first byte is the
/// mode). Sealed with the fixed keys of `hera::fuzzing::fuzz_keyring` and its fixed nonce.
fn sealed_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let ring = fuzz_keyring();
    let (primary, older) = (&ring.keys()[0], &ring.keys()[1]);
    let ping = Message::Ping(Ping {
        seq: 1,
        target: name("fuzz-self"),
    });
    let several = [
        ping.clone(),
        Message::Ack(Ack { seq: 1 }),
        Message::Member(member(Claim::Alive, v4(), vec![])),
    ];
    let full: Vec<Message> = (0..200)
        .map(|i| {
            let mut update = member(Claim::Alive, v4(), vec![]);
            update.name = name(&format!("peer-{i}"));
            Message::Member(update)
        })
        .collect();
    let sealed = |key: &Key, messages: &[Message]| {
        let mut builder = DatagramBuilder::sealed(1_400);
        for message in messages {
            if !builder.try_push(&encode_message(message)) {
                break;
            }
        }
        seal_with(key, FUZZ_NONCE, builder)
    };
    /// Mode 1-3 inputs carry a plaintext: the big-endian body length, then the body.
    fn plaintext(messages: &[Message]) -> Vec<u8> {
        let body: Vec<u8> = messages.iter().flat_map(encode_message).collect();
        [&(body.len() as u16).to_be_bytes()[..], &body].concat()
    }
    let with = |mode: &[u8], rest: &[u8]| [mode, rest].concat();
    let good = sealed(primary, std::slice::from_ref(&ping));
    let flipped = |at: usize, xor: u8| {
        let mut bytes = good.clone();
        bytes[at] ^= xor;
        with(&[0], &bytes)
    };
    let ping_plain = plaintext(std::slice::from_ref(&ping));
    let body_len = ping_plain.len() - 2;
    // A plaintext whose body is fine but whose prefix says otherwise.
    let prefixed =
        |declared: usize| [&(declared as u16).to_be_bytes()[..], &ping_plain[2..]].concat();
    // Mode 2: `n`, then (at: u16 BE, xor) flips, then the plaintext.
    let flips = |list: &[(u16, u8)]| {
        let mut bytes = vec![2, list.len().saturating_sub(1) as u8];
        for (at, xor) in list {
            bytes.extend_from_slice(&at.to_be_bytes());
            bytes.push(*xor);
        }
        bytes.extend_from_slice(&ping_plain);
        bytes
    };
    let resized = |len: u16| [&[3][..], &len.to_be_bytes(), &ping_plain].concat();
    let sealed_len = good.len() as u16;
    vec![
        // Mode 0: datagrams as a node receives them.
        ("open-ping", with(&[0], &good)),
        ("open-several", with(&[0], &sealed(primary, &several))),
        ("open-full", with(&[0], &sealed(primary, &full))),
        ("open-older-key", with(&[0], &sealed(older, &several))),
        ("open-empty-body", with(&[0], &sealed(primary, &[]))),
        (
            "open-foreign-key",
            with(&[0], &sealed(&fuzz_foreign_key(), &several)),
        ),
        ("open-truncated", with(&[0], &good[..good.len() - 1])),
        ("open-header-only", with(&[0], &good[..22])),
        ("open-trailing", with(&[0], &[&good[..], &[0]].concat())),
        ("open-tampered-time", flipped(6, 0x01)),
        ("open-tampered-nonce", flipped(12, 0x01)),
        ("open-tampered-minor", flipped(4, 0x01)),
        ("open-tampered-ciphertext", flipped(24, 0x80)),
        ("open-tampered-tag", flipped(good.len() - 1, 0x01)),
        ("open-flags-unknown", flipped(3, 0x04)),
        ("open-flags-labelled", flipped(3, 0x02)),
        ("open-flags-plain", flipped(3, 0x01)),
        ("open-version-1", flipped(2, 0x03)),
        (
            "open-unsealed",
            with(&[0], &datagram(std::slice::from_ref(&ping))),
        ),
        // Mode 1: plaintexts sealed by the check itself (bit 2 picks the older key).
        ("plain-ping", with(&[1], &ping_plain)),
        ("plain-older-key", with(&[1 | 4], &plaintext(&several))),
        ("plain-empty", with(&[1], &[0, 0])),
        ("plain-no-prefix", vec![1]),
        ("plain-prefix-long", with(&[1], &prefixed(body_len + 1))),
        ("plain-prefix-short", with(&[1], &prefixed(body_len - 1))),
        ("plain-unknown-kind", with(&[1], &[0, 5, 200, 3, 0, 0, 0])),
        (
            "plain-push-pull",
            with(
                &[1],
                &plaintext(&[Message::PushPull(PushPull {
                    reply_wanted: true,
                    members: BoundedVec::new(vec![member(Claim::Left, v6(), vec![])]),
                })]),
            ),
        ),
        // Mode 2: a valid seal, then flips.
        ("flip-nonce", flips(&[(15, 0xff)])),
        ("flip-time", flips(&[(7, 0x01)])),
        (
            "flip-ciphertext-and-tag",
            flips(&[(17, 0x01), (sealed_len - 2, 0x40)]),
        ),
        ("flip-magic", flips(&[(0, 0x20)])),
        ("flip-undone", flips(&[(9, 0x10), (9, 0x10)])),
        ("flip-none", flips(&[(9, 0)])),
        // Mode 3: a valid seal, then cut or extended.
        ("cut-one", resized(sealed_len - 1)),
        ("cut-to-header", resized(6)),
        ("cut-to-nothing", resized(0)),
        ("extend-one", resized(sealed_len + 1)),
        ("extend-past-max", resized(u16::MAX)),
        ("same-length", resized(sealed_len)),
    ]
}

/// Operation sequences for the `cluster` target (see `hera::fuzzing::check_cluster`).
fn cluster_seeds() -> Vec<(&'static str, Vec<u8>)> {
    /// Deliver every datagram in flight, in order, `rounds` times over, with time between.
    fn deliver(rounds: usize) -> Vec<u8> {
        let mut ops = Vec::new();
        for _ in 0..rounds {
            for _ in 0..8 {
                ops.extend([0, 0, 0]);
            }
            ops.extend([1, 10]);
        }
        ops
    }
    /// Tag 2: a valid message to `to` from `from` (3: the stranger).
    fn inject(to: u8, from: u8, kind: u8, a: u32, b: u8) -> Vec<u8> {
        [&[2, to, from, kind][..], &a.to_le_bytes(), &[b]].concat()
    }
    let formed = deliver(30);
    let mut amplify = formed.clone();
    // From the stranger: a registry digest asking for ours, a wrong sync probe, a join, then
    // each repeated 255 times in one datagram.
    for kind in [8u8, 6, 5, 0, 9, 7] {
        amplify.extend(inject(0, 3, kind, 7, 1));
        amplify.extend([3, 0, 255]);
    }
    let mut claims = formed.clone();
    // A member's address claims another left, failed at a huge incarnation, then a visitor.
    claims.extend(inject(1, 0, 4, u32::MAX, 0b0011_0010));
    claims.extend(inject(2, 0, 4, u32::MAX - 1, 0b0010_0001));
    claims.extend(inject(0, 1, 4, 3, 0b1100_0000));
    claims.extend(deliver(20));
    let mut lossy = Vec::new();
    for _ in 0..40 {
        lossy.extend([0, 3, 1, 0, 0, 0, 1, 7]);
    }
    vec![
        ("formed", formed),
        ("stranger-amplifiers", amplify),
        ("member-claims", claims),
        ("lossy", lossy),
    ]
}

fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for (target, seeds) in [
        ("decode_datagram", decode_seeds()),
        ("node_datagrams", node_seeds()),
        ("decode_sealed", sealed_seeds()),
        ("cluster", cluster_seeds()),
    ] {
        out.extend(seed_files(target, seeds));
    }
    out
}

/// Where each of a target's generated seeds is kept.
fn seed_files(target: &str, seeds: Vec<(&str, Vec<u8>)>) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = seeds_dir(target);
    seeds
        .into_iter()
        .map(|(seed, bytes)| (dir.join(format!("{seed}.bin")), bytes))
        .collect()
}

#[test]
fn seeds_match_the_encoder() {
    seeds_match(generated());
}

/// Each seed file holds what the writer makes now; with `HERA_WRITE_SEEDS` set, they are
/// written instead.
fn seeds_match(files: Vec<(PathBuf, Vec<u8>)>) {
    let write = std::env::var_os("HERA_WRITE_SEEDS").is_some();
    for (path, bytes) in files {
        if write {
            fs::create_dir_all(path.parent().expect("seed files live in a directory"))
                .expect("create the seed directory");
            fs::write(&path, &bytes).expect("write a seed");
            continue;
        }
        let on_disk = fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; regenerate with HERA_WRITE_SEEDS=1",
                path.display()
            )
        });
        assert_eq!(
            on_disk,
            bytes,
            "{} is stale; regenerate with HERA_WRITE_SEEDS=1",
            path.display()
        );
    }
}

#[test]
fn every_seed_passes_every_check() {
    let mut replayed = 0;
    for target in [
        "decode_datagram",
        "node_datagrams",
        "decode_sealed",
        "cluster",
    ] {
        let dir = seeds_dir(target);
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let bytes = fs::read(&path).expect("a readable seed");
            // Any target's seeds are fair input for the others: a datagram is a short op
            // sequence, an op sequence is (usually) garbage to the decoder, and both are
            // inputs of some mode to the sealed check.
            check_decode(&bytes);
            check_node(&bytes);
            check_sealed(&bytes);
            check_cluster(&bytes);
            replayed += 1;
        }
    }
    assert!(replayed >= 70, "only {replayed} seeds found");
}

#[test]
fn sealed_seeds_open_only_when_intact() {
    let sealer = hera::wire::Sealer::new(fuzz_keyring(), FUZZ_NONCE);
    let opening = [
        "open-ping",
        "open-several",
        "open-full",
        "open-older-key",
        "open-empty-body",
    ];
    for (seed, bytes) in sealed_seeds() {
        if !seed.starts_with("open-") {
            continue;
        }
        let result = sealer.decode(&bytes[1..]);
        assert_eq!(
            result.is_ok(),
            opening.contains(&seed),
            "{seed}: {result:?}"
        );
    }
    let full = sealed_seeds()
        .into_iter()
        .find(|(seed, _)| *seed == "open-full")
        .expect("a full seed")
        .1;
    assert!(full.len() > 1_350, "open-full is {} bytes", full.len());
}

#[test]
fn valid_messages_cover_every_kind() {
    let kinds: std::collections::BTreeSet<_> = (0..8)
        .map(|kind| valid_message(kind, 1, 0).kind())
        .collect();
    assert_eq!(kinds.len(), 7);
}

/// The config file target's seeds (hand-written TOML in `fuzz/seeds/config_file/`: the example
/// node.toml, zero, sub-millisecond and absurd values, wrong types, unknown keys, the largest
/// values allowed) pass its check, and the example and the largest values are accepted.
#[cfg(feature = "runtime")]
#[test]
fn config_file_seeds_pass_the_check() {
    let dir = seeds_dir("config_file");
    let mut replayed = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let bytes = fs::read(&path).expect("a readable seed");
        hera::fuzzing::check_config_file(&bytes);
        replayed += 1;
    }
    assert!(replayed >= 10, "only {replayed} seeds found");
    for accepted in ["node.toml", "largest.toml"] {
        let text = fs::read_to_string(dir.join(accepted)).expect("a readable seed");
        let file = hera::runtime::settings::FileSettings::parse(&text).expect(accepted);
        let cli = hera::runtime::settings::Overrides {
            name: Some("seed".to_string()),
            ..Default::default()
        };
        hera::runtime::settings::Settings::resolve(Some((&dir.join(accepted), file)), cli)
            .expect(accepted);
    }
}

/// The HTTP target's seeds (one or more per route in docs/http-api.md, hand-written: an input
/// is `METHOD\nPATH?QUERY\nBODY`), replayed against a real node on loopback.
#[cfg(feature = "runtime")]
#[test]
fn every_http_seed_keeps_the_http_promises() {
    let target = hera::runtime::http::fuzzing::HttpTarget::start();
    let dir = seeds_dir("http_request");
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut replayed = 0;
    let mut answered = 0;
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let bytes = fs::read(&path).expect("a readable seed");
        if target.check(&bytes).status.is_some() {
            answered += 1;
        }
        replayed += 1;
    }
    assert!(replayed >= 45, "only {replayed} seeds found");
    assert!(
        answered >= 45,
        "only {answered} of {replayed} seeds answered"
    );
}

/// The DNS face's fuzz target (`fuzz/fuzz_targets/dns_query.rs`): its seeds, written from the
/// hickory encoder (questions) and by hand (the hostile ones), and their replay.
#[cfg(feature = "runtime")]
mod dns {
    use super::*;
    use hera::runtime::dns::fuzzing::check_query;
    use hera::runtime::dns::query::question;
    use hickory_resolver::proto::rr::RecordType;

    /// A 12-byte header: id 0x4242, flags, then the four counts.
    fn header(flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut out = vec![0x42, 0x42];
        out.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            out.extend_from_slice(&c.to_be_bytes());
        }
        out
    }

    pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
        let q = |name: &str, t: RecordType| question(0x4242, name, t, None);
        let e = |name: &str, t: RecordType, size: u16| question(0x4242, name, t, Some(size));
        let a = q("db.service.consul.", RecordType::A);
        let with = |at: usize, byte: u8| {
            let mut bytes = a.clone();
            bytes[at] = byte;
            bytes
        };
        let class_at = a.len() - 1;
        let long_name = format!("{}service.consul.", "a.".repeat(120));
        let mut loop_name = header(0x0100, [1, 0, 0, 0]);
        loop_name.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        let mut forward = header(0x0100, [1, 0, 0, 0]);
        forward.extend_from_slice(&[0xc0, 0x20, 0, 1, 0, 1]);
        let mut two_opts = e("db.service.consul.", RecordType::A, 1232);
        let opt = two_opts[two_opts.len() - 11..].to_vec();
        two_opts.extend_from_slice(&opt);
        two_opts[11] = 2;
        let mut edns_v1 = e("db.service.consul.", RecordType::A, 1232);
        let version_at = edns_v1.len() - 5;
        edns_v1[version_at] = 1;
        let mut binary_label = header(0x0100, [1, 0, 0, 0]);
        binary_label.extend_from_slice(&[3, 0xff, 0x00, b'.', 7]);
        binary_label.extend_from_slice(b"service");
        binary_label.extend_from_slice(&[6]);
        binary_label.extend_from_slice(b"consul");
        binary_label.extend_from_slice(&[0, 0, 1, 0, 1]);
        vec![
            ("a-service", a.clone()),
            ("aaaa-service", q("web.service.consul.", RecordType::AAAA)),
            ("a-big-service", q("web.service.consul.", RecordType::A)),
            (
                "a-big-service-edns",
                e("web.service.consul.", RecordType::A, 4096),
            ),
            (
                "srv-big-service",
                q("_web._tcp.service.consul.", RecordType::SRV),
            ),
            (
                "srv-tag-dc",
                e("_web._v2.service.dc1.consul.", RecordType::SRV, 1232),
            ),
            ("a-tag", q("v1.web.service.consul.", RecordType::A)),
            ("any-service", q("web.service.consul.", RecordType::ANY)),
            ("a-node", q("fuzz-node.node.dc1.consul.", RecordType::A)),
            ("a-addr", q("0a000001.addr.consul.", RecordType::A)),
            ("ptr", q("1.0.0.127.in-addr.arpa.", RecordType::PTR)),
            (
                "ptr-v6",
                q(&format!("{}ip6.arpa.", "0.".repeat(32)), RecordType::PTR),
            ),
            ("soa-apex", q("consul.", RecordType::SOA)),
            ("nxdomain", q("nope.service.consul.", RecordType::A)),
            ("outside", q("example.com.", RecordType::A)),
            ("axfr", q("consul.", RecordType::AXFR)),
            ("long-name", q(&long_name, RecordType::A)),
            ("class-chaos", with(class_at, 3)),
            ("class-hesiod", with(class_at, 4)),
            ("class-none", with(class_at, 254)),
            ("class-any", with(class_at, 255)),
            ("response-bit", with(2, 0x81)),
            ("opcode-notify", with(2, 0x21)),
            ("opcode-update", with(2, 0x29)),
            (
                "qdcount-65535",
                [&header(0x0100, [0xffff, 0, 0, 0])[..], &a[12..]].concat(),
            ),
            (
                "arcount-65535",
                [&header(0x0100, [1, 0, 0, 0xffff])[..], &a[12..]].concat(),
            ),
            (
                "ancount-1",
                [&header(0x0100, [1, 1, 0, 0])[..], &a[12..]].concat(),
            ),
            ("no-question", header(0x0100, [0, 0, 0, 0])),
            ("compression-loop", loop_name),
            ("compression-forward", forward),
            ("binary-label", binary_label),
            ("two-opt-records", two_opts),
            ("edns-version-1", edns_v1),
            ("edns-payload-0", e("web.service.consul.", RecordType::A, 0)),
            ("truncated", a[..a.len() - 2].to_vec()),
            ("header-only", a[..12].to_vec()),
            ("short", a[..5].to_vec()),
            ("empty", Vec::new()),
        ]
    }

    #[test]
    fn dns_seeds_match_the_encoder() {
        seeds_match(seed_files("dns_query", seeds()));
    }

    #[test]
    fn every_seed_passes_the_dns_check() {
        let mut replayed = 0;
        for target in [
            "dns_query",
            "decode_datagram",
            "node_datagrams",
            "decode_sealed",
        ] {
            let dir = seeds_dir(target);
            for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                check_query(&fs::read(entry.expect("an entry").path()).expect("a seed"));
                replayed += 1;
            }
        }
        assert!(replayed >= 110, "only {replayed} seeds found");
    }
}

/// The data_dir fuzz target (`fuzz/fuzz_targets/data_dir.rs`): its seeds, each file written by
/// the store's own encoders (the compaction's `instances.json`, the log's framing) and then
/// broken as a disk, a crash or a hand can break it; and their replay.
#[cfg(feature = "runtime")]
mod data_dir {
    use super::*;
    use hera::runtime::store::format::{
        to_file_bytes, CheckStateRecord, ConfigFile, InstanceRecord, KeyringFile, LogRecord,
        MemberRecord, MembersFile, NodeChecksFile, ProtocolFile, CHECKS_FILE, CONFIG_FILE, FORMAT,
        INSTANCES_FILE, INSTANCES_LOG_FILE, KEYRING_FILE, MEMBERS_FILE, PROTOCOL_FILE,
    };
    use hera::runtime::store::fuzzing::{
        check_data_dir, input_of, instances_json, instances_log, log_header, sample_instances,
        BASE_GENERATION, ME,
    };

    fn one(name: &str, bytes: &[u8]) -> Vec<u8> {
        input_of(&[(name, bytes)])
    }

    /// `bytes` with the first `from` replaced by `to`.
    fn edit(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
        let text = std::str::from_utf8(bytes).expect("utf-8");
        assert!(text.contains(from), "{from:?} not in the file");
        text.replacen(from, to, 1).into_bytes()
    }

    pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
        let json = instances_json(ME, Some(BASE_GENERATION));
        let instances = sample_instances();
        let put = |k: usize| {
            let (instance, version) = &instances[k];
            LogRecord::Put(InstanceRecord::of(instance, version))
        };
        let header = log_header(BASE_GENERATION);
        let log = instances_log(&header, &[put(0), LogRecord::Del("i-1".into()), put(2)]);
        // The offset of the second record (the first after the header): its payload starts 8
        // bytes in.
        let header_len = 8 + serde_json::to_vec(&header).expect("json").len();
        let mut crc_mismatch = log.clone();
        crc_mismatch[header_len + 8 + 3] ^= 0x20;
        let mut zeroed_tail = log.clone();
        let last = zeroed_tail.len() - 1;
        zeroed_tail[last] ^= 0x01;
        zeroed_tail.extend_from_slice(&[0; 4096]);
        let mut huge_length = instances_log(&header, &[put(0)]);
        huge_length.extend_from_slice(&u32::MAX.to_le_bytes());
        huge_length.extend_from_slice(&[0xab; 12]);
        let mut future = log_header(BASE_GENERATION);
        future.format = FORMAT + 1;
        let mut header_only = instances_log(&header, &[]);
        header_only.truncate(header_len);
        let deep = format!(
            "{{\"format\": 1, \"node\": \"{ME}\", \"instances\": [{}{}]}}",
            "[".repeat(4096),
            "]".repeat(4096)
        );
        let deep_record = edit(
            &json,
            "\"tags\": [",
            &format!("\"tags\": {}", "[".repeat(300)),
        );
        let keyring = to_file_bytes(&KeyringFile::of(&fuzz_keyring()));
        let members = to_file_bytes(&MembersFile {
            format: FORMAT,
            members: vec![
                MemberRecord {
                    name: "n2".into(),
                    addr: v4(),
                },
                MemberRecord {
                    name: ME.into(),
                    addr: v6(),
                },
            ],
        });
        let protocol = to_file_bytes(&ProtocolFile {
            format: FORMAT,
            node: ME.into(),
            incarnation: 7,
            clock_wall_ms: 1_700_000_000_000,
            clock_counter: 3,
        });
        let mut settings = serde_json::Map::new();
        settings.insert("ProbeInterval".into(), "2s".into());
        let config = to_file_bytes(&ConfigFile {
            format: FORMAT,
            settings,
        });
        let checks = to_file_bytes(&NodeChecksFile {
            format: FORMAT,
            checks: instances[2]
                .0
                .checks()
                .iter()
                .map(CheckStateRecord::of)
                .collect(),
        });
        vec![
            ("instances", one(INSTANCES_FILE, &json)),
            (
                "instances-empty",
                one(INSTANCES_FILE, &instances_json(ME, None)[..0]),
            ),
            (
                "instances-before-log",
                one(INSTANCES_FILE, &instances_json(ME, None)),
            ),
            (
                "instances-truncated",
                one(INSTANCES_FILE, &json[..json.len() / 2]),
            ),
            (
                "instances-wrong-format",
                one(
                    INSTANCES_FILE,
                    &edit(&json, "\"format\": 1", "\"format\": 9"),
                ),
            ),
            (
                "instances-other-node",
                one(INSTANCES_FILE, &instances_json("n2", Some(1))),
            ),
            (
                "instances-bad-record",
                one(
                    INSTANCES_FILE,
                    &edit(&json, "\"health\": \"", "\"health\": \"x"),
                ),
            ),
            (
                "instances-deep-nesting",
                one(INSTANCES_FILE, deep.as_bytes()),
            ),
            ("instances-deep-record", one(INSTANCES_FILE, &deep_record)),
            ("log", one(INSTANCES_LOG_FILE, &log)),
            ("log-header-only", one(INSTANCES_LOG_FILE, &header_only)),
            (
                "log-torn-tail",
                one(INSTANCES_LOG_FILE, &log[..log.len() - 5]),
            ),
            (
                "log-torn-header",
                one(INSTANCES_LOG_FILE, &log[..header_len + 3]),
            ),
            ("log-crc-mismatch", one(INSTANCES_LOG_FILE, &crc_mismatch)),
            ("log-crc-zeroed-tail", one(INSTANCES_LOG_FILE, &zeroed_tail)),
            ("log-huge-length", one(INSTANCES_LOG_FILE, &huge_length)),
            (
                "log-other-generation",
                one(
                    INSTANCES_LOG_FILE,
                    &instances_log(&log_header(7), &[put(0)]),
                ),
            ),
            (
                "log-wrong-format",
                one(INSTANCES_LOG_FILE, &instances_log(&future, &[put(0)])),
            ),
            ("log-empty", one(INSTANCES_LOG_FILE, &[])),
            (
                "both",
                input_of(&[(INSTANCES_FILE, &json), (INSTANCES_LOG_FILE, &log)]),
            ),
            ("keyring", one(KEYRING_FILE, &keyring)),
            ("members", one(MEMBERS_FILE, &members)),
            ("protocol", one(PROTOCOL_FILE, &protocol)),
            ("config", one(CONFIG_FILE, &config)),
            ("checks", one(CHECKS_FILE, &checks)),
        ]
    }

    #[test]
    fn data_dir_seeds_match_the_writer() {
        seeds_match(seed_files("data_dir", seeds()));
    }

    /// Every seed, the generated ones and the fuzzer's finds kept beside them.
    #[test]
    fn every_seed_passes_the_data_dir_check() {
        let dir = seeds_dir("data_dir");
        let mut replayed = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("an entry").path();
            check_data_dir(&fs::read(&path).expect("a seed"));
            replayed += 1;
        }
        assert!(replayed >= 25, "only {replayed} seeds found");
    }
}
