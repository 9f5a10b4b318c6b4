//! The JSON-RPC error object, with Bitcoin Core's error codes.
//!
//! Clients written against Core match on the numeric code (for example
//! `-5` "block not found" vs `-8` "bad parameter"), so the constructors here
//! are named after Core's `RPCErrorCode` constants (`src/rpc/protocol.h`) and
//! the codes are exactly Core's.

use serde::{Deserialize, Serialize};

/// Core's numeric error codes (`RPCErrorCode` in `src/rpc/protocol.h`).
///
/// Only the codes this node produces are listed; a handler may use any other
/// `i32` through [`RpcError::new`].
pub mod codes {
    /// `RPC_INVALID_REQUEST`: the request object is not a valid JSON-RPC request.
    pub const INVALID_REQUEST: i32 = -32600;
    /// `RPC_METHOD_NOT_FOUND`: no such method.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// `RPC_INVALID_PARAMS`: the parameters do not fit the method.
    pub const INVALID_PARAMS: i32 = -32602;
    /// `RPC_INTERNAL_ERROR`: the server failed while handling the call.
    pub const INTERNAL_ERROR: i32 = -32603;
    /// `RPC_PARSE_ERROR`: the body is not valid JSON.
    pub const PARSE_ERROR: i32 = -32700;
    /// `RPC_MISC_ERROR`: `std::exception` thrown in command handling.
    pub const MISC_ERROR: i32 = -1;
    /// `RPC_TYPE_ERROR`: unexpected type was passed as parameter.
    pub const TYPE_ERROR: i32 = -3;
    /// `RPC_INVALID_ADDRESS_OR_KEY`: invalid address or key; also unknown block or transaction.
    pub const INVALID_ADDRESS_OR_KEY: i32 = -5;
    /// `RPC_INVALID_PARAMETER`: invalid, missing or duplicate parameter.
    pub const INVALID_PARAMETER: i32 = -8;
    /// `RPC_DESERIALIZATION_ERROR`: error parsing or validating a structure in raw format.
    pub const DESERIALIZATION_ERROR: i32 = -22;
    /// `RPC_VERIFY_ERROR`: general error during transaction or block submission.
    pub const VERIFY_ERROR: i32 = -25;
    /// `RPC_VERIFY_REJECTED`: transaction or block was rejected by network rules.
    pub const VERIFY_REJECTED: i32 = -26;
    /// `RPC_VERIFY_ALREADY_IN_CHAIN`: transaction already in chain.
    pub const VERIFY_ALREADY_IN_CHAIN: i32 = -27;
    /// `RPC_IN_WARMUP`: client still warming up.
    pub const IN_WARMUP: i32 = -28;
    /// This node's, in JSON-RPC's range for server errors: the module that
    /// serves the method is not running (it is restarting).
    pub const MODULE_NOT_RUNNING: i32 = -32001;
    /// This node's: the module that serves the method did not answer within
    /// its deadline (`[modules] rpc_timeout_ms`).
    pub const MODULE_TIMEOUT: i32 = -32002;
}

/// A JSON-RPC error object, `{"code":…,"message":…}` on the wire.
///
/// Field order is Core's (`code` then `message`), so a serialized error is
/// byte-identical to Core's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("rpc error {code}: {message}")]
pub struct RpcError {
    /// Core's numeric code; see [`codes`].
    pub code: i32,
    /// Human-readable message, sent to the client as is.
    pub message: String,
}

impl RpcError {
    /// Creates an error with any code.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// `RPC_PARSE_ERROR` (-32700): the body is not valid JSON.
    pub fn parse_error(message: impl Into<String>) -> Self {
        Self::new(codes::PARSE_ERROR, message)
    }

    /// `RPC_INVALID_REQUEST` (-32600): the request is not a valid JSON-RPC request.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_REQUEST, message)
    }

    /// `RPC_METHOD_NOT_FOUND` (-32601) with Core's message, `Method not found`.
    pub fn method_not_found() -> Self {
        Self::new(codes::METHOD_NOT_FOUND, "Method not found")
    }

    /// `RPC_INVALID_PARAMS` (-32602).
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMS, message)
    }

    /// `RPC_INTERNAL_ERROR` (-32603).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL_ERROR, message)
    }

    /// `RPC_MISC_ERROR` (-1): what Core answers for a generic failure, including
    /// a wrong number of parameters (with the method's help text as message).
    pub fn misc(message: impl Into<String>) -> Self {
        Self::new(codes::MISC_ERROR, message)
    }

    /// `RPC_TYPE_ERROR` (-3): a parameter has the wrong JSON type.
    pub fn type_error(message: impl Into<String>) -> Self {
        Self::new(codes::TYPE_ERROR, message)
    }

    /// `RPC_INVALID_ADDRESS_OR_KEY` (-5): also Core's code for an unknown block
    /// or transaction (`Block not found`, `No such mempool or blockchain transaction`).
    pub fn invalid_address_or_key(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_ADDRESS_OR_KEY, message)
    }

    /// `RPC_INVALID_PARAMETER` (-8): a parameter has the right type but a bad value.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMETER, message)
    }

    /// `RPC_DESERIALIZATION_ERROR` (-22): raw hex does not decode (`TX decode failed`).
    pub fn deserialization(message: impl Into<String>) -> Self {
        Self::new(codes::DESERIALIZATION_ERROR, message)
    }

    /// `RPC_VERIFY_ERROR` (-25): general error while submitting a transaction or block.
    pub fn verify_error(message: impl Into<String>) -> Self {
        Self::new(codes::VERIFY_ERROR, message)
    }

    /// `RPC_VERIFY_REJECTED` (-26): rejected by consensus or policy rules.
    pub fn verify_rejected(message: impl Into<String>) -> Self {
        Self::new(codes::VERIFY_REJECTED, message)
    }

    /// `RPC_VERIFY_ALREADY_IN_CHAIN` (-27): the transaction is already confirmed.
    pub fn verify_already_in_chain(message: impl Into<String>) -> Self {
        Self::new(codes::VERIFY_ALREADY_IN_CHAIN, message)
    }

    /// `RPC_IN_WARMUP` (-28): the node is still starting.
    pub fn in_warmup(message: impl Into<String>) -> Self {
        Self::new(codes::IN_WARMUP, message)
    }
}
