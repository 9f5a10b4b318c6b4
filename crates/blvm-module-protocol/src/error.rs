//! Errors: why a frame could not be decoded, and the error a request
//! answers with.
//!
//! The two are different in kind. A [`DecodeError`] or [`FrameError`] is a
//! protocol violation and closes the connection it came from (and only
//! that one). A [`RemoteError`] is an ordinary answer: the request failed,
//! the connection stays.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a frame's payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload ended inside a value, or a length prefix promised more
    /// than is there.
    #[error("payload truncated")]
    Truncated,
    /// The top level of a frame must be a map.
    #[error("frame is not a msgpack map")]
    NotAMap,
    /// A byte that is not a MessagePack marker.
    #[error("invalid msgpack marker 0x{0:02x}")]
    InvalidMarker(u8),
    /// An envelope field had the wrong type.
    #[error("expected {0}")]
    WrongType(&'static str),
    /// A field this frame kind requires is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// Bytes after the frame's map.
    #[error("trailing bytes after the frame")]
    TrailingBytes,
    /// A typed body (handshake, log, params) did not match its schema.
    #[error("invalid {what}: {message}")]
    Body {
        /// Which body.
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
}

/// Why a length-prefixed frame could not be taken off the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the configured maximum. Checked before any
    /// allocation.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A frame whose payload is not a valid frame.
    #[error("undecodable frame: {0}")]
    Decode(#[from] DecodeError),
}

/// Why a value could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {what}: {source}")]
pub struct EncodeError {
    /// What was being encoded.
    pub what: &'static str,
    /// The encoder's error.
    #[source]
    pub source: rmp_serde::encode::Error,
}

/// The error code of a failed request, a `snake_case` string on the wire.
///
/// Codes this build does not know are kept as [`ErrorCode::Other`], so a
/// newer peer's codes reach the caller intact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The module lacks the capability the request needs.
    PermissionDenied,
    /// No such method.
    MethodNotFound,
    /// The params did not decode or are out of range.
    InvalidParams,
    /// The node could not serve the request now (no chain yet, backend busy).
    Unavailable,
    /// The node refused a submitted transaction or block.
    Rejected,
    /// The module serving an invocation crashed before answering.
    ModuleCrashed,
    /// The connection closed before the answer came.
    ConnectionClosed,
    /// Too many requests.
    RateLimited,
    /// The request would take the module past one of its quotas (metric
    /// series, storage bytes or keys); nothing was changed.
    QuotaExceeded,
    /// The module a request names is not running (not loaded, stopped,
    /// or restarting).
    ModuleNotRunning,
    /// The answer did not come within the deadline.
    Timeout,
    /// The name is taken: a JSON-RPC method the node serves itself or
    /// another module registered first. Nothing was replaced.
    AlreadyRegistered,
    /// An unexpected fault in the node.
    Internal,
    /// A code this build does not know.
    Other(String),
}

impl ErrorCode {
    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::MethodNotFound => "method_not_found",
            ErrorCode::InvalidParams => "invalid_params",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Rejected => "rejected",
            ErrorCode::ModuleCrashed => "module_crashed",
            ErrorCode::ConnectionClosed => "connection_closed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::ModuleNotRunning => "module_not_running",
            ErrorCode::Timeout => "timeout",
            ErrorCode::AlreadyRegistered => "already_registered",
            ErrorCode::Internal => "internal",
            ErrorCode::Other(s) => s,
        }
    }

    /// Parses the wire spelling; never fails.
    pub fn from_wire(s: &str) -> ErrorCode {
        match s {
            "permission_denied" => ErrorCode::PermissionDenied,
            "method_not_found" => ErrorCode::MethodNotFound,
            "invalid_params" => ErrorCode::InvalidParams,
            "unavailable" => ErrorCode::Unavailable,
            "rejected" => ErrorCode::Rejected,
            "module_crashed" => ErrorCode::ModuleCrashed,
            "connection_closed" => ErrorCode::ConnectionClosed,
            "rate_limited" => ErrorCode::RateLimited,
            "quota_exceeded" => ErrorCode::QuotaExceeded,
            "module_not_running" => ErrorCode::ModuleNotRunning,
            "timeout" => ErrorCode::Timeout,
            "already_registered" => ErrorCode::AlreadyRegistered,
            "internal" => ErrorCode::Internal,
            other => ErrorCode::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(ErrorCode::from_wire(&s))
    }
}

/// The `error` of a failed response: `{code, message}` plus, for
/// `permission_denied`, the capability that was missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteError {
    /// What kind of failure; callers branch on this, never on `message`.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// For `permission_denied`: the capability's `snake_case` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
}

impl RemoteError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RemoteError {
            code,
            message: message.into(),
            capability: None,
        }
    }

    /// The `permission_denied` answer naming the missing capability.
    pub fn permission_denied(permission: crate::Permission, what: impl fmt::Display) -> Self {
        RemoteError {
            code: ErrorCode::PermissionDenied,
            message: format!("{what} requires the `{permission}` capability"),
            capability: Some(permission.as_str().to_owned()),
        }
    }

    /// The `method_not_found` answer.
    pub fn method_not_found(method: &str) -> Self {
        RemoteError::new(ErrorCode::MethodNotFound, format!("unknown method `{method}`"))
    }

    /// The `invalid_params` answer.
    pub fn invalid_params(method: &str, why: impl fmt::Display) -> Self {
        RemoteError::new(
            ErrorCode::InvalidParams,
            format!("invalid params for `{method}`: {why}"),
        )
    }
}
