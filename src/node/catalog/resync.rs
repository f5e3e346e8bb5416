//! Adaptive anti-entropy (issue 17): after an exchange that brought news, compare registries
//! again soon, with another peer, instead of a whole `sync_interval` later.
//!
//! After a burst of writes larger than the gossip queue's bound (1,024 entries), most entries
//! reach other nodes only by anti-entropy, and one random exchange per `sync_interval` (30 s on
//! lan) took 2-4 rounds until every node held every owner's entries. So a node that merges news
//! pushed by anti-entropy starts another comparison about one probe interval later, with a
//! peer other than the ones it just compared with; the next one if that brought news too, and
//! so on, up to [`RESYNCS_PER_INTERVAL_MAX`] in one `sync_interval`. An exchange that brings
//! nothing new arms nothing: the node is back on its regular `sync_interval`.
//!
//! "Pushed by anti-entropy" is told from gossip without a mark on the wire: when two nodes
//! compare summaries, each side knows which of the other's origins (pushed whole) and buckets
//! (pushed by bucket) the other will push, because both apply the same rule to the same two
//! summaries (`sync.rs`). Those are noted as expected from that peer, for a couple of probe
//! intervals; an entry that is news to us counts only if it comes from that peer, of an
//! expected origin, in an expected bucket. A peer's own gossip in the meantime almost never
//! matches (one origin's bucket in 64), where counting everything that peer sent made a steady
//! trickle of writes re-sync without end (the first version of this, measured in
//! `an_idle_cluster_and_gossiped_writes_start_no_early_resync`: 93 re-syncs in 5 minutes).
//!
//! Why news, and not a differing hash: while writes are being gossiped, two registries differ
//! for the milliseconds a write takes to spread, so a hash (or a bucket summary) compared then
//! differs though gossip is about to level it; the entries anti-entropy pushes in that case
//! arrive after gossip's copy and are not news. And a node at `registry_entries_max` differs
//! from its peers for as long as it is full, but refuses what they push: it never counts news,
//! so it never re-syncs early (nor do they on its account: what it pushes them is not news).
//! An idle cluster in step compares 8-byte hashes only, moves nothing, and re-syncs never.
//!
//! Only the registry's part of a sync is repeated (its 8-byte hash, not the membership
//! digest): the news was the registry's, and a membership digest that differs starts a
//! push-pull of the whole member table (about 1 MiB at 10,000 members) that has its own
//! repairs (gossip, the regular sync, reconnects); repeating it up to
//! [`RESYNCS_PER_INTERVAL_MAX`] times would cost more than the registry exchange it rode on.
//!
//! Pure state and arithmetic: the catalog asks it what to do and arms the timer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::names::NodeName;
use crate::registry::BucketMask;
use crate::time::Instant;

/// Early re-syncs a node starts within one `sync_interval`, at most. Push-pull anti-entropy
/// with a random peer spreads what one node holds to all N in about log3 N + O(ln ln N) rounds
/// (Karp et al., "Randomized rumor spreading", 2000): 6-7 at 100 nodes, 10-11 at 10,000. 12
/// covers the clusters hera is measured at with a round to spare, at one probe interval each
/// (12 s of a 30 s interval on lan). The cost is bounded: each re-sync starts with an 8-byte
/// hash, goes further only while registries differ, and its pushes are paced and answered
/// within the per-peer reply budget (`node::replies`); at worst 13 exchanges per interval
/// instead of 1, and only while every one of them brings news.
pub const RESYNCS_PER_INTERVAL_MAX: u32 = 12;

/// Peers remembered as partners in a registry comparison. A node takes part in its own
/// exchanges and answers others': a handful at once. Past the bound the one quiet longest is
/// forgotten, which only makes its pushes count as gossip's.
pub(crate) const EXCHANGE_PEERS_MAX: usize = 16;

/// Origins expected from one partner, at most. One match is enough to tell an exchange is
/// doing work, so the rest of a larger set (a cluster of thousands after a bulk load) is not
/// kept: 16 partners × 256 origins × up to ~130 B (a name of up to 64 bytes in a B-tree
/// node) is the most this costs, about 0.5 MiB.
pub(crate) const EXPECTED_ORIGINS_MAX: usize = 256;

