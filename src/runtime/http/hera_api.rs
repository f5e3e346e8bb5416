//! hera's own API, under `/v1/hera`: the design's verbs that Consul's API lacks.
//!
//! | verb | route |
//! |---|---|
//! | register without an id (hera assigns one) | `POST /v1/hera/instances` (Consul's registration body) |
//! | query one instance from any node | `GET /v1/hera/instances/{id}` |
//! | renew (heartbeat) | `PUT /v1/hera/instances/{id}/renew` |
//! | deregister | `DELETE /v1/hera/instances/{id}` |
//! | off-line / on-line | `PUT /v1/hera/instances/{id}/offline?reason=`, `.../online` |
//! | list all services with their instance ids | `GET /v1/hera/services` |
//! | list a service's instances (`?healthy`, `?dc=`) | `GET /v1/hera/services/{service}` |
//! | run health checks now (`?service=`, `?id=`) | `POST /v1/hera/checks` |
//! | health summary (`?service=`) | `GET /v1/hera/health` |
//! | runtime configuration (liveness, protocol timings) | `GET` / `PUT /v1/hera/config` ([`super::hera_config`]) |
//! | pick one healthy instance for a gateway | `GET /v1/hera/pick/{service}?strategy=random\|lru&dc=` |

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::blocking::{self, flag};
use super::consul::{object_body, registered_id, spec_from_consul};
use super::query::FirstValues;
use super::{views, ApiError, AppState};
use crate::names::{InstanceId, ServiceName};
use crate::node::{Command, Reply};

type Q = FirstValues;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/hera/instances", post(register))
        .route("/v1/hera/instances/{id}", get(instance).delete(deregister))
        .route("/v1/hera/instances/{id}/renew", put(renew))
        .route("/v1/hera/instances/{id}/offline", put(offline))
        .route("/v1/hera/instances/{id}/online", put(online))
        .route("/v1/hera/services", get(services))
        .route("/v1/hera/services/{service}", get(service))
        .route("/v1/hera/checks", post(run_checks))
        .route("/v1/hera/health", get(health))
        .route(
            "/v1/hera/config",
            get(super::hera_config::config).put(super::hera_config::set_config),
        )
        .route("/v1/hera/pick/{service}", get(pick))
}

fn id(text: &str) -> Result<InstanceId, ApiError> {
    InstanceId::new(text).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn service_name(text: &str) -> Result<ServiceName, ApiError> {
    ServiceName::new(text).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn register(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let spec = spec_from_consul(&object_body(&body)?, false)?;
    let reply = app.node.command(Command::Register(spec)).await?;
    let id = registered_id(reply)
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no id"))?;
    Ok((StatusCode::CREATED, Json(json!({"ID": id.as_str()}))).into_response())
}

async fn instance(
    State(app): State<AppState>,
    Path(text): Path<String>,
) -> Result<Response, ApiError> {
    let id = id(&text)?;
    let s = app.node.snapshot();
    let i = s
        .registry
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no instance {id}")))?;
    Ok((blocking::headers(&s), Json(views::hera_instance(&s, i))).into_response())
}

async fn deregister(
    State(app): State<AppState>,
    Path(text): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.node
        .command(Command::Deregister { id: id(&text)? })
        .await?;
    Ok(StatusCode::OK)
}

async fn renew(
    State(app): State<AppState>,
    Path(text): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.node.command(Command::Renew { id: id(&text)? }).await?;
    Ok(StatusCode::OK)
}

async fn offline(
    State(app): State<AppState>,
    Path(text): Path<String>,
    FirstValues(q): Q,
) -> Result<StatusCode, ApiError> {
    let reason = q.get("reason").cloned().filter(|r| !r.is_empty());
    app.node
        .command(Command::SetMaintenance {
            id: id(&text)?,
            enable: true,
            reason,
        })
        .await?;
    Ok(StatusCode::OK)
}

async fn online(
    State(app): State<AppState>,
    Path(text): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.node
        .command(Command::SetMaintenance {
            id: id(&text)?,
            enable: false,
            reason: None,
        })
        .await?;
    Ok(StatusCode::OK)
}

async fn services(State(app): State<AppState>, FirstValues(q): Q) -> Result<Response, ApiError> {
    let s = blocking::wait(&app, &q).await?;
    let out: BTreeMap<String, Vec<String>> = s
        .registry
        .services()
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.into_iter().map(|i| i.to_string()).collect(),
            )
        })
        .collect();
    Ok((blocking::headers(&s), Json(out)).into_response())
}

