//! Real nodes on real loopback sockets: membership converges, a crash is detected, a graceful
//! leave is not mistaken for a failure, and a restarted node comes back.

use std::net::SocketAddr;
use std::time::Duration;

use hera::runtime::app::App;
use hera::runtime::driver::Snapshot;
use hera::runtime::settings::{Overrides, Settings};
use hera::swim::State;

/// Generous bound for conditions that take a few protocol periods on the local preset.
const CONVERGE: Duration = Duration::from_secs(20);

fn settings(name: &str, bind: &str, join: Vec<String>) -> Settings {
    Settings::resolve(
        None,
        Overrides {
            name: Some(name.to_string()),
            bind: Some(bind.to_string()),
            http: Some("127.0.0.1:0".to_string()),
            preset: Some("local".to_string()),
            join,
            ..Default::default()
        },
    )
    .expect("valid test settings")
}

fn state_of(s: &Snapshot, name: &str) -> Option<State> {
    s.members
        .iter()
        .find(|m| m.name.as_str() == name)
        .map(|m| m.state)
}

fn alive_count(s: &Snapshot) -> usize {
    s.members.iter().filter(|m| m.state == State::Alive).count()
}

async fn start(name: &str, bind: &str, seed: Option<SocketAddr>, rng: u64) -> App {
    let join = seed.map(|s| vec![s.to_string()]).unwrap_or_default();
    App::start(settings(name, bind, join), rng)
        .await
        .expect("node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge_detect_a_crash_a_leave_and_a_restart() {
    let first = start("n0", "127.0.0.1:0", None, 1).await;
    let seed = first.gossip_addr;
    let mut nodes = vec![first];
    for i in 1..5 {
        nodes.push(start(&format!("n{i}"), "127.0.0.1:0", Some(seed), i as u64 + 1).await);
    }

    for node in &nodes {
        let s = node
            .handle
            .wait_for(CONVERGE, |s| alive_count(s) == 5)
            .await;
        assert!(
            s.is_some(),
            "{:?} did not see 5 alive: {:?}",
            node.gossip_addr,
            node.handle.snapshot().members
        );
    }

    // Abrupt stop (as kill -9): the others must mark it failed, never left.
    let crashed = nodes.remove(4);
    let crashed_addr = crashed.gossip_addr;
    crashed.abort().await;
    for node in &nodes {
        let s = node
            .handle
            .wait_for(CONVERGE, |s| state_of(s, "n4") == Some(State::Failed))
            .await;
        assert!(
            s.is_some(),
            "n4 not marked failed: {:?}",
            node.handle.snapshot().members
        );
    }

    // Its closed port answered the probes with ICMP port unreachable, read from each socket's
    // error queue: probes of n4 asked their helpers without waiting out their timeout.
    let (reports, cut_short) = nodes.iter().fold((0, 0), |(r, c), node| {
        let stats = node.handle.snapshot().stats.clone();
        (
            r + stats.port_unreachable_reports,
            c + stats.probes_cut_short,
        )
    });
    assert!(
        reports > 0 && cut_short > 0,
        "{reports} port-unreachable reports, {cut_short} probes cut short"
    );

    // Graceful leave: the others mark it left, not failed.
    let leaver = nodes.remove(3);
    let mut events = nodes[0].handle.subscribe();
    leaver.shutdown().await;
    for node in &nodes {
        let s = node
            .handle
            .wait_for(CONVERGE, |s| state_of(s, "n3") == Some(State::Left))
            .await;
        assert!(
            s.is_some(),
            "n3 not marked left: {:?}",
            node.handle.snapshot().members
        );
    }
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(&event, hera::Event::MemberFailed { name } if name.as_str() == "n3"),
            "a graceful leave was reported as a failure"
        );
    }

    // Restart the crashed node under the same name and address: it outbids its failed self.
    let restarted = start("n4", &crashed_addr.to_string(), Some(seed), 99).await;
    nodes.push(restarted);
    for node in &nodes {
        let s = node
            .handle
            .wait_for(CONVERGE, |s| state_of(s, "n4") == Some(State::Alive))
            .await;
        assert!(
            s.is_some(),
            "restarted n4 not alive: {:?}",
            node.handle.snapshot().members
        );
    }
    let n4 = nodes[0]
        .handle
        .snapshot()
        .members
        .iter()
        .find(|m| m.name.as_str() == "n4")
        .map(|m| m.incarnation.get());
    assert!(
        n4 > Some(0),
        "the restarted node must win with a higher incarnation, got {n4:?}"
    );

    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_retries_until_the_seed_appears() {
    // Reserve a port for the seed, start the joiner first, then the seed on that port.
    let reserved = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let seed_addr = reserved.local_addr().unwrap();
    drop(reserved);
    let joiner = start("late-joiner", "127.0.0.1:0", Some(seed_addr), 7).await;
    let seed = start("seed", &seed_addr.to_string(), None, 8).await;
    let s = joiner
        .handle
        .wait_for(CONVERGE, |s| alive_count(s) == 2)
        .await;
    assert!(
        s.is_some(),
        "joiner never reached the seed: {:?}",
        joiner.handle.snapshot().members
    );
    joiner.shutdown().await;
    seed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_works() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipping: no IPv6 loopback on this machine");
        return;
    }
    let a = start("v6a", "[::1]:0", None, 1).await;
    let b = start("v6b", "[::1]:0", Some(a.gossip_addr), 2).await;
    assert!(a
        .handle
        .wait_for(CONVERGE, |s| alive_count(s) == 2)
        .await
        .is_some());
    assert!(b
        .handle
        .wait_for(CONVERGE, |s| alive_count(s) == 2)
        .await
        .is_some());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_leave_moves_a_failed_member_to_left_everywhere() {
    let first = start("f0", "127.0.0.1:0", None, 11).await;
    let seed = first.gossip_addr;
    let second = start("f1", "127.0.0.1:0", Some(seed), 12).await;
    let third = start("f2", "127.0.0.1:0", Some(seed), 13).await;
    for node in [&first, &second] {
        let s = node
            .handle
            .wait_for(CONVERGE, |s| alive_count(s) == 3)
            .await;
        assert!(s.is_some(), "{:?}", node.handle.snapshot().members);
    }
    third.abort().await;
    let failed = first
        .handle
        .wait_for(CONVERGE, |s| state_of(s, "f2") == Some(State::Failed))
        .await;
    assert!(failed.is_some(), "{:?}", first.handle.snapshot().members);

    let http = reqwest::Client::new();
    let force = |node: &str| {
        http.put(format!(
            "http://{}/v1/agent/force-leave/{node}",
            first.http_addr
        ))
        .send()
    };
    let unknown = force("nobody").await.expect("request");
    assert_eq!(unknown.status().as_u16(), 404);
    let body: serde_json::Value = unknown.json().await.expect("JSON error");
    assert!(
        body["error"].as_str().unwrap_or("").contains("nobody"),
        "{body}"
    );
    assert_eq!(
        force("f1").await.expect("request").status().as_u16(),
        409,
        "f1 is alive"
    );
    assert_eq!(
        force("bad name!").await.expect("request").status().as_u16(),
        400
    );
    let done = force("f2").await.expect("request");
    assert_eq!(done.status().as_u16(), 200);

    // Left on the node asked, and on the other through gossip; shown as Consul's status 3.
    for node in [&first, &second] {
        let s = node
            .handle
            .wait_for(CONVERGE, |s| state_of(s, "f2") == Some(State::Left))
            .await;
        assert!(s.is_some(), "{:?}", node.handle.snapshot().members);
    }
    let members: serde_json::Value = http
        .get(format!("http://{}/v1/agent/members", second.http_addr))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let f2 = members
        .as_array()
        .and_then(|all| all.iter().find(|m| m["Name"] == "f2"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(f2["Status"], 3, "{members}");
    first.shutdown().await;
    second.shutdown().await;
}
