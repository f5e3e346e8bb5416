//! Hostile requests against a real node on loopback: every one is refused with a 4xx and a
//! JSON error, the node stays up, and nothing it holds changes.
//!
//! Over 600 lines: one test per class of hostile input (durations, booleans, bodies, check
//! kinds, every route with hostile values, silent connections); each is independent.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::{cluster, http, CONVERGE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The node still answers an ordinary read.
async fn alive(http: &reqwest::Client, base: &str) {
    let r = http
        .get(format!("{base}/v1/agent/self"))
        .send()
        .await
        .expect("the node still answers");
    assert_eq!(r.status(), 200);
}

async fn refused_with_json(r: reqwest::Response, what: &str) -> Value {
    let status = r.status();
    let body = r.text().await.expect("a body");
    assert!(status.is_client_error(), "{what}: answered {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: not JSON: {body:?}"))
}

/// Issue 12, item 1: a `wait` no duration can hold used to abort the process before routing,
/// on any path and without a token; so did the same text in a body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_no_duration_can_hold_are_refused_not_fatal() {
    let nodes = cluster("hostile-wait", 1).await;
    let base = format!("http://{}", nodes[0].http_addr);
    let http = http();

    // The seed API's `GET /<service>` does not block, so it answers; it used to abort the
    // node all the same, since the request time bound parsed `wait` before routing.
    let r = http
        .get(format!("{base}/anything?index=1&wait=1e20"))
        .send()
        .await
        .expect("the node answers instead of aborting");
    assert_eq!(r.status(), 200);
    alive(&http, &base).await;

    for query in [
        "/v1/catalog/services?index=1&wait=1e20",
        "/v1/agent/service/x?hash=x&wait=2e19",
        "/v1/catalog/services?index=1&wait=NaN",
        "/v1/catalog/services?index=1&wait=-5s",
    ] {
        let r = http.get(format!("{base}{query}")).send().await;
        let r = r.unwrap_or_else(|e| panic!("{query}: the node dropped the request: {e}"));
        refused_with_json(r, query).await;
        alive(&http, &base).await;
    }

    let register = http
        .put(format!("{base}/v1/agent/service/register"))
        .json(&json!({"Name": "web", "ID": "web-1", "Check": {"TTL": "1e20"}}))
        .send()
        .await
        .expect("register answered");
    refused_with_json(register, "TTL 1e20").await;
    for body in [
        json!({"Liveness": "1e20"}),
        json!({"SuspicionBase": "2e19"}),
    ] {
        let r = http
            .put(format!("{base}/v1/hera/config"))
            .json(&body)
            .send()
            .await
            .expect("config answered");
        refused_with_json(r, &body.to_string()).await;
    }
    alive(&http, &base).await;
    let s = nodes[0].handle.snapshot();
    assert_eq!(s.registry.len(), 0, "a refused register changed nothing");

    // A huge but readable wait is clamped to Consul's maximum like any other long wait, be it
    // longer than any duration may be: the read is accepted (200, not 400) and answers by the
    // time the registry has changed. Whether it was already waiting when the write landed is
    // left to the race; the blocking itself is `http_registry`'s blocking-query test.
    let blocked = {
        let http = http.clone();
        let url = format!("{base}/v1/catalog/services?index=1&wait=18446744073709552");
        tokio::spawn(async move { http.get(url).send().await })
    };
    let r = http
        .put(format!("{base}/v1/agent/service/register"))
        .json(&json!({"Name": "web", "ID": "web-1"}))
        .send()
        .await
        .expect("register answered");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let answer = tokio::time::timeout(Duration::from_secs(20), blocked)
        .await
        .expect("the blocked read answers once the registry changes")
        .expect("task")
        .expect("response");
    assert_eq!(answer.status(), 200);
    for n in nodes {
        n.shutdown().await;
    }
}

