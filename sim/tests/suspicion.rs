//! Suspicion (SWIM §4.2 with Lifeguard §4.2): buddy pings, refutation, incarnation-guarded
//! timers, the detection bound and confirmations, on the simulator's network.

mod support;

use std::time::Duration;

use hera::config::Config;
use hera::node::Event;
use hera::swim::State;
use hera::wire::{Claim, Incarnation, Message};
use hera_sim::observe::Sent;
use hera_sim::{node_name, World};
use support::{cluster, join_all, suspicion_window, us};

/// Cut n3 of 4 off until someone suspects it, then reconnect it and let it refute. Returns the
/// latest suspicion deadline any node had armed for it, in virtual time.
fn suspect_then_reconnect(w: &mut World) -> u64 {
    let config = w.config().clone();
    w.isolate(3);
    let bound = config.probe_interval * 8;
    let took = w.step_until(bound, |w| !w.suspected(3).is_empty());
    assert!(took.is_some(), "n3 was not suspected within {bound:?}");
    // The first suspecter's deadline is the unconfirmed (longest) one.
    let deadline = (0..3)
        .filter_map(|o| {
            let at = w.node(o)?.suspicion_deadline(&node_name(3))?;
            Some(w.virtual_time(o, at))
        })
        .max()
        .expect("a suspicion is armed");
    w.heal();
    deadline
}

/// Pings `from` sent to `to` in `[since, until)`, and whether each carried a suspicion of `to`.
fn pings_to(w: &World, from: u32, to: u32, since: u64, until: u64) -> Vec<bool> {
    w.sent_since(since)
        .filter(|s| s.at < until && s.from == from && s.to == w.addr(to))
        .map(Sent::messages)
        .filter(|m| {
            m.iter()
                .any(|m| matches!(m, Message::Ping(p) if p.target == node_name(to)))
        })
        .map(|m| {
            m.iter().any(|m| {
                matches!(m, Message::Member(u)
                    if u.name == node_name(to) && matches!(u.claim, Claim::Suspect { .. }))
            })
        })
        .collect()
}

/// Lifeguard's buddy system: while a node holds a member suspect, every ping it sends that
/// member carries the suspicion, so a live suspect learns of it from the first probe it gets.
#[test]
fn pings_to_a_suspect_carry_the_suspicion() {
    let mut config = Config::local();
    // A suspicion long enough for every prober's round-robin to come back to the suspect.
    config.suspicion_base = config.probe_interval * 16;
    let mut w = cluster(4, config.clone(), 5);
    join_all(&mut w);
    let start = w.now_us();
    w.isolate(3);
    let bound = config.probe_interval * 8;
    assert!(w
        .step_until(bound, |w| w.all_see(3, State::Suspect))
        .is_some());
    // Let every suspecter's round-robin come back to n3 at least once.
    w.run_for(config.probe_interval * 8);
    assert!(
        w.all_see(3, State::Suspect),
        "still suspected, not yet failed"
    );
    for o in 0..3 {
        let since = w
            .suspected(3)
            .iter()
            .find(|(_, i)| *i == o)
            .map(|(at, _)| *at)
            .unwrap();
        let before = pings_to(&w, o, 3, start, since);
        // Strictly after: a probe started in the same instant may precede the suspicion.
        let during = pings_to(&w, o, 3, since + 1, w.now_us());
        assert!(
            before.iter().all(|carried| !carried),
            "n{o} before suspecting"
        );
        assert!(!during.is_empty(), "n{o} never pinged the suspect");
        assert!(during.iter().all(|carried| *carried), "n{o}: {during:?}");
    }
}

/// SWIM §4.2: a suspect that is alive hears of its suspicion (from a probe or from gossip),
/// raises its incarnation, and everyone sees it alive at the new incarnation; nobody ever marks
/// it failed.
#[test]
fn suspected_member_refutes_with_a_higher_incarnation() {
    let config = Config::local();
    let mut w = cluster(4, config.clone(), 5);
    join_all(&mut w);
    let deadline = suspect_then_reconnect(&mut w);
    let healed = w.now_us();

    // Buddy pings and gossip both go to a suspect at once; one round trip should do.
    let bound = config.probe_interval * 2;
    let took = w.step_until(bound, |w| {
        let inc = w.node(3).unwrap().incarnation();
        inc != Incarnation::ZERO && (0..3).all(|o| w.member_incarnation(o, 3) == Some(inc))
    });
    assert!(took.is_some(), "no refutation within {bound:?}");
    assert!(w
        .events_since(healed)
        .any(|(_, i, e)| *i == 3 && matches!(e, Event::Refuted { .. })));

    // n3 itself suspected the others while cut off; they refute in turn once its probes or
    // anti-entropy tell them (a failure claim it made meanwhile is refuted the same way).
    let bound = config.probe_interval * 8 + config.sync_interval * 2;
    let took = w.step_until(bound, |w| w.all_alive(&[0, 1, 2, 3]));
    assert!(took.is_some(), "not all alive within {bound:?}");

    w.run_until(deadline + us(config.probe_interval));
    assert!(w.failed(3).is_empty(), "a live member was marked failed");
    assert!(w.all_see(3, State::Alive));
}

