//! The CI suite: each scenario with a fixed seed, plus determinism.
//!
//! A failure prints the report, which names the seed and the command that replays the run.
//! Sizes and durations are chosen so the whole suite takes a few minutes on two cores.

use std::time::Duration;

use bytes::Bytes;
use hera::config::Preset;
use hera::registry::Entry;
use hera::wire::{encode_message, DatagramBuilder, Message};
use hera_sim::check::{no_resurrections, registry_agrees, registry_matches_writes};
use hera_sim::scenario::{self, Ctx, Outcome, Params};

fn run(p: Params) -> Outcome {
    let outcome = scenario::run(p).expect("a known scenario");
    assert!(outcome.passed(), "\n{}\n", outcome.report.render());
    outcome
}

fn params(scenario: &str, nodes: usize, seed: u64) -> Params {
    Params::new(scenario, nodes, seed)
}

#[test]
fn same_seed_same_run_bit_for_bit() {
    let mut p = params("swarm", 24, 11);
    p.loss = Some(0.05);
    p.duration = Some(Duration::from_secs(60));
    let a = scenario::run(p.clone()).unwrap();
    let b = scenario::run(p.clone()).unwrap();
    assert_eq!(a.report.trace_hash, b.report.trace_hash);
    assert_eq!(a.report.traffic.net, b.report.traffic.net);
    assert_eq!(a.world.inputs, b.world.inputs);
    p.seed = 12;
    let c = scenario::run(p).unwrap();
    assert_ne!(a.report.trace_hash, c.report.trace_hash);
}

#[test]
fn crashes_are_detected_everywhere() {
    let o = run(params("crash", 200, 1));
    let d = o.report.detection.expect("detection figures");
    assert_eq!(d.all_failed.count, 2);
}

/// Issue 14, item 4: after churn, anti-entropy goes back to the idle baseline.
#[test]
fn bulk_sync_settles_after_churn() {
    let o = run(params("settle", 40, 1));
    println!("{}", o.report.render());
}

#[test]
fn partition_heals() {
    run(params("partition", 40, 1));
}

#[test]
fn asymmetric_partition_heals() {
    run(params("asymmetric", 40, 1));
}

#[test]
fn isolated_node_comes_back() {
    run(params("isolate", 30, 1));
}

#[test]
fn paused_node_refutes_when_it_wakes() {
    run(params("pause", 30, 1));
}

/// A node whose links lose half their datagrams both ways is suspected again and again, and
/// refutes every time: no one declares it failed (the suspicion sweep's `flaky`,
/// docs/scale.md).
#[test]
fn flaky_node_is_suspected_never_failed() {
    let mut p = params("flaky", 32, 1);
    p.duration = Some(Duration::from_secs(60));
    let o = run(p);
    let f = o.report.flaky.expect("the flaky node's figures");
    assert!(f.suspected > 0, "\n{}\n", o.report.render());
    assert_eq!(f.failed, 0);
}

#[test]
fn churn_converges() {
    run(params("churn", 40, 1));
}

/// At 128 and 256 nodes a member restarted without its data, after a graceful leave, stayed
/// `left` in every table but its own (2 of 20 restarts at 128, seed 1): nothing told it of the
/// verdict it had to outbid.
#[test]
fn churn_converges_at_128_and_256_nodes() {
    run(params("churn", 128, 1));
    run(params("churn", 256, 1));
}

#[test]
fn ten_percent_loss_no_false_failure() {
    let mut p = params("loss", 100, 1);
    p.loss = Some(0.10);
    p.duration = Some(Duration::from_secs(90));
    run(p);
}

#[test]
fn twenty_five_percent_loss_no_false_failure() {
    let mut p = params("loss", 100, 1);
    p.loss = Some(0.25);
    p.duration = Some(Duration::from_secs(60));
    run(p);
}

/// A small cluster at 10% loss: a node that only heard of a suspicion, and missed the
/// refutation, must verify with probes of its own before it declares a failure (this seed
/// once produced `n28 declared n29 failed at 57.397s`).
#[test]
fn ten_percent_loss_small_cluster() {
    let mut p = params("loss", 32, 1);
    p.loss = Some(0.10);
    run(p);
}

#[test]
fn thousand_nodes_join() {
    let o = run(params("join", 1_000, 1));
    let j = o.report.join.expect("join figures");
    assert_eq!(j.reached, j.population);
}

#[test]
fn swarm_seeds() {
    for seed in 1..=8 {
        let mut p = params("swarm", 0, seed);
        p.duration = Some(Duration::from_secs(90));
        run(p);
    }
}

