//! A JSON-RPC request body as the node's RPC server receives it: single
//! or batch, 1.0 or 2.0, params by position or by name. Processing never
//! panics and always answers with JSON (or nothing, for a notification).
#![no_main]

use blvm_node::rpc::handler::RpcHandler;
use blvm_node::rpc::{Params, RpcError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Answers `echo` with its params and every other method as unknown.
struct Echo;

impl RpcHandler for Echo {
    fn call(&self, method: &str, params: Params) -> Result<Value, RpcError> {
        match method {
            "echo" => {
                let first: Option<Value> = params.get(0, "value")?;
                Ok(first.unwrap_or(Value::Null))
            }
            _ => Err(RpcError::method_not_found()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let reply = blvm_node::rpc::protocol::process(data, &Echo);
    if let Some(body) = reply.body {
        serde_json::from_str::<Value>(&body).expect("the reply is JSON");
    }
});
