//! The SDK's error type.

use blvm_module_protocol::{DecodeError, EncodeError, RemoteError};

/// Why an SDK call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The node refused the handshake.
    #[error("handshake refused ({code}): {reason}")]
    Refused {
        /// The refusal code (`bad_token`, `pid_mismatch`, …).
        code: String,
        /// The node's reason.
        reason: String,
    },
    /// The node answered the request with an error.
    #[error("node error: {0}")]
    Remote(#[from] RemoteError),
    /// A frame or result could not be decoded.
    #[error("decode error: {0}")]
    Decode(#[from] DecodeError),
    /// A request could not be encoded.
    #[error("{0}")]
    Encode(#[from] EncodeError),
    /// The connection to the node is gone.
    #[error("connection to the node closed")]
    ConnectionClosed,
    /// A variable the node sets for the module is missing or invalid.
    #[error("environment variable {0} is missing or not valid UTF-8")]
    MissingEnv(&'static str),
    /// The receiver was already taken.
    #[error("the {0} receiver was already taken")]
    AlreadyTaken(&'static str),
}

impl SdkError {
    /// The remote error, if the node answered with one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            SdkError::Remote(e) => Some(e),
            _ => None,
        }
    }
}
