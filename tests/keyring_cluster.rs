//! The cluster-wide keyring (issue 16, SPEC §13) with real `hera` processes on loopback: a
//! five-node encrypted cluster rotated with one `hera keyring` command per step, a write made
//! before and after each step seen on every node; a node down during `install` reported as not
//! answering, and `use` refused until it has the key.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Bound for anything that takes a few protocol periods on the local preset.
const CONVERGE: Duration = Duration::from_secs(30);
const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// A `hera run` process (the shape of `tests/durability.rs`'s).
struct Node {
    name: String,
    gossip: u16,
    http: u16,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(root: &Path, name: &str) -> Node {
        Node {
            name: name.to_string(),
            gossip: free_udp_port(),
            http: free_tcp_port(),
            dir: root.join(name),
            log: root.join(format!("{name}.log")),
            child: None,
        }
    }

    fn start(&mut self, join: &[u16]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hera"));
        cmd.args(["run", "--name", &self.name, "--preset", "local"])
            .args(["--bind", &format!("127.0.0.1:{}", self.gossip)])
            .args(["--http", &format!("127.0.0.1:{}", self.http)])
            .args(["--encrypt", KEY_1])
            .arg("--data-dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for port in join {
            cmd.args(["--join", &format!("127.0.0.1:{port}")]);
        }
        self.child = Some(cmd.spawn().expect("hera starts"));
        let up = poll(CONVERGE, || get(self, "/v1/agent/self").is_some());
        assert!(up, "{} did not come up: {}", self.name, self.log_text());
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `hera keyring <args>` against this node: exit status and stdout + stderr.
    fn keyring(&self, args: &[&str]) -> (bool, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = Command::new(env!("CARGO_BIN_EXE_hera"))
            .arg("keyring")
            .args(args)
            .args(["--http-addr", &format!("127.0.0.1:{}", self.http)])
            .args(["--timeout", "2s"])
            .output()
            .expect("hera keyring runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
        (status.success(), text)
    }

    /// This node's own keys, the primary first.
    fn keys(&self) -> Vec<String> {
        let report = get(self, "/v1/hera/keyring?local").expect("a local listing");
        report["Answers"][0]["Keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One HTTP/1.0 request, its status and body.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn get(node: &Node, path: &str) -> Option<Value> {
    match http(node.http, "GET", path, None)? {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Poll `condition` every 50 ms until it holds or `limit` passes.
fn poll(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    #[allow(clippy::disallowed_methods)] // a test's time bound, outside any node
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

fn alive(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = get(node, "/v1/agent/members")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|m| m["Status"] == 1)
        .filter_map(|m| m["Name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn wait_all_alive(nodes: &[Node]) {
    let mut names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    names.sort();
    for node in nodes {
        assert!(
            poll(CONVERGE, || alive(node) == names),
            "{} sees {:?} alive, not {names:?}",
            node.name,
            alive(node)
        );
    }
}

/// Register `id` on `writer`, then wait until every running node in `nodes` lists it: the
/// cluster's gossip (sealed with whatever keys are in force) still flows.
fn write_seen_everywhere(nodes: &[Node], writer: usize, id: &str) {
    let body = json!({"Name": "web", "ID": id, "Port": 80});
    let status = http(
        nodes[writer].http,
        "PUT",
        "/v1/agent/service/register",
        Some(&body),
    )
    .map(|a| a.0);
    assert_eq!(status, Some(200), "register {id} on {}", nodes[writer].name);
    for node in nodes.iter().filter(|n| n.child.is_some()) {
        let seen = poll(CONVERGE, || {
            get(node, "/v1/catalog/service/web")
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .any(|e| e["ServiceID"] == id)
        });
        assert!(seen, "{} never saw {id}", node.name);
    }
}

#[test]
fn a_rotation_with_one_command_per_step_and_a_node_down_during_install() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (0..5)
        .map(|i| Node::new(root.path(), &format!("k{i}")))
        .collect();
    let seed = nodes[0].gossip;
    nodes[0].start(&[]);
    for node in nodes.iter_mut().skip(1) {
        node.start(&[seed]);
    }
    wait_all_alive(&nodes);
    write_seen_everywhere(&nodes, 1, "before-install");

    // A node goes down just before the install: reported as not answering.
    nodes[4].kill9();
    let (ok, out) = nodes[0].keyring(&["install", KEY_2]);
    assert!(!ok, "an install that missed a member fails:\n{out}");
    assert!(out.contains("k4") && out.contains("no answer"), "{out}");
    assert!(
        out.contains("install: 4 of 5 members done, 0 refused, 1 did not answer"),
        "{out}"
    );
    for node in &nodes[..4] {
        assert_eq!(node.keys(), [KEY_1, KEY_2], "{}", node.name);
    }
    write_seen_everywhere(&nodes, 2, "after-install");

    // `use` refuses while a member is not known to hold the key: nothing changes.
    let (ok, out) = nodes[1].keyring(&["use", KEY_2]);
    assert!(!ok, "{out}");
    assert!(out.contains("refused") && out.contains("k4"), "{out}");
    for node in &nodes[..4] {
        assert_eq!(
            node.keys()[0],
            KEY_1,
            "{} still seals with the old key",
            node.name
        );
    }

    // Back up, with only the old key (its data_dir): still refused until it has the new one.
    nodes[4].start(&[seed]);
    wait_all_alive(&nodes);
    let (ok, out) = nodes[1].keyring(&["use", KEY_2]);
    assert!(!ok, "{out}");
    assert!(out.contains("not installed on k4"), "{out}");
    write_seen_everywhere(&nodes, 4, "before-reinstall");
    let (ok, out) = nodes[2].keyring(&["install", KEY_2]);
    assert!(ok, "{out}");
    assert!(out.contains("install: 5 of 5 members done"), "{out}");
    write_seen_everywhere(&nodes, 0, "after-reinstall");

    // Step 2: use, one command.
    let (ok, out) = nodes[1].keyring(&["use", KEY_2]);
    assert!(ok, "{out}");
    assert!(out.contains("use: 5 of 5 members done"), "{out}");
    for node in &nodes {
        assert_eq!(
            node.keys()[0],
            KEY_2,
            "{} seals with the new key",
            node.name
        );
    }
    write_seen_everywhere(&nodes, 3, "after-use");

    // The new primary cannot be removed; step 3 removes the old key, one command.
    let (ok, out) = nodes[3].keyring(&["remove", KEY_2]);
    assert!(!ok && out.contains("primary"), "{out}");
    let (ok, out) = nodes[3].keyring(&["remove", KEY_1]);
    assert!(ok, "{out}");
    assert!(out.contains("remove: 5 of 5 members done"), "{out}");
    for node in &nodes {
        assert_eq!(node.keys(), [KEY_2], "{}", node.name);
    }
    write_seen_everywhere(&nodes, 4, "after-remove");
    wait_all_alive(&nodes);

    // Consul's listing, cluster-wide.
    let listing = get(&nodes[0], "/v1/operator/keyring").expect("a listing");
    assert_eq!(listing[0]["NumNodes"], 5, "{listing}");
    assert_eq!(listing[0]["Keys"][KEY_2], 5, "{listing}");
    assert_eq!(listing[0]["PrimaryKeys"][KEY_2], 5, "{listing}");

    // Keys given over the API never reach a log.
    for node in &nodes {
        assert!(
            !node.log_text().contains(KEY_2),
            "{} logged a key",
            node.name
        );
    }
}
