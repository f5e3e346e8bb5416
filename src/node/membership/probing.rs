//! The probe loop (SWIM §3.1) with Lifeguard's nacks and local health (Lifeguard §4.1).
//!
//! Every protocol period: ping the next member in round-robin order. No ack within the probe
//! timeout: ask `indirect_checks` others to ping it (ping-req); they answer with the target's
//! ack, or with a nack if they heard nothing. No ack by the end of the period: suspect it.
//! Missed nacks count against our own health, not the target's.

use std::net::SocketAddr;

use super::claims::Source;
use super::{Membership, PROBES_MAX, RELAYS_MAX};
use crate::names::NodeName;
use crate::node::catalog::Catalog;
use crate::node::io::Io;
use crate::node::replies::Sender;
use crate::node::Lifecycle;
use crate::stats::Refusal;
use crate::swim::probe::{sample, Probe, ProbeKind, Relay};
use crate::swim::State;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{Ack, Claim, MemberUpdate, Message, MessageKind, Nack, Ping, PingReq, Seq};

impl Membership {
    pub(crate) fn on_probe_tick(&mut self, io: &mut Io, now: Instant) {
        let interval = self.awareness.scale(io.config.probe_interval);
        io.timers.schedule(now + interval, Timer::ProbeTick);
        if self.lifecycle != Lifecycle::Active {
            return;
        }
        let members = &self.members;
        let target = self
            .probe_order
            .next_target(members.live(), &mut io.rng, |id| {
                members.by_id(id).is_some_and(|m| m.state.is_live())
            })
            .and_then(|id| members.by_id(id))
            .map(|m| members.name(m));
        if let Some(target) = target {
            self.start_probe(io, now, target, ProbeKind::Regular);
        }
    }

    /// Ping `target` directly and arm the probe's two deadlines.
    pub(crate) fn start_probe(
        &mut self,
        io: &mut Io,
        now: Instant,
        target: NodeName,
        kind: ProbeKind,
    ) {
        if self.probes.len() >= PROBES_MAX {
            return;
        }
        let Some(addr) = self.members.get(&target).map(|m| m.addr()) else {
            return;
        };
        let seq = self.next_seq();
        let messages = self.ping_messages(seq, &target);
        self.probes.insert(
            seq,
            Probe {
                target,
                addr,
                started: now,
                kind,
                nacks_expected: 0,
                nacks_received: 0,
                nacks_pending: Vec::new(),
                indirect_asked: false,
            },
        );
        io.stats.probes_sent += 1;
        self.send(io, addr, &messages, true);
        let timeout = self.awareness.scale(io.config.probe_timeout);
        let interval = self.awareness.scale(io.config.probe_interval);
        io.timers
            .schedule(now + timeout, Timer::ProbeTimeout { seq });
        io.timers
            .schedule(now + interval, Timer::ProbeDeadline { seq });
    }

    /// A ping, and if the target is suspected, the suspicion itself (Lifeguard's buddy
    /// system): a live suspect learns of it from the probe and refutes at once. The suspicion
    /// goes first, so the receiver has refuted before it acks, and the refutation rides back
    /// on the ack.
    fn ping_messages(&self, seq: Seq, target: &NodeName) -> Vec<Message> {
        let mut messages = Vec::with_capacity(2);
        if let (Some(member), Some(suspicion)) =
            (self.members.get(target), self.suspicions.get(target))
        {
            if member.state == State::Suspect {
                messages.push(Message::Member(MemberUpdate {
                    name: target.clone(),
                    incarnation: member.incarnation,
                    claim: Claim::Suspect {
                        by: suspicion.first_suspecter().clone(),
                    },
                    profile: self.members.profile(member),
                }));
            }
        }
        messages.push(Message::Ping(Ping {
            seq,
            target: target.clone(),
        }));
        messages
    }

