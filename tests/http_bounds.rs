//! The registry's bounds from a client's side (SPEC §11, issue 17), on a real node on loopback
//! with `instances_owned_max` set small: every write path of every face refuses a new id past
//! it with 507 and a message naming the bound and the field, while re-registration, renewal,
//! update and deregistration at the bound go through, and a deregistration makes room.

mod support;

use std::collections::BTreeMap;

use hera::names::InstanceId;
use hera::runtime::app::App;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{http, url};

/// One node whose `instances_owned_max` is `max` (set by its flag, as an operator would).
async fn node(max: usize) -> App {
    let mut overrides = support::overrides("b0", vec![]);
    overrides.knobs = vec![("instances-owned-max".to_string(), max.to_string())];
    App::start(support::settings_from(overrides), 11)
        .await
        .expect("node starts")
}

/// Consul's register of `id` on `port`: its status and body.
async fn consul_register(node: &App, id: &str, port: u16) -> (StatusCode, String) {
    let body = json!({"Name": "api", "ID": id, "Address": "10.0.0.1", "Port": port});
    let r = http()
        .put(url(node, "/v1/agent/service/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn put(node: &App, path: &str, body: Option<Value>) -> (StatusCode, String) {
    let mut request = http().put(url(node, path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

fn port_of(node: &App, id: &str) -> Option<u16> {
    let s = node.handle.snapshot();
    s.registry
        .get(&InstanceId::new(id).unwrap())
        .map(|i| i.port)
}

/// The refusal names the bound, the field, and says what still works.
fn assert_refused(status: StatusCode, body: &str, what: &str) {
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{what}: {body}");
    let error: Value = serde_json::from_str(body).expect("a JSON error");
    let message = error["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("instances_owned_max") && message.contains("at most 3"),
        "{what}: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_path_refuses_a_new_id_past_the_owned_bound_and_updates_go_through() {
    let node = node(3).await;
    for (id, port) in [("a", 80), ("b", 80), ("c", 80)] {
        let (status, body) = consul_register(&node, id, port).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // A fourth id, through each face: refused, and not stored.
    let (status, body) = consul_register(&node, "d", 80).await;
    assert_refused(status, &body, "consul register");
    let r = http()
        .post(url(&node, "/v1/hera/instances"))
        .json(&json!({"Name": "api", "ID": "d", "Address": "10.0.0.1", "Port": 80}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_refused(status, &r.text().await.unwrap(), "hera register");
    let (status, body) = put(
        &node,
        "/api/d",
        Some(json!({"host": "10.0.0.1", "port": 80})),
    )
    .await;
    assert_refused(status, &body, "seed put");
    assert_eq!(port_of(&node, "d"), None);

    // At the bound, what is held is re-registered, updated, renewed, and deregistered.
    let (status, body) = consul_register(&node, "a", 81).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(port_of(&node, "a"), Some(81));
    let (status, body) = put(&node, "/v1/hera/instances/b/renew", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put(
        &node,
        "/v1/agent/service/maintenance/b?enable=true&reason=x",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put(&node, "/v1/agent/service/deregister/c", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The deregistration made room for one new id, through the seed's API this time.
    let (status, body) = put(
        &node,
        "/api/d",
        Some(json!({"host": "10.0.0.1", "port": 82})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(port_of(&node, "d"), Some(82));
    let (status, body) = consul_register(&node, "e", 80).await;
    assert_refused(status, &body, "full again");

    // Counted for the operator, by bound.
    let metrics = support::get_text(node.http_addr, "/metrics").await;
    let refused: BTreeMap<&str, &str> = metrics
        .lines()
        .filter(|l| l.starts_with("hera_registry_refused_total{"))
        .filter_map(|l| l.split_once(' '))
        .collect();
    assert_eq!(
        refused.get("hera_registry_refused_total{reason=\"instances_owned_max\"}"),
        Some(&"4"),
        "{metrics}"
    );
    // And shown by `/v1/status` (what `hera status` prints): held against each bound. Its
    // counters are the snapshot's, republished within a second when only counters moved.
    let counted = node
        .handle
        .wait_for(std::time::Duration::from_secs(10), |s| {
            s.stats.refused_owned_max == 4
        })
        .await;
    assert!(counted.is_some(), "the snapshot never counted the refusals");
    let status = support::get_json(node.http_addr, "/v1/status").await;
    let registry = &status["registry"];
    assert_eq!(registry["owned"], 3, "{status}");
    assert_eq!(registry["instances_owned_max"], 3, "{status}");
    assert_eq!(registry["live"], 3, "{status}");
    assert_eq!(registry["held"], 4, "a tombstone counts: {status}");
    assert_eq!(registry["refused"]["instances_owned_max"], 4, "{status}");
    assert_eq!(registry["refused"]["registry_entries_max"], 0, "{status}");
    node.shutdown().await;
}
