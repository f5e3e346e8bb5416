//! A node's footprint on its host, with real `hera run` processes.
//!
//! File descriptors against its bound on HTTP connections, started under `ulimit -n`: the soft
//! limit is raised to the hard one; a bound that the operator asked for and the limit cannot
//! hold is refused at start, naming the setting, its value, the limit and what to do; the
//! default bound is lowered to fit, and said so.
//!
//! The page cache: giving back start-up's pages must not evict the binary for the next
//! process started from it.

mod support;

use std::path::Path;
use std::process::{Child, Command};

use support::process::{poll, HeraProcess as Node, CONVERGE};

/// Wait (bounded) for a process expected to refuse to start; its exit status's code.
fn refused(mut child: Child, node: &Node) -> i32 {
    let exited = poll(CONVERGE, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    assert!(exited, "{} did not exit: {}", node.name, node.log_text());
    status.code().unwrap_or(-1)
}

/// The bound on blocking queries the running node reports.
fn waiters_max(node: &Node) -> u64 {
    let config = node.get("/v1/hera/config").expect("config answers");
    config["ReadOnly"]["BlockingWaitersMax"]
        .as_u64()
        .expect("BlockingWaitersMax in the config")
}

/// The soft "Max open files" of a running process.
fn soft_nofile(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn an_asked_bound_the_descriptor_limit_cannot_hold_is_refused_at_start() {
    let root = tempfile::tempdir().unwrap();
    let node = Node::new(root.path(), "fd0", &["--blocking-waiters-max", "1024"]);
    let child = node.spawn_under_ulimit("-n 1024", &[]);
    let code = refused(child, &node);
    let log = node.log_text();
    assert_eq!(code, 1, "{log}");
    for said in [
        "blocking_waiters_max = 1024 needs",
        "only 1024",
        "LimitNOFILE",
    ] {
        assert!(log.contains(said), "the refusal says {said:?}: {log}");
    }
    // The most that fits is named, so the operator has a number to set.
    assert!(log.contains("set blocking_waiters_max to at most"), "{log}");
}

#[test]
fn the_default_bound_is_lowered_to_fit_a_low_limit_and_said_so() {
    let root = tempfile::tempdir().unwrap();
    let mut node = Node::new(root.path(), "fd1", &[]);
    node.child = Some(node.spawn_under_ulimit("-n 1024", &[]));
    let up = poll(CONVERGE, || node.get("/v1/agent/self").is_some());
    assert!(up, "did not come up: {}", node.log_text());
    let bound = waiters_max(&node);
    assert!(
        (1..1024).contains(&bound),
        "lowered below the default 1024: {bound}"
    );
    let log = node.log_text();
    assert!(
        log.contains("blocking_waiters_max lowered from its default 1024"),
        "{log}"
    );
}

#[test]
fn a_limit_too_low_for_any_bound_is_refused_at_start() {
    let root = tempfile::tempdir().unwrap();
    let node = Node::new(root.path(), "fd2", &[]);
    let child = node.spawn_under_ulimit("-n 64", &[]);
    let code = refused(child, &node);
    let log = node.log_text();
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("only 64"),
        "the refusal names the limit: {log}"
    );
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_one() {
    let root = tempfile::tempdir().unwrap();
    let mut node = Node::new(root.path(), "fd3", &[]);
    // `exec` keeps the shell's process id: the child's pid is hera's.
    let child = node.spawn_under_ulimit("-S -n 256 && ulimit -H -n 4096", &[]);
    let pid = child.id();
    node.child = Some(child);
    let up = poll(CONVERGE, || node.get("/v1/agent/self").is_some());
    assert!(up, "did not come up: {}", node.log_text());
    assert_eq!(soft_nofile(pid), 4096);
    // Room for the default bound once raised.
    assert_eq!(waiters_max(&node), 1024);
}

/// Pages of `file` in the page cache, as util-linux's `fincore` counts them.
fn cached_pages(fincore: &Path, file: &Path) -> u64 {
    let out = Command::new(fincore)
        .args(["--raw", "--noheadings", "--output", "PAGES"])
        .arg(file)
        .output()
        .expect("fincore runs");
    assert!(out.status.success(), "fincore: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("fincore printed {text:?}"))
}

/// Put every page of `file` in the page cache one page at a time, as a process faulting its
/// binary in does (a bulk read may fill large folios, which page-out leaves alone).
fn warm_page_by_page(file: &Path) {
    use rustix::fs::{fadvise, Advice};
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(file).expect("open the binary");
    // Dropping clean cached pages is harmless to processes running from them: they keep what
    // they have mapped and fault in the rest again.
    fadvise(&f, 0, None, Advice::DontNeed).expect("fadvise");
    fadvise(&f, 0, None, Advice::Random).expect("fadvise");
    let len = f.metadata().expect("stat the binary").len();
    let mut page = [0u8; 4096];
    let mut offset = 0;
    while offset < len {
        f.read_at(&mut page, offset).expect("read the binary");
        offset += page.len() as u64;
    }
}

#[test]
fn giving_back_start_up_pages_leaves_the_binary_in_the_page_cache() {
    let fincore = support::require("fincore", "util-linux");
    let root = tempfile::tempdir().unwrap();
    // A private copy: no other process (this file's other tests run beside this one) maps
    // it, so only this node's trim can evict its pages, and nothing else can fault them back.
    // Copied by `cp`, so no descriptor open for writing leaks into a child another test forks
    // meanwhile (exec would then fail with ETXTBSY).
    let exe = root.path().join("hera");
    let copied = Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_hera"))
        .arg(&exe)
        .status()
        .expect("cp runs");
    assert!(copied.success(), "cp of the binary: {copied}");
    warm_page_by_page(&exe);
    let before = cached_pages(&fincore, &exe);
    let mut node = Node::new(root.path(), "cache0", &["--log-level", "hera=debug"]);
    node.binary = exe.clone();
    node.start(&[]);
    let trimmed = poll(CONVERGE, || {
        node.log_text().contains("start-up pages given back")
    });
    assert!(trimmed, "no trim logged: {}", node.log_text());
    let after = cached_pages(&fincore, &exe);
    // The trim did drop clean mappings (code, read-only data), and the node runs on after
    // it: the pages it needs come back from the page cache, unchanged.
    let log = node.log_text();
    let clean_bytes: u64 = log
        .split("clean_bytes=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no clean_bytes in the trim's line: {log}"));
    assert!(clean_bytes > 0, "the trim dropped no clean mapping: {log}");
    let registered = node.put(
        "/v1/agent/service/register",
        Some(serde_json::json!({"Name": "web", "ID": "web-1", "Port": 80})),
    );
    assert_eq!(registered, 200, "{}", node.log_text());
    let listed = node.get("/v1/agent/services").expect("services answer");
    assert!(listed.get("web-1").is_some(), "{listed}");
    node.terminate();
    // Page-out of the read-only data evicted what no other process mapped: the next node
    // started from this binary read it from disk again.
    assert!(
        after >= before,
        "the binary had {before} pages in the page cache before a node started, {after} after"
    );
}
