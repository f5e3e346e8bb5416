//! Restarts lose nothing (SPEC §10), with real `hera` processes on loopback: kill -9 and
//! SIGTERM followed by a restart after the peers purged the node's instances, a restart of the
//! whole cluster, a key rotation then a restart, acknowledged registrations surviving a kill
//! at a random instant, and bad state files refused at start.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use support::process::{
    poll, raw_http, start_cluster, wait_all_alive, HeraProcess as Node, CONVERGE,
};

fn register(node: &Node, id: &str) -> u16 {
    node.put(
        "/v1/agent/service/register",
        Some(json!({"Name": "web", "ID": id, "Port": 80, "Check": {"TTL": "30s"}})),
    )
}

fn pass(node: &Node, id: &str) -> u16 {
    node.put(&format!("/v1/agent/check/pass/service:{id}"), None)
}

/// Ids of the `web` instances `node` lists.
fn catalog(node: &Node) -> Vec<String> {
    let mut ids: Vec<String> = node
        .get("/v1/catalog/service/web")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["ServiceID"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    ids.sort();
    ids
}

/// Register `ids` on `node` and report each TTL once, every answer 200.
fn register_passing(node: &Node, ids: &[String]) {
    for id in ids {
        assert_eq!(register(node, id), 200, "register {id}");
        assert_eq!(pass(node, id), 200, "pass {id}");
    }
}

/// A node restarted (without `join`) after its peers purged its instances gets them back
/// everywhere, rejoins by itself, and each instance's next TTL pass finds its check.
fn restart_after_purge(stop: fn(&mut Node)) {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster(root.path(), "n", 3, &[]);
    let mine = ids("web", 5);
    register_passing(&nodes[2], &mine);
    assert!(poll(CONVERGE, || catalog(&nodes[0]) == mine));

    stop(&mut nodes[2]);
    assert!(
        poll(CONVERGE, || catalog(&nodes[0]).is_empty()),
        "the peers purge the stopped node's instances"
    );

    nodes[2].start(&[]);
    for node in &nodes {
        assert!(
            poll(CONVERGE, || catalog(node) == mine),
            "{} lists {:?}",
            node.name,
            catalog(node)
        );
    }
    wait_all_alive(&nodes);
    for id in &mine {
        assert_eq!(pass(&nodes[2], id), 200, "the next TTL pass of {id}");
    }
    assert!(nodes[2].log_text().contains("restored this node's state"));
}

#[test]
fn kill_9_then_restart_after_the_purge_loses_nothing() {
    restart_after_purge(Node::kill9);
}

#[test]
fn sigterm_then_restart_loses_nothing() {
    restart_after_purge(Node::terminate);
}

/// Start `hera run` on `dir` and expect it to refuse: its exit status and what it said.
fn refused_start(root: &Path, dir: &Path) -> String {
    let mut node = Node::new(root, "n0", &[]);
    node.dir = dir.to_path_buf();
    let mut child = node.spawn(&[]);
    let exited = poll(CONVERGE, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    assert!(exited && !status.success(), "started: {}", node.log_text());
    node.log_text()
}

/// Run a node once on a fresh directory so it holds real state files, and stop it.
fn populated_dir(root: &Path) -> PathBuf {
    let mut node = Node::new(root, "n0", &[]);
    node.start(&[]);
    register_passing(&node, &ids("web", 2));
    node.terminate();
    node.dir.clone()
}

#[test]
fn corrupt_truncated_empty_and_unwritable_state_files_are_refused_at_start() {
    let root = tempfile::tempdir().unwrap();
    let dir = populated_dir(root.path());
    let instances = dir.join("instances.json");
    let good = std::fs::read_to_string(&instances).unwrap();
    assert!(
        good.contains("\"web-0\"") && good.contains("\"ttl_ms\": 30000"),
        "{good}"
    );

    let cases: [(&str, &str); 3] = [
        ("", "empty file"),
        (&good[..good.len() / 2], "truncated"),
        (
            "{\"format\": 1, \"node\": \"n0\", \"instances\": 7}",
            "not a valid instances.json",
        ),
    ];
    for (content, says) in cases {
        std::fs::write(&instances, content).unwrap();
        let said = refused_start(root.path(), &dir);
        assert!(
            said.contains("instances.json") && said.contains(says),
            "for {says:?} it said: {said}"
        );
    }

    // Unreadable: the file is a directory (permissions do not stop root, who runs CI).
    std::fs::remove_file(&instances).unwrap();
    std::fs::create_dir(&instances).unwrap();
    let said = refused_start(root.path(), &dir);
    assert!(said.contains("instances.json: cannot read"), "{said}");
    std::fs::remove_dir(&instances).unwrap();
    std::fs::write(&instances, &good).unwrap();

    // Unwritable: the temporary file a write goes through cannot be created.
    std::fs::create_dir(dir.join("members.json.tmp")).unwrap();
    let said = refused_start(root.path(), &dir);
    assert!(said.contains("members.json: cannot write"), "{said}");
    std::fs::remove_dir(dir.join("members.json.tmp")).unwrap();

    // One bad record: skipped with a warning naming it, the others kept.
    let mut file: Value = serde_json::from_str(&good).unwrap();
    file["instances"][0]["health"] = json!("sideways");
    std::fs::write(&instances, file.to_string()).unwrap();
    let mut node = Node::new(root.path(), "n0", &[]);
    node.dir = dir.clone();
    node.start(&[]);
    assert!(
        poll(CONVERGE, || catalog(&node) == ["web-1"]),
        "{:?}",
        catalog(&node)
    );
    assert!(node
        .log_text()
        .contains("skipped a bad saved instance: record 1"));
}

#[test]
fn two_processes_never_share_a_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let mut first = Node::new(root.path(), "n0", &[]);
    first.start(&[]);
    let said = refused_start(root.path(), &first.dir);
    assert!(said.contains("in use by another hera process"), "{said}");
    assert!(first.get("/v1/agent/self").is_some());
}

/// Kill a node at pseudo-random instants during a burst of registrations: after each restart
/// every registration it acknowledged is there.
#[test]
fn acknowledged_registrations_survive_a_kill_at_any_instant() {
    let root = tempfile::tempdir().unwrap();
    let mut node = Node::new(root.path(), "n0", &[]);
    let mut acknowledged: Vec<String> = Vec::new();
    // A fixed sequence, so a failure replays; spread over a burst's first half second.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..6 {
        node.start(&[]);
        let port = node.http;
        let burst = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for i in 0..10_000 {
                let id = format!("crash-{round}-{i}");
                let body = json!({"Name": "web", "ID": id, "Port": 80, "Check": {"TTL": "60s"}});
                match raw_http(port, "PUT", "/v1/agent/service/register", &body.to_string()) {
                    Some((200, _)) => acked.push(id),
                    _ => break,
                }
            }
            acked
        });
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(Duration::from_millis(20 + state % 480));
        node.kill9();
        let acked = burst.join().unwrap();
        eprintln!(
            "round {round}: killed after {} acknowledged registrations",
            acked.len()
        );
        acknowledged.extend(acked);

        node.start(&[]);
        let held: Vec<String> = node
            .get("/v1/agent/services")
            .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
            .unwrap_or_default();
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !held.contains(id))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: lost {lost:?} of {}",
            acknowledged.len()
        );
        node.kill9();
    }
    assert!(acknowledged.len() > 6, "the bursts registered something");
}

