//! The `hostile` family (issue 14): well-formed messages from an adversary, a member gone bad
//! or a stranger, and what must still hold once they have been sent.
//!
//! | scenario | the adversary | then requires |
//! |---|---|---|
//! | `hostile-clock` | a member's address sends every node a tombstone at the largest version and an entry a day ahead; then a node whose clock is a day ahead joins and registers | refused and counted on every node, no clock moved ahead, the skewed node's entry nowhere else; every later write (update, new, deletion) lands everywhere |
//! | `hostile-incarnation` | `left` at `u32::MAX` and failed/suspect claims jumping past 2^16 about a live member, to every node | implausible jumps counted; the member alive everywhere, never refuting to a forged number; its later writes land everywhere |
//! | `hostile-twin` | a second process under a live member's name joins | the twin stops (its name is held); the holder stays alive at its address, keeps every entry, deletes no zombie; the twin's entry reaches no one |
//! | `hostile-flood` | a stranger sends one node junk and amplifier datagrams (empty registry digests, wrong sync probes, push-pulls wanting a reply, pings) 1,000 a second | no false failure or suspicion; the node's probe schedule kept; bytes sent to the stranger ≤ bytes it sent |
//!
//! Every adversary's datagram goes through [`crate::World::inject`], so it meets the same
//! decoder and the same policies as a real one.

use std::time::Duration;

use bytes::Bytes;
use hera::names::{InstanceId, ServiceName};
use hera::node::Lifecycle;
use hera::registry::{Entry, Hlc, InstanceSpec};
use hera::swim::members::INCARNATION_JUMP_MAX;
use hera::swim::State;
use hera::wire::{
    encode_message, Claim, DatagramBuilder, Incarnation, MemberUpdate, Message, Ping, PushPull,
    RegistryDigest, SyncProbe,
};
use hera::Command;

use super::{expect, Ctx};
use crate::check::no_false_failures;

/// One datagram holding as many copies of `messages` (in turn) as fit.
fn datagram(ctx: &Ctx, messages: &[Message], fill: bool) -> Bytes {
    let mut d = DatagramBuilder::new(ctx.config().packet_bytes_max);
    let encoded: Vec<Vec<u8>> = messages.iter().map(encode_message).collect();
    // Bounded: a datagram holds at most 255 messages.
    'fill: for _ in 0..256 {
        for e in &encoded {
            if !d.try_push(e) {
                break 'fill;
            }
        }
        if !fill {
            break;
        }
    }
    Bytes::from(d.finish())
}

/// `entry` restamped at `wall_ms`/`counter`, as its writer would.
fn restamped(mut entry: Entry, wall_ms: u64, counter: u32) -> Entry {
    entry.version = Hlc {
        wall_ms,
        counter,
        node: entry.version.node.clone(),
    };
    entry
}

fn sum_stat(ctx: &Ctx, f: impl Fn(&hera::stats::Stats) -> u64) -> u64 {
    ctx.world
        .healthy()
        .iter()
        .filter_map(|&i| ctx.world.node(i))
        .map(|n| f(n.stats()))
        .sum()
}

/// A cluster with an instance on every node, settled.
fn registered(ctx: &mut Ctx) -> Result<Vec<InstanceId>, String> {
    // A victim, a liar and a seed that are three different nodes, and one more.
    expect(ctx.n() >= 4, || {
        format!(
            "the hostile scenarios need at least 4 nodes, not {}",
            ctx.n()
        )
    })?;
    ctx.bootstrap()?;
    let ids = ctx.register_everywhere(1)?;
    ctx.settle_registry("before the attack", ctx.registry_bound())?;
    Ok(ids)
}