#[test]
fn registry_writes_reach_every_node() {
    let o = run(params("registry", 40, 1));
    let r = o.report.write_reach.expect("write reach figures");
    assert!(r.writes > 100, "{} timed writes", r.writes);
    assert_eq!(r.population, 39);
    assert!(r.to_all.p99_s.is_some());
}

#[test]
fn registry_under_ten_percent_loss() {
    let o = run(params("registry-loss", 40, 1));
    assert!(o.report.traffic.net.lost > 0);
}

#[test]
fn registry_partition_last_writer_wins() {
    run(params("registry-partition", 30, 1));
}

#[test]
fn registry_deletion_wins_after_partition() {
    run(params("registry-delete", 30, 1));
}

#[test]
fn crashed_owners_entries_vanish_everywhere() {
    let o = run(params("owner-crash", 40, 1));
    let gone = o.report.owner_entries_gone.expect("purge figures");
    assert_eq!(gone.count, 4);
}

/// `registry-churn` small: 10 nodes × 500 instances in bulk, then 30 s of writes, three
/// crashes (two restarting with `Command::Restore`) and a late joiner. It asserts within the
/// scenario that every live node converges on the newest writes, that the owner that stayed
/// down is gone everywhere within the purge bound, and that nothing was resurrected.
#[test]
fn registry_churn_converges_with_restored_owners_and_a_late_joiner() {
    let mut p = params("registry-churn", 10, 1);
    p.per_node = Some(500);
    p.duration = Some(Duration::from_secs(30));
    let o = run(p);
    let c = o.report.churn.expect("churn figures");
    assert_eq!(c.instances, 5_000);
    assert!(c.churn_writes >= 300, "{} churn writes", c.churn_writes);
    assert!(c.crashed_owner_gone_s.is_some() && c.purged_owner_gone_s.is_some());
    assert!(
        c.late_join_holds_all_s.is_some(),
        "the late joiner never held all"
    );
    // Every node holds the bulk registrations less the deletions, plus what the churn added.
    assert!(
        c.entries_per_node > 4_000,
        "{} entries per node",
        c.entries_per_node
    );
    assert!(c.queues_empty_s.is_some(), "gossip queues never emptied");
}

/// One entry in one datagram, as a peer would send it.
fn datagram(entry: Entry) -> Bytes {
    let mut d = DatagramBuilder::new(1_400);
    assert!(d.try_push(&encode_message(&Message::Entry(entry))));
    Bytes::from(d.finish())
}

/// The registry checkers can fail: a write cut off by a partition shows as disagreement, and a
/// forged newer version of a deleted entry shows as a resurrection (a replayed older one must
/// not bring it back; the owner deletes the forged one again).
#[test]
fn registry_checkers_catch_splits_and_resurrections() {
    let mut ctx = Ctx::new(params("registry", 8, 1));
    let fail = |e: String| -> ! { panic!("seed 1: {e}") };
    ctx.bootstrap().unwrap_or_else(|e| fail(e));
    let id = ctx
        .register(1, "api", "x", 80, true)
        .unwrap_or_else(|e| fail(e));
    let bound = ctx.registry_bound();
    ctx.settle_registry("after a write", bound)
        .unwrap_or_else(|e| fail(e));
    ctx.world.partition(&[&[1, 2, 3]]);
    ctx.register(1, "api", "y", 80, true)
        .unwrap_or_else(|e| fail(e));
    ctx.world.run_for(Duration::from_secs(1));
    assert!(registry_agrees(&ctx.world).is_err());
    assert!(registry_matches_writes(&ctx.world).is_err());
    ctx.world.heal();
    ctx.settle_registry("after the heal", bound)
        .unwrap_or_else(|e| fail(e));
    let old = ctx.world.node(2).and_then(|n| n.registry().entry(&id));
    let old = old.expect("n2 holds the entry");
    ctx.deregister(1, &id).unwrap_or_else(|e| fail(e));
    ctx.settle_registry("after the deletion", bound)
        .unwrap_or_else(|e| fail(e));
    ctx.world.inject(1, 2, datagram(old.clone()));
    ctx.world.run_for(Duration::from_secs(1));
    no_resurrections(&ctx.world).unwrap_or_else(|e| fail(e));
    registry_matches_writes(&ctx.world).unwrap_or_else(|e| fail(e));
    // Just newer than the tombstone, so ahead of the wall clock by less than
    // `max_clock_offset`: further ahead, it is refused on arrival
    // (`hera_registry_clock_rejections_total`) and nothing resurrects.
    let tombstone = ctx.world.node(2).and_then(|n| n.registry().entry(&id));
    let mut forged = old;
    forged.version = tombstone.expect("n2 holds the tombstone").version;
    forged.version.wall_ms += 1;
    ctx.world.inject(1, 2, datagram(forged));
    ctx.world.run_for(Duration::from_secs(1));
    assert!(no_resurrections(&ctx.world).is_err());
    // The owner, n1, has the last word: it deletes the forged entry again, newer still.
    ctx.settle_registry("after the forged entry", bound)
        .unwrap_or_else(|e| fail(e));
    assert_eq!(
        ctx.world.node(1).map(|n| n.stats().zombies_deleted),
        Some(1)
    );
}

