//! Consul's keyring operations for gossip encryption, on this node:
//!
//! - `GET /v1/operator/keyring`: the keys, in Consul's shape;
//! - `POST` install, `PUT` use (make primary), `DELETE` remove, each with `{"Key": "..."}`.
//!
//! Unlike Consul, which fans an operation out to every member, hera changes the keyring of the
//! node asked: a rotation runs each step against every node (`docs/security.md`). The listing
//! shows this node's view (`NumNodes` 1). The keys are secrets: with a token configured, even
//! listing needs it (see [`super::guard`]).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::consul::{field, object_body};

use super::{ApiError, AppState};
use crate::node::{Command, KeyringCommand, Reply};
use crate::runtime::settings::{format_key, parse_key};

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/v1/operator/keyring",
        get(list).post(install).put(use_key).delete(remove),
    )
}

/// One entry of the listing (Consul lists one per pool: LAN and WAN, per segment).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyringResponse {
    #[serde(rename = "WAN")]
    pub wan: bool,
    pub datacenter: String,
    pub segment: String,
    /// Each key with the number of nodes that hold it.
    pub keys: BTreeMap<String, usize>,
    pub primary_keys: BTreeMap<String, usize>,
    pub num_nodes: usize,
}

async fn run(app: &AppState, op: KeyringCommand) -> Result<Vec<KeyringResponse>, ApiError> {
    let reply = app.node.command(Command::Keyring(op)).await?;
    let Reply::Keyring { primary, keys } = reply else {
        return Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected reply to a keyring command",
        ));
    };
    let datacenter = app
        .node
        .snapshot()
        .members
        .first()
        .map(|m| m.profile.dc.to_string())
        .unwrap_or_default();
    Ok(vec![KeyringResponse {
        wan: false,
        datacenter,
        segment: String::new(),
        keys: keys.iter().map(|k| (format_key(k), 1)).collect(),
        primary_keys: BTreeMap::from([(format_key(&primary), 1)]),
        num_nodes: 1,
    }])
}

/// The key of an install, use or remove body, `{"Key": "..."}`: like every other Consul route,
/// any content type and the field's name in any case.
fn key_of(body: &Bytes) -> Result<crate::wire::Key, ApiError> {
    let object = object_body(body)?;
    let key = match field(&object, "Key") {
        Some(Value::String(key)) => key,
        Some(_) => return Err(ApiError::bad_request("Key must be a string")),
        None => return Err(ApiError::bad_request("Key is required")),
    };
    parse_key(key).map_err(ApiError::bad_request)
}

async fn list(State(app): State<AppState>) -> Result<Json<Vec<KeyringResponse>>, ApiError> {
    run(&app, KeyringCommand::List).await.map(Json)
}

async fn install(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<Vec<KeyringResponse>>, ApiError> {
    run(&app, KeyringCommand::Install(key_of(&body)?))
        .await
        .map(Json)
}

async fn use_key(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<Vec<KeyringResponse>>, ApiError> {
    run(&app, KeyringCommand::Use(key_of(&body)?))
        .await
        .map(Json)
}

async fn remove(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<Vec<KeyringResponse>>, ApiError> {
    run(&app, KeyringCommand::Remove(key_of(&body)?))
        .await
        .map(Json)
}
