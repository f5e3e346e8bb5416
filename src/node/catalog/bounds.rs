//! The bounds on what the catalog holds (SPEC §11: nothing from outside may exhaust a node;
//! issue 17). Two, both in [`Config`](crate::config::Config) and changeable at run time:
//!
//! - `instances_owned_max`: ids this node owns. A registration through our API of an id we do
//!   not own yet (or a renewal or check report that would make us its owner) is refused past
//!   it with [`CommandError::Full`]; what we own is always updated, renewed and deregistered.
//! - `registry_entries_max`: entries held, live and tombstones, every owner's. An entry of an
//!   id we do not hold is refused past it, from a peer (counted) or from our API (refused);
//!   updates and deletions of held ids always apply.
//!
//! Only new ids are refused, never what is held: lowering a bound at run time, or restarting
//! with a data_dir that holds more than it, keeps everything and refuses new ids until
//! deregistrations bring the count below (for `registry_entries_max`, once their tombstones
//! are collected, `tombstone_grace` later) (`Catalog::restore` merges unchecked). A full node's
//! registry digest differs from its peers' for as long as it is full, so each anti-entropy
//! round with a peer that holds more ends with that peer pushing the differing buckets again:
//! one exchange per `sync_interval` (or per returning member), answered only within the
//! per-peer reply budget (`node::replies`) and sent paced at a bounded rate
//! (`runtime::driver::pacer`), so it costs bounded, steady traffic, not a loop. What a full
//! node refuses is not news, and what it pushes back is not news to its peers, so neither
//! side re-syncs early on its account (`resync`).

use super::Catalog;
use crate::names::InstanceId;
use crate::node::io::Io;
use crate::node::{CommandError, HeldBound};

impl Catalog {
    /// May `id` become one this node owns? Yes if it is one already, or if we own fewer than
    /// `instances_owned_max`; otherwise refused (and counted).
    pub(super) fn room_to_own(&self, io: &mut Io, id: &InstanceId) -> Result<(), CommandError> {
        let max = io.config.instances_owned_max;
        let held = self.owned.len();
        if self.owned.contains_key(id) || held < max {
            return Ok(());
        }
        io.stats.refused_owned_max += 1;
        Err(CommandError::Full {
            bound: HeldBound::InstancesOwned,
            max,
            held,
        })
    }

    /// May the registry store an entry of `id`? Yes if it holds one (an update or a deletion
    /// of it), or if it holds fewer than `registry_entries_max`; otherwise refused (and
    /// counted).
    pub(super) fn room_to_hold(&self, io: &mut Io, id: &InstanceId) -> Result<(), CommandError> {
        if self.may_hold(io, id) {
            return Ok(());
        }
        let (max, held) = (io.config.registry_entries_max, self.registry.held());
        io.stats.refused_entries_max += 1;
        Err(CommandError::Full {
            bound: HeldBound::RegistryEntries,
            max,
            held,
        })
    }

