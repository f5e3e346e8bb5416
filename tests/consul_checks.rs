//! Health checks as Consul users write them (issue 18), on nodes over loopback: several checks
//! of their own ids per service, reported by id and aggregated on another node; a TCP check
//! against a real listener; stand-alone checks of a service and of the node; a node check that
//! makes every instance of its node critical and survives a restart.
//!
//! The requests are shaped exactly as py-consul 1.8.0 sends them (lower-case keys, `checks` a
//! list, check ids as `CheckID` in a service's checks and `id` in `check/register`, the report
//! note as `?note=`); `tests/consul_client.rs` runs the same scenario through an unmodified
//! client, Debian's python3-consul.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use hera::names::InstanceId;
use hera::registry::Health;
use hera::runtime::app::App;
use hera::runtime::settings::{Overrides, Settings};
use serde_json::{json, Value};
use support::{cluster, eventually, get_json, http, CONVERGE};

fn settings(name: &str, join: Vec<String>, data_dir: Option<&Path>) -> Settings {
    Settings::resolve(
        None,
        Overrides {
            name: Some(name.to_string()),
            bind: Some("127.0.0.1:0".to_string()),
            http: Some("127.0.0.1:0".to_string()),
            preset: Some("local".to_string()),
            join,
            data_dir: data_dir.map(Path::to_path_buf),
            ..Default::default()
        },
    )
    .expect("valid test settings")
}

