//! The I/O context both halves of a node write through: the timer table, the outbox, the
//! event queue, the gossip queue, the seeded generator, the counters, the envelope (plain or
//! sealed) and the state version. `Node` lends it to `Membership` code and to the
//! [`Catalog`](super::catalog::Catalog) as `&mut`, so neither half owns what the other emits.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use super::{Event, Transmit};
use crate::config::Config;
use crate::stats::Stats;
use crate::swim::gossip::Broadcasts;
use crate::time::Instant;
use crate::timers::{Timer, Timers};
use crate::wire::{encode_message, DatagramBuilder, Message, Sealer};

/// Events not yet drained; the oldest are dropped past this.
const EVENTS_MAX: usize = 16_384;

/// Eager rounds each piece of news gets before it waits for gossip ticks. One round reaches
/// `fanout` random members, so with one round per node about e^-fanout of the nodes (5% at
/// fanout 3) hear of a write from no one and wait a tick (200 ms on lan) or a probe's
/// piggyback: that was the tail of a write's reach (issue 17: 15 ms for most nodes, 40-160 ms
/// for the last). Three rounds make a node's chance of being missed about e^-9. They cost no
/// extra transmissions (each round counts as one of the update's `retransmit_limit`), only
/// earlier ones, and at most one round per `eager_push_spacing`, as before.
pub(crate) const EAGER_ROUNDS: u8 = 3;

#[derive(Debug)]
pub(crate) struct Io {
    /// The protocol's timings and limits; `Command::Configure` changes them at run time.
    pub(crate) config: Config,
    pub(crate) timers: Timers,
    pub(crate) outbox: VecDeque<Transmit>,
    /// Bytes waiting in `outbox` (bulk answers wait while it is over a cap, `replies`).
    pub(crate) outbox_bytes: usize,
    /// Bytes of paced transmits the shell has taken but not sent yet
    /// ([`crate::Node::set_paced_backlog`]): they count against the same cap, so a node
    /// whose bulk sends are still draining answers no more bulk.
    pub(crate) paced_backlog_bytes: usize,
    /// Who may be answered, and how much (`replies`).
    pub(crate) replies: super::replies::Replies,
    pub(crate) events: VecDeque<Event>,
    pub(crate) broadcasts: Broadcasts,
    /// An eager push is scheduled (see [`Io::want_push`]).
    pub(crate) push_scheduled: bool,
    pub(crate) last_push: Option<Instant>,
    /// Eager rounds still owed to the latest news ([`EAGER_ROUNDS`]).
    pub(crate) eager_rounds_left: u8,
    /// A gossip tick is scheduled. Ticks stop while nothing is queued (an idle node has no
    /// reason to wake five times a second) and resume with the next eager round.
    pub(crate) gossip_ticking: bool,
    /// When the registry tick is armed for; None while the catalog has nothing a tick could
    /// do (`Catalog::next_tick_at`). Brought forward by the input that gives it something
    /// earlier (`Node::keep_registry_ticking`).
    pub(crate) registry_tick_at: Option<Instant>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) stats: Stats,
    /// The cluster key and nonce sequence; None sends and accepts plain datagrams.
    pub(crate) sealer: Option<Sealer>,
    /// The cluster label every datagram carries (`keyring.rs`); None: unlabelled.
    pub(crate) label: Option<crate::wire::ClusterLabel>,
    /// The wall clock's lead over `now`, in microseconds (negative: behind), as the shell last
    /// told it ([`super::Node::set_wall_clock`]). `now` is monotonic for timers; registry
    /// versions and the clock-offset check want the wall clock, which NTP may step. Zero (the
    /// simulator, the tests) makes the wall clock `now`.
    wall_lead_us: i64,
    /// Bumped on every change visible through the views, so shells republish only on change:
    /// only through [`Io::changed`] (and [`Io::emit`], which calls it for events that
    /// change state).
    version: u64,
}

impl Io {
    pub(crate) fn new(config: Config, rng: ChaCha8Rng) -> Io {
        Io {
            config,
            timers: Timers::default(),
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            paced_backlog_bytes: 0,
            replies: super::replies::Replies::default(),
            events: VecDeque::new(),
            broadcasts: Broadcasts::default(),
            push_scheduled: false,
            last_push: None,
            eager_rounds_left: 0,
            gossip_ticking: false,
            registry_tick_at: None,
            rng,
            stats: Stats::default(),
            sealer: None,
            label: None,
            wall_lead_us: 0,
            version: 0,
        }
    }

