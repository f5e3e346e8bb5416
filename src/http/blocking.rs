//! Consul's blocking queries: `?index=N&wait=D` holds a read until the registry's index passes
//! N or D elapses, and every read answers with `X-Consul-Index`. Endpoints that Consul blocks
//! on a hash of their content instead (`/v1/agent/service/<id>`) take `?hash=H&wait=D` and
//! answer with `X-Consul-ContentHash`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};

use super::{ApiError, AppState};
use crate::driver::Snapshot;

/// Blocking queries waiting at once; beyond this they answer at once (as if timed out).
pub const WAITERS_MAX: usize = 1_024;
/// Consul's defaults: 5 minutes, at most 10.
pub const WAIT_DEFAULT: Duration = Duration::from_secs(300);
pub const WAIT_MAX: Duration = Duration::from_secs(600);

/// The registry index as Consul reports it: one more than the registry's own, so it is never
/// 0 (clients treat 0 as "no index") and the first change still moves it.
pub fn index_of(s: &Snapshot) -> u64 {
    s.registry.index() + 1
}

/// Wait as the query asks, then return the snapshot to answer from.
pub async fn wait(
    app: &AppState,
    query: &HashMap<String, String>,
) -> Result<Arc<Snapshot>, ApiError> {
    let Some(index) = query.get("index").filter(|v| !v.is_empty()) else {
        return Ok(app.node.snapshot());
    };
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::bad_request(format!("index {index:?} is not a number")))?;
    let wait = wait_of(query)?;
    let Ok(_slot) = app.shared.blocking.try_acquire() else {
        return Ok(app.node.snapshot());
    };
    let changed = app.node.wait_for(wait, move |s| index_of(s) > index).await;
    Ok(changed.unwrap_or_else(|| app.node.snapshot()))
}

/// Wait as a hash-based query asks: until `content_hash` of the node's state differs from the
/// query's `hash`, or `wait` elapses. Without `hash`, answer at once.
pub async fn wait_for_content(
    app: &AppState,
    query: &HashMap<String, String>,
    content_hash: impl Fn(&Snapshot) -> Option<String> + Send + Sync + 'static,
) -> Result<Arc<Snapshot>, ApiError> {
    let Some(seen) = query.get("hash").filter(|v| !v.is_empty()).cloned() else {
        return Ok(app.node.snapshot());
    };
    let wait = wait_of(query)?;
    let Ok(_slot) = app.shared.blocking.try_acquire() else {
        return Ok(app.node.snapshot());
    };
    let changed = app
        .node
        .wait_for(wait, move |s| {
            content_hash(s).as_deref() != Some(seen.as_str())
        })
        .await;
    Ok(changed.unwrap_or_else(|| app.node.snapshot()))
}

/// A read's `wait`: Consul's default when absent, capped at its maximum.
fn wait_of(query: &HashMap<String, String>) -> Result<Duration, ApiError> {
    let wait = match query.get("wait").filter(|v| !v.is_empty()) {
        Some(text) => consul_duration(text).map_err(ApiError::bad_request)?,
        None => WAIT_DEFAULT,
    };
    Ok(wait.min(WAIT_MAX))
}

/// The content hash of an answer, as `X-Consul-ContentHash` carries it: 16 hex digits of a
/// 64-bit hash of its JSON. It need only tell answers of this process apart.
pub fn content_hash(answer: &serde_json::Value) -> String {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let bytes = serde_json::to_vec(answer).unwrap_or_default();
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(bytes);
    format!("{hash:016x}")
}

/// The headers Consul clients look for on every read.
pub fn headers(s: &Snapshot) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&index_of(s).to_string()) {
        h.insert("X-Consul-Index", v);
    }
    // There is no leader to lose: every node answers from its own replica.
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    h.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    h
}

/// Go-style durations as Consul takes them: "10s", "1m30s", "250ms", "2h", or bare seconds.
pub fn consul_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Ok(Duration::from_secs_f64(seconds));
        }
    }
    let bad = || format!("{text:?} is not a duration like 10s, 1m30s or 250ms");
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3_600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e9 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Query-string booleans as lenient as Consul's: present without a value, `true`, `True`, `1`.
pub fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    match query.get(key) {
        None => false,
        Some(v) => !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "no"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consul_durations() {
        let table = [
            ("10s", 10_000),
            ("1m30s", 90_000),
            ("250ms", 250),
            ("2h", 7_200_000),
            ("5", 5_000),
        ];
        for (text, ms) in table {
            assert_eq!(consul_duration(text).unwrap().as_millis(), ms, "{text}");
        }
        for bad in ["", "s", "10x", "-1s", "1.2.3s"] {
            assert!(consul_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lenient_flags() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert!(flag(&q("passing", ""), "passing"));
        assert!(flag(&q("passing", "True"), "passing"));
        assert!(flag(&q("passing", "1"), "passing"));
        assert!(!flag(&q("passing", "false"), "passing"));
        assert!(!flag(&HashMap::new(), "passing"));
    }
}
