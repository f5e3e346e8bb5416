//! A node flooded with junk datagrams from a loopback sender keeps its probe schedule,
//! declares no false failure and is not declared failed by its peers (issue 14, item 7).
//!
//! The figures (the rate the sender reached, what the node read, the probes it sent) are
//! printed; docs/security.md records them. Run with `--nocapture` to see them.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hera::runtime::app::App;
use hera::runtime::driver::Snapshot;
use hera::swim::State;
use support::{settings, CONVERGE};

/// How long the flood lasts: 12 probe intervals of the local preset (500 ms), more than the
/// longest suspicion window of a 3-node cluster (1 s base, up to 4x).
const FLOOD_FOR: Duration = Duration::from_secs(6);
/// The sender stops after this many datagrams whatever the time (the loop is bounded).
const FLOOD_DATAGRAMS_MAX: u64 = 50_000_000;
/// Junk: not a hera datagram (wrong magic), the size of a typical probe.
const JUNK: [u8; 64] = [0xA5; 64];

fn all_alive(s: &Snapshot, n: usize) -> bool {
    s.members.iter().filter(|m| m.state == State::Alive).count() == n
}

fn any_failed(s: &Snapshot) -> bool {
    s.members.iter().any(|m| m.state == State::Failed)
}

/// Send junk to `target` as fast as one thread can until `stop` or the bounds; how many sent.
fn flood(target: SocketAddr, stop: Arc<AtomicBool>) -> u64 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the flooder");
    #[allow(clippy::disallowed_methods)] // the flood's own bound, outside any node
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < FLOOD_DATAGRAMS_MAX && !stop.load(Ordering::Relaxed) {
        if started.elapsed() >= FLOOD_FOR {
            break;
        }
        // A full receive buffer makes sends fail now and then on some systems: not counted.
        if socket.send_to(&JUNK, target).is_ok() {
            sent += 1;
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_node_keeps_probing_and_nobody_fails() {
    let first = App::start(settings("flooded", Vec::new()), 1)
        .await
        .expect("node starts");
    let seed = first.gossip_addr.to_string();
    let mut nodes = vec![first];
    for i in 1..3u64 {
        let app = App::start(settings(&format!("peer{i}"), vec![seed.clone()]), i + 1)
            .await
            .expect("node starts");
        nodes.push(app);
    }
    for node in &nodes {
        let s = node.handle.wait_for(CONVERGE, |s| all_alive(s, 3)).await;
        assert!(s.is_some(), "{:?}", node.handle.snapshot().members);
    }
    let before = nodes[0].handle.snapshot();
    let probe_interval = before.config.probe_interval;

    let stop = Arc::new(AtomicBool::new(false));
    let target = nodes[0].gossip_addr;
    let flooder = {
        let stop = stop.clone();
        std::thread::spawn(move || flood(target, stop))
    };
    #[allow(clippy::disallowed_methods)] // the test measures wall time on purpose
    let started = Instant::now();
    // During the flood, no node may see any member failed: each wait must time out.
    let watches = nodes
        .iter()
        .map(|n| tokio::spawn(n.handle.wait_for(FLOOD_FOR, any_failed)))
        .collect::<Vec<_>>();
    let mut failures = Vec::new();
    for watch in watches {
        failures.push(watch.await.expect("the watch task ends"));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flooder.join().expect("the flooder thread ends");
    let elapsed = started.elapsed();
    // The next periodic snapshot carries the counters up to the end of the flood.
    let after = nodes[0]
        .handle
        .wait_for(Duration::from_secs(3), |s| {
            s.taken_at > before.taken_at + elapsed
        })
        .await
        .unwrap_or_else(|| nodes[0].handle.snapshot());

    let read = after.stats.datagrams_in - before.stats.datagrams_in;
    let rejected = after.stats.decode_errors_total() - before.stats.decode_errors_total();
    let probes = after.stats.probes_sent - before.stats.probes_sent;
    let expected = (elapsed.as_secs_f64() / probe_interval.as_secs_f64()).floor() as u64;
    let rate = sent as f64 / elapsed.as_secs_f64();
    println!(
        "flood: {sent} junk datagrams in {elapsed:.2?} ({rate:.0}/s sent), {read} read by the node \
         ({:.0}/s), {rejected} rejected; probes sent {probes} (schedule: {expected}), \
         probes failed {}, suspicions raised {}, health score {}",
        read as f64 / elapsed.as_secs_f64(),
        after.stats.probes_failed - before.stats.probes_failed,
        after.stats.suspicions_raised - before.stats.suspicions_raised,
        after.health_score,
    );
    for (node, failed) in nodes.iter().zip(&failures) {
        assert!(
            failed.is_none(),
            "{} saw a member failed during the flood: {:?}",
            node.handle.snapshot().name,
            failed.as_ref().map(|s| &s.members)
        );
    }
    assert!(sent > 0 && rejected > 0, "the flood did not reach the node");
    // Lifeguard may stretch the interval if a probe is late; half the schedule is the floor.
    assert!(
        probes * 2 >= expected,
        "the flooded node sent {probes} probes in {elapsed:?}, schedule {expected}"
    );
    for node in &nodes {
        let s = node.handle.wait_for(CONVERGE, |s| all_alive(s, 3)).await;
        assert!(s.is_some(), "{:?}", node.handle.snapshot().members);
    }
    for node in nodes {
        node.shutdown().await;
    }
}