const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// The documented rotation (one cluster-wide command per step), then a restart with the config's old key: the node
/// comes back with the new keyring (from its data_dir), rejoins and loses nothing.
#[test]
fn a_key_rotation_then_a_restart_rejoins_with_the_new_key() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster(root.path(), "n", 3, &["--encrypt", KEY_1]);
    let key = |k: &str| json!({"Key": k}).to_string();
    // Each step acts on every member (issue 16), asked of a different node each time.
    for (node, (method, k)) in
        nodes
            .iter()
            .zip([("POST", KEY_2), ("PUT", KEY_2), ("DELETE", KEY_1)])
    {
        let answer = raw_http(node.http, method, "/v1/operator/keyring", &key(k));
        assert_eq!(answer.map(|a| a.0), Some(200), "{method} on {}", node.name);
    }
    let mine = ids("web", 3);
    register_passing(&nodes[2], &mine);

    nodes[2].terminate();
    assert!(poll(CONVERGE, || catalog(&nodes[0]).is_empty()));
    nodes[2].start(&[]);
    wait_all_alive(&nodes);
    for node in &nodes {
        assert!(poll(CONVERGE, || catalog(node) == mine), "{}", node.name);
    }
    for id in &mine {
        assert_eq!(pass(&nodes[2], id), 200);
    }
    assert!(nodes[2]
        .log_text()
        .contains("gossip keyring restored from the data_dir"));
}

