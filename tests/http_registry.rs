//! The registry through real HTTP against real nodes on loopback: the seed API, Consul's API
//! (with blocking queries) and hera's own, replication between nodes, expiry, maintenance,
//! deregistration, a failed owner, bad input, and a late joiner.
//!
//! Over 600 lines: each test is one user story told end to end (the seed README's examples,
//! a Consul registration's life across three nodes, renewal and expiry, blocking queries).

mod support;

use std::time::Duration;

use hera::names::InstanceId;
use hera::runtime::app::App;
use hera::runtime::driver::Snapshot;
use hera::runtime::settings::{FileSettings, Settings};
use serde_json::{json, Value};
use support::{http, shutdown, url, CONVERGE};

fn settings(name: &str, join: Vec<String>, liveness: Option<&str>) -> Settings {
    let file = FileSettings::parse(&match liveness {
        Some(text) => format!("liveness = {text:?}\n"),
        None => String::new(),
    })
    .expect("a valid test file");
    Settings::resolve(
        Some((std::path::Path::new("test.toml"), file)),
        support::overrides(name, join),
    )
    .expect("valid test settings")
}

async fn cluster(n: usize, liveness: Option<&str>) -> Vec<App> {
    support::cluster_with(n, 1, |i, join| settings(&format!("h{i}"), join, liveness)).await
}

