//! `settle`: after churn has settled, bulk anti-entropy traffic returns to the idle baseline
//! (issue 14, item 4).
//!
//! A cluster forms and idles while its bulk sync traffic is measured; then a tenth of it
//! crashes for good (held failed by every elder) and as many newcomers join, which never learn
//! the failed records. Once membership agrees and gossip has died down, the same window is
//! measured again: it must be back at the baseline. Before the membership digest left out
//! failed and left records, every sync round between a newcomer and an elder exchanged whole
//! tables, for as long as the elders kept the records (up to a day).

use std::time::Duration;

use hera::wire::MessageKind;

use super::{expect, Ctx};
use crate::World;

/// Bulk sync traffic tolerated above the baseline after settling: a late exchange started
/// just before the window opened.
const SLACK_DATAGRAMS: u64 = 2;

/// Bulk anti-entropy datagrams (push-pulls, registry digests and buckets) sent so far by
/// `nodes`, and registry entries pushed.
fn bulk_sent(world: &World, nodes: &[u32]) -> u64 {
    nodes
        .iter()
        .filter_map(|&i| world.node(i))
        .map(|n| {
            let s = n.stats();
            s.messages_out[MessageKind::PushPull.index()]
                + s.messages_out[MessageKind::RegistryDigest.index()]
                + s.messages_out[MessageKind::RegistryBuckets.index()]
                + s.entries_pushed
        })
        .sum()
}

/// Bulk sync traffic of the healthy nodes during `window` from now.
fn bulk_during(ctx: &mut Ctx, window: Duration) -> u64 {
    let nodes = ctx.world.healthy();
    let before = bulk_sent(&ctx.world, &nodes);
    ctx.world.run_for(window);
    bulk_sent(&ctx.world, &nodes) - before
}

pub fn settle(ctx: &mut Ctx) -> Result<(), String> {
    ctx.bootstrap()?;
    let sync = ctx.config().sync_interval;
    // Four sync rounds per node: every node meets several peers.
    let window = sync * 4;
    ctx.world.run_for(sync * 2);
    let baseline = bulk_during(ctx, window);

    let k = (ctx.n() / 10).max(1);
    let gone = ctx.pick(k);
    for &i in &gone {
        ctx.world.crash(i);
    }
    let bound = ctx.detect_bound();
    let elders_fail_them = |w: &World| {
        w.healthy()
            .iter()
            .all(|&i| w.node(i).is_some_and(|n| n.counts().failed >= k))
    };
    let step = ctx.check_step();
    ctx.world
        .run_until_true(bound, step, elders_fail_them)
        .ok_or_else(|| format!("settle: {k} crashes not failed everywhere within {bound:?}"))?;
    let mut newcomers = Vec::new();
    for _ in 0..k {
        let i = ctx.world.add_node();
        ctx.world.start(i);
        ctx.world.join(i, &[0]);
        newcomers.push(i);
    }
    ctx.settle("after the newcomers joined", ctx.converge_bound())?;
    // The fault took effect: the elders hold failed records the newcomers never learnt.
    let unlearnt = newcomers
        .iter()
        .filter_map(|&i| ctx.world.node(i))
        .all(|n| n.counts().failed == 0);
    let held = ctx.world.node(0).is_some_and(|n| n.counts().failed >= k);
    expect(unlearnt && held, || {
        "settle: the newcomers learnt the failed records, or the elders lost them".into()
    })?;
    // Gossip of the joins and the exchanges they started die down.
    ctx.world.run_for(sync * 2);
    let after = bulk_during(ctx, window);
    ctx.report.note(
        "settle",
        format!(
            "bulk sync datagrams in {:?}: {baseline} idle, {after} after {k} crashes and {k} newcomers",
            window
        ),
    );
    expect(after <= baseline + SLACK_DATAGRAMS, || {
        format!(
            "settle: {after} bulk sync datagrams in {window:?} after churn, idle baseline {baseline}"
        )
    })
}
