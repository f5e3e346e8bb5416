//! Configuration changed at run time (`PUT /v1/hera/config`), read the same way from a
//! request's body and from the data_dir's `config.json`, where the changes are kept so that a
//! restart does not undo them (SPEC §10).
//!
//! Every value goes through the one schema (`config::schema` for the protocol's knobs,
//! `settings::TUNABLE_FIELDS` for the deployment's): the same names, ranges and errors as the
//! config file and the flags.

use serde_json::{json, Map, Value as JsonValue};

use crate::config::schema::{ConfigError, Field, Naming, Raw, Value};
use crate::config::Tuning;
use crate::runtime::settings::{Knob, Tunables};

/// What a body asks to change, each value read and range-checked. Whether the protocol's
/// result is consistent (a probe timeout under the probe interval) is for `Config::tuned`.
#[derive(Debug, Default, PartialEq)]
pub struct Change {
    pub tuning: Tuning,
    deployment: Vec<(&'static Field<Tunables>, Value)>,
}

impl Change {
    /// Read a body such as `{"Liveness": "1m", "Protocol": {"ProbeInterval": "2s"}}`: keys
    /// in any case, protocol keys at the top or under `Protocol` (the GET answer's shape).
    /// An unknown or read-only key, a bad value or an empty body is refused, naming the key.
    pub fn parse(body: &Map<String, JsonValue>) -> Result<Change, String> {
        let mut pairs: Vec<(&String, &JsonValue)> = Vec::new();
        for (key, value) in body {
            if key.eq_ignore_ascii_case("protocol") {
                let inner = value
                    .as_object()
                    .ok_or_else(|| "Protocol must be an object".to_string())?;
                pairs.extend(inner.iter());
            } else {
                pairs.push((key, value));
            }
        }
        if pairs.is_empty() {
            return Err(format!(
                "nothing to change: set one of {}",
                changeable_keys()
            ));
        }
        let mut change = Change::default();
        for (key, value) in pairs {
            match Knob::by_json(key) {
                Some(Knob::Protocol(field)) => change
                    .tuning
                    .read(field, Naming::Json, raw(value))
                    .map_err(|e| e.to_string())?,
                Some(Knob::Deployment(field)) => {
                    if !field.meta.runtime {
                        return Err(ConfigError::NotAtRuntime {
                            name: field.meta.json.to_string(),
                        }
                        .to_string());
                    }
                    let value = field
                        .meta
                        .read(Naming::Json, raw(value))
                        .map_err(|e| e.to_string())?;
                    change.deployment.retain(|(f, _)| !std::ptr::eq(*f, field));
                    change.deployment.push((field, value));
                }
                None => {
                    return Err(format!(
                        "{key}: no such setting (changeable at runtime: {})",
                        changeable_keys()
                    ))
                }
            }
        }
        Ok(change)
    }

    /// `tunables` with this change's deployment knobs applied.
    pub fn tunables(&self, mut tunables: Tunables) -> Tunables {
        for (field, value) in &self.deployment {
            (field.set)(&mut tunables, *value);
        }
        tunables
    }

    pub fn changes_deployment(&self) -> bool {
        !self.deployment.is_empty()
    }

    /// Each knob this change sets, by its JSON name, with the value as the API shows it.
    fn shown(&self) -> impl Iterator<Item = (&'static str, JsonValue)> + '_ {
        let protocol = self
            .tuning
            .changes()
            .map(|(field, value)| (field.meta.json, shown(value)));
        let deployment = self
            .deployment
            .iter()
            .map(|(field, value)| (field.meta.json, shown(*value)));
        protocol.chain(deployment)
    }
}

/// Every knob changed at run time so far, by its JSON name, with the value it was given, as
/// the API shows it: what `config.json` holds, and what a restart applies over the config
/// file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides(Map<String, JsonValue>);

impl Overrides {
    /// Overrides as kept, read back (and so checked) as one change.
    pub fn read(kept: Map<String, JsonValue>) -> Result<(Overrides, Change), String> {
        if kept.is_empty() {
            return Ok((Overrides::default(), Change::default()));
        }
        let change = Change::parse(&kept)?;
        let mut overrides = Overrides::default();
        overrides.absorb(&change);
        Ok((overrides, change))
    }

    /// These overrides with `change` applied over them.
    pub fn with(&self, change: &Change) -> Overrides {
        let mut next = self.clone();
        next.absorb(change);
        next
    }

    fn absorb(&mut self, change: &Change) {
        for (name, value) in change.shown() {
            self.0.insert(name.to_string(), value);
        }
    }

    pub fn as_map(&self) -> &Map<String, JsonValue> {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A value as the API writes it: durations in the one grammar's shortest form, counts as
/// numbers, an unset count as null.
pub fn shown(value: Value) -> JsonValue {
    match value {
        Value::Duration(d) => JsonValue::String(crate::duration::display(d)),
        Value::Count(n) => json!(n),
        Value::Unset => JsonValue::Null,
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    fn body(v: JsonValue) -> Map<String, JsonValue> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn keys_in_any_case_at_the_top_or_under_protocol() {
        let c = Change::parse(&body(json!({
            "liveness": "1m", "Protocol": {"PROBEINTERVAL": "2s"}, "RetransmitMult": 5
        })))
        .unwrap();
        assert_eq!(
            c.tunables(Tunables::default()).liveness,
            Duration::from_secs(60)
        );
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
            // A deployment knob that changes only with a restart.
            json!({"BlockingWaitersMax": 16}),
        ] {
            assert!(Change::parse(&body(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_accumulate_under_canonical_names_and_read_back_the_same() {
        let first = Change::parse(&body(json!({"probeinterval": "2000ms"}))).unwrap();
        let second =
            Change::parse(&body(json!({"Liveness": "90s", "ProbeInterval": "3s"}))).unwrap();
        let kept = Overrides::default().with(&first).with(&second);
        assert_eq!(
            JsonValue::Object(kept.as_map().clone()),
            json!({"Liveness": "1m30s", "ProbeInterval": "3s"})
        );
        let (again, change) = Overrides::read(kept.as_map().clone()).unwrap();
        assert_eq!(again, kept);
        assert_eq!(
            Config::lan().tuned(&change.tuning).unwrap().probe_interval,
            Duration::from_secs(3)
        );
        assert!(Overrides::read(body(json!({"ProbeInterval": "0s"}))).is_err());
    }
}
