//! Well-formed but hostile messages (issue 14): versions stamped in the far future, claims
//! that jump a member's incarnation, a second process under a live member's name.

mod support;

use std::time::Duration;

use hera::names::NodeName;
use hera::node::{Event, Lifecycle};
use hera::registry::{Entry, Health, Hlc, InstanceSpec, SpecCheck};
use hera::swim::members::INCARNATION_JUMP_MAX;
use hera::swim::State;
use hera::wire::{Claim, Incarnation, MemberUpdate, Message, Nack};
use hera::{Command, CommandError};
use hera_sim::{node_name as name, World};
use support::registry::{holds, id, spread};
use support::{join, suspicion_window};

/// The hostile tests' cluster: its own seed, the shared registry helpers.
fn cluster(n: usize) -> World {
    support::registry::cluster_seeded(n, 21)
}

fn spec(instance: &str) -> InstanceSpec {
    support::registry::spec("web", instance)
}

/// `entry` restamped `ahead` past the cluster's clock, as `writer` would.
fn stamped(mut entry: Entry, wall_ms: u64, counter: u32, writer: &NodeName) -> Entry {
    entry.version = Hlc {
        wall_ms,
        counter,
        node: writer.clone(),
    };
    entry
}

/// Finding 1: one tombstone at the largest version dragged every registry clock to its
/// maximum, after which every write got the same version and was dropped. Now it is refused
/// (not merged, not observed, not forwarded), counted, and nothing readers see changes.
#[test]
fn a_version_from_the_far_future_is_refused_and_writes_keep_landing() {
    let mut c = cluster(3);
    c.command(0, Command::Register(spec("web-1"))).unwrap();
    c.run_for(spread(&c));
    let live = c.node(1).unwrap().registry().entry(&id("web-1")).unwrap();
    let mut poison = stamped(live.clone(), u64::MAX, u32::MAX, &name(0));
    poison.instance = None;
    let version_before = c.node(1).unwrap().version();
    let clock_before = c.node(1).unwrap().registry().clock_high_water();
    c.deliver_now(2, 1, &[Message::Entry(poison)]);
    assert_eq!(c.node(1).unwrap().stats().clock_rejections, 1);
    assert_eq!(
        c.node(1).unwrap().version(),
        version_before,
        "a refusal republished"
    );
    assert_eq!(
        c.node(1).unwrap().registry().clock_high_water(),
        clock_before
    );
    assert!(holds(&c, 1, "web-1"), "the poisoned tombstone deleted it");
    assert!(c
        .events()
        .iter()
        .any(|(_, i, e)| *i == 1 && matches!(e, Event::ClockRejected { .. })));
    // Writes still win everywhere: a deregistration reaches every node.
    c.run_for(spread(&c));
    c.command(0, Command::Deregister { id: id("web-1") })
        .unwrap();
    let gone = c.step_until(spread(&c), |c| (0..3).all(|i| !holds(c, i, "web-1")));
    assert!(gone.is_some(), "a write after the poisoning was lost");
}

/// A day ahead is refused as well; within `max_clock_offset` is an honest clock and merges.
#[test]
fn only_versions_further_ahead_than_the_offset_are_refused() {
    let mut c = cluster(2);
    c.command(0, Command::Register(spec("web-1"))).unwrap();
    c.run_for(spread(&c));
    let live = c.node(1).unwrap().registry().entry(&id("web-1")).unwrap();
    let now_ms = c.local_now(0).as_millis();
    let offset_ms = c.config().max_clock_offset.as_millis() as u64;
    let day_ahead = stamped(live.clone(), now_ms + 86_400_000, 0, &name(0));
    c.deliver_now(0, 1, &[Message::Entry(day_ahead)]);
    assert_eq!(c.node(1).unwrap().stats().clock_rejections, 1);
    let near = stamped(live, now_ms + offset_ms - 1, 0, &name(0));
    c.deliver_now(0, 1, &[Message::Entry(near.clone())]);
    assert_eq!(c.node(1).unwrap().stats().clock_rejections, 1);
    assert_eq!(
        c.node(1)
            .unwrap()
            .registry()
            .stored(&id("web-1"))
            .unwrap()
            .version,
        near.version
    );
}

