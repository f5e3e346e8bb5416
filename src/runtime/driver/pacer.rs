//! Pacing of bulk sends: the registry entries anti-entropy pushes ([`Transmit::paced`]).
//!
//! A late joiner or a peer whose every bucket differs after a bulk load is owed thousands of
//! datagrams at once (100,000 instances: ~10,000). Sent in one burst they overflow the
//! receiver's socket buffer: most are lost (and sent again at the next exchange), and the
//! probes and acks among them are lost too, so members are suspected and declared failed
//! while the transfer runs. Measured on a loaded machine (issue 17): 150,000 receive-buffer
//! drops and dozens of false failures while 5 nodes took 100,000 registrations.
//!
//! So paced transmits wait here and leave at a bounded rate (a token bucket), while
//! everything else is sent at once. The node is told the backlog
//! ([`crate::Node::set_paced_backlog`]) and answers no more bulk while it is over its cap.
//! A registry push is not handed over whole: the node makes its datagrams as this queue has
//! room for them ([`Room`], at most [`PUSH_QUEUED_MAX`] waiting), where the whole push used to
//! wait here (~12 MB at 100,000 entries, kept by glibc after it was sent).

use std::collections::VecDeque;
use std::time::Duration;

use crate::node::{Event, Outputs, Sink, Transmit};
use crate::time::Instant;

/// Paced datagrams per second: ~2.8 MB/s of full datagrams, a 100,000-instance registry in
/// about 5 s, and at most a few milliseconds of a receiver's socket buffer per second.
pub const PACED_PER_SEC: u32 = 2_000;
/// Datagrams that may leave back to back after a pause: one read batch of the receiver.
pub const BURST: u32 = 32;
/// The backlog past which new paced datagrams are dropped. The node stops answering bulk
/// requests well before (at 4 MiB with its own outbox), so only one very large answer reaches
/// this; what is dropped is sent again by a later exchange.
pub const BACKLOG_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Paced datagrams the pacer holds before it takes more of a push the node owes
/// ([`crate::Node::poll_push`]): twice a burst, so a burst never empties it while a push goes
/// on (the driver wakes for the pacer only while something waits in it), ~90 KB of full
/// datagrams where a whole-registry push waited here whole (~12 MB at 100,000 entries).
pub const PUSH_QUEUED_MAX: usize = 2 * BURST as usize;

/// The driver's [`Sink`] for one drain: the node's outputs, and the room left in the pacer for
/// datagrams of owed pushes ([`PUSH_QUEUED_MAX`] less what waits already).
pub struct Room<'a> {
    out: &'a mut Outputs,
    room: usize,
}

impl<'a> Room<'a> {
    pub fn new(out: &'a mut Outputs, pacer: &Pacer) -> Room<'a> {
        let queued = pacer.queue.len() + out.transmits.iter().filter(|t| t.paced).count();
        Room {
            out,
            room: PUSH_QUEUED_MAX.saturating_sub(queued),
        }
    }
}

impl Sink for Room<'_> {
    fn transmit(&mut self, transmit: Transmit) {
        self.out.transmit(transmit);
    }

    fn event(&mut self, event: Event) {
        self.out.event(event);
    }

    fn takes_push(&mut self) -> bool {
        let takes = self.room > 0;
        self.room = self.room.saturating_sub(1);
        takes
    }
}

/// The queue and its token bucket.
#[derive(Debug)]
pub struct Pacer {
    queue: VecDeque<Transmit>,
    bytes: usize,
    /// Whole datagrams that may leave now, at most [`BURST`].
    tokens: u32,
    /// When `tokens` was last topped up.
    refilled: Instant,
    dropped: u64,
}

impl Pacer {
    pub fn new(now: Instant) -> Pacer {
        Pacer {
            queue: VecDeque::new(),
            bytes: 0,
            tokens: BURST,
            refilled: now,
            dropped: 0,
        }
    }

    /// Queue a paced datagram; false (and counted) if the backlog is full.
    pub fn push(&mut self, transmit: Transmit) -> bool {
        let size = transmit.payload.len();
        if self.bytes.saturating_add(size) > BACKLOG_BYTES_MAX {
            self.dropped += 1;
            return false;
        }
        self.bytes += size;
        self.queue.push_back(transmit);
        true
    }

    /// Bytes waiting.
    pub fn backlog_bytes(&self) -> usize {
        self.bytes
    }

