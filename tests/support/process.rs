//! Real `hera run` processes on loopback, for the tests that restart, kill or exec a node:
//! free ports, a process that is killed when dropped, one raw HTTP request, bounded polling.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Bound for anything that takes a few protocol periods on the local preset.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// A `hera run` process, and what it needs to be started again the same way (same name,
/// ports and data directory).
pub struct HeraProcess {
    pub name: String,
    /// The `hera` executable this node runs: the test build's, unless a test set its own.
    pub binary: PathBuf,
    /// Gossip (UDP) port.
    pub gossip: u16,
    pub http: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    /// Further `hera run` arguments.
    pub extra: Vec<String>,
    pub child: Option<Child>,
}

impl HeraProcess {
    /// A node named `name` with fresh ports, its data directory and log under `root`.
    pub fn new(root: &Path, name: &str, extra: &[&str]) -> HeraProcess {
        HeraProcess {
            name: name.to_string(),
            binary: PathBuf::from(env!("CARGO_BIN_EXE_hera")),
            gossip: free_udp_port(),
            http: free_tcp_port(),
            dir: root.join(name),
            log: root.join(format!("{name}.log")),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        }
    }

    /// Start with `join` (gossip ports); waits until its HTTP face answers.
    pub fn start(&mut self, join: &[u16]) {
        let child = self.spawn(join);
        self.child = Some(child);
        let up = poll(CONVERGE, || self.get("/v1/agent/self").is_some());
        assert!(up, "{} did not come up: {}", self.name, self.log_text());
    }

    /// Start without waiting (for a process expected to refuse to start).
    pub fn spawn(&self, join: &[u16]) -> Child {
        let mut cmd = Command::new(&self.binary);
        cmd.args(self.run_args(join));
        self.logged(cmd).spawn().expect("hera starts")
    }

    /// Start without waiting, under `ulimit <ulimit>` (e.g. `-n 64`: a shell sets the limit,
    /// then `exec`s hera, so the limit is the process's own from its first instruction).
    pub fn spawn_under_ulimit(&self, ulimit: &str, join: &[u16]) -> Child {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit {ulimit} && exec \"$@\""))
            .arg("sh")
            .arg(&self.binary)
            .args(self.run_args(join));
        self.logged(cmd).spawn().expect("sh starts")
    }

    /// `hera run`'s arguments for this node.
    fn run_args(&self, join: &[u16]) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = ["run", "--name", &self.name, "--preset", "local"]
            .iter()
            .map(Into::into)
            .collect();
        args.extend(["--bind".into(), format!("127.0.0.1:{}", self.gossip).into()]);
        args.extend(["--http".into(), format!("127.0.0.1:{}", self.http).into()]);
        args.extend(["--data-dir".into(), self.dir.clone().into_os_string()]);
        args.extend(self.extra.iter().map(Into::into));
        for port in join {
            args.extend(["--join".into(), format!("127.0.0.1:{port}").into()]);
        }
        args
    }

    /// `cmd` with its output appended to this node's log.
    fn logged(&self, mut cmd: Command) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        cmd
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM: the node leaves the cluster, writes its state and exits 0.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The shell's builtin: no `kill` program needed on a minimal CI image.
            let _ = Command::new("sh")
                .args(["-c", &format!("kill -TERM {}", child.id())])
                .status();
            let exited = poll(CONVERGE, || matches!(child.try_wait(), Ok(Some(_))));
            if !exited {
                let _ = child.kill();
            }
            let status = child.wait().unwrap();
            assert!(
                exited && status.success(),
                "{} after SIGTERM: {status}",
                self.name
            );
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A GET answered 200 with JSON.
    pub fn get(&self, path: &str) -> Option<Value> {
        match raw_http(self.http, "GET", path, "")? {
            (200, body) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// A PUT's status (0: no answer).
    pub fn put(&self, path: &str, body: Option<Value>) -> u16 {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        raw_http(self.http, "PUT", path, &body).map_or(0, |(status, _)| status)
    }

    /// Names of the members this node lists alive, sorted.
    pub fn alive(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .get("/v1/agent/members")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|m| m["Status"] == 1)
            .filter_map(|m| m["Name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }
}

impl Drop for HeraProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `n` nodes named `<prefix>0..`, each started with `extra` and its own data directory under
/// `root`, joined through the first; returns once every one lists all alive.
pub fn start_cluster(root: &Path, prefix: &str, n: usize, extra: &[&str]) -> Vec<HeraProcess> {
    let mut nodes: Vec<HeraProcess> = (0..n)
        .map(|i| HeraProcess::new(root, &format!("{prefix}{i}"), extra))
        .collect();
    let seed = nodes[0].gossip;
    nodes[0].start(&[]);
    for node in nodes.iter_mut().skip(1) {
        node.start(&[seed]);
    }
    wait_all_alive(&nodes);
    nodes
}

/// Wait until every node of `nodes` lists all of them alive.
pub fn wait_all_alive(nodes: &[HeraProcess]) {
    let mut names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    names.sort();
    for node in nodes {
        assert!(
            poll(CONVERGE, || node.alive() == names),
            "{} sees {:?} alive, not {names:?}",
            node.name,
            node.alive()
        );
    }
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 request (no chunked answer to parse) with a JSON body: its status and body.
pub fn raw_http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
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

/// Poll `condition` every 50 ms until it holds or `limit` passes.
pub fn poll(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
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
