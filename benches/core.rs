//! Criterion benches of the protocol core: datagram encode/decode, one node's datagram
//! throughput, and memory per member.
//!
//! `cargo bench --bench core` prints criterion's figures; the memory figures are printed
//! first (a counting allocator wraps the system one in this binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use hera::config::Config;
use hera::names::{Label, NodeName};
use hera::node::Identity;
use hera::time::Instant;
use hera::wire::bounded::BoundedVec;
use hera::wire::{
    decode_datagram, encode_message, Ack, Claim, DatagramBuilder, MemberUpdate, Message, Ping,
    Profile,
};
use hera::Node;

struct Counting;
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 7946))
}

fn name(i: usize) -> NodeName {
    NodeName::new(&format!("node-{i}")).expect("valid name")
}

fn profile(i: usize) -> Profile {
    Profile {
        addr: addr(i),
        dc: Label::new("dc1").expect("valid"),
        tags: BoundedVec::default(),
    }
}

fn alive(i: usize, incarnation: u32) -> MemberUpdate {
    MemberUpdate {
        name: name(i),
        incarnation,
        claim: Claim::Alive,
        profile: profile(i),
    }
}

fn datagram(messages: &[Message], budget: usize) -> Vec<u8> {
    let mut d = DatagramBuilder::new(budget);
    for m in messages {
        if !d.try_push(&encode_message(m)) {
            break;
        }
    }
    d.finish()
}

/// A full datagram: a ping followed by as many member updates as fit in 1,400 bytes.
fn full_datagram() -> Vec<u8> {
    let mut messages = vec![Message::Ping(Ping {
        seq: 7,
        target: name(0),
    })];
    messages.extend((1..200).map(|i| Message::Member(alive(i, 3))));
    datagram(&messages, 1_400)
}

fn node_with_members(n: usize) -> Node {
    let identity = Identity {
        name: name(0),
        addr: addr(0),
        dc: Label::new("dc1").expect("valid"),
        tags: vec![],
    };
    let now = Instant::from_micros(1_700_000_000_000_000);
    let mut node = Node::new(Config::lan(), identity, 1, now);
    let updates: Vec<Message> = (1..n).map(|i| Message::Member(alive(i, 0))).collect();
    for chunk in updates.chunks(20) {
        node.handle_datagram(now, addr(1), &datagram(chunk, 65_000));
    }
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
    node
}

fn memory_figures() {
    for n in [1_000, 10_000] {
        let before = ALLOCATED.load(Ordering::Relaxed);
        let node = node_with_members(n);
        let after = ALLOCATED.load(Ordering::Relaxed);
        let per = (after - before) as f64 / n as f64;
        println!(
            "memory: a node knowing {n} members holds {:.0} bytes per member",
            per
        );
        drop(node);
    }
}

fn codec(c: &mut Criterion) {
    memory_figures();
    let full = full_datagram();
    let ping = datagram(
        &[Message::Ping(Ping {
            seq: 7,
            target: name(3),
        })],
        1_400,
    );
    println!(
        "datagram sizes: full {} bytes, bare ping {} bytes",
        full.len(),
        ping.len()
    );

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(full.len() as u64));
    g.bench_function("decode+verify full 1400-byte datagram", |b| {
        b.iter(|| decode_datagram(black_box(&full)))
    });
    g.bench_function("encode full 1400-byte datagram", |b| b.iter(full_datagram));
    g.throughput(Throughput::Bytes(ping.len() as u64));
    g.bench_function("decode+verify bare ping", |b| {
        b.iter(|| decode_datagram(black_box(&ping)))
    });
    g.bench_function("encode bare ping", |b| {
        b.iter(|| {
            datagram(
                &[Message::Ping(Ping {
                    seq: 7,
                    target: name(3),
                })],
                1_400,
            )
        })
    });
    g.finish();
}

fn node_throughput(c: &mut Criterion) {
    // A realistic mix for a node in a 100-member cluster: pings to answer, acks to match, and
    // gossip datagrams carrying updates it already knows (the steady state of dissemination).
    let ping = datagram(
        &[Message::Ping(Ping {
            seq: 9,
            target: name(0),
        })],
        1_400,
    );
    let ack = datagram(&[Message::Ack(Ack { seq: 12_345 })], 1_400);
    let gossip = datagram(
        &[(1..4)
            .map(|i| Message::Member(alive(i, 0)))
            .collect::<Vec<_>>()]
        .concat(),
        1_400,
    );
    let mix: Vec<&[u8]> = vec![&ping, &ack, &ping, &ack, &gossip];

    let mut g = c.benchmark_group("node");
    g.throughput(Throughput::Elements(mix.len() as u64));
    g.bench_function("handle_datagram mix (ping, ack, gossip)", |b| {
        b.iter_batched_ref(
            || node_with_members(100),
            |node| {
                let now = Instant::from_micros(1_700_000_000_100_000);
                for d in &mix {
                    node.handle_datagram(now, addr(5), d);
                }
                while let Some(t) = node.poll_transmit() {
                    let _ = black_box(t);
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("node-steady");
    let mut node = node_with_members(100);
    let mut now = Instant::from_micros(1_700_000_000_100_000);
    g.throughput(Throughput::Elements(mix.len() as u64));
    g.bench_function("handle_datagram mix, one long-lived node", |b| {
        b.iter(|| {
            now = now + Duration::from_micros(10);
            for d in &mix {
                node.handle_datagram(now, addr(5), d);
            }
            while let Some(t) = node.poll_transmit() {
                let _ = black_box(t);
            }
            while node.poll_event().is_some() {}
        })
    });
    g.finish();
}

criterion_group!(benches, codec, node_throughput);
criterion_main!(benches);