/// A PUT as py-consul sends it: the body as `json.dumps` text; the status and body.
async fn put(node: &App, path: &str, body: Option<Value>) -> (u16, String) {
    let mut r = http().put(format!("http://{}{path}", node.http_addr));
    if let Some(body) = body {
        r = r.body(body.to_string());
    }
    let response = r.send().await.expect("answered");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn put_ok(node: &App, path: &str, body: Option<Value>) {
    let (status, text) = put(node, path, body).await;
    assert_eq!(status, 200, "PUT {path}: {text}");
}

/// Wait until `node` holds `id` with the aggregate `health`.
async fn health_on(node: &App, id: &str, health: Health, what: &str) {
    let id = InstanceId::new(id).unwrap();
    let seen = node
        .handle
        .wait_for(CONVERGE, |s| {
            s.registry.get(&id).is_some_and(|i| i.health == health)
        })
        .await;
    assert!(seen.is_some(), "{what}");
}

/// The status of each check in a Consul check list, by id.
fn statuses(checks: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = checks
        .as_array()
        .expect("a list of checks")
        .iter()
        .map(|c| {
            (
                c["CheckID"].as_str().unwrap_or_default().to_string(),
                c["Status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pair(id: &str, status: &str) -> (String, String) {
    (id.to_string(), status.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_checks_of_their_own_ids_are_reported_by_id_and_aggregated_on_another_node() {
    let nodes = cluster("checks-ids-", 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    // py-consul: agent.service.register("db", service_id="db-1", address=..., port=...,
    // check=dict(Check.ttl("30s"), CheckID="db-ttl"), extra_checks=[dict(Check.ttl("30s"),
    // CheckID="db-ready", Name="ready")]).
    let body = json!({
        "name": "db", "id": "db-1", "address": "127.0.0.1", "port": 5432,
        "checks": [
            {"ttl": "30s", "CheckID": "db-ttl"},
            {"ttl": "30s", "CheckID": "db-ready", "Name": "ready", "Notes": "accepts writes"},
        ],
    });
    put_ok(a, "/v1/agent/service/register", Some(body)).await;
    let checks = get_json(a.http_addr, "/v1/agent/checks").await;
    let ids: Vec<&str> = checks
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(ids, ["db-ready", "db-ttl"], "keyed by their own ids");
    assert_eq!(checks["db-ready"]["Name"], "ready");
    assert_eq!(checks["db-ready"]["Notes"], "accepts writes");
    assert_eq!(checks["db-ttl"]["ServiceID"], "db-1");

    put_ok(a, "/v1/agent/check/pass/db-ttl?note=alive", None).await;
    put_ok(a, "/v1/agent/check/fail/db-ready?note=read-only", None).await;
    // Both TTL checks start critical, so the aggregate alone says nothing yet: wait for b to
    // hold the pass of one and the failure of the other.
    eventually(
        CONVERGE,
        "b sees db-ttl passing and db-ready critical",
        || async {
            let on_b = statuses(&get_json(b.http_addr, "/v1/health/checks/db").await);
            (on_b == [pair("db-ready", "critical"), pair("db-ttl", "passing")]).then_some(())
        },
    )
    .await;
    health_on(
        b,
        "db-1",
        Health::Critical,
        "b sees db-1 critical: one check fails",
    )
    .await;
    let entries = get_json(b.http_addr, "/v1/health/service/db").await;
    let listed = statuses(&entries[0]["Checks"]);
    assert!(listed.contains(&pair("db-ttl", "passing")), "{listed:?}");
    assert!(listed.contains(&pair("db-ready", "critical")), "{listed:?}");
    let on_b = statuses(&get_json(b.http_addr, "/v1/health/checks/db").await);
    assert_eq!(
        on_b,
        [pair("db-ready", "critical"), pair("db-ttl", "passing")]
    );
    let critical = statuses(&get_json(b.http_addr, "/v1/health/state/critical").await);
    assert_eq!(
        critical,
        [pair("db-ready", "critical")],
        "each check listed"
    );
    let passing = get_json(b.http_addr, "/v1/health/service/db?passing=1").await;
    assert_eq!(passing.as_array().map(Vec::len), Some(0));
    let output = &get_json(a.http_addr, "/v1/agent/checks").await["db-ready"]["Output"];
    assert_eq!(output, "read-only", "the note is the output");

    // An update by id, as Consul's JSON; the worst is now a warning.
    put_ok(
        a,
        "/v1/agent/check/update/db-ready",
        Some(json!({"Status": "warning", "Output": "lagging"})),
    )
    .await;
    health_on(b, "db-1", Health::Warning, "b sees the warning").await;
    put_ok(a, "/v1/agent/check/pass/db-ready", None).await;
    health_on(b, "db-1", Health::Passing, "b sees db-1 passing").await;
    // An unknown id is Consul's 404.
    let (status, _) = put(a, "/v1/agent/check/pass/nope", None).await;
    assert_eq!(status, 404);
    for n in nodes {
        n.shutdown().await;
    }
}

/// Bind `addr` again (the port the check targets), retrying for a bounded while.
fn bind_again(addr: SocketAddr) -> TcpListener {
    for _ in 0..200 {
        if let Ok(listener) = TcpListener::bind(addr) {
            return listener;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{addr} could not be bound again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_check_follows_a_real_listener() {
    let nodes = cluster("checks-tcp-", 1).await;
    let a = &nodes[0];
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // py-consul: Check.tcp("127.0.0.1", port, "1s", timeout="1s").
    let body = json!({
        "name": "cache", "id": "cache-1", "port": addr.port(),
        "checks": [{"tcp": addr.to_string(), "interval": "1s", "timeout": "1s"}],
    });
    put_ok(a, "/v1/agent/service/register", Some(body)).await;
    health_on(a, "cache-1", Health::Passing, "passing while it listens").await;
    let checks = get_json(a.http_addr, "/v1/agent/checks").await;
    assert_eq!(checks["service:cache-1"]["Type"], "tcp");
    drop(listener);
    health_on(a, "cache-1", Health::Critical, "critical once closed").await;
    let _listener = bind_again(addr);
    health_on(a, "cache-1", Health::Passing, "passing once bound again").await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_alone_checks_of_a_service_and_of_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let a = App::start(settings("checks-node-a", vec![], Some(dir.path())), 1)
        .await
        .expect("node starts");
    let b = App::start(
        settings("checks-node-b", vec![a.gossip_addr.to_string()], None),
        2,
    )
    .await
    .expect("node starts");
    for (id, port) in [("web-1", 81), ("web-2", 82)] {
        let body = json!({"name": "web", "id": id, "address": "127.0.0.1", "port": port});
        put_ok(&a, "/v1/agent/service/register", Some(body)).await;
    }
    health_on(&b, "web-2", Health::Passing, "b holds web-2 passing").await;

    // py-consul: agent.check.register("mem", Check.ttl("30s"), check_id="web-1-mem",
    // service_id="web-1").
    let body = json!({"name": "mem", "ttl": "30s", "id": "web-1-mem", "serviceid": "web-1"});
    put_ok(&a, "/v1/agent/check/register", Some(body)).await;
    health_on(&b, "web-1", Health::Critical, "a TTL check starts critical").await;
    let checks = get_json(a.http_addr, "/v1/agent/checks").await;
    assert_eq!(checks["web-1-mem"]["ServiceID"], "web-1");
    put_ok(&a, "/v1/agent/check/deregister/web-1-mem", None).await;
    health_on(&b, "web-1", Health::Passing, "its check gone, web-1 passes").await;
    let checks = get_json(a.http_addr, "/v1/agent/checks").await;
    assert!(checks.get("web-1-mem").is_none(), "{checks}");
    let (status, _) = put(&a, "/v1/agent/check/deregister/web-1-mem", None).await;
    assert_eq!(status, 404, "already gone");

    // A node check (no service id): critical makes every instance of the node critical.
    let body = json!({"name": "disk", "ttl": "30s", "id": "disk"});
    put_ok(&a, "/v1/agent/check/register", Some(body)).await;
    put_ok(&a, "/v1/agent/check/fail/disk?note=full", None).await;
    health_on(&b, "web-1", Health::Critical, "node check fails web-1").await;
    health_on(&b, "web-2", Health::Critical, "node check fails web-2").await;
    let checks = get_json(a.http_addr, "/v1/agent/checks").await;
    assert_eq!(checks["disk"]["Status"], "critical");
    assert_eq!(checks["disk"]["ServiceID"], "");

    // It survives a restart with the data_dir.
    a.shutdown().await;
    let a = App::start(settings("checks-node-a", vec![], Some(dir.path())), 3)
        .await
        .expect("node restarts");
    let checks = get_json(a.http_addr, "/v1/agent/checks").await;
    assert_eq!(checks["disk"]["Status"], "critical", "{checks}");
    health_on(
        &a,
        "web-1",
        Health::Critical,
        "still critical after restart",
    )
    .await;
    put_ok(&a, "/v1/agent/check/pass/disk", None).await;
    health_on(&a, "web-1", Health::Passing, "node check passes").await;
    health_on(&a, "web-2", Health::Passing, "node check passes").await;
    put_ok(&a, "/v1/agent/check/deregister/disk", None).await;
    let checks = get_json(a.http_addr, "/v1/agent/checks").await;
    assert!(checks.get("disk").is_none(), "{checks}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_bounds_are_refused_by_name() {
    let nodes = cluster("checks-bounds-", 1).await;
    let a = &nodes[0];
    let nine: Vec<Value> = (0..9)
        .map(|n| json!({"CheckID": format!("c{n}"), "TTL": "30s"}))
        .collect();
    let (status, text) = put(
        a,
        "/v1/agent/service/register",
        Some(json!({"Name": "x", "Checks": nine})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        text.contains("Checks has 9") && text.contains("0 to 8"),
        "{text}"
    );
    let twice = json!({"Name": "x", "Checks": [{"CheckID": "c", "TTL": "30s"}, {"CheckID": "c", "TTL": "30s"}]});
    let (status, text) = put(a, "/v1/agent/service/register", Some(twice)).await;
    assert_eq!(status, 400);
    assert!(text.contains("CheckID"), "{text}");
    let bad_tcp = json!({"Name": "x", "Check": {"TCP": "nohost", "Interval": "10s"}});
    let (status, text) = put(a, "/v1/agent/service/register", Some(bad_tcp)).await;
    assert_eq!(status, 400);
    assert!(text.contains("TCP"), "{text}");
    for n in nodes {
        n.shutdown().await;
    }
}