/// Registry clock poisoning (finding 1).
pub fn hostile_clock(ctx: &mut Ctx) -> Result<(), String> {
    let ids = registered(ctx)?;
    let n = ctx.n() as u32;
    let (a, b) = (ids[1].clone(), ids[2].clone());
    let held = |ctx: &Ctx, id: &InstanceId| {
        ctx.world
            .node(0)
            .and_then(|n| n.registry().entry(id))
            .ok_or_else(|| format!("n0 lacks {id}"))
    };
    // A tombstone of `a` at the largest version, and `b` a day ahead, both "by" their owners.
    let mut tombstone = restamped(held(ctx, &a)?, u64::MAX, u32::MAX);
    tombstone.instance = None;
    let day_ms = 86_400_000;
    let ahead = restamped(
        held(ctx, &b)?,
        ctx.world.local_now(0).as_millis() + day_ms,
        0,
    );
    let poison = datagram(
        ctx,
        &[Message::Entry(tombstone), Message::Entry(ahead)],
        false,
    );
    let rejections0 = sum_stat(ctx, |s| s.clock_rejections);
    // From n1's address (a member gone bad, or a replay) to everyone.
    for i in 0..n {
        ctx.world.inject(1, i, poison.clone());
    }
    ctx.world.run_for(ctx.config().sync_interval * 2);
    let rejections = sum_stat(ctx, |s| s.clock_rejections) - rejections0;
    ctx.report.note(
        "hostile-clock",
        format!("{rejections} versions refused for being ahead"),
    );
    expect(rejections >= u64::from(n) * 2, || {
        format!("{rejections} clock rejections for 2 poisoned versions sent to {n} nodes")
    })?;
    let max_ms = ctx.config().max_clock_offset.as_millis() as u64;
    for i in ctx.world.healthy() {
        let Some(node) = ctx.world.node(i) else {
            continue;
        };
        let (wall, _) = node.registry().clock_high_water();
        let now_ms = ctx.world.local_now(i).as_millis();
        expect(wall <= now_ms + max_ms, || {
            format!("n{i}'s registry clock is {} ms ahead", wall - now_ms)
        })?;
    }
    // A host whose clock is a day ahead joins and registers: its version is refused by
    // every other node, and no clock follows it. Then its operator stops it.
    let skewed = ctx.world.add_node();
    ctx.world.skew_clock(skewed, Duration::from_millis(day_ms));
    ctx.world.start(skewed);
    ctx.world.join(skewed, &[0]);
    ctx.settle("after the skewed node joined", ctx.converge_bound())?;
    let rejections0 = sum_stat(ctx, |s| s.clock_rejections);
    let skewed_id = InstanceId::new("skewed-x").map_err(|e| e.to_string())?;
    let mut spec = InstanceSpec::new(
        ServiceName::new("skewed").map_err(|e| e.to_string())?,
        "10.250.0.2",
        8_000,
    );
    spec.id = Some(skewed_id.clone());
    // Not logged: the checkers hold the honest writes.
    ctx.world
        .command(skewed, Command::Register(spec))
        .map_err(|e| format!("the skewed node could not register: {e}"))?;
    ctx.world.run_for(ctx.config().sync_interval * 2);
    let refused = sum_stat(ctx, |s| s.clock_rejections) - rejections0;
    ctx.report.note(
        "hostile-clock, a day ahead",
        format!("the skewed node's version refused {refused} times"),
    );
    expect(refused > 0, || {
        "no node refused the skewed node's version".into()
    })?;
    for i in ctx.world.healthy() {
        let Some(node) = ctx.world.node(i) else {
            continue;
        };
        if i == skewed {
            continue;
        }
        expect(node.registry().get(&skewed_id).is_none(), || {
            format!("n{i} took the skewed node's entry")
        })?;
        let (wall, _) = node.registry().clock_high_water();
        let now_ms = ctx.world.local_now(i).as_millis();
        expect(wall <= now_ms + max_ms, || {
            format!("n{i}'s registry clock followed the skewed node")
        })?;
    }
    ctx.world.crash(skewed);
    ctx.settle("after the skewed node stopped", ctx.detect_bound())?;
    // Every honest write after the attack lands everywhere: a health change (new version of
    // the poisoned ids), a new instance, deletions.
    ctx.update(1, &a, 9_001)?;
    ctx.update(2, &b, 9_002)?;
    ctx.register(3 % n, "late", "x", 8_080, true)?;
    ctx.world.run_for(Duration::from_millis(500));
    ctx.deregister(1, &a)?;
    ctx.deregister(0, &ids[0])?;
    ctx.settle_registry("after the poisoning", ctx.registry_bound())?;
    no_false_failures(&ctx.world)
}

/// A member update about `x` claiming `claim` at `incarnation`, with `x`'s profile as `by`
/// holds it.
fn claim_about(
    ctx: &Ctx,
    by: u32,
    x: u32,
    incarnation: Incarnation,
    claim: Claim,
) -> Result<Message, String> {
    let profile = ctx
        .world
        .node(by)
        .and_then(|n| n.member_profile(ctx.world.name(x)))
        .ok_or_else(|| format!("n{by} does not know n{x}"))?;
    Ok(Message::Member(MemberUpdate {
        name: ctx.world.name(x).clone(),
        incarnation,
        claim,
        profile,
    }))
}

