//! The gossip keyring, cluster-wide by default (SPEC §13, `node::query`):
//!
//! - Consul's `/v1/operator/keyring`: `GET` list, `POST` install, `PUT` use (make primary),
//!   `DELETE` remove, each change with `{"Key": "..."}`, answered in Consul's cluster-wide
//!   shape (`Keys` and `PrimaryKeys` with the number of members holding each, `NumNodes`,
//!   `Messages` per member that refused or did not answer). A change that did not reach every
//!   member is an error (500) naming them, as in Consul.
//! - hera's `/v1/hera/keyring`: the same verbs, answered with a report: every member's answer,
//!   who did not answer, and a summary line (what `hera keyring` prints).
//!
//! `?local` (or Consul's `local-only`) acts on the node asked alone. A cluster-wide `use`
//! first lists every member's keys and refuses unless every member known (alive, suspect or
//! failed) has the key installed, unless `?force`; a `remove` refuses a key that is any
//! member's primary. `?timeout=` bounds how long answers are collected (default
//! [`TIMEOUT_DEFAULT`]). The keys are secrets: with a token configured, even listing needs it
//! (see [`super::guard`]), and they are never logged.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::blocking::{consul_duration, flag};
use super::consul::{field, object_body};
use super::query::FirstValues;
use super::{ApiError, AppState};
use crate::node::{keyring_of, Command, KeyringCommand, QueryRequest, QueryResult, Reply};
use crate::runtime::settings::{format_key, parse_key};
use crate::wire::{Key, QueryOutcome};

/// How long a cluster-wide keyring operation collects answers unless told: it ends as soon as
/// every member answered, so this is only waited for when one does not.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(3);
/// Longest `?timeout=`: a `use` or `remove` runs two queries, and both must end well within
/// the HTTP request time-out (`guard::REQUEST_TIMEOUT`) and the CLI's (10 s).
pub const TIMEOUT_MAX: Duration = Duration::from_secs(4);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/operator/keyring",
            get(consul_list)
                .post(consul_install)
                .put(consul_use)
                .delete(consul_remove),
        )
        .route(
            "/v1/hera/keyring",
            get(hera_list)
                .post(hera_install)
                .put(hera_use)
                .delete(hera_remove),
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
    /// Each key with the number of members that hold it.
    pub keys: BTreeMap<String, usize>,
    pub primary_keys: BTreeMap<String, usize>,
    /// Members asked: those that answered and those that did not.
    pub num_nodes: usize,
    /// Per member that refused or did not answer, why.
    pub messages: BTreeMap<String, String>,
}

/// What a keyring operation did on every member (hera's route, the CLI's output).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    pub op: &'static str,
    pub answers: Vec<MemberAnswer>,
    /// Members known when the operation started that did not answer in time.
    pub missing: Vec<String>,
    /// Why nothing was changed (a refused `use` or `remove`); the answers are then the
    /// listing the decision was made on.
    pub refused: Option<String>,
    /// True when every member answered and none refused.
    pub complete: bool,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemberAnswer {
    pub node: String,
    /// Its keys after the operation, the primary first.
    pub keys: Vec<String>,
    pub error: Option<String>,
}

/// Options from the query string.
struct Options {
    local: bool,
    force: bool,
    timeout: Duration,
}

fn options(q: &HashMap<String, String>) -> Result<Options, ApiError> {
    let timeout = match q.get("timeout") {
        Some(t) => {
            consul_duration(t).map_err(|e| ApiError::bad_request(format!("timeout: {e}")))?
        }
        None => TIMEOUT_DEFAULT,
    };
    if !(crate::node::QUERY_TIMEOUT_MIN..=TIMEOUT_MAX).contains(&timeout) {
        return Err(ApiError::bad_request(format!(
            "timeout {} ms is out of range {}..={} ms",
            timeout.as_millis(),
            crate::node::QUERY_TIMEOUT_MIN.as_millis(),
            TIMEOUT_MAX.as_millis()
        )));
    }
    Ok(Options {
        local: flag(q, "local")? || flag(q, "local-only")?,
        force: flag(q, "force")?,
        timeout,
    })
}

fn op_name(op: &KeyringCommand) -> &'static str {
    match op {
        KeyringCommand::List => "list",
        KeyringCommand::Install(_) => "install",
        KeyringCommand::Use(_) => "use",
        KeyringCommand::Remove(_) => "remove",
    }
}

