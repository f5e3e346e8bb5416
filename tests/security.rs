//! Gossip encryption and API access control on real nodes over loopback: a key rotation with
//! no downtime, nodes without the key (or with a wrong one) kept out, and the API token.

mod support;

use std::time::Duration;

use hera::node::{Command, KeyringCommand};
use hera::runtime::app::App;
use hera::runtime::driver::Snapshot;
use hera::runtime::settings::{format_key, FileSettings, Settings};
use hera::swim::State;
use hera::wire::DecodeErrorKind;
use hera::wire::Key;
use hera::Event;
use serde_json::{json, Value};

/// Generous bound for conditions that take a few protocol periods on the local preset.
const CONVERGE: Duration = Duration::from_secs(20);

fn key(byte: u8) -> Key {
    Key::from_bytes([byte; 32])
}

fn settings(name: &str, join: Vec<String>, file: FileSettings) -> Settings {
    Settings::resolve(
        Some((std::path::Path::new("test.toml"), file)),
        support::overrides(name, join),
    )
    .expect("valid test settings")
}

fn keyed(key: Option<&Key>) -> FileSettings {
    FileSettings {
        encrypt: key.map(format_key),
        ..Default::default()
    }
}

async fn start(name: &str, seed: Option<&App>, file: FileSettings, rng: u64) -> App {
    let join = seed
        .map(|s| vec![s.gossip_addr.to_string()])
        .unwrap_or_default();
    App::start(settings(name, join, file), rng)
        .await
        .expect("node starts")
}

fn alive(s: &Snapshot) -> usize {
    s.members.iter().filter(|m| m.state == State::Alive).count()
}

fn errors(s: &Snapshot, kind: &str) -> u64 {
    let kind = DecodeErrorKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind);
    s.stats.decode_errors_of(kind.expect("a decode error kind"))
}

async fn all_alive(nodes: &[App], n: usize, what: &str) {
    for node in nodes {
        let seen = node.handle.wait_for(CONVERGE, |s| alive(s) == n).await;
        assert!(
            seen.is_some(),
            "{what}: {} sees {:?}",
            node.handle.snapshot().name,
            node.handle.snapshot().members
        );
    }
}

/// Let every node receive `count` more datagrams that it accepted: proof that gossip flows
/// after a keyring step, awaited rather than slept.
async fn traffic_flows(nodes: &[App], count: u64, what: &str) {
    for node in nodes {
        let accepted_of = |s: &Snapshot| s.stats.datagrams_in - s.stats.decode_errors_total();
        let before = accepted_of(&node.handle.snapshot());
        let accepted = move |s: &Snapshot| accepted_of(s) >= before + count;
        assert!(
            node.handle.wait_for(CONVERGE, accepted).await.is_some(),
            "{what}: {} stopped accepting gossip",
            node.handle.snapshot().name
        );
    }
}

