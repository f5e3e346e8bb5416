//! Consul's HTTP API for the verbs the design needs, with Consul's paths, field names, status
//! codes and headers, so that existing Consul clients work unchanged. As lenient as Consul:
//! JSON keys in any case, bodies with any content type, booleans as `true`, `True`, `1` or a
//! bare key.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::blocking::{self, flag};
use super::views;
use super::{ApiError, AppState};
use crate::duration::Bounds;
use crate::names::{InstanceId, ServiceName};
use crate::node::{Command, Reply};
use crate::registry::{Health, Instance, InstanceSpec};
use crate::runtime::driver::Snapshot;

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
        .route("/v1/agent/services", get(agent_services))
        .route("/v1/agent/service/{id}", get(agent_service))
        .route("/v1/agent/checks", get(agent_checks))
        .route("/v1/agent/health/service/id/{id}", get(agent_health_by_id))
        .route(
            "/v1/agent/health/service/name/{name}",
            get(agent_health_by_name),
        )
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/catalog/services", get(catalog_services))
        .route("/v1/catalog/service/{name}", get(catalog_service))
        .route("/v1/health/service/{name}", get(health_service))
        .route("/v1/health/checks/{name}", get(health_checks))
        .route("/v1/health/state/{state}", get(health_state))
        .route("/v1/status/leader", get(status_leader))
        .route("/v1/status/peers", get(status_peers))
}

type Q = Query<HashMap<String, String>>;