/// Finding 5: a partition longer than `tombstone_grace` (60 s on the local preset), so both
/// sides have collected the tombstones of the deletions made during it by the heal. The
/// scenario deletes entries the other side updated meanwhile (their owner is over there and
/// never saw the deletion); this test adds an owner deleting its own instance and a node
/// deleting one owned across the partition. None may come back, not even for a moment on a
/// node that had collected its tombstone; and a grace after the heal the graves are gone.
#[test]
fn deletions_outlive_a_partition_longer_than_the_grace() {
    let mut p = params("registry-delete", 20, 1);
    p.preset = Preset::Local;
    p.duration = Some(Duration::from_secs(90));
    run(p.clone());

    p.scenario = "registry".into();
    let mut ctx = Ctx::new(p);
    let fail = |e: String| -> ! { panic!("seed 1: {e}") };
    ctx.bootstrap().unwrap_or_else(|e| fail(e));
    // Ids node by node: node i registered ids[2i] and ids[2i + 1].
    let ids = ctx.register_everywhere(2).unwrap_or_else(|e| fail(e));
    let bound = ctx.registry_bound();
    ctx.settle_registry("before the partition", bound)
        .unwrap_or_else(|e| fail(e));
    let a: Vec<u32> = (0..10).collect();
    ctx.world.partition(&[&a]);
    ctx.world.run_for(Duration::from_secs(2));
    // n3 deletes its own instance; n4 deletes one that n15, across the partition, owns.
    let (own, across) = (ids[6].clone(), ids[30].clone());
    ctx.deregister(3, &own).unwrap_or_else(|e| fail(e));
    ctx.deregister(4, &across).unwrap_or_else(|e| fail(e));
    ctx.world.run_for(Duration::from_secs(90));
    // The fault took effect: side a collected the tombstones (keeping graves), side b still
    // holds both entries alive.
    let grace = ctx.world.config().tombstone_grace;
    assert!(grace < Duration::from_secs(90), "grace {grace:?}");
    for i in 0..20 {
        let r = ctx.world.node(i).expect("every node is up").registry();
        for id in [&own, &across] {
            match i < 10 {
                true => assert!(r.stored(id).is_none() && r.grave(id).is_some(), "n{i} {id}"),
                false => assert!(r.get(id).is_some(), "n{i} {id}"),
            }
        }
    }
    ctx.world.heal();
    ctx.settle("after the heal", ctx.converge_bound())
        .unwrap_or_else(|e| fail(e));
    ctx.settle_registry("after the heal", bound)
        .unwrap_or_else(|e| fail(e));
    no_resurrections(&ctx.world).unwrap_or_else(|e| fail(e));
    let refused: u64 = (0..20)
        .filter_map(|i| ctx.world.node(i))
        .map(|n| n.stats().zombies_refused)
        .sum();
    assert!(refused > 0, "no old version was refused");
    // Memory stays bounded: a grace after the heal, no node keeps a grave.
    ctx.world.run_for(grace + Duration::from_secs(1));
    for i in 0..20 {
        let r = ctx.world.node(i).expect("every node is up").registry();
        assert_eq!((r.graves(), r.tombstones()), (0, 0), "n{i}");
    }
    registry_matches_writes(&ctx.world).unwrap_or_else(|e| fail(e));
    no_resurrections(&ctx.world).unwrap_or_else(|e| fail(e));
}

/// The partition scenarios over a few more seeds, sizes (odd and even) and 5% loss.
#[test]
fn registry_partitions_across_seeds() {
    for seed in 2..=4 {
        for scenario in ["registry-partition", "registry-delete", "owner-crash"] {
            let mut p = params(scenario, 17 + seed as usize, seed);
            p.loss = Some(0.05);
            run(p);
        }
    }
}

#[test]
fn registry_runs_are_deterministic() {
    let mut p = params("registry-partition", 20, 5);
    p.loss = Some(0.05);
    let a = run(p.clone());
    let b = run(p);
    assert_eq!(a.report.trace_hash, b.report.trace_hash);
    assert_eq!(
        a.report.counts.registry_writes,
        b.report.counts.registry_writes
    );
    assert!(a.report.counts.registry_writes > 40);
}