/// A loopback endpoint that accepts and never answers, counting connections: how many it saw,
/// and the most open at once.
struct SilentEndpoint {
    addr: std::net::SocketAddr,
    seen: Arc<AtomicUsize>,
    most_open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentEndpoint {
    async fn start() -> SilentEndpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(AtomicUsize::new(0));
        let most_open = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let task = {
            let (seen, most_open) = (seen.clone(), most_open.clone());
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    most_open.fetch_max(now, Ordering::SeqCst);
                    let open = open.clone();
                    tokio::spawn(async move {
                        // Read (and ignore) until the client gives up and closes.
                        let mut buf = [0u8; 1024];
                        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        SilentEndpoint {
            addr,
            seen,
            most_open,
            task,
        }
    }
}

impl Drop for SilentEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn register(http: &reqwest::Client, base: &str, body: &Value) -> reqwest::Response {
    http.put(format!("{base}/v1/agent/service/register"))
        .json(body)
        .send()
        .await
        .expect("register answered")
}

/// Issue 12, item 7: `"Interval":"1ns","Timeout":"1h"` against a silent endpoint filled every
/// check slot, overlapped the checks of one instance and grew a queue without bound. Now the
/// interval and timeout are bounded (a timeout never longer than the interval), and against a
/// silent endpoint the checks of one instance run one at a time, each freed by its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_bounded_and_never_overlap() {
    let nodes = cluster("hostile-checks", 1).await;
    let base = format!("http://{}", nodes[0].http_addr);
    let http = http();
    let silent = SilentEndpoint::start().await;
    let url = format!("http://{}/health", silent.addr);

    let refused = [
        json!({"Name": "web", "ID": "w", "Check": {"HTTP": url, "Interval": "1ns", "Timeout": "1h"}}),
        json!({"Name": "web", "ID": "w", "Check": {"HTTP": url, "Interval": "999ms"}}),
        json!({"Name": "web", "ID": "w", "Check": {"HTTP": url, "Interval": "2s", "Timeout": "5s"}}),
        json!({"Name": "web", "ID": "w", "Check": {"HTTP": url, "Interval": "400h"}}),
        json!({"Name": "web", "ID": "w", "Check": {"TTL": "1ns"}}),
        json!({"Name": "web", "ID": "w", "Check": {"TTL": "15s", "DeregisterCriticalServiceAfter": "1ns"}}),
        json!({"Name": "web", "ID": "w", "Check": {"HTTP": "https://127.0.0.1:1/", "Interval": "10s"}}),
        json!({"Name": "web", "ID": "w", "Check": {"Script": "/bin/true", "Interval": "10s"}}),
        json!({"Name": "web", "ID": "w", "Check": 5}),
        json!({"Name": "web", "ID": "w", "Checks": 5}),
        // Several checks run since issue 18; more than CHECKS_MAX do not.
        json!({"Name": "web", "ID": "w", "Checks": vec![json!({"TTL": "15s"}); 9]}),
    ];
    for body in &refused {
        let error = refused_with_json(register(&http, &base, body).await, &body.to_string()).await;
        assert!(error["error"].is_string(), "{body}: {error}");
    }
    let https = register(&http, &base, &refused[6]).await;
    let error = refused_with_json(https, "https").await;
    assert!(
        error["error"].as_str().unwrap_or("").contains("TLS"),
        "an https check says why it is refused: {error}"
    );
    assert_eq!(nodes[0].handle.snapshot().registry.len(), 0);
    alive(&http, &base).await;

    // The shortest interval, with a timeout as long as it, against an endpoint that never
    // answers: each check ends with its timeout, and the next starts after it.
    let body = json!({"Name": "web", "ID": "web-1",
        "Check": {"HTTP": url, "Interval": "1s", "Timeout": "1s"}});
    let r = register(&http, &base, &body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let critical = nodes[0]
        .handle
        .wait_for(CONVERGE, |s| {
            s.registry
                .instances()
                .any(|i| i.id.as_str() == "web-1" && i.health == hera::registry::Health::Critical)
        })
        .await;
    assert!(critical.is_some(), "a check that times out reads critical");
    // Polled with a bound: 400 looks, 50 ms apart (the CONVERGE bound).
    for _ in 0..400 {
        if silent.seen.load(Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        silent.seen.load(Ordering::SeqCst) >= 3,
        "checks go on after timing out (their slots are freed)"
    );
    assert_eq!(
        silent.most_open.load(Ordering::SeqCst),
        1,
        "the checks of one instance never overlap"
    );
    // The started counter counts checks that ran: the endpoint saw each of them.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let started_total = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hera_health_checks_started_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the started counter is exported");
    let seen = silent.seen.load(Ordering::SeqCst) as f64;
    assert!(
        (started_total - seen).abs() <= 1.0,
        "started {started_total}, endpoint saw {seen}"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

/// Issue 12, item 11: keyring routes take a body with any content type and `"key"` in any
/// case, like every other Consul route (they answered 415 and 422).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_bodies_are_read_like_other_consul_bodies() {
    use hera::runtime::settings::{format_key, FileSettings, Overrides, Settings};
    let key = |b: u8| format_key(&hera::wire::Key::from_bytes([b; 32]));
    let settings = Settings::resolve(
        Some((
            std::path::Path::new("test.toml"),
            FileSettings {
                encrypt: Some(key(1)),
                ..Default::default()
            },
        )),
        Overrides {
            name: Some("hostile-keyring".to_string()),
            bind: Some("127.0.0.1:0".to_string()),
            http: Some("127.0.0.1:0".to_string()),
            preset: Some("local".to_string()),
            ..Default::default()
        },
    )
    .expect("settings");
    let app = hera::runtime::app::App::start(settings, 7)
        .await
        .expect("starts");
    let url = format!("http://{}/v1/operator/keyring", app.http_addr);
    let http = http();
    // curl -d sends a form content type; the key's name in lower case.
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(json!({ "key": key(2) }).to_string())
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let r = http
        .put(&url)
        .body(json!({ "KEY": key(2) }).to_string())
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    for body in ["", "{}", "5", r#"{"Key": 5}"#, "{\"Key\": \"\u{0}\"}"] {
        let r = http.delete(&url).body(body).send().await.expect("answered");
        let error = refused_with_json(r, body).await;
        assert!(error["error"].as_str().is_some(), "{body}");
    }
    app.shutdown().await;
}

/// Issue 12, item 11: `enable=maybe` read as true; every boolean that is not one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booleans_that_are_not_are_refused() {
    let nodes = cluster("hostile-flags", 1).await;
    let base = format!("http://{}", nodes[0].http_addr);
    let http = http();
    let r = register(&http, &base, &json!({"Name": "web", "ID": "web-1"})).await;
    assert_eq!(r.status(), 200);
    for path in [
        "/v1/agent/service/maintenance/web-1?enable=maybe",
        "/v1/agent/service/maintenance/web-1?enable=2",
    ] {
        let r = http
            .put(format!("{base}{path}"))
            .send()
            .await
            .expect("answered");
        refused_with_json(r, path).await;
    }
    for path in [
        "/v1/health/service/web?passing=maybe",
        "/v1/hera/service/web?healthy=yes-please",
    ] {
        let r = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("answered");
        refused_with_json(r, path).await;
    }
    let s = nodes[0].handle.snapshot();
    assert!(
        s.registry.instances().all(|i| i.online),
        "no instance went into maintenance"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

/// Issue 12, item 11: the seed API returns the client's JSON as it was sent; a big integer
/// came back as `1.2345678901234568e+29`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_api_returns_json_as_sent() {
    let nodes = cluster("hostile-seed", 1).await;
    let base = format!("http://{}", nodes[0].http_addr);
    let http = http();
    let sent = r#"{"host":"10.0.0.1","port":80,"big":123456789012345678901234567890,"z":1,"a":[1.50,"\u00e9"]}"#;
    let r = http
        .put(format!("{base}/web/web-1"))
        .body(sent)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let one = http
        .get(format!("{base}/web/web-1"))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text");
    assert_eq!(one.trim(), sent);
    let list = http
        .get(format!("{base}/web"))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text");
    assert_eq!(list.trim(), format!("{{\"web-1\":{sent}}}"));
    let parsed: Value = serde_json::from_str(&list).expect("the list is JSON");
    assert!(parsed["web-1"].is_object());
    for n in nodes {
        n.shutdown().await;
    }
}

/// Issue 12, item 11: what hyper refuses before any handler runs (a NUL or a byte over 127 in
/// the path, a 70 KB URI) came back with an empty body; it is JSON like every other error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_parser_refuses_are_answered_in_json() {
    let nodes = cluster("hostile-parse", 1).await;
    let addr = nodes[0].http_addr;
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70 * 1024));
    let requests: [&[u8]; 5] = [
        b"GET /v1/\x00agent HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        long.as_bytes(),
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"NOT A REQUEST\r\n\r\n",
    ];
    for request in requests {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(CONVERGE, stream.read_to_end(&mut answer))
            .await
            .expect("answered and closed in time")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let shown: String = String::from_utf8_lossy(&request[..request.len().min(40)]).into();
        assert!(answer.starts_with("HTTP/1.1 4"), "{shown:?}: {answer}");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{shown:?}: {head}"
        );
        let json: Value =
            serde_json::from_str(body).unwrap_or_else(|_| panic!("{shown:?}: not JSON: {body:?}"));
        assert!(json["error"].is_string(), "{shown:?}: {json}");
    }
    alive(&http(), &format!("http://{addr}")).await;
    for n in nodes {
        n.shutdown().await;
    }
}

/// Serve a one-route router within `limits`; the answer to `GET /` is `ok`.
async fn small_server(
    limits: hera::runtime::http::ConnectionLimits,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hera::runtime::http::connections::serve(
        listener,
        limits,
        router,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop, server)
}

/// Time until a fresh client's `GET /` is answered.
async fn served_after(addr: std::net::SocketAddr, limit: Duration) -> Option<Duration> {
    #[allow(clippy::disallowed_methods)] // the test measures wall time on purpose
    let started = tokio::time::Instant::now();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(limit)
        .build()
        .expect("client");
    let r = http.get(format!("http://{addr}/")).send().await.ok()?;
    (r.status() == 200).then(|| started.elapsed())
}

/// Open `n` connections that send nothing (or, for every tenth, one header byte at a time).
async fn silent_clients(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
            break;
        };
        held.push(tokio::spawn(async move {
            if i % 10 == 0 {
                // A slow-header client: a byte every 200 ms, never a whole head.
                for byte in b"GET / HTTP/1.1\r\nX-Slow: ".iter().cycle().take(1_000) {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            } else {
                let mut buf = [0u8; 64];
                let _ = stream.read(&mut buf).await;
            }
        }));
    }
    held
}

