//! Consul's node maintenance on nodes over loopback (issue 18): `PUT /v1/agent/maintenance`
//! takes every instance the node owns off-line everywhere, shows as the `_node_maintenance`
//! check, takes instances registered meanwhile off-line too, survives a restart (data_dir),
//! and `enable=false` brings back exactly what it took (an instance in its own maintenance
//! stays off-line).

mod support;

use std::path::Path;
use std::time::Duration;

use hera::names::InstanceId;
use hera::runtime::app::App;
use hera::runtime::settings::{Overrides, Settings};
use serde_json::{json, Value};
use support::{get_json, http, CONVERGE};

fn settings(name: &str, join: Vec<String>, data_dir: Option<&Path>) -> Settings {
    support::settings_from(Overrides {
        data_dir: data_dir.map(Path::to_path_buf),
        ..support::overrides(name, join)
    })
}

async fn put(node: &App, path: &str, body: Option<Value>) -> u16 {
    let mut r = http().put(format!("http://{}{path}", node.http_addr));
    if let Some(body) = body {
        r = r.json(&body);
    }
    r.send().await.expect("answered").status().as_u16()
}

/// Wait until `node` holds every one of `ids` with `online` as given.
async fn online_on(node: &App, ids: &[&str], online: bool, what: &str) {
    let ids: Vec<InstanceId> = ids.iter().map(|i| InstanceId::new(i).unwrap()).collect();
    let seen = node
        .handle
        .wait_for(CONVERGE, |s| {
            ids.iter()
                .all(|id| s.registry.get(id).is_some_and(|i| i.online == online))
        })
        .await;
    assert!(seen.is_some(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_maintenance_drains_every_instance_survives_a_restart_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let a = App::start(settings("maint-a", vec![], Some(dir.path())), 1)
        .await
        .expect("node starts");
    let b = App::start(
        settings("maint-b", vec![a.gossip_addr.to_string()], None),
        2,
    )
    .await
    .expect("node starts");
    for (id, port) in [("web-1", 81), ("web-2", 82)] {
        let body = json!({"Name": "web", "ID": id, "Address": "127.0.0.1", "Port": port});
        assert_eq!(put(&a, "/v1/agent/service/register", Some(body)).await, 200);
    }
    assert_eq!(
        put(
            &a,
            "/v1/agent/service/maintenance/web-2?enable=true&reason=own",
            None
        )
        .await,
        200
    );
    online_on(&b, &["web-1"], true, "web-1 reached b on-line").await;
    online_on(&b, &["web-2"], false, "web-2 reached b off-line").await;

    assert_eq!(
        put(
            &a,
            "/v1/agent/maintenance?enable=true&reason=patching",
            None
        )
        .await,
        200
    );
    online_on(&b, &["web-1", "web-2"], false, "node maintenance reached b").await;
    let passing = get_json(b.http_addr, "/v1/health/service/web?passing").await;
    assert_eq!(passing, json!([]), "b still serves a drained instance");
    let checks = get_json(a.http_addr, "/v1/agent/checks").await;
    let check = &checks["_node_maintenance"];
    assert_eq!(check["Status"], "critical", "{checks}");
    assert_eq!(check["Notes"], "patching", "{checks}");
    // Registered while the node is in maintenance: off-line at once.
    let body = json!({"Name": "web", "ID": "web-3", "Address": "127.0.0.1", "Port": 83});
    assert_eq!(put(&a, "/v1/agent/service/register", Some(body)).await, 200);
    online_on(&b, &["web-3"], false, "web-3 registered off-line").await;

    // A restart keeps it (the state is in the data_dir).
    let gossip = a.gossip_addr;
    a.shutdown().await;
    let mut restarted = settings("maint-a", vec![b.gossip_addr.to_string()], Some(dir.path()));
    restarted.bind = gossip;
    restarted.advertise = gossip;
    let a = App::start(restarted, 3).await.expect("node restarts");
    online_on(&a, &["web-1", "web-2", "web-3"], false, "restored off-line").await;
    let checks = get_json(a.http_addr, "/v1/agent/checks").await;
    assert_eq!(checks["_node_maintenance"]["Notes"], "patching", "{checks}");

    // Back: what node maintenance took comes back; web-2's own maintenance stays.
    assert_eq!(
        put(&a, "/v1/agent/maintenance?enable=false", None).await,
        200
    );
    online_on(
        &b,
        &["web-1", "web-3"],
        true,
        "node maintenance lifted on b",
    )
    .await;
    online_on(&b, &["web-2"], false, "web-2 kept its own maintenance").await;
    let checks = get_json(a.http_addr, "/v1/agent/checks").await;
    assert!(checks.get("_node_maintenance").is_none(), "{checks}");
    assert_eq!(put(&a, "/v1/agent/maintenance", None).await, 400);
    tokio::time::timeout(Duration::from_secs(30), async {
        a.shutdown().await;
        b.shutdown().await;
    })
    .await
    .expect("nodes stop");
}
