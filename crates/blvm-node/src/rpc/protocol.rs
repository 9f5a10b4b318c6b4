//! The JSON-RPC layer without I/O: request body in, HTTP status and reply
//! body out, following Bitcoin Core v28's `HTTPReq_JSONRPC`
//! (`src/httprpc.cpp`) and `JSONRPCRequest::parse` (`src/rpc/request.cpp`).
//!
//! Being free of sockets, it is tested and fuzzed on bytes alone; the
//! server only adds HTTP, authentication and the blocking pool.
//!
//! # Versions
//!
//! A request is JSON-RPC 2.0 if it has `"jsonrpc":"2.0"`; otherwise
//! (`"1.0"`, `"1.1"` is refused, absent) it is Core's "legacy" 1.0.
//!
//! | | 1.0 (legacy) | 2.0 |
//! |---|---|---|
//! | reply members | `result`, `error` (one is `null`), `id` | `jsonrpc`, `result` *or* `error`, `id` |
//! | single request fails in the method | HTTP 500, or 404 for -32601 | HTTP 200 |
//! | no `id` | answered (without `id`) | notification: run, not answered |
//!
//! Errors found before the method runs (bad request object) get Core's HTTP
//! statuses in both versions: 400 for -32600, 404 for -32601, 500 otherwise.
//! A batch is always HTTP 200 with one entry per non-notification, in request
//! order, or 204 if every entry was a notification. A single notification is
//! answered 204 with no body.
//!
//! # Deliberate differences from Core
//!
//! - An **empty batch** `[]` is refused with -32600 (HTTP 400), as JSON-RPC 2.0
//!   requires; Core v28 answers `[]` with HTTP 200 to keep old clients working.
//! - A **panicking method** is answered with -32603; Core has no equivalent.
//! - Objects in results are serialized with sorted keys (serde_json's map),
//!   where Core keeps insertion order; the reply envelope is in Core's order.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::error::{codes, RpcError};
use super::handler::RpcHandler;
use super::params::Params;

/// What to send back over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// `application/json` body (Core ends it with `\n`), or `None` for 204.
    pub body: Option<String>,
}

/// The JSON-RPC version of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// No `jsonrpc` member, or `"1.0"`: Core's legacy behaviour.
    V1Legacy,
    /// `"jsonrpc":"2.0"`.
    V2,
}

/// What a reply needs from its request: the `id` (absent ≠ `null`) and the
/// version. Filled in as parsing proceeds, so an error found after the `id`
/// was read carries it, as in Core.
#[derive(Debug, Clone)]
struct ReplyTo {
    id: Option<Value>,
    version: Version,
}

impl Default for ReplyTo {
    fn default() -> Self {
        // Core's `JSONRPCRequest::id` defaults to a present `null`.
        ReplyTo {
            id: Some(Value::Null),
            version: Version::V1Legacy,
        }
    }
}

impl ReplyTo {
    fn is_notification(&self) -> bool {
        self.id.is_none() && self.version == Version::V2
    }
}

/// One reply object, serialized with Core's member order.
struct Reply {
    to: ReplyTo,
    outcome: Result<Value, RpcError>,
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.to.version == Version::V2 {
            map.serialize_entry("jsonrpc", "2.0")?;
        }
        match (&self.outcome, self.to.version) {
            (Ok(result), Version::V1Legacy) => {
                map.serialize_entry("result", result)?;
                map.serialize_entry("error", &Value::Null)?;
            }
            (Err(error), Version::V1Legacy) => {
                map.serialize_entry("result", &Value::Null)?;
                map.serialize_entry("error", error)?;
            }
            (Ok(result), Version::V2) => map.serialize_entry("result", result)?,
            (Err(error), Version::V2) => map.serialize_entry("error", error)?,
        }
        if let Some(id) = &self.to.id {
            map.serialize_entry("id", id)?;
        }
        map.end()
    }
}

/// Handles one HTTP request body: parses it, runs the calls on `handler` in
/// order, and builds the reply.
pub fn process(body: &[u8], handler: &dyn RpcHandler) -> HttpReply {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return error_reply(RpcError::parse_error("Parse error"), ReplyTo::default()),
    };
    match request {
        Value::Object(_) => process_single(&request, handler),
        Value::Array(entries) => process_batch(&entries, handler),
        _ => error_reply(
            RpcError::parse_error("Top-level object parse error"),
            ReplyTo::default(),
        ),
    }
}

fn process_single(request: &Value, handler: &dyn RpcHandler) -> HttpReply {
    let mut to = ReplyTo::default();
    let (method, params) = match parse_request(request, &mut to) {
        Ok(parsed) => parsed,
        Err(error) => return error_reply(error, to),
    };
    let outcome = execute(handler, &method, params);
    if to.is_notification() {
        // Run, but never answered (Core: HTTP 204).
        return HttpReply {
            status: 204,
            body: None,
        };
    }
    match outcome {
        // 1.0: a failed call is an HTTP error too. 2.0 (Core v28+): HTTP 200,
        // the error is only in the body.
        Err(error) if to.version == Version::V1Legacy => error_reply(error, to),
        outcome => ok_reply(&Reply { to, outcome }),
    }
}