/// Timers guard an incarnation (STYLE habit 3): once a suspicion is refuted, its timer fires
/// at the original deadline and does nothing.
#[test]
fn refuted_suspicion_timer_does_nothing() {
    let config = Config::local();
    let mut w = cluster(4, config.clone(), 6);
    join_all(&mut w);
    let deadline = suspect_then_reconnect(&mut w);
    let bound = config.probe_interval * 2;
    let took = w.step_until(bound, |w| {
        // No observer holds any suspicion any more.
        (0..3).all(|o| {
            (0..4).all(|s| {
                w.node(o)
                    .unwrap()
                    .suspicion_deadline(&node_name(s))
                    .is_none()
            })
        })
    });
    assert!(took.is_some(), "suspicion not lifted within {bound:?}");
    assert!(w.now_us() < deadline, "refuted before the timer was due");

    w.run_until(deadline + 1_000);
    w.run_for(config.probe_interval * 4);
    assert!(w.all_see(3, State::Alive));
    assert!(w.failed(3).is_empty());
}

/// SWIM §4.2 with Lifeguard: a crashed member is detected by every other member within one
/// round-robin pass of probes plus the longest suspicion, and is never declared failed before
/// the shortest suspicion has run. Checked with the lan and local presets.
#[test]
fn crashed_member_is_failed_everywhere_within_the_bound() {
    for config in [Config::local(), Config::lan()] {
        let n = 5;
        let mut w = cluster(n, config.clone(), 7);
        join_all(&mut w);
        w.run_for(config.probe_interval);
        w.isolate(4);
        let (min, max) = suspicion_window(&config, n);
        // Each survivor probes every member once per pass of n - 1 periods (a pass boundary can
        // add up to one more pass in the worst case); one period for the probe itself; then the
        // unconfirmed suspicion, and a few gossip rounds to spread the verdict.
        let bound = config.probe_interval * (2 * n as u32) + max + config.gossip_interval * 3;
        let took = w.step_until(bound, |w| w.all_see(4, State::Failed));
        assert!(
            took.is_some(),
            "{config:?}: not failed everywhere within {bound:?}"
        );

        let first_suspicion = w.suspected(4).iter().map(|(at, _)| *at).min();
        let first_suspicion = first_suspicion.expect("failure goes through suspicion");
        for (at, i) in w.failed(4) {
            let after = Duration::from_micros(at - first_suspicion);
            assert!(
                after >= min,
                "n{i} failed n4 {after:?} after the first suspicion, under the {min:?} minimum"
            );
        }
    }
}

/// Lifeguard §4.2: independent confirmations shrink the suspicion timeout, so with 8 members
/// (enough confirmers) a dead member is declared failed nearer the minimum than the maximum.
/// Confirmers are picked at random, so the latency is averaged over a few seeds.
#[test]
fn confirmations_shrink_the_suspicion_timeout() {
    let config = Config::lan();
    let n = 8;
    let (min, max) = suspicion_window(&config, n);
    let runs = 4;
    let mut total = Duration::ZERO;
    for seed in 0..runs {
        let mut w = cluster(n, config.clone(), 80 + seed);
        join_all(&mut w);
        w.run_for(config.probe_interval);
        w.isolate(7);
        let bound = config.probe_interval * (2 * n as u32) + max + config.gossip_interval * 3;
        let took = w.step_until(bound, |w| w.all_see(7, State::Failed));
        assert!(took.is_some(), "not failed everywhere within {bound:?}");

        // The cluster's detection latency: from the first suspicion to the first failure (the
        // others then hear the verdict). Without confirmations it would be the maximum.
        let first_suspicion = w.suspected(7).iter().map(|(at, _)| *at).min().unwrap();
        let first_failure = w.failed(7).iter().map(|(at, _)| *at).min().unwrap();
        let took = Duration::from_micros(first_failure - first_suspicion);
        assert!(took >= min, "{took:?} under the minimum {min:?}");
        assert!(took < max, "{took:?}: no confirmation at all");
        total += took;
    }
    let mean = total / runs as u32;
    assert!(
        mean < (min + max) / 2,
        "mean {mean:?} is nearer the maximum {max:?} than the minimum {min:?}"
    );
}
