//! Consul's check definitions and its stand-alone check routes (issue 18): several checks per
//! registration, each with its own `CheckID`, `Name` and `Notes`; TTL, HTTP (with `Method` and
//! `Header`) and TCP kinds; `PUT /v1/agent/check/register` and `/deregister/<id>`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::bounds;
use super::consul::{duration_field, field, object_body, text_field};
use super::{ApiError, AppState};
use crate::names::InstanceId;
use crate::node::Command;
use crate::registry::{CheckSpec, SpecCheck, CHECKS_MAX};

/// Consul check kinds hera does not run, by the field that makes a check of that kind, and
/// why. Script checks stay off as Consul leaves them off by default (any client of the API
/// could run commands on the host); the others are not implemented.
const KINDS_NOT_RUN: &[(&str, &str)] = &[
    // First: a Docker check carries `Args` too, and is named by its container.
    ("DockerContainerID", "Docker checks are not run"),
    (
        "Args",
        "script checks are not run (Consul too disables them by default)",
    ),
    (
        "ScriptArgs",
        "script checks are not run (Consul too disables them by default)",
    ),
    (
        "Script",
        "script checks are not run (Consul too disables them by default)",
    ),
    (
        "Shell",
        "script checks are not run (Consul too disables them by default)",
    ),
    ("GRPC", "gRPC checks are not run"),
    ("UDP", "UDP checks are not run"),
    ("H2PING", "HTTP/2 ping checks are not run"),
    ("OSService", "OS service checks are not run"),
    ("AliasService", "alias checks are not run"),
    ("AliasNode", "alias checks are not run"),
];

/// Refuse a check that names a kind hera does not run, even beside one it does: dropping it
/// silently would report health the client never asked for.
fn refuse_kinds_not_run(check: &Map<String, Value>) -> Result<(), ApiError> {
    match KINDS_NOT_RUN
        .iter()
        .find(|(kind, _)| field(check, kind).is_some())
    {
        Some((kind, why)) => Err(ApiError::bad_request(format!(
            "a check with {kind}: {why}; hera runs TTL, HTTP and TCP checks"
        ))),
        None => Ok(()),
    }
}

/// The registration's checks: `"Check": {...}` and/or `"Checks": [{...}, ...]` (Consul takes
/// both), at most [`CHECKS_MAX`].
pub fn checks_from_registration(body: &Map<String, Value>) -> Result<Vec<CheckSpec>, ApiError> {
    let mut objects = Vec::new();
    if let Some(check) = field(body, "Check") {
        objects.push(
            check
                .as_object()
                .ok_or_else(|| ApiError::bad_request("Check must be an object"))?,
        );
    }
    if let Some(list) = field(body, "Checks") {
        let list = list
            .as_array()
            .ok_or_else(|| ApiError::bad_request("Checks must be a list of check objects"))?;
        if list.len() > CHECKS_MAX {
            return Err(ApiError::bad_request(format!(
                "Checks has {} entries, the most is {CHECKS_MAX} (allowed 0 to {CHECKS_MAX})",
                list.len()
            )));
        }
        for c in list {
            objects.push(
                c.as_object().ok_or_else(|| {
                    ApiError::bad_request("Checks must be a list of check objects")
                })?,
            );
        }
    }
    if objects.len() > CHECKS_MAX {
        return Err(ApiError::bad_request(format!(
            "the registration has {} checks, the most is {CHECKS_MAX} (allowed 0 to {CHECKS_MAX})",
            objects.len()
        )));
    }
    objects.into_iter().map(check_from_consul).collect()
}

/// One Consul check definition. Every duration within its [`bounds`]; a kind hera does not
/// run refused.
pub fn check_from_consul(check: &Map<String, Value>) -> Result<CheckSpec, ApiError> {
    refuse_kinds_not_run(check)?;
    let deregister_critical_after = duration_field(
        check,
        "DeregisterCriticalServiceAfter",
        bounds::DEREGISTER_AFTER,
    )?;
    let id = text_field(check, "CheckID")?
        .or(text_field(check, "ID")?)
        .filter(|id| !id.is_empty());
    let name = text_field(check, "Name")?.unwrap_or_default();
    let notes = text_field(check, "Notes")?.unwrap_or_default();
    let kind = check_kind(check)?;
    Ok(CheckSpec {
        id,
        name,
        notes,
        kind,
        deregister_critical_after,
    })
}