/// Incarnation lock-out (finding 2).
pub fn hostile_incarnation(ctx: &mut Ctx) -> Result<(), String> {
    let ids = registered(ctx)?;
    let n = ctx.n() as u32;
    let picked = ctx.pick(2);
    let (x, liar) = (picked[0], picked[1]);
    let known = ctx
        .world
        .node(liar)
        .and_then(|node| node.member(ctx.world.name(x)))
        .map(|m| m.incarnation)
        .ok_or_else(|| format!("n{liar} does not know n{x}"))?;
    let liar_name = ctx.world.name(liar).clone();
    let forged = [
        claim_about(ctx, liar, x, Incarnation::new(u32::MAX), Claim::Left)?,
        claim_about(
            ctx,
            liar,
            x,
            Incarnation::new(known.get().wrapping_add(INCARNATION_JUMP_MAX + 1)),
            Claim::Failed {
                by: liar_name.clone(),
            },
        )?,
        claim_about(
            ctx,
            liar,
            x,
            Incarnation::new(known.get().wrapping_add(INCARNATION_JUMP_MAX * 16)),
            Claim::Suspect { by: liar_name },
        )?,
    ];
    let implausible0 = sum_stat(ctx, |s| s.implausible_claims);
    let refutations0 = ctx.world.node(x).map_or(0, |node| node.stats().refutations);
    for m in &forged {
        let d = datagram(ctx, std::slice::from_ref(m), false);
        for i in 0..n {
            ctx.world.inject(liar, i, d.clone());
        }
    }
    // Long enough for a failure to be declared and spread, had any claim been believed.
    ctx.world.run_for(ctx.detect_bound());
    let implausible = sum_stat(ctx, |s| s.implausible_claims) - implausible0;
    ctx.report.note(
        "hostile-incarnation",
        format!("{implausible} implausible claims about n{x} refused"),
    );
    expect(implausible >= u64::from(n) * 2, || {
        format!("{implausible} implausible claims counted for 2 jumps sent to {n} nodes")
    })?;
    for i in ctx.world.healthy() {
        let state = ctx
            .world
            .node(i)
            .map(|node| {
                if i == x {
                    (State::Alive, node.incarnation())
                } else {
                    node.member(ctx.world.name(x))
                        .map_or((State::Left, Incarnation::ZERO), |m| {
                            (m.state, m.incarnation)
                        })
                }
            })
            .unwrap_or((State::Left, Incarnation::ZERO));
        // Within 16 refutations of where it was: serial order, as members compare them.
        let bound = Incarnation::new(known.get().wrapping_add(16));
        expect(
            state.0 == State::Alive && bound.is_newer_than(state.1),
            || format!("n{i} holds n{x} {:?} at incarnation {}", state.0, state.1),
        )?;
    }
    let refuted = ctx.world.node(x).map_or(0, |node| node.stats().refutations) - refutations0;
    expect(refuted == 0, || {
        format!("n{x} refuted {refuted} times: it moved to a forged incarnation")
    })?;
    // The member's later writes reach everyone.
    ctx.update(x, &ids[x as usize], 9_000)?;
    ctx.register(x, "after", "x", 8_080, true)?;
    ctx.settle_registry("after the forged claims", ctx.registry_bound())?;
    no_false_failures(&ctx.world)
}

/// Name twins (finding 5).
pub fn hostile_twin(ctx: &mut Ctx) -> Result<(), String> {
    let ids = registered(ctx)?;
    let h = ctx.pick(1)[0];
    ctx.register(h, "extra", "h", 8_081, true)?;
    ctx.settle_registry("before the twin", ctx.registry_bound())?;
    let twin = ctx.world.add_twin(h);
    ctx.world.start(twin);
    // It registers before its join completes (not logged: the checkers hold the honest
    // writes), so its first version is older than anything the holder writes next.
    let mut spec = InstanceSpec::new(
        ServiceName::new("twin").map_err(|e| e.to_string())?,
        "10.250.0.1",
        8_000,
    );
    let twin_id = InstanceId::new("twin-x").map_err(|e| e.to_string())?;
    spec.id = Some(twin_id.clone());
    ctx.world
        .command(twin, Command::Register(spec))
        .map_err(|e| format!("the twin could not register: {e}"))?;
    ctx.world.join(twin, &[0]);
    ctx.world.run_for(ctx.config().probe_interval * 4);
    let twin_node = ctx.world.node(twin).ok_or("the twin crashed")?;
    let holder = ctx.world.addr(h);
    expect(twin_node.name_taken_by() == Some(holder), || {
        format!(
            "the twin's join ended with its name taken by {:?}, not {holder}",
            twin_node.name_taken_by()
        )
    })?;
    expect(twin_node.lifecycle() == Lifecycle::Stopped, || {
        format!("the twin is {:?}, not stopped", twin_node.lifecycle())
    })?;
    // The holder writes on; everything it owns stays, at its address, everywhere.
    ctx.update(h, &ids[h as usize], 9_000)?;
    ctx.register(h, "after", "h", 8_082, true)?;
    ctx.world.run_for(ctx.config().sync_interval * 2);
    ctx.settle_registry("after the twin", ctx.registry_bound())?;
    for i in ctx.world.healthy() {
        let Some(node) = ctx.world.node(i) else {
            continue;
        };
        if i != h {
            let m = node.member(ctx.world.name(h));
            expect(
                m.is_some_and(|m| m.state == State::Alive && m.addr() == holder),
                || format!("n{i} holds the holder n{h} as {m:?}"),
            )?;
        }
        expect(node.registry().get(&twin_id).is_none(), || {
            format!("n{i} holds the twin's entry")
        })?;
    }
    let zombies = ctx.world.node(h).map_or(0, |n| n.stats().zombies_deleted);
    expect(zombies == 0, || {
        format!("the holder n{h} deleted {zombies} entries as zombies")
    })?;
    no_false_failures(&ctx.world)
}

