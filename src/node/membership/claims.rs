//! Applying membership claims: the merge rule in action, suspicion with Lifeguard's
//! confirmations, refutation of claims about ourselves (SWIM §4.2, Lifeguard §4.2).

use super::Membership;
use crate::names::NodeName;
use crate::node::catalog::Catalog;
use crate::node::io::Io;
use crate::node::{CommandError, Event, Lifecycle, Reply};
use crate::swim::gossip::Subject;
use crate::swim::members::{plausible, supersedes, State};
use crate::swim::probe::{uniform, ProbeKind};
use crate::swim::suspicion::{self, Suspicion};
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{encode_message, Claim, Incarnation, MemberUpdate, Message};

/// How far ahead of our incarnation a seed may hold a previous boot of ours at join (we start
/// again from zero without a data directory): a quarter of the serial space, so that
/// outbidding it keeps us in serial order with where we were.
const PREVIOUS_BOOT_AHEAD_MAX: u32 = 1 << 30;

/// A re-check after a verifying probe runs just after that probe's own deadline.
const RECHECK_MARGIN: std::time::Duration = std::time::Duration::from_millis(1);

/// Where a claim came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Our own probe or timer.
    Local,
    /// Gossip: news, believed as stated, except a failure of a member we hold alive: that may
    /// be a stale verdict from a node that was cut off (a healed partition, an isolated node),
    /// so it counts as a suspicion here, which the member can refute and we verify ourselves.
    Gossip,
    /// Another node's whole table: its failures may be stale views from the far side of a
    /// partition, so they count only as suspicions here, which a live member can refute
    /// (memberlist does the same).
    PushPull,
    /// A seed's table in answer to our join: believed as `PushPull`, but not gossiped on.
    /// Nothing in it is news to the cluster (the seed holds it, and spread what it learnt as
    /// it learnt it), while re-gossiping it would queue an update per member: at 1,000 members,
    /// minutes of full datagrams from every newcomer, none telling anyone anything.
    JoinTransfer,
}

impl Membership {
    /// Merge one claim into the table; true if it changed anything (and was queued to gossip).
    pub(crate) fn apply_update(
        &mut self,
        io: &mut Io,
        catalog: &mut Catalog,
        now: Instant,
        update: MemberUpdate,
        source: Source,
    ) -> bool {
        if update.name == self.name {
            return self.apply_update_about_me(io, update, source);
        }
        let held_alive = self.members.get(&update.name).map(|m| m.state) == Some(State::Alive);
        let claim = match (source, update.claim) {
            (Source::PushPull | Source::JoinTransfer, Claim::Failed { by }) => {
                Claim::Suspect { by }
            }
            (Source::Gossip, Claim::Failed { by }) if held_alive => Claim::Suspect { by },
            (_, claim) => claim,
        };
        let incoming = State::of(&claim);
        let name = update.name;
        let Some((id, current)) = self.members.find(&name) else {
            // Strangers are learnt of through good news only, so a reaped member is not
            // brought back by a late rumour of its death.
            if incoming != State::Alive {
                return false;
            }
            let addr = update.profile.addr;
            let Some(id) = self.members.set(
                &name,
                update.incarnation,
                State::Alive,
                &update.profile,
                now,
            ) else {
                return false;
            };
            self.probe_order.insert(id, &mut io.rng);
            io.emit(Event::MemberJoined {
                name: name.clone(),
                addr,
            });
            self.pass_on(
                io,
                MemberUpdate {
                    name,
                    claim,
                    ..update
                },
                source,
            );
            return true;
        };
        let (cur_inc, cur_state, cur_addr) = (current.incarnation, current.state, current.addr());
        if !plausible(cur_inc, update.incarnation) {
            // Only the member raises its incarnation, one refutation at a time: a claim this
            // far ahead is forged or corrupt, and believing it would leave the member little
            // room to refute (issue 14). Nothing changes; the event is for the log.
            io.stats.implausible_claims += 1;
            io.emit_quiet(Event::ImplausibleClaim {
                name,
                known: cur_inc,
                claimed: update.incarnation,
            });
            return false;
        }

        if let Claim::Suspect { by } = &claim {
            if cur_state == State::Suspect && cur_inc == update.incarnation {
                self.confirm_suspicion(io, now, &name, by);
                return false;
            }
        }
        if !supersedes((cur_inc, cur_state), (update.incarnation, incoming)) {
            if incoming == State::Alive
                && !cur_state.is_live()
                && io.replies.from() == Some(cur_addr)
                && update.profile.addr == cur_addr
            {
                self.tell_verdict(io, now, id);
            }
            return false;
        }
        if incoming == State::Alive && cur_state.is_live() && cur_addr != update.profile.addr {
            io.stats.name_conflicts += 1;
            io.emit(Event::NameConflict {
                name,
                known: cur_addr,
                claimed: update.profile.addr,
            });
            return false;
        }
        // Only good news from the member itself carries a new profile; a verdict about it keeps
        // the one we hold.
        let profile = if incoming == State::Alive {
            self.members
                .set(&name, update.incarnation, incoming, &update.profile, now);
            update.profile
        } else {
            self.members
                .set_state(id, update.incarnation, incoming, now);
            match self.members.by_id(id) {
                Some(member) => self.members.profile(member),
                None => update.profile,
            }
        };
        match &claim {
            Claim::Alive => {
                self.suspicions.remove(&name);
                match cur_state {
                    State::Suspect => {
                        io.stats.suspicions_refuted += 1;
                        io.emit(Event::MemberRecovered { name: name.clone() });
                    }
                    State::Failed | State::Left => {
                        self.probe_order.insert(id, &mut io.rng);
                        io.emit(Event::MemberRecovered { name: name.clone() });
                        let view = self.view(io.config.expected_members);
                        catalog.on_member_back(io, &view, &name, profile.addr);
                    }
                    State::Alive => {}
                }
            }
            Claim::Suspect { by } => self.start_suspicion(io, now, &name, update.incarnation, by),
            Claim::Failed { .. } => {
                self.suspicions.remove(&name);
                io.emit(Event::MemberFailed { name: name.clone() });
                catalog.on_member_gone(now);
            }
            Claim::Left => {
                self.suspicions.remove(&name);
                io.emit(Event::MemberLeft { name: name.clone() });
                catalog.on_member_gone(now);
            }
        }
        self.pass_on(
            io,
            MemberUpdate {
                name,
                incarnation: update.incarnation,
                claim,
                profile,
            },
            source,
        );
        true
    }

