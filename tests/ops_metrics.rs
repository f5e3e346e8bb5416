//! `/metrics` on real nodes: names and help text, per-node isolation, `promtool check metrics`,
//! and a real Prometheus server scraping a three-node cluster.
//!
//! The last two need programs from the Debian package `prometheus`; they are ignored in a plain
//! `cargo test` and run by `scripts/test.sh` with `--ignored` after installing it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// Families every node exports from its first scrape.
const REQUIRED: [&str; 43] = [
    "hera_members",
    "hera_quorum",
    "hera_quorum_reachable_members",
    "hera_quorum_known_members",
    "hera_quorum_expected_members",
    "hera_quorum_needed_members",
    "hera_health_score",
    "hera_dissemination_queue_length",
    "hera_probes_total",
    "hera_probes_failed_total",
    "hera_probes_indirect_total",
    "hera_suspicions_raised_total",
    "hera_suspicions_refuted_total",
    "hera_suspicions_confirmed_total",
    "hera_refutations_total",
    "hera_gossip_datagrams_total",
    "hera_gossip_bytes_total",
    "hera_gossip_messages_total",
    "hera_decode_errors_total",
    "hera_replies_refused_total",
    "hera_anti_entropy_rounds_total",
    "hera_probe_rtt_seconds",
    "hera_http_requests_total",
    "hera_http_request_duration_seconds",
    "hera_node_info",
    "hera_start_time_seconds",
    "hera_members_reaped_total",
    "hera_registry_instances",
    "hera_registry_instances_offline",
    "hera_registry_tombstones",
    "hera_registry_index",
    "hera_health_checks_started_total",
    "hera_health_checks_failed_total",
    "hera_registry_entries_pushed_total",
    "hera_gossip_dropped_total",
    "hera_paced_backlog_bytes",
    "hera_paced_dropped_total",
    "hera_registry_syncs_total",
    "hera_registry_resyncs_total",
    "hera_registry_instances_expired_total",
    "hera_registry_clock_rejections_total",
    "hera_implausible_claims_total",
    "hera_registry_refused_total",
];

/// Alerting rules shipped in the docs.
const ALERTS: &str = "docs/prometheus/hera-alerts.yml";

/// Family name → (type, help) from the text exposition format.
fn families(text: &str) -> BTreeMap<String, (String, String)> {
    let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.splitn(4, ' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("#"), Some("HELP"), Some(name), Some(help)) => {
                out.entry(name.to_string()).or_default().1 = help.to_string();
            }
            (Some("#"), Some("TYPE"), Some(name), Some(kind)) => {
                out.entry(name.to_string()).or_default().0 = kind.to_string();
            }
            _ => {}
        }
    }
    out
}

