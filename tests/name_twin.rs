//! Name twins (issue 14, finding 5), with real `hera` processes on loopback: a second process
//! started under a live member's name (a cloned VM keeps its host name) refuses to join and
//! exits with 1, naming the address that holds the name; the holder and its entries are
//! untouched.

mod support;

use support::process::{poll, raw_http as http, HeraProcess, CONVERGE};

/// A node named `name` whose data directory and log are named `tag` (two processes under one
/// name never share a data directory).
fn twin(root: &std::path::Path, tag: &str, name: &str) -> HeraProcess {
    let mut p = HeraProcess::new(root, name, &["--dns", ""]);
    p.dir = root.join(tag);
    p.log = root.join(format!("{tag}.log"));
    p
}

#[test]
fn a_second_process_under_a_live_name_exits_1_naming_the_holder() {
    let root = tempfile::tempdir().unwrap();
    let mut a = twin(root.path(), "a", "x");
    a.start(&[]);
    let registered = http(
        a.http,
        "PUT",
        "/v1/agent/service/register",
        r#"{"Name": "web", "ID": "web-a", "Port": 80}"#,
    );
    assert_eq!(registered.map(|(s, _)| s), Some(200));

    let b = twin(root.path(), "b", "x");
    let mut child = b.spawn(&[a.gossip]);
    let exited = poll(CONVERGE, || matches!(child.try_wait(), Ok(Some(_))));
    let said = std::fs::read_to_string(&b.log).unwrap_or_default();
    assert!(exited, "the twin kept running: {said}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    let holder = format!("127.0.0.1:{}", a.gossip);
    assert!(said.contains(&holder), "no mention of {holder}: {said}");

    // The holder runs on with its entry.
    let running = a.child.as_mut().map(|c| matches!(c.try_wait(), Ok(None)));
    assert_eq!(running, Some(true), "the holder stopped");
    let (status, body) = http(a.http, "GET", "/v1/catalog/service/web", "").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("web-a"), "{body}");
}