    /// A claim changed the table: gossip it on, unless it came with a join's state transfer.
    fn pass_on(&mut self, io: &mut Io, update: MemberUpdate, source: Source) {
        if source == Source::JoinTransfer {
            io.changed();
        } else {
            self.queue_member(io, update);
        }
    }

    fn start_suspicion(
        &mut self,
        io: &mut Io,
        now: Instant,
        name: &NodeName,
        incarnation: Incarnation,
        by: &NodeName,
    ) {
        let window = suspicion::bounds(
            io.config.suspicion_base,
            io.config.suspicion_max_mult,
            self.cluster_size(),
        );
        // Lifeguard §4.2 (as memberlist): when fewer members than K could ever confirm (all
        // but us and the suspect), waiting for confirmations only delays; start at the minimum.
        let confirmers_possible = self.cluster_size().saturating_sub(2);
        let k = match io.config.suspicion_confirmations {
            k if (k as usize) > confirmers_possible => 0,
            k => k,
        };
        let mut suspicion = Suspicion::new(incarnation, by.clone(), now, window, k);
        if *by == self.name {
            suspicion.witness();
        }
        let deadline = suspicion.deadline();
        self.suspicions.insert(name.clone(), suspicion);
        io.timers.schedule(
            deadline,
            Timer::Suspicion {
                member: name.clone(),
                incarnation,
            },
        );
        if *by == self.name {
            io.stats.suspicions_raised += 1;
        } else {
            self.maybe_confirm_probe(io, now, name);
        }
        io.emit(Event::MemberSuspected {
            name: name.clone(),
            by: by.clone(),
        });
    }

    /// Probe a suspect at once, with probability chosen so that about `confirm_probes`
    /// members do so in all: a dead suspect is confirmed within one probe timeout, a live one
    /// is told (buddy system) and refutes.
    fn maybe_confirm_probe(&mut self, io: &mut Io, now: Instant, name: &NodeName) {
        if self.lifecycle != Lifecycle::Active || self.probes.values().any(|p| p.target == *name) {
            return;
        }
        // Those who hear of it: our live list less the suspect and the first suspecter.
        let others = self.members.live().len().saturating_sub(2).max(1);
        let wanted = io.config.confirm_probes as usize;
        if uniform(&mut io.rng, others) < wanted {
            self.start_probe(io, now, name.clone(), ProbeKind::Confirm);
        }
    }

    fn confirm_suspicion(&mut self, io: &mut Io, now: Instant, name: &NodeName, by: &NodeName) {
        let Some(suspicion) = self.suspicions.get_mut(name) else {
            return;
        };
        if *by == self.name {
            suspicion.witness();
        }
        if !suspicion.confirm(by) {
            return;
        }
        let (incarnation, deadline) = (suspicion.incarnation, suspicion.deadline());
        io.timers.schedule(
            deadline.max(now),
            Timer::Suspicion {
                member: name.clone(),
                incarnation,
            },
        );
        // Pass the confirmation on, so that others shrink their timers too.
        if let Some(member) = self.members.get(name) {
            let update = MemberUpdate {
                name: name.clone(),
                incarnation,
                claim: Claim::Suspect { by: by.clone() },
                profile: self.members.profile(member),
            };
            self.queue_member(io, update);
        }
    }

