//! The probe loop (SWIM §3.1 and Lifeguard §4.1), on the simulator's network with a fixed
//! latency: direct probes, indirect probes through helpers, nacks, local health.

mod support;

use std::collections::BTreeMap;

use hera::config::Config;
use hera::node::Event;
use hera::swim::State;
use hera::wire::Message;
use hera_sim::network::LinkOverride;
use hera_sim::node_name;
use hera_sim::observe::Sent;
use support::{cluster, join_all, suspicion_window, us, LATENCY};

/// SWIM §3.1: once per protocol period a node pings a member and gets its ack; the round trip
/// is recorded; a healthy pair never suspects each other and Lifeguard's score stays 0.
#[test]
fn probe_cycle_pings_once_per_interval_and_records_rtt() {
    let config = Config::local();
    let mut w = cluster(2, config.clone(), 1);
    join_all(&mut w);
    w.run_for(config.probe_interval * 2);
    w.with_node(0, |n, _| n.stats_mut().take_rtt_samples());

    let start = w.now_us();
    let periods = 20;
    w.run_for(config.probe_interval * periods);

    let count = |from: u32, to: u32, want: fn(&Message) -> bool| {
        w.sent_since(start)
            .filter(|s| s.from == from && s.to == w.addr(to))
            .flat_map(Sent::messages)
            .filter(&want)
            .count() as u32
    };
    let pings = count(0, 1, |m| matches!(m, Message::Ping(_)));
    let acks = count(1, 0, |m| matches!(m, Message::Ack(_)));
    assert!(
        (periods - 1..=periods + 1).contains(&pings),
        "{pings} pings in {periods} periods"
    );
    assert!(
        acks + 1 >= pings && acks <= pings + 1,
        "{acks} acks for {pings} pings"
    );
    assert_eq!(count(0, 1, |m| matches!(m, Message::PingReq(_))), 0);

    let rtts = w.with_node(0, |n, _| n.stats_mut().take_rtt_samples());
    assert!(
        rtts.len() as u32 + 1 >= pings,
        "{} round trips recorded",
        rtts.len()
    );
    assert!(rtts.iter().all(|rtt| *rtt == LATENCY * 2), "{rtts:?}");

    assert!(
        w.events()
            .iter()
            .all(|(_, _, e)| !matches!(e, Event::MemberSuspected { .. })),
        "nobody is suspected in a healthy cluster"
    );
    assert_eq!(w.node(0).unwrap().health_score(), 0);
    assert_eq!(w.node(1).unwrap().health_score(), 0);
}

/// SWIM §3.1 indirect probes: when A cannot reach C directly but B can, A's ping-reqs make B
/// ping C and relay C's ack, so C is never suspected. Checked with one direction cut and with
/// both.
#[test]
fn indirect_probe_through_a_helper_keeps_the_target_alive() {
    let config = Config::local();
    for both_ways in [false, true] {
        let mut w = cluster(3, config.clone(), 2);
        join_all(&mut w);
        let start = w.now_us();
        w.net.set_link(0, 2, LinkOverride::Blocked);
        if both_ways {
            w.net.set_link(2, 0, LinkOverride::Blocked);
        }
        w.run_for(config.probe_interval * 20);

        let req_seqs: Vec<u32> = w
            .sent_since(start)
            .filter(|s| s.from == 0 && s.to == w.addr(1))
            .flat_map(Sent::messages)
            .filter_map(|m| match m {
                Message::PingReq(r) if r.target == node_name(2) => Some(r.seq),
                _ => None,
            })
            .collect();
        assert!(!req_seqs.is_empty(), "A never asked B to probe C");
        let relayed_acks = w
            .sent_since(start)
            .filter(|s| s.from == 1 && s.to == w.addr(0))
            .flat_map(Sent::messages)
            .filter(|m| matches!(m, Message::Ack(a) if req_seqs.contains(&a.seq)))
            .count();
        assert!(relayed_acks > 0, "B relayed none of C's acks to A");
        let relayed_pings = w
            .sent_since(start)
            .filter(|s| s.from == 1 && s.to == w.addr(2))
            .flat_map(Sent::messages)
            .filter(|m| matches!(m, Message::Ping(p) if p.target == node_name(2)))
            .count();
        assert!(
            relayed_pings >= req_seqs.len(),
            "B pings C for every ping-req"
        );

        assert!(
            w.suspected(2).is_empty(),
            "C suspected (both ways: {both_ways})"
        );
        assert!(w.all_alive(&[0, 1, 2]));
    }
}