/// What to do when the re-sync timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fire {
    /// Compare registries with a peer now (one of the ceiling's spent).
    Sync,
    /// News is still arriving from the last exchange: look again at this time.
    Later(Instant),
    /// The ceiling is reached, or re-syncs are off: wait for the regular sync.
    Skip,
}

/// The timings the pace depends on, read from the configuration at each decision (both can
/// change at run time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    pub(crate) probe_interval: Duration,
    pub(crate) sync_interval: Duration,
}

impl Timings {
    /// The wait before an early re-sync: one probe interval, enough for the last exchange's
    /// pushes to land. None when that is no sooner than the regular sync (a `sync_interval`
    /// tuned down to the probe interval or below needs no help).
    fn delay(self) -> Option<Duration> {
        (self.probe_interval < self.sync_interval).then_some(self.probe_interval)
    }

    /// How long after the last message of an exchange a peer's entries still count as its
    /// pushes: two probe intervals (a paced push of a large registry arrives over seconds,
    /// and each entry of news from the peer extends it).
    fn exchange_window(self) -> Duration {
        self.probe_interval * 2
    }
}

/// A peer comparing registries with us: when the exchange last moved, and what it will push.
#[derive(Debug)]
struct Partner {
    at: Instant,
    /// Buckets of each origin the peer will push (all of them for an origin pushed whole).
    expected: BTreeMap<NodeName, BucketMask>,
    /// We held nothing of anyone else's and the peer pushes us whole origins: it is filling
    /// us in (a late joiner's transfer), and nobody else should be asked for the same while
    /// it does.
    fills_in: bool,
}

/// The pace of early re-syncs: who we compare with, when news last came, the ceiling.
#[derive(Debug, Default)]
pub(crate) struct Resync {
    /// Peers in a registry comparison with us (at most [`EXCHANGE_PEERS_MAX`]).
    partners: BTreeMap<SocketAddr, Partner>,
    /// When an exchange last brought news.
    news_at: Option<Instant>,
    /// The re-sync timer is armed (one at a time).
    armed: bool,
    /// Start of the current window of one `sync_interval`, and re-syncs started in it.
    window_start: Option<Instant>,
    in_window: u32,
}