async fn service(
    State(app): State<AppState>,
    Path(name): Path<String>,
    FirstValues(q): Q,
) -> Result<Response, ApiError> {
    let name = service_name(&name)?;
    let healthy = flag(&q, "healthy")?;
    let s = blocking::wait(&app, &q).await?;
    let dc = q.get("dc").filter(|d| !d.is_empty());
    let out: Vec<Value> = s
        .registry
        .service(&name)
        .filter(|i| !healthy || i.is_serving())
        .filter(|i| dc.is_none_or(|d| views::datacenter(&s, i) == *d))
        .map(|i| views::hera_instance(&s, i))
        .collect();
    Ok((blocking::headers(&s), Json(out)).into_response())
}

async fn run_checks(
    State(app): State<AppState>,
    FirstValues(q): Q,
) -> Result<Json<Value>, ApiError> {
    let service = q.get("service").map(|s| service_name(s)).transpose()?;
    let instance = q.get("id").map(|i| id(i)).transpose()?;
    if let Some(i) = &instance {
        if app.node.snapshot().registry.get(i).is_none() {
            return Err(ApiError::not_found(format!("no instance {i}")));
        }
    }
    let reply = app
        .node
        .command(Command::RunChecks {
            service,
            id: instance,
        })
        .await?;
    let count = match reply {
        Reply::ChecksStarted { count } => count,
        _ => 0,
    };
    Ok(Json(
        json!({"Started": count, "Note": "checks run on each instance's owner; this node ran those it owns"}),
    ))
}

async fn health(State(app): State<AppState>, FirstValues(q): Q) -> Result<Json<Value>, ApiError> {
    let filter = q.get("service").map(|s| service_name(s)).transpose()?;
    let s = app.node.snapshot();
    let mut per_service: BTreeMap<String, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for i in s
        .registry
        .instances()
        .filter(|i| filter.as_ref().is_none_or(|f| i.service == *f))
    {
        let counts = per_service.entry(i.service.to_string()).or_default();
        *counts.entry(i.health.as_str()).or_default() += 1;
        if !i.online {
            *counts.entry("offline").or_default() += 1;
        }
        if s.is_stale(i) {
            *counts.entry("stale").or_default() += 1;
        }
    }
    let c = s.registry.counts();
    Ok(Json(json!({
        "Passing": c.passing, "Warning": c.warning, "Critical": c.critical, "Offline": c.offline,
        "Services": per_service,
    })))
}

async fn pick(
    State(app): State<AppState>,
    Path(name): Path<String>,
    FirstValues(q): Q,
) -> Result<Response, ApiError> {
    let name = service_name(&name)?;
    let s = app.node.snapshot();
    let serving: Vec<_> = s
        .registry
        .service(&name)
        .filter(|i| i.is_serving() && !s.is_stale(i))
        .collect();
    if serving.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no healthy on-line instance of {name}"),
        ));
    }
    // Prefer the asked data centre when it has a healthy instance; otherwise any.
    let local: Vec<_> = match q.get("dc").filter(|d| !d.is_empty()) {
        Some(dc) => serving
            .iter()
            .copied()
            .filter(|i| views::datacenter(&s, i) == *dc)
            .collect(),
        None => Vec::new(),
    };
    let pool = if local.is_empty() { serving } else { local };
    let tick = app.shared.picks.fetch_add(1, Ordering::Relaxed);
    let chosen = match q.get("strategy").map(String::as_str).unwrap_or("random") {
        "lru" => {
            let mut picked = app.shared.picked.lock().map_err(|_| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "pick state poisoned")
            })?;
            let chosen = pool
                .iter()
                .min_by_key(|i| (picked.get(&i.id).copied().unwrap_or(0), i.id.clone()))
                .copied();
            if let Some(i) = chosen {
                picked.insert(i.id.clone(), tick + 1);
            }
            chosen
        }
        "random" => {
            // A cheap mix of the pick counter: uniform enough to spread load, no RNG state.
            let mixed = (tick.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
            pool.get((mixed as usize) % pool.len()).copied()
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "strategy {other:?} is not random or lru"
            )))
        }
    };
    let i = chosen.ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no instance"))?;
    Ok(Json(views::hera_instance(&s, i)).into_response())
}
