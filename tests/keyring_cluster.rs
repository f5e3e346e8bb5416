//! The cluster-wide keyring (issue 16, SPEC §13) with real `hera` processes on loopback: a
//! five-node encrypted cluster rotated with one `hera keyring` command per step, a write made
//! before and after each step seen on every node; a node down during `install` reported as not
//! answering, and `use` refused until it has the key.

mod support;

use std::process::{Command, Output};

use serde_json::{json, Value};
use support::process::{
    poll, raw_http, start_cluster, wait_all_alive, HeraProcess as Node, CONVERGE,
};

const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// `hera keyring <args>` against `node`: exit status and stdout + stderr.
fn keyring(node: &Node, args: &[&str]) -> (bool, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_hera"))
        .arg("keyring")
        .args(args)
        .args(["--http-addr", &format!("127.0.0.1:{}", node.http)])
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

/// `node`'s own keys, the primary first.
fn keys(node: &Node) -> Vec<String> {
    let report: Value = node.get("/v1/hera/keyring?local").expect("a local listing");
    report["Answers"][0]["Keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// Register `id` on `writer`, then wait until every running node in `nodes` lists it: the
/// cluster's gossip (sealed with whatever keys are in force) still flows.
fn write_seen_everywhere(nodes: &[Node], writer: usize, id: &str) {
    let body = json!({"Name": "web", "ID": id, "Port": 80});
    let status = raw_http(
        nodes[writer].http,
        "PUT",
        "/v1/agent/service/register",
        &body.to_string(),
    )
    .map(|a| a.0);
    assert_eq!(status, Some(200), "register {id} on {}", nodes[writer].name);
    for node in nodes.iter().filter(|n| n.child.is_some()) {
        let seen = poll(CONVERGE, || {
            node.get("/v1/catalog/service/web")
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
    let mut nodes = start_cluster(root.path(), "k", 5, &["--encrypt", KEY_1]);
    let seed = nodes[0].gossip;
    write_seen_everywhere(&nodes, 1, "before-install");

    // A node goes down just before the install: reported as not answering.
    nodes[4].kill9();
    let (ok, out) = keyring(&nodes[0], &["install", KEY_2]);
    assert!(!ok, "an install that missed a member fails:\n{out}");
    assert!(out.contains("k4") && out.contains("no answer"), "{out}");
    assert!(
        out.contains("install: 4 of 5 members done, 0 refused, 1 did not answer"),
        "{out}"
    );
    for node in &nodes[..4] {
        assert_eq!(keys(node), [KEY_1, KEY_2], "{}", node.name);
    }
    write_seen_everywhere(&nodes, 2, "after-install");

    // `use` refuses while a member is not known to hold the key: nothing changes.
    let (ok, out) = keyring(&nodes[1], &["use", KEY_2]);
    assert!(!ok, "{out}");
    assert!(out.contains("refused") && out.contains("k4"), "{out}");
    for node in &nodes[..4] {
        assert_eq!(
            keys(node)[0],
            KEY_1,
            "{} still seals with the old key",
            node.name
        );
    }

    // Back up, with only the old key (its data_dir): still refused until it has the new one.
    nodes[4].start(&[seed]);
    wait_all_alive(&nodes);
    let (ok, out) = keyring(&nodes[1], &["use", KEY_2]);
    assert!(!ok, "{out}");
    assert!(out.contains("not installed on k4"), "{out}");
    write_seen_everywhere(&nodes, 4, "before-reinstall");
    let (ok, out) = keyring(&nodes[2], &["install", KEY_2]);
    assert!(ok, "{out}");
    assert!(out.contains("install: 5 of 5 members done"), "{out}");
    write_seen_everywhere(&nodes, 0, "after-reinstall");

    // Step 2: use, one command.
    let (ok, out) = keyring(&nodes[1], &["use", KEY_2]);
    assert!(ok, "{out}");
    assert!(out.contains("use: 5 of 5 members done"), "{out}");
    for node in &nodes {
        assert_eq!(keys(node)[0], KEY_2, "{} seals with the new key", node.name);
    }
    write_seen_everywhere(&nodes, 3, "after-use");

    // The new primary cannot be removed; step 3 removes the old key, one command.
    let (ok, out) = keyring(&nodes[3], &["remove", KEY_2]);
    assert!(!ok && out.contains("primary"), "{out}");
    let (ok, out) = keyring(&nodes[3], &["remove", KEY_1]);
    assert!(ok, "{out}");
    assert!(out.contains("remove: 5 of 5 members done"), "{out}");
    for node in &nodes {
        assert_eq!(keys(node), [KEY_2], "{}", node.name);
    }
    write_seen_everywhere(&nodes, 4, "after-remove");
    wait_all_alive(&nodes);

    // Consul's listing, cluster-wide.
    let listing = nodes[0].get("/v1/operator/keyring").expect("a listing");
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
