//! The only place that reads a clock.
//!
//! The core wants microseconds since the Unix epoch (its hybrid logical clocks use them as wall
//! time) that never go backwards (its timers rely on that). We read the wall clock once, at
//! start, and advance it with the monotonic clock from then on.

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