/// The value of the one sample line `series` (exact name and labels), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_named_described_and_per_node() {
    let nodes = cluster("m", 2).await;
    // Let at least one probe round trip land in the histogram.
    let a = nodes[0].http_addr;
    get_text(a, "/v1/status").await;
    let text = eventually(CONVERGE, "a probe round trip in the histogram", || async {
        let text = get_text(a, "/metrics").await;
        (sample(&text, "hera_probe_rtt_seconds_count").unwrap_or(0.0) > 0.0).then_some(text)
    })
    .await;

    let found = families(&text);
    for name in REQUIRED {
        assert!(found.contains_key(name), "{name} missing from:\n{text}");
    }
    for (name, (kind, help)) in &found {
        assert!(name.starts_with("hera_"), "{name}: no hera_ prefix");
        assert!(!help.trim().is_empty(), "{name}: no HELP text");
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "counter {name} lacks _total"),
            "histogram" => assert!(name.ends_with("_seconds"), "histogram {name} lacks a unit"),
            "gauge" => assert!(
                !name.ends_with("_total"),
                "gauge {name} named like a counter"
            ),
            other => panic!("{name}: unexpected type {other} (summaries are not wanted)"),
        }
    }
    // Histograms come with buckets, not quantiles.
    assert!(text.contains("hera_probe_rtt_seconds_bucket{le=\"0.001\"}"));
    assert!(!text.contains("quantile="), "summaries in:\n{text}");
    assert_eq!(sample(&text, "hera_quorum"), Some(1.0));
    assert_eq!(sample(&text, "hera_members{state=\"alive\"}"), Some(2.0));
    assert!(sample(&text, "hera_gossip_datagrams_total{direction=\"in\"}").unwrap() > 0.0);
    assert!(
        text.contains(
            "hera_http_requests_total{method=\"GET\",route=\"/v1/status\",status=\"200\"}"
        ),
        "the status request was not counted:\n{text}"
    );

    // Two nodes in one process: each exports itself only.
    let b = get_text(nodes[1].http_addr, "/metrics").await;
    assert!(text.contains("hera_node_info{node=\"m0\""), "{text}");
    assert!(!text.contains("node=\"m1\""), "m0 exports m1's series");
    assert!(b.contains("hera_node_info{node=\"m1\""), "{b}");
    assert!(!b.contains("node=\"m0\""), "m1 exports m0's series");
    assert!(
        !b.contains("route=\"/v1/status\""),
        "m1 counted a request that went to m0"
    );

    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_latency_per_verb() {
    let nodes = cluster("s", 1).await;
    let a = nodes[0].http_addr;
    for _ in 0..5 {
        get_text(a, "/v1/agent/members").await;
    }
    let _ = http().get(format!("http://{a}/no/such/route")).send().await;
    let status = get_json(a, "/v1/status").await;
    let verbs = status["requests"]["verbs"].as_array().expect("verbs");
    let members = verbs
        .iter()
        .find(|v| v["route"] == "/v1/agent/members" && v["method"] == "GET")
        .unwrap_or_else(|| panic!("no entry for GET /v1/agent/members: {status:#}"));
    assert_eq!(members["requests_total"], 5);
    assert_eq!(members["window_requests"], 5);
    let p = |k: &str| members[k].as_f64().unwrap();
    assert!(p("p50_ms") > 0.0 && p("p50_ms") <= p("p90_ms") && p("p90_ms") <= p("p99_ms"));
    assert!(
        verbs.iter().any(|v| v["route"] == "unmatched"),
        "unmatched routes are counted under one label: {status:#}"
    );
    assert_eq!(status["quorum"]["has_quorum"], true);
    assert_eq!(status["quorum"]["needed"], 1);
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_checks_are_counted() {
    let nodes = cluster("f", 1).await;
    let a = nodes[0].http_addr;
    // Nothing listens on a port just released, so every check fails to connect.
    let url = format!("http://127.0.0.1:{}/health", free_port());
    let body = serde_json::json!({
        "Name": "flaky", "ID": "flaky-1", "Address": "127.0.0.1", "Port": 1,
        "Check": {"HTTP": url, "Interval": "1s", "Timeout": "1s"},
    });
    let response = http()
        .put(format!("http://{a}/v1/agent/service/register"))
        .json(&body)
        .send()
        .await
        .expect("register");
    assert!(response.status().is_success(), "{}", response.status());
    eventually(CONVERGE, "a failed check counted", || async {
        let text = get_text(a, "/metrics").await;
        let started = sample(&text, "hera_health_checks_started_total").unwrap_or(0.0);
        let failed = sample(&text, "hera_health_checks_failed_total").unwrap_or(0.0);
        let critical = sample(&text, r#"hera_registry_instances{health="critical"}"#);
        (started >= 1.0 && failed >= 1.0 && critical == Some(1.0)).then_some(())
    })
    .await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool (Debian package `prometheus`); scripts/test.sh installs it and runs --ignored"]
async fn promtool_finds_nothing_to_complain_about() {
    let promtool = require("promtool", "prometheus");
    let nodes = cluster("p", 2).await;
    let a = nodes[0].http_addr;
    let registered = support::register_sample_services(&nodes[0]).await;
    get_text(a, "/v1/status").await;
    let text = eventually(CONVERGE, "a probe round trip", || async {
        let text = get_text(a, "/metrics").await;
        (sample(&text, "hera_probe_rtt_seconds_count").unwrap_or(0.0) > 0.0).then_some(text)
    })
    .await;

    // The registry's series are set from the snapshot at scrape time: every sample instance
    // is passing and on-line, nothing has been deleted.
    let passing = sample(&text, r#"hera_registry_instances{health="passing"}"#);
    assert_eq!(passing, Some(registered.len() as f64), "{text}");
    assert_eq!(sample(&text, "hera_registry_instances_offline"), Some(0.0));
    assert_eq!(sample(&text, "hera_registry_tombstones"), Some(0.0));
    assert!(sample(&text, "hera_registry_index").is_some_and(|i| i >= registered.len() as f64));
    assert_eq!(sample(&text, "hera_health_checks_started_total"), Some(0.0));

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {} {said}\non:\n{text}",
        out.status
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[test]
#[ignore = "needs promtool (Debian package `prometheus`); scripts/test.sh installs it and runs --ignored"]
fn documented_alerting_rules_are_valid() {
    let promtool = require("promtool", "prometheus");
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(ALERTS);
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the prometheus server (Debian package `prometheus`); scripts/test.sh installs it and runs --ignored"]
async fn prometheus_scrapes_three_nodes_and_sees_quorum_on_each() {
    let prometheus = require("prometheus", "prometheus");
    let nodes = cluster("q", 3).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let targets: Vec<String> = nodes.iter().map(|n| format!("'{}'", n.http_addr)).collect();
    // The documented alerting rules are loaded too: they must parse and evaluate.
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(ALERTS);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files: ['{}']\n\
         scrape_configs:\n  - job_name: hera\n    static_configs:\n      - targets: [{}]\n",
        rules.display(),
        targets.join(", ")
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write config");
    let port = free_port();
    let mut command = Command::new(prometheus);
    command
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn");
    quiet(&mut command, &dir.path().join("prometheus.log"));
    // Killed when dropped: on success, on a failed assertion, on a panic anywhere below.
    let mut server = KillOnDrop::spawn("prometheus", &mut command);

    let api = format!("http://127.0.0.1:{port}/api/v1/query?query=hera_quorum");
    let by_instance = eventually(
        Duration::from_secs(60),
        "hera_quorum from 3 targets",
        || {
            server.assert_running();
            let api = api.clone();
            async move {
                let body: serde_json::Value =
                    http().get(&api).send().await.ok()?.json().await.ok()?;
                let result = body["data"]["result"].as_array()?;
                let seen: BTreeMap<String, String> = result
                    .iter()
                    .filter_map(|r| {
                        Some((
                            r["metric"]["instance"].as_str()?.to_string(),
                            r["value"][1].as_str()?.to_string(),
                        ))
                    })
                    .collect();
                (seen.len() == 3).then_some(seen)
            }
        },
    )
    .await;
    let expected: BTreeSet<String> = nodes.iter().map(|n| n.http_addr.to_string()).collect();
    assert_eq!(
        by_instance.keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    for (instance, value) in &by_instance {
        assert_eq!(value, "1", "{instance} reports no quorum");
    }

    let rules_api = format!("http://127.0.0.1:{port}/api/v1/rules");
    let rules = eventually(
        Duration::from_secs(30),
        "the alerting rules evaluated",
        || {
            let rules_api = rules_api.clone();
            async move {
                let body: serde_json::Value = http()
                    .get(&rules_api)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let rules: Vec<serde_json::Value> = body["data"]["groups"]
                    .as_array()?
                    .iter()
                    .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                    .collect();
                let evaluated = !rules.is_empty()
                    && rules.iter().all(|r| {
                        r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z"
                    });
                evaluated.then_some(rules)
            }
        },
    )
    .await;
    // A healthy three-node cluster: nothing fires.
    for rule in &rules {
        assert_eq!(rule["state"], "inactive", "{rule:#}");
    }
    drop(server);
    for node in nodes {
        node.shutdown().await;
    }
}
