//! Manual stepping and observation, for tests that check one protocol property at a time.
//!
//! The scenarios judge a run by its figures; a property test needs to see more: every datagram
//! a node sent (delivered or not), every event with when and where, a clock advanced one
//! instant at a time, and a datagram handed to a node now. A world records nothing of this
//! unless [`World::keep_log`] is called, so the scenarios' runs and trace hashes are the same
//! with or without this module.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hera::config::Config;
use hera::node::Event;
use hera::swim::State;
use hera::wire::{self, encode_message, DatagramBuilder, Incarnation, Message, Tag};
use hera::{Instant, Node, Transmit};

use crate::network::LinkModel;
use crate::{World, WorldOptions};

/// A datagram a node emitted (whether or not it was delivered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Virtual time, in microseconds.
    pub at: u64,
    pub from: u32,
    pub to: SocketAddr,
    pub payload: Bytes,
}

impl Sent {
    /// The messages in it; every datagram a node emits decodes (unsealed worlds only).
    pub fn messages(&self) -> Vec<Message> {
        wire::decode_datagram(&self.payload).expect("every datagram a node emits decodes")
    }
}

/// An event a node emitted: virtual time in microseconds, the node, the event.
pub type Logged = (u64, u32, Event);

/// What a logging world keeps.
#[derive(Debug, Default)]
pub(crate) struct Log {
    sent: Vec<Sent>,
    events: Vec<Logged>,
}

impl Log {
    pub(crate) fn on_send(&mut self, config: &Config, at: u64, from: u32, t: &Transmit) {
        // The MTU budget holds for every datagram of every logged run, not only in the tests
        // about it.
        assert!(
            t.payload.len() <= config.packet_bytes_max,
            "n{from} sent {} bytes, over the {}-byte budget",
            t.payload.len(),
            config.packet_bytes_max
        );
        self.sent.push(Sent {
            at,
            from,
            to: t.to,
            payload: t.payload.clone(),
        });
    }

    pub(crate) fn on_event(&mut self, at: u64, node: u32, e: &Event) {
        self.events.push((at, node, e.clone()));
    }
}

impl World {
    /// A world for property tests: `nodes` nodes (not started), links with a fixed one-way
    /// `latency` and no loss, clocks that agree, and a log of what is sent and emitted.
    pub fn manual(nodes: usize, config: Config, seed: u64, latency: Duration) -> World {
        let model = LinkModel {
            latency_us: latency.as_micros() as u64,
            jitter_us: 0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
        };
        let mut world = World::new(WorldOptions {
            nodes,
            config,
            model,
            seed,
            clock_skew: Duration::ZERO,
            verbose: false,
        });
        world.keep_log();
        world
    }

    /// From now on keep every datagram sent and every event emitted.
    pub fn keep_log(&mut self) {
        self.log.get_or_insert_with(Log::default);
    }

    /// Every datagram sent since the log was started.
    pub fn sent(&self) -> &[Sent] {
        self.log.as_ref().map_or(&[], |l| &l.sent)
    }

    /// Datagrams sent at or after virtual time `since_us`.
    pub fn sent_since(&self, since_us: u64) -> impl Iterator<Item = &Sent> {
        self.sent().iter().filter(move |s| s.at >= since_us)
    }

    /// Every event emitted since the log was started.
    pub fn events(&self) -> &[Logged] {
        self.log.as_ref().map_or(&[], |l| &l.events)
    }

    /// Events emitted at or after virtual time `since_us`.
    pub fn events_since(&self, since_us: u64) -> impl Iterator<Item = &Logged> {
        self.events().iter().filter(move |(at, ..)| *at >= since_us)
    }

    /// When and by whom `subject` was suspected.
    pub fn suspected(&self, subject: u32) -> Vec<(u64, u32)> {
        let name = self.name(subject);
        self.events()
            .iter()
            .filter_map(|(at, i, e)| match e {
                Event::MemberSuspected { name: n, .. } if n == name => Some((*at, *i)),
                _ => None,
            })
            .collect()
    }

