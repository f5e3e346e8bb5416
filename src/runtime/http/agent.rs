//! Consul's agent endpoints for membership: members, join, leave.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::names::NodeName;
use crate::node::{Command, Lifecycle, MemberView};
use crate::swim::State as MemberState;

/// One entry of `GET /v1/agent/members`: Consul's (Serf's) fields, then hera's own.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsulMember {
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub tags: BTreeMap<String, String>,
    /// Serf's codes: 1 alive, 2 leaving, 3 left, 4 failed.
    pub status: u8,
    pub protocol_min: u8,
    pub protocol_max: u8,
    pub protocol_cur: u8,
    pub delegate_min: u8,
    pub delegate_max: u8,
    pub delegate_cur: u8,
    /// hera: the SWIM state, which tells a suspect from an alive member.
    pub state: &'static str,
    pub incarnation: u32,
    pub datacenter: String,
}

/// Serf's status code for a member.
pub fn serf_status(view: &MemberView, own_lifecycle: Lifecycle) -> u8 {
    if view.is_self {
        return match own_lifecycle {
            Lifecycle::Active => 1,
            Lifecycle::Leaving => 2,
            Lifecycle::Stopped => 3,
        };
    }
    match view.state {
        MemberState::Alive | MemberState::Suspect => 1,
        MemberState::Left => 3,
        MemberState::Failed => 4,
    }
}

pub fn consul_member(view: &MemberView, own_lifecycle: Lifecycle) -> ConsulMember {
    let mut tags: BTreeMap<String, String> = view
        .profile
        .tags
        .0
        .iter()
        .map(|t| (t.key.to_string(), t.value.0.clone()))
        .collect();
    tags.insert("dc".to_string(), view.profile.dc.to_string());
    let state = if view.is_self && own_lifecycle != Lifecycle::Active {
        "left"
    } else {
        view.state.as_str()
    };
    ConsulMember {
        name: view.name.to_string(),
        addr: view.profile.addr.ip().to_string(),
        port: view.profile.addr.port(),
        tags,
        status: serf_status(view, own_lifecycle),
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
        state,
        incarnation: view.incarnation.get(),
        datacenter: view.profile.dc.to_string(),
    }
}

pub async fn members(State(app): State<AppState>) -> Json<Vec<ConsulMember>> {
    let snapshot = app.node.snapshot();
    Json(
        snapshot
            .members
            .iter()
            .map(|m| consul_member(m, snapshot.lifecycle))
            .collect(),
    )
}

/// `PUT /v1/agent/join/<address>`: join through one more address (host:port, or a bare host
/// on the default gossip port).
pub async fn join(
    State(app): State<AppState>,
    Path(address): Path<String>,
) -> Result<Json<bool>, ApiError> {
    let seeds = resolve(&address).await?;
    app.node.command(Command::Join { seeds }).await?;
    Ok(Json(true))
}

/// `PUT /v1/agent/leave`: leave the cluster gracefully; the node stops afterwards.
pub async fn leave(State(app): State<AppState>) -> Result<Json<bool>, ApiError> {
    app.node.command(Command::Leave).await?;
    Ok(Json(true))
}

/// `PUT /v1/agent/force-leave/<node>`: move a failed member to `left` everywhere, so its
/// instances go and nobody waits for it (Consul's verb). 404 for an unknown member, 409 for
/// one that is not failed.
pub async fn force_leave(
    State(app): State<AppState>,
    Path(node): Path<String>,
) -> Result<Json<bool>, ApiError> {
    let name = NodeName::new(&node)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("node name {node:?}: {e}")))?;
    app.node.command(Command::ForceLeave { name }).await?;
    Ok(Json(true))
}

/// Resolve `host[:port]` to socket addresses, defaulting to the gossip port.
pub async fn resolve(address: &str) -> Result<Vec<SocketAddr>, ApiError> {
    let address = address.trim_start_matches('/');
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    if let Ok(ip) = address
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        return Ok(vec![SocketAddr::new(
            ip,
            crate::runtime::settings::DEFAULT_GOSSIP_PORT,
        )]);
    }
    let with_port = if address.contains(':') {
        address.to_string()
    } else {
        format!(
            "{address}:{}",
            crate::runtime::settings::DEFAULT_GOSSIP_PORT
        )
    };
    let found: Vec<SocketAddr> = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot resolve {address:?}: {e}")))?
        .collect();
    if found.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{address:?} resolves to no address"
        )));
    }
    Ok(found)
}
