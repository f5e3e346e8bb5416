//! `GET /v1/status`: this node, the members by state with their last contact, quorum, the
//! dissemination queue, and request counts with latency percentiles per verb.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::AppState;
use crate::node::HeldBound;
use crate::runtime::driver::Snapshot;
use crate::runtime::telemetry::latency::{VerbLatency, WINDOW};
use crate::time::Instant;

#[derive(Debug, Serialize)]
pub struct StatusMember {
    pub name: String,
    pub addr: String,
    pub state: &'static str,
    pub incarnation: u32,
    pub dc: String,
    /// Seconds since this node last had an ack from the member (None: never, or itself).
    pub last_contact_seconds: Option<f64>,
    pub state_since_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct QuorumStatus {
    pub has_quorum: bool,
    pub reachable: usize,
    pub known: usize,
    pub expected: Option<usize>,
    /// Reachable members needed for a majority of `max(known, expected)`.
    pub needed: usize,
}

/// What the registry holds here, against the bounds a new id is refused past.
#[derive(Debug, Serialize)]
pub struct RegistryStatus {
    pub live: usize,
    pub tombstones: usize,
    /// Live instances and tombstones: what `registry_entries_max` bounds.
    pub held: usize,
    pub registry_entries_max: usize,
    /// Instances this node owns: what `instances_owned_max` bounds.
    pub owned: usize,
    pub instances_owned_max: usize,
    /// New ids refused since start, by the bound that refused them (as of the snapshot: at
    /// most a second behind `hera_registry_refused_total`).
    pub refused: std::collections::BTreeMap<&'static str, u64>,
}

/// Requests per verb, and their latency over the recent window.
#[derive(Debug, Serialize)]
pub struct RequestStatus {
    pub window_seconds: u64,
    pub verbs: Vec<VerbLatency>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub node: String,
    pub addr: String,
    pub dc: String,
    pub incarnation: u32,
    pub lifecycle: String,
    pub uptime_seconds: f64,
    pub health_score: u32,
    pub members_by_state: std::collections::BTreeMap<&'static str, usize>,
    pub members: Vec<StatusMember>,
    pub quorum: QuorumStatus,
    pub dissemination_queue: usize,
    pub registry: RegistryStatus,
    pub requests: RequestStatus,
}

/// The status as of `now`. Times are measured to `now`, not to when the snapshot was taken:
/// acks do not publish a new snapshot, so a quiet cluster's snapshot can be minutes old, and
/// an uptime or a last contact measured to it would stand still.
pub fn status_of(s: &Snapshot, now: Instant) -> Status {
    let mut by_state = std::collections::BTreeMap::new();
    for state in ["alive", "suspect", "failed", "left"] {
        by_state.insert(state, 0);
    }
    let members: Vec<StatusMember> = s
        .members
        .iter()
        .map(|m| {
            let state = if m.is_self && s.lifecycle != crate::node::Lifecycle::Active {
                "left"
            } else {
                m.state.as_str()
            };
            *by_state.entry(state).or_insert(0) += 1;
            StatusMember {
                name: m.name.to_string(),
                addr: m.profile.addr.to_string(),
                state,
                incarnation: m.incarnation.get(),
                dc: m.profile.dc.to_string(),
                last_contact_seconds: m.last_ack.map(|t| now.saturating_since(t).as_secs_f64()),
                state_since_seconds: now.saturating_since(m.since).as_secs_f64(),
            }
        })
        .collect();
    Status {
        node: s.name.to_string(),
        addr: s.addr.to_string(),
        dc: s
            .members
            .first()
            .map(|m| m.profile.dc.to_string())
            .unwrap_or_default(),
        incarnation: s.incarnation,
        lifecycle: format!("{:?}", s.lifecycle).to_lowercase(),
        uptime_seconds: now.saturating_since(s.started).as_secs_f64(),
        health_score: s.health_score,
        members_by_state: by_state,
        members,
        quorum: QuorumStatus {
            has_quorum: s.quorum.has_quorum,
            reachable: s.quorum.reachable,
            known: s.quorum.known,
            expected: s.quorum.expected,
            needed: s.quorum.known.max(s.quorum.expected.unwrap_or(0)) / 2 + 1,
        },
        dissemination_queue: s.queue_depth,
        registry: RegistryStatus {
            live: s.registry.len(),
            tombstones: s.registry.tombstones(),
            held: s.registry.held(),
            registry_entries_max: s.config.registry_entries_max,
            owned: s.local.len(),
            instances_owned_max: s.config.instances_owned_max,
            refused: HeldBound::ALL
                .into_iter()
                .map(|bound| (bound.field(), bound.refused(&s.stats)))
                .collect(),
        },
        requests: RequestStatus {
            window_seconds: WINDOW.as_secs(),
            verbs: Vec::new(),
        },
    }
}

pub async fn status(State(app): State<AppState>) -> Json<Status> {
    let telemetry = app.node.telemetry();
    let mut status = status_of(&app.node.snapshot(), telemetry.clock().now());
    status.requests.verbs = telemetry.latency_summary();
    Json(status)
}