/// The offset is measured against the wall clock the shell last read, not against `now`
/// (monotonic since start): a wall clock stepped ahead makes the same version acceptable.
#[test]
fn the_offset_follows_the_wall_clock_the_shell_reads() {
    let mut c = cluster(2);
    c.command(0, Command::Register(spec("web-1"))).unwrap();
    c.run_for(spread(&c));
    let live = c.node(1).unwrap().registry().entry(&id("web-1")).unwrap();
    let now = c.local_now(1);
    let ahead = stamped(live, now.as_millis() + 60_000, 0, &name(0));
    c.deliver_now(0, 1, &[Message::Entry(ahead.clone())]);
    assert_eq!(c.node(1).unwrap().stats().clock_rejections, 1);
    // NTP stepped the wall clock a minute forward.
    c.with_node(1, |n, now| {
        n.set_wall_clock(now, now + Duration::from_secs(60))
    });
    c.deliver_now(0, 1, &[Message::Entry(ahead.clone())]);
    assert_eq!(c.node(1).unwrap().stats().clock_rejections, 1);
    assert_eq!(
        c.node(1)
            .unwrap()
            .registry()
            .stored(&id("web-1"))
            .unwrap()
            .version,
        ahead.version
    );
    // And its own writes follow the wall clock.
    c.command(1, Command::Register(spec("web-2"))).unwrap();
    let mine = c.node(1).unwrap().registry().stored(&id("web-2")).unwrap();
    assert!(mine.version.wall_ms >= now.as_millis() + 60_000);
}

/// Finding 1, second half: a restarted owner took its previous boot's entries for zombies
/// (ones it had deleted) when their wall time was past its start, as after the cluster's
/// clocks ran ahead, and deleted them cluster-wide. The rule now goes by this boot's first
/// version: an entry the previous boot wrote is adopted again.
#[test]
fn a_restarted_owner_adopts_its_entries_stamped_after_its_start() {
    let mut c = cluster(3);
    c.run_for(Duration::from_secs(1));
    c.crash(0);
    c.start(0);
    // What the previous boot wrote, stamped a little ahead of this boot's start (within the
    // offset: clocks a few seconds apart).
    let mut spec = spec("web-9");
    spec.liveness = Some(Duration::from_secs(30));
    let instance = spec
        .into_instance(id("web-9"), name(0), c.local_now(0).as_millis())
        .unwrap();
    let entry = Entry {
        id: id("web-9"),
        version: Hlc {
            wall_ms: c.local_now(0).as_millis() + 2_000,
            counter: 0,
            node: name(0),
        },
        instance: Some(Box::new(instance)),
    };
    c.deliver_now(1, 0, &[Message::Entry(entry)]);
    assert_eq!(c.node(0).unwrap().stats().zombies_deleted, 0);
    assert!(
        holds(&c, 0, "web-9"),
        "its own entry was deleted as a zombie"
    );
}