/// Junk and amplifiers from a stranger (findings 3 and 7).
pub fn hostile_flood(ctx: &mut Ctx) -> Result<(), String> {
    registered(ctx)?;
    let v = ctx.pick(1)[0];
    // Never started: an address no member holds, whose answers are counted.
    let stranger = ctx.world.add_node();
    let amplifiers = [
        Message::RegistryDigest(RegistryDigest {
            reply_wanted: true,
            from: None,
            to: None,
            origins: Default::default(),
        }),
        Message::SyncProbe(SyncProbe { members_digest: 1 }),
        Message::PushPull(PushPull {
            reply_wanted: true,
            members: Default::default(),
        }),
        Message::Ping(Ping {
            seq: 1,
            target: ctx.world.name(v).clone(),
        }),
    ];
    let mut kinds: Vec<Bytes> = amplifiers
        .iter()
        .map(|m| datagram(ctx, std::slice::from_ref(m), true))
        .collect();
    kinds.push(Bytes::from(vec![0xa5u8; 1_200]));
    kinds.push(datagram(ctx, &amplifiers, true));
    // First one small datagram of each kind, a probe period apart (every rate limit full
    // again): the answer to each is no larger than the question (issue 14's goal, factor
    // ≤ 1 for every kind).
    let mut factors = Vec::new();
    for m in &amplifiers {
        ctx.world.run_for(ctx.config().probe_interval * 2);
        let question = datagram(ctx, std::slice::from_ref(m), false);
        let before = ctx.world.bytes_sent_to(stranger);
        ctx.world.inject(stranger, v, question.clone());
        ctx.world.run_for(ctx.config().probe_interval);
        let answer = ctx.world.bytes_sent_to(stranger) - before;
        let kind = m.kind().as_str();
        factors.push(format!("{kind} {}/{}", answer, question.len()));
        expect(answer <= question.len() as u64, || {
            format!(
                "n{v} answered a stranger's {kind} of {} B with {answer} B",
                question.len()
            )
        })?;
    }
    ctx.report
        .note("hostile-flood answers (B out/in)", factors.join(", "));
    let d = ctx.duration(Duration::from_secs(20));
    let gap = Duration::from_millis(1);
    let count = d.as_micros() / gap.as_micros();
    let probes0 = ctx.world.node(v).map_or(0, |n| n.stats().probes_sent);
    let in0 = ctx.world.node(v).map_or(0, |n| n.stats().datagrams_in);
    let out0 = ctx.world.bytes_sent_to(stranger);
    let mut sent_bytes = 0u64;
    for k in 0..count {
        let payload = kinds[k as usize % kinds.len()].clone();
        sent_bytes += payload.len() as u64;
        ctx.world.inject(stranger, v, payload);
        ctx.world.run_for(gap);
    }
    let node = ctx.world.node(v).ok_or("the flooded node crashed")?;
    let received = node.stats().datagrams_in - in0;
    let probes = node.stats().probes_sent - probes0;
    let answered = ctx.world.bytes_sent_to(stranger) - out0;
    let due = (d.as_micros() / ctx.config().probe_interval.as_micros()) as u64;
    ctx.report.note(
        "hostile-flood",
        format!(
            "{count} datagrams ({sent_bytes} B) in {d:?} to n{v}: {answered} B sent back, \
             {probes} probes sent ({due} due)"
        ),
    );
    expect(received >= count as u64, || {
        format!("the flood reached n{v} {received} times of {count}")
    })?;
    expect(answered <= sent_bytes, || {
        format!("n{v} sent the stranger {answered} B for {sent_bytes} B")
    })?;
    // One probe per period, give or take the one in flight at each end.
    expect(probes + 2 >= due, || {
        format!("n{v} sent {probes} probes during the flood, {due} due")
    })?;
    let marks = ctx.world.monitor.marks(v);
    expect(marks.suspected == 0 && marks.failed == 0, || {
        format!(
            "flooded n{v} was suspected {} and failed {} times",
            marks.suspected, marks.failed
        )
    })?;
    no_false_failures(&ctx.world)?;
    ctx.settle("after the flood", ctx.converge_bound())?;
    Ok(())
}