async fn keyring(node: &App, op: KeyringCommand) {
    node.handle
        .command(Command::Keyring(op))
        .await
        .expect("keyring command accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_keeps_every_member_alive() {
    let (old, new) = (key(1), key(2));
    let first = start("r0", None, keyed(Some(&old)), 11).await;
    let mut events = first.handle.subscribe();
    let second = start("r1", Some(&first), keyed(Some(&old)), 12).await;
    let third = start("r2", Some(&first), keyed(Some(&old)), 13).await;
    let nodes = [first, second, third];
    all_alive(&nodes, 3, "sealed cluster forms").await;

    // 1. Install the new key everywhere: still sealing with the old one.
    for node in &nodes {
        keyring(node, KeyringCommand::Install(new.clone())).await;
    }
    traffic_flows(&nodes, 20, "after install").await;
    // 2. Make it primary, one node at a time: in between, some nodes seal with the old key and
    //    some with the new, and every node accepts both.
    for node in &nodes {
        keyring(node, KeyringCommand::Use(new.clone())).await;
        traffic_flows(&nodes, 10, "during use").await;
    }
    // 3. Remove the old key everywhere.
    for node in &nodes {
        keyring(node, KeyringCommand::Remove(old.clone())).await;
    }
    traffic_flows(&nodes, 20, "after remove").await;
    all_alive(&nodes, 3, "after the rotation").await;
    for node in &nodes {
        let s = node.handle.snapshot();
        assert_eq!(
            errors(&s, "authentication"),
            0,
            "{}: no datagram refused",
            s.name
        );
    }
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, Event::MemberFailed { .. }),
            "no member failed during the rotation: {event:?}"
        );
    }

    // A node that only knows the retired key cannot get back in, and is counted.
    let stale = start("r3", Some(&nodes[0]), keyed(Some(&old)), 14).await;
    let refused = nodes[0]
        .handle
        .wait_for(CONVERGE, |s| errors(s, "authentication") >= 3)
        .await;
    assert!(refused.is_some(), "the old key's datagrams are counted");
    assert_eq!(
        alive(&stale.handle.snapshot()),
        1,
        "the stale node is alone"
    );
    assert!(nodes.iter().all(|n| n.handle.snapshot().members.len() == 3));
    stale.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_node_cannot_join_an_encrypted_cluster() {
    let k = key(7);
    let a = start("e0", None, keyed(Some(&k)), 21).await;
    let b = start("e1", Some(&a), keyed(Some(&k)), 22).await;
    let nodes = [a, b];
    all_alive(&nodes, 2, "sealed pair forms").await;

    let keyless = start("plain", Some(&nodes[0]), keyed(None), 23).await;
    // Its join is retried; every attempt is refused and counted by the seed.
    let refused = nodes[0]
        .handle
        .wait_for(CONVERGE, |s| errors(s, "unsealed") >= 3)
        .await;
    assert!(refused.is_some(), "plain datagrams are counted as unsealed");
    assert_eq!(
        alive(&keyless.handle.snapshot()),
        1,
        "the keyless node is alone"
    );
    // The seed's answers are sealed, so the keyless node refuses them in turn.
    for node in &nodes {
        let s = node.handle.snapshot();
        assert_eq!(s.members.len(), 2, "{} never learnt of it", s.name);
    }
    keyless.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
}

// ---- the HTTP API token ----

fn with_token(token_reads: bool) -> FileSettings {
    FileSettings {
        token: Some("s3cret-token".to_string()),
        token_reads,
        ..keyed(Some(&key(9)))
    }
}

