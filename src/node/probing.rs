//! The probe loop (SWIM §3.1) with Lifeguard's nacks and local health (Lifeguard §4.1).
//!
//! Every protocol period: ping the next member in round-robin order. No ack within the probe
//! timeout: ask `indirect_checks` others to ping it (ping-req); they answer with the target's
//! ack, or with a nack if they heard nothing. No ack by the end of the period: suspect it.
//! Missed nacks count against our own health, not the target's.

use std::net::SocketAddr;

use super::membership::Source;
use super::{Lifecycle, Node, PROBES_MAX, RELAYS_MAX};
use crate::names::NodeName;
use crate::swim::probe::{sample, Probe, ProbeKind, Relay};
use crate::swim::State;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{Ack, Claim, MemberUpdate, Message, Nack, Ping, PingReq, Seq};

impl Node {
    pub(super) fn on_probe_tick(&mut self, now: Instant) {
        let interval = self.awareness.scale(self.io.config.probe_interval);
        self.io.timers.schedule(now + interval, Timer::ProbeTick);
        if self.lifecycle != Lifecycle::Active {
            return;
        }
        let members = &self.members;
        let target = self
            .probe_order
            .next_target(members.live(), &mut self.io.rng, |id| {
                members.by_id(id).is_some_and(|m| m.state.is_live())
            })
            .and_then(|id| members.by_id(id))
            .map(|m| m.name().clone());
        if let Some(target) = target {
            self.start_probe(now, target, ProbeKind::Regular);
        }
    }

    /// Ping `target` directly and arm the probe's two deadlines.
    pub(super) fn start_probe(&mut self, now: Instant, target: NodeName, kind: ProbeKind) {
        if self.probes.len() >= PROBES_MAX {
            return;
        }
        let Some(addr) = self.members.get(&target).map(|m| m.profile.addr) else {
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
            },
        );
        self.io.stats.probes_sent += 1;
        self.send(addr, &messages, true);
        let timeout = self.awareness.scale(self.io.config.probe_timeout);
        let interval = self.awareness.scale(self.io.config.probe_interval);
        self.io
            .timers
            .schedule(now + timeout, Timer::ProbeTimeout { seq });
        self.io
            .timers
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
                    profile: member.profile.to_profile(),
                }));
            }
        }
        messages.push(Message::Ping(Ping {
            seq,
            target: target.clone(),
        }));
        messages
    }

    pub(super) fn on_probe_timeout(&mut self, seq: Seq) {
        let Some(probe) = self.probes.get(&seq) else {
            return;
        };
        let (target, addr) = (probe.target.clone(), probe.addr);
        // The table holds neither us nor strangers: excluding the target is enough.
        let target_id = self.members.id(&target);
        let helpers = sample(
            self.members.live(),
            self.io.config.indirect_checks,
            &mut self.io.rng,
            |id| Some(*id) == target_id,
        );
        let request = Message::PingReq(PingReq {
            seq,
            target: target.clone(),
            target_addr: addr,
        });
        let mut sent = 0;
        for helper in helpers {
            if let Some(helper_addr) = self.members.by_id(helper).map(|m| m.profile.addr) {
                self.send(helper_addr, std::slice::from_ref(&request), true);
                sent += 1;
            }
        }
        self.io.stats.indirect_probes_sent += sent;
        if let Some(probe) = self.probes.get_mut(&seq) {
            probe.nacks_expected = sent as u32;
        }
    }

    pub(super) fn on_probe_deadline(&mut self, now: Instant, seq: Seq) {
        let Some(probe) = self.probes.remove(&seq) else {
            return;
        };
        self.io.stats.probes_failed += 1;
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
        if !member.state.is_live() || member.profile.addr != probe.addr {
            return;
        }
        let update = MemberUpdate {
            name: probe.target,
            incarnation: member.incarnation,
            claim: Claim::Suspect {
                by: self.name.clone(),
            },
            profile: member.profile.to_profile(),
        };
        self.apply_update(now, update, Source::Local);
    }

    pub(super) fn on_ping(&mut self, _now: Instant, from: SocketAddr, ping: Ping) {
        if ping.target != self.name {
            // Meant for another node that used to live at this address.
            return;
        }
        self.send(from, &[Message::Ack(Ack { seq: ping.seq })], true);
    }

    pub(super) fn on_ack(&mut self, now: Instant, ack: Ack) {
        if let Some(probe) = self.probes.remove(&ack.seq) {
            self.io
                .stats
                .record_rtt(now.saturating_since(probe.started));
            self.members.record_ack(&probe.target, now);
            if probe.kind == ProbeKind::Regular {
                self.awareness.apply(-1);
            }
        }
        if let Some(relay) = self.relays.remove(&ack.seq) {
            self.send(
                relay.origin,
                &[Message::Ack(Ack {
                    seq: relay.origin_seq,
                })],
                true,
            );
        }
    }

    pub(super) fn on_ping_req(&mut self, now: Instant, from: SocketAddr, req: PingReq) {
        if self.relays.len() >= RELAYS_MAX {
            return;
        }
        let seq = self.next_seq();
        self.relays.insert(
            seq,
            Relay {
                origin: from,
                origin_seq: req.seq,
            },
        );
        let messages = self.ping_messages(seq, &req.target);
        self.send(req.target_addr, &messages, true);
        // Nack a little before the requester gives up on us, as memberlist does (80%).
        let wait = self
            .awareness
            .scale(self.io.config.probe_timeout)
            .mul_f64(0.8);
        self.io
            .timers
            .schedule(now + wait, Timer::RelayTimeout { seq });
    }

    pub(super) fn on_relay_timeout(&mut self, _now: Instant, seq: Seq) {
        if let Some(relay) = self.relays.remove(&seq) {
            self.io.stats.nacks_sent += 1;
            self.send(
                relay.origin,
                &[Message::Nack(Nack {
                    seq: relay.origin_seq,
                })],
                true,
            );
        }
    }

    /// Lifeguard nacks: each proves a helper is alive yet could not reach the target. Once
    /// every helper has nacked, waiting out the rest of the period tells us nothing more, so
    /// the probe ends now and the suspicion starts a few hundred milliseconds sooner.
    pub(super) fn on_nack(&mut self, now: Instant, nack: Nack) {
        let Some(probe) = self.probes.get_mut(&nack.seq) else {
            return;
        };
        probe.nacks_received += 1;
        if probe.nacks_expected > 0 && probe.nacks_received >= probe.nacks_expected {
            self.on_probe_deadline(now, nack.seq);
        }
    }
}