/// Issue 12, item 8: connections that send nothing (or a header byte a second) held every slot
/// for as long as they liked, locking new clients out. Now each must send a whole head within
/// the header timeout (also the keep-alive idle timeout), so a new client waits at most that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_lock_clients_out() {
    use hera::runtime::http::ConnectionLimits;
    let header_timeout = Duration::from_secs(1);
    let limits = ConnectionLimits {
        open_max: 40,
        header_read_timeout: header_timeout,
        ..ConnectionLimits::default()
    };
    let (addr, stop, server) = small_server(limits).await;
    let held = silent_clients(addr, 60).await;
    let took = served_after(addr, Duration::from_secs(10))
        .await
        .expect("a new client is served once the silent ones time out");
    assert!(
        took < header_timeout + Duration::from_secs(1),
        "served after {took:?}"
    );
    // A keep-alive connection left idle after its answer is closed too.
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = vec![0u8; 256];
    let n = idle.read(&mut answer).await.expect("answer");
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let closed = tokio::time::timeout(header_timeout * 3, idle.read(&mut answer)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "an idle keep-alive connection is closed"
    );
    for h in held {
        h.abort();
    }
    let _ = stop.send(());
    tokio::time::timeout(CONVERGE, server)
        .await
        .expect("the server stops")
        .expect("task")
        .expect("serve");
}

