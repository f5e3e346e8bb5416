//! Prepared answers kept for the snapshot they were built from. Working out what a service
//! name stands for (its instances, their health, owners and addresses, the SRV target names)
//! is most of a query's cost and depends only on the snapshot and the question; the shuffle
//! that makes each answer differ is done per query, on the kept list.
//!
//! A new snapshot (any change of the node's state) empties the cache, so an answer is never
//! older than the snapshot it is served with. Bounded in records: a flood of distinct names
//! empties it and starts again, which costs what no cache costs.

use std::collections::HashMap;

use hickory_proto::rr::{Name, Record, RecordType};
use rand_core::RngCore;

use super::answer::{self, Picked, Prepared};
use super::names::Asked;
use super::DnsConfig;
use crate::runtime::driver::Snapshot;
use crate::time::Instant;

/// Records the UDP listener keeps at most (A records and SRV records with their targets): a
/// few hundred kilobytes, for every service of a large registry or one service of thousands.
pub const UDP_CACHE_RECORDS: usize = 4_096;

/// Prepared answers for one snapshot, by question (name as asked, and type).
#[derive(Debug)]
pub struct AnswerCache {
    capacity: usize,
    /// The snapshot the entries were built from: its change counter and when it was taken.
    built_for: Option<(u64, Instant)>,
    entries: HashMap<(String, u16), Prepared>,
    records: usize,
    /// The zone's SOA, for negative answers.
    soa: Option<Record>,
    /// The last answer prepared and not kept (what the encoder borrows from).
    scratch: Option<Prepared>,
}

impl AnswerCache {
    /// A cache holding at most `capacity` records (0: keeps nothing, every query builds).
    pub fn new(capacity: usize) -> AnswerCache {
        AnswerCache {
            capacity,
            built_for: None,
            entries: HashMap::new(),
            records: 0,
            soa: None,
            scratch: None,
        }
    }

    fn follow(&mut self, s: &Snapshot) {
        let now = Some((s.version, s.taken_at));
        if self.built_for != now || self.capacity == 0 {
            self.entries.clear();
            self.records = 0;
            self.soa = None;
            self.built_for = now;
        }
    }

    /// One answer for the question, and the zone's SOA for a negative one. Service lookups
    /// are drawn from the kept list (built on a miss); anything else is built each time (a
    /// member lookup is a binary search).
    pub fn answer(
        &mut self,
        s: &Snapshot,
        config: &DnsConfig,
        name: &Name,
        wanted: RecordType,
        asked: &Asked,
        rng: &mut impl RngCore,
    ) -> (Picked<'_>, &Record) {
        self.follow(s);
        if self.soa.is_none() {
            self.soa = Some(answer::soa(s, config));
        }
        // Only service lookups are kept: the key (an allocation) is built for them alone.
        let key = (self.capacity > 0 && matches!(asked, Asked::Service(_)))
            .then(|| (name.to_ascii(), u16::from(wanted)));
        let kept = key.as_ref().is_some_and(|key| {
            self.entries.contains_key(key) || self.keep(key.clone(), s, config, name, wanted, asked)
        });
        let prepared = if let (true, Some(key)) = (kept, &key) {
            self.entries.get(key)
        } else {
            Some(
                &*self
                    .scratch
                    .insert(answer::prepare(s, config, name, wanted, asked)),
            )
        };
        let picked = prepared.map_or(Picked::NoSuchName, |p| p.pick(config.records_max, rng));
        let soa = self.soa.get_or_insert_with(|| answer::soa(s, config));
        (picked, soa)
    }

    /// Prepare the question's answer and keep it if it fits: false if it is too big to keep.
    fn keep(
        &mut self,
        key: (String, u16),
        s: &Snapshot,
        config: &DnsConfig,
        name: &Name,
        wanted: RecordType,
        asked: &Asked,
    ) -> bool {
        let prepared = answer::prepare(s, config, name, wanted, asked);
        let size = prepared.records().max(1);
        if size > self.capacity {
            return false;
        }
        if self.records + size > self.capacity {
            self.entries.clear();
            self.records = 0;
        }
        self.records += size;
        self.entries.insert(key, prepared);
        true
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::RData;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::runtime::dns::fuzzing::fixture;
    use crate::runtime::dns::names;

    /// The answer's addresses, in the order answered.
    fn ask(cache: &mut AnswerCache, s: &Snapshot, name: &str, rng: &mut ChaCha8Rng) -> Vec<String> {
        // Every record in each answer, so that answers can be compared as sets.
        let config = DnsConfig {
            records_max: 1_000,
            ..DnsConfig::default()
        };
        let name = Name::from_ascii(name).unwrap();
        let asked = names::parse(&name, &config.domain);
        let (Picked::Found { answers, .. }, _) =
            cache.answer(s, &config, &name, RecordType::A, &asked, rng)
        else {
            return Vec::new();
        };
        answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect()
    }

    fn sorted(mut ips: Vec<String>) -> Vec<String> {
        ips.sort();
        ips
    }

    #[test]
    fn a_kept_answer_is_reshuffled_and_holds_what_a_fresh_one_holds() {
        let s = fixture();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut cache = AnswerCache::new(UDP_CACHE_RECORDS);
        let mut none = AnswerCache::new(0);
        let first = ask(&mut cache, s, "web.service.consul.", &mut rng);
        let second = ask(&mut cache, s, "web.service.consul.", &mut rng);
        let fresh = ask(&mut none, s, "web.service.consul.", &mut rng);
        assert_eq!(cache.entries.len(), 1);
        assert_ne!(first, second, "each answer is shuffled again");
        assert!(first.len() > 60, "{first:?}");
        assert_eq!(sorted(first.clone()), sorted(second));
        assert_eq!(sorted(first), sorted(fresh));
        assert!(none.entries.is_empty());
    }

    #[test]
    fn a_new_snapshot_empties_the_cache_and_the_bound_holds() {
        let mut s = fixture().clone();
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let mut cache = AnswerCache::new(100);
        ask(&mut cache, &s, "web.service.consul.", &mut rng);
        assert_eq!(cache.entries.len(), 1);
        // A service's answer bigger than the whole cache is built, answered, not kept.
        let mut small = AnswerCache::new(10);
        let answer = ask(&mut small, &s, "web.service.consul.", &mut rng);
        assert!(!answer.is_empty() && small.entries.is_empty());
        // Distinct names past the bound start the cache again rather than grow it.
        for n in 0..200 {
            ask(
                &mut cache,
                &s,
                &format!("none{n}.service.consul."),
                &mut rng,
            );
            assert!(cache.records <= 100 && cache.entries.len() <= 100);
        }
        s.version += 1;
        ask(&mut cache, &s, "db.service.consul.", &mut rng);
        assert_eq!(cache.entries.len(), 1, "only what the new snapshot asked");
    }
}