    pub(crate) fn on_probe_timeout(&mut self, io: &mut Io, seq: Seq) {
        let Some(probe) = self.probes.get_mut(&seq) else {
            return;
        };
        if probe.indirect_asked {
            return;
        }
        probe.indirect_asked = true;
        let (target, addr) = (probe.target.clone(), probe.addr);
        // The table holds neither us nor strangers: excluding the target is enough.
        let target_id = self.members.id(&target);
        let helpers = sample(
            self.members.live(),
            io.config.indirect_checks,
            &mut io.rng,
            |id| Some(*id) == target_id,
        );
        let request = Message::PingReq(PingReq {
            seq,
            target: target.clone(),
            target_addr: addr,
        });
        let mut asked = Vec::with_capacity(helpers.len());
        for helper in helpers {
            if let Some(helper_addr) = self.members.by_id(helper).map(|m| m.addr()) {
                self.send(io, helper_addr, std::slice::from_ref(&request), true);
                asked.push(helper_addr);
            }
        }
        io.stats.indirect_probes_sent += asked.len() as u64;
        if let Some(probe) = self.probes.get_mut(&seq) {
            probe.nacks_expected = asked.len() as u32;
            probe.nacks_pending = asked;
        }
    }

    pub(crate) fn on_probe_deadline(
        &mut self,
        io: &mut Io,
        catalog: &mut Catalog,
        now: Instant,
        seq: Seq,
    ) {
        let Some(probe) = self.probes.remove(&seq) else {
            return;
        };
        io.stats.probes_failed += 1;
        if probe.kind == ProbeKind::Regular {
            // Lifeguard §4.1: missing nacks mean we are the slow one; without helpers to
            // vouch for us, any failed probe counts.
            let delta = if probe.nacks_expected > 0 {
                probe.nacks_expected.saturating_sub(probe.nacks_received)
            } else {
                1
            };
            self.awareness.apply(delta as i32);
        }
        if self.lifecycle != Lifecycle::Active {
            return;
        }
        let Some(member) = self.members.get(&probe.target) else {
            return;
        };
        if !member.state.is_live() || member.addr() != probe.addr {
            return;
        }
        let update = MemberUpdate {
            name: probe.target,
            incarnation: member.incarnation,
            claim: Claim::Suspect {
                by: self.name.clone(),
            },
            profile: self.members.profile(member),
        };
        self.apply_update(io, catalog, now, update, Source::Local);
    }

    pub(crate) fn on_ping(&mut self, io: &mut Io, now: Instant, from: SocketAddr, ping: Ping) {
        if ping.target != self.name {
            // Meant for another node that used to live at this address.
            return;
        }
        let ack = Message::Ack(Ack { seq: ping.seq });
        match io.replies.sender() {
            Sender::Member | Sender::Failed => self.send(io, from, &[ack], true),
            // A bare ack, rate-limited: no gossip (nor its retransmits) for an address that may
            // be spoofed (`replies`).
            Sender::Stranger => {
                if io
                    .replies
                    .stranger_answer(now, MessageKind::Ping, &mut io.stats)
                {
                    io.send(from, &[ack]);
                }
            }
        }
    }

    pub(crate) fn on_ack(&mut self, io: &mut Io, now: Instant, ack: Ack) {
        if let Some(probe) = self.probes.remove(&ack.seq) {
            // Answered: its timeout and deadline have nothing left to do.
            io.timers.cancel(&Timer::ProbeTimeout { seq: ack.seq });
            io.timers.cancel(&Timer::ProbeDeadline { seq: ack.seq });
            io.stats.record_rtt(now.saturating_since(probe.started));
            self.members.record_ack(&probe.target, now);
            if probe.kind == ProbeKind::Regular {
                self.awareness.apply(-1);
            }
        }
        if let Some(relay) = self.relays.remove(&ack.seq) {
            io.timers.cancel(&Timer::RelayTimeout { seq: ack.seq });
            self.send(
                io,
                relay.origin,
                &[Message::Ack(Ack {
                    seq: relay.origin_seq,
                })],
                true,
            );
        }
    }

