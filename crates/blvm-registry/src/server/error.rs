//! The server's refusals: an HTTP status and one line, sent as
//! [`ApiError`] JSON whatever went wrong, so a script or `blvm-module`
//! can print the reason.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::layout::ApiError;

/// A refusal: the status and the line [`ApiError`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, in one line.
    pub message: String,
}

impl ApiFailure {
    /// A refusal with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed or does not match its statement.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403: the key may not act on this module.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: no such file, module or version.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the version exists (published versions are immutable).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 500: the registry's own fault. The details go to the log, not to
    /// the client (they name local paths).
    pub fn internal(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!("{what}: {error}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {what}"))
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        // One line, always: a multi-line message would break the CLI's
        // one-line report.
        let error = self.message.replace(['\n', '\r'], " ");
        (self.status, Json(ApiError { error })).into_response()
    }
}
