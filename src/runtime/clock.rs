//! The only place that reads a clock.
//!
//! The core wants microseconds since the Unix epoch (its hybrid logical clocks use them as wall
//! time) that never go backwards (its timers rely on that): the wall clock read once, at
//! start, advanced with the monotonic clock. Registry versions want the wall clock as it is
//! now, stepped or not: [`Clock::wall`] reads it again, and the driver hands it to the node
//! every turn (`Node::set_wall_clock`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: Instant,
    mono_at_start: tokio::time::Instant,
}

impl Clock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned clock read
    pub fn new() -> Clock {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Clock {
            wall_at_start: Instant::from_micros(since_epoch.as_micros() as u64),
            mono_at_start: tokio::time::Instant::now(),
        }
    }

    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> Instant {
        self.wall_at_start + self.mono_at_start.elapsed()
    }

    /// The wall clock, read now. Before the epoch (a broken clock) reads as `now`.
    #[allow(clippy::disallowed_methods)] // the one sanctioned clock read
    pub fn wall(&self, now: Instant) -> Instant {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since_epoch) => {
                Instant::from_micros(u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX))
            }
            Err(_) => now,
        }
    }

    /// How long until `at` (zero once it has passed).
    #[allow(clippy::disallowed_methods)] // the one sanctioned clock read
    pub fn until(&self, at: tokio::time::Instant) -> std::time::Duration {
        at.saturating_duration_since(tokio::time::Instant::now())
    }

    /// The tokio deadline for a core deadline.
    pub fn deadline(&self, at: Instant) -> tokio::time::Instant {
        self.mono_at_start + at.saturating_since(self.wall_at_start)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