/// A read answered from the response cache while the node's state is unchanged. `key` names
/// what the answer depends on (see [`answer_key`]), never the raw URL.
fn cached_json(app: &AppState, s: &Snapshot, key: &str, build: impl FnOnce() -> Value) -> Response {
    let body = app.shared.responses.get_or_render(key, s.version, || {
        Bytes::from(serde_json::to_vec(&build()).unwrap_or_default())
    });
    (
        blocking::headers(s),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The cache key of a filtered service read: the route, the service and the filters it reads
/// (`tag`, `dc`, `passing`). `index`, `wait` and unknown parameters do not change the answer.
fn answer_key(
    route: &str,
    service: &ServiceName,
    q: &HashMap<String, String>,
    passing: bool,
) -> String {
    let get = |k: &str| q.get(k).map_or("", String::as_str);
    format!(
        "{route}\0{service}\0{}\0{}\0{passing}",
        get("tag"),
        get("dc")
    )
}

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
    let mut spec = InstanceSpec::new(
        service,
        &text_field(body, "Address")?.unwrap_or_default(),
        port,
    );
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
    Query(q): Q,
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
    Query(q): Q,
) -> Result<StatusCode, ApiError> {
    let (enable, reason) = maintenance_query(&q)?;
    app.node
        .command(Command::SetNodeMaintenance { enable, reason })
        .await?;
    Ok(StatusCode::OK)
}

/// Consul's `_node_maintenance` check, while the node is in maintenance.
fn node_maintenance_check(s: &Snapshot) -> Option<Value> {
    let reason = s.node_maintenance.as_ref()?;
    Some(json!({
        "Node": s.name.as_str(),
        "CheckID": "_node_maintenance",
        "Name": "Node Maintenance Mode",
        "Status": "critical",
        "Notes": reason,
        "Output": "",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "maintenance",
    }))
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
    Query(q): Q,
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

fn owned<'a>(s: &'a Snapshot) -> impl Iterator<Item = &'a std::sync::Arc<Instance>> + 'a {
    s.registry
        .instances()
        .filter(move |i| i.owner == s.name && s.local.contains(&i.id))
}

async fn agent_services(State(app): State<AppState>) -> Json<Map<String, Value>> {
    let s = app.node.snapshot();
    Json(
        owned(&s)
            .map(|i| (i.id.to_string(), views::agent_service(&s, i)))
            .collect(),
    )
}

/// One service's definition; blocks on a hash of the answer (`?hash=H&wait=D`), as Consul
/// does for this endpoint (sidecars and config agents watch it that way).
async fn agent_service(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let missing = format!("unknown service ID {id}");
    let view = move |s: &Snapshot| s.registry.get(&id).map(|i| views::agent_service(s, i));
    let hash_of = {
        let view = view.clone();
        move |s: &Snapshot| view(s).as_ref().map(blocking::content_hash)
    };
    let s = blocking::wait_for_content(&app, &q, hash_of).await?;
    let answer = view(&s).ok_or_else(|| ApiError::not_found(missing))?;
    let hash = blocking::content_hash(&answer);
    let mut headers = blocking::headers(&s);
    if let Ok(v) = axum::http::HeaderValue::from_str(&hash) {
        headers.insert("X-Consul-ContentHash", v);
    }
    Ok((headers, Json(answer)).into_response())
}

async fn agent_checks(State(app): State<AppState>) -> Json<Map<String, Value>> {
    let s = app.node.snapshot();
    let mut out = Map::new();
    if let Some(check) = node_maintenance_check(&s) {
        out.insert("_node_maintenance".to_string(), check);
    }
    for c in views::node_checks(&s) {
        if let Some(id) = c.get("CheckID").and_then(Value::as_str) {
            out.insert(id.to_string(), c.clone());
        }
    }
    for i in owned(&s) {
        for c in views::checks(&s, i) {
            if let Some(id) = c.get("CheckID").and_then(Value::as_str) {
                out.insert(id.to_string(), c.clone());
            }
        }
    }
    Json(out)
}

/// Consul's status codes for a load balancer: 200 passing, 429 warning, 503 critical.
fn health_status(h: Health) -> StatusCode {
    match h {
        Health::Passing => StatusCode::OK,
        Health::Warning => StatusCode::TOO_MANY_REQUESTS,
        Health::Critical => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn agent_health_by_id(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let s = app.node.snapshot();
    let i = s
        .registry
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("unknown service ID {id}")))?;
    let h = views::aggregated(i);
    let body = json!({"AggregatedStatus": h.as_str(), "Service": views::agent_service(&s, i), "Checks": views::checks(&s, i)});
    Ok((health_status(h), Json(body)).into_response())
}

async fn agent_health_by_name(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = parse_service(&name)?;
    let s = app.node.snapshot();
    let found: Vec<_> = s.registry.service(&name).collect();
    if found.is_empty() {
        return Err(ApiError::not_found(format!("unknown service {name}")));
    }
    let worst = found
        .iter()
        .map(|i| views::aggregated(i))
        .max()
        .unwrap_or(Health::Passing);
    let body: Vec<Value> = found
        .iter()
        .map(|i| json!({"AggregatedStatus": views::aggregated(i).as_str(), "Service": views::agent_service(&s, i), "Checks": views::checks(&s, i)}))
        .collect();
    Ok((health_status(worst), Json(body)).into_response())
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

fn matches_filters(s: &Snapshot, i: &Instance, q: &HashMap<String, String>) -> bool {
    let tag_ok = q.get("tag").is_none_or(|t| i.tags().any(|x| x == t));
    let dc_ok = q
        .get("dc")
        .filter(|d| !d.is_empty())
        .is_none_or(|d| views::datacenter(s, i) == *d);
    tag_ok && dc_ok
}

async fn catalog_services(State(app): State<AppState>, Query(q): Q) -> Result<Response, ApiError> {
    let s = blocking::wait(&app, &q).await?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in s.registry.instances() {
        let tags = out.entry(i.service.to_string()).or_default();
        for t in i.tags() {
            if !tags.iter().any(|x| x == t) {
                tags.push(t.to_string());
            }
        }
    }
    Ok((blocking::headers(&s), Json(out)).into_response())
}

async fn catalog_service(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let name = parse_service(&name)?;
    let s = blocking::wait(&app, &q).await?;
    let key = answer_key("catalog", &name, &q, false);
    Ok(cached_json(&app, &s, &key, || {
        Value::Array(
            s.registry
                .service(&name)
                .filter(|i| matches_filters(&s, i, &q))
                .map(|i| views::catalog_entry(&s, i))
                .collect(),
        )
    }))
}

async fn health_service(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let name = parse_service(&name)?;
    let passing = flag(&q, "passing")?;
    let s = blocking::wait(&app, &q).await?;
    let key = answer_key("health", &name, &q, passing);
    Ok(cached_json(&app, &s, &key, || {
        Value::Array(
            s.registry
                .service(&name)
                .filter(|i| matches_filters(&s, i, &q))
                .filter(|i| !passing || views::all_checks_pass(&s, i))
                .map(|i| views::health_entry(&s, i))
                .collect(),
        )
    }))
}

async fn health_checks(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let name = parse_service(&name)?;
    let s = blocking::wait(&app, &q).await?;
    let out: Vec<Value> = s
        .registry
        .service(&name)
        .filter(|i| matches_filters(&s, i, &q))
        .flat_map(|i| views::checks(&s, i))
        .collect();
    Ok((blocking::headers(&s), Json(out)).into_response())
}

async fn health_state(
    State(app): State<AppState>,
    Path(state): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let wanted = match state.as_str() {
        "any" => None,
        other => Some(
            Health::parse(other)
                .filter(|_| other != "pass" && other != "warn" && other != "fail")
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "state {other:?} is not any, passing, warning or critical"
                    ))
                })?,
        ),
    };
    let s = blocking::wait(&app, &q).await?;
    let out: Vec<Value> = s
        .registry
        .instances()
        .flat_map(|i| views::checks(&s, i))
        .chain(views::node_checks(&s))
        .filter(|c| {
            wanted.is_none_or(|w| c.get("Status").and_then(Value::as_str) == Some(w.as_str()))
        })
        .collect();
    Ok((blocking::headers(&s), Json(out)).into_response())
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
