//! API errors: a status code and a JSON body `{"error": "..."}` that says what was wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::node::CommandError;
use crate::runtime::driver::HandleError;
use crate::wire::KeyringError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds a refused client should wait before asking again (`Retry-After`), for the
    /// refusals of a bound that frees itself (429, 503).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// The same error, telling the client to wait `secs` seconds before asking again.
    pub fn retry_after(self, secs: u64) -> Self {
        ApiError {
            retry_after_secs: Some(secs),
            ..self
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        match self.retry_after_secs {
            Some(secs) => (
                self.status,
                [(axum::http::header::RETRY_AFTER, secs.to_string())],
                body,
            )
                .into_response(),
            None => (self.status, body).into_response(),
        }
    }
}

impl From<HandleError> for ApiError {
    fn from(e: HandleError) -> Self {
        match e {
            HandleError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            HandleError::Refused(refused) => ApiError::from(refused),
            HandleError::NotPersisted(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        let status = match &e {
            CommandError::NotRunning => StatusCode::SERVICE_UNAVAILABLE,
            CommandError::NoSeeds => StatusCode::BAD_REQUEST,
            CommandError::UnknownInstance { .. } => StatusCode::NOT_FOUND,
            CommandError::UnknownCheck { .. } => StatusCode::NOT_FOUND,
            CommandError::IdInUse { .. } => StatusCode::CONFLICT,
            // 507 Insufficient Storage (RFC 4918): the node cannot store what it was asked to,
            // which is exactly what happened. Not 429 or 503: generic clients and proxies retry
            // those, and this frees only when something is deregistered or the bound raised, so
            // a retry loop would hammer a full node. Not a 4xx: the request is well formed; the
            // node's configured capacity is what refuses it. Consul clients take any non-2xx as
            // a failed registration, so they report it without retrying blindly.
            CommandError::Full { .. } => StatusCode::INSUFFICIENT_STORAGE,
            CommandError::Invalid { .. } => StatusCode::BAD_REQUEST,
            CommandError::UnknownMember { .. } => StatusCode::NOT_FOUND,
            CommandError::MemberLive { .. } => StatusCode::CONFLICT,
            CommandError::NoQuorum { .. } => StatusCode::CONFLICT,
            CommandError::Keyring(k) => match k {
                KeyringError::NotEnabled | KeyringError::BadLength { .. } => {
                    StatusCode::BAD_REQUEST
                }
                KeyringError::UnknownKey => StatusCode::NOT_FOUND,
                KeyringError::RemovePrimary | KeyringError::Full { .. } => StatusCode::CONFLICT,
            },
        };
        ApiError::new(status, e.to_string())
    }
}
