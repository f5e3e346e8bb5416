//! Shared by the integration tests: nodes started in-process on loopback (here) or as real
//! processes (`process`), HTTP helpers, external programs
//! that die with the test, and bounded polling.

#![allow(dead_code)] // each test file uses a different part of this

pub mod chromium;
pub mod process;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hera::runtime::app::App;
use hera::runtime::settings::{Overrides, Settings};
use serde_json::Value;

/// Bound for conditions that take a few protocol periods on the local preset.
pub const CONVERGE: Duration = Duration::from_secs(20);

/// A node's flags for a test: `name`, ephemeral loopback ports, the local preset, `join`.
pub fn overrides(name: &str, join: Vec<String>) -> Overrides {
    Overrides {
        name: Some(name.to_string()),
        bind: Some("127.0.0.1:0".to_string()),
        http: Some("127.0.0.1:0".to_string()),
        preset: Some("local".to_string()),
        join,
        ..Default::default()
    }
}

pub fn settings(name: &str, join: Vec<String>) -> Settings {
    settings_from(overrides(name, join))
}

pub fn settings_from(overrides: Overrides) -> Settings {
    Settings::resolve(None, overrides).expect("valid test settings")
}

/// Start `n` nodes joined through the first, and wait until every one sees all `n` alive.
pub async fn cluster(prefix: &str, n: usize) -> Vec<App> {
    cluster_with(n, 1, |i, join| settings(&format!("{prefix}{i}"), join)).await
}

/// Start `n` nodes joined through the first, node `i` with `settings(i, join)` and protocol
/// seed `seed + i`, and wait until every one sees all `n` alive.
pub async fn cluster_with(
    n: usize,
    seed: u64,
    settings: impl Fn(usize, Vec<String>) -> Settings,
) -> Vec<App> {
    let first = App::start(settings(0, vec![]), seed)
        .await
        .expect("node starts");
    let join = first.gossip_addr.to_string();
    let mut nodes = vec![first];
    for i in 1..n {
        let app = App::start(settings(i, vec![join.clone()]), seed + i as u64)
            .await
            .expect("node starts");
        nodes.push(app);
    }
    for node in &nodes {
        let alive = node
            .handle
            .wait_for(CONVERGE, |s| {
                s.members
                    .iter()
                    .filter(|m| m.state == hera::swim::State::Alive)
                    .count()
                    == n
            })
            .await;
        assert!(alive.is_some(), "cluster of {n} did not converge");
    }
    nodes
}

/// Stop every node, one after the other.
pub async fn shutdown(nodes: Vec<App>) {
    for node in nodes {
        node.shutdown().await;
    }
}

/// The HTTP client of the tests: no proxy (loopback only), and a timeout above the longest
/// blocking query a test waits on.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// `path` on `app`'s HTTP address.
pub fn url(app: &App, path: &str) -> String {
    format!("http://{}{}", app.http_addr, path)
}

pub async fn get_text(addr: SocketAddr, path: &str) -> String {
    let response = http()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    response.text().await.expect("body")
}

pub async fn get_json(addr: SocketAddr, path: &str) -> Value {
    serde_json::from_str(&get_text(addr, path).await).expect("JSON body")
}

/// Poll `check` every 200 ms until it returns Some, or panic after `limit` with `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let attempt = async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// A child process killed (and reaped) when dropped, so a failing assertion or a panic never
/// leaves it running.
pub struct KillOnDrop {
    pub child: Child,
    pub name: &'static str,
}

impl KillOnDrop {
    pub fn spawn(name: &'static str, command: &mut Command) -> KillOnDrop {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        KillOnDrop { child, name }
    }

    /// Panic with the program's name if it has already exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.name);
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback TCP port free right now (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("port").port()
}

/// Where a program lives, or None (the test then fails with an install hint).
pub fn program(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

pub fn require(name: &str, package: &str) -> std::path::PathBuf {
    program(name).unwrap_or_else(|| {
        panic!("`{name}` not found: install the Debian package `{package}` (scripts/test.sh does)")
    })
}

pub fn quiet<'a>(command: &'a mut Command, log: &Path) -> &'a mut Command {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
}

/// The services `register_sample_services` registers: (service, id, port, tags).
const SAMPLES: [(&str, &str, u16, &[&str]); 6] = [
    ("api", "api-1", 8080, &["v2", "primary"]),
    ("api", "api-2", 8081, &["v2"]),
    ("billing", "billing-1", 9000, &["eu"]),
    ("search", "search-1", 9200, &["lucene"]),
    ("search", "search-2", 9201, &["lucene"]),
    ("web", "web-1", 3000, &[]),
];

/// Register a few services on `node` through Consul's agent API; returns (service, id) of each
/// instance registered, once the node's snapshot holds them all.
pub async fn register_sample_services(node: &App) -> Vec<(String, String)> {
    let client = http();
    let mut out = Vec::new();
    for (service, id, port, tags) in SAMPLES {
        let body = serde_json::json!({
            "Name": service,
            "ID": id,
            "Address": "127.0.0.1",
            "Port": port,
            "Tags": tags,
        });
        let response = client
            .put(format!(
                "http://{}/v1/agent/service/register",
                node.http_addr
            ))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("register {id}: {e}"));
        assert!(
            response.status().is_success(),
            "register {id}: {}",
            response.status()
        );
        out.push((service.to_string(), id.to_string()));
    }
    let n = out.len();
    let all = node
        .handle
        .wait_for(CONVERGE, move |s| s.registry.len() >= n)
        .await;
    assert!(all.is_some(), "{n} registrations not in the snapshot");
    out
}

/// An instance as the node's API reports it.
#[derive(Debug)]
pub struct InstanceState {
    pub online: bool,
    pub reason: Option<String>,
}

/// Ask the node's API (not the console) whether `service/id` is on-line.
pub async fn instance(addr: SocketAddr, service: &str, id: &str) -> InstanceState {
    let v = get_json(addr, &format!("/v1/hera/instances/{id}")).await;
    assert_eq!(
        v["Service"], service,
        "{id} belongs to another service: {v}"
    );
    InstanceState {
        online: v["Online"].as_bool().expect("Online is a boolean"),
        reason: v["MaintenanceReason"].as_str().map(str::to_string),
    }
}
