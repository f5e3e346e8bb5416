//! Gossip encryption in the node: which envelope to build, seal and open, and the keyring
//! commands. The cryptography itself is pure and lives in `wire::seal`.
//!
//! A node either has a keyring from the start (every datagram sealed, plain ones refused) or
//! never has one: mixing would let a keyless node talk to half a cluster.

use rand_chacha::rand_core::RngCore;

use super::io::Io;
use super::{CommandError, KeyringCommand, Node, Reply};
use crate::time::Instant;
use crate::wire::{self, ClusterLabel, Datagram, DatagramBuilder, DecodeError, Keyring, Sealer};

impl Node {
    /// Seal every datagram from now on and refuse plain ones. Call once, right after
    /// [`Node::new`] and before the first input: the nonce sequence starts at a point drawn
    /// from the node's seeded generator (see `wire::seal` for why it never repeats).
    pub fn set_keyring(&mut self, keyring: Keyring) {
        let mut nonce_start = [0u8; wire::seal::NONCE_BYTES];
        self.io.rng.fill_bytes(&mut nonce_start);
        let mut sealer = Sealer::new(keyring, nonce_start);
        sealer.set_label(self.io.label.clone());
        self.io.sealer = Some(sealer);
    }

    /// Carry `label` in every datagram and refuse datagrams without it, so that two clusters
    /// sharing a key or reusing addresses never merge. Call before the first input.
    pub fn set_cluster_label(&mut self, label: Option<ClusterLabel>) {
        if let Some(sealer) = &mut self.io.sealer {
            sealer.set_label(label.clone());
        }
        self.io.label = label;
    }

    pub fn cluster_label(&self) -> Option<&ClusterLabel> {
        self.io.label.as_ref()
    }

    /// The keyring, if gossip is encrypted.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.io.sealer.as_ref().map(Sealer::keyring)
    }

    pub(super) fn keyring_command(&mut self, op: KeyringCommand) -> Result<Reply, CommandError> {
        let sealer = self
            .io
            .sealer
            .as_mut()
            .ok_or(CommandError::Keyring(wire::KeyringError::NotEnabled))?;
        let ring = sealer.keyring_mut();
        let done = match op {
            KeyringCommand::List => Ok(()),
            KeyringCommand::Install(key) => ring.install(key),
            KeyringCommand::Use(key) => ring.use_key(&key),
            KeyringCommand::Remove(key) => ring.remove(&key),
        };
        done.map_err(CommandError::Keyring)?;
        let reply = Reply::Keyring {
            primary: ring.primary().clone(),
            keys: ring.keys().to_vec(),
        };
        // Readers (the snapshot, and the shell that keeps the keyring on disk) see the change.
        self.io.changed();
        Ok(reply)
    }
}

impl Io {
    /// The sealer stamps what it seals with the time of the input being handled, and measures
    /// replays against it.
    pub(crate) fn set_seal_clock(&mut self, now: Instant) {
        if let Some(sealer) = &mut self.sealer {
            sealer.set_clock(now.as_micros() / 1_000_000);
        }
    }

    /// Check the envelope and the label (opening it with the keyring and checking it is no
    /// replay when there is one) and decode.
    pub(crate) fn decode(&mut self, now: Instant, bytes: &[u8]) -> Result<Datagram, DecodeError> {
        self.set_seal_clock(now);
        match &mut self.sealer {
            Some(sealer) => sealer.receive(bytes),
            None => wire::decode_plain(bytes, self.label.as_ref()),
        }
    }

    /// An empty datagram of the right kind, within `packet_bytes_max` once finished.
    pub(crate) fn new_datagram(&self) -> DatagramBuilder {
        DatagramBuilder::for_cluster(
            self.config.packet_bytes_max,
            self.sealer.is_some(),
            self.label.as_ref(),
        )
    }

    /// Bytes of every datagram that are not messages, for code that packs messages by hand.
    pub(crate) fn envelope_overhead(&self) -> usize {
        let label = self
            .label
            .as_ref()
            .map_or(0, |_| wire::label::LABEL_HASH_BYTES);
        label
            + match self.sealer {
                Some(_) => wire::SEALED_OVERHEAD_BYTES,
                None => wire::OVERHEAD_BYTES,
            }
    }