/// The `X-Consul-Index` an answer carries.
fn consul_index(answer: &reqwest::Response) -> u64 {
    answer.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn has(s: &Snapshot, id: &str) -> bool {
    s.registry.get(&InstanceId::new(id).unwrap()).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_readme_examples_work_as_written() {
    let nodes = cluster(2, None).await;
    let c = http();
    // curl -XPUT -d '{...}' sends application/x-www-form-urlencoded; that must not matter.
    let put = c
        .put(url(
            &nodes[0],
            "/storage/1f11bbbb-df7a-47c5-8ba7-662f70261673",
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"host":"10.1.1.1", "port": 12345, "updated_at": "2012-12-18T13:27:01Z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let seen = nodes[1]
        .handle
        .wait_for(CONVERGE, |s| has(s, "1f11bbbb-df7a-47c5-8ba7-662f70261673"))
        .await;
    assert!(seen.is_some());
    let pretty = c
        .get(url(&nodes[1], "/storage?pretty"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expected = json!({"1f11bbbb-df7a-47c5-8ba7-662f70261673": {"host": "10.1.1.1", "port": 12345, "updated_at": "2012-12-18T13:27:01Z"}});
    assert_eq!(serde_json::from_str::<Value>(&pretty).unwrap(), expected);
    assert!(pretty.contains("\n  \""), "?pretty indents: {pretty}");
    // An unknown service has no instances.
    let none: Value = c
        .get(url(&nodes[0], "/nothing-here"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none, json!({}));
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_register_health_maintenance_deregister_across_three_nodes() {
    let nodes = cluster(3, None).await;
    let c = http();
    let body = json!({"name": "web", "id": "web-1", "address": "10.0.0.2", "port": 80, "tags": ["v1"], "check": {"ttl": "30s"}});
    // Lower-case keys and no content type: Consul accepts both.
    let r = c
        .put(url(&nodes[0], "/v1/agent/service/register"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for n in &nodes {
        assert!(n
            .handle
            .wait_for(CONVERGE, |s| has(s, "web-1"))
            .await
            .is_some());
    }
    // A TTL check starts critical: not in ?passing.
    let passing: Vec<Value> = c
        .get(url(&nodes[2], "/v1/health/service/web?passing"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(passing.is_empty());
    assert_eq!(
        c.put(url(&nodes[0], "/v1/agent/check/pass/service:web-1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Both other nodes are read below: wait until each holds the pass (gossip reaches them
    // in its own order).
    for node in &nodes[1..] {
        let healthy = node.handle.wait_for(CONVERGE, |s| {
            s.registry
                .get(&InstanceId::new("web-1").unwrap())
                .is_some_and(|i| i.health == hera::registry::Health::Passing)
        });
        assert!(healthy.await.is_some());
    }
    let passing: Vec<Value> = c
        .get(url(&nodes[2], "/v1/health/service/web?passing=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(passing.len(), 1);
    assert_eq!(passing[0]["Service"]["ID"], "web-1");
    assert_eq!(
        c.get(url(&nodes[1], "/v1/agent/health/service/id/web-1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Maintenance: shows as a critical check and is filtered by ?passing.
    let r = c
        .put(url(
            &nodes[1],
            "/v1/agent/service/maintenance/web-1?enable=true&reason=deploy",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Both nodes asked below must have heard: seeing it on one says nothing of the other.
    for node in [&nodes[2], &nodes[0]] {
        let offline = node.handle.wait_for(CONVERGE, |s| {
            s.registry
                .get(&InstanceId::new("web-1").unwrap())
                .is_some_and(|i| !i.online)
        });
        assert!(offline.await.is_some());
    }
    let passing: Vec<Value> = c
        .get(url(&nodes[2], "/v1/health/service/web?passing"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(passing.is_empty(), "an off-line instance is not passing");
    let all: Vec<Value> = c
        .get(url(&nodes[2], "/v1/health/service/web"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let checks = all[0]["Checks"].as_array().unwrap();
    assert!(checks
        .iter()
        .any(|c| c["CheckID"] == "_service_maintenance:web-1" && c["Status"] == "critical"));
    assert_eq!(
        c.get(url(&nodes[0], "/v1/agent/health/service/id/web-1"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    // Deregister: gone everywhere, and it stays gone.
    assert_eq!(
        c.put(url(&nodes[2], "/v1/agent/service/deregister/web-1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for n in &nodes {
        assert!(n
            .handle
            .wait_for(CONVERGE, |s| !has(s, "web-1"))
            .await
            .is_some());
    }
    let catalog: Vec<Value> = c
        .get(url(&nodes[0], "/v1/catalog/service/web"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(catalog.is_empty());
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_an_instance_and_silence_expires_it() {
    let nodes = cluster(2, Some("2s")).await;
    let c = http();
    let put = || {
        c.put(url(&nodes[0], "/svc/a-1"))
            .body(r#"{"host":"h","port":1}"#)
            .send()
    };
    assert_eq!(put().await.unwrap().status(), 200);
    assert!(nodes[1]
        .handle
        .wait_for(CONVERGE, |s| has(s, "a-1"))
        .await
        .is_some());
    // Renew three times, a second apart: still there after three seconds.
    for _ in 0..3 {
        let mut watch = nodes[0].handle.watch();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                if watch.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        assert_eq!(put().await.unwrap().status(), 200);
    }
    assert!(has(&nodes[1].handle.snapshot(), "a-1"));
    // Silence: expired on both nodes.
    for n in &nodes {
        assert!(
            n.handle
                .wait_for(CONVERGE, |s| !has(s, "a-1"))
                .await
                .is_some(),
            "did not expire"
        );
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_query_returns_on_change_and_after_its_wait() {
    let nodes = cluster(2, None).await;
    let c = http();
    let first = c
        .get(url(&nodes[1], "/v1/catalog/services"))
        .send()
        .await
        .unwrap();
    let index = consul_index(&first);
    assert_eq!(first.headers()["x-consul-knownleader"], "true");

    // Without a change, it returns after its wait with the same index.
    #[allow(clippy::disallowed_methods)] // the test measures wall time on purpose
    let started = tokio::time::Instant::now();
    let r = c
        .get(url(
            &nodes[1],
            &format!("/v1/catalog/services?index={index}&wait=300ms"),
        ))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        r.headers()["x-consul-index"].to_str().unwrap(),
        index.to_string()
    );

    // With a change on another node, it returns promptly with a higher index.
    let blocked = c
        .get(url(
            &nodes[1],
            &format!("/v1/catalog/services?index={index}&wait=60s"),
        ))
        .send();
    let register = async {
        c.put(url(&nodes[0], "/v1/agent/service/register"))
            .body(json!({"Name": "db", "Port": 5432}).to_string())
            .send()
            .await
            .unwrap()
    };
    let (answer, reg) = tokio::join!(blocked, register);
    assert_eq!(reg.status(), 200);
    let answer = answer.unwrap();
    let new_index = consul_index(&answer);
    assert!(new_index > index);
    let services: Value = answer.json().await.unwrap();
    assert!(services.get("db").is_some(), "{services}");
    shutdown(nodes).await;
}

/// Issue 17 (1,000 watchers on one node): past `blocking_waiters_max` waiting queries, a
/// blocking query is refused at once with 429, a `Retry-After` and a body naming the bound.
/// It used to be answered at once with the unchanged index, as if timed out, so a watcher
/// asked again at once and spun. The waiters within the bound keep waiting, and all wake on
/// the next write with a higher index. The bound is lowered to 8 here, with 18 watchers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_past_the_bound_are_refused_with_retry_after_and_the_rest_wake_on_a_write() {
    const BOUND: usize = 8;
    const WATCHERS: usize = BOUND + 10;
    let file = FileSettings::parse(&format!("blocking_waiters_max = {BOUND}\n"))
        .expect("the bound is a setting of the config file");
    let settings = Settings::resolve(
        Some((std::path::Path::new("test.toml"), file)),
        support::overrides("w0", vec![]),
    )
    .expect("valid test settings");
    let node = App::start(settings, 1).await.expect("node starts");
    let c = http();
    let first = c
        .get(url(&node, "/v1/catalog/services"))
        .send()
        .await
        .unwrap();
    let index = consul_index(&first);

    let (tx, mut rx) = tokio::sync::mpsc::channel(WATCHERS);
    let watch = url(
        &node,
        &format!("/v1/catalog/services?index={index}&wait=60s"),
    );
    for _ in 0..WATCHERS {
        let (c, watch, tx) = (c.clone(), watch.clone(), tx.clone());
        tokio::spawn(async move {
            let r = c.get(watch).send().await.expect("an answer");
            let header = |name: &str| {
                r.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (retry_after, index) = (header("retry-after"), header("x-consul-index"));
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let _ = tx.send((status, retry_after, index, body)).await;
        });
    }
    drop(tx);

    // The ten past the bound are refused at once; the other eight are still waiting.
    for _ in 0..WATCHERS - BOUND {
        let (status, retry_after, _, body) = tokio::time::timeout(CONVERGE, rx.recv())
            .await
            .expect("the watchers past the bound are answered at once")
            .expect("an answer");
        assert_eq!(status, 429, "{body}");
        let secs: u64 = retry_after
            .expect("a Retry-After header")
            .parse()
            .expect("Retry-After in seconds");
        assert!(secs >= 1, "{secs}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("at most {BOUND}")) && error.contains("blocking_waiters_max"),
            "{body}"
        );
    }
    assert!(
        rx.try_recv().is_err(),
        "a watcher within the bound was answered before any change"
    );

    // A write wakes every one within the bound, each with a higher index.
    let reg = c
        .put(url(&node, "/v1/agent/service/register"))
        .body(json!({"Name": "db", "Port": 5432}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 200);
    for _ in 0..BOUND {
        let (status, _, seen, body) = tokio::time::timeout(CONVERGE, rx.recv())
            .await
            .expect("every waiter wakes on the write")
            .expect("an answer");
        assert_eq!(status, 200, "{body}");
        let seen: u64 = seen.expect("X-Consul-Index").parse().unwrap();
        assert!(seen > index, "{seen} after {index}");
        assert!(body.get("db").is_some(), "{body}");
    }
    assert!(rx.recv().await.is_none(), "no more answers than watchers");

    // Their slots are free again: a new blocking query waits rather than being refused.
    let r = c
        .get(url(
            &node,
            &format!("/v1/catalog/services?index={}&wait=50ms", index + 1),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    node.shutdown().await;
}

/// Consul's hash-based blocking on `/v1/agent/service/<id>`: every answer carries
/// `X-Consul-ContentHash`; `?hash=` of the current answer holds the read until the service
/// changes (here through another node) or the wait runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_service_blocks_on_its_content_hash() {
    let nodes = cluster(2, None).await;
    let c = http();
    let register = |node: usize, tags: Value| {
        c.put(url(&nodes[node], "/v1/agent/service/register"))
            .body(json!({"Name": "api", "ID": "api-1", "Port": 8080, "Tags": tags}).to_string())
            .send()
    };
    assert_eq!(register(0, json!(["v1"])).await.unwrap().status(), 200);
    let first = c
        .get(url(&nodes[0], "/v1/agent/service/api-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let hash = first.headers()["x-consul-contenthash"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(hash.len(), 16, "{hash}");
    let unchanged = c
        .get(url(&nodes[0], "/v1/agent/service/api-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.headers()["x-consul-contenthash"], hash.as_str());

    // No change: it answers after its wait, with the same hash.
    #[allow(clippy::disallowed_methods)] // the test measures wall time on purpose
    let started = tokio::time::Instant::now();
    let r = c
        .get(url(
            &nodes[0],
            &format!("/v1/agent/service/api-1?hash={hash}&wait=300ms"),
        ))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.headers()["x-consul-contenthash"], hash.as_str());

    // A change made on the other node ends the wait with the new definition and a new hash.
    let blocked = c
        .get(url(
            &nodes[0],
            &format!("/v1/agent/service/api-1?hash={hash}&wait=60s"),
        ))
        .send();
    let (answer, reg) = tokio::join!(blocked, register(1, json!(["v2"])));
    assert_eq!(reg.unwrap().status(), 200);
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 200);
    assert_ne!(answer.headers()["x-consul-contenthash"], hash.as_str());
    let service: Value = answer.json().await.unwrap();
    assert_eq!(service["Tags"], json!(["v2"]), "{service}");

    // Unknown ids and bad waits are refused, not held.
    let missing = c
        .get(url(&nodes[0], "/v1/agent/service/nope?hash=0&wait=60s"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = c
        .get(url(
            &nodes[0],
            &format!("/v1/agent/service/api-1?hash={hash}&wait=soon"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_a_killed_owner_leave_the_other_nodes() {
    let mut nodes = cluster(3, None).await;
    let c = http();
    let r = c
        .put(url(&nodes[2], "/v1/agent/service/register"))
        .body(json!({"Name": "cache", "ID": "cache-2"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for n in &nodes {
        assert!(n
            .handle
            .wait_for(CONVERGE, |s| has(s, "cache-2"))
            .await
            .is_some());
    }
    nodes.pop().unwrap().abort().await;
    for n in &nodes {
        assert!(
            n.handle
                .wait_for(CONVERGE, |s| !has(s, "cache-2"))
                .await
                .is_some(),
            "owner's instance stayed"
        );
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hera_api_assigns_ids_answers_from_any_node_and_picks() {
    let nodes = cluster(2, None).await;
    let c = http();
    let r = c
        .post(url(&nodes[0], "/v1/hera/instances"))
        .body(json!({"Name": "api", "Address": "10.0.0.9", "Port": 9000}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(nodes[1]
        .handle
        .wait_for(CONVERGE, |s| has(s, &id))
        .await
        .is_some());
    let one: Value = c
        .get(url(&nodes[1], &format!("/v1/hera/instances/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["Service"], "api");
    assert_eq!(one["Owner"], "h0");
    let services: Value = c
        .get(url(&nodes[1], "/v1/hera/services"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(services["api"], json!([id]));
    let picked: Value = c
        .get(url(&nodes[1], "/v1/hera/pick/api?strategy=lru"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(picked["ID"], id.as_str());
    // Off-line: nothing to pick.
    assert_eq!(
        c.put(url(
            &nodes[1],
            &format!("/v1/hera/instances/{id}/offline?reason=x")
        ))
        .send()
        .await
        .unwrap()
        .status(),
        200
    );
    assert_eq!(
        c.get(url(&nodes[1], "/v1/hera/pick/api"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_4xx_with_a_json_error_and_change_nothing() {
    let nodes = cluster(1, None).await;
    let c = http();
    let index_before = nodes[0].handle.snapshot().registry.index();
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (c.put(url(&nodes[0], "/storage/1")).body("[1, 2]"), 400),
        (c.put(url(&nodes[0], "/storage/1")).body("not json"), 400),
        (c.put(url(&nodes[0], "/bad%20name/1")).body("{}"), 400),
        (c.put(url(&nodes[0], "/storage/bad%20id")).body("{}"), 400),
        (
            c.put(url(&nodes[0], "/storage/1"))
                .body(format!("{{\"x\":\"{}\"}}", "y".repeat(2_000))),
            400,
        ),
        (
            c.put(url(&nodes[0], "/storage/1"))
                .body(vec![b'{'; 100_000]),
            413,
        ),
        (
            c.put(url(&nodes[0], "/v1/agent/service/register"))
                .body(json!({"ID": "x"}).to_string()),
            400,
        ),
        (
            c.put(url(&nodes[0], "/v1/agent/service/register"))
                .body(json!({"Name": "a", "Port": 70000}).to_string()),
            400,
        ),
        (
            c.put(url(&nodes[0], "/v1/agent/service/register"))
                .body(json!({"Name": "a", "Check": {"TTL": "soon"}}).to_string()),
            400,
        ),
        (
            c.put(url(&nodes[0], "/v1/agent/service/deregister/nope")),
            404,
        ),
        (
            c.put(url(&nodes[0], "/v1/agent/check/pass/service:nope")),
            404,
        ),
        (
            c.put(url(
                &nodes[0],
                "/v1/agent/service/maintenance/nope?enable=true",
            )),
            404,
        ),
        (c.get(url(&nodes[0], "/v1/hera/instances/nope")), 404),
        (c.get(url(&nodes[0], "/v1/catalog/services?index=abc")), 400),
    ];
    for (request, status) in cases {
        let r = request.send().await.unwrap();
        let code = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(code, status, "{text}");
        if status != 413 {
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
            assert!(v["error"].is_string(), "{text}");
        }
    }
    assert_eq!(
        nodes[0].handle.snapshot().registry.index(),
        index_before,
        "a bad request changed the registry"
    );
    shutdown(nodes).await;
}

/// Consul parity (its `AgentRegisterService`): an address naming every interface (`ipaddr.IsAny`:
/// `0.0.0.0`, `::`, `[::]`) is refused with 400 "Invalid service address", since no client can
/// reach a service there. Any other text is taken, `::1:80` included (Go's `net.ParseIP` reads
/// it as the IPv6 address 0:0:0:0:0:0:1:80, not as ::1 port 80), and so is a check id equal to
/// another service's default check id (Consul's agent takes any `CheckID`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_naming_every_interface_are_refused_as_consul_refuses_them() {
    let nodes = cluster(1, None).await;
    let c = http();
    let register = |body: Value| {
        c.put(url(&nodes[0], "/v1/agent/service/register"))
            .body(body.to_string())
            .send()
    };
    for address in ["0.0.0.0", "::", "[::]"] {
        let r = register(json!({"Name": "web", "ID": "any-1", "Address": address}))
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{address}");
        let v: Value = r.json().await.unwrap();
        let error = v["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("Invalid service address"),
            "{address}: {error}"
        );
        assert!(error.contains(address), "{address}: {error}");
    }
    assert!(!has(&nodes[0].handle.snapshot(), "any-1"));
    let r = register(json!({"Name": "web", "ID": "v6-1", "Address": "::1:80", "Port": 80}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = register(json!({
        "Name": "db", "ID": "db-1", "Check": {"CheckID": "service:v6-2", "TTL": "30s"}
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_after_2000_registrations_converges_to_all() {
    let nodes = cluster(2, None).await;
    let c = http();
    for k in 0..2_000 {
        let r = c
            .put(url(&nodes[k % 2], "/v1/agent/service/register"))
            .body(json!({"Name": format!("svc-{}", k % 20), "ID": format!("i-{k}"), "Port": 1000 + k}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let seed = nodes[0].gossip_addr.to_string();
    let late = App::start(settings("late", vec![seed], None), 99)
        .await
        .unwrap();
    let all = late
        .handle
        .wait_for(Duration::from_secs(60), |s| s.registry.len() == 2_000)
        .await;
    assert!(
        all.is_some(),
        "late joiner holds {}",
        late.handle.snapshot().registry.len()
    );
    late.shutdown().await;
    shutdown(nodes).await;
}