/// A node restarted without its data_dir gets its instances back from its peers. Those it
/// wrote itself before this boot are taken back for their deadlines: a TTL nobody passes
/// lapses again (it read passing for ever when nothing enforced it), while an HTTP check
/// that came back by gossip is still never fetched: it keeps its status until re-registered.
#[test]
fn a_restarted_owner_without_its_data_dir_enforces_its_forgotten_ttls_again() {
    let mut c = cluster(3);
    c.run_for(Duration::from_secs(1));
    c.crash(0);
    c.start(0);
    let seeds = vec![c.addr(1)];
    c.command(0, Command::Join { seeds }).unwrap();
    c.run_for(Duration::from_secs(1));
    let before = c.local_now(0).as_millis().saturating_sub(60_000);
    let forgotten = |instance: &str, check: SpecCheck| {
        let mut s = spec(instance);
        s.check = check;
        let mut instance = s.into_instance(id(instance), name(0), before).unwrap();
        // As it was after its client's last pass.
        instance.health = Health::Passing;
        Message::Entry(Entry {
            id: instance.id.clone(),
            version: Hlc {
                wall_ms: before,
                counter: 0,
                node: name(0),
            },
            instance: Some(Box::new(instance)),
        })
    };
    let ttl = SpecCheck::Ttl {
        ttl: Duration::from_secs(2),
    };
    let http = SpecCheck::Http {
        url: "http://127.0.0.1:9/health".into(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
    };
    c.deliver_now(
        1,
        0,
        &[forgotten("web-ttl", ttl), forgotten("web-http", http)],
    );
    let health = |c: &World, i: u32, instance: &str| {
        c.node(i)
            .unwrap()
            .registry()
            .get(&id(instance))
            .map(|x| x.health)
    };
    assert_eq!(health(&c, 0, "web-ttl"), Some(Health::Passing));
    let http_health = health(&c, 0, "web-http");
    assert!(http_health.is_some());
    let lapsed = c.step_until(Duration::from_secs(10), |c| {
        (0..3).all(|i| health(c, i, "web-ttl") == Some(Health::Critical))
    });
    assert!(
        lapsed.is_some(),
        "the forgotten TTL was never enforced again"
    );
    assert_eq!(
        c.node(0).unwrap().stats().checks_started,
        0,
        "a gossiped URL was fetched"
    );
    assert_eq!(
        health(&c, 0, "web-http"),
        http_health,
        "no check ran, nothing changed"
    );
}

fn claim_about(c: &World, subject: u32, incarnation: u32, claim: Claim) -> Message {
    let observer = if subject == 0 { 1 } else { 0 };
    let profile = c
        .node(observer)
        .unwrap()
        .member_profile(&name(subject))
        .unwrap();
    Message::Member(MemberUpdate {
        name: name(subject),
        incarnation: Incarnation::new(incarnation),
        claim,
        profile,
    })
}

/// Finding 2: `left` at incarnation u32::MAX about a live member was believed everywhere, and
/// the member could not refute (refutation saturated at the maximum): its registrations
/// stopped reaching its peers. In serial order the maximum is older than the member's small
/// incarnation, so the claim changes nothing, on the others and on the member itself.
#[test]
fn left_at_the_largest_incarnation_does_not_lock_a_member_out() {
    let mut c = cluster(3);
    let forged = claim_about(&c, 1, u32::MAX, Claim::Left);
    for i in 0..3 {
        c.deliver_now(2, i, std::slice::from_ref(&forged));
    }
    c.run_for(c.config().probe_interval * 4);
    assert!(c.all_alive(&[0, 1, 2]), "the forged leave stuck");
    assert!(
        c.node(1).unwrap().incarnation().get() < 16,
        "{}",
        c.node(1).unwrap().incarnation()
    );
    c.command(1, Command::Register(spec("web-1"))).unwrap();
    let seen = c.step_until(spread(&c), |c| (0..3).all(|i| holds(c, i, "web-1")));
    assert!(seen.is_some(), "the member's registration no longer spread");
}

/// A third-party claim that moves a member's incarnation further than the member itself
/// could have (2^16 refutations) is refused and counted, by the others and by the member.
#[test]
fn a_claim_jumping_an_incarnation_implausibly_is_refused_and_counted() {
    let mut c = cluster(3);
    let known = c.member_incarnation(0, 1).unwrap().get();
    let jump = known + INCARNATION_JUMP_MAX + 1;
    let forged = claim_about(&c, 1, jump, Claim::Failed { by: name(2) });
    for i in 0..3 {
        c.deliver_now(2, i, std::slice::from_ref(&forged));
    }
    assert_eq!(c.node(0).unwrap().stats().implausible_claims, 1);
    assert_eq!(c.node(1).unwrap().stats().implausible_claims, 1);
    assert_eq!(
        c.node(1).unwrap().stats().refutations,
        0,
        "the member moved to the forgery"
    );
    assert!(c.events().iter().any(|(_, i, e)| *i == 0
        && matches!(e, Event::ImplausibleClaim { known: k, claimed, .. } if k.get() == known && claimed.get() == jump)));
    c.run_for(c.config().probe_interval * 4);
    assert!(c.all_alive(&[0, 1, 2]));
    assert_eq!(c.member_incarnation(0, 1), Some(Incarnation::new(known)));
    // A claim within reach still counts: the member refutes it as ever.
    let near = claim_about(&c, 1, known + 3, Claim::Suspect { by: name(2) });
    c.deliver_now(2, 0, &[near]);
    let refuted = c.step_until(c.config().probe_interval * 4, |c| {
        c.node(1).unwrap().incarnation().get() == known + 4
            && c.member_incarnation(0, 1) == Some(Incarnation::new(known + 4))
    });
    assert!(refuted.is_some(), "a plausible suspicion was not refuted");
}

/// Finding 5: a second process under a live member's name joined, was refused by
/// membership, and kept running. Now the seed's table tells it the name is held at another
/// address: it reports who holds it and stops, before anything of the holder's is touched.
#[test]
fn a_twin_refuses_to_join_and_names_the_holder() {
    let mut c = cluster(3);
    c.command(1, Command::Register(spec("web-1"))).unwrap();
    c.run_for(spread(&c));
    let start = c.now_us();
    let twin = c.add_twin(1);
    assert_eq!(twin, 3);
    c.start(twin);
    // The twin registers before its join completes: its own first version (its epoch) is
    // now older than anything the holder writes next.
    c.command(3, Command::Register(spec("web-twin"))).unwrap();
    join(&mut c, 3);
    c.run_for(c.config().probe_interval * 2);
    let taken: Vec<_> = c
        .events_since(start)
        .filter(|(_, i, e)| *i == 3 && matches!(e, Event::NameTaken { .. }))
        .map(|(_, _, e)| e.clone())
        .collect();
    assert_eq!(taken, vec![Event::NameTaken { holder: c.addr(1) }]);
    assert_eq!(c.node(3).unwrap().lifecycle(), Lifecycle::Stopped);
    assert_eq!(c.node(3).unwrap().name_taken_by(), Some(c.addr(1)));
    assert!(!c
        .events_since(start)
        .any(|(_, i, e)| *i == 3 && matches!(e, Event::Joined { .. })));
    // The holder is untouched: alive everywhere at its own address, its entry kept.
    c.command(1, Command::Register(spec("web-2"))).unwrap();
    c.run_for(c.config().sync_interval * 2);
    for o in [0, 2] {
        let m = c.node(o).unwrap().member(&name(1)).unwrap();
        assert_eq!((m.state, m.addr()), (State::Alive, c.addr(1)));
        assert!(
            holds(&c, o, "web-1") && holds(&c, o, "web-2"),
            "seen by n{o}"
        );
    }
    assert_eq!(c.node(1).unwrap().stats().zombies_deleted, 0);
}

/// Finding 9: a nack was not tied to the helper that sent it, so duplicated (or forged)
/// nacks ended a probe before the helpers asked had answered. Now only a helper we asked
/// counts, once.
#[test]
fn nacks_count_only_from_the_helpers_asked() {
    let mut c = cluster(4);
    c.isolate(1);
    let since = c.now_us();
    let asked = c.step_until(c.config().probe_interval * 8, |c| {
        c.sent_since(since).any(|s| {
            s.from == 0
                && s.messages()
                    .iter()
                    .any(|m| matches!(m, Message::PingReq(r) if r.target == name(1)))
        })
    });
    assert!(asked.is_some(), "n0 never asked helpers about n1");
    let seq = c
        .sent_since(since)
        .filter(|s| s.from == 0)
        .flat_map(|s| s.messages())
        .find_map(|m| match m {
            Message::PingReq(r) if r.target == name(1) => Some(r.seq),
            _ => None,
        })
        .unwrap();
    let failed_before = c.node(0).unwrap().stats().probes_failed;
    let nack = Message::Nack(Nack { seq });
    let stranger = c.add_node();
    for _ in 0..c.config().indirect_checks {
        c.deliver_now(stranger, 0, std::slice::from_ref(&nack));
    }
    assert_eq!(
        c.node(0).unwrap().stats().probes_failed,
        failed_before,
        "nacks from a stranger ended the probe"
    );
}

/// Finding 9: force-leave from a node with a stale view (cut off: it holds everyone else
/// failed) evicted live members, which then had to refute. Without a majority it is refused
/// and says why; with one, a failed member is forced out as before.
#[test]
fn force_leave_without_a_majority_is_refused() {
    let mut c = cluster(3);
    c.isolate(0);
    let (_, max) = suspicion_window(c.config(), 3);
    let cut = c.step_until(c.config().probe_interval * 20 + max * 3, |c| {
        c.member_state(0, 1) == Some(State::Failed) && c.member_state(0, 2) == Some(State::Failed)
    });
    assert!(cut.is_some(), "the cut-off node never failed the others");
    let refused = c.command(0, Command::ForceLeave { name: name(1) });
    assert_eq!(
        refused.err(),
        Some(CommandError::NoQuorum {
            reachable: 1,
            known: 3
        })
    );
    assert_eq!(c.member_state(0, 1), Some(State::Failed));
    // The majority side holds n0 failed and sees a majority: it may force it out.
    let failed = c.step_until(max * 3, |c| c.member_state(1, 0) == Some(State::Failed));
    assert!(failed.is_some());
    assert_eq!(
        c.command(1, Command::ForceLeave { name: name(0) })
            .map(|_| ()),
        Ok(())
    );
    assert_eq!(c.member_state(1, 0), Some(State::Left));
}

/// Finding 5, the part refusal at join cannot reach: a second process under a live member's
/// name that never met a seed holding it (both started cut off from each other, or it was
/// never told to join) writes under that name, and its entries reach the holder. They were
/// taken for the holder's own deleted entries (same owner name, versions past its epoch) and
/// deleted cluster-wide: a client's acknowledged registration lost. Each boot now marks what
/// it owns, so the holder leaves another boot's entries alone and counts them.
#[test]
fn a_running_twins_entries_are_not_deleted_as_the_holders_zombies() {
    let mut c = cluster(3);
    c.command(1, Command::Register(spec("web-1"))).unwrap();
    c.run_for(spread(&c));
    // The twin runs on its own: never joined, it registers a client's instance.
    let twin = c.add_twin(1);
    assert_eq!(twin, 3);
    c.start(twin);
    c.run_for(Duration::from_secs(1));
    c.command(3, Command::Register(spec("web-twin"))).unwrap();
    let written = c
        .node(3)
        .unwrap()
        .registry()
        .entry(&id("web-twin"))
        .unwrap();
    // Its entry reaches the cluster (a heal, a relay: any path will do).
    c.deliver_now(3, 0, &[Message::Entry(written)]);
    c.run_for(spread(&c));
    assert_eq!(c.node(1).unwrap().stats().zombies_deleted, 0);
    assert!(c.node(1).unwrap().stats().twin_entries >= 1, "not counted");
    for o in 0..3 {
        assert!(
            holds(&c, o, "web-twin"),
            "deleted as a zombie, seen by n{o}"
        );
        assert!(
            holds(&c, o, "web-1"),
            "the holder's own entry lost, seen by n{o}"
        );
    }
    // The holder's own deletions still win over its own stale copies.
    c.command(1, Command::Deregister { id: id("web-1") })
        .unwrap();
    let gone = c.step_until(spread(&c), |c| (0..3).all(|i| !holds(c, i, "web-1")));
    assert!(gone.is_some());
}
