//! `GET /ui`: the admin console, a single page embedded in the binary (no build step, nothing
//! fetched from elsewhere). It reads [`state`] (one request per refresh, blocking until
//! something changes) and takes instances off-line and on-line through Consul's maintenance
//! endpoint, like any other client.

mod state;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const STYLE_CSS: &str = include_str!("console/style.css");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/style.css", get(style_css))
        .route("/ui/state", get(state::state))
}

/// The console must not be framed by another site (clickjacking the off-line button).
const FRAME_OPTIONS: (header::HeaderName, &str) = (header::X_FRAME_OPTIONS, "DENY");
const CSP: (header::HeaderName, &str) = (
    header::CONTENT_SECURITY_POLICY,
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
);

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            FRAME_OPTIONS,
            CSP,
        ],
        INDEX_HTML,
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_JS,
    )
}

async fn style_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE_CSS,
    )
}
