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

/// hyper's own answer to a request it could not parse (a NUL or a byte over 127 in the path,
/// a URI over 64 KiB, headers over its buffer) is written before any middleware runs: a bare
/// status line with `content-length: 0`. Given the bytes hyper is about to write, this returns
/// the same answer with a JSON body, or `None` for anything else (every other 4xx is JSON by
/// then, with a content type).
pub fn rewrite_automatic(head: &[u8]) -> Option<Vec<u8>> {
    const PREFIX: &[u8] = b"HTTP/1.1 4";
    if !head.starts_with(PREFIX) || !head.ends_with(b"\r\n\r\n") || head.len() > 512 {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?.to_ascii_lowercase();
    if !text.contains("\r\ncontent-length: 0\r\n") || text.contains("\r\ncontent-type:") {
        return None;
    }
    let code: u16 = text.get(9..12)?.parse().ok()?;
    let status = axum::http::StatusCode::from_u16(code).ok()?;
    let message = match code {
        414 => "the URI is too long",
        431 => "the request's headers are too large",
        _ => "the request could not be parsed: a bad method, path, version or header",
    };
    let body = serde_json::json!({ "error": message }).to_string();
    let answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Bad Request"),
        body.len(),
    );
    Some(answer.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bare_errors_become_json() {
        let head = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 16:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(rewrite_automatic(head).unwrap()).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].is_string());
        assert!(answer.contains(&format!("content-length: {}\r\n", body.len())));
        let long = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert!(rewrite_automatic(long).is_some());
        // Answers that are JSON already, or not errors, are left alone.
        let json_404 = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(rewrite_automatic(json_404).is_none());
        assert!(rewrite_automatic(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
