//! Lifeguard's local health multiplier (Lifeguard §4.1, "LHM").
//!
//! A node that misses acks and nacks it should have received is more likely slow itself than
//! surrounded by dead peers. Its score rises, and it waits `score + 1` times longer before it
//! suspects anyone; successful probes bring the score back down.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Awareness {
    score: u32,
    max: u32,
}

impl Awareness {
    pub fn new(max: u32) -> Self {
        Awareness { score: 0, max }
    }

    pub fn score(&self) -> u32 {
        self.score
    }

    /// Raise (positive) or lower (negative) the score, clamped to `0..=max`.
    pub fn apply(&mut self, delta: i32) {
        let raised = i64::from(self.score) + i64::from(delta);
        self.score = raised.clamp(0, i64::from(self.max)) as u32;
    }

    /// A timeout stretched by the current score.
    pub fn scale(&self, timeout: Duration) -> Duration {
        timeout * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_clamped_and_scales_timeouts() {
        let base = Duration::from_millis(100);
        let table: &[(&[i32], u32, u64)] = &[
            (&[], 0, 100),
            (&[1], 1, 200),
            (&[1, 1, 1], 3, 400),
            (&[-1], 0, 100),
            (&[5, 5], 8, 900),
            (&[8, -3], 5, 600),
        ];
        for (deltas, score, ms) in table {
            let mut a = Awareness::new(8);
            deltas.iter().for_each(|d| a.apply(*d));
            assert_eq!(a.score(), *score, "{deltas:?}");
            assert_eq!(a.scale(base), Duration::from_millis(*ms), "{deltas:?}");
        }
    }
}