    pub(crate) fn on_suspicion_timeout(
        &mut self,
        io: &mut Io,
        catalog: &mut Catalog,
        now: Instant,
        name: &NodeName,
        incarnation: Incarnation,
    ) {
        let Some(suspicion) = self.suspicions.get(name) else {
            return;
        };
        if suspicion.incarnation != incarnation || now < suspicion.deadline() {
            // Refuted and suspected anew, or a confirmation moved the deadline: another timer
            // guards the live suspicion.
            return;
        }
        if self.lifecycle != Lifecycle::Active {
            return;
        }
        if !suspicion.witnessed_by(&self.name) {
            // We only heard of this suspicion; before we call the member failed, probe it
            // ourselves. A live member answers, and its refutation rides on the ack; a dead one
            // fails the probe, which witnesses the suspicion, and the timer set here then
            // declares it. This keeps a refutation we missed, or a stale verdict gossiped by a
            // node that was cut off, from turning into a false failure.
            if !self.probes.values().any(|p| p.target == *name) {
                self.start_probe(io, now, name.clone(), ProbeKind::Confirm);
            }
            let recheck = self.awareness.scale(io.config.probe_interval) + RECHECK_MARGIN;
            io.timers.schedule(
                now + recheck,
                Timer::Suspicion {
                    member: name.clone(),
                    incarnation,
                },
            );
            return;
        }
        let Some(member) = self.members.get(name) else {
            return;
        };
        let update = MemberUpdate {
            name: name.clone(),
            incarnation,
            claim: Claim::Failed {
                by: self.name.clone(),
            },
            profile: self.members.profile(member),
        };
        if self.apply_update(io, catalog, now, update, Source::Local) {
            io.stats.suspicions_confirmed += 1;
        }
    }

    /// The member itself, from its own address, says it is alive at an incarnation our verdict
    /// (left or failed) outranks: it restarted without its data, or its verdict passed it by.
    /// Only the member can raise its incarnation, and nothing else would tell it: the verdict
    /// was gossiped its retransmit limit and is no longer news, and a join answered as a
    /// stranger's carries one datagram of the table, which need not hold its record. So tell it,
    /// in one small message: it refutes, and its alive outbids the verdict everywhere (the
    /// `churn` scenario at 128 nodes: 2 of 20 restarts stayed `left` in every table but their
    /// own). Bounded as any answer to a stranger: one per datagram, within the stranger answers
    /// per second shared with acks and join answers, and, envelope included, no larger than the
    /// datagram that carried the claim.
    fn tell_verdict(&mut self, io: &mut Io, now: Instant, id: crate::swim::members::MemberId) {
        let Some(member) = self.members.by_id(id) else {
            return;
        };
        let name = self.members.name(member);
        let update = MemberUpdate {
            claim: self.claim_for(&name, member.state),
            name,
            incarnation: member.incarnation,
            profile: self.members.profile(member),
        };
        let to = member.addr();
        let message = Message::Member(update);
        // The envelope (checksum, label, seal) comes on top of the message.
        let size = encode_message(&message)
            .len()
            .saturating_add(io.envelope_overhead());
        let fits = size <= io.replies.stranger_budget();
        if fits
            && io
                .replies
                .stranger_answer(now, crate::wire::MessageKind::Member, &mut io.stats)
        {
            io.send(to, &[message]);
        }
    }

