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

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value as JsonValue};

use super::consul::object_body;
use super::{ApiError, AppState};
use crate::config::schema::{self, Naming, Raw, Value};
use crate::config::{Config, Tuning};
use crate::node::Command;
use crate::runtime::settings::{Knob, Tunables, TUNABLE_FIELDS};

/// How long a PUT waits for the snapshot that shows its change (the driver publishes it
/// right after the command; this only bounds a stalled node).
const SHOW_WAIT: Duration = Duration::from_secs(2);

/// A value as the API writes it: durations in the one grammar's shortest form, counts as
/// numbers, an unset count as null.
fn shown(value: Value) -> JsonValue {
    match value {
        Value::Duration(d) => JsonValue::String(crate::duration::display(d)),
        Value::Count(n) => json!(n),
        Value::Unset => JsonValue::Null,
    }
}

fn render(tunables: &Tunables, c: &Config) -> JsonValue {
    let mut out = Map::new();
    for f in &TUNABLE_FIELDS {
        out.insert(f.meta.json.to_string(), shown((f.get)(tunables)));
    }
    let (mut changeable, mut read_only) = (Map::new(), Map::new());
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
    }
}

pub async fn config(State(app): State<AppState>) -> Json<JsonValue> {
    let s = app.node.snapshot();
    Json(render(&tunables(&app), &s.config))
}

/// What a PUT body asks for, parsed and range-checked in full before anything changes.
#[derive(Debug, Default, PartialEq)]
struct Change {
    liveness: Option<Duration>,
    tuning: Tuning,
}

/// A JSON value as the schema reads it.
fn raw(value: &JsonValue) -> Raw<'_> {
    match value {
        JsonValue::String(s) => Raw::Text(s),
        JsonValue::Number(n) => match n.as_i64() {
            Some(i) => Raw::Integer(i),
            None if n.is_u64() => Raw::Other("a number too large"),
            None => Raw::Other("a fraction"),
        },
        JsonValue::Bool(_) => Raw::Other("a boolean"),
        JsonValue::Null => Raw::Other("null"),
        JsonValue::Array(_) => Raw::Other("an array"),
        JsonValue::Object(_) => Raw::Other("an object"),
    }
}

fn changeable_keys() -> String {
    Knob::all()
        .filter(|k| k.meta().runtime)
        .map(|k| k.meta().json)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_change(body: &Map<String, JsonValue>) -> Result<Change, ApiError> {
    let mut change = Change::default();
    // Protocol keys may sit at the top or under "Protocol" (the GET answer's shape); a
    // "ReadOnly" key is refused like any unknown one, since nothing under it can change.
    let mut pairs: Vec<(&String, &JsonValue)> = Vec::new();
    for (key, value) in body {
        if key.eq_ignore_ascii_case("protocol") {
            let inner = value
                .as_object()
                .ok_or_else(|| ApiError::bad_request("Protocol must be an object"))?;
            pairs.extend(inner.iter());
        } else {
            pairs.push((key, value));
        }
    }
    if pairs.is_empty() {
        return Err(ApiError::bad_request(format!(
            "nothing to change: set one of {}",
            changeable_keys()
        )));
    }
    for (key, value) in pairs {
        let bad = |e: schema::ConfigError| ApiError::bad_request(e.to_string());
        match Knob::by_json(key) {
            Some(Knob::Protocol(field)) => change
                .tuning
                .read(field, Naming::Json, raw(value))
                .map_err(bad)?,
            Some(Knob::Deployment(field)) => {
                let value = field.meta.read(Naming::Json, raw(value)).map_err(bad)?;
                let mut t = Tunables::default();
                (field.set)(&mut t, value);
                change.liveness = Some(t.liveness);
            }
            None => {
                return Err(ApiError::bad_request(format!(
                    "{key}: no such setting (changeable at runtime: {})",
                    changeable_keys()
                )))
            }
        }
    }
    Ok(change)
}

pub async fn set_config(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<JsonValue>, ApiError> {
    let change = parse_change(&object_body(&body)?)?;
    // In range by the schema (at most 30 days), so this always fits; checked all the same.
    let liveness_ms = match change.liveness {
        Some(d) => Some(
            u64::try_from(d.as_millis())
                .map_err(|_| ApiError::bad_request("Liveness: too long"))?,
        ),
        None => None,
    };
    let mut shown = app.node.snapshot().config.clone();
    if !change.tuning.is_empty() {
        // Checked here too, so that a bad value is refused before liveness changes.
        let wanted = shown
            .tuned(&change.tuning)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        app.node
            .command(Command::Configure(change.tuning.clone()))
            .await?;
        let seen = app.node.wait_for(SHOW_WAIT, |s| s.config == wanted).await;
        shown = seen.map_or(wanted, |s| s.config.clone());
    }
    if let Some(ms) = liveness_ms {
        app.shared.liveness_ms.store(ms, Ordering::Relaxed);
    }
    Ok(Json(render(&tunables(&app), &shown)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: JsonValue) -> Map<String, JsonValue> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn keys_in_any_case_at_the_top_or_under_protocol() {
        let c = parse_change(&body(json!({
            "liveness": "1m", "Protocol": {"PROBEINTERVAL": "2s"}, "RetransmitMult": 5
        })))
        .unwrap();
        assert_eq!(c.liveness, Some(Duration::from_secs(60)));
        let tuned = Config::lan().tuned(&c.tuning).unwrap();
        assert_eq!(tuned.probe_interval, Duration::from_secs(2));
        assert_eq!(tuned.retransmit_mult, 5);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        for bad in [
            json!({}),
            json!({"PacketBytesMax": 900}),
            json!({"Nonsense": 900}),
            json!({"Liveness": "0s"}),
            json!({"Liveness": "0.5ms"}),
            json!({"Liveness": 30}),
            json!({"ProbeInterval": "soon"}),
            json!({"ProbeInterval": 1.5}),
            json!({"RetransmitMult": 0}),
            json!({"RetransmitMult": 18446744073709551615u64}),
            json!({"Protocol": 1}),
        ] {
            assert!(parse_change(&body(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_answer_lists_every_knob_once() {
        let shown = render(&Tunables::default(), &Config::lan());
        let count = |key: &str| shown[key].as_object().map_or(0, |o| o.len());
        assert_eq!(
            1 + count("Protocol") + count("ReadOnly"),
            Knob::all().count()
        );
        assert_eq!(shown["Liveness"], "5m");
        assert_eq!(shown["Protocol"]["ProbeTimeout"], "400ms");
        assert_eq!(shown["ReadOnly"]["ExpectedMembers"], JsonValue::Null);
    }
}
