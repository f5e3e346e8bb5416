//! Request latency per verb over a sliding window, for `GET /v1/status` and `hera status`.
//!
//! Prometheus histograms answer "how slow over the last N minutes" only with a Prometheus
//! server doing the arithmetic. An operator without one still wants p50/p90/p99 per verb from
//! the node itself, so the HTTP middleware also keeps the recent samples here.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::time::Instant;

/// How far back the percentiles look: long enough to smooth a burst, short enough that a
/// regression shows within minutes.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Samples kept per verb. Under heavy load the window shrinks to the most recent this many
/// requests; memory stays at about 16 B × this × verbs (verbs are the router's routes).
pub const SAMPLES_PER_VERB_MAX: usize = 4_096;

/// A verb: the method and the route template (`GET /v1/health/service/{service}`), never
/// the raw path, so the number of verbs is bounded by the router.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Verb {
    pub method: &'static str,
    pub route: String,
}

#[derive(Debug, Default)]
struct Samples {
    /// Requests since the node started (not only those in the window).
    total: u64,
    errors_total: u64,
    recent: VecDeque<(Instant, Duration)>,
}

/// What `GET /v1/status` shows for one verb.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VerbLatency {
    pub method: &'static str,
    pub route: String,
    /// Requests since the node started.
    pub requests_total: u64,
    /// Answers with a 5xx status since the node started.
    pub errors_total: u64,
    /// Requests within the window that the percentiles are computed over.
    pub window_requests: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Recent request latencies by verb.
#[derive(Debug, Default)]
pub struct LatencyWindows {
    by_verb: BTreeMap<Verb, Samples>,
}

impl LatencyWindows {
    pub fn record(&mut self, verb: Verb, now: Instant, took: Duration, server_error: bool) {
        let samples = self.by_verb.entry(verb).or_default();
        samples.total += 1;
        samples.errors_total += u64::from(server_error);
        if samples.recent.len() == SAMPLES_PER_VERB_MAX {
            samples.recent.pop_front();
        }
        samples.recent.push_back((now, took));
        expire(&mut samples.recent, now);
    }

    /// Percentiles per verb over the window ending at `now`, ordered by route then method.
    pub fn summary(&mut self, now: Instant) -> Vec<VerbLatency> {
        let mut out = Vec::with_capacity(self.by_verb.len());
        let mut sorted = Vec::new();
        for (verb, samples) in &mut self.by_verb {
            expire(&mut samples.recent, now);
            sorted.clear();
            sorted.extend(samples.recent.iter().map(|(_, d)| *d));
            sorted.sort_unstable();
            out.push(VerbLatency {
                method: verb.method,
                route: verb.route.clone(),
                requests_total: samples.total,
                errors_total: samples.errors_total,
                window_requests: sorted.len(),
                p50_ms: millis(percentile(&sorted, 50)),
                p90_ms: millis(percentile(&sorted, 90)),
                p99_ms: millis(percentile(&sorted, 99)),
                max_ms: millis(sorted.last().copied()),
            });
        }
        out.sort_by(|a, b| (&a.route, a.method).cmp(&(&b.route, b.method)));
        out
    }
}

fn expire(recent: &mut VecDeque<(Instant, Duration)>, now: Instant) {
    while recent
        .front()
        .is_some_and(|(at, _)| now.saturating_since(*at) > WINDOW)
    {
        recent.pop_front();
    }
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at least `p`% of the
/// samples at or below it. Exact (no interpolation), which is what a small window wants.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn millis(d: Option<Duration>) -> f64 {
    // Three decimals: microsecond resolution is all a loopback request can tell apart.
    d.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(route: &str) -> Verb {
        Verb {
            method: "GET",
            route: route.to_string(),
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |n: u64| Duration::from_millis(n);
        let samples: Vec<Duration> = (1..=100).map(ms).collect();
        for (p, want) in [(50, 50), (90, 90), (99, 99), (100, 100), (1, 1)] {
            assert_eq!(percentile(&samples, p), Some(ms(want)), "p{p}");
        }
        assert_eq!(percentile(&[ms(7)], 99), Some(ms(7)));
        assert_eq!(percentile(&[], 50), None);
        // Two samples: the median is the lower one, p90 the upper.
        assert_eq!(percentile(&[ms(1), ms(9)], 50), Some(ms(1)));
        assert_eq!(percentile(&[ms(1), ms(9)], 90), Some(ms(9)));
    }

    #[test]
    fn old_samples_leave_the_window_but_stay_in_the_total() {
        let mut w = LatencyWindows::default();
        let t0 = Instant::from_micros(1_000_000);
        w.record(verb("/a"), t0, Duration::from_millis(100), true);
        w.record(verb("/a"), t0 + WINDOW, Duration::from_millis(2), false);
        let later = t0 + WINDOW + Duration::from_secs(1);
        let s = w.summary(later);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].requests_total, 2);
        assert_eq!(s[0].errors_total, 1);
        assert_eq!(s[0].window_requests, 1);
        assert_eq!(s[0].p99_ms, 2.0);
    }

    #[test]
    fn samples_per_verb_are_bounded() {
        let mut w = LatencyWindows::default();
        let t0 = Instant::from_micros(1);
        for i in 0..SAMPLES_PER_VERB_MAX + 10 {
            w.record(verb("/b"), t0, Duration::from_micros(i as u64), false);
        }
        let s = w.summary(t0);
        assert_eq!(s[0].window_requests, SAMPLES_PER_VERB_MAX);
        assert_eq!(s[0].requests_total, SAMPLES_PER_VERB_MAX as u64 + 10);
    }
}
