//! Consul's HTTP API for the verbs the design needs, with Consul's paths, field names, status
//! codes and headers, so that existing Consul clients work unchanged. As lenient as Consul:
//! JSON keys in any case, bodies with any content type, booleans as `true`, `True`, `1` or a
//! bare key.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::blocking::flag;
use super::query::FirstValues;
use super::{ApiError, AppState};
use crate::duration::Bounds;
use crate::names::{InstanceId, ServiceName};
use crate::node::{Command, Reply};
use crate::registry::{Health, InstanceSpec};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/service/register", put(register))
        .route("/v1/agent/service/deregister/{id}", put(deregister))
        .route("/v1/agent/service/maintenance/{id}", put(maintenance))
        .route("/v1/agent/maintenance", put(node_maintenance))
        .route(
            "/v1/agent/check/pass/{check}",
            put(|s: State<AppState>, p: Path<String>, q: Q| check_report(s, p, q, Health::Passing)),
        )
        .route(
            "/v1/agent/check/warn/{check}",
            put(|s: State<AppState>, p: Path<String>, q: Q| check_report(s, p, q, Health::Warning)),
        )
        .route(
            "/v1/agent/check/fail/{check}",
            put(|s: State<AppState>, p: Path<String>, q: Q| {
                check_report(s, p, q, Health::Critical)
            }),
        )
        .route("/v1/agent/check/update/{check}", put(check_update))
        .route(
            "/v1/agent/check/register",
            put(super::consul_checks::register_check),
        )
        .route(
            "/v1/agent/check/deregister/{check}",
            put(super::consul_checks::deregister_check),
        )
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/status/leader", get(status_leader))
        .route("/v1/status/peers", get(status_peers))
}

type Q = FirstValues;

fn parse_service(name: &str) -> Result<ServiceName, ApiError> {
    ServiceName::new(name).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn parse_id(id: &str) -> Result<InstanceId, ApiError> {
    InstanceId::new(id).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A JSON object's field, its key matched without regard to case.
pub fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

pub fn text_field(object: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match field(object, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key} must be a string, not {other}"
        ))),
    }
}