    /// Close a datagram: a CRC32, or sealed with the primary key and a fresh nonce.
    pub(crate) fn finish_datagram(&mut self, datagram: DatagramBuilder) -> Vec<u8> {
        match &mut self.sealer {
            Some(sealer) => sealer.seal(datagram),
            None => datagram.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::bounded::BoundedVec;
    use crate::config::Config;
    use crate::names::{Label, NodeName};
    use crate::node::{Command, CommandError, Identity};
    use crate::time::Instant;
    use crate::wire::{
        encode_message, Claim, Incarnation, Key, KeyringError, MemberUpdate, Message, Profile,
    };

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn node(key: Option<Key>) -> Node {
        let identity = Identity {
            name: NodeName::new("n0").unwrap(),
            addr: addr(7000),
            dc: Label::new("dc1").unwrap(),
            tags: Vec::new(),
        };
        let mut node = Node::new(Config::local(), identity, 1, Instant::ZERO);
        if let Some(key) = key {
            node.set_keyring(Keyring::new(key));
        }
        node
    }

    /// A datagram announcing a new alive member, plain or sealed with `key`.
    fn intruder(key: Option<&Key>) -> Vec<u8> {
        let update = Message::Member(MemberUpdate {
            name: NodeName::new("intruder").unwrap(),
            incarnation: Incarnation::new(1),
            claim: Claim::Alive,
            profile: Profile {
                addr: addr(7999),
                dc: Label::new("dc1").unwrap(),
                tags: BoundedVec::default(),
            },
        });
        let encoded = encode_message(&update);
        match key {
            None => {
                let mut d = DatagramBuilder::new(1_400);
                assert!(d.try_push(&encoded));
                d.finish()
            }
            Some(key) => {
                let mut d = DatagramBuilder::sealed(1_400);
                assert!(d.try_push(&encoded));
                wire::seal::seal_with(key, [7; wire::seal::NONCE_BYTES], d)
            }
        }
    }

    fn errors(node: &Node, kind: &str) -> u64 {
        let kind = wire::DecodeErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind);
        node.stats()
            .decode_errors_of(kind.expect("a decode error kind"))
    }

    fn knows_intruder(node: &Node) -> bool {
        node.member(&NodeName::new("intruder").unwrap()).is_some()
    }

    #[test]
    fn only_datagrams_sealed_with_a_ring_key_get_in() {
        let cluster = Key::from_bytes([1; 32]);
        let mut n = node(Some(cluster.clone()));
        n.handle_datagram(Instant::ZERO, addr(7999), &intruder(None));
        assert_eq!(errors(&n, "unsealed"), 1);
        n.handle_datagram(
            Instant::ZERO,
            addr(7999),
            &intruder(Some(&Key::from_bytes([2; 32]))),
        );
        assert_eq!(errors(&n, "authentication"), 1);
        let mut tampered = intruder(Some(&cluster));
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        n.handle_datagram(Instant::ZERO, addr(7999), &tampered);
        assert_eq!(errors(&n, "authentication"), 2);
        assert!(!knows_intruder(&n), "a rejected datagram changed nothing");
        n.handle_datagram(Instant::ZERO, addr(7999), &intruder(Some(&cluster)));
        assert!(
            knows_intruder(&n),
            "a datagram sealed with the cluster key is accepted"
        );
    }

    #[test]
    fn a_keyless_node_refuses_sealed_datagrams_and_keyring_commands() {
        let mut n = node(None);
        n.handle_datagram(
            Instant::ZERO,
            addr(7999),
            &intruder(Some(&Key::from_bytes([1; 32]))),
        );
        assert_eq!(errors(&n, "unknown_flags"), 1);
        assert!(!knows_intruder(&n));
        assert_eq!(
            n.handle_command(Instant::ZERO, Command::Keyring(KeyringCommand::List)),
            Err(CommandError::Keyring(KeyringError::NotEnabled))
        );
    }

    #[test]
    fn an_encrypted_node_seals_everything_within_the_budget() {
        let key = Key::from_bytes([1; 32]);
        let mut n = node(Some(key.clone()));
        n.handle_command(
            Instant::ZERO,
            Command::Join {
                seeds: vec![addr(7001)],
            },
        )
        .unwrap();
        n.handle_timeout(Instant::ZERO + std::time::Duration::from_secs(5));
        let mut sent = 0;
        while let Some(t) = n.poll_transmit() {
            sent += 1;
            assert!(t.payload.len() <= n.config().packet_bytes_max);
            assert_eq!(t.payload[3], wire::flags::SEALED);
            assert!(
                wire::decode_datagram(&t.payload).is_err(),
                "not readable without the key"
            );
            let ring = Sealer::new(Keyring::new(key.clone()), [0; 12]);
            assert!(ring.decode(&t.payload).is_ok());
        }
        assert!(sent > 0);
    }

    #[test]
    fn keyring_commands_report_the_ring() {
        let (a, b) = (Key::from_bytes([1; 32]), Key::from_bytes([2; 32]));
        let mut n = node(Some(a.clone()));
        let run = |n: &mut Node, op| n.handle_command(Instant::ZERO, Command::Keyring(op));
        assert_eq!(
            run(&mut n, KeyringCommand::Install(b.clone())),
            Ok(Reply::Keyring {
                primary: a.clone(),
                keys: vec![a.clone(), b.clone()]
            })
        );
        assert_eq!(
            run(&mut n, KeyringCommand::Remove(a.clone())),
            Err(CommandError::Keyring(KeyringError::RemovePrimary))
        );
        run(&mut n, KeyringCommand::Use(b.clone())).unwrap();
        assert_eq!(
            run(&mut n, KeyringCommand::Remove(a.clone())),
            Ok(Reply::Keyring {
                primary: b.clone(),
                keys: vec![b.clone()]
            })
        );
        assert_eq!(n.keyring().map(|r| r.primary()), Some(&b));
    }
}
