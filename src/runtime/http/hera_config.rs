//! `GET` / `PUT /v1/hera/config`: the runtime configuration.
//!
//! Every key is a knob of the one schema (`config::schema::FIELDS` for the protocol,
//! `settings::TUNABLE_FIELDS` for the deployment), read and range-checked there: the same
//! names, ranges and errors as the config file and the flags. Those marked changeable at
//! runtime are shown under their names (`Liveness`) or under `Protocol`, the rest under
//! `ReadOnly`: they shape state already built (datagram budget, reaping times) and change with
//! a restart. Protocol changes go to the core as one `Command::Configure`, which re-arms the
//! timers they affect at once; `Liveness` applies to the seed API's next PUT.
//!
//! A PUT names any subset of the changeable keys (any case, at the top or under `Protocol`);
//! an unknown key, a bad value, one out of range or an inconsistent result (a probe timeout not
//! under the probe interval) is a 400 naming the field and its range, and changes nothing.
//!
//! With a `data_dir`, an accepted change is written to its `config.json` before it is applied
//! and answered, so a restart keeps it ([`KeptConfig`]).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value as JsonValue};

use super::consul::object_body;
use super::{ApiError, AppState};
use crate::config::schema;
use crate::config::Config;
use crate::node::Command;
use crate::runtime::overrides::{shown, Change, Overrides};
use crate::runtime::settings::{Tunables, TUNABLE_FIELDS};
use crate::runtime::store;

/// Where runtime changes are kept, and those kept so far. The lock also orders concurrent
/// PUTs: each is written and applied before the next is read.
#[derive(Debug)]
pub struct KeptConfig {
    pub dir: PathBuf,
    pub overrides: tokio::sync::Mutex<Overrides>,
}

/// How long a PUT waits for the snapshot that shows its change (the driver publishes it
/// right after the command; this only bounds a stalled node).
const SHOW_WAIT: Duration = Duration::from_secs(2);

fn render(tunables: &Tunables, c: &Config) -> JsonValue {
    let mut out = Map::new();
    let (mut changeable, mut read_only) = (Map::new(), Map::new());
    for f in &TUNABLE_FIELDS {
        let into = if f.meta.runtime {
            &mut out
        } else {
            &mut read_only
        };
        into.insert(f.meta.json.to_string(), shown((f.get)(tunables)));
    }
    for f in &schema::FIELDS {
        let into = if f.meta.runtime {
            &mut changeable
        } else {
            &mut read_only
        };
        into.insert(f.meta.json.to_string(), shown((f.get)(c)));
    }
    out.insert("Protocol".to_string(), JsonValue::Object(changeable));
    out.insert("ReadOnly".to_string(), JsonValue::Object(read_only));
    JsonValue::Object(out)
}

fn tunables(app: &AppState) -> Tunables {
    Tunables {
        liveness: Duration::from_millis(app.shared.liveness_ms.load(Ordering::Relaxed)),
        blocking_waiters_max: app.shared.waiters_max,
    }
}

pub async fn config(State(app): State<AppState>) -> Json<JsonValue> {
    let s = app.node.snapshot();
    Json(render(&tunables(&app), &s.config))
}

pub async fn set_config(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<JsonValue>, ApiError> {
    let change = Change::parse(&object_body(&body)?).map_err(ApiError::bad_request)?;
    let mut kept = match &app.shared.kept_config {
        Some(kept) => Some((kept, kept.overrides.lock().await)),
        None => None,
    };
    // Everything checked before anything is kept or changed.
    let current = app.node.snapshot().config.clone();
    let wanted = if change.tuning.is_empty() {
        None
    } else {
        Some(
            current
                .tuned(&change.tuning)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        )
    };
    // In range by the schema (at most 30 days), so this always fits; checked all the same.
    let liveness_ms = u64::try_from(change.tunables(tunables(&app)).liveness.as_millis())
        .map_err(|_| ApiError::bad_request("Liveness: too long"))?;

    if let Some((kept, overrides)) = kept.as_mut() {
        let next = overrides.with(&change);
        let (dir, written) = (kept.dir.clone(), next.clone());
        tokio::task::spawn_blocking(move || store::save_overrides(&dir, &written))
            .await
            .map_err(|e| store::StoreError::Write {
                file: kept.dir.join(store::format::CONFIG_FILE),
                source: std::io::Error::other(e.to_string()),
            })
            .and_then(|written| written)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("nothing changed: the change cannot be kept: {e}"),
                )
            })?;
        **overrides = next;
    }

    let mut shown = current;
    if let Some(wanted) = wanted {
        app.node
            .command(Command::Configure(change.tuning.clone()))
            .await?;
        let seen = app.node.wait_for(SHOW_WAIT, |s| s.config == wanted).await;
        shown = seen.map_or(wanted, |s| s.config.clone());
    }
    if change.changes_deployment() {
        app.shared.liveness_ms.store(liveness_ms, Ordering::Relaxed);
    }
    Ok(Json(render(&tunables(&app), &shown)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_answer_lists_every_knob_once() {
        let shown = render(&Tunables::default(), &Config::lan());
        let count = |key: &str| shown[key].as_object().map_or(0, |o| o.len());
        assert_eq!(
            1 + count("Protocol") + count("ReadOnly"),
            crate::runtime::settings::Knob::all().count()
        );
        assert_eq!(shown["Liveness"], "5m");
        assert_eq!(shown["Protocol"]["ProbeTimeout"], json!("400ms"));
        assert_eq!(shown["ReadOnly"]["ExpectedMembers"], JsonValue::Null);
        assert_eq!(shown["ReadOnly"]["BlockingWaitersMax"], json!(1_024));
    }
}
