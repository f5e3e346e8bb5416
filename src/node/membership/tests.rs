//! Unit tests of the membership half on one node, with no cluster: what a node says about
//! itself. The multi-node protocol tests are in `sim/tests/`.

use std::net::SocketAddr;

use crate::bounded::BoundedString;
use crate::config::Config;
use crate::names::{Label, NodeName};
use crate::node::{Identity, Node};
use crate::time::Instant;
use crate::wire::{self, Tag};

/// A node's identity at a loopback address, without tags.
fn identity() -> Identity {
    Identity {
        name: NodeName::new("n0").unwrap(),
        addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
        dc: Label::new("dc1").unwrap(),
        tags: Vec::new(),
    }
}

/// Finding 9: tags large enough to make a node's own member update exceed the datagram
/// budget kept it from ever announcing itself, silently. The core says so, with the sizes,
/// and the shell refuses to start (`StartError::ProfileTooLarge`).
#[test]
fn an_own_update_over_the_datagram_budget_is_reported() {
    let epoch = Instant::from_micros(1_700_000_000_000_000);
    let mut big = identity();
    big.tags = (0..wire::TAGS_MAX)
        .map(|t| Tag {
            key: Label::new(&format!("key{t}")).unwrap(),
            value: BoundedString("v".repeat(wire::TAG_VALUE_MAX_BYTES)),
        })
        .collect();
    let node = Node::new(Config::local(), big, 1, epoch);
    let (bytes, room) = node.own_update_fits().unwrap_err();
    assert!(
        bytes > room && room < Config::local().packet_bytes_max,
        "{bytes} {room}"
    );
    let small = Node::new(Config::local(), identity(), 1, epoch);
    assert_eq!(small.own_update_fits(), Ok(()));
}
