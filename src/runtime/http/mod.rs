//! The HTTP faces of a node, all on one listener (axum):
//!
//! - Consul's agent API for membership: [`agent`];
//! - the registry's three faces: the seed API ([`seed`]), Consul's ([`consul`] for writes, [`consul_reads`]
//!   for reads as one pipeline, with blocking queries in [`blocking`]) and hera's own ([`hera_api`], [`hera_config`]), all rendered by
//!   [`views`]; framework rejections are JSON too ([`json_errors`]);
//! - hera's own status: [`status`];
//! - operations: Prometheus at `/metrics` ([`metrics`]), the admin console at `/ui`
//!   ([`console`]), and request timing for every route ([`timing`]);
//! - security: the API token, request time bounds and the limit on requests in flight
//!   ([`guard`]), the bound on open connections ([`connections`]), and Consul's keyring operations for gossip encryption ([`keyring`]).
//!
//! Handlers never touch the node: they send commands through the [`NodeHandle`] and read the
//! published snapshot.

pub mod agent;
pub mod blocking;
pub mod bounds;
pub mod cache;
pub mod connections;
pub mod console;
pub mod consul;
pub mod consul_checks;
pub mod consul_reads;
pub mod error;
// The fuzz target's and the seed replay's harness: never in a production build.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod guard;
pub mod hera_api;
pub mod hera_config;
pub mod json_errors;
pub mod keyring;
pub mod metrics;
pub mod query;
pub mod seed;
pub mod status;
pub mod timing;
pub mod views;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, put};
use axum::Router;
use tokio::net::TcpListener;

use crate::runtime::driver::NodeHandle;
pub use connections::ConnectionLimits;
pub use error::ApiError;

/// Largest request body accepted on any route.
pub const BODY_MAX_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub node: NodeHandle,
    pub shared: std::sync::Arc<Shared>,
    /// Token, request bound and limit on requests in flight: see [`guard`].
    pub guard: std::sync::Arc<guard::Guard>,
}

/// State of the HTTP layer itself (not the node's).
#[derive(Debug)]
pub struct Shared {
    /// Seed API liveness in milliseconds; changeable at runtime (`PUT /v1/hera/config`).
    pub liveness_ms: std::sync::atomic::AtomicU64,
    /// Bounds the blocking queries waiting at once, to `waiters_max`.
    pub blocking: tokio::sync::Semaphore,
    /// The setting `blocking_waiters_max`.
    pub waiters_max: usize,
    /// When each instance was last handed out by the least-recently-picked strategy.
    pub picked: std::sync::Mutex<std::collections::HashMap<crate::names::InstanceId, u64>>,
    pub picks: std::sync::atomic::AtomicU64,
    /// Rendered read responses, valid while the node's state is unchanged.
    pub responses: cache::ResponseCache,
    /// With a `data_dir`: where runtime configuration changes are kept.
    pub kept_config: Option<hera_config::KeptConfig>,
}

impl AppState {
    /// `kept_config`: with a `data_dir`, where runtime configuration changes are kept;
    /// `waiters_max`: blocking queries waiting at once (the requests in flight follow it).
    pub fn new(
        node: NodeHandle,
        liveness: std::time::Duration,
        waiters_max: usize,
        kept_config: Option<hera_config::KeptConfig>,
    ) -> AppState {
        AppState {
            node,
            shared: std::sync::Arc::new(Shared {
                liveness_ms: std::sync::atomic::AtomicU64::new(liveness.as_millis() as u64),
                blocking: tokio::sync::Semaphore::new(waiters_max),
                waiters_max,
                picked: std::sync::Mutex::new(std::collections::HashMap::new()),
                picks: std::sync::atomic::AtomicU64::new(0),
                responses: cache::ResponseCache::default(),
                kept_config,
            }),
            guard: std::sync::Arc::new(guard::Guard::new(
                guard::Access::default(),
                guard::requests_max(waiters_max),
            )),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/agent/members", get(agent::members))
        .route("/v1/agent/join/{*address}", put(agent::join))
        .route("/v1/agent/leave", put(agent::leave))
        .route("/v1/agent/force-leave/{node}", put(agent::force_leave))
        .route("/v1/status", get(status::status))
        .route("/metrics", get(metrics::metrics))
        .merge(console::routes())
        .merge(consul::routes())
        .merge(consul_reads::routes())
        .merge(hera_api::routes())
        .merge(keyring::routes())
        .merge(seed::routes())
        .layer(DefaultBodyLimit::max(BODY_MAX_BYTES))
        // The framework's own 4xx (body too large, bad path, wrong method) as JSON too.
        .layer(axum::middleware::from_fn(json_errors::rewrite))
        // Inside out: the time bound, a readable query, then the token, then the bound on
        // requests in flight, so that a flood is shed before any other work.
        .layer(axum::middleware::from_fn(guard::deadline))
        .layer(axum::middleware::from_fn(guard::well_formed))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::limit,
        ))
        // Outermost, after every route: times each request, unmatched ones included.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            timing::track,
        ))
        .with_state(state)
}

/// Serve `router` on an already bound listener until `shutdown` completes, within the
/// default [`connections::ConnectionLimits`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    connections::serve(listener, ConnectionLimits::default(), router, shutdown).await
}

/// [`serve`] with another bound on open connections.
pub async fn serve_bounded(
    listener: TcpListener,
    connections_max: usize,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = ConnectionLimits {
        open_max: connections_max,
        ..ConnectionLimits::default()
    };
    connections::serve(listener, limits, router, shutdown).await
}
