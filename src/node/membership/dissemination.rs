//! Getting news around (SWIM §4.1): piggybacking on every datagram, eager pushes and gossip
//! rounds to random members, and the push-pull exchange behind join, anti-entropy and
//! reconnects.

use std::net::SocketAddr;

use super::claims::Source;
use super::{JoinTransfer, Membership};
use crate::node::catalog::Catalog;
use crate::node::io::Io;
use crate::node::Event;
use crate::swim::gossip::retransmit_limit;
use crate::swim::probe::sample;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::bounded::BoundedVec;
use crate::wire::{
    DatagramBuilder, MemberUpdate, Message, MessageKind, PushPull, SyncProbe, PUSH_PULL_MEMBERS_MAX,
};

/// Bytes a push-pull message adds around its records: kind, flag and a length prefix.
const PUSH_PULL_FRAME_BYTES: usize = 8;

impl Membership {
    /// Send `messages` to `to` in one datagram, filling the rest of the budget with queued
    /// updates when `piggyback` is set.
    pub(crate) fn send(
        &mut self,
        io: &mut Io,
        to: SocketAddr,
        messages: &[Message],
        piggyback: bool,
    ) {
        let mut datagram = io.pack(messages);
        if piggyback {
            self.fill_piggyback(io, &mut datagram);
        }
        if !datagram.is_empty() {
            io.transmit(to, datagram);
        }
    }

    fn fill_piggyback(&mut self, io: &mut Io, datagram: &mut DatagramBuilder) {
        let limit = retransmit_limit(io.config.retransmit_mult, self.cluster_size());
        let filled = io.broadcasts.fill(datagram, limit);
        io.stats
            .messages_out(MessageKind::Member, filled.members as u64);
        io.stats
            .messages_out(MessageKind::Entry, filled.instances as u64);
    }

    pub(crate) fn on_eager_push(&mut self, io: &mut Io, now: Instant) {
        io.push_scheduled = false;
        io.last_push = Some(now);
        self.gossip_round(io);
    }

    pub(crate) fn on_gossip_tick(&mut self, io: &mut Io, now: Instant) {
        io.timers
            .schedule(now + io.config.gossip_interval, Timer::GossipTick);
        self.gossip_round(io);
    }

    /// Send queued updates to `gossip_fanout` random live members, one datagram each.
    fn gossip_round(&mut self, io: &mut Io) {
        if io.broadcasts.is_empty() {
            return;
        }
        // The live list never holds this node itself: nothing to exclude.
        let targets = sample(
            self.members.live(),
            io.config.gossip_fanout,
            &mut io.rng,
            |_| false,
        );
        // One round, one set of updates, sent to every target: a transmission counts per
        // round, not per copy, so each update reaches `fanout · limit` members rather than
        // `limit`. Counting per copy (as memberlist does) left about one small-cluster write in
        // fifty missing a node until anti-entropy, and that is what Serf's event misses are.
        let mut datagram = io.new_datagram();
        self.fill_piggyback(io, &mut datagram);
        if datagram.is_empty() {
            return;
        }
        for target in targets {
            let Some(addr) = self.members.by_id(target).map(|m| m.profile.addr) else {
                continue;
            };
            io.transmit(addr, datagram.clone());
        }
    }

    /// Send our whole table to `to`, in as many datagrams as it takes.
    pub(crate) fn send_push_pull(&mut self, io: &mut Io, to: SocketAddr, reply_wanted: bool) {
        io.stats.push_pulls_sent += 1;
        let mut records = vec![self.own_update()];
        records.extend(self.members.iter().map(|(name, m)| MemberUpdate {
            name: name.clone(),
            incarnation: m.incarnation,
            claim: self.claim_for(name, m.state),
            profile: m.profile.to_profile(),
        }));
        self.send_records(io, to, reply_wanted, records);
    }

    /// Pack member records into push-pull datagrams no larger than the budget.
    pub(crate) fn send_records(
        &mut self,
        io: &mut Io,
        to: SocketAddr,
        reply_wanted: bool,
        records: Vec<MemberUpdate>,
    ) {
        let room = io.config.packet_bytes_max - io.envelope_overhead() - PUSH_PULL_FRAME_BYTES;
        let mut chunk: Vec<MemberUpdate> = Vec::new();
        let mut chunk_bytes = 0;
        for record in records {
            let size = bincode::encode_to_vec(&record, crate::wire::wire_config())
                .map_or(room, |v| v.len());
            if !chunk.is_empty()
                && (chunk_bytes + size > room || chunk.len() == PUSH_PULL_MEMBERS_MAX)
            {
                let full = std::mem::take(&mut chunk);
                self.send_push_pull_chunk(io, to, reply_wanted, full);
                chunk_bytes = 0;
            }
            chunk_bytes += size;
            chunk.push(record);
        }
        if !chunk.is_empty() {
            self.send_push_pull_chunk(io, to, reply_wanted, chunk);
        }
    }

    fn send_push_pull_chunk(
        &mut self,
        io: &mut Io,
        to: SocketAddr,
        reply_wanted: bool,
        members: Vec<MemberUpdate>,
    ) {
        let message = Message::PushPull(PushPull {
            reply_wanted,
            members: BoundedVec::new(members),
        });
        self.send(io, to, &[message], false);
    }

