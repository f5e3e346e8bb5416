//! `GET /ui/state`: everything the console shows, in one answer, from the published snapshot.
//!
//! The page could assemble this from the Consul endpoints (a catalog call, then one health
//! call per service), but that is 1 + N requests per refresh. One endpoint shaped for the page
//! keeps a refresh to one request and lets it block on the snapshot's version, the way Consul's
//! blocking queries do: `?index=<X-Consul-Index>&wait=<seconds>` answers as soon as anything
//! changes, or after the wait with the same index.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::runtime::driver::Snapshot;
use crate::runtime::http::status::{status_of, QuorumStatus, StatusMember};
use crate::runtime::http::views;
use crate::runtime::http::AppState;
use crate::time::Instant;

/// Longest a blocking refresh may hang: below common proxy idle time-outs.
const WAIT_MAX: Duration = Duration::from_secs(60);
const WAIT_DEFAULT: Duration = Duration::from_secs(25);

#[derive(Debug, Deserialize)]
pub struct StateQuery {
    /// Answer once the snapshot's version differs from this one.
    pub index: Option<u64>,
    /// Seconds to wait for a change (Consul accepts `10s`; a bare number works too).
    pub wait: Option<String>,
}

/// One service instance as the console shows it.
#[derive(Debug, Serialize)]
pub struct ConsoleInstance {
    pub service: String,
    pub id: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    /// passing, warning or critical.
    pub health: String,
    pub online: bool,
    pub maintenance_reason: Option<String>,
    /// The node that registered it, and that node's data centre.
    pub owner: String,
    pub dc: String,
    /// Kept only for want of quorum: its owner is failed or gone.
    pub stale: bool,
    /// Each of its checks.
    pub checks: Vec<ConsoleCheck>,
}

/// One check, of an instance or of the node.
#[derive(Debug, Serialize)]
pub struct ConsoleCheck {
    pub id: String,
    pub name: String,
    /// ttl, http, tcp, or empty for an instance registered without a check.
    pub kind: String,
    pub status: String,
    pub output: String,
}

impl ConsoleCheck {
    fn of(c: &crate::registry::CheckState) -> ConsoleCheck {
        ConsoleCheck {
            id: c.id.0.clone(),
            name: c.name.0.clone(),
            kind: views::check_type(&c.check).to_string(),
            status: c.status.as_str().to_string(),
            output: c.output.0.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ConsoleState {
    pub index: u64,
    pub node: String,
    pub dc: String,
    pub lifecycle: String,
    pub health_score: u32,
    pub quorum: QuorumStatus,
    pub members_by_state: BTreeMap<&'static str, usize>,
    pub members: Vec<StatusMember>,
    pub instances: Vec<ConsoleInstance>,
    /// Why this node is in maintenance (every instance it owns off-line), if it is.
    pub node_maintenance: Option<String>,
    /// This node's own checks (no service).
    pub node_checks: Vec<ConsoleCheck>,
}

pub async fn state(
    State(app): State<AppState>,
    Query(query): Query<StateQuery>,
) -> impl IntoResponse {
    let snapshot = match query.index {
        Some(seen) => {
            let wait = query
                .wait
                .as_deref()
                .and_then(parse_wait)
                .unwrap_or(WAIT_DEFAULT)
                .min(WAIT_MAX);
            match app.node.wait_for(wait, move |s| s.version != seen).await {
                Some(s) => s,
                None => app.node.snapshot(),
            }
        }
        None => app.node.snapshot(),
    };
    let body = state_of(&snapshot, app.node.telemetry().clock().now());
    let index = HeaderValue::from(body.index);
    (
        [(HeaderName::from_static("x-consul-index"), index)],
        Json(body),
    )
}

fn parse_wait(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(m) = text.strip_suffix('m') {
        return m.parse().ok().map(|m: u64| Duration::from_secs(m * 60));
    }
    text.trim_end_matches('s')
        .parse()
        .ok()
        .map(Duration::from_secs)
}

pub fn state_of(s: &Snapshot, now: Instant) -> ConsoleState {
    let status = status_of(s, now);
    let dc_of: BTreeMap<&str, &str> = status
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.dc.as_str()))
        .collect();
    let instances = instances_of(s, &dc_of);
    ConsoleState {
        index: s.version,
        node: status.node,
        dc: status.dc,
        lifecycle: status.lifecycle,
        health_score: status.health_score,
        quorum: status.quorum,
        members_by_state: status.members_by_state,
        members: status.members,
        instances,
        node_maintenance: s.node_maintenance.clone(),
        node_checks: s.node_checks.iter().map(ConsoleCheck::of).collect(),
    }
}

/// The registry's instances, by service then id.
fn instances_of(s: &Snapshot, dc_of: &BTreeMap<&str, &str>) -> Vec<ConsoleInstance> {
    let mut out: Vec<ConsoleInstance> = s
        .registry
        .instances()
        .map(|i| ConsoleInstance {
            service: i.service.to_string(),
            id: i.id.to_string(),
            address: i.address.0.clone(),
            port: i.port,
            tags: i.tags().map(str::to_string).collect(),
            health: i.health.as_str().to_string(),
            online: i.online,
            maintenance_reason: i.maintenance_reason.as_ref().map(|r| r.0.clone()),
            owner: i.owner.to_string(),
            // The status view already names every member's data centre; fall back to the
            // registry's own lookup for an owner the status leaves out.
            dc: dc_of
                .get(i.owner.as_str())
                .map(|d| d.to_string())
                .unwrap_or_else(|| views::datacenter(s, i)),
            stale: s.is_stale(i),
            checks: i.checks().iter().map(ConsoleCheck::of).collect(),
        })
        .collect();
    // The registry orders by id; the page groups by service.
    out.sort_by(|a, b| (&a.service, &a.id).cmp(&(&b.service, &b.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_accepts_consul_durations() {
        assert_eq!(parse_wait("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_wait("25"), Some(Duration::from_secs(25)));
        assert_eq!(parse_wait("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_wait("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_wait("soon"), None);
    }
}