/// Status code of a request, with an optional `X-Consul-Token` or bearer token.
async fn status(
    app: &App,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    bearer: bool,
    body: Option<Value>,
) -> u16 {
    let url = format!("http://{}{path}", app.http_addr);
    let mut request = reqwest::Client::new().request(method, url);
    match (token, bearer) {
        (Some(t), false) => request = request.header("X-Consul-Token", t),
        (Some(t), true) => request = request.bearer_auth(t),
        (None, _) => {}
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the node answers");
    let code = response.status().as_u16();
    if code == 403 {
        let body: Value = response.json().await.expect("a JSON error");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("token")),
            "{body}"
        );
    }
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token_and_reads_only_when_asked() {
    use reqwest::Method;
    let app = start("t0", None, with_token(false), 31).await;
    let register = || Some(json!({ "Name": "web", "ID": "web-1", "Port": 80 }));
    let path = "/v1/agent/service/register";
    assert_eq!(
        status(&app, Method::PUT, path, None, false, register()).await,
        403
    );
    assert_eq!(
        status(&app, Method::PUT, path, Some("wrong"), false, register()).await,
        403
    );
    assert_eq!(
        status(
            &app,
            Method::PUT,
            path,
            Some("s3cret-token"),
            false,
            register()
        )
        .await,
        200
    );
    assert_eq!(
        status(
            &app,
            Method::PUT,
            path,
            Some("s3cret-token"),
            true,
            register()
        )
        .await,
        200
    );
    // Reads stay open...
    assert_eq!(
        status(&app, Method::GET, "/v1/agent/members", None, false, None).await,
        200
    );
    // ...except the keyring, whose keys are the cluster's secret.
    let keyring = "/v1/operator/keyring";
    assert_eq!(
        status(&app, Method::GET, keyring, None, false, None).await,
        403
    );
    assert_eq!(
        status(
            &app,
            Method::GET,
            keyring,
            Some("s3cret-token"),
            false,
            None
        )
        .await,
        200
    );
    app.shutdown().await;

    let closed = start("t1", None, with_token(true), 32).await;
    assert_eq!(
        status(&closed, Method::GET, "/v1/agent/members", None, false, None).await,
        403
    );
    assert_eq!(
        status(
            &closed,
            Method::GET,
            "/v1/agent/members",
            Some("nope"),
            true,
            None
        )
        .await,
        403
    );
    assert_eq!(
        status(
            &closed,
            Method::GET,
            "/v1/agent/members",
            Some("s3cret-token"),
            true,
            None
        )
        .await,
        200
    );
    closed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyring_over_http_in_consuls_shape() {
    let app = start("k0", None, keyed(Some(&key(1))), 41).await;
    let url = format!("http://{}/v1/operator/keyring", app.http_addr);
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, k: &Key| {
        http.request(method, &url)
            .json(&json!({ "Key": format_key(k) }))
            .send()
    };
    let listing: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        listing[0]["PrimaryKeys"][format_key(&key(1))],
        1,
        "{listing}"
    );
    assert_eq!(listing[0]["NumNodes"], 1);

    let code = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        code(send(reqwest::Method::POST, &key(2)).await.unwrap()),
        200
    );
    assert_eq!(
        code(send(reqwest::Method::DELETE, &key(1)).await.unwrap()),
        409,
        "primary"
    );
    // Cluster-wide, a key not installed everywhere is refused before anything changes.
    assert_eq!(
        code(send(reqwest::Method::PUT, &key(3)).await.unwrap()),
        409,
        "not installed"
    );
    // On the node asked alone (`?local`), the node's own refusal.
    let local = http
        .put(format!("{url}?local"))
        .json(&json!({ "Key": format_key(&key(3)) }))
        .send()
        .await
        .unwrap();
    assert_eq!(code(local), 404, "unknown");
    assert_eq!(
        code(send(reqwest::Method::PUT, &key(2)).await.unwrap()),
        200
    );
    assert_eq!(
        code(send(reqwest::Method::DELETE, &key(1)).await.unwrap()),
        200
    );
    let bad = http
        .post(&url)
        .json(&json!({ "Key": "c2hvcnQ=" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let listing: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    let keys = listing[0]["Keys"].as_object().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(listing[0]["PrimaryKeys"][format_key(&key(2))], 1);
    app.shutdown().await;

    // A node started without a key says so.
    let plain = start("k1", None, keyed(None), 42).await;
    let url = format!("http://{}/v1/operator/keyring", plain.http_addr);
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not enabled"),
        "{body}"
    );
    plain.shutdown().await;
}

/// Send one keep-alive GET on `stream` and read its answer head.
async fn get_on(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write request");
    let mut answer = vec![0u8; 512];
    let n = stream.read(&mut answer).await.expect("read answer");
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_are_bounded_and_a_closed_one_frees_its_slot() {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = axum::Router::new().route("/", get(|| async { "ok" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hera::runtime::http::serve_bounded(
        listener,
        2,
        router,
        async move {
            let _ = stopped.await;
        },
    ));

    // Two keep-alive connections, each answered once: both hold a slot.
    let mut first = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut second = tokio::net::TcpStream::connect(addr).await.expect("connect");
    assert!(get_on(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(get_on(&mut second).await.starts_with("HTTP/1.1 200"));

    // A third waits in the backlog, unanswered, while both stay open...
    let mut third = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut waiting = tokio::spawn(async move { get_on(&mut third).await });
    let early = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
    assert!(
        early.is_err(),
        "a third connection was served past the bound of 2"
    );

    // ...and is served once one of them closes.
    drop(first);
    let answer = tokio::time::timeout(CONVERGE, waiting)
        .await
        .expect("the waiting connection is served after a slot frees")
        .expect("task");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(second);
    let _ = stop.send(());
    server.await.expect("server task").expect("serve");
}