    pub(crate) fn on_ping_req(
        &mut self,
        io: &mut Io,
        now: Instant,
        from: SocketAddr,
        req: PingReq,
    ) {
        if io.replies.sender() != Sender::Member {
            // A stranger could make us ping any address, and answer it later.
            io.stats.reply_refused(Refusal::Stranger);
            return;
        }
        if self.relays.len() >= RELAYS_MAX {
            return;
        }
        let seq = self.next_seq();
        self.relays.insert(
            seq,
            Relay {
                origin: from,
                origin_seq: req.seq,
                target_addr: req.target_addr,
                nacked: false,
            },
        );
        let messages = self.ping_messages(seq, &req.target);
        self.send(io, req.target_addr, &messages, true);
        // Nack a little before the requester gives up on us, as memberlist does (80%).
        let wait = self.awareness.scale(io.config.probe_timeout).mul_f64(0.8);
        io.timers.schedule(now + wait, Timer::RelayTimeout { seq });
    }

    pub(crate) fn on_relay_timeout(&mut self, io: &mut Io, _now: Instant, seq: Seq) {
        if let Some(relay) = self.relays.remove(&seq) {
            if !relay.nacked {
                self.send_nack(io, &relay);
            }
        }
    }

    fn send_nack(&mut self, io: &mut Io, relay: &Relay) {
        io.stats.nacks_sent += 1;
        let nack = Message::Nack(Nack {
            seq: relay.origin_seq,
        });
        self.send(io, relay.origin, &[nack], true);
    }

    /// The network reported a datagram to `addr` undeliverable because nothing listens on its
    /// port (ICMP port unreachable: the host is up, the process is not). That is a strong
    /// hint, not proof (ICMP can be forged, and an address may be reused), so it only skips
    /// waiting: a probe of that address asks its helpers now instead of after its timeout,
    /// and a ping we relay for another member is nacked now (its ack, should one come, is
    /// still passed on until the relay's timeout). The suspicion itself still
    /// needs the helpers' nacks or the period's end, and a live target still refutes it.
    pub(crate) fn on_port_unreachable(&mut self, io: &mut Io, addr: SocketAddr) {
        let probes: Vec<Seq> = self
            .probes
            .iter()
            .filter(|(_, p)| p.addr == addr && !p.indirect_asked)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in probes {
            io.timers.cancel(&Timer::ProbeTimeout { seq });
            io.stats.probes_cut_short += 1;
            self.on_probe_timeout(io, seq);
        }
        let relays: Vec<Relay> = self
            .relays
            .values_mut()
            .filter(|r| r.target_addr == addr && !r.nacked)
            .map(|r| {
                r.nacked = true;
                *r
            })
            .collect();
        for relay in relays {
            self.send_nack(io, &relay);
        }
    }

    /// Lifeguard nacks: each proves a helper is alive yet could not reach the target. Once
    /// every helper has nacked, waiting out the rest of the period tells us nothing more, so
    /// the probe ends now and the suspicion starts a few hundred milliseconds sooner.
    pub(crate) fn on_nack(
        &mut self,
        io: &mut Io,
        catalog: &mut Catalog,
        now: Instant,
        from: SocketAddr,
        nack: Nack,
    ) {
        let Some(probe) = self.probes.get_mut(&nack.seq) else {
            return;
        };
        // Only from a helper we asked, once each (issue 14): a duplicated nack, or one from
        // anyone else, would end the probe before the helpers we asked have answered.
        let Some(at) = probe.nacks_pending.iter().position(|h| *h == from) else {
            return;
        };
        probe.nacks_pending.swap_remove(at);
        probe.nacks_received += 1;
        if probe.nacks_expected > 0 && probe.nacks_received >= probe.nacks_expected {
            self.on_probe_deadline(io, catalog, now, nack.seq);
        }
    }
}
