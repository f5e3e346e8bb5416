//! Criterion bench of the store's group commit: the CPU part of one commit (finding the owned
//! instances that changed since the last commit and encoding their log records), without its
//! write and fsync, against the registry's size.
//!
//! `cargo bench --features fuzzing --bench store`. Each node of the 5-node, 100,000-instance
//! cluster of docs/scale.md owns a fifth of the registry; so does this one (the rest is
//! gossiped from four other owners). One commit: one owned instance's health changed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

use hera::config::Config;
use hera::names::{InstanceId, Label, NodeName, ServiceName};
use hera::node::{Command, Identity, Node};
use hera::registry::{Entry, Health, Hlc, InstanceSpec};
use hera::runtime::driver::Snapshot;
use hera::runtime::store::hooks::commit_changes;
use hera::time::Instant;
use hera::wire::{encode_message, DatagramBuilder, Message};

const OWNERS: usize = 5;
const WALL_MS: u64 = 1_700_000_000_000;

fn name(o: usize) -> NodeName {
    NodeName::new(&format!("node-{o}")).expect("valid name")
}

fn spec(k: usize) -> InstanceSpec {
    let service = ServiceName::new(&format!("svc-{:03}", k % 100)).expect("valid service");
    let mut spec = InstanceSpec::new(service, "10.0.0.1", 8080);
    spec.id = Some(InstanceId::new(&format!("i-{k:06}")).expect("valid id"));
    spec.tags = vec!["v2".into(), "primary".into()];
    spec
}

/// Node 0 holding `entries` instances, every fifth one its own (registered through its API),
/// the others gossiped by nodes 1-4; and the time it is at.
fn node(entries: usize) -> (Node, Instant) {
    let identity = Identity {
        name: name(0),
        addr: SocketAddr::from(([10, 0, 0, 1], 7946)),
        dc: Label::new("dc1").expect("valid"),
        tags: vec![],
    };
    let mut now = Instant::from_micros(WALL_MS * 1_000);
    let mut node = Node::new(Config::lan(), identity, 1, now);
    let mut d = DatagramBuilder::new(1_400);
    let mut datagrams = Vec::new();
    for k in 0..entries {
        let owner = k % OWNERS;
        if owner == 0 {
            continue;
        }
        let version = Hlc {
            wall_ms: WALL_MS - 1_000,
            counter: k as u32,
            node: name(owner),
        };
        let id = spec(k).id.expect("an id");
        let instance = spec(k)
            .into_instance(id.clone(), name(owner), WALL_MS - 1_000)
            .expect("valid instance");
        let entry = Message::Entry(Entry {
            id,
            version,
            instance: Some(Box::new(instance)),
        });
        let encoded = encode_message(&entry);
        if !d.try_push(&encoded) {
            datagrams.push(std::mem::replace(&mut d, DatagramBuilder::new(1_400)).finish());
            assert!(d.try_push(&encoded), "an entry fits an empty datagram");
        }
    }
    datagrams.push(d.finish());
    let from = SocketAddr::from(([10, 0, 0, 2], 7946));
    for d in &datagrams {
        node.handle_datagram(now, from, d);
    }
    for k in (0..entries).step_by(OWNERS) {
        now = now + Duration::from_micros(10);
        node.handle_command(now, Command::Register(spec(k)))
            .expect("registered");
    }
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
    assert_eq!(node.registry().len(), entries, "every entry held");
    (node, now)
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("store-group-commit");
    for entries in [1_000, 10_000, 100_000] {
        let (mut node, mut now) = node(entries);
        let base = Arc::new(Snapshot::of(&node, now));
        now = now + Duration::from_millis(1);
        let id = InstanceId::new(&format!("i-{:06}", entries / 2)).expect("valid id");
        node.handle_command(
            now,
            Command::SetHealth {
                id,
                health: Health::Warning,
                output: "slow".into(),
            },
        )
        .expect("an owned instance");
        let next = Arc::new(Snapshot::of(&node, now));
        let (_, records) = commit_changes(&base, &next).expect("fits one append");
        assert_eq!(records, 1, "one owned instance changed");
        g.bench_function(
            BenchmarkId::new("one owned instance changed, registry of", entries),
            |b| b.iter(|| black_box(commit_changes(black_box(&base), black_box(&next)))),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Short runs, as the other benches: pass criterion's `--measurement-time` for more.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = group_commit
}
criterion_main!(benches);
