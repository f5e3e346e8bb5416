//! Registry pushes owed to peers, produced a datagram at a time as the shell takes them.
//!
//! Anti-entropy may owe a peer thousands of datagrams at once (a late joiner at 100,000
//! entries: ~10,000 datagrams, ~12 MB). Encoded all at once they sat in the outbox and then in
//! the driver's pacer for the seconds the paced rate takes to send them, and glibc kept most of
//! that memory after it was freed (issue 17, docs/scale.md). So the catalog keeps, for each
//! peer it owes a push, only what to send (origins and their buckets) and how far it got (the
//! last id sent: entries go in id order); [`crate::Node::poll_push`] encodes the next datagram
//! when the shell has room for it.
//!
//! Why a position and not a copy of the registry: what changes under a push is sent as it is
//! when the push gets there (an entry past the position), or was sent already and its change is
//! gossiped like any other (an entry before it); deletions are entries too (tombstones). A push
//! is dropped when its peer is no longer a live member (at the next pull), and restarted from the
//! first id when a newer comparison with the same peer asks for buckets it did not (what it
//! asked for before the position would otherwise be missed; what is sent twice is merged as
//! old news). A request for nothing new changes nothing.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use super::Catalog;
use crate::names::{InstanceId, NodeName};
use crate::node::io::Io;
use crate::node::Transmit;
use crate::registry::BucketMask;
use crate::wire::{encode_message, Message, MessageKind};

/// Peers owed a push at once, at most: one node answers its own comparisons and those of a
/// handful of peers in one probe interval. Each costs a few origin names and a position (well
/// under 1 KiB at 100 origins); the datagrams are made only as they leave. Past it, a request
/// from one more peer is refused like a bulk answer over the outbox cap, and that peer's next
/// comparison asks again.
pub(crate) const PUSHES_OWED_MAX: usize = 16;

/// One peer's push: what it wants, and how far it got.
#[derive(Debug)]
pub(crate) struct OwedPush {
    to: SocketAddr,
    /// Buckets of each origin to send.
    wanted: BTreeMap<NodeName, BucketMask>,
    /// The last id sent (None: nothing yet); the push goes on past it.
    after: Option<InstanceId>,
}

/// The pushes owed, served in the order they were asked for (one peer's push finishes before
/// the next starts, as when they all waited in the pacer's queue).
#[derive(Debug, Default)]
pub(crate) struct Pushes {
    owed: VecDeque<OwedPush>,
}

/// What [`Pushes::owe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owed {
    /// A new push, or one restarted because it asks for more than the one under way.
    Started,
    /// The push under way to that peer already covers it.
    Covered,
    /// [`PUSHES_OWED_MAX`] peers are owed a push already.
    Refused,
}

impl Pushes {
    /// Owe `to` our entries of each origin in `wanted`, in that origin's buckets.
    pub(crate) fn owe(&mut self, to: SocketAddr, wanted: BTreeMap<NodeName, BucketMask>) -> Owed {
        if let Some(push) = self.owed.iter_mut().find(|p| p.to == to) {
            let more = wanted
                .iter()
                .any(|(origin, mask)| mask & !push.wanted.get(origin).copied().unwrap_or(0) != 0);
            if !more {
                return Owed::Covered;
            }
            for (origin, mask) in wanted {
                *push.wanted.entry(origin).or_insert(0) |= mask;
            }
            push.after = None;
            return Owed::Started;
        }
        if self.owed.len() >= PUSHES_OWED_MAX {
            return Owed::Refused;
        }
        self.owed.push_back(OwedPush {
            to,
            wanted,
            after: None,
        });
        Owed::Started
    }

    /// Peers owed a push now.
    pub(crate) fn len(&self) -> usize {
        self.owed.len()
    }
}

impl Catalog {
    /// Peers owed a push now.
    pub(crate) fn pushes_owed(&self) -> usize {
        self.pushes.len()
    }

    /// The next datagram of the oldest push owed to a peer that `live` says is still a live
    /// member, or None when nothing is owed. A push whose peer is gone is dropped; one whose
    /// last entries were sent is done. Each call encodes at most one datagram's entries, and
    /// reads the registry from the push's position to the first entry that does not fit.
    pub(crate) fn next_push(
        &mut self,
        io: &mut Io,
        live: impl Fn(SocketAddr) -> bool,
    ) -> Option<Transmit> {
        loop {
            let push = self.pushes.owed.front_mut()?;
            if !live(push.to) {
                self.pushes.owed.pop_front();
                continue;
            }
            let mut datagram = io.new_datagram();
            let mut last = None;
            let mut full = false;
            for entry in self
                .registry
                .entries_of_after(&push.wanted, push.after.as_ref())
            {
                let message = Message::Entry(entry);
                let encoded = encode_message(&message);
                if datagram.try_push(&encoded) {
                    io.stats.entries_pushed += 1;
                    io.stats.messages_out(MessageKind::Entry, 1);
                } else if datagram.is_empty() {
                    // Entries are bounded to fit a default datagram (ENTRY_MAX_BYTES); only a
                    // budget configured below that, or a peer with a larger one, gets here.
                    io.stats.entries_unsendable += 1;
                } else {
                    // The next datagram starts with this entry.
                    full = true;
                    break;
                }
                last = Some(message);
            }
            if let Some(Message::Entry(entry)) = last {
                push.after = Some(entry.id);
            }
            let to = push.to;
            if !full {
                self.pushes.owed.pop_front();
            }
            if !datagram.is_empty() {
                return Some(io.paced_transmit(to, datagram));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn wanted(origin: &str, mask: BucketMask) -> BTreeMap<NodeName, BucketMask> {
        BTreeMap::from([(NodeName::new(origin).unwrap(), mask)])
    }

    /// A request the push under way covers changes nothing; one asking for more restarts it
    /// (from the first id) with both; peers past the bound are refused.
    #[test]
    fn a_push_is_restarted_only_for_more_and_peers_are_bounded() {
        let mut p = Pushes::default();
        assert_eq!(p.owe(peer(1), wanted("a", 0b11)), Owed::Started);
        p.owed[0].after = Some(InstanceId::new("i-5").unwrap());
        assert_eq!(p.owe(peer(1), wanted("a", 0b01)), Owed::Covered);
        assert!(p.owed[0].after.is_some(), "kept its position");
        assert_eq!(p.owe(peer(1), wanted("b", 0b01)), Owed::Started);
        assert_eq!(p.owed[0].after, None, "restarted");
        assert_eq!(p.owed[0].wanted.len(), 2);
        for k in 2..=PUSHES_OWED_MAX as u16 {
            assert_eq!(p.owe(peer(k), wanted("a", 1)), Owed::Started);
        }
        assert_eq!(p.owe(peer(999), wanted("a", 1)), Owed::Refused);
        assert_eq!(p.len(), PUSHES_OWED_MAX);
    }
}
