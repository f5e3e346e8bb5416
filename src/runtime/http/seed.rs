//! The seed registry's API, exactly as its README has it: `PUT /<service>/<id>` with a JSON
//! object registers or renews an instance (it expires `liveness` after its last PUT), and
//! `GET /<service>` returns `{id: object}`; `?pretty` indents.
//!
//! A service nobody registered answers `{}`: the seed returns "all registered instances",
//! which for an unknown service is none.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::consul::object_body;
use super::query::FirstValues;
use super::{views, ApiError, AppState};
use crate::names::{InstanceId, ServiceName};
use crate::node::Command;
use crate::registry::InstanceSpec;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{service}", get(list))
        .route("/{service}/{id}", get(one).put(put))
}

fn names(service: &str, id: Option<&str>) -> Result<(ServiceName, Option<InstanceId>), ApiError> {
    let service = ServiceName::new(service).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let id = id
        .map(InstanceId::new)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((service, id))
}

/// `PUT /<service>/<id>`: any content type (curl -d sends a form type), a JSON object body.
async fn put(
    State(app): State<AppState>,
    Path((service, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (service, id) = names(&service, Some(&id))?;
    let object = object_body(&body)?;
    // Kept as the client sent it: parsed and printed again, a big integer would come back as
    // a float. It parsed as JSON, so it is UTF-8.
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let address = match object.get("host") {
        Some(Value::String(h)) => h.clone(),
        _ => String::new(),
    };
    let port = object
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    let mut spec = InstanceSpec::new(service, &address, port);
    spec.id = id;
    spec.body = Some(text);
    spec.liveness = Some(Duration::from_millis(
        app.shared.liveness_ms.load(Ordering::Relaxed),
    ));
    app.node.command(Command::Register(spec)).await?;
    Ok(StatusCode::OK)
}

/// The seed's answer: the clients' own JSON, byte for byte; `?pretty` re-indents it (and so
/// reads numbers as serde does).
fn render(compact: String, query: &HashMap<String, String>) -> Response {
    let text = if query.contains_key("pretty") {
        serde_json::from_str::<Value>(&compact)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or(compact)
    } else {
        compact
    };
    ([(header::CONTENT_TYPE, "application/json")], text + "\n").into_response()
}

async fn list(
    State(app): State<AppState>,
    Path(service): Path<String>,
    FirstValues(query): FirstValues,
) -> Result<Response, ApiError> {
    let (service, _) = names(&service, None)?;
    let s = app.node.snapshot();
    // `{id: object}` written by hand around each stored text, which is a JSON object already.
    let mut out = String::from("{");
    for (n, i) in s.registry.service(&service).enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(i.id.to_string()).to_string());
        out.push(':');
        out.push_str(&views::seed_text(i));
    }
    out.push('}');
    Ok(render(out, &query))
}

async fn one(
    State(app): State<AppState>,
    Path((service, id)): Path<(String, String)>,
    FirstValues(query): FirstValues,
) -> Result<Response, ApiError> {
    let (service, id) = names(&service, Some(&id))?;
    let Some(id) = id else {
        return Err(ApiError::bad_request("an instance id is needed"));
    };
    let s = app.node.snapshot();
    match s.registry.get(&id).filter(|i| i.service == service) {
        Some(i) => Ok(render(views::seed_text(i), &query)),
        None => Err(ApiError::not_found(format!(
            "no instance {id} of service {service}"
        ))),
    }
}
