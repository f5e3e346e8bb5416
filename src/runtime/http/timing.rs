// Reads values from outside the process: arithmetic is checked (issue 12), or allowed where it
// stands with its reason.
#![warn(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
//! Middleware that times every request and counts it by verb: method, route template and
//! status. One measurement feeds both the Prometheus histogram and the sliding window behind
//! `GET /v1/status` (see [`crate::runtime::telemetry`]).

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

/// The route label for requests no route matched (404s, probes by scanners): one label, so
/// random paths cannot create new series.
pub const UNMATCHED: &str = "unmatched";

pub async fn track(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    // The template (`/v1/health/service/{service}`), not the path: bounded cardinality.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let telemetry = app.node.telemetry().clone();
    let clock = telemetry.clock();
    let started = clock.now();
    let response = next.run(request).await;
    let took = clock.now().saturating_since(started);
    telemetry.record_request(
        method,
        route.as_deref().unwrap_or(UNMATCHED),
        response.status().as_u16(),
        took,
    );
    response
}

/// Standard methods by name, anything else as `other` (a client may send any token).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
