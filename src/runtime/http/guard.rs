//! What every request passes before a handler sees it: a bound on requests in flight, the
//! API token, and a time limit.
//!
//! These are small `from_fn` middlewares rather than tower's layers, for three reasons:
//! tower's `ConcurrencyLimitLayer` queues excess requests (we want to shed them with a 503 at
//! once, not hold sockets open) and, layered on an axum `Router`, gives each route its own
//! semaphore; tower-http's `TimeoutLayer` has one bound for every route, while a Consul
//! blocking query may legitimately wait up to its own `?wait=` (at most ten minutes).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::query::FirstValues;
use super::{blocking, ApiError, AppState};

/// Requests handled at once; more are refused with 503. Room for every blocking query that
/// may wait (`blocking_waiters_max`) plus this many ordinary ones, so that waiting clients
/// can never starve writes and plain reads.
pub const ORDINARY_REQUESTS_MAX: usize = 256;
/// [`requests_max`] with the default bound on blocking queries.
pub const REQUESTS_MAX: usize = requests_max(blocking::WAITERS_MAX);

/// Requests in flight at once, for `waiters_max` blocking queries waiting at once.
pub const fn requests_max(waiters_max: usize) -> usize {
    waiters_max.saturating_add(ORDINARY_REQUESTS_MAX)
}
/// Longest an ordinary request may take. Commands reach the node over a bounded channel; a
/// node that has not answered in this long is stuck, and the client should hear so.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Paths that need the token whenever one is configured, reads included: the keyring lists
/// the cluster's gossip keys.
const SECRET_PATHS: [&str; 2] = ["/v1/operator/keyring", "/v1/hera/keyring"];

/// An API token. Its `Debug` never shows it; comparison takes constant time.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Refuses an empty token (it would match a missing header's empty string).
    pub fn new(text: &str) -> Result<Token, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the token must not be empty".to_string());
        }
        Ok(Token(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant time in the contents; the length may show, which tells an attacker nothing
    /// useful about a random token.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Who may use the API.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// None: the API is open (the default bind is loopback).
    pub token: Option<Token>,
    /// Require the token for reads too, not only for writes.
    pub token_reads: bool,
}

/// The guard's state, shared by every request.
#[derive(Debug)]
pub struct Guard {
    pub access: Access,
    requests: Semaphore,
    requests_max: usize,
}

impl Guard {
    /// `requests_max`: requests in flight at once ([`requests_max`]).
    pub fn new(access: Access, requests_max: usize) -> Guard {
        Guard {
            access,
            requests: Semaphore::new(requests_max),
            requests_max,
        }
    }
}

/// Refuse at once, with 503 and a second to wait, a request beyond the bound in flight.
pub async fn limit(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Ok(_permit) = app.guard.requests.try_acquire() else {
        let max = app.guard.requests_max;
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many requests in flight (at most {max}): retry shortly"),
        )
        .retry_after(1)
        .into_response();
    };
    next.run(request).await
}

