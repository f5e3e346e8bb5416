//! A runtime change of protocol timings (`Command::Configure`) is in force at once: the timers
//! armed with the old values are re-armed (issue 12, item 3).

use std::time::Duration;

use super::*;
use crate::config::schema::{find, Naming, Raw};
use crate::config::Tuning;

fn probe_interval(interval: Duration) -> Command {
    let field = find(Naming::File, "probe_interval").unwrap();
    let text = crate::duration::display(interval);
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
    let mut c = Cluster::new(2, config.clone(), 31);
    c.join_all();
    let long = Duration::from_secs(60);
    c.command(0, probe_interval(long)).unwrap();
    // The timer armed with the old interval fires, and arms the next one a minute away.
    c.run_for(config.probe_interval * 4);
    c.command(0, probe_interval(config.probe_interval)).unwrap();
    c.crash(1);
    let (_, max) = suspicion::bounds(config.suspicion_base, config.suspicion_max_mult, 2);
    let bound = config.probe_interval * 4 + max;
    assert!(bound < long / 2, "the bound tells the two intervals apart");
    let took = c.run_until_true(bound, |c| c.member_state(0, 1) == Some(State::Failed));
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
    let mut c = Cluster::new(2, config.clone(), 32);
    c.join_all();
    c.command(0, probe_interval(Duration::from_secs(60)))
        .unwrap();
    c.run_for(config.probe_interval * 4);
    c.command(0, probe_interval(config.probe_interval)).unwrap();
    let start = c.now;
    let periods = 20;
    c.run_for(config.probe_interval * periods);
    let pings = c
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
