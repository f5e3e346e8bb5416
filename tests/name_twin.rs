//! Name twins (issue 14, finding 5), with real `hera` processes on loopback: a second process
//! started under a live member's name (a cloned VM keeps its host name) refuses to join and
//! exits with 1, naming the address that holds the name; the holder and its entries are
//! untouched.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bound for anything that takes a few protocol periods on the local preset.
const CONVERGE: Duration = Duration::from_secs(30);

struct Proc {
    child: Child,
    /// Gossip port.
    gossip: u16,
    http: u16,
    log: std::path::PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(root: &Path, tag: &str, name: &str, join: Option<u16>) -> Proc {
    let (gossip, http) = (free_udp_port(), free_tcp_port());
    let log = root.join(format!("{tag}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hera"));
    cmd.args(["run", "--name", name, "--preset", "local"])
        .args(["--bind", &format!("127.0.0.1:{gossip}")])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--dns", ""])
        .arg("--data-dir")
        .arg(root.join(tag))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    if let Some(port) = join {
        cmd.args(["--join", &format!("127.0.0.1:{port}")]);
    }
    Proc {
        child: cmd.spawn().expect("hera starts"),
        gossip,
        http,
        log,
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

/// One HTTP/1.0 request; the status and body.
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

#[test]
fn a_second_process_under_a_live_name_exits_1_naming_the_holder() {
    let root = tempfile::tempdir().unwrap();
    let a = spawn(root.path(), "a", "x", None);
    let up = poll(CONVERGE, || {
        http(a.http, "GET", "/v1/agent/self", "").is_some_and(|(s, _)| s == 200)
    });
    assert!(up, "a did not come up");
    let registered = http(
        a.http,
        "PUT",
        "/v1/agent/service/register",
        r#"{"Name": "web", "ID": "web-a", "Port": 80}"#,
    );
    assert_eq!(registered.map(|(s, _)| s), Some(200));

    let mut b = spawn(root.path(), "b", "x", Some(a.gossip));
    let exited = poll(CONVERGE, || matches!(b.child.try_wait(), Ok(Some(_))));
    let said = std::fs::read_to_string(&b.log).unwrap_or_default();
    assert!(exited, "the twin kept running: {said}");
    let status = b.child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    let holder = format!("127.0.0.1:{}", a.gossip);
    assert!(said.contains(&holder), "no mention of {holder}: {said}");

    // The holder runs on with its entry.
    let mut a = a;
    assert!(matches!(a.child.try_wait(), Ok(None)), "the holder stopped");
    let (status, body) = http(a.http, "GET", "/v1/catalog/service/web", "").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("web-a"), "{body}");
}