    /// Record the wall clock read at `now` (monotonic): [`Io::wall`] follows it from then on.
    pub(crate) fn set_wall_clock(&mut self, now: Instant, wall: Instant) {
        let lead = i128::from(wall.as_micros()) - i128::from(now.as_micros());
        self.wall_lead_us =
            i64::try_from(lead).unwrap_or(if lead < 0 { i64::MIN } else { i64::MAX });
    }

    /// The wall clock at `now`: what registry versions are stamped with and compared to.
    pub(crate) fn wall(&self, now: Instant) -> Instant {
        let micros = i128::from(now.as_micros()) + i128::from(self.wall_lead_us);
        Instant::from_micros(u64::try_from(micros.max(0)).unwrap_or(u64::MAX))
    }

    /// An event only for the shell's log: it changes nothing readers see, so the state version
    /// stays (a refused datagram must not make the shell republish).
    pub(crate) fn emit_quiet(&mut self, event: Event) {
        if self.events.len() == EVENTS_MAX {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// The state version: changes with every visible change of state.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Something readers see through the views changed: the one place the version moves.
    pub(crate) fn changed(&mut self) {
        self.version += 1;
    }

    pub(crate) fn emit(&mut self, event: Event) {
        if self.events.len() == EVENTS_MAX {
            self.events.pop_front();
        }
        if event.changes_state() {
            self.changed();
        }
        self.events.push_back(event);
    }

    /// A random delay in `0..span`, to keep nodes started together from probing in lockstep.
    pub(crate) fn jitter(&mut self, span: Duration) -> Duration {
        let micros = span.as_micros().min(u128::from(u32::MAX)) as usize;
        Duration::from_micros(crate::swim::probe::uniform(&mut self.rng, micros) as u64)
    }

    /// Send `messages` to `to` in one datagram, without piggybacked gossip.
    pub(crate) fn send(&mut self, to: SocketAddr, messages: &[Message]) {
        let datagram = self.pack(messages);
        if !datagram.is_empty() {
            self.transmit(to, datagram);
        }
    }

    /// A new datagram holding as many of `messages` as fit, each counted as sent.
    pub(crate) fn pack(&mut self, messages: &[Message]) -> DatagramBuilder {
        let mut datagram = self.new_datagram();
        for message in messages {
            let encoded = encode_message(message);
            if datagram.try_push(&encoded) {
                self.stats.messages_out(message.kind(), 1);
            }
        }
        datagram
    }

    pub(crate) fn transmit(&mut self, to: SocketAddr, datagram: DatagramBuilder) {
        self.transmit_as(to, datagram, false);
    }

    /// One datagram of a bulk transfer, which the shell may pace ([`Transmit::paced`]).
    pub(crate) fn transmit_paced(&mut self, to: SocketAddr, datagram: DatagramBuilder) {
        self.transmit_as(to, datagram, true);
    }

    fn transmit_as(&mut self, to: SocketAddr, datagram: DatagramBuilder, paced: bool) {
        let transmit = self.finished(to, datagram, paced);
        self.outbox_bytes += transmit.payload.len();
        self.outbox.push_back(transmit);
    }

    /// One datagram of a bulk transfer, finished and counted, handed to the caller rather
    /// than queued (a push made on demand, `catalog::push`).
    pub(crate) fn paced_transmit(&mut self, to: SocketAddr, datagram: DatagramBuilder) -> Transmit {
        self.finished(to, datagram, true)
    }

    fn finished(&mut self, to: SocketAddr, datagram: DatagramBuilder, paced: bool) -> Transmit {
        let payload = self.finish_datagram(datagram);
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += payload.len() as u64;
        Transmit {
            to,
            payload: payload.into(),
            paced,
        }
    }

    /// May the sender of the datagram being handled get a bulk answer of `kind`?
    pub(crate) fn may_answer(&mut self, now: Instant, kind: crate::wire::MessageKind) -> bool {
        let interval = self.config.probe_interval;
        let waiting = self.outbox_bytes.saturating_add(self.paced_backlog_bytes);
        self.replies
            .bulk(now, kind, interval, waiting, &mut self.stats)
    }

    /// Something new was queued: push it soon, and [`EAGER_ROUNDS`] times in all, at most
    /// once per `eager_push_spacing`.
    pub(crate) fn want_push(&mut self) {
        self.eager_rounds_left = EAGER_ROUNDS;
        self.schedule_push();
    }

    /// Schedule the next eager round, `eager_push_spacing` after the last one.
    pub(crate) fn schedule_push(&mut self) {
        if self.push_scheduled {
            return;
        }
        self.push_scheduled = true;
        let at = match self.last_push {
            Some(last) => last + self.config.eager_push_spacing,
            None => Instant::ZERO,
        };
        self.timers.schedule(at, Timer::EagerPush);
    }
}