/// Run `op` on this node alone, or on every member.
async fn run(app: &AppState, op: KeyringCommand, o: &Options) -> Result<Report, ApiError> {
    if o.local {
        return local(app, op).await;
    }
    // A cluster is encrypted throughout or not at all: a keyless node refuses here, as alone.
    app.node
        .command(Command::Keyring(KeyringCommand::List))
        .await?;
    let name = op_name(&op);
    let check = match &op {
        KeyringCommand::Use(key) if !o.force => Some((key.clone(), true)),
        KeyringCommand::Remove(key) => Some((key.clone(), false)),
        _ => None,
    };
    if let Some((key, for_use)) = check {
        let listing = query(app, &KeyringCommand::List, o.timeout).await?;
        let why = if for_use {
            refuse_use(&listing, &key)
        } else {
            refuse_remove(&listing, &key)
        };
        if let Some(why) = why {
            let mut report = report(name, &listing);
            report.summary = format!("{name} refused: {why}");
            report.refused = Some(why);
            report.complete = false;
            return Ok(report);
        }
    }
    let result = query(app, &op, o.timeout).await?;
    Ok(report(name, &result))
}

async fn query(
    app: &AppState,
    op: &KeyringCommand,
    timeout: Duration,
) -> Result<QueryResult, ApiError> {
    let request = QueryRequest::keyring(op, timeout);
    match app.node.command(Command::Query(request)).await? {
        Reply::Query(result) => Ok(*result),
        _ => Err(unexpected()),
    }
}

fn unexpected() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unexpected reply to a keyring command",
    )
}

/// Why `use` of `key` must wait: a member without it, or one that did not say.
fn refuse_use(listing: &QueryResult, key: &Key) -> Option<String> {
    let mut lacking = Vec::new();
    for (node, outcome) in &listing.answers {
        match keyring_of(outcome) {
            Some(keys) if keys.contains(key) => {}
            _ => lacking.push(node.to_string()),
        }
    }
    let mut why = Vec::new();
    if !lacking.is_empty() {
        why.push(format!("not installed on {}", lacking.join(", ")));
    }
    if !listing.missing.is_empty() {
        let missing: Vec<String> = listing.missing.iter().map(ToString::to_string).collect();
        why.push(format!("no answer from {}", missing.join(", ")));
    }
    (!why.is_empty()).then(|| {
        format!(
            "the key must be installed on every member first ({}); install it, or force (--force, ?force)",
            why.join("; ")
        )
    })
}

/// Why `remove` of `key` must wait: it is some member's primary.
fn refuse_remove(listing: &QueryResult, key: &Key) -> Option<String> {
    let primaries: Vec<String> = listing
        .answers
        .iter()
        .filter(|(_, o)| keyring_of(o).is_some_and(|keys| keys.first() == Some(key)))
        .map(|(n, _)| n.to_string())
        .collect();
    (!primaries.is_empty()).then(|| {
        format!(
            "the key is the primary of {}: use another key first",
            primaries.join(", ")
        )
    })
}

fn report(op: &'static str, result: &QueryResult) -> Report {
    let answers: Vec<MemberAnswer> = result
        .answers
        .iter()
        .map(|(node, outcome)| MemberAnswer {
            node: node.to_string(),
            keys: keyring_of(outcome)
                .unwrap_or_default()
                .iter()
                .map(format_key)
                .collect(),
            error: match outcome {
                QueryOutcome::Done(_) => None,
                QueryOutcome::Refused(why) => Some(why.0.clone()),
                QueryOutcome::UnknownKind => {
                    Some("this member does not know keyring queries (an older build)".into())
                }
            },
        })
        .collect();
    let missing: Vec<String> = result.missing.iter().map(ToString::to_string).collect();
    let errors = answers.iter().filter(|a| a.error.is_some()).count();
    let ok = answers.len().saturating_sub(errors);
    let total = answers.len().saturating_add(missing.len());
    let complete = errors == 0 && missing.is_empty();
    Report {
        op,
        summary: format!(
            "{op}: {ok} of {total} members done, {errors} refused, {} did not answer",
            missing.len()
        ),
        answers,
        missing,
        refused: None,
        complete,
    }
}

/// The node asked alone: its answer as a one-member report.
async fn local(app: &AppState, op: KeyringCommand) -> Result<Report, ApiError> {
    let name = op_name(&op);
    let reply = app.node.command(Command::Keyring(op)).await?;
    let Reply::Keyring { keys, .. } = reply else {
        return Err(unexpected());
    };
    let node = app
        .node
        .snapshot()
        .members
        .first()
        .map(|m| m.name.to_string())
        .unwrap_or_default();
    Ok(Report {
        op: name,
        answers: vec![MemberAnswer {
            node,
            keys: keys.iter().map(format_key).collect(),
            error: None,
        }],
        missing: Vec::new(),
        refused: None,
        complete: true,
        summary: format!("{name}: done on this node only"),
    })
}

