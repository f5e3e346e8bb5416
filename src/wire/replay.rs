//! Replay protection for sealed datagrams: a sliding window per sender, as IPsec and WireGuard
//! keep one per peer, plus a time window for senders no window remembers.
//!
//! Every sealed datagram carries, authenticated, its sender's per-boot id, a counter that
//! sender never repeats under that id, and the second it was sent. A receiver refuses:
//!
//! - a datagram sent more than [`TIME_WINDOW_S`] before or after its own clock: no window is
//!   needed to catch a replay older than that, so a replay from a boot we forgot (or never
//!   knew) is refused too;
//! - a counter its sender's window already holds, or one further behind the newest than
//!   [`WINDOW_DATAGRAMS`] (UDP reorders a little, never by that much);
//! - its own sender id: one of its own datagrams reflected back.
//!
//! A new sender id (a restarted node) is accepted at once. The check runs only after the AEAD
//! tag verified, so only a key holder can create windows; even so they are bounded: a new id
//! enters a small set of strangers ([`STRANGERS_MAX`]) and moves to the senders' table
//! ([`SENDERS_MAX`], about 80 bytes each) once it has been heard from in two different
//! seconds, as every live member is. A full table first drops the windows whose every datagram
//! is already outside the time window (they can no longer be needed), then the least recently
//! heard: a burst of fresh ids from a rogue key holder churns the strangers, not the members.
//! Memory: at most (4,096 + 64) windows, allocated as senders appear.

use std::collections::BTreeMap;

use super::error::Replay;

/// How far a datagram's send time may be from the receiver's clock, either way, in seconds.
/// Covers the clock offset between members (the registry refuses versions more than a few
/// seconds ahead) and delivery delays, with a wide margin.
pub const TIME_WINDOW_S: u64 = 60;
/// How many counters behind its newest a sender's window remembers.
pub const WINDOW_DATAGRAMS: u32 = 128;
/// Windows kept for senders heard from in at least two different seconds.
pub const SENDERS_MAX: usize = 4_096;
/// Windows kept for senders heard from within one second only.
pub const STRANGERS_MAX: usize = 64;

/// One sender's accepted counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// The newest counter accepted.
    top: u32,
    /// Bit `i` set: counter `top - i` was accepted.
    seen: u128,
    /// When we first and last heard from this sender, on our clock.
    first_s: u64,
    last_s: u64,
    /// The latest send time of any datagram accepted: once it is outside the time window,
    /// every datagram of this sender is refused by age and the window can go.
    newest_sent_s: u64,
}

impl Window {
    fn new(counter: u32, sent_s: u64, now_s: u64) -> Window {
        Window {
            top: counter,
            seen: 1,
            first_s: now_s,
            last_s: now_s,
            newest_sent_s: sent_s,
        }
    }

    fn accept(&mut self, counter: u32, sent_s: u64, now_s: u64) -> Result<(), Replay> {
        if counter > self.top {
            let ahead = counter - self.top;
            self.seen = if ahead >= WINDOW_DATAGRAMS {
                0
            } else {
                self.seen << ahead
            };
            self.seen |= 1;
            self.top = counter;
        } else {
            let behind = self.top - counter;
            if behind >= WINDOW_DATAGRAMS {
                return Err(Replay::BehindWindow);
            }
            let bit = 1u128 << behind;
            if self.seen & bit != 0 {
                return Err(Replay::Duplicate);
            }
            self.seen |= bit;
        }
        self.last_s = self.last_s.max(now_s);
        self.newest_sent_s = self.newest_sent_s.max(sent_s);
        Ok(())
    }

    fn expired(&self, now_s: u64) -> bool {
        self.newest_sent_s.saturating_add(TIME_WINDOW_S) < now_s
    }
}

/// The windows of one receiver. Sans-IO: the caller passes its clock.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    /// This node's own sender id: never accepted from outside.
    own: Option<u64>,
    senders: BTreeMap<u64, Window>,
    strangers: BTreeMap<u64, Window>,
}

impl ReplayGuard {
    pub fn new(own: u64) -> ReplayGuard {
        ReplayGuard {
            own: Some(own),
            ..ReplayGuard::default()
        }
    }

    /// Our own sender id changed (the counter wrapped).
    pub fn set_own(&mut self, own: u64) {
        self.own = Some(own);
    }

    /// Accept `counter` from `sender`, sent at `sent_s`, or say why it is a replay. Call only
    /// for authenticated datagrams.
    pub fn check(
        &mut self,
        sender: u64,
        counter: u32,
        sent_s: u64,
        now_s: u64,
    ) -> Result<(), Replay> {
        if self.own == Some(sender) {
            return Err(Replay::OwnSender);
        }
        if sent_s.saturating_add(TIME_WINDOW_S) < now_s {
            return Err(Replay::TooOld {
                age_s: now_s - sent_s,
            });
        }
        if sent_s > now_s.saturating_add(TIME_WINDOW_S) {
            return Err(Replay::FromTheFuture {
                ahead_s: sent_s - now_s,
            });
        }
        if let Some(window) = self.senders.get_mut(&sender) {
            return window.accept(counter, sent_s, now_s);
        }
        if let Some(window) = self.strangers.get_mut(&sender) {
            window.accept(counter, sent_s, now_s)?;
            if window.first_s < now_s {
                // Heard from in two different seconds: a member, most likely.
                let window = *window;
                self.strangers.remove(&sender);
                make_room(&mut self.senders, SENDERS_MAX, now_s);
                self.senders.insert(sender, window);
            }
            return Ok(());
        }
        make_room(&mut self.strangers, STRANGERS_MAX, now_s);
        self.strangers
            .insert(sender, Window::new(counter, sent_s, now_s));
        Ok(())
    }

