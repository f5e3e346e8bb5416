//! `PUT /v1/hera/config` against real nodes on loopback (issue 12, items 2-5): every value is
//! checked against its field's range before anything changes, no value can wrap or round to
//! zero, and a change of interval re-arms the timer it drives at once.

mod support;

use std::time::Duration;

use hera::names::InstanceId;
use hera::swim::State;
use serde_json::{json, Value};
use support::{cluster, http, CONVERGE};

async fn put_config(http: &reqwest::Client, base: &str, body: &Value) -> (u16, Value) {
    let r = http
        .put(format!("{base}/v1/hera/config"))
        .json(body)
        .send()
        .await
        .expect("config answered");
    let status = r.status().as_u16();
    let text = r.text().await.expect("a body");
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{body}: not JSON: {text}"));
    (status, value)
}

/// Items 2, 4 and 5: a duration outside its field's range is a 400 that names the field, the
/// value and the range, and changes nothing; the largest allowed values are kept exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_durations_are_refused_with_the_range() {
    let nodes = cluster("config-range", 1).await;
    let base = format!("http://{}", nodes[0].http_addr);
    let http = http();
    let before = nodes[0].handle.snapshot().config.clone();
    for (body, field) in [
        // Item 2: a suspicion window that overflowed when multiplied.
        (json!({"SuspicionBase": "876000h"}), "SuspicionBase"),
        // Item 3's value: a probe timer that would not fire for eleven days.
        (json!({"ProbeInterval": "1000000"}), "ProbeInterval"),
        // Item 4: a liveness of a hundred years, kept in milliseconds.
        (json!({"Liveness": "876000h"}), "Liveness"),
        // Item 5: below a millisecond, once stored as zero.
        (json!({"Liveness": "0.5ms"}), "Liveness"),
        (json!({"Liveness": "999us"}), "Liveness"),
        (json!({"GossipInterval": "1ns"}), "GossipInterval"),
        (json!({"SyncInterval": "0s"}), "SyncInterval"),
        (json!({"RetransmitMult": 1000}), "RetransmitMult"),
    ] {
        let (status, answer) = put_config(&http, &base, &body).await;
        assert_eq!(status, 400, "{body} answered {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(field) && error.contains("range"),
            "{body}: the error names the field and its range: {error}"
        );
    }
    assert_eq!(nodes[0].handle.snapshot().config, before, "nothing changed");
    let (_, shown) = put_config(&http, &base, &json!({"Liveness": "30s"})).await;
    assert_eq!(shown["Liveness"], "30s");

    // The longest liveness allowed is kept to the millisecond, and given to the next seed PUT.
    let (status, shown) = put_config(&http, &base, &json!({"Liveness": "720h"})).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["Liveness"], "720h");
    let r = http
        .put(format!("{base}/storage/s1"))
        .body(r#"{"host":"h"}"#)
        .send()
        .await
        .expect("seed PUT answered");
    assert_eq!(r.status(), 200);
    let s = nodes[0].handle.snapshot();
    let i = s.registry.get(&InstanceId::new("s1").expect("an id"));
    assert_eq!(i.and_then(|i| i.liveness_ms), Some(720 * 3_600_000));
    for node in nodes {
        node.shutdown().await;
    }
}

/// Item 3: a probe interval set long and then back is in force at once: the timer armed with
/// the long interval is pulled in, so a peer killed after the change back is detected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_probe_interval_re_arms_the_probe_timer() {
    let mut nodes = cluster("config-rearm", 2).await;
    let base = format!("http://{}", nodes[0].http_addr);
    let http = http();
    let (status, shown) = put_config(&http, &base, &json!({"ProbeInterval": "1m"})).await;
    assert_eq!(status, 200, "{shown}");
    // Let the timer armed with the old interval fire once: the next one is a minute away.
    let sent = nodes[0].handle.snapshot().stats.probes_sent;
    let long_armed = nodes[0]
        .handle
        .wait_for(CONVERGE, |s| s.stats.probes_sent > sent)
        .await;
    assert!(long_armed.is_some(), "the old probe timer fired");
    let (status, shown) = put_config(&http, &base, &json!({"ProbeInterval": "500ms"})).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["Protocol"]["ProbeInterval"], "500ms");

    let peer = nodes.pop().expect("two nodes");
    let peer_name = peer.handle.snapshot().name.clone();
    peer.abort().await;
    // Well under the minute the old timer would wait: the local preset's probe period, a
    // suspicion with no one to confirm it (4 x 1 s), and room for a slow machine.
    let bound = Duration::from_secs(15);
    let failed = nodes[0]
        .handle
        .wait_for(bound, |s| {
            s.members
                .iter()
                .any(|m| m.name == peer_name && m.state == State::Failed)
        })
        .await;
    assert!(
        failed.is_some(),
        "the killed peer was not failed within {bound:?}"
    );
    for node in nodes {
        node.shutdown().await;
    }
}
