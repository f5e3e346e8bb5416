//! `GET /metrics`: this node's metrics in the Prometheus text format.
//!
//! Most series are kept current by the driver (see [`crate::runtime::telemetry`]); the registry's
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

/// The registry's instances by health and on-line status, its tombstones and its index. Set on
/// every scrape rather than kept by the driver: they change only with the registry, and every
/// registry change publishes a new snapshot, so the snapshot is never behind for them.
fn registry_gauges(snapshot: &crate::runtime::driver::Snapshot) {
    use crate::runtime::telemetry::node_metrics::names::*;
    let c = snapshot.registry.counts();
    for (health, n) in [
        ("passing", c.passing),
        ("warning", c.warning),
        ("critical", c.critical),
    ] {
        metrics::gauge!(REGISTRY_INSTANCES, "health" => health).set(n as f64);
    }
    metrics::gauge!(REGISTRY_OFFLINE).set(c.offline as f64);
    metrics::gauge!(REGISTRY_TOMBSTONES).set(c.tombstones as f64);
    metrics::gauge!(REGISTRY_INDEX).set(snapshot.registry.index() as f64);
}