/// Lifeguard §4.1, nacks: when the target is dead, A's helpers answer A's ping-reqs with nacks,
/// which prove A itself is well, so A's health score stays 0 however many probes fail.
#[test]
fn helpers_send_nacks_for_a_dead_target() {
    let config = Config::local();
    let mut w = cluster(4, config.clone(), 3);
    join_all(&mut w);
    let start = w.now_us();
    w.crash(3);
    let mut worst_score = 0;
    let bound = config.probe_interval * 8 + suspicion_window(&config, 4).1;
    let took = w.step_until(bound, |w| {
        worst_score = (0..3)
            .map(|i| w.node(i).unwrap().health_score())
            .fold(worst_score, u32::max);
        w.all_see(3, State::Failed)
    });
    assert!(took.is_some(), "the crash went unnoticed for {bound:?}");

    let nacks_to = |i: u32| {
        w.sent_since(start)
            .filter(|s| s.to == w.addr(i))
            .flat_map(Sent::messages)
            .filter(|m| matches!(m, Message::Nack(_)))
            .count()
    };
    let nacks: usize = (0..3).map(nacks_to).sum();
    let sent: u64 = (0..3).map(|i| w.node(i).unwrap().stats().nacks_sent).sum();
    assert!(nacks > 0, "no nacks came back");
    assert_eq!(nacks as u64, sent);
    assert_eq!(worst_score, 0, "nacks keep the probers' health at 0");
}

/// Lifeguard §4.1, local health: a node cut off from everyone gets neither acks nor nacks, so
/// its score rises and its probe timeouts (the wait before ping-reqs) stretch by `score + 1`.
#[test]
fn isolated_node_raises_its_health_score_and_slows_down() {
    let config = Config::local();
    let mut w = cluster(4, config.clone(), 4);
    join_all(&mut w);
    let start = w.now_us();
    w.isolate(0);
    w.run_for(suspicion_window(&config, 4).1);

    assert!(
        w.node(0).unwrap().health_score() > 0,
        "score stayed 0 while cut off"
    );
    // For each probe by n0: the time from its ping to its ping-reqs, in probe timeouts.
    let mut ping_at = BTreeMap::new();
    let mut waits = Vec::new();
    for s in w.sent_since(start).filter(|s| s.from == 0) {
        for m in s.messages() {
            match m {
                Message::Ping(p) => {
                    ping_at.insert(p.seq, s.at);
                }
                Message::PingReq(r) => {
                    if let Some(at) = ping_at.remove(&r.seq) {
                        waits.push(s.at - at);
                    }
                }
                _ => {}
            }
        }
    }
    let timeout = us(config.probe_timeout);
    assert!(waits.len() >= 2, "{waits:?}");
    assert_eq!(waits[0], timeout, "the first probe is not yet stretched");
    assert!(
        waits.iter().all(|w| w % timeout == 0),
        "waits are whole multiples of the probe timeout: {waits:?}"
    );
    assert!(
        waits.windows(2).all(|w| w[1] >= w[0]) && waits.last() > waits.first(),
        "waits grow while nothing answers: {waits:?}"
    );
}

/// ICMP can be forged. Reports that a live member's port is closed, read by every other
/// node every half millisecond (a round trip here is 1 ms) for 20 s, make probes of it ask
/// helpers at once and helpers nack at once; it may be suspected, refutes, and is never
/// declared failed.
#[test]
fn forged_port_unreachable_reports_fail_no_live_member() {
    let config = Config::lan();
    let n = 12;
    let mut w = cluster(n, config, 7);
    join_all(&mut w);
    let victim = 3;
    let start = w.now_us();
    for _ in 0..40_000 {
        for i in (0..n as u32).filter(|i| *i != victim) {
            w.forge_port_unreachable(i, victim);
        }
        w.run_for(LATENCY);
    }
    let cut: u64 = (0..n as u32)
        .filter_map(|i| w.node(i))
        .map(|node| node.stats().probes_cut_short)
        .sum();
    assert!(cut > 0, "the forged reports cut no probe short");
    for i in (0..n as u32).filter(|i| *i != victim) {
        let state = w
            .node(i)
            .and_then(|node| node.member(&node_name(victim)).map(|m| m.state));
        assert_eq!(state, Some(State::Alive), "n{i} sees the victim {state:?}");
    }
    let declared = w
        .events_since(start)
        .filter(|(_, _, e)| matches!(e, Event::MemberFailed { .. }))
        .count();
    assert_eq!(declared, 0, "a live member was declared failed");
}