/// Issue 12, item 8, the issue's figure: 3,000 connections that send nothing (every tenth a
/// header byte at a time), more than the production bound of open connections, then a normal
/// GET. At the bound a new client displaces the oldest connection that has not sent a whole
/// request head, so it is served at once rather than after the header timeout (10 s), which
/// is what it waited before. Needs about 6,000 file descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_silent_connections_do_not_lock_a_new_client_out() {
    use hera::runtime::http::connections::{CONNECTIONS_MAX, HEADER_READ_TIMEOUT};
    use hera::runtime::http::ConnectionLimits;
    const { assert!(CONNECTIONS_MAX < 3_000, "the test must cross the bound") };
    let (addr, stop, server) = small_server(ConnectionLimits::default()).await;
    #[allow(clippy::disallowed_methods)] // the test measures wall time on purpose
    let opened = tokio::time::Instant::now();
    let held = silent_clients(addr, 3_000).await;
    assert_eq!(held.len(), 3_000, "opened every connection");
    let took = served_after(addr, HEADER_READ_TIMEOUT * 2)
        .await
        .expect("a new client is served");
    eprintln!(
        "3,000 silent connections opened in {:?}; a new client served {took:?} after",
        opened.elapsed()
    );
    assert!(
        took < HEADER_READ_TIMEOUT / 2,
        "served after {took:?}: it waited for the silent ones to time out"
    );
    for h in held {
        h.abort();
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(CONVERGE, server).await;
}

