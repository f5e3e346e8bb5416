//! `GET /metrics`: this node's metrics in the Prometheus text format.
//!
//! Most series are kept current by the driver (see [`crate::telemetry`]); the registry's
//! gauges are counted here, from the published snapshot, just before rendering.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// The content type Prometheus expects for the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let telemetry = app.node.telemetry();
    let snapshot = app.node.snapshot();
    telemetry.with_recorder(|| registry_gauges(&snapshot));
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], telemetry.render())
}

/// The registry's instances by health and on-line status (filled in once the registry is in
/// the snapshot).
fn registry_gauges(_snapshot: &crate::driver::Snapshot) {}
