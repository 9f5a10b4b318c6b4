//! Node→module invocations: requests the node sends to a module.
//!
//! They use the same `request`/`response` frames as module→node requests,
//! with their own correlation ids (each side numbers its own requests). A
//! module that does not know an invocation method answers
//! `method_not_found`. [`HEALTH_CHECK`] relies on exactly that: a module
//! answers it, one way or the other, as long as it reads its socket.

use serde::{Deserialize, Serialize};

use crate::hash::bytes_field;

/// Wire name of a JSON-RPC call to an endpoint the module registered.
pub const RPC_CALL: &str = "rpc_call";
/// Wire name of a call from another module to this module's API.
pub const MODULE_CALL: &str = "module_call";
/// Wire name of a timer the module scheduled firing.
pub const TIMER_FIRED: &str = "timer_fired";
/// Wire name of the node's liveness check of a running module, sent every
/// few seconds with params [`crate::Empty`] and answered with `{}`. *Any*
/// answer within the node's deadline shows the module alive, an error
/// included: a v1 module that does not know this method answers
/// `method_not_found`, as it must for every unknown invocation. No answer
/// in time, and the node kills and restarts the module as a crash.
pub const HEALTH_CHECK: &str = "health_check";

/// Params of `rpc_call`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcCall {
    /// The JSON-RPC method name.
    pub method: String,
    /// The JSON-RPC params as JSON text (kept as text so the module decodes
    /// it with its own JSON library).
    pub params_json: String,
}

/// Result of `rpc_call`: the JSON-RPC `result`, or the JSON-RPC `error` the
/// module chose.
///
/// A module that fails a call in its own terms answers `error` (a code and a
/// message of its choosing, sent to the JSON-RPC client as they are); an
/// error *response* to `rpc_call` is the module failing, and the node turns
/// it into a JSON-RPC error itself (`docs/ipc-protocol.md`, RPC endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcCallResult {
    /// The JSON result as JSON text; ignored when `error` is set.
    #[serde(default)]
    pub result_json: String,
    /// The JSON-RPC error to answer instead of a result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcCallError>,
}

/// A JSON-RPC error object a module answers an `rpc_call` with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcCallError {
    /// The JSON-RPC error code (Core's codes: `-8` invalid parameter, `-5`
    /// not found, …).
    pub code: i32,
    /// The message the client sees.
    pub message: String,
}

/// Params of `module_call`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleCall {
    /// Name of the calling module (set by the node, never by the caller).
    pub caller: String,
    /// The API method.
    pub method: String,
    /// Opaque params, as the API defines them.
    #[serde(with = "bytes_field")]
    pub params: Vec<u8>,
}

/// Result of `module_call`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleCallResult {
    /// Opaque result bytes.
    #[serde(with = "bytes_field")]
    pub result: Vec<u8>,
}

/// Params of `timer_fired` (the module answers [`crate::Empty`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerFired {
    /// The timer's id, as `timer_schedule` answered it.
    pub timer_id: u64,
    /// Unix time in milliseconds when it fired.
    pub fired_at_ms: u64,
    /// Which fire of the timer this is, from 1 (a repeating timer counts
    /// up; a one-shot timer fires only 1). Absent from an older node: 0.
    #[serde(default)]
    pub fire: u64,
    /// A height timer's: the active chain's height when it fired (at
    /// least the timer's height); `nil` for the others.
    #[serde(default)]
    pub height: Option<u64>,
}