/// Five nodes, two instances on each: every node killed at once and restarted without
/// `join`, then each one restarted in turn (SIGTERM): every instance back everywhere.
#[test]
fn a_five_node_cluster_restarted_all_at_once_then_rolling_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = start_cluster(root.path(), "n", 5, &[]);
    let mut all = Vec::new();
    for node in &nodes {
        let mine = ids(&format!("web-{}", node.name), 2);
        register_passing(node, &mine);
        all.extend(mine);
    }
    all.sort();
    let everywhere = |nodes: &[Node]| {
        for node in nodes {
            assert!(
                poll(CONVERGE, || catalog(node) == all),
                "{} lists {:?}",
                node.name,
                catalog(node)
            );
        }
    };
    everywhere(&nodes);

    for node in nodes.iter_mut() {
        node.kill9();
    }
    for node in nodes.iter_mut() {
        node.start(&[]);
    }
    wait_all_alive(&nodes);
    everywhere(&nodes);

    for i in 0..nodes.len() {
        nodes[i].terminate();
        nodes[i].start(&[]);
        wait_all_alive(&nodes);
        everywhere(&nodes);
    }
    for id in &all {
        let owner = nodes
            .iter()
            .find(|n| id.starts_with(&format!("web-{}-", n.name)))
            .unwrap();
        assert_eq!(pass(owner, id), 200, "{id}");
    }
}

#[test]
fn configuration_changed_at_run_time_survives_a_kill_and_wins_over_the_flags() {
    let root = tempfile::tempdir().unwrap();
    let mut node = Node::new(root.path(), "n0", &[]);
    node.start(&[]);
    let before = node.get("/v1/hera/config").expect("config answered");

    let change = json!({"ProbeInterval": "2s", "Liveness": "1m"});
    let (status, body) =
        raw_http(node.http, "PUT", "/v1/hera/config", &change.to_string()).expect("PUT answered");
    assert_eq!(status, 200, "{body}");
    let changed: Value = serde_json::from_str(&body).unwrap();
    let probe = changed["Protocol"]["ProbeInterval"].clone();
    let liveness = changed["Liveness"].clone();
    assert_ne!(probe, before["Protocol"]["ProbeInterval"], "{changed}");
    assert_ne!(liveness, before["Liveness"], "{changed}");

    // Acknowledged means kept: a kill right after the answer loses nothing, and the preset
    // given again on the command line does not undo it.
    node.kill9();
    node.start(&[]);
    let after = node.get("/v1/hera/config").expect("config answered");
    assert_eq!(after["Protocol"]["ProbeInterval"], probe, "{after}");
    assert_eq!(after["Liveness"], liveness, "{after}");
    // Knobs never changed at run time still come from the preset.
    assert_eq!(
        after["Protocol"]["SuspicionBase"],
        before["Protocol"]["SuspicionBase"]
    );
    assert!(
        node.log_text().contains("restored from the data_dir"),
        "{}",
        node.log_text()
    );

    // A kept change that is not a valid configuration is refused at start, naming the file.
    node.terminate();
    let kept = node.dir.join("config.json");
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    file["settings"]["ProbeInterval"] = json!("1e20");
    std::fs::write(&kept, file.to_string()).unwrap();
    let said = refused_start(root.path(), &node.dir);
    assert!(
        said.contains("config.json") && said.contains("ProbeInterval"),
        "{said}"
    );
}
