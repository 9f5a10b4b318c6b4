//! The module's errors.

use std::time::Duration;

/// Everything that can go wrong in the Template Provider.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection.
    #[error("the connection closed")]
    Closed,
    /// The Noise handshake did not complete in time.
    #[error("the Noise handshake did not complete within {0:?}")]
    HandshakeTimeout(Duration),
    /// The Noise layer or the SV2 codec refused something.
    #[error("noise/codec: {0}")]
    Codec(String),
    /// A frame longer than the limit.
    #[error("a frame of more than {limit} bytes")]
    FrameTooLarge {
        /// The limit, in bytes of payload.
        limit: usize,
    },
    /// A message did not decode.
    #[error("message 0x{msg_type:02x} does not decode: {why}")]
    Decode {
        /// Its type.
        msg_type: u8,
        /// Why.
        why: String,
    },
    /// A message could not be encoded (a value out of its SV2 type's range).
    #[error("cannot encode {what}: {why}")]
    Encode {
        /// Which message or field.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The node's template could not be used.
    #[error("template: {0}")]
    Template(String),
    /// A solution did not make a block.
    #[error("solution: {0}")]
    Solution(String),
    /// A call to the node failed.
    #[error("node: {0}")]
    Node(#[from] blvm_sdk::SdkError),
    /// A key that is not one.
    #[error("key: {0}")]
    Key(String),
    /// A configuration value that does not parse.
    #[error("config `{key}`: {why}")]
    Config {
        /// The key.
        key: &'static str,
        /// Why.
        why: String,
    },
}

impl From<codec_sv2::Error> for Error {
    fn from(e: codec_sv2::Error) -> Self {
        Error::Codec(format!("{e:?}"))
    }
}
