//! The store on its own: last-writer-wins whatever the arrival order, indexes kept in step,
//! snapshots isolated from later changes, tombstones collected by the age of their version,
//! and the size bound of an entry.

use super::*;
use crate::time::Instant;

fn v(wall_ms: u64, counter: u32, node: &str) -> Hlc {
    Hlc::at(wall_ms, counter, node)
}

fn id(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

fn instance(service: &str, instance_id: &str, owner: &str) -> Instance {
    InstanceSpec::new(ServiceName::new(service).unwrap(), "10.0.0.1", 80)
        .into_instance(id(instance_id), NodeName::new(owner).unwrap(), 0)
        .unwrap()
}

fn live(service: &str, instance_id: &str, version: Hlc) -> Entry {
    let owner = version.node.to_string();
    Entry {
        id: id(instance_id),
        instance: Some(Box::new(instance(service, instance_id, &owner))),
        version,
    }
}

fn tombstone(instance_id: &str, version: Hlc) -> Entry {
    Entry {
        id: id(instance_id),
        version,
        instance: None,
    }
}

/// Everything a node can observe about the registry, for comparing two of them.
fn contents(r: &Registry) -> Vec<(InstanceId, Hlc, bool)> {
    ["x", "y", "z"]
        .iter()
        .filter_map(|i| r.stored(&id(i)))
        .map(|s| {
            (
                s.instance.as_ref().map_or(id("gone"), |i| i.id.clone()),
                s.version.clone(),
                s.instance.is_some(),
            )
        })
        .collect()
}

#[test]
fn every_arrival_order_ends_in_the_same_state() {
    // Writes to one id from three nodes, a delete among them, with a tie on (wall, counter).
    let writes = [
        live("web", "x", v(10, 0, "a")),
        live("web", "x", v(12, 0, "b")),
        tombstone("x", v(12, 0, "c")),
        live("web", "x", v(11, 5, "c")),
        live("db", "y", v(3, 0, "a")),
        tombstone("y", v(2, 0, "b")),
    ];
    let mut expected: Option<(Vec<_>, u64)> = None;
    // All 720 orders of the six writes.
    let mut order: Vec<usize> = (0..writes.len()).collect();
    let mut orders = 0;
    loop {
        let mut r = Registry::default();
        for &k in &order {
            r.apply(writes[k].clone());
        }
        let got = (contents(&r), r.digest());
        match &expected {
            None => expected = Some(got),
            Some(e) => assert_eq!(&got, e, "order {order:?}"),
        }
        orders += 1;
        if !next_permutation(&mut order) {
            break;
        }
    }
    assert_eq!(orders, 720);
    let r = {
        let mut r = Registry::default();
        writes.iter().for_each(|w| {
            r.apply(w.clone());
        });
        r
    };
    // x: (12, 0, "c") beats (12, 0, "b") on the node name: deleted. y: alive at (3, 0, "a").
    assert!(r.get(&id("x")).is_none());
    assert_eq!(r.stored(&id("x")).unwrap().version, v(12, 0, "c"));
    assert_eq!(r.get(&id("y")).unwrap().service.as_str(), "db");
    assert_eq!((r.len(), r.tombstones()), (1, 1));
}

fn next_permutation(p: &mut [usize]) -> bool {
    let Some(i) = (1..p.len()).rev().find(|&i| p[i - 1] < p[i]) else {
        return false;
    };
    let j = (i..p.len()).rev().find(|&j| p[j] > p[i - 1]).unwrap();
    p.swap(i - 1, j);
    p[i..].reverse();
    true
}

#[test]
fn indexes_follow_every_change() {
    let mut r = Registry::default();
    r.apply(live("web", "w-2", v(1, 0, "a")));
    r.apply(live("web", "w-1", v(1, 0, "b")));
    r.apply(live("api", "a-9", v(1, 0, "a")));
    let listed: Vec<_> = r
        .instances()
        .map(|i| (i.service.to_string(), i.id.to_string()))
        .collect();
    assert_eq!(
        listed,
        [("api", "a-9"), ("web", "w-1"), ("web", "w-2")]
            .map(|(s, i)| (s.to_string(), i.to_string()))
    );
    let web = ServiceName::new("web").unwrap();
    assert_eq!(r.service(&web).count(), 2);
    assert_eq!(r.services()[&web], vec![id("w-1"), id("w-2")]);
    assert_eq!(r.origin_digests().len(), 2);

    // A delete moves an entry from the live indexes to the tombstones; the service goes when
    // its last instance does; the origin summaries follow the writer of the held version.
    assert!(r.apply(tombstone("w-1", v(2, 0, "c"))));
    assert!(r.apply(tombstone("w-2", v(2, 0, "c"))));
    assert!(!r.services().contains_key(&web));
    assert_eq!((r.len(), r.tombstones()), (1, 2));
    assert!(!r
        .origin_digests()
        .contains_key(&NodeName::new("b").unwrap()));
    assert_eq!(r.origin_digests()[&NodeName::new("c").unwrap()].count, 2);
    assert_eq!(r.counts().tombstones, 2);
    assert_eq!(r.counts().critical + r.counts().passing, 1);
    // Forgetting leaves no trace but the index.
    let index = r.index();
    assert!(r.forget(&id("a-9")));
    assert!(r.is_empty());
    assert!(r.index() > index);
    assert_eq!(r.origin_digests().len(), 1);
}

#[test]
fn a_snapshot_does_not_see_later_changes() {
    let mut r = Registry::default();
    for k in 0..1_000 {
        r.apply(live("bulk", &format!("i-{k}"), v(1, 0, "a")));
    }
    let snapshot = r.clone();
    r.apply(tombstone("i-7", v(2, 0, "a")));
    r.apply(live("other", "o-1", v(2, 0, "a")));
    assert_eq!(snapshot.len(), 1_000);
    assert!(snapshot.get(&id("i-7")).is_some());
    assert_eq!(r.len(), 1_000);
    assert!(r.get(&id("i-7")).is_none());
    assert_ne!(snapshot.digest(), r.digest());
}

#[test]
fn tombstones_are_collected_by_the_age_of_their_version() {
    let grace_ms = 60_000;
    let mut r = Registry::default();
    r.apply(tombstone("x", v(1_000, 0, "a")));
    r.apply(tombstone("y", v(5_000, 0, "a")));
    assert_eq!(r.collect_tombstones(60_999, grace_ms, false), 0);
    assert_eq!(r.collect_tombstones(61_000, grace_ms, false), 1);
    assert!(r.stored(&id("x")).is_none() && r.stored(&id("y")).is_some());
    // Once collected, the same tombstone coming back is recognised as expired and not stored;
    // a fresh one, or one that replaces an entry we hold, is stored.
    let table = [
        (tombstone("x", v(1_000, 0, "a")), true),
        (tombstone("q", v(60_000, 0, "a")), false),
        (tombstone("y", v(1_000, 0, "a")), false),
        (live("web", "x", v(1_000, 0, "a")), false),
    ];
    for (entry, expired) in table {
        assert_eq!(
            r.is_expired_tombstone(&entry, 61_000, grace_ms),
            expired,
            "{entry:?}"
        );
    }
    assert_eq!(r.collect_tombstones(u64::MAX, grace_ms, false), 1);
    assert_eq!(r.tombstones(), 0);
}

/// A grave keeps a collected tombstone's version out of the gossiped registry: the deleted
/// entry's older versions lose to it, as they lost to the tombstone; newer writes win and
/// replace it; collecting without graves, or forgetting them, leaves nothing behind.
#[test]
fn graves_refuse_what_their_tombstones_deleted() {
    let grace_ms = 60_000;
    let mut r = Registry::default();
    r.apply(live("web", "x", v(1_000, 0, "a")));
    r.apply(tombstone("x", v(2_000, 0, "b")));
    r.apply(tombstone("y", v(3_000, 0, "b")));
    r.apply(live("web", "z", v(500, 0, "a")));
    r.apply(tombstone("z", v(4_000, 0, "a")));
    assert_eq!(r.collect_tombstones(70_000, grace_ms, true), 3);
    assert_eq!((r.tombstones(), r.graves(), r.len()), (0, 3, 0));
    // Graves are neither stored entries nor in the digests.
    assert!(r.stored(&id("x")).is_none());
    assert_eq!(r.digest(), Registry::default().digest());
    assert!(r.origin_digests().is_empty());
    // (entry, applied): the merge rule counts a grave as the version held.
    let table = [
        (live("web", "x", v(1_000, 0, "a")), false),
        (live("web", "x", v(2_000, 0, "a")), false),
        (tombstone("x", v(1_500, 0, "c")), false),
        (live("web", "y", v(2_999, 9, "z")), false),
        (live("web", "z", v(4_000, 0, "b")), true),
        (tombstone("y", v(3_000, 1, "b")), true),
    ];
    for (entry, applied) in table {
        assert_eq!(r.apply(entry.clone()), applied, "{entry:?}");
    }
    // A newer write replaced z's grave and y's; x's grave stays.
    assert_eq!(r.grave(&id("x")), Some(&v(2_000, 0, "b")));
    assert!(r.grave(&id("y")).is_none() && r.grave(&id("z")).is_none());
    assert!(r.get(&id("z")).is_some());
    assert_eq!((r.len(), r.tombstones(), r.graves()), (1, 1, 1));
    // Forgetting goes by the version's age.
    assert_eq!(r.forget_graves(2_000), 0);
    assert_eq!(r.forget_graves(2_001), 1);
    assert!(r.apply(live("web", "x", v(1_000, 0, "a"))));
    // Without graves, a collected tombstone leaves nothing.
    assert_eq!(r.collect_tombstones(u64::MAX, grace_ms, false), 1);
    assert_eq!(r.graves(), 0);
    assert!(r.apply(live("web", "y", v(1, 0, "a"))));
}

#[test]
fn graves_are_bounded_oldest_first() {
    let mut r = Registry::default();
    let n = GRAVES_MAX + 10;
    for k in 0..n {
        r.apply(tombstone(&format!("i-{k}"), v(k as u64, 0, "a")));
    }
    assert_eq!(r.collect_tombstones(u64::MAX, 1, true), n);
    assert_eq!(r.graves(), GRAVES_MAX);
    assert!(r.grave(&id("i-9")).is_none());
    assert!(r.grave(&id("i-10")).is_some());
    assert_eq!(r.forget_graves(u64::MAX), GRAVES_MAX);
    assert_eq!(r.graves(), 0);
}

#[test]
fn a_local_write_after_a_remote_one_is_newer_even_with_a_slow_clock() {
    let mut r = Registry::default();
    r.apply(live("web", "x", v(9_000_000, 4, "fast")));
    let me = NodeName::new("slow").unwrap();
    let mine = r.next_version(Instant::from_micros(1_000_000), &me);
    assert!(newer(&v(9_000_000, 4, "fast"), &mine), "{mine:?}");
    assert!(r.apply(tombstone("x", mine)));
}

#[test]
fn an_entry_at_its_fullest_fits_one_datagram() {
    let mut spec = InstanceSpec::new(ServiceName::new(&"s".repeat(64)).unwrap(), "a", 1);
    spec.id = Some(id(&"i".repeat(128)));
    // 110 bytes less than before the plain check was counted as listed (a failing node check
    // lists it).
    spec.body = Some("b".repeat(440));
    let owner = NodeName::new("n1").unwrap();
    let fits = spec
        .clone()
        .into_instance(spec.id.clone().unwrap(), owner.clone(), 0)
        .expect("fits");
    let worst = worst_case_entry_bytes(&fits);
    assert!(worst <= ENTRY_MAX_BYTES, "{worst}");
    // The same with a body that would only fit while the output and reason are empty.
    spec.body = Some("b".repeat(BODY_MAX_BYTES));
    spec.address = "a".repeat(200);
    let refused = spec
        .clone()
        .into_instance(spec.id.clone().unwrap(), owner, 0);
    assert!(
        matches!(
            refused,
            Err(SpecError::TooLarge {
                max: ENTRY_MAX_BYTES,
                ..
            })
        ),
        "{refused:?}"
    );
}

#[test]
fn long_texts_are_clipped_to_the_room_left() {
    // Near the limit at registration: the output and reason get what is left, at least the
    // reserve; with room to spare they keep their full length.
    let mut spec = InstanceSpec::new(ServiceName::new(&"s".repeat(64)).unwrap(), "a", 1);
    spec.id = Some(id(&"i".repeat(128)));
    for body in [400, 0] {
        spec.body = Some("b".repeat(body));
        let mut full = spec
            .clone()
            .into_instance(spec.id.clone().unwrap(), NodeName::new("n1").unwrap(), 0)
            .unwrap();
        full.output = clip(&"o".repeat(1_000), usize::MAX);
        full.maintenance_reason = Some(clip(&"r".repeat(1_000), usize::MAX));
        fit_texts(&mut full);
        assert!(
            worst_case_entry_bytes(&full) <= ENTRY_MAX_BYTES,
            "body {body}"
        );
        assert!(full.output.0.len() >= TEXT_RESERVE_BYTES);
        let reason = full.maintenance_reason.as_ref().unwrap().0.len();
        assert!(reason >= TEXT_RESERVE_BYTES);
        if body == 0 {
            assert_eq!(
                (full.output.0.len(), reason),
                (OUTPUT_MAX_BYTES, OUTPUT_MAX_BYTES)
            );
        }
    }
}

/// Issue 14, finding 6: a gossiped entry's check is checked as the API checks a client's. An
/// HTTP check URL must be http or https with a host, and every duration within the wire's
/// bounds; anything else is refused by the decoder, whoever sent it.
#[test]
fn gossiped_checks_are_validated_on_decode() {
    use crate::wire::{decode_body, encode_message, DecodeErrorKind, Message};
    let with_check = |check: Check| {
        let mut i = instance("web", "web-1", "n1");
        i.check = check;
        let entry = Entry {
            id: id("web-1"),
            version: v(1, 0, "n1"),
            instance: Some(Box::new(i)),
        };
        decode_body(&encode_message(&Message::Entry(entry)))
    };
    let http = |url: &str, interval_ms: u64, timeout_ms: u64| {
        Check::Http(Box::new(HttpCheck {
            url: crate::bounded::BoundedString(url.to_string()),
            interval_ms,
            timeout_ms,
        }))
    };
    for good in [
        Check::None,
        Check::Ttl { ttl_ms: 1_000 },
        http("http://127.0.0.1:8080/health", 10_000, 1_000),
        http("https://db.internal/ping?x=1", 1_000, 0),
        http("http://[::1]:80/", 86_400_000, 300_000),
    ] {
        assert!(with_check(good.clone()).is_ok(), "{good:?} refused");
    }
    for bad in [
        Check::Ttl { ttl_ms: 0 },
        Check::Ttl { ttl_ms: u64::MAX },
        http("file:///etc/passwd", 10_000, 1_000),
        http("gopher://host/", 10_000, 1_000),
        http("http://", 10_000, 1_000),
        http("http:///path", 10_000, 1_000),
        http("http://host name/", 10_000, 1_000),
        http("http://host/\r\nX-Injected: 1", 10_000, 1_000),
        http("127.0.0.1:80", 10_000, 1_000),
        http("http://127.0.0.1/", 0, 1_000),
        http("http://127.0.0.1/", u64::MAX, 1_000),
        http("http://127.0.0.1/", 10_000, u64::MAX),
    ] {
        let decoded = with_check(bad.clone());
        assert!(
            matches!(&decoded, Err(e) if e.kind() == DecodeErrorKind::InvalidField),
            "{bad:?} decoded as {decoded:?}"
        );
    }
}

/// TCP check addresses a hostile or careless client sends: each refused at registration with
/// what is wrong, never left for the check's connect to fail on every run.
#[test]
fn tcp_check_addresses_at_and_past_their_shape() {
    for (address, why) in [
        ("[::1]:0", "port from 1"),
        ("host:0", "port from 1"),
        ("host:99999", "port from 1"),
        ("host:65536", "port from 1"),
        ("host:", "port from 1"),
        ("host:-1", "port from 1"),
        (":80", "name a host"),
        ("[]:80", "name a host"),
        ("nohost", "host:port"),
        ("", "host:port"),
        ("host:80 ", "space"),
        ("ho\nst:80", "control"),
    ] {
        let refused = check_tcp_address_shape(address).expect_err(address);
        assert!(refused.contains(why), "{address:?}: {refused}");
    }
    for address in ["127.0.0.1:1", "[::1]:65535", "db.local:5432"] {
        assert_eq!(check_tcp_address_shape(address), Ok(()), "{address}");
    }
}

#[test]
fn an_entry_whose_instance_names_another_id_is_refused() {
    // The service index holds instances by their own id and is kept in step by the entry's:
    // an entry (a crafted datagram's) whose two ids differ would leave the index holding an
    // instance that no deletion of its entry removes.
    let mut r = Registry::default();
    let mut crafted = live("web", "w-1", v(1, 0, "a"));
    crafted.id = id("w-2");
    assert!(!r.apply(crafted));
    assert_eq!((r.len(), r.index()), (0, 0));
    assert!(r.stored(&id("w-2")).is_none());

    assert!(r.apply(live("web", "w-1", v(1, 0, "a"))));
    assert!(r.apply(tombstone("w-1", v(2, 0, "a"))));
    let web = ServiceName::new("web").unwrap();
    assert_eq!(r.service(&web).count(), 0);
}

#[test]
fn instances_of_a_service_share_equal_tag_and_meta_lists() {
    let with = |instance_id: &str, tags: &[&str], version: Hlc| {
        let mut spec = InstanceSpec::new(ServiceName::new("web").unwrap(), "10.0.0.1", 80);
        spec.tags = tags.iter().map(|t| t.to_string()).collect();
        spec.meta = [("version".to_string(), "1".to_string())].into();
        let owner = NodeName::new("a").unwrap();
        let instance = spec.into_instance(id(instance_id), owner, 0).unwrap();
        Entry {
            id: id(instance_id),
            version,
            instance: Some(Box::new(instance)),
        }
    };
    let mut r = Registry::default();
    for (n, name) in ["w-1", "w-3", "w-2"].iter().enumerate() {
        assert!(r.apply(with(name, &["blue", "v2"], v(1 + n as u64, 0, "a"))));
    }
    assert!(r.apply(with("w-4", &["green"], v(9, 0, "a"))));
    let get = |r: &Registry, i: &str| r.get(&id(i)).unwrap().clone();
    let (w1, w2, w3, w4) = (
        get(&r, "w-1"),
        get(&r, "w-2"),
        get(&r, "w-3"),
        get(&r, "w-4"),
    );
    assert!(Arc::ptr_eq(&w1.tags, &w2.tags) && Arc::ptr_eq(&w2.tags, &w3.tags));
    assert!(Arc::ptr_eq(&w1.meta, &w4.meta));
    assert!(!Arc::ptr_eq(&w3.tags, &w4.tags));
    assert_eq!(w4.tags().collect::<Vec<_>>(), ["green"]);

    // A new version of an instance (a health change, as gossiped: its own fresh lists) keeps
    // the lists it had.
    let mut again = with("w-4", &["green"], v(10, 0, "a"));
    assert!(!Arc::ptr_eq(
        &again.instance.as_ref().unwrap().tags,
        &w4.tags
    ));
    again.instance.as_mut().unwrap().health = Health::Critical;
    assert!(r.apply(again));
    assert!(Arc::ptr_eq(&get(&r, "w-4").tags, &w4.tags));
}

#[test]
fn entries_from_an_origin_come_in_id_order_tombstones_among_the_live() {
    // Live entries and tombstones are held apart (tests/memory.rs); what is sent for an
    // origin is still one sequence by id, as before, and the bucket summaries count both.
    let mut r = Registry::default();
    for (n, name) in ["a", "d", "f"].iter().enumerate() {
        assert!(r.apply(live("web", name, v(1 + n as u64, 0, "o"))));
    }
    for (n, name) in ["b", "c", "e", "g"].iter().enumerate() {
        assert!(r.apply(tombstone(name, v(10 + n as u64, 0, "o"))));
    }
    assert!(r.apply(live("web", "h", v(20, 0, "other"))));
    let origin = NodeName::new("o").unwrap();
    let sent: Vec<(String, bool)> = r
        .entries_from(&origin, ALL_BUCKETS)
        .map(|e| (e.id.to_string(), e.instance.is_some()))
        .collect();
    let expected = [
        ("a", true),
        ("b", false),
        ("c", false),
        ("d", true),
        ("e", false),
        ("f", true),
        ("g", false),
    ]
    .map(|(id, live)| (id.to_string(), live));
    assert_eq!(sent, expected);
    let counted: u32 = r.bucket_digests(&origin).iter().map(|d| d.count).sum();
    assert_eq!((counted, r.len(), r.tombstones()), (7, 4, 4));
    assert_eq!(r.origin_digests().get(&origin).unwrap().count, 7);
}

/// What the data directory's log appends: every id whose record differs from a snapshot's,
/// including a record replaced under the same id (the live set orders and compares by id
/// alone, so its own diff would not see it), a deletion, a new id, and nothing else.
#[test]
fn changed_since_sees_replacements_deletions_and_additions_only() {
    let mut r = Registry::default();
    for k in 0..200 {
        r.apply(live("bulk", &format!("i-{k:03}"), v(1, 0, "a")));
    }
    r.apply(tombstone("t-old", v(1, 0, "a")));
    let before = r.clone();
    assert_eq!(
        r.changed_since(&before).count(),
        0,
        "a copy differs from nothing"
    );
    r.apply(live("bulk", "i-007", v(2, 0, "a")));
    r.apply(tombstone("i-100", v(2, 0, "a")));
    r.apply(live("bulk", "i-new", v(2, 0, "a")));
    r.apply(live("bulk", "i-150", v(0, 5, "a"))); // older: refused, no change
    let mut changed: Vec<&str> = r.changed_since(&before).map(InstanceId::as_str).collect();
    changed.sort_unstable();
    changed.dedup();
    assert_eq!(changed, ["i-007", "i-100", "i-new"]);
}

/// The kept bucket summaries against the scan they replace, after every kind of change: live
/// writes, overwrites by another origin, deletions, forgetting, tombstones collected. Each
/// origin climbs past [`BUCKETS_KEPT_MIN`], falls below half of it and climbs again, so the
/// summaries are built, updated, dropped and rebuilt; and a snapshot taken halfway keeps what
/// it saw.
#[test]
fn kept_bucket_summaries_match_a_scan_through_every_change() {
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let origins = ["o1", "o2", "o3"];
    let ids = 1_200;
    let mut r = Registry::default();
    let mut wall = 1;
    let (mut built, mut dropped) = (0, 0);
    let mut snapshot: Option<(Registry, Vec<[OriginDigest; BUCKETS]>)> = None;
    for step in 0..12_000u32 {
        // Three climbs and three falls: writes outnumber removals, then the other way round.
        let climbing = (step / 2_000) % 2 == 0;
        let roll = rng.next_u32() % 10;
        let k = rng.next_u32() % ids;
        let origin = origins[(rng.next_u32() % 3) as usize];
        let name = format!("i-{k}");
        wall += 1;
        let version = v(wall, 0, origin);
        let kept_before: Vec<bool> = origins
            .iter()
            .map(|o| r.keeps_buckets(&NodeName::new(o).unwrap()))
            .collect();
        match (climbing, roll) {
            (true, 0..=7) | (false, 0) => {
                r.apply(live("svc", &name, version));
            }
            (true, 8) | (false, 1..=2) => {
                r.apply(tombstone(&name, version));
            }
            (true, _) | (false, 3..=6) => {
                r.forget(&id(&name));
            }
            (false, _) => {
                r.collect_tombstones(wall, u64::from(rng.next_u32() % 500), step % 2 == 0);
            }
        }
        for (o, before) in origins.iter().zip(kept_before) {
            let o = NodeName::new(o).unwrap();
            let count = r.origin_digests().get(&o).map_or(0, |d| d.count);
            let kept = r.keeps_buckets(&o);
            if count >= BUCKETS_KEPT_MIN {
                assert!(kept, "{o} holds {count} entries and keeps no buckets");
            }
            if count < BUCKETS_KEPT_MIN / 2 {
                assert!(!kept, "{o} holds {count} entries and still keeps buckets");
            }
            built += usize::from(kept && !before);
            dropped += usize::from(!kept && before);
            if kept || step % 97 == 0 {
                assert_eq!(
                    r.bucket_digests(&o),
                    r.scan_bucket_digests(&o),
                    "step {step}: {o}'s buckets"
                );
            }
        }
        if step == 5_000 {
            let seen = origins
                .iter()
                .map(|o| r.bucket_digests(&NodeName::new(o).unwrap()))
                .collect();
            snapshot = Some((r.clone(), seen));
        }
    }
    assert!(
        built >= 6 && dropped >= 3,
        "built {built}, dropped {dropped}"
    );
    let (old, seen) = snapshot.unwrap();
    for (o, seen) in origins.iter().zip(seen) {
        let o = NodeName::new(o).unwrap();
        assert_eq!(old.bucket_digests(&o), seen);
        assert_eq!(old.bucket_digests(&o), old.scan_bucket_digests(&o));
    }
}

/// One pass for several origins gives what one pass an origin gives, in id order.
#[test]
fn entries_of_several_origins_are_each_origins_entries() {
    let mut r = Registry::default();
    for k in 0..300u64 {
        let origin = ["a", "b", "c"][(k % 3) as usize];
        let name = format!("i-{k:03}");
        if k % 7 == 0 {
            r.apply(tombstone(&name, v(k, 0, origin)));
        } else {
            r.apply(live("svc", &name, v(k, 0, origin)));
        }
    }
    let (a, b) = (NodeName::new("a").unwrap(), NodeName::new("b").unwrap());
    let masks = [(a.clone(), 0x0f0f_0f0f_0f0f_0f0f), (b.clone(), ALL_BUCKETS)];
    let wanted: BTreeMap<NodeName, BucketMask> = masks.iter().cloned().collect();
    let ids = |entries: Vec<Entry>| -> Vec<String> {
        entries.into_iter().map(|e| e.id.to_string()).collect()
    };
    let got = ids(r.entries_of(&wanted).collect());
    let mut expected = ids(r.entries_from(&a, masks[0].1).collect());
    expected.extend(ids(r.entries_from(&b, ALL_BUCKETS).collect()));
    expected.sort();
    assert_eq!(got, expected);
    assert!(got.len() > 100 && got.len() < 200, "{}", got.len());
}