    /// Whether the registry may store an entry of `id` (see [`Catalog::room_to_hold`]); counts
    /// nothing.
    pub(super) fn may_hold(&self, io: &Io, id: &InstanceId) -> bool {
        self.registry.stored(id).is_some() || self.registry.held() < io.config.registry_entries_max
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::bounded::BoundedVec;
    use crate::config::Config;
    use crate::names::{InstanceId, Label, NodeName, ServiceName};
    use crate::node::{Command, CommandError, HeldBound, Identity, Node, Restored};
    use crate::registry::{Entry, Hlc, InstanceSpec};
    use crate::time::Instant;
    use crate::wire::{self, encode_message, DatagramBuilder, Incarnation, Message};

    const START_MS: u64 = 1_700_000_000_000;

    fn start() -> Instant {
        Instant::from_micros(START_MS * 1_000)
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7001))
    }

    fn id(text: &str) -> InstanceId {
        InstanceId::new(text).unwrap()
    }

    /// Node n0 with the two bounds.
    fn node(owned_max: usize, entries_max: usize) -> Node {
        let mut config = Config::local();
        config.instances_owned_max = owned_max;
        config.registry_entries_max = entries_max;
        let identity = Identity {
            name: NodeName::new("n0").unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
            dc: Label::new("dc1").unwrap(),
            tags: Vec::new(),
        };
        Node::new(config, identity, 7, start())
    }

    /// Datagrams from the peer n1 carrying `messages`, as many as they take.
    fn send(node: &mut Node, messages: Vec<Message>) {
        let mut d = DatagramBuilder::new(1_400);
        for m in messages {
            let encoded = encode_message(&m);
            if !d.try_push(&encoded) {
                let full = std::mem::replace(&mut d, DatagramBuilder::new(1_400));
                node.handle_datagram(start(), peer(), &full.finish());
                assert!(d.try_push(&encoded), "one entry fits a datagram");
            }
        }
        if !d.is_empty() {
            node.handle_datagram(start(), peer(), &d.finish());
        }
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
    }

    /// Make n1 (at the peer's address) a live member, so its entries are not a stranger's.
    fn meet_n1(node: &mut Node) {
        send(
            node,
            vec![Message::Member(wire::MemberUpdate {
                name: NodeName::new("n1").unwrap(),
                incarnation: Incarnation::ZERO,
                claim: wire::Claim::Alive,
                profile: wire::Profile {
                    addr: peer(),
                    dc: Label::new("dc1").unwrap(),
                    tags: BoundedVec::new(Vec::new()),
                },
            })],
        );
    }

    /// An entry `owner` wrote of `text` at `wall_ms` (counter `counter`), on `port`.
    fn entry(text: &str, owner: &str, wall_ms: u64, counter: u32, port: u16) -> Entry {
        let owner = NodeName::new(owner).unwrap();
        let spec = InstanceSpec::new(ServiceName::new("api").unwrap(), "10.0.0.1", port);
        let instance = spec
            .into_instance(id(text), owner.clone(), wall_ms)
            .unwrap();
        Entry {
            id: id(text),
            version: Hlc {
                wall_ms,
                counter,
                node: owner,
            },
            instance: Some(Box::new(instance)),
        }
    }

    fn register(node: &mut Node, text: &str, port: u16) -> Result<(), CommandError> {
        let mut spec = InstanceSpec::new(ServiceName::new("web").unwrap(), "10.0.0.2", port);
        spec.id = Some(id(text));
        node.handle_command(start(), Command::Register(spec))
            .map(|_| ())
    }

    fn port(node: &Node, text: &str) -> Option<u16> {
        node.registry().get(&id(text)).map(|i| i.port)
    }

    /// A member pushing more entries than `registry_entries_max` (here 8, one of them our own)
    /// leaves the node holding 8, the rest refused and counted; what it holds is still
    /// updated and deleted by the same member; our API's new ids are refused too, with the
    /// bound named, and so is taking over the member's instances past the owned bound.
    #[test]
    fn a_peer_pushing_past_the_registry_bound_leaves_the_node_at_it() {
        let mut node = node(2, 8);
        register(&mut node, "own-0", 80).unwrap();
        meet_n1(&mut node);
        let pushed = (0..20)
            .map(|i| Message::Entry(entry(&format!("p-{i}"), "n1", START_MS, 0, 80)))
            .collect();
        send(&mut node, pushed);
        assert_eq!(node.registry().held(), 8, "held at the bound");
        assert_eq!(node.stats().refused_entries_max, 13, "20 pushed, 7 stored");

        // Updates of held ids still apply (p-0..p-6 are the ones stored: in arrival order).
        let updates = (0..7)
            .map(|i| Message::Entry(entry(&format!("p-{i}"), "n1", START_MS, 1, 81)))
            .collect();
        send(&mut node, updates);
        for i in 0..7 {
            assert_eq!(port(&node, &format!("p-{i}")), Some(81), "p-{i} updated");
        }
        // A deletion of a held id applies (its tombstone takes the live entry's place).
        let mut deleted = entry("p-0", "n1", START_MS, 2, 81);
        deleted.instance = None;
        send(&mut node, vec![Message::Entry(deleted)]);
        assert_eq!(port(&node, "p-0"), None, "deleted");
        assert_eq!(node.registry().held(), 8);
        // A tombstone of an id never held is an entry like any other: refused while full.
        let mut unknown = entry("p-99", "n1", START_MS, 2, 81);
        unknown.instance = None;
        send(&mut node, vec![Message::Entry(unknown)]);
        assert!(node.registry().stored(&id("p-99")).is_none());
        assert_eq!(node.stats().refused_entries_max, 14);

        // Our API: a new id is refused, naming the bound; our own is still updated.
        assert_eq!(
            register(&mut node, "own-1", 80),
            Err(CommandError::Full {
                bound: HeldBound::RegistryEntries,
                max: 8,
                held: 8
            })
        );
        assert_eq!(node.stats().refused_entries_max, 15);
        register(&mut node, "own-0", 90).unwrap();
        assert_eq!(port(&node, "own-0"), Some(90));
        // Renewing n1's instances here makes us their owner: the first within
        // instances_owned_max (2, with own-0), the second past it.
        node.handle_command(start(), Command::Renew { id: id("p-1") })
            .unwrap();
        assert_eq!(
            node.handle_command(start(), Command::Renew { id: id("p-2") }),
            Err(CommandError::Full {
                bound: HeldBound::InstancesOwned,
                max: 2,
                held: 2
            })
        );
        assert_eq!(node.stats().refused_owned_max, 1);
        assert_eq!(node.registry().held(), 8);
    }

    /// `instances_owned_max` at the core: a new id past it is refused, naming the bound; an
    /// update, a renewal and a deregistration at the bound go through, and a deregistration
    /// makes room for a new id.
    #[test]
    fn registrations_past_the_owned_bound_are_refused_and_updates_are_not() {
        let mut node = node(3, 100);
        for text in ["a", "b", "c"] {
            register(&mut node, text, 80).unwrap();
        }
        let full = Err(CommandError::Full {
            bound: HeldBound::InstancesOwned,
            max: 3,
            held: 3,
        });
        assert_eq!(register(&mut node, "d", 80), full);
        assert_eq!(port(&node, "d"), None);
        assert_eq!(node.stats().refused_owned_max, 1);
        register(&mut node, "a", 81).unwrap();
        assert_eq!(port(&node, "a"), Some(81), "an update at the bound");
        node.handle_command(start(), Command::Renew { id: id("b") })
            .unwrap();
        node.handle_command(start(), Command::Deregister { id: id("c") })
            .unwrap();
        register(&mut node, "d", 80).unwrap();
        assert_eq!(port(&node, "d"), Some(80));
        assert_eq!(register(&mut node, "e", 80), full);
    }

    /// Restarting with a data_dir that holds more than a lowered `instances_owned_max`: every
    /// saved instance comes back and is ours (renewed, updated, deregistered), and new ids are
    /// refused until deregistrations bring the count under the bound.
    #[test]
    fn a_restore_past_a_lowered_bound_keeps_everything_and_refuses_new_ids() {
        let mut node = node(2, 100);
        let saved: Vec<Entry> = (0..5)
            .map(|i| entry(&format!("s-{i}"), "n0", START_MS - 1_000, 0, 80))
            .collect();
        node.handle_command(
            start(),
            Command::Restore(Box::new(Restored {
                instances: saved,
                clock: (START_MS - 1_000, 0),
                ..Restored::default()
            })),
        )
        .unwrap();
        assert_eq!(node.registry().len(), 5, "all restored");
        assert_eq!(node.local_instances().len(), 5, "all owned");
        assert!(matches!(
            register(&mut node, "new", 80),
            Err(CommandError::Full {
                bound: HeldBound::InstancesOwned,
                max: 2,
                held: 5
            })
        ));
        node.handle_command(start(), Command::Renew { id: id("s-0") })
            .unwrap();
        for i in 1..4 {
            let id = id(&format!("s-{i}"));
            node.handle_command(start(), Command::Deregister { id })
                .unwrap();
        }
        assert_eq!(node.local_instances().len(), 2);
        assert!(
            register(&mut node, "new", 80).is_err(),
            "2 of 2: still full"
        );
        node.handle_command(start(), Command::Deregister { id: id("s-4") })
            .unwrap();
        register(&mut node, "new", 80).unwrap();
        assert_eq!(port(&node, "new"), Some(80));
    }
}
