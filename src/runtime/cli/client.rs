//! The client subcommands: HTTP requests to a running node, printed as tables.

use std::sync::OnceLock;
use std::time::Duration;

pub use axum::http::Method;
use serde_json::Value;

use crate::runtime::http_client::{self, Call};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn url(http_addr: &str, path: &str) -> String {
    if http_addr.starts_with("http://") || http_addr.starts_with("https://") {
        format!("{}{}", http_addr.trim_end_matches('/'), path)
    } else {
        format!("http://{http_addr}{path}")
    }
}

/// The API token from `--token` / `HERA_TOKEN`, set once per process by `run_client`, so that
/// every subcommand's requests carry it without threading it through each of them.
static TOKEN: OnceLock<Option<String>> = OnceLock::new();

pub fn set_token(token: Option<String>) {
    let _ = TOKEN.set(token.filter(|t| !t.trim().is_empty()));
}

/// Bytes of an answer the CLI reads: far above any listing a node serves, and a bound all the same.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// Send a request and return the JSON body, or the API's error message.
pub async fn call(
    method: Method,
    http_addr: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let target = url(http_addr, path);
    let mut headers = Vec::new();
    if let Some(token) = TOKEN.get().and_then(Option::as_deref) {
        headers.push(("X-Consul-Token".to_string(), token.trim().to_string()));
    }
    let call = Call {
        method,
        url: &target,
        headers,
        json: body.map(|b| b.to_string().into_bytes()),
        timeout: REQUEST_TIMEOUT,
        body_limit: RESPONSE_BYTES_MAX,
    };
    let response = http_client::send(call)
        .await
        .map_err(|e| format!("cannot reach {target}: {e}"))?;
    if response.truncated {
        return Err(format!(
            "{target}: the answer is larger than {RESPONSE_BYTES_MAX} bytes"
        ));
    }
    let status = response.status;
    let text = response.text();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        return Err(format!("{status}: {message}"));
    }
    Ok(value)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_string(),
        Some(other) => other.to_string(),
    }
}

pub async fn members(http_addr: &str) -> Result<(), String> {
    let members = call(Method::GET, http_addr, "/v1/agent/members", None).await?;
    let rows: Vec<[String; 5]> = members
        .as_array()
        .ok_or("unexpected answer from /v1/agent/members")?
        .iter()
        .map(|m| {
            [
                text(m, "Name"),
                format!("{}:{}", text(m, "Addr"), text(m, "Port")),
                text(m, "State"),
                text(m, "Incarnation"),
                text(m, "Datacenter"),
            ]
        })
        .collect();
    print_table(&["Node", "Address", "Status", "Incarnation", "DC"], &rows);
    Ok(())
}

pub async fn status(http_addr: &str) -> Result<(), String> {
    let s = call(Method::GET, http_addr, "/v1/status", None).await?;
    println!(
        "node:        {} ({}, dc {})",
        text(&s, "node"),
        text(&s, "addr"),
        text(&s, "dc")
    );
    println!(
        "lifecycle:   {}   incarnation {}   health score {}",
        text(&s, "lifecycle"),
        text(&s, "incarnation"),
        text(&s, "health_score")
    );
    let q = &s["quorum"];
    println!(
        "quorum:      {}   (reachable {} of {} known{}; a majority needs {})",
        if q["has_quorum"].as_bool() == Some(true) {
            "yes"
        } else {
            "NO"
        },
        text(q, "reachable"),
        text(q, "known"),
        q.get("expected")
            .and_then(Value::as_u64)
            .map(|e| format!(", expected {e}"))
            .unwrap_or_default(),
        text(q, "needed")
    );
    if let Some(by_state) = s["members_by_state"].as_object() {
        let parts: Vec<String> = by_state.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("members:     {}", parts.join(", "));
    }
    println!(
        "queue:       {} updates waiting",
        text(&s, "dissemination_queue")
    );
    let r = &s["registry"];
    println!(
        "registry:    {} live, {} tombstones; holds {} of at most {} (registry_entries_max)",
        text(r, "live"),
        text(r, "tombstones"),
        text(r, "held"),
        text(r, "registry_entries_max")
    );
    println!(
        "owned:       {} of at most {} (instances_owned_max)",
        text(r, "owned"),
        text(r, "instances_owned_max")
    );
    if let Some(refused) = r["refused"]
        .as_object()
        .filter(|m| m.values().any(|v| v.as_u64() != Some(0)))
    {
        let parts: Vec<String> = refused.iter().map(|(k, v)| format!("{v} by {k}")).collect();
        println!("refused:     new ids {}", parts.join(", "));
    }
    if let Some(members) = s["members"].as_array() {
        println!();
        let rows: Vec<[String; 5]> = members
            .iter()
            .map(|m| {
                [
                    text(m, "name"),
                    text(m, "addr"),
                    text(m, "state"),
                    text(m, "dc"),
                    seconds_ago(&m["last_contact_seconds"]),
                ]
            })
            .collect();
        print_table(&["Member", "Address", "State", "DC", "Last contact"], &rows);
    }
    let requests = &s["requests"];
    if let Some(verbs) = requests["verbs"].as_array().filter(|v| !v.is_empty()) {
        println!();
        println!(
            "requests (latency over the last {} s):",
            text(requests, "window_seconds")
        );
        print_table(&LATENCY_HEADERS, &latency_rows(verbs));
    }
    Ok(())
}

const LATENCY_HEADERS: [&str; 8] = [
    "Method", "Route", "Total", "5xx", "Window", "p50 ms", "p90 ms", "p99 ms",
];

/// One row per verb of `/v1/status`'s `requests.verbs`.
fn latency_rows(verbs: &[Value]) -> Vec<[String; 8]> {
    let ms = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_f64)
            .map(|x| format!("{x:.3}"))
            .unwrap_or_else(|| "-".to_string())
    };
    verbs
        .iter()
        .map(|v| {
            [
                text(v, "method"),
                text(v, "route"),
                text(v, "requests_total"),
                text(v, "errors_total"),
                text(v, "window_requests"),
                ms(v, "p50_ms"),
                ms(v, "p90_ms"),
                ms(v, "p99_ms"),
            ]
        })
        .collect()
}

fn seconds_ago(v: &Value) -> String {
    match v.as_f64() {
        Some(s) if s < 60.0 => format!("{s:.1}s ago"),
        Some(s) => format!("{:.0}m ago", s / 60.0),
        None => "-".to_string(),
    }
}

pub async fn leave(http_addr: &str) -> Result<(), String> {
    call(Method::PUT, http_addr, "/v1/agent/leave", None).await?;
    println!("the node is leaving the cluster");
    Ok(())
}

/// Print rows under headers, columns padded to their widest cell.
pub fn print_table<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