/// Issue 14, finding 1: a tombstone at the largest version and an entry a day ahead, sent to
/// every node, are refused and counted; every later write still lands everywhere.
#[test]
fn hostile_clock_poisoning_is_refused() {
    let o = run(params("hostile-clock", 20, 1));
    println!("{}", o.report.render());
}

/// Issue 14, finding 2: forged `left` at `u32::MAX` and implausible jumps leave the member
/// alive everywhere and its writes spreading.
#[test]
fn hostile_incarnation_jumps_lock_no_one_out() {
    let o = run(params("hostile-incarnation", 20, 1));
    println!("{}", o.report.render());
}

/// Issue 14, finding 5: a twin stops at join; the holder keeps everything.
#[test]
fn hostile_twin_stops_and_the_holder_keeps_its_entries() {
    let o = run(params("hostile-twin", 20, 1));
    println!("{}", o.report.render());
}

/// Issue 14, findings 3 and 7: a stranger's flood amplifies nothing and starves no probe.
#[test]
fn hostile_flood_amplifies_nothing_and_starves_no_probe() {
    let o = run(params("hostile-flood", 20, 1));
    println!("{}", o.report.render());
}

/// Issue 17: three data centres of 10 nodes, 80 ms apart with 1% loss, one cut off for a
/// minute. Detection inside each data centre, no false failure inside one, self-preservation
/// on the cut-off side, agreement after the heal (the full run: 3 × 100, 10 minutes).
#[test]
fn three_data_centres_cut_and_heal() {
    let mut p = params("dc3", 30, 1);
    p.duration = Some(Duration::from_secs(60));
    let o = run(p);
    let d = o.report.dc3.as_ref().expect("dc3 figures");
    println!("{}", o.report.render());
    // Traffic crossed data centres, and the cut-off side kept the others' entries.
    assert!(d.idle.cross_dc_share > 0.3, "{:?}", d.idle);
    assert!(d.cut.majority_purged_s.is_some() && d.cut.minority_lost_quorum_s.is_some());
    assert_eq!(d.write_to_all.count, d.write_to_every_dc.count);
    assert!(d.write_to_every_dc.count >= 20);
    assert_eq!(d.detection_in_dc.count, 3);
    assert!(d.cut.minority.other_side_entries_mean > 0.0);
    assert!(d.timeline.iter().any(|s| s.healed));
}

/// `--loss` for a scenario that does not model random loss is refused before anything runs,
/// instead of a report that shows a loss the run never had.
#[test]
fn loss_is_refused_where_it_would_not_be_applied() {
    let mut p = params("crash", 8, 1);
    p.loss = Some(0.10);
    let Err(refused) = scenario::run(p) else {
        panic!("--loss on crash must be refused")
    };
    assert!(
        refused.contains("\"crash\" does not model random loss"),
        "{refused}"
    );
    assert!(refused.contains("registry-loss"), "{refused}");
    for s in scenario::SCENARIOS.iter().filter(|s| !s.takes_loss) {
        let mut p = params(s.name, 8, 1);
        p.loss = Some(0.05);
        assert!(scenario::run(p).is_err(), "{} took --loss", s.name);
    }
}

/// A host whose process died answers with ICMP port unreachable; a probe that reads such a
/// report asks its helpers at once, and helpers nack at once. Over eight crashes at 32 nodes
/// the failure is known everywhere sooner in all than when nothing comes back, with no false
/// failure either way.
#[test]
fn port_unreachable_reports_shorten_crash_detection() {
    let total = |reports: bool| -> (f64, u64) {
        let mut sum = 0.0;
        let mut cut_short = 0;
        for seed in 1..=8 {
            let mut p = params("crash", 32, seed);
            p.port_unreachable = reports;
            let o = run(p);
            let all = o.report.detection.as_ref().and_then(|d| d.all_failed.max_s);
            sum += all.expect("the crash was detected");
            cut_short += (0..32)
                .filter_map(|i| o.world.node(i))
                .map(|n| n.stats().probes_cut_short)
                .sum::<u64>();
        }
        (sum, cut_short)
    };
    let (without, none_cut) = total(false);
    let (with, cut) = total(true);
    assert_eq!(none_cut, 0, "no report, no probe cut short");
    assert!(cut > 0, "no probe was cut short by a report");
    assert!(
        with < without * 0.9,
        "8 crashes: {with:.2} s in all with reports, {without:.2} s without"
    );
}
