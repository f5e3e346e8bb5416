//! Every client error as JSON, the framework's own included.
//!
//! Handlers answer bad input with [`ApiError`]'s `{"error": "..."}`, but some 4xx come from
//! axum before a handler runs: a body over the limit (413), a path or query that does not
//! parse (400), a method the route lacks (405). Those are plain text or empty; this middleware
//! rewrites them into the same JSON shape, so that a client parses one kind of error.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The framework's messages are a line; anything longer is not one of them and is left alone.
const MESSAGE_BYTES_MAX: usize = 4 * 1024;

pub async fn rewrite(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !status.is_client_error() || is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match to_bytes(body, MESSAGE_BYTES_MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut rewritten = ApiError::new(status, message).into_response();
    // Keep what the framework said beyond the body (e.g. `Allow` on a 405).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