    fn claim_for(
        &self,
        name: &crate::names::NodeName,
        state: crate::swim::State,
    ) -> crate::wire::Claim {
        use crate::swim::State;
        use crate::wire::Claim;
        let by = || {
            self.suspicions
                .get(name)
                .map_or_else(|| self.name.clone(), |s| s.first_suspecter().clone())
        };
        match state {
            State::Alive => Claim::Alive,
            State::Suspect => Claim::Suspect { by: by() },
            State::Failed => Claim::Failed {
                by: self.name.clone(),
            },
            State::Left => Claim::Left,
        }
    }

    pub(crate) fn on_push_pull(
        &mut self,
        io: &mut Io,
        catalog: &mut Catalog,
        now: Instant,
        from: SocketAddr,
        push_pull: PushPull,
    ) {
        let source = if !push_pull.reply_wanted && self.is_join_transfer(now, from) {
            Source::JoinTransfer
        } else {
            Source::PushPull
        };
        for record in push_pull.members.0 {
            self.apply_update(io, catalog, now, record, source);
            if self.lifecycle == crate::node::Lifecycle::Stopped {
                // Our name is taken (`Event::NameTaken`): nothing more from this table.
                return;
            }
        }
        if push_pull.reply_wanted {
            self.send_push_pull(io, from, false);
        } else if let Some(join) = self.join.take() {
            self.join_transfer = Some(JoinTransfer {
                seeds: join.seeds,
                until: now + io.config.probe_interval,
            });
            io.emit(Event::Joined { via: from });
            catalog.after_join(io, from);
        }
    }

    /// Is a push-pull answer from `from` part of a seed's answer to our join? A seed's table
    /// comes in many datagrams, and every seed asked answers; those arriving within one probe
    /// interval of the first count. One arriving later is treated as any push-pull: gossiped
    /// on, which costs traffic, never news.
    fn is_join_transfer(&self, now: Instant, from: SocketAddr) -> bool {
        match (&self.join, &self.join_transfer) {
            (Some(join), _) => join.seeds.contains(&from),
            (None, Some(transfer)) => now < transfer.until && transfer.seeds.contains(&from),
            (None, None) => false,
        }
    }

    pub(crate) fn on_sync_tick(&mut self, io: &mut Io, catalog: &mut Catalog, now: Instant) {
        io.timers
            .schedule(now + io.config.sync_interval, Timer::SyncTick);
        let Some(peer) = sample(self.members.live(), 1, &mut io.rng, |_| false).pop() else {
            return;
        };
        if let Some(addr) = self.members.by_id(peer).map(|m| m.profile.addr) {
            io.stats.sync_rounds += 1;
            self.send_sync_probe(io, catalog, addr);
        }
    }

    pub(crate) fn send_sync_probe(&mut self, io: &mut Io, catalog: &mut Catalog, to: SocketAddr) {
        let probe = SyncProbe {
            members_digest: self.full_digest(),
        };
        let registry = catalog.registry_sync_message();
        self.send(io, to, &[Message::SyncProbe(probe), registry], true);
    }

    /// A digest that differs from ours starts a push-pull, which brings both sides level.
    pub(crate) fn on_sync_probe(
        &mut self,
        io: &mut Io,
        _now: Instant,
        from: SocketAddr,
        probe: SyncProbe,
    ) {
        if probe.members_digest != self.full_digest() {
            self.send_push_pull(io, from, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::config::Config;
    use crate::names::{Label, NodeName, ServiceName};
    use crate::node::{Command, Identity, Node};
    use crate::registry::InstanceSpec;
    use crate::time::Instant;
    use crate::wire::{self, encode_message, DatagramBuilder, Message, MessageKind, Ping};

    /// A piggybacked registry entry is counted as an entry sent, not as a member update: the
    /// per-kind counters agree with what the datagram holds.
    #[test]
    fn piggybacked_entries_count_as_entries() {
        let name = NodeName::new("n0").unwrap();
        let identity = Identity {
            name: name.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
            dc: Label::new("dc1").unwrap(),
            tags: Vec::new(),
        };
        let now = Instant::ZERO;
        let mut node = Node::new(Config::local(), identity, 1, now);
        let spec = InstanceSpec::new(ServiceName::new("api").unwrap(), "10.0.0.1", 80);
        node.handle_command(now, Command::Register(spec)).unwrap();
        // A ping: the ack carries the queued entry (no timer has run, so nothing went yet).
        let mut d = DatagramBuilder::new(1_400);
        assert!(d.try_push(&encode_message(&Message::Ping(Ping {
            seq: 1,
            target: name
        }))));
        let peer = SocketAddr::from(([127, 0, 0, 1], 7001));
        node.handle_datagram(now, peer, &d.finish());
        let mut sent = [0u64; MessageKind::ALL.len()];
        while let Some(t) = node.poll_transmit() {
            for m in wire::decode_datagram(&t.payload).unwrap() {
                sent[m.kind().index()] += 1;
            }
        }
        assert_eq!(sent[MessageKind::Entry.index()], 1);
        assert_eq!(node.stats().messages_out, sent);
    }
}
