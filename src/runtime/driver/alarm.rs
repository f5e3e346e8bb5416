//! The driver's one wake-up: a timer armed for the node's next deadline.
//!
//! tokio keeps its timers in a hierarchical wheel whose levels are 1 ms, 64 ms, ~4 s, ... per
//! slot. A sleep more than 64 ms away sits in an upper level: the runtime wakes once at the
//! start of its slot only to move it down a level, and again at its deadline. Nearly every
//! deadline an idle node has (the next probe, the probe's timeout, the registry tick) is that
//! far away, so the wheel doubled an idle node's timer wake-ups; and arming a sleep earlier
//! than the wheel's next wake writes the runtime's eventfd, costing another turn of its loop
//! (measured: docs/scale.md, "An idle node's wake-ups"). A Linux timerfd, registered with the
//! runtime's reactor like a socket, wakes the process once, at its deadline, to the
//! microsecond; re-arming it is one syscall. Elsewhere, or if the timerfd cannot be made, the
//! alarm is tokio's sleep.

use std::time::Duration;

use crate::runtime::clock::Clock;

/// Deadlines this close to each other are met in one wake-up: the node's timers that fall
/// within it of the earliest are handled together, the earliest up to this much late. Below
/// the scheduler's own jitter on a loaded host (a few ms), three orders of magnitude under the
/// probe timeout, so no protocol timing moves; it saves a wake-up whenever two timers (a probe
/// and the registry tick, a retransmission and a deadline) land a few ms apart.
pub(super) const COALESCE_WINDOW: Duration = Duration::from_millis(3);

/// When to wake for `deadlines` (in any order): at the latest of those within
/// [`COALESCE_WINDOW`] of the earliest, so that one wake-up finds all of them due. Never more
/// than the window after the earliest: the window is counted from the earliest, not chained
/// from one timer to the next.
pub(super) fn wake_at<T, I>(deadlines: I, window: Duration) -> Option<T>
where
    T: Copy + Ord + std::ops::Add<Duration, Output = T>,
    I: IntoIterator<Item = T>,
    I::IntoIter: Clone,
{
    let deadlines = deadlines.into_iter();
    let last = deadlines.clone().min()? + window;
    deadlines.filter(|&d| d <= last).max()
}

pub(super) struct Alarm {
    #[cfg(target_os = "linux")]
    timer: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    /// The deadline the timerfd is set for, if it is set.
    armed: Option<tokio::time::Instant>,
}

impl Alarm {
    /// Must be called inside the runtime (the timerfd registers with its reactor).
    pub(super) fn new() -> Alarm {
        Alarm {
            #[cfg(target_os = "linux")]
            timer: timerfd(),
            armed: None,
        }
    }

    /// Resolve at `at`, or never for `None`. Cancel-safe: dropped before `at` (another input
    /// came first), the timer stays set, and waiting again for the same deadline arms nothing.
    pub(super) async fn wait(&mut self, at: Option<tokio::time::Instant>, clock: &Clock) {
        let Some(at) = at else {
            return std::future::pending().await;
        };
        #[cfg(target_os = "linux")]
        if let Some(timer) = &self.timer {
            use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
            if self.armed != Some(at) {
                let left = clock.until(at);
                // Past deadlines are due now; a zero value would disarm the timer instead.
                let left = left.max(Duration::from_micros(1));
                let spec = Itimerspec {
                    it_interval: Timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    it_value: Timespec {
                        tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                        tv_nsec: i64::from(left.subsec_nanos()),
                    },
                };
                // Setting the timer also forgets an expiry not read yet (the kernel resets
                // its count), so a stale one cannot end this wait early.
                if timerfd_settime(timer, TimerfdTimerFlags::empty(), &spec).is_err() {
                    self.armed = None;
                    return tokio::time::sleep_until(at).await;
                }
                self.armed = Some(at);
            }
            loop {
                let Ok(mut ready) = timer.readable().await else {
                    break;
                };
                let mut expirations = [0u8; 8];
                match ready.try_io(|fd| {
                    rustix::io::read(fd.get_ref(), &mut expirations).map_err(std::io::Error::from)
                }) {
                    Ok(Ok(_)) => {
                        // Read, so no longer readable: say so, or the next wait would try a
                        // read that can only fail before it sleeps.
                        ready.clear_ready();
                        self.armed = None;
                        return;
                    }
                    Ok(Err(_)) => break,
                    // Not expired yet (readiness was stale): wait again.
                    Err(_would_block) => continue,
                }
            }
            // The reactor or the timerfd failed: tokio's sleep still works.
            self.armed = None;
        }
        let _ = clock;
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(target_os = "linux")]
fn timerfd() -> Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
    let fd = timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )
    .ok()?;
    // SAFETY: the AsyncFd owns the descriptor (an `OwnedFd`, moved in) and nothing else holds
    // it, so it stays open, and is not replaced, for as long as it is registered; it is closed
    // only when the AsyncFd is dropped, after deregistering.
    #[allow(unsafe_code)]
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    registered.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn timers_within_the_window_of_the_earliest_share_one_wake_up() {
        let window = ms(3);
        // The probe at 1,000 ms and the registry tick 2 ms later: one wake-up, at the tick.
        assert_eq!(
            wake_at([ms(1_002), ms(1_000), ms(1_500)], window),
            Some(ms(1_002))
        );
        // Exactly at the window's end still counts.
        assert_eq!(wake_at([ms(10), ms(13)], window), Some(ms(13)));
        // Just past it does not: the earliest is not held back for it.
        assert_eq!(wake_at([ms(10), ms(14)], window), Some(ms(10)));
        // Counted from the earliest, not chained: 10, 12, 14, 16 wake at 12, never at 16.
        assert_eq!(
            wake_at([ms(16), ms(14), ms(12), ms(10)], window),
            Some(ms(12))
        );
        // One deadline, or several at the same instant, wake at it.
        assert_eq!(wake_at([ms(7)], window), Some(ms(7)));
        assert_eq!(wake_at([ms(7), ms(7)], window), Some(ms(7)));
        assert_eq!(wake_at(Vec::<Duration>::new(), window), None);
    }

    /// The alarm wakes at its deadline (not before), and again for a new one after a wait was
    /// abandoned for another input.
    #[tokio::test(flavor = "current_thread")]
    async fn the_alarm_wakes_at_its_deadline_and_survives_a_dropped_wait() {
        let clock = Clock::new();
        let mut alarm = Alarm::new();
        let start = clock.deadline(clock.now());
        let at = start + ms(30);
        // Abandoned before the deadline: the timer stays set for it.
        let abandoned = tokio::time::timeout(ms(5), alarm.wait(Some(at + ms(1_000)), &clock)).await;
        assert!(abandoned.is_err(), "woke 1 s early");
        alarm.wait(Some(at), &clock).await;
        let woke = clock.deadline(clock.now());
        assert!(woke >= at, "woke {:?} before its deadline", at - woke);
        // A deadline already past resolves at once.
        alarm.wait(Some(start), &clock).await;
    }
}
