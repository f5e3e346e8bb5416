//! What the property tests share: a small world with fixed latency, joined through n0.
//!
//! Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use hera::bounded::{BoundedString, BoundedVec};
use hera::config::Config;
use hera::names::{Label, NodeName};
use hera::swim::suspicion;
use hera::wire::{Claim, Incarnation, MemberUpdate, Message, Profile, Tag};
use hera::Command;
use hera_sim::World;

pub mod registry;

/// One-way delay of every delivered datagram: far below every timeout of every preset, so
/// only the faults a test injects make probes fail.
pub const LATENCY: Duration = Duration::from_micros(500);

/// Microseconds of virtual time in `d`.
pub fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// `n` nodes named n0.., started, not yet joined; the world logs what they send and emit.
pub fn cluster(n: usize, config: Config, seed: u64) -> World {
    let mut w = World::manual(n, config, seed, LATENCY);
    for i in 0..n as u32 {
        w.start(i);
    }
    w
}

/// Node `i` asks to join through n0.
pub fn join(w: &mut World, i: u32) {
    let seeds = vec![w.addr(0)];
    w.command(i, Command::Join { seeds })
        .expect("a running node accepts a join");
}

/// Every node but the first joins through the first, then all must see all alive.
pub fn join_all(w: &mut World) {
    let all: Vec<u32> = (0..w.len() as u32).collect();
    for &i in &all[1..] {
        join(w, i);
    }
    // Joining takes a push-pull with the seed, then gossip to spread the newcomers. Nodes
    // joining at the same instant can miss one another's news (each update is sent only
    // `retransmit_mult * log N` times); anti-entropy repairs that within two sync rounds.
    let config = w.config().clone();
    let bound = config.probe_interval * 10 + config.sync_interval * 2;
    let took = w.step_until(bound, |w| w.all_alive(&all));
    assert!(took.is_some(), "the cluster did not form within {bound:?}");
}

/// The `(min, max)` suspicion window a node of an `n`-member cluster uses.
pub fn suspicion_window(config: &Config, n: usize) -> (Duration, Duration) {
    suspicion::bounds(config.suspicion_base, config.suspicion_max_mult, n)
}

/// Alive updates about `n` members `m0..` at addresses outside the world (10.0.x.y), so nobody
/// can reach them: a large table to gossip into a node. With `tagged`, each carries one tag
/// (`role=worker-<k>`), making every update larger.
pub fn unreachable_members(n: u32, tagged: bool) -> Vec<Message> {
    (0..n)
        .map(|k| {
            let tags = tagged.then(|| Tag {
                key: Label::new("role").unwrap(),
                value: BoundedString(format!("worker-{k}")),
            });
            Message::Member(MemberUpdate {
                name: NodeName::new(&format!("m{k}")).unwrap(),
                incarnation: Incarnation::ZERO,
                claim: Claim::Alive,
                profile: Profile {
                    addr: SocketAddr::from(([10, 0, (k / 256) as u8, (k % 256) as u8], 7000)),
                    dc: Label::new("dc1").unwrap(),
                    tags: BoundedVec::new(tags.into_iter().collect()),
                },
            })
        })
        .collect()
}