/// The key of an install, use or remove body, `{"Key": "..."}`: like every other Consul route,
/// any content type and the field's name in any case.
fn key_of(body: &Bytes) -> Result<Key, ApiError> {
    let object = object_body(body)?;
    let key = match field(&object, "Key") {
        Some(Value::String(key)) => key,
        Some(_) => return Err(ApiError::bad_request("Key must be a string")),
        None => return Err(ApiError::bad_request("Key is required")),
    };
    parse_key(key).map_err(ApiError::bad_request)
}

// ---- Consul's route ----

fn consul_shape(app: &AppState, report: &Report) -> Vec<KeyringResponse> {
    let datacenter = app
        .node
        .snapshot()
        .members
        .first()
        .map(|m| m.profile.dc.to_string())
        .unwrap_or_default();
    let mut keys = BTreeMap::new();
    let mut primary_keys = BTreeMap::new();
    let mut messages = BTreeMap::new();
    for answer in &report.answers {
        for key in &answer.keys {
            *keys.entry(key.clone()).or_insert(0) += 1;
        }
        if let Some(primary) = answer.keys.first() {
            *primary_keys.entry(primary.clone()).or_insert(0) += 1;
        }
        if let Some(error) = &answer.error {
            messages.insert(answer.node.clone(), error.clone());
        }
    }
    for node in &report.missing {
        messages.insert(node.clone(), "did not answer".to_string());
    }
    vec![KeyringResponse {
        wan: false,
        datacenter,
        segment: String::new(),
        keys,
        primary_keys,
        num_nodes: report.answers.len().saturating_add(report.missing.len()),
        messages,
    }]
}

async fn consul_run(
    app: &AppState,
    op: KeyringCommand,
    q: &HashMap<String, String>,
) -> Result<Json<Vec<KeyringResponse>>, ApiError> {
    let is_list = op == KeyringCommand::List;
    let report = run(app, op, &options(q)?).await?;
    if let Some(why) = &report.refused {
        return Err(ApiError::new(StatusCode::CONFLICT, why.clone()));
    }
    // A listing reports what it found; a change that did not reach everyone is an error.
    if !is_list && !report.complete {
        let mut failed: Vec<String> = report
            .answers
            .iter()
            .filter_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.node)))
            .collect();
        failed.extend(
            report
                .missing
                .iter()
                .map(|n| format!("{n}: did not answer")),
        );
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{} ({})", report.summary, failed.join("; ")),
        ));
    }
    Ok(Json(consul_shape(app, &report)))
}

type Q = FirstValues;

async fn consul_list(
    State(app): State<AppState>,
    FirstValues(q): Q,
) -> Result<Json<Vec<KeyringResponse>>, ApiError> {
    consul_run(&app, KeyringCommand::List, &q).await
}

async fn consul_install(
    State(app): State<AppState>,
    FirstValues(q): Q,
    body: Bytes,
) -> Result<Json<Vec<KeyringResponse>>, ApiError> {
    consul_run(&app, KeyringCommand::Install(key_of(&body)?), &q).await
}

async fn consul_use(
    State(app): State<AppState>,
    FirstValues(q): Q,
    body: Bytes,
) -> Result<Json<Vec<KeyringResponse>>, ApiError> {
    consul_run(&app, KeyringCommand::Use(key_of(&body)?), &q).await
}

async fn consul_remove(
    State(app): State<AppState>,
    FirstValues(q): Q,
    body: Bytes,
) -> Result<Json<Vec<KeyringResponse>>, ApiError> {
    consul_run(&app, KeyringCommand::Remove(key_of(&body)?), &q).await
}

// ---- hera's route ----

async fn hera_list(
    State(app): State<AppState>,
    FirstValues(q): Q,
) -> Result<Json<Report>, ApiError> {
    run(&app, KeyringCommand::List, &options(&q)?)
        .await
        .map(Json)
}

async fn hera_install(
    State(app): State<AppState>,
    FirstValues(q): Q,
    body: Bytes,
) -> Result<Json<Report>, ApiError> {
    run(&app, KeyringCommand::Install(key_of(&body)?), &options(&q)?)
        .await
        .map(Json)
}

async fn hera_use(
    State(app): State<AppState>,
    FirstValues(q): Q,
    body: Bytes,
) -> Result<Json<Report>, ApiError> {
    run(&app, KeyringCommand::Use(key_of(&body)?), &options(&q)?)
        .await
        .map(Json)
}

async fn hera_remove(
    State(app): State<AppState>,
    FirstValues(q): Q,
    body: Bytes,
) -> Result<Json<Report>, ApiError> {
    run(&app, KeyringCommand::Remove(key_of(&body)?), &options(&q)?)
        .await
        .map(Json)
}