    /// Datagrams dropped because the backlog was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The next datagram allowed to leave at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Transmit> {
        if self.queue.is_empty() {
            return None;
        }
        self.refill(now);
        if self.tokens == 0 {
            return None;
        }
        let transmit = self.queue.pop_front()?;
        self.tokens -= 1;
        self.bytes = self.bytes.saturating_sub(transmit.payload.len());
        Some(transmit)
    }

    /// When the next datagram may leave, if any waits.
    pub fn next_at(&self) -> Option<Instant> {
        if self.queue.is_empty() {
            return None;
        }
        if self.tokens > 0 {
            return Some(self.refilled);
        }
        Some(self.refilled + token_interval())
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_since(self.refilled);
        let earned = elapsed.as_micros() / token_interval().as_micros();
        if earned == 0 {
            return;
        }
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(earned).min(BURST);
        // Keep the fraction of a token already earned, unless the bucket is full.
        self.refilled = if self.tokens == BURST {
            now
        } else {
            self.refilled + token_interval().saturating_mul(earned)
        };
    }
}

/// The time one token takes to earn.
fn token_interval() -> Duration {
    Duration::from_secs(1) / PACED_PER_SEC
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn datagram(bytes: usize) -> Transmit {
        Transmit {
            to: "127.0.0.1:7946".parse().unwrap(),
            payload: Bytes::from(vec![0u8; bytes]),
            paced: true,
        }
    }

    /// Everything the pacer lets out at `now`.
    fn due(p: &mut Pacer, now: Instant) -> usize {
        std::iter::from_fn(|| p.pop_due(now)).count()
    }

    #[test]
    fn a_burst_leaves_at_the_paced_rate_whatever_its_size() {
        let start = Instant::ZERO + Duration::from_secs(1);
        let mut p = Pacer::new(start);
        for _ in 0..10_000 {
            assert!(p.push(datagram(1_400)));
        }
        assert_eq!(p.backlog_bytes(), 14_000_000);
        // At once: one burst, no more.
        assert_eq!(due(&mut p, start), BURST as usize);
        // Then the rate: one second lets out PACED_PER_SEC, stepping a millisecond at a time
        // (as a driver woken by `next_at` would) or all at once after a pause (capped at a
        // burst: a pause is not saved up).
        let mut sent = 0;
        let mut now = start;
        for _ in 0..1_000 {
            now = now + Duration::from_millis(1);
            sent += due(&mut p, now);
        }
        assert_eq!(sent, PACED_PER_SEC as usize);
        now = now + Duration::from_secs(3);
        assert_eq!(due(&mut p, now), BURST as usize);
        let left = 10_000 - BURST as usize * 2 - PACED_PER_SEC as usize;
        assert_eq!(p.backlog_bytes(), left * 1_400);
    }

    #[test]
    fn next_at_says_when_a_token_comes() {
        let start = Instant::ZERO + Duration::from_secs(1);
        let mut p = Pacer::new(start);
        assert_eq!(p.next_at(), None, "nothing waits");
        for _ in 0..=BURST {
            p.push(datagram(100));
        }
        assert_eq!(p.next_at(), Some(start));
        assert_eq!(due(&mut p, start), BURST as usize);
        let next = p.next_at().unwrap();
        assert!(
            next > start && next <= start + Duration::from_millis(1),
            "{next:?}"
        );
        assert_eq!(due(&mut p, next), 1);
        assert_eq!(p.next_at(), None);
    }

    /// A drain takes a push's datagrams only up to the room the queue has left.
    #[test]
    fn room_for_a_push_is_what_the_queue_has_left() {
        let mut p = Pacer::new(Instant::ZERO);
        for _ in 0..10 {
            p.push(datagram(100));
        }
        let mut out = Outputs::default();
        out.transmit(datagram(100));
        let mut room = Room::new(&mut out, &p);
        let taken = std::iter::from_fn(|| room.takes_push().then_some(())).count();
        assert_eq!(taken, PUSH_QUEUED_MAX - 11);
        assert!(!room.takes_push(), "stays full");
    }

    #[test]
    fn the_backlog_is_bounded() {
        let mut p = Pacer::new(Instant::ZERO);
        let size = 1_400;
        let fits = BACKLOG_BYTES_MAX / size;
        for _ in 0..fits {
            assert!(p.push(datagram(size)));
        }
        assert!(!p.push(datagram(size)));
        assert_eq!(p.dropped(), 1);
        assert!(p.backlog_bytes() <= BACKLOG_BYTES_MAX);
    }
}