    /// When and by whom `subject` was declared failed.
    pub fn failed(&self, subject: u32) -> Vec<(u64, u32)> {
        let name = self.name(subject);
        self.events()
            .iter()
            .filter_map(|(at, i, e)| match e {
                Event::MemberFailed { name: n } if n == name => Some((*at, *i)),
                _ => None,
            })
            .collect()
    }

    /// Tags not-yet-started node `i` carries from its next start on.
    pub fn set_tags(&mut self, i: u32, tags: Vec<Tag>) {
        self.slots[i as usize].tags = tags;
    }

    /// Work on running node `i` directly, at its clock's now; what it produces is sent and
    /// its timer re-armed as after any input.
    pub fn with_node<R>(&mut self, i: u32, f: impl FnOnce(&mut Node, Instant) -> R) -> R {
        let now = self.local_now(i);
        let node = self.slots[i as usize]
            .node
            .as_mut()
            .expect("test bug: work on a node that is not running");
        let result = f(node, now);
        self.after_input(i);
        result
    }

    /// The virtual time (microseconds) at which node `i`'s clock reads `at`.
    pub fn virtual_time(&self, i: u32, at: Instant) -> u64 {
        at.as_micros()
            .saturating_sub(self.slots[i as usize].clock_offset)
    }

    /// Hand `to` a datagram holding `messages` as if from `from`, now, past the network (no
    /// partition or link override stops it): a forged or replayed datagram, or one that took
    /// a path the test does not model.
    pub fn deliver_now(&mut self, from: u32, to: u32, messages: &[Message]) {
        let mut datagram = DatagramBuilder::new(self.config.packet_bytes_max);
        for message in messages {
            assert!(
                datagram.try_push(&encode_message(message)),
                "test bug: the messages do not fit one datagram"
            );
        }
        let bytes = datagram.finish();
        let from = self.addr(from);
        self.inputs += 1;
        self.with_node(to, |node, now| node.handle_datagram(now, from, &bytes));
    }

    /// Lose every datagram on the wire now (the timers stay).
    pub fn drop_in_flight(&mut self) {
        self.queue
            .retain(|e| !matches!(e.0.what, crate::What::Deliver { .. }));
        self.in_flight_bytes = 0;
    }

    /// Run one instant at a time until `done` holds, for at most `bound` of virtual time;
    /// how long it took (None: the bound passed first).
    pub fn step_until(
        &mut self,
        bound: Duration,
        mut done: impl FnMut(&World) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let end = start + bound.as_micros() as u64;
        loop {
            if done(self) {
                return Some(Duration::from_micros(self.now - start));
            }
            match self.queue.peek().map(|e| e.0.at).filter(|at| *at <= end) {
                Some(at) => self.run_until(at),
                None => {
                    self.run_until(end);
                    return done(self).then_some(bound);
                }
            }
        }
    }

    /// What `observer` believes about `subject` (None: unknown to it, or not running).
    pub fn member_state(&self, observer: u32, subject: u32) -> Option<State> {
        self.node(observer)?
            .member(self.name(subject))
            .map(|m| m.state)
    }

    /// `subject`'s incarnation as `observer` holds it.
    pub fn member_incarnation(&self, observer: u32, subject: u32) -> Option<Incarnation> {
        self.node(observer)?
            .member(self.name(subject))
            .map(|m| m.incarnation)
    }

    /// Every node of `set` sees every other one alive.
    pub fn all_alive(&self, set: &[u32]) -> bool {
        set.iter().all(|&o| {
            set.iter()
                .all(|&s| o == s || self.member_state(o, s) == Some(State::Alive))
        })
    }

    /// Every running node but `subject` holds it in `state`.
    pub fn all_see(&self, subject: u32, state: State) -> bool {
        (0..self.len() as u32)
            .filter(|&o| o != subject && self.node(o).is_some())
            .all(|o| self.member_state(o, subject) == Some(state))
    }
}