    /// A claim about this node. Anything that says we are not alive, or that a newer us
    /// exists, is refuted by outbidding its incarnation (SWIM §4.2).
    fn apply_update_about_me(&mut self, io: &mut Io, update: MemberUpdate, source: Source) -> bool {
        if self.lifecycle != Lifecycle::Active {
            return false;
        }
        // A claim far ahead of our own incarnation is forged, unless it is what the seed we
        // joined through holds of a previous boot of ours (restarted without its data
        // directory, we start again from zero). Refuting it would move us where the members
        // that refused it as implausible never follow, and we would be held at the old one.
        // Even a previous boot's count stays within a quarter of the serial space: outbidding
        // a claim half the space away would be neither newer nor older than where we were.
        let previous_boot = source == Source::JoinTransfer
            && update.incarnation.steps_after(self.incarnation) < PREVIOUS_BOOT_AHEAD_MAX;
        if !previous_boot && !plausible(self.incarnation, update.incarnation) {
            io.stats.implausible_claims += 1;
            io.emit_quiet(Event::ImplausibleClaim {
                name: self.name.clone(),
                known: self.incarnation,
                claimed: update.incarnation,
            });
            return false;
        }
        if source == Source::JoinTransfer
            && update.profile.addr != self.profile.addr
            && State::of(&update.claim).is_live()
        {
            // The seed holds our name live at another address: another process runs under it
            // (a cloned VM keeps the host name). Refuse to join rather than fight it: two live
            // processes under one name each take the other's entries for their own, and the
            // zombie rule deletes them. Stop, and let the shell say who holds it.
            io.stats.name_conflicts += 1;
            self.name_taken_by = Some(update.profile.addr);
            self.lifecycle = Lifecycle::Stopped;
            self.join = None;
            io.registry_tick_at = None;
            io.emit(Event::NameTaken {
                holder: update.profile.addr,
            });
            return false;
        }
        let stale = self.incarnation.is_newer_than(update.incarnation);
        let refute = match &update.claim {
            Claim::Alive => {
                let impostor = update.profile.addr != self.profile.addr;
                if impostor && !stale {
                    io.stats.name_conflicts += 1;
                    io.emit(Event::NameConflict {
                        name: self.name.clone(),
                        known: self.profile.addr,
                        claimed: update.profile.addr,
                    });
                }
                // An alive claim at our incarnation with our address is our own news echoing.
                update.incarnation.is_newer_than(self.incarnation) || (impostor && !stale)
            }
            Claim::Suspect { .. } | Claim::Failed { .. } | Claim::Left => !stale,
        };
        if !refute {
            if stale && matches!(update.claim, Claim::Suspect { .. } | Claim::Failed { .. }) {
                // Someone still holds an old verdict about us: our refutation passed it by.
                // Send it again; when the verdict came in a buddy ping, it rides on the ack.
                self.queue_member(io, self.own_update());
            }
            return false;
        }
        if matches!(update.claim, Claim::Suspect { .. } | Claim::Failed { .. }) {
            // Lifeguard: being suspected is a sign we may be the slow one.
            self.awareness.apply(1);
        }
        // Serial order: the successor of u32::MAX is 0, so no claim leaves us without one.
        self.incarnation = update.incarnation.later(self.incarnation).next();
        io.stats.refutations += 1;
        io.emit(Event::Refuted {
            incarnation: self.incarnation,
        });
        self.queue_member(io, self.own_update());
        true
    }

    /// Our own current claim: alive, or left once we are leaving.
    /// Consul's force-leave: an operator declares a failed member gone for good. The claim
    /// becomes `left` at the incarnation we hold, which outranks `failed` at equal incarnation,
    /// so every node adopts it; it is gossiped like any other news, and the member's instances
    /// go as any departed owner's do. A live or suspect member is refused: it would refute.
    pub(crate) fn force_leave(
        &mut self,
        io: &mut Io,
        catalog: &mut Catalog,
        now: Instant,
        name: &NodeName,
    ) -> Result<Reply, CommandError> {
        if *name == self.name {
            return Err(CommandError::MemberLive { name: name.clone() });
        }
        let Some((_, member)) = self.members.find(name) else {
            return Err(CommandError::UnknownMember { name: name.clone() });
        };
        match member.state {
            State::Alive | State::Suspect => Err(CommandError::MemberLive { name: name.clone() }),
            State::Left => Ok(Reply::Done),
            State::Failed => {
                // A failure seen from a minority may be our own isolation (issue 14): evicting
                // the member would send a live node through a leave it must refute.
                let quorum = self.view(io.config.expected_members).quorum();
                if !quorum.has_quorum {
                    return Err(CommandError::NoQuorum {
                        reachable: quorum.reachable,
                        known: quorum.known.max(quorum.expected.unwrap_or(0)),
                    });
                }
                let update = MemberUpdate {
                    name: name.clone(),
                    incarnation: member.incarnation,
                    claim: Claim::Left,
                    profile: self.members.profile(member),
                };
                self.apply_update(io, catalog, now, update, Source::Gossip);
                Ok(Reply::Done)
            }
        }
    }

    pub(crate) fn own_update(&self) -> MemberUpdate {
        let claim = match self.lifecycle {
            Lifecycle::Active => Claim::Alive,
            Lifecycle::Leaving | Lifecycle::Stopped => Claim::Left,
        };
        MemberUpdate {
            name: self.name.clone(),
            incarnation: self.incarnation,
            claim,
            profile: (*self.profile).clone(),
        }
    }

    /// Queue a membership update for dissemination and push it out soon.
    pub(crate) fn queue_member(&mut self, io: &mut Io, update: MemberUpdate) {
        let subject = Subject::Member(update.name.clone());
        let payload = encode_message(&Message::Member(update));
        io.broadcasts.push(subject, payload.into());
        io.changed();
        io.want_push();
    }
}
