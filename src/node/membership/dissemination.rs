//! Getting news around (SWIM §4.1): piggybacking on every datagram, eager pushes and gossip
//! rounds to random members, and the push-pull exchange behind join, anti-entropy and
//! reconnects.

use std::net::SocketAddr;

use super::claims::Source;
use super::{JoinTransfer, Membership};
use crate::bounded::BoundedVec;
use crate::node::catalog::Catalog;
use crate::node::io::Io;
use crate::node::replies::Sender;
use crate::node::Event;
use crate::swim::gossip::{retransmit_limit, Filled};
use crate::swim::probe::sample;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{
    DatagramBuilder, MemberUpdate, Message, MessageKind, PushPull, SyncProbe, PUSH_PULL_MEMBERS_MAX,
};

/// Bytes a push-pull message adds around its records: kind, flag and a length prefix.
pub(super) const PUSH_PULL_FRAME_BYTES: usize = 8;

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
        let filled = self.fill_queued(io, datagram);
        count_sent(io, filled, 1);
    }

    /// Put queued updates into `datagram`, each counting one of its transmissions; the caller
    /// counts the messages once it knows how many copies went out.
    fn fill_queued(&self, io: &mut Io, datagram: &mut DatagramBuilder) -> Filled {
        let limit = retransmit_limit(io.config.retransmit_mult, self.cluster_size());
        io.broadcasts.fill(datagram, limit)
    }

    pub(crate) fn on_eager_push(&mut self, io: &mut Io, now: Instant) {
        io.push_scheduled = false;
        io.last_push = Some(now);
        io.eager_rounds_left = io.eager_rounds_left.saturating_sub(1);
        self.gossip_round(io);
        if io.broadcasts.is_empty() {
            return;
        }
        if io.eager_rounds_left > 0 {
            io.schedule_push();
        }
        // What is left after the eager rounds goes out on gossip ticks.
        if !io.gossip_ticking {
            io.gossip_ticking = true;
            io.timers
                .schedule(now + io.config.gossip_interval, Timer::GossipTick);
        }
    }

    pub(crate) fn on_gossip_tick(&mut self, io: &mut Io, now: Instant) {
        self.gossip_round(io);
        // Tick on only while something is queued and a member can hear it; the next news
        // restarts the ticks (a member arriving is news).
        io.gossip_ticking = !io.broadcasts.is_empty() && !self.members.live().is_empty();
        if io.gossip_ticking {
            io.timers
                .schedule(now + io.config.gossip_interval, Timer::GossipTick);
        }
    }

    /// Send queued updates to `gossip_fanout` random live members, one datagram each.
    fn gossip_round(&mut self, io: &mut Io) {
        // Alone, a round reaches nobody: filling its datagram would spend every update's
        // retransmit budget before a first member could hear it, and count sends never made.
        if io.broadcasts.is_empty() || self.members.live().is_empty() {
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
        let filled = self.fill_queued(io, &mut datagram);
        if datagram.is_empty() {
            return;
        }
        let mut copies = 0;
        for target in targets {
            let Some(addr) = self.members.by_id(target).map(|m| m.addr()) else {
                continue;
            };
            io.transmit(addr, datagram.clone());
            copies += 1;
        }
        // The counters say what went on the wire, as the datagram and byte counters do: every
        // copy's messages.
        count_sent(io, filled, copies);
    }

    /// Answer a push-pull that asked for one: a member gets our whole table; a stranger (a
    /// joining node, or a spoofed address) one datagram no larger than what it sent.
    fn answer_push_pull(&mut self, io: &mut Io, now: Instant, from: SocketAddr) {
        match io.replies.sender() {
            Sender::Member | Sender::Failed => {
                if io.may_answer(now, MessageKind::PushPull) {
                    self.send_push_pull(io, from, false, None);
                }
            }
            Sender::Stranger => {
                if io
                    .replies
                    .stranger_answer(now, MessageKind::PushPull, &mut io.stats)
                {
                    let budget = io.replies.stranger_budget();
                    self.send_push_pull(io, from, false, Some(budget));
                }
            }
        }
    }

    /// Send our table to `to`, in as many datagrams as it takes, or in one datagram of at most
    /// `budget` bytes (as many records as fit, ours first).
    pub(crate) fn send_push_pull(
        &mut self,
        io: &mut Io,
        to: SocketAddr,
        reply_wanted: bool,
        budget: Option<usize>,
    ) {
        io.stats.push_pulls_sent += 1;
        let mut records = vec![self.own_update()];
        records.extend(self.members.iter().map(|(name, m)| MemberUpdate {
            claim: self.claim_for(&name, m.state),
            name,
            incarnation: m.incarnation,
            profile: self.members.profile(m),
        }));
        self.send_records(io, to, reply_wanted, records, budget);
    }

    /// Pack member records into push-pull datagrams no larger than the datagram budget, or
    /// into one datagram of at most `budget` bytes. Only the first chunk asks for a reply: the
    /// peer answers an exchange once, not once per chunk (issue 14, item 4).
    pub(crate) fn send_records(
        &mut self,
        io: &mut Io,
        to: SocketAddr,
        reply_wanted: bool,
        records: Vec<MemberUpdate>,
        budget: Option<usize>,
    ) {
        let frame = io.envelope_overhead() + PUSH_PULL_FRAME_BYTES;
        let room = match budget {
            Some(bytes) => bytes.min(io.config.packet_bytes_max).saturating_sub(frame),
            None => io.config.packet_bytes_max.saturating_sub(frame),
        };
        let mut chunk: Vec<MemberUpdate> = Vec::new();
        let mut chunk_bytes = 0;
        let mut ask = reply_wanted;
        for record in records {
            let size = bincode::encode_to_vec(&record, crate::wire::wire_config())
                .map_or(room, |v| v.len());
            let full = chunk_bytes + size > room || chunk.len() == PUSH_PULL_MEMBERS_MAX;
            if full && budget.is_some() {
                break;
            }
            if !chunk.is_empty() && full {
                let full = std::mem::take(&mut chunk);
                self.send_push_pull_chunk(io, to, ask, full);
                ask = false;
                chunk_bytes = 0;
            }
            chunk_bytes += size;
            chunk.push(record);
        }
        if !chunk.is_empty() {
            self.send_push_pull_chunk(io, to, ask, chunk);
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

    pub(super) fn claim_for(
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
        // Only a seed's answer completes a join: any other push-pull would make us send our
        // registry digest and sync probe to whatever address it came from (found by the
        // `cluster` fuzz target).
        let from_seed = self.join.as_ref().is_some_and(|j| j.seeds.contains(&from));
        if push_pull.reply_wanted {
            self.answer_push_pull(io, now, from);
        } else if let Some(join) = self.join.take_if(|_| from_seed) {
            self.join_transfer = Some(JoinTransfer {
                seeds: join.seeds,
                until: now + io.config.probe_interval,
            });
            io.emit(Event::Joined { via: from });
            // The seed's answer was at most as large as our join (`replies`): compare tables
            // now that it knows us, and a push-pull brings the rest if they differ.
            let probe = SyncProbe {
                members_digest: self.full_digest(),
            };
            io.send(from, &[Message::SyncProbe(probe)]);
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
        if let Some(addr) = self.members.by_id(peer).map(|m| m.addr()) {
            io.stats.sync_rounds += 1;
            self.send_sync_probe(io, catalog, now, addr);
        }
    }

    /// An early registry comparison, after an exchange that brought news
    /// ([`crate::node::catalog`]'s `resync`): the registry's hash only, to a live member other
    /// than those just compared with (any, if there is no other). The membership digest stays
    /// on its regular `sync_interval`: see `resync`'s module doc for why.
    pub(crate) fn on_registry_resync(&mut self, io: &mut Io, catalog: &mut Catalog, now: Instant) {
        // Only an active node compares (not joining, leaving or stopped), and only with a live
        // member: with neither, the timer spends nothing of the ceiling.
        let can_sync = self.lifecycle == crate::node::Lifecycle::Active
            && self.join.is_none()
            && !self.members.live().is_empty();
        if !catalog.resync_due(io, now, can_sync) {
            return;
        }
        let recent = catalog.recent_sync_partners(io, now);
        let members = &self.members;
        let is_recent = |id: &_| {
            members
                .by_id(*id)
                .is_some_and(|m| recent.contains(&m.addr()))
        };
        let mut picked = sample(members.live(), 1, &mut io.rng, is_recent);
        if picked.is_empty() {
            picked = sample(members.live(), 1, &mut io.rng, |_| false);
        }
        let Some(addr) = picked
            .pop()
            .and_then(|p| members.by_id(p))
            .map(|m| m.addr())
        else {
            return;
        };
        io.stats.registry_resyncs += 1;
        let registry = catalog.registry_sync_message();
        self.send(io, addr, &[registry], true);
    }

    /// The membership digest, and the registry's hash unless a comparison's push is still
    /// arriving (the peer would push the same entries again: `Catalog::receiving_push`).
    pub(crate) fn send_sync_probe(
        &mut self,
        io: &mut Io,
        catalog: &mut Catalog,
        now: Instant,
        to: SocketAddr,
    ) {
        let probe = Message::SyncProbe(SyncProbe {
            members_digest: self.full_digest(),
        });
        if catalog.receiving_push(io, now) {
            return self.send(io, to, &[probe], true);
        }
        let registry = catalog.registry_sync_message();
        self.send(io, to, &[probe, registry], true);
    }

    /// A digest that differs from ours starts a push-pull, which brings both sides level.
    pub(crate) fn on_sync_probe(
        &mut self,
        io: &mut Io,
        now: Instant,
        from: SocketAddr,
        probe: SyncProbe,
    ) {
        if probe.members_digest != self.full_digest() && io.may_answer(now, MessageKind::SyncProbe)
        {
            self.send_push_pull(io, from, true, None);
        }
    }
}

/// Count the queued updates `filled` put in a datagram that went out `copies` times.
fn count_sent(io: &mut Io, filled: Filled, copies: u64) {
    io.stats.messages_out(
        MessageKind::Member,
        (filled.members as u64).saturating_mul(copies),
    );
    io.stats.messages_out(
        MessageKind::Entry,
        (filled.instances as u64).saturating_mul(copies),
    );
    io.stats.messages_out(
        MessageKind::Query,
        (filled.queries as u64).saturating_mul(copies),
    );
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::config::Config;
    use crate::names::{Label, NodeName, ServiceName};
    use crate::node::{Command, Identity, Node};
    use crate::registry::InstanceSpec;
    use crate::time::Instant;
    use crate::wire::{
        self, encode_message, DatagramBuilder, Incarnation, Message, MessageKind, Ping,
    };

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
        let peer = SocketAddr::from(([127, 0, 0, 1], 7001));
        // The pinger is a member: a stranger gets a bare ack (`replies`).
        let mut d = DatagramBuilder::new(1_400);
        assert!(
            d.try_push(&encode_message(&Message::Member(wire::MemberUpdate {
                name: NodeName::new("n1").unwrap(),
                incarnation: Incarnation::ZERO,
                claim: wire::Claim::Alive,
                profile: wire::Profile {
                    addr: peer,
                    dc: Label::new("dc1").unwrap(),
                    tags: crate::bounded::BoundedVec::new(Vec::new()),
                },
            })))
        );
        node.handle_datagram(now, peer, &d.finish());
        while node.poll_transmit().is_some() {}
        let spec = InstanceSpec::new(ServiceName::new("api").unwrap(), "10.0.0.1", 80);
        node.handle_command(now, Command::Register(spec)).unwrap();
        // A ping: the ack carries the queued entry (no timer has run, so nothing went yet).
        let mut d = DatagramBuilder::new(1_400);
        assert!(d.try_push(&encode_message(&Message::Ping(Ping {
            seq: 1,
            target: name
        }))));
        node.handle_datagram(now, peer, &d.finish());
        let mut sent = [0u64; MessageKind::ALL.len()];
        while let Some(t) = node.poll_transmit() {
            for m in wire::decode_datagram(&t.payload).unwrap() {
                sent[m.kind().index()] += 1;
            }
        }
        assert_eq!(sent[MessageKind::Entry.index()], 1);
        let mut counted = node.stats().messages_out;
        // What went out before the ping: gossip of n1 joining, none of it drained here.
        counted[MessageKind::Member.index()] = sent[MessageKind::Member.index()];
        assert_eq!(counted, sent);
    }
}
