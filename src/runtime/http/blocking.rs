// Reads values from outside the process: arithmetic is checked (issue 12), or allowed where it
// stands with its reason.
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
//! Consul's blocking queries: `?index=N&wait=D` holds a read until the registry's index passes
//! N or D elapses, and every read answers with `X-Consul-Index`. Endpoints that Consul blocks
//! on a hash of their content instead (`/v1/agent/service/<id>`) take `?hash=H&wait=D` and
//! answer with `X-Consul-ContentHash`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};

use super::{ApiError, AppState};
use crate::runtime::driver::Snapshot;

/// Blocking queries waiting at once, by default (`blocking_waiters_max` changes it): room for
/// a thousand watchers on one node (issue 17). Beyond the bound a blocking query is refused
/// with 429 and [`REFUSED_RETRY_AFTER_SECS`].
pub const WAITERS_MAX: usize = 1_024;
/// What a refused blocking query is told to wait before asking again. Answering it at once
/// with the unchanged index, as if timed out, made a watcher ask again at once and spin; the
/// slots free only on a change or a waiter's timeout, so asking sooner rarely helps. Consul's
/// own watches wait 5 s after an error.
pub const REFUSED_RETRY_AFTER_SECS: u64 = 5;
/// Consul's defaults: 5 minutes, at most 10.
pub const WAIT_DEFAULT: Duration = Duration::from_secs(300);
pub const WAIT_MAX: Duration = Duration::from_secs(600);

/// The registry index as Consul reports it: one more than the registry's own, so it is never
/// 0 (clients treat 0 as "no index") and the first change still moves it.
pub fn index_of(s: &Snapshot) -> u64 {
    // The index counts changes: u64::MAX of them is out of reach, but saturate all the same.
    s.registry.index().saturating_add(1)
}

/// How a read blocks, parsed from its query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Answer at once.
    Now,
    /// Until `until` holds, or `wait` elapses.
    Until { until: Until, wait: Duration },
}

/// What a blocking read waits for. Apart from [`Block::Now`], so that the wait step has no
/// "answer at once" case to handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// The registry's index passes this (Consul's `?index=N&wait=D`).
    Index(u64),
    /// The answer's content hash differs from this (`?hash=H&wait=D`).
    Hash(String),
}

/// The longest `hash` read: [`content_hash`] writes 16 hex digits.
pub const HASH_MAX_BYTES: usize = 64;

impl Block {
    /// `index` and `wait`; without `index`, no wait.
    pub fn on_index(query: &HashMap<String, String>) -> Result<Block, ApiError> {
        let Some(index) = query.get("index").filter(|v| !v.is_empty()) else {
            return Ok(Block::Now);
        };
        let index: u64 = index.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "index {:?} is not a number",
                index.chars().take(64).collect::<String>()
            ))
        })?;
        Ok(Block::Until {
            until: Until::Index(index),
            wait: wait_of(query)?,
        })
    }

    /// `hash` and `wait`; without `hash`, no wait.
    pub fn on_hash(query: &HashMap<String, String>) -> Result<Block, ApiError> {
        let Some(hash) = query.get("hash").filter(|v| !v.is_empty()) else {
            return Ok(Block::Now);
        };
        if hash.len() > HASH_MAX_BYTES {
            return Err(ApiError::bad_request(format!(
                "hash: {} bytes, at most {HASH_MAX_BYTES}",
                hash.len()
            )));
        }
        Ok(Block::Until {
            until: Until::Hash(hash.clone()),
            wait: wait_of(query)?,
        })
    }
}

/// Wait as the query asks (index-based), then return the snapshot to answer from.
pub async fn wait(
    app: &AppState,
    query: &HashMap<String, String>,
) -> Result<Arc<Snapshot>, ApiError> {
    until(app, &Block::on_index(query)?, |_| None).await
}

/// The wait step of every blocking read: hold until `block` is satisfied or its `wait`
/// elapses, then return the snapshot to answer from. `content_hash` is the answer's hash, for
/// [`Until::Hash`]. Past `blocking_waiters_max` waiting reads, a blocking read is refused
/// with 429 and a `Retry-After`, the bound named.
pub async fn until(
    app: &AppState,
    block: &Block,
    content_hash: impl Fn(&Snapshot) -> Option<String> + Send + Sync,
) -> Result<Arc<Snapshot>, ApiError> {
    let (until, wait) = match block {
        Block::Now => return Ok(app.node.snapshot()),
        Block::Until { until, wait } => (until, *wait),
    };
    let Ok(_slot) = app.shared.blocking.try_acquire() else {
        return Err(refused(app.shared.waiters_max));
    };
    let changed = app
        .node
        .wait_for(wait, |s| match until {
            Until::Index(index) => index_of(s) > *index,
            Until::Hash(hash) => content_hash(s).as_deref() != Some(hash.as_str()),
        })
        .await;
    Ok(changed.unwrap_or_else(|| app.node.snapshot()))
}

/// The answer to a blocking read past the bound: 429, as Consul answers a client past its
/// connection limit (`http_max_conns_per_client`), and a time to wait, so that a watcher backs
/// off instead of asking again at once.
fn refused(waiters_max: usize) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many blocking queries waiting on this node (at most {waiters_max}, the \
             setting blocking_waiters_max): retry after {REFUSED_RETRY_AFTER_SECS} s"
        ),
    )
    .retry_after(REFUSED_RETRY_AFTER_SECS)
}

/// A read's `wait`: Consul's default when absent, capped at its maximum.
fn wait_of(query: &HashMap<String, String>) -> Result<Duration, ApiError> {
    let wait = match query.get("wait").filter(|v| !v.is_empty()) {
        // Consul clamps any wait it can read to its maximum; so does hera, however long.
        Some(text) => match crate::duration::parse(text) {
            Ok(wait) => wait,
            Err(crate::duration::DurationError::TooLong { .. }) => WAIT_MAX,
            Err(e) => return Err(ApiError::bad_request(format!("wait: {e}"))),
        },
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

/// A duration from a query string or a JSON body, in the one grammar (`crate::duration`).
pub fn consul_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text).map_err(|e| e.to_string())
}

/// Query-string booleans as lenient as Consul's: present without a value, or any spelling
/// Go's `strconv.ParseBool` reads (`1`, `t`, `true`, `True`, ...), plus `yes`/`no`. Anything
/// else is refused rather than read as true.
pub fn flag(query: &HashMap<String, String>, key: &str) -> Result<bool, ApiError> {
    let Some(value) = query.get(key) else {
        return Ok(false);
    };
    match value.to_ascii_lowercase().as_str() {
        "" | "1" | "t" | "true" | "yes" => Ok(true),
        "0" | "f" | "false" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{key}={:?} is not a boolean (true or false)",
            value.chars().take(64).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_flags() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        let read = |v: &str| flag(&q("passing", v), "passing");
        assert_eq!(read(""), Ok(true));
        assert_eq!(read("True"), Ok(true));
        assert_eq!(read("1"), Ok(true));
        assert_eq!(read("false"), Ok(false));
        assert_eq!(flag(&HashMap::new(), "passing"), Ok(false));
        // Issue 12, item 11: anything else used to read as true.
        for v in ["maybe", "2", "on", "truee", "\u{0}"] {
            assert_eq!(read(v).map_err(|e| e.status.as_u16()), Err(400), "{v:?}");
        }
    }
}