fn check_kind(check: &Map<String, Value>) -> Result<SpecCheck, ApiError> {
    if let Some(ttl) = duration_field(check, "TTL", bounds::TTL)? {
        return Ok(SpecCheck::Ttl { ttl });
    }
    let http = text_field(check, "HTTP")?;
    let tcp = text_field(check, "TCP")?;
    if http.is_none() && tcp.is_none() {
        return Err(ApiError::bad_request(
            "a check needs a TTL, an HTTP URL or a TCP address: hera runs TTL, HTTP and TCP checks",
        ));
    }
    let kind = if http.is_some() { "an HTTP" } else { "a TCP" };
    let interval = duration_field(check, "Interval", bounds::CHECK_INTERVAL)?
        .ok_or_else(|| ApiError::bad_request(format!("{kind} check needs an Interval")))?;
    let timeout = timeout_within(check, interval)?;
    let Some(url) = http else {
        let address = tcp.unwrap_or_default();
        crate::registry::check_tcp_address_shape(&address)
            .map_err(|why| ApiError::bad_request(format!("TCP {address:?}: {why}")))?;
        return Ok(SpecCheck::Tcp {
            address,
            interval,
            timeout,
        });
    };
    if field(check, "TLSSkipVerify").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad_request(
            "TLSSkipVerify: hera's check client speaks plain HTTP only, so there is no TLS to skip",
        ));
    }
    crate::runtime::http_client::check_url(&url)
        .map_err(|e| ApiError::bad_request(format!("HTTP: {e}")))?;
    let method = text_field(check, "Method")?
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "GET".to_string());
    let headers = headers(check)?;
    if method.eq_ignore_ascii_case("GET") && headers.is_empty() {
        return Ok(SpecCheck::Http {
            url,
            interval,
            timeout,
        });
    }
    Ok(SpecCheck::Request {
        url,
        method: method.to_ascii_uppercase(),
        headers,
        interval,
        timeout,
    })
}

/// A check's `Timeout`: within its bounds and not past its interval (it would overlap the next).
fn timeout_within(check: &Map<String, Value>, interval: Duration) -> Result<Duration, ApiError> {
    match duration_field(check, "Timeout", bounds::CHECK_TIMEOUT)? {
        Some(timeout) if timeout > interval => Err(ApiError::bad_request(format!(
            "Timeout {} is longer than the Interval {}: a check must end before the next",
            crate::duration::display(timeout),
            crate::duration::display(interval),
        ))),
        Some(timeout) => Ok(timeout),
        None => Ok(bounds::CHECK_TIMEOUT_DEFAULT.min(interval)),
    }
}

/// Consul's `Header`: `{"Name": ["value", ...]}`, each value sent as its own header line.
fn headers(check: &Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(header) = field(check, "Header") else {
        return Ok(Vec::new());
    };
    let bad = || ApiError::bad_request("Header must be an object of lists of strings");
    let map = header.as_object().ok_or_else(bad)?;
    let mut out = Vec::new();
    for (name, values) in map {
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::bad_request(format!(
                "Header {name:?} is not a header name"
            )));
        }
        for value in values.as_array().ok_or_else(bad)? {
            let value = value.as_str().ok_or_else(bad)?;
            if axum::http::HeaderValue::from_str(value).is_err() {
                return Err(ApiError::bad_request(format!(
                    "Header {name:?}: the value holds a character a header may not"
                )));
            }
            out.push((name.clone(), value.to_string()));
        }
    }
    Ok(out)
}

/// `PUT /v1/agent/check/register`: a check of a service this node owns (`ServiceID`), or of
/// the node itself.
pub async fn register_check(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let body = object_body(&body)?;
    let spec = check_from_consul(&body)?;
    if spec.id.is_none() && spec.name.is_empty() {
        return Err(ApiError::bad_request("a check needs a Name"));
    }
    let service = match text_field(&body, "ServiceID")? {
        Some(id) if !id.is_empty() => Some(
            InstanceId::new(&id).map_err(|e| ApiError::bad_request(format!("ServiceID: {e}")))?,
        ),
        _ => None,
    };
    app.node
        .command(Command::RegisterCheck { service, spec })
        .await?;
    Ok(StatusCode::OK)
}

/// `PUT /v1/agent/check/deregister/<id>`.
pub async fn deregister_check(
    State(app): State<AppState>,
    Path(check): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.node.command(Command::DeregisterCheck { check }).await?;
    Ok(StatusCode::OK)
}