/// Percent-encode every byte but unreserved ones, for a path segment or a query value.
#[cfg(feature = "fuzzing")]
fn encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Issue 12: every route driven with hostile values (huge, negative, NaN, inf, empty, unicode,
/// very long, repeated keys). Whatever the value: never a 5xx but a bound's 503, every 4xx a
/// JSON error, a refused request changes nothing in the registry, and the node keeps serving.
/// Values that must be refused (durations, ports, booleans, checks) are asserted 4xx. Bounded:
/// a fixed set of routes × values, one request each, over loopback.
#[cfg(feature = "fuzzing")]
#[test]
fn every_route_with_hostile_values() {
    let target = hera::runtime::http::fuzzing::HttpTarget::start();
    let long = "9".repeat(5_000);
    let very_long = "a".repeat(40_000);
    let values: Vec<&str> = vec![
        "",
        "-1",
        "0",
        "NaN",
        "inf",
        "-inf",
        "1e309",
        "1e20",
        "18446744073709551616",
        "-9223372036854775809",
        &long,
        &very_long,
        "é☃\u{202e}\u{0}",
        "../../etc/passwd",
        "null",
        "{}",
        "[]",
        "true",
    ];
    let reads = [
        "/{v}",
        "/{v}/{v}",
        "/v1/agent/service/{v}",
        "/v1/agent/health/service/id/{v}",
        "/v1/agent/health/service/name/{v}",
        "/v1/catalog/service/{v}",
        "/v1/catalog/service/web?tag={v}&dc={v}",
        "/v1/catalog/services?index={v}&wait={v}",
        "/v1/health/service/{v}?passing={v}",
        "/v1/health/checks/{v}",
        "/v1/health/state/{v}",
        "/v1/agent/service/web-1?hash={v}&wait={v}",
        "/v1/hera/services/{v}?healthy={v}",
        "/v1/hera/instances/{v}",
        "/v1/hera/pick/{v}?strategy={v}",
        "/v1/hera/health?service={v}",
        "/v1/agent/members?wan={v}",
        "/web?pretty={v}&pretty={v}",
        "/ui/state?wait={v}",
    ];
    let writes_in_path = [
        ("PUT", "/v1/agent/service/deregister/{v}"),
        ("PUT", "/v1/agent/service/maintenance/{v}?enable={v}"),
        (
            "PUT",
            "/v1/agent/service/maintenance/web-1?enable={v}&enable=true",
        ),
        ("PUT", "/v1/agent/check/pass/{v}?note={v}"),
        ("PUT", "/v1/agent/check/fail/{v}"),
        ("PUT", "/v1/agent/force-leave/{v}"),
        ("PUT", "/v1/hera/instances/{v}/renew"),
        ("PUT", "/v1/hera/instances/{v}/offline?reason={v}"),
        ("DELETE", "/v1/hera/instances/{v}"),
    ];
    // Bodies where `{v}` is a JSON value as written (so `NaN`, `1e309` and `-1` go in bare
    // where JSON allows, and as strings otherwise), each of which must be refused.
    let refused_bodies = [
        r#"{"Name":"web","ID":"x","Port":{v}}"#,
        r#"{"Name":"web","ID":"x","Check":{"TTL":{v}}}"#,
        r#"{"Name":"web","ID":"x","Check":{"TTL":"{s}"}}"#,
        r#"{"Name":"web","ID":"x","Check":{"HTTP":"http://127.0.0.1:1/","Interval":"{s}"}}"#,
        r#"{"Name":"web","ID":"x","Check":{"HTTP":"http://127.0.0.1:1/","Interval":"10s","Timeout":"{s}1h"}}"#,
        r#"{"Name":"web","ID":"x","Check":{"TTL":"24h","DeregisterCriticalServiceAfter":"{s}"}}"#,
        r#"{"Name":"web","ID":"x","Checks":{v}}"#,
        r#"{"Name":"{s}/","ID":"x"}"#,
        r#"{"Name":"web","Name":"{s}/"}"#,
    ];
    let json_value = |v: &str| -> String {
        if serde_json::from_str::<serde_json::Value>(v).is_ok() && !v.is_empty() && v != "true" {
            v.to_string()
        } else {
            serde_json::Value::String(v.to_string()).to_string()
        }
    };
    let json_text = |v: &str| {
        let quoted = serde_json::Value::String(v.to_string()).to_string();
        quoted[1..quoted.len() - 1].to_string()
    };

    let mut before = target.registry_state();
    let mut sent = 0;
    let mut ask = |method: &str, path: &str, body: &str, must_refuse: bool| {
        let input = format!("{method}\n{path}\n{body}");
        let exchange = target.check(input.as_bytes());
        sent += 1;
        let Some(status) = exchange.status else {
            return;
        };
        if (200..300).contains(&status) {
            // An accepted write is the new baseline.
            before = target.registry_state();
        }
        if must_refuse {
            assert!(
                (400..500).contains(&status),
                "{method} {} {}: answered {status}",
                path.chars().take(200).collect::<String>(),
                body.chars().take(200).collect::<String>()
            );
        }
        if (400..500).contains(&status) {
            assert_eq!(
                target.registry_state(),
                before,
                "a refused {method} {} changed the registry",
                path.chars().take(200).collect::<String>()
            );
        }
    };
    for value in &values {
        let v = encoded(value);
        for route in reads {
            ask("GET", &route.replace("{v}", &v), "", false);
        }
        for (method, route) in writes_in_path {
            ask(method, &route.replace("{v}", &v), "", false);
        }
        for body in refused_bodies {
            // The few values that are valid in a field: a port 0, `null` (absent), an empty
            // list of checks, an empty (absent) duration.
            let valid = (body.contains("{v}") && ["0", "null", "[]"].contains(value))
                || (body.contains("Deregister") && value.is_empty());
            let body = body
                .replace("{v}", &json_value(value))
                .replace("{s}", &json_text(value));
            ask("PUT", "/v1/agent/service/register", &body, !valid);
        }
        ask(
            "PUT",
            "/v1/agent/service/maintenance/none?enable=",
            "",
            false,
        );
        let flag = format!("/v1/agent/service/maintenance/web-1?enable={v}x");
        ask("PUT", &flag, "", true);
    }
    assert!(sent > 500, "{sent} requests");
    target.assert_alive();
}

/// Register `check` on a fresh id and return the refusal's error text (asserting a 4xx JSON).
async fn refused_check(http: &reqwest::Client, base: &str, check: &Value) -> String {
    let r = register(
        http,
        base,
        &json!({"Name": "web", "ID": "web-bounds", "Check": check}),
    )
    .await;
    let body = refused_with_json(r, &check.to_string()).await;
    body.get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{check}: no error text in {body}"))
        .to_string()
}

/// Issue 12 leftovers: every duration of a Consul check outside its range is refused with 400
/// and an error naming the field, the value and the allowed range (never clamped, never
/// rounded to zero); a timeout longer than the interval is refused naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_durations_out_of_range_are_refused_naming_field_value_and_range() {
    let nodes = cluster("hostile-check-bounds", 1).await;
    let base = format!("http://{}", nodes[0].http_addr);
    let http = http();
    let url = "http://127.0.0.1:1/health";
    let cases = [
        (json!({"TTL": "500ms"}), "TTL", "500ms"),
        (json!({"TTL": "0.5ms"}), "TTL", ""),
        (json!({"TTL": "1ns"}), "TTL", ""),
        (json!({"TTL": "48h"}), "TTL", "48h"),
        (
            json!({"HTTP": url, "Interval": "100ms"}),
            "Interval",
            "100ms",
        ),
        (json!({"HTTP": url, "Interval": "48h"}), "Interval", "48h"),
        (
            json!({"HTTP": url, "Interval": "10s", "Timeout": "10m"}),
            "Timeout",
            "10m",
        ),
        (
            json!({"TTL": "10s", "DeregisterCriticalServiceAfter": "10s"}),
            "DeregisterCriticalServiceAfter",
            "10s",
        ),
        (
            json!({"TTL": "10s", "DeregisterCriticalServiceAfter": "1000h"}),
            "DeregisterCriticalServiceAfter",
            "",
        ),
    ];
    for (check, field, value) in cases {
        let error = refused_check(&http, &base, &check).await;
        assert!(error.contains(field), "{check}: {error:?} names no {field}");
        assert!(error.contains(value), "{check}: {error:?} names no {value}");
        assert!(
            error.contains("range") || error.contains("longer than") || error.contains("above"),
            "{check}: {error:?} gives no range"
        );
    }
    // Timeout within its own range but longer than the interval: both are named.
    let error = refused_check(
        &http,
        &base,
        &json!({"HTTP": url, "Interval": "2s", "Timeout": "5s"}),
    )
    .await;
    assert!(
        error.contains("Timeout") && error.contains("Interval"),
        "{error:?}"
    );
    alive(&http, &base).await;
    assert_eq!(
        nodes[0].handle.snapshot().registry.len(),
        0,
        "a refused registration changed nothing"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

/// Brief item 4: Consul check kinds hera does not run (script, Docker, gRPC, UDP, H2 ping,
/// OS service, alias) are refused with 400 naming the kind, never registered as something
/// else and never silently dropped, alone or beside a kind hera runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_kinds_hera_does_not_run_are_refused_by_name() {
    let nodes = cluster("hostile-check-kinds", 1).await;
    let base = format!("http://{}", nodes[0].http_addr);
    let http = http();
    let cases = [
        (json!({"Args": ["/bin/true"], "Interval": "10s"}), "Args"),
        (
            json!({"ScriptArgs": ["/bin/true"], "Interval": "10s"}),
            "ScriptArgs",
        ),
        (json!({"Script": "/bin/true", "Interval": "10s"}), "Script"),
        (
            json!({"DockerContainerID": "abc", "Args": ["x"], "Interval": "10s"}),
            "DockerContainerID",
        ),
        (json!({"GRPC": "127.0.0.1:1", "Interval": "10s"}), "GRPC"),
        // TCP runs since issue 18; TLS it cannot skip, having none.
        (
            json!({"HTTP": "http://127.0.0.1:1/", "Interval": "10s", "TLSSkipVerify": true}),
            "TLSSkipVerify",
        ),
        (json!({"UDP": "127.0.0.1:1", "Interval": "10s"}), "UDP"),
        (
            json!({"H2PING": "127.0.0.1:1", "Interval": "10s"}),
            "H2PING",
        ),
        (json!({"OSService": "sshd", "Interval": "10s"}), "OSService"),
        (json!({"AliasService": "db"}), "AliasService"),
        // Beside a TTL, the unknown kind used to be dropped and the TTL kept.
        (json!({"TTL": "10s", "Args": ["/bin/true"]}), "Args"),
    ];
    for (check, kind) in cases {
        let error = refused_check(&http, &base, &check).await;
        assert!(
            error.contains(kind),
            "{check}: {error:?} does not name {kind}"
        );
    }
    // In a `Checks` list too.
    let r = register(
        &http,
        &base,
        &json!({"Name": "web", "ID": "web-kinds", "Checks": [{"GRPC": "127.0.0.1:1", "Interval": "10s"}]}),
    )
    .await;
    let body = refused_with_json(r, "Checks with GRPC").await;
    assert!(body.to_string().contains("GRPC"), "{body}");
    alive(&http, &base).await;
    assert_eq!(nodes[0].handle.snapshot().registry.len(), 0);
    for n in nodes {
        n.shutdown().await;
    }
}

/// One `GET` written by hand (a client library might re-encode the query): status and body.
async fn raw_get(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(CONVERGE, stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// A query string that cannot be read (a `%` that starts no escape, bytes that are not UTF-8
/// once decoded) is refused with 400 by the guard, on every route: no route may take it as
/// empty, or read it with replacement characters, and go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_query_strings_are_refused_on_every_route() {
    let nodes = cluster("hostile-query", 1).await;
    let addr = nodes[0].http_addr;
    for (target, named) in [
        ("/v1/agent/self?x=%ZZ", "%ZZ"),
        ("/v1/agent/members?wan=%4", "%4"),
        ("/v1/catalog/services?dc=%FF", "UTF-8"),
        ("/v1/health/service/web?passing&tag=%C3%28", "UTF-8"),
        ("/web?pretty&%E2%82=1", "UTF-8"),
        ("/v1/status/leader?%", "\"%\""),
    ] {
        let (status, body) = raw_get(addr, target).await;
        assert_eq!(status, 400, "{target}: {body}");
        let error: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{target}: not JSON: {body}"));
        let text = error["error"].as_str().unwrap_or_default();
        assert!(
            text.starts_with("malformed query string") && text.contains(named),
            "{target}: {text}"
        );
    }
    // Escapes that decode to UTF-8, `+` for a space and bare keys still read as before.
    for target in [
        "/v1/agent/self?x=%41%2B+b&%C3%A9=%E2%82%AC",
        "/v1/agent/self?pretty&a=&&b",
    ] {
        let (status, body) = raw_get(addr, target).await;
        assert_eq!(status, 200, "{target}: {body}");
    }
}