/// With a token configured, require it for writes (every method but GET, HEAD and OPTIONS),
/// for reads when `token_reads` is set, and always for the keyring.
pub async fn authorize(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let access = &app.guard.access;
    if let Some(token) = &access.token {
        let read = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        let secret = SECRET_PATHS
            .iter()
            .any(|p| request.uri().path().starts_with(p));
        let needed = !read || access.token_reads || secret;
        if needed && !presented(request.headers()).is_some_and(|p| token.matches(p)) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "permission denied: this needs the API token \
                 (X-Consul-Token or Authorization: Bearer)",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The token a client presented: Consul's header, or a bearer token.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-consul-token") {
        return v.to_str().ok();
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Refuse with 400 a request whose query string cannot be read ([`super::query::Malformed`]),
/// before any route sees it: routes read queries in several ways (axum's `Query`, the first
/// values), and a lossy one would act on values the client never sent.
pub async fn well_formed(request: Request, next: Next) -> Response {
    if let Err(e) = super::query::pairs(request.uri().query().unwrap_or_default()) {
        return ApiError::bad_request(e.to_string()).into_response();
    }
    next.run(request).await
}

/// End a request that outlives its bound with 503. A blocking query's bound is its own wait
/// plus the ordinary timeout.
pub async fn deadline(request: Request, next: Next) -> Response {
    let bound = time_bound(&request);
    match tokio::time::timeout(bound, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the request took longer than {} s", bound.as_secs()),
        )
        .into_response(),
    }
}

fn time_bound(request: &Request) -> Duration {
    // Of a repeated key, the first value: what the handler reads (`query`).
    // A malformed query never gets here ([`well_formed`]); none reads as none.
    let FirstValues(query) = FirstValues::of_uri(request.uri()).unwrap_or_default();
    // A blocking read (on the index, or on a content hash) may hold for its whole wait.
    let blocks = |key: &str| query.get(key).is_some_and(|v| !v.is_empty());
    if !blocks("index") && !blocks("hash") {
        return REQUEST_TIMEOUT;
    }
    // A bad `wait` is the handler's to refuse; give it the longest bound meanwhile.
    let wait = match query.get("wait").filter(|v| !v.is_empty()) {
        Some(text) => blocking::consul_duration(text).unwrap_or(blocking::WAIT_MAX),
        None => blocking::WAIT_DEFAULT,
    };
    wait.min(blocking::WAIT_MAX) + REQUEST_TIMEOUT
}

impl AppState {
    /// The same state under this access policy (the default is an open API).
    pub fn with_access(self, access: Access) -> AppState {
        let requests_max = requests_max(self.shared.waiters_max);
        AppState {
            guard: Arc::new(Guard::new(access, requests_max)),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole_and_never_print() {
        let t = Token::new("s3cret").unwrap();
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3cret "));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "Token(..)");
        assert!(Token::new("  ").is_err());
    }

    #[test]
    fn presented_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(presented(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented(&h), None);
        h.insert("x-consul-token", "xyz".parse().unwrap());
        assert_eq!(presented(&h), Some("xyz"));
    }

    #[test]
    fn blocking_queries_get_their_own_wait() {
        let bound = |uri: &str| time_bound(&Request::builder().uri(uri).body(().into()).unwrap());
        assert_eq!(bound("/v1/catalog/services"), REQUEST_TIMEOUT);
        assert_eq!(bound("/v1/catalog/services?index="), REQUEST_TIMEOUT);
        assert_eq!(
            bound("/v1/catalog/services?index=5&wait=30s"),
            Duration::from_secs(30) + REQUEST_TIMEOUT
        );
        assert_eq!(
            bound("/v1/catalog/services?index=5"),
            blocking::WAIT_DEFAULT + REQUEST_TIMEOUT
        );
        assert_eq!(
            bound("/v1/catalog/services?index=5&wait=1h"),
            blocking::WAIT_MAX + REQUEST_TIMEOUT
        );
        // Of a repeated `wait`, the first counts, as for the handler (Consul's `Get`): the
        // bound must not cut a read short that waits for its first value.
        assert_eq!(
            bound("/v1/catalog/services?index=5&wait=9m&wait=1s"),
            Duration::from_secs(540) + REQUEST_TIMEOUT
        );
        // A read that blocks on a content hash waits as long as one on an index.
        assert_eq!(
            bound("/v1/agent/service/web-1?hash=0123abcd&wait=30s"),
            Duration::from_secs(30) + REQUEST_TIMEOUT
        );
        // Values no duration can hold are the handler's to refuse; the bound stays finite.
        for wait in [
            "1e20",
            "2e19",
            "18446744073709552",
            "999999999999h",
            "NaN",
            "-1s",
        ] {
            assert_eq!(
                bound(&format!("/anything?index=1&wait={wait}")),
                blocking::WAIT_MAX + REQUEST_TIMEOUT,
                "{wait}"
            );
        }
    }
}
