//! A runtime change of protocol timings (`Command::Configure`) is in force at once: the timers
//! armed with the old values are re-armed (issue 12, item 3).

mod support;

use std::time::Duration;

use hera::config::schema::{find, Naming, Raw};
use hera::config::{Config, Tuning};
use hera::swim::{suspicion, State};
use hera::wire::Message;
use hera::Command;
use support::{cluster, join_all};

fn probe_interval(interval: Duration) -> Command {
    let field = find(Naming::File, "probe_interval").unwrap();
    let text = hera::duration::display(interval);
    let mut tuning = Tuning::default();
    tuning.read(field, Naming::File, Raw::Text(&text)).unwrap();
    Command::Configure(tuning)
}

/// A probe interval set long and then back: the probe timer armed with the long interval is
/// pulled in when the short one returns, so a member that crashes afterwards is detected
/// within the short interval's bound, not the long one's.
#[test]
fn a_shorter_probe_interval_re_arms_the_probe_timer() {
    let config = Config::local();
    let mut w = cluster(2, config.clone(), 31);
    join_all(&mut w);
    let long = Duration::from_secs(60);
    w.command(0, probe_interval(long)).unwrap();
    // The timer armed with the old interval fires, and arms the next one a minute away.
    w.run_for(config.probe_interval * 4);
    w.command(0, probe_interval(config.probe_interval)).unwrap();
    w.crash(1);
    let (_, max) = suspicion::bounds(config.suspicion_base, config.suspicion_max_mult, 2);
    let bound = config.probe_interval * 4 + max;
    assert!(bound < long / 2, "the bound tells the two intervals apart");
    let took = w.step_until(bound, |w| w.member_state(0, 1) == Some(State::Failed));
    assert!(
        took.is_some(),
        "the crashed member was not failed within {bound:?}"
    );
}

/// Re-arming moves the probe timer; it does not start a second chain of probe ticks: after a
/// long interval and back, a node still sends one regular probe per interval.
#[test]
fn re_arming_keeps_one_probe_per_interval() {
    let config = Config::local();
    let mut w = cluster(2, config.clone(), 32);
    join_all(&mut w);
    w.command(0, probe_interval(Duration::from_secs(60)))
        .unwrap();
    w.run_for(config.probe_interval * 4);
    w.command(0, probe_interval(config.probe_interval)).unwrap();
    let start = w.now_us();
    let periods = 20;
    w.run_for(config.probe_interval * periods);
    let pings = w
        .sent_since(start)
        .filter(|s| s.from == 0)
        .flat_map(|s| s.messages())
        .filter(|m| matches!(m, Message::Ping(_)))
        .count();
    let periods = periods as usize;
    assert!(
        (periods - 1..=periods + 1).contains(&pings),
        "{pings} pings in {periods} probe periods"
    );
}