fn process_batch(entries: &[Value], handler: &dyn RpcHandler) -> HttpReply {
    if entries.is_empty() {
        return error_reply(
            RpcError::invalid_request("Invalid Request: empty batch"),
            ReplyTo::default(),
        );
    }
    let mut replies = Vec::with_capacity(entries.len());
    for entry in entries {
        // Batches never produce HTTP errors: every failure is an entry.
        let mut to = ReplyTo::default();
        let outcome = parse_request(entry, &mut to).and_then(|(method, params)| execute(handler, &method, params));
        if !to.is_notification() {
            replies.push(Reply { to, outcome });
        }
    }
    if replies.is_empty() {
        return HttpReply {
            status: 204,
            body: None,
        };
    }
    ok_reply(&replies)
}

/// Core's `JSONRPCRequest::parse`, with its messages, in its order.
fn parse_request(request: &Value, to: &mut ReplyTo) -> Result<(String, Params), RpcError> {
    let Value::Object(request) = request else {
        return Err(RpcError::invalid_request("Invalid Request object"));
    };
    to.id = request.get("id").cloned();
    match request.get("jsonrpc") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if v == "1.0" => to.version = Version::V1Legacy,
        Some(Value::String(v)) if v == "2.0" => to.version = Version::V2,
        Some(Value::String(_)) => return Err(RpcError::invalid_request("JSON-RPC version not supported")),
        Some(_) => return Err(RpcError::invalid_request("jsonrpc field must be a string")),
    }
    let method = match request.get("method") {
        None | Some(Value::Null) => return Err(RpcError::invalid_request("Missing method")),
        Some(Value::String(method)) => method.clone(),
        Some(_) => return Err(RpcError::invalid_request("Method must be a string")),
    };
    let params = match request.get("params") {
        None | Some(Value::Null) => Params::default(),
        Some(Value::Array(values)) => Params::Positional(values.clone()),
        Some(Value::Object(map)) => Params::Named(map.clone()),
        Some(_) => return Err(RpcError::invalid_request("Params must be an array or object")),
    };
    Ok((method, params))
}

fn execute(handler: &dyn RpcHandler, method: &str, params: Params) -> Result<Value, RpcError> {
    tracing::debug!(method, "rpc call");
    // A panic in one method must not take down the batch or the connection;
    // the handler's state is only read through `&self`, and methods that
    // mutate use their own locks, which record poisoning.
    match catch_unwind(AssertUnwindSafe(|| handler.call(method, params))) {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!(method, "rpc method panicked");
            Err(RpcError::internal(format!("internal error in method {method}")))
        }
    }
}

/// Core's `JSONErrorReply`: the HTTP status follows the error code.
fn error_reply(error: RpcError, to: ReplyTo) -> HttpReply {
    let status = match error.code {
        codes::INVALID_REQUEST => 400,
        codes::METHOD_NOT_FOUND => 404,
        _ => 500,
    };
    HttpReply {
        status,
        body: Some(to_body(&Reply {
            to,
            outcome: Err(error),
        })),
    }
}

fn ok_reply<T: Serialize + ?Sized>(reply: &T) -> HttpReply {
    HttpReply {
        status: 200,
        body: Some(to_body(reply)),
    }
}

fn to_body<T: Serialize + ?Sized>(reply: &T) -> String {
    // Serializing `Value`s and strings into a `String` cannot fail: map keys
    // are strings and no float is NaN (serde_json's `Value` cannot hold one).
    let mut body = serde_json::to_string(reply).expect("reply holds only JSON values");
    body.push('\n');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl RpcHandler for Fixed {
        fn call(&self, method: &str, _params: Params) -> Result<Value, RpcError> {
            match method {
                "getblockcount" => Ok(Value::from(438)),
                "panic" => panic!("deliberate"),
                _ => Err(RpcError::method_not_found()),
            }
        }
    }

    fn run(body: &str) -> (u16, String) {
        let reply = process(body.as_bytes(), &Fixed);
        (reply.status, reply.body.unwrap_or_default())
    }

    #[test]
    fn v1_without_id_is_answered_without_id() {
        assert_eq!(
            run(r#"{"method":"getblockcount"}"#),
            (200, "{\"result\":438,\"error\":null}\n".into())
        );
    }

    #[test]
    fn v2_request_errors_before_execution_keep_http_status() {
        let (status, body) = run(r#"{"jsonrpc":"2.0","id":3}"#);
        assert_eq!(status, 400);
        assert_eq!(
            body,
            "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Missing method\"},\"id\":3}\n"
        );
    }

    #[test]
    fn unsupported_version_is_refused() {
        let (status, body) = run(r#"{"jsonrpc":"1.1","id":3,"method":"getblockcount"}"#);
        assert_eq!(status, 400);
        assert!(body.contains("JSON-RPC version not supported"), "{body}");
    }

    #[test]
    fn panicking_method_is_an_internal_error() {
        let (status, body) = run(r#"{"jsonrpc":"2.0","id":1,"method":"panic"}"#);
        assert_eq!(status, 200);
        assert!(body.contains("-32603"), "{body}");
    }

    #[test]
    fn bad_params_type_is_invalid_request() {
        let (status, body) = run(r#"{"id":1,"method":"getblockcount","params":5}"#);
        assert_eq!(status, 400);
        assert_eq!(
            body,
            "{\"result\":null,\"error\":{\"code\":-32600,\"message\":\"Params must be an array or object\"},\"id\":1}\n"
        );
    }
}