    /// Windows held: (senders, strangers).
    pub fn len(&self) -> (usize, usize) {
        (self.senders.len(), self.strangers.len())
    }
}

/// Leave room for one more window: drop the expired ones, then the least recently heard.
fn make_room(windows: &mut BTreeMap<u64, Window>, max: usize, now_s: u64) {
    if windows.len() < max {
        return;
    }
    windows.retain(|_, w| !w.expired(now_s));
    while windows.len() >= max {
        let Some(oldest) = windows
            .iter()
            .min_by_key(|(id, w)| (w.last_s, **id))
            .map(|(id, _)| *id)
        else {
            return;
        };
        windows.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000;

    #[test]
    fn a_counter_is_accepted_once_and_reordering_within_the_window_is_fine() {
        let mut guard = ReplayGuard::new(1);
        assert_eq!(guard.check(7, 100, T, T), Ok(()));
        assert_eq!(guard.check(7, 100, T, T), Err(Replay::Duplicate));
        assert_eq!(guard.check(7, 103, T, T), Ok(()));
        assert_eq!(guard.check(7, 101, T, T), Ok(()), "late but new");
        assert_eq!(guard.check(7, 101, T, T), Err(Replay::Duplicate));
        assert_eq!(guard.check(7, 103, T, T), Err(Replay::Duplicate));
        assert_eq!(guard.check(7, 103 + WINDOW_DATAGRAMS, T, T), Ok(()));
        assert_eq!(guard.check(7, 103, T, T), Err(Replay::BehindWindow));
        assert_eq!(guard.check(7, 104, T, T), Ok(()), "just inside");
        // A jump far ahead forgets everything behind it.
        assert_eq!(guard.check(7, u32::MAX, T, T), Ok(()));
        assert_eq!(guard.check(7, u32::MAX, T, T), Err(Replay::Duplicate));
    }

    #[test]
    fn time_window_own_id_and_new_boots() {
        let mut guard = ReplayGuard::new(1);
        assert_eq!(guard.check(1, 0, T, T), Err(Replay::OwnSender));
        assert_eq!(
            guard.check(2, 0, T - TIME_WINDOW_S - 1, T),
            Err(Replay::TooOld {
                age_s: TIME_WINDOW_S + 1
            })
        );
        assert_eq!(
            guard.check(2, 0, T + TIME_WINDOW_S + 5, T),
            Err(Replay::FromTheFuture {
                ahead_s: TIME_WINDOW_S + 5
            })
        );
        assert_eq!(
            guard.check(2, 0, T - TIME_WINDOW_S, T),
            Ok(()),
            "at the edge"
        );
        // A restarted sender has a new id and starts anywhere: accepted at once.
        assert_eq!(guard.check(3, 0, T, T), Ok(()));
        // Its old boot's datagrams are still refused: by window while remembered...
        assert_eq!(guard.check(2, 0, T, T + 1), Err(Replay::Duplicate));
        // ...and by age once no window could hold them.
        assert!(matches!(
            guard.check(2, 5, T - TIME_WINDOW_S, T + 1),
            Err(Replay::TooOld { .. })
        ));
    }

    #[test]
    fn strangers_are_promoted_in_their_second_second_and_bursts_do_not_evict_members() {
        let mut guard = ReplayGuard::new(0);
        for member in 1..=10u64 {
            guard.check(member, 0, T, T).unwrap();
            guard.check(member, 1, T + 1, T + 1).unwrap();
        }
        assert_eq!(guard.len(), (10, 0));
        // A key holder's burst of fresh ids, all within one second.
        for id in 1_000..1_000 + 10 * STRANGERS_MAX as u64 {
            guard.check(id, 0, T + 2, T + 2).unwrap();
        }
        assert_eq!(guard.len(), (10, STRANGERS_MAX));
        for member in 1..=10u64 {
            assert_eq!(guard.check(member, 1, T + 1, T + 2), Err(Replay::Duplicate));
        }
    }

    #[test]
    fn the_tables_are_bounded_and_drop_expired_windows_first() {
        let mut guard = ReplayGuard::new(0);
        let mut now = T;
        for id in 1..=(SENDERS_MAX as u64 + 10) {
            guard.check(id, 0, now, now).unwrap();
            now += 1;
            guard.check(id, 1, now, now).unwrap();
        }
        let (senders, strangers) = guard.len();
        assert!(senders <= SENDERS_MAX, "{senders}");
        assert!(strangers <= STRANGERS_MAX);
        // The newest are still held: replaying them is refused by window, not accepted.
        let last = SENDERS_MAX as u64 + 10;
        assert_eq!(guard.check(last, 1, now, now), Err(Replay::Duplicate));
    }
}
