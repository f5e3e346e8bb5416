//! `GET` / `PUT /v1/hera/config`: the runtime configuration.
//!
//! Two kinds of setting change at runtime: the seed API's `Liveness`, which the HTTP layer
//! applies to each PUT, and the protocol timings of [`Tuning`], which the core takes through
//! `Command::Configure` and uses from the next time each timer is set. Everything else in the
//! protocol config is shown read-only: it shapes state already built (datagram budget, reaping
//! times) and changes with a restart.
//!
//! A PUT names any subset of the changeable keys (any case); an unknown key, a bad value or an
//! inconsistent result (a probe timeout not under the probe interval) is a 400 and changes
//! nothing.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};

use super::blocking::consul_duration;
use super::consul::object_body;
use super::{ApiError, AppState};
use crate::config::{Config, Tuning};
use crate::node::Command;

/// How long a PUT waits for the snapshot that shows its change (the driver publishes it
/// right after the command; this only bounds a stalled node).
const SHOW_WAIT: Duration = Duration::from_secs(2);

/// A duration as Go (and so Consul) writes it, which `consul_duration` reads back.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1_000 == 0 {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

fn render(liveness: Duration, c: &Config) -> Value {
    json!({
        "Liveness": go_duration(liveness),
        "Protocol": {
            "ProbeInterval": go_duration(c.probe_interval),
            "ProbeTimeout": go_duration(c.probe_timeout),
            "GossipInterval": go_duration(c.gossip_interval),
            "SyncInterval": go_duration(c.sync_interval),
            "ReconnectInterval": go_duration(c.reconnect_interval),
            "SuspicionBase": go_duration(c.suspicion_base),
            "RetransmitMult": c.retransmit_mult,
        },
        "ReadOnly": {
            "IndirectChecks": c.indirect_checks,
            "SuspicionMaxMult": c.suspicion_max_mult,
            "GossipFanout": c.gossip_fanout,
            "PacketBytesMax": c.packet_bytes_max,
            "RegistryTick": go_duration(c.registry_tick),
            "TombstoneGrace": go_duration(c.tombstone_grace),
            "FailedReapAfter": go_duration(c.failed_reap_after),
            "LeftReapAfter": go_duration(c.left_reap_after),
            "ExpectedMembers": c.expected_members,
        },
    })
}

fn liveness(app: &AppState) -> Duration {
    Duration::from_millis(app.shared.liveness_ms.load(Ordering::Relaxed))
}

pub async fn config(State(app): State<AppState>) -> Json<Value> {
    let s = app.node.snapshot();
    Json(render(liveness(&app), &s.config))
}

/// What a PUT body asks for, parsed in full before anything changes.
#[derive(Debug, Default, PartialEq)]
struct Change {
    liveness: Option<Duration>,
    tuning: Tuning,
}

fn parse_change(body: &Map<String, Value>) -> Result<Change, ApiError> {
    let mut change = Change::default();
    // Protocol keys may sit at the top or under "Protocol" (the GET answer's shape); a
    // "ReadOnly" key is refused like any unknown one, since nothing under it can change.
    let mut pairs: Vec<(&String, &Value)> = Vec::new();
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
        return Err(ApiError::bad_request(
            "nothing to change: set Liveness or a protocol interval",
        ));
    }
    for (key, value) in pairs {
        let duration = || -> Result<Duration, ApiError> {
            let text = value.as_str().ok_or_else(|| {
                ApiError::bad_request(format!("{key} must be a duration string like \"2s\""))
            })?;
            let d =
                consul_duration(text).map_err(|e| ApiError::bad_request(format!("{key}: {e}")))?;
            if d.is_zero() {
                return Err(ApiError::bad_request(format!("{key} must be above zero")));
            }
            Ok(d)
        };
        let t = &mut change.tuning;
        match key.to_ascii_lowercase().as_str() {
            "liveness" => change.liveness = Some(duration()?),
            "probeinterval" => t.probe_interval = Some(duration()?),
            "probetimeout" => t.probe_timeout = Some(duration()?),
            "gossipinterval" => t.gossip_interval = Some(duration()?),
            "syncinterval" => t.sync_interval = Some(duration()?),
            "reconnectinterval" => t.reconnect_interval = Some(duration()?),
            "suspicionbase" => t.suspicion_base = Some(duration()?),
            "retransmitmult" => {
                let m = value
                    .as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .filter(|m| (1..=32).contains(m))
                    .ok_or_else(|| {
                        ApiError::bad_request("RetransmitMult must be a number from 1 to 32")
                    })?;
                t.retransmit_mult = Some(m);
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{key} cannot be changed at runtime (changeable: Liveness, ProbeInterval, \
                     ProbeTimeout, GossipInterval, SyncInterval, ReconnectInterval, \
                     SuspicionBase, RetransmitMult)"
                )))
            }
        }
    }
    Ok(change)
}

pub async fn set_config(State(app): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let change = parse_change(&object_body(&body)?)?;
    let mut shown = app.node.snapshot().config.clone();
    if change.tuning != Tuning::default() {
        // Checked here too, so that a bad value is refused before liveness changes.
        let wanted = shown.tuned(&change.tuning).map_err(ApiError::bad_request)?;
        app.node
            .command(Command::Configure(change.tuning.clone()))
            .await?;
        let seen = app.node.wait_for(SHOW_WAIT, |s| s.config == wanted).await;
        shown = seen.map_or(wanted, |s| s.config.clone());
    }
    if let Some(d) = change.liveness {
        app.shared
            .liveness_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }
    Ok(Json(render(liveness(&app), &shown)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn keys_in_any_case_at_the_top_or_under_protocol() {
        let c = parse_change(&body(json!({
            "liveness": "1m", "Protocol": {"PROBEINTERVAL": "2s"}, "RetransmitMult": 5
        })))
        .unwrap();
        assert_eq!(c.liveness, Some(Duration::from_secs(60)));
        assert_eq!(c.tuning.probe_interval, Some(Duration::from_secs(2)));
        assert_eq!(c.tuning.retransmit_mult, Some(5));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        for bad in [
            json!({}),
            json!({"PacketBytesMax": 900}),
            json!({"Liveness": "0s"}),
            json!({"Liveness": 30}),
            json!({"ProbeInterval": "soon"}),
            json!({"RetransmitMult": 0}),
            json!({"Protocol": 1}),
        ] {
            assert!(parse_change(&body(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_secs(300)), "300s");
        assert_eq!(go_duration(Duration::from_millis(1_500)), "1500ms");
        assert_eq!(
            consul_duration(&go_duration(Duration::from_millis(400))).unwrap(),
            Duration::from_millis(400)
        );
    }
}