impl Resync {
    /// A registry comparison with `peer` moved (a summary received from it): it is a partner
    /// until the exchange window has passed without news from it.
    pub(crate) fn exchanged(&mut self, now: Instant, peer: SocketAddr, t: Timings) {
        let window = t.exchange_window();
        self.partners
            .retain(|_, p| now.saturating_since(p.at) <= window);
        if self.partners.len() >= EXCHANGE_PEERS_MAX && !self.partners.contains_key(&peer) {
            let oldest = self
                .partners
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                self.partners.remove(&oldest);
            }
        }
        let partner = self.partners.entry(peer).or_insert_with(|| Partner {
            at: now,
            expected: BTreeMap::new(),
            fills_in: false,
        });
        partner.at = now;
    }

    /// `peer` will push its entries of `origin` in `buckets` (call after
    /// [`Resync::exchanged`] for the same peer; otherwise nothing is noted).
    pub(crate) fn expect_push(&mut self, peer: SocketAddr, origin: &NodeName, buckets: BucketMask) {
        let Some(partner) = self.partners.get_mut(&peer) else {
            return;
        };
        if let Some(mask) = partner.expected.get_mut(origin) {
            *mask |= buckets;
        } else if partner.expected.len() < EXPECTED_ORIGINS_MAX {
            partner.expected.insert(origin.clone(), buckets);
        }
    }

    /// `peer` will push us whole origins we hold nothing of (call after [`Resync::expect_push`]
    /// for them).
    pub(crate) fn expect_fill_in(&mut self, peer: SocketAddr) {
        if let Some(partner) = self.partners.get_mut(&peer) {
            partner.fills_in = true;
        }
    }

    /// Is `peer` comparing registries with us (or was it lately)? Cheap: entries from anyone
    /// else need no further look.
    pub(crate) fn is_partner(&self, peer: SocketAddr) -> bool {
        self.partners.contains_key(&peer)
    }

    /// An entry of `origin` in `bucket` from `from` was news to us. If `from` is a partner
    /// that was to push it, the exchange is doing work: returns when to arm the re-sync timer,
    /// if it is not armed and the ceiling allows one more.
    pub(crate) fn on_news(
        &mut self,
        now: Instant,
        from: SocketAddr,
        origin: &NodeName,
        bucket: usize,
        t: Timings,
    ) -> Option<Instant> {
        let partner = self.partners.get_mut(&from)?;
        let pushed = partner
            .expected
            .get(origin)
            .is_some_and(|mask| mask & 1u64.checked_shl(bucket as u32).unwrap_or(0) != 0);
        if !pushed || now.saturating_since(partner.at) > t.exchange_window() {
            return None;
        }
        // A long paced push keeps its partner for as long as it brings news.
        partner.at = now;
        self.news_at = Some(now);
        let delay = t.delay()?;
        if self.armed || !self.has_room(now, t) {
            return None;
        }
        self.armed = true;
        Some(now + delay)
    }

    /// Is a partner filling us in: pushing whole origins to a node that held nothing of
    /// anyone else's (a late joiner, an empty restart), its exchange
    /// moving within the last probe interval (its digest, or an entry of news from it)? Then
    /// a comparison with anyone else would have them push the same origins while the
    /// partner's are in flight: a late joiner took a whole registry from two peers at once
    /// (docs/scale.md, adaptive anti-entropy). Bounded: it takes news to stay true.
    ///
    /// Only then: during a bulk load every node holds part of others' origins and is pushed
    /// by one peer after another, each bringing news the others lack; declining comparisons
    /// there slowed the spread (16 × 1,024 held everywhere 18.6 s after the load instead of
    /// 10.2 s in `a_bulk_load_past_the_queue_bound_is_held_everywhere_within_half_a_sync_
    /// interval` when any differing bucket counted; 45.6 s instead of 37.9 s in
    /// `registry-churn --nodes 50` when any origin the node lacked did).
    pub(crate) fn receiving(&self, now: Instant, t: Timings) -> bool {
        self.partners
            .values()
            .any(|p| p.fills_in && now.saturating_since(p.at) <= t.probe_interval)
    }

    /// The re-sync timer fired at `now`; `can_sync` says whether a comparison could start at
    /// all (the node is active, and some member is live). If not, nothing is spent and
    /// nothing re-armed: the next news arms the timer again.
    pub(crate) fn on_timer(&mut self, now: Instant, t: Timings, can_sync: bool) -> Fire {
        self.armed = false;
        if !can_sync {
            return Fire::Skip;
        }
        let Some(delay) = t.delay() else {
            return Fire::Skip;
        };
        // Still receiving: let the exchange finish before starting another (each entry of news
        // would otherwise be pushed by two peers at once). Bounded: it takes news to move.
        if let Some(quiet_at) = self.news_at.map(|at| at + delay).filter(|at| *at > now) {
            self.armed = true;
            return Fire::Later(quiet_at);
        }
        if !self.has_room(now, t) {
            return Fire::Skip;
        }
        self.window_start.get_or_insert(now);
        self.in_window += 1;
        Fire::Sync
    }

    /// Peers not to pick for the next comparison: those we just compared with.
    pub(crate) fn recent_partners(&self, now: Instant, t: Timings) -> Vec<SocketAddr> {
        self.partners
            .iter()
            .filter(|(_, p)| now.saturating_since(p.at) <= t.exchange_window())
            .map(|(a, _)| *a)
            .collect()
    }

    /// Re-syncs started in the current window (tests read the ceiling's use).
    #[cfg(test)]
    pub(crate) fn spent(&self) -> u32 {
        self.in_window
    }

    /// May one more re-sync start in the window that holds `now`? A window is one
    /// `sync_interval` (as configured now) from the first re-sync in it.
    fn has_room(&mut self, now: Instant, t: Timings) -> bool {
        let over = self
            .window_start
            .is_none_or(|start| now.saturating_since(start) >= t.sync_interval);
        if over {
            self.window_start = None;
            self.in_window = 0;
        }
        self.in_window < RESYNCS_PER_INTERVAL_MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ALL_BUCKETS;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1_000)
    }

    fn lan() -> Timings {
        Timings {
            probe_interval: Duration::from_secs(1),
            sync_interval: Duration::from_secs(30),
        }
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn origin(name: &str) -> NodeName {
        NodeName::new(name).unwrap()
    }

    /// `peer` compared summaries with us at `now` and will push all of origin n1.
    fn pushing(r: &mut Resync, now: u64, port: u16, t: Timings) {
        r.exchanged(at(now), peer(port), t);
        r.expect_push(peer(port), &origin("n1"), ALL_BUCKETS);
    }

    /// News of n1 in bucket 0 from `port` at `now`.
    fn news(r: &mut Resync, now: u64, port: u16, t: Timings) -> Option<Instant> {
        r.on_news(at(now), peer(port), &origin("n1"), 0, t)
    }

    /// Drive one exchange per re-sync, each bringing news, from `start`: returns the times
    /// re-syncs started until the pace stops arming or `until` passes.
    fn run_productive(r: &mut Resync, start: u64, until: u64, t: Timings) -> Vec<u64> {
        let mut started = Vec::new();
        let mut port = 8_000;
        pushing(r, start, port, t);
        let mut next = news(r, start, port, t);
        while let Some(due) = next {
            let now = due.as_micros() / 1_000;
            if now > until {
                break;
            }
            next = match r.on_timer(due, t, true) {
                Fire::Sync => {
                    started.push(now);
                    port += 1;
                    pushing(r, now, port, t);
                    news(r, now, port, t)
                }
                Fire::Later(later) => Some(later),
                Fire::Skip => None,
            };
        }
        started
    }

    /// News that a partner was to push arms a re-sync one probe interval later; news from
    /// anyone else, or of an origin or bucket the partner was not to push (its own gossip),
    /// arms nothing.
    #[test]
    fn only_what_a_partner_was_to_push_arms_a_resync() {
        let t = lan();
        let mut r = Resync::default();
        assert_eq!(news(&mut r, 0, 1, t), None, "not a partner");
        r.exchanged(at(0), peer(1), t);
        assert_eq!(news(&mut r, 0, 1, t), None, "a partner, nothing expected");
        r.expect_push(peer(1), &origin("n1"), 1 << 5);
        assert_eq!(news(&mut r, 10, 1, t), None, "another bucket");
        assert_eq!(
            r.on_news(at(10), peer(1), &origin("n2"), 5, t),
            None,
            "another origin"
        );
        assert_eq!(
            r.on_news(at(10), peer(1), &origin("n1"), 5, t),
            Some(at(1_010))
        );
        assert_eq!(
            r.on_news(at(20), peer(1), &origin("n1"), 5, t),
            None,
            "armed already"
        );
        // A partner whose exchange went quiet longer than the window is a gossiper again.
        pushing(&mut r, 0, 2, t);
        assert_eq!(news(&mut r, 2_001, 2, t), None);
        // A bucket number out of range matches nothing (and does not panic).
        assert_eq!(r.on_news(at(30), peer(1), &origin("n1"), 64, t), None);
    }

    /// Every exchange brings news: re-syncs come one probe interval apart, at most the ceiling
    /// in one sync interval; then the regular sync is the only one until the window is over.
    #[test]
    fn productive_exchanges_resync_up_to_the_ceiling_per_interval() {
        let t = lan();
        let mut r = Resync::default();
        let started = run_productive(&mut r, 0, 29_000, t);
        let expected: Vec<u64> = (1..=u64::from(RESYNCS_PER_INTERVAL_MAX))
            .map(|k| k * 1_000)
            .collect();
        assert_eq!(started, expected);
        // The window (30 s from the first re-sync, at 1 s) is over at 31 s: room again.
        pushing(&mut r, 30_999, 9_000, t);
        assert_eq!(news(&mut r, 30_999, 9_000, t), None, "the ceiling holds");
        assert_eq!(news(&mut r, 31_000, 9_000, t), Some(at(32_000)));
        assert_eq!(r.on_timer(at(32_000), t, true), Fire::Sync);
    }

    /// An exchange that brings nothing arms nothing: back to the regular interval at once.
    #[test]
    fn an_exchange_without_news_backs_off() {
        let t = lan();
        let mut r = Resync::default();
        pushing(&mut r, 0, 1, t);
        assert_eq!(news(&mut r, 0, 1, t), Some(at(1_000)));
        assert_eq!(r.on_timer(at(1_000), t, true), Fire::Sync);
        // The re-sync's exchange with peer 2 finds the registries equal: no news, no timer.
        r.exchanged(at(1_000), peer(2), t);
        assert!(!r.armed);
        // Gossip from peer 3 afterwards is not anti-entropy's news.
        assert_eq!(news(&mut r, 1_500, 3, t), None);
        assert!(!r.armed);
    }

    /// News still arriving when the timer fires (a long paced push) postpones the re-sync to
    /// one probe interval after the last of it, without spending the ceiling.
    #[test]
    fn a_resync_waits_for_the_exchange_to_go_quiet() {
        let t = lan();
        let mut r = Resync::default();
        pushing(&mut r, 0, 1, t);
        assert_eq!(news(&mut r, 0, 1, t), Some(at(1_000)));
        assert_eq!(news(&mut r, 900, 1, t), None);
        assert_eq!(r.on_timer(at(1_000), t, true), Fire::Later(at(1_900)));
        assert_eq!(r.in_window, 0);
        assert_eq!(r.on_timer(at(1_900), t, true), Fire::Sync);
        assert_eq!(r.in_window, 1);
    }

    /// A `sync_interval` tuned down to the probe interval needs no early re-syncs; the
    /// window follows the interval as configured at each decision.
    #[test]
    fn a_short_sync_interval_turns_resyncs_off_and_the_window_follows_it() {
        let mut t = lan();
        t.sync_interval = t.probe_interval;
        let mut r = Resync::default();
        pushing(&mut r, 0, 1, t);
        assert_eq!(news(&mut r, 0, 1, t), None);
        // Tuned to 10 s with a 500 ms probe interval: 12 re-syncs half a second apart, then
        // none until 10 s after the first, then again.
        t = Timings {
            probe_interval: Duration::from_millis(500),
            sync_interval: Duration::from_secs(10),
        };
        let mut r = Resync::default();
        let started = run_productive(&mut r, 0, 9_000, t);
        let expected: Vec<u64> = (1..=u64::from(RESYNCS_PER_INTERVAL_MAX))
            .map(|k| k * 500)
            .collect();
        assert_eq!(started, expected);
        let started = run_productive(&mut r, 10_500, 12_000, t);
        assert_eq!(started, vec![11_000, 11_500, 12_000]);
    }

    /// Partners and what each is to push are bounded; the partner quiet longest goes first.
    #[test]
    fn partners_and_expectations_are_bounded() {
        let t = lan();
        let mut r = Resync::default();
        for k in 0..(EXCHANGE_PEERS_MAX as u16 + 4) {
            r.exchanged(at(u64::from(k)), peer(k), t);
        }
        assert_eq!(r.partners.len(), EXCHANGE_PEERS_MAX);
        assert!(!r.partners.contains_key(&peer(0)));
        assert_eq!(r.recent_partners(at(30), t).len(), EXCHANGE_PEERS_MAX);
        let last = peer(EXCHANGE_PEERS_MAX as u16 + 3);
        for k in 0..EXPECTED_ORIGINS_MAX + 10 {
            r.expect_push(last, &origin(&format!("o{k}")), 1);
        }
        assert_eq!(r.partners[&last].expected.len(), EXPECTED_ORIGINS_MAX);
        // Partners quiet past the window are dropped as the next one comes.
        r.exchanged(at(5_000), peer(9_999), t);
        assert_eq!(r.partners.len(), 1);
    }
}
