// Reads values from outside the process: arithmetic is checked (issue 12), or allowed where it
// stands with its reason.
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
//! The bounds on durations a request carries, in one place so that the docs' table of bounds
//! (README, `docs/http-api.md`) has one source. A value outside its bounds is refused with 400,
//! the field, the value and the range; it is never rounded into range.

use std::time::Duration;

use crate::duration::Bounds;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3_600);

/// A TTL check's time to live. Under a second, a client would spend its life renewing it.
pub const TTL: Bounds = Bounds::new(SECOND, DAY);
/// How often an HTTP check runs: Consul's minimum of a second, at most a day.
pub const CHECK_INTERVAL: Bounds = Bounds::new(SECOND, DAY);
/// How long one HTTP check may take; never longer than its interval either, so that the
/// checks of one instance never overlap.
pub const CHECK_TIMEOUT: Bounds = Bounds::new(Duration::from_millis(1), Duration::from_secs(300));
/// Consul's default timeout, shortened to the interval when that is shorter.
pub const CHECK_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// How long an instance may stay critical before it is deregistered: Consul's minimum of a
/// minute (its reaper's period), at most 30 days.
pub const DEREGISTER_AFTER: Bounds = Bounds::new(MINUTE, Duration::from_secs(30 * 24 * 3_600));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_is_a_range() {
        for b in [TTL, CHECK_INTERVAL, CHECK_TIMEOUT, DEREGISTER_AFTER] {
            assert!(!b.min.is_zero() && b.min <= b.max, "{b:?}");
        }
        assert!(CHECK_TIMEOUT.contains(CHECK_TIMEOUT_DEFAULT));
        // What the API accepts, every peer's decoder accepts (`Check::validate`).
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap();
        assert!(ms(TTL.max) <= crate::registry::CHECK_PERIOD_MS_MAX);
        assert!(ms(CHECK_INTERVAL.max) <= crate::registry::CHECK_PERIOD_MS_MAX);
        assert!(ms(CHECK_TIMEOUT.max) <= crate::registry::CHECK_TIMEOUT_MS_MAX);
    }
}