/// A duration field within its bounds; absent or empty is `None`.
pub fn duration_field(
    object: &Map<String, Value>,
    key: &str,
    bounds: Bounds,
) -> Result<Option<Duration>, ApiError> {
    match text_field(object, key)? {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => bounds
            .parse(key, &text)
            .map(Some)
            .map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

/// Parse a JSON body that must be an object, whatever the content type.
pub fn object_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// A Consul registration body as an instance spec.
pub fn spec_from_consul(
    body: &Map<String, Value>,
    id_required: bool,
) -> Result<InstanceSpec, ApiError> {
    let name =
        text_field(body, "Name")?.ok_or_else(|| ApiError::bad_request("Name is required"))?;
    let service = parse_service(&name)?;
    let id = match text_field(body, "ID")? {
        Some(id) if !id.is_empty() => Some(parse_id(&id)?),
        _ if id_required => Some(parse_id(&name)?),
        _ => None,
    };
    let port = match field(body, "Port") {
        None => 0,
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| ApiError::bad_request("Port must be a number from 0 to 65535"))?,
    };
    let address = text_field(body, "Address")?.unwrap_or_default();
    // Consul's agent refuses an address that names every interface (its `ipaddr.IsAny`):
    // no client can reach a service there. Any other text it takes, as hera does.
    if matches!(address.as_str(), "0.0.0.0" | "::" | "[::]") {
        return Err(ApiError::bad_request(format!(
            "Invalid service address {address:?}: it names every interface, not one a client \
             can reach"
        )));
    }
    let mut spec = InstanceSpec::new(service, &address, port);
    spec.id = id;
    if let Some(tags) = field(body, "Tags") {
        let list = tags
            .as_array()
            .ok_or_else(|| ApiError::bad_request("Tags must be a list of strings"))?;
        spec.tags = list
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request("Tags must be a list of strings"))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(meta) = field(body, "Meta") {
        let map = meta
            .as_object()
            .ok_or_else(|| ApiError::bad_request("Meta must be an object of strings"))?;
        spec.meta = map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(ApiError::bad_request("Meta values must be strings")),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
    }
    spec.checks = super::consul_checks::checks_from_registration(body)?;
    Ok(spec)
}

async fn register(State(app): State<AppState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let spec = spec_from_consul(&object_body(&body)?, true)?;
    app.node.command(Command::Register(spec)).await?;
    Ok(StatusCode::OK)
}

async fn deregister(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.node
        .command(Command::Deregister { id: parse_id(&id)? })
        .await?;
    Ok(StatusCode::OK)
}

/// `?enable=` (required) and `?reason=` of Consul's two maintenance routes.
fn maintenance_query(q: &HashMap<String, String>) -> Result<(bool, Option<String>), ApiError> {
    if !q.contains_key("enable") {
        return Err(ApiError::bad_request("missing value for enable"));
    }
    let enable = flag(q, "enable")?;
    let reason = q.get("reason").cloned().filter(|r| !r.is_empty());
    Ok((enable, reason))
}

async fn maintenance(
    State(app): State<AppState>,
    Path(id): Path<String>,
    FirstValues(q): Q,
) -> Result<StatusCode, ApiError> {
    let (enable, reason) = maintenance_query(&q)?;
    app.node
        .command(Command::SetMaintenance {
            id: parse_id(&id)?,
            enable,
            reason,
        })
        .await?;
    Ok(StatusCode::OK)
}

/// Consul's node maintenance: every instance this node owns off-line, or back.
async fn node_maintenance(
    State(app): State<AppState>,
    FirstValues(q): Q,
) -> Result<StatusCode, ApiError> {
    let (enable, reason) = maintenance_query(&q)?;
    app.node
        .command(Command::SetNodeMaintenance { enable, reason })
        .await?;
    Ok(StatusCode::OK)
}

async fn set_check(
    app: &AppState,
    check: &str,
    health: Health,
    output: String,
) -> Result<StatusCode, ApiError> {
    app.node
        .command(Command::SetCheck {
            check: check.to_string(),
            health,
            output,
        })
        .await?;
    Ok(StatusCode::OK)
}

/// `PUT /v1/agent/check/pass|warn|fail/<check>?note=`: one handler, the status from the route.
async fn check_report(
    State(app): State<AppState>,
    Path(check): Path<String>,
    FirstValues(q): Q,
    health: Health,
) -> Result<StatusCode, ApiError> {
    let note = q.get("note").cloned().unwrap_or_default();
    set_check(&app, &check, health, note).await
}

async fn check_update(
    State(app): State<AppState>,
    Path(check): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let body = object_body(&body)?;
    let status =
        text_field(&body, "Status")?.ok_or_else(|| ApiError::bad_request("Status is required"))?;
    let health = Health::parse(&status).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Status {status:?} is not passing, warning or critical"
        ))
    })?;
    let output = text_field(&body, "Output")?.unwrap_or_default();
    set_check(&app, &check, health, output).await
}

async fn agent_self(State(app): State<AppState>) -> Json<Value> {
    let s = app.node.snapshot();
    let me = s.members.first();
    let dc = me.map(|m| m.profile.dc.to_string()).unwrap_or_default();
    Json(json!({
        "Config": {
            "Datacenter": dc,
            "NodeName": s.name.as_str(),
            "NodeID": "",
            "Server": false,
            "Version": env!("CARGO_PKG_VERSION"),
            "Product": "hera",
        },
        "Member": me.map(|m| super::agent::consul_member(m, s.lifecycle)),
        "Stats": {"hera": {"incarnation": s.incarnation, "health_score": s.health_score, "registry_index": s.registry.index()}},
    }))
}

/// hera has no leader; answering with this node's own address lets clients that wait for a
/// leader before they start go ahead.
async fn status_leader(State(app): State<AppState>) -> Json<String> {
    Json(app.node.snapshot().addr.to_string())
}

async fn status_peers(State(app): State<AppState>) -> Json<Vec<String>> {
    let s = app.node.snapshot();
    Json(
        s.members
            .iter()
            .filter(|m| m.state.is_live())
            .map(|m| m.profile.addr.to_string())
            .collect(),
    )
}

/// The id a registration produced.
pub fn registered_id(reply: Reply) -> Option<InstanceId> {
    match reply {
        Reply::Registered { id } => Some(id),
        _ => None,
    }
}
