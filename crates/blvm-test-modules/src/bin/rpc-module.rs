//! A module that serves JSON-RPC methods through the SDK
//! (`register_rpc_endpoint`, `rpc_call`).
//!
//! With config `register` (method names separated by `,`) it registers
//! those at its first start, before it serves anything, and prints
//! `registered <name> <answer>` on stdout for each. After a restart (a file
//! `started` in its data dir says it ran before) it registers nothing by
//! itself: the test tells it when, so the window in which its methods are
//! dormant is the test's to observe.
//!
//! What a method does depends on how its name ends:
//!
//! - `…_echo`: answers `{"method": <name>, "params": <the params>}`;
//! - `…_fail`: answers the JSON-RPC error `-8` `"<name> refuses"`;
//! - `…_hang`: never answers (the invocation is kept, not dropped);
//! - anything else: answers `"ok"`.
//!
//! `module_call` methods (params and answers are text):
//!
//! - `register <name> [args]`: registers `<name>` with the argument summary
//!   `args`; answers `OK <endpoints> <max> <timeout_ms>` or `ERROR <code>
//!   <capability or -> <message>`;
//! - `unregister <name>`: answers `OK <removed>`;
//! - `crash`: exits with status 3 at once;
//! - `ping`: answers `PONG` after a node round trip.

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult, RpcCall, MODULE_CALL};
use blvm_sdk::protocol::RemoteError;
use blvm_sdk::{Invocation, ModuleIntegration, NodeApiIpc, SdkError};
use blvm_test_modules::error_line as error;

async fn register(api: &NodeApiIpc, params: &str) -> String {
    let (name, args) = params.split_once(' ').unwrap_or((params, ""));
    let help = format!("Answers as the test module's `{name}` does.\n\nResult:\n\"str\"    (string) what it answers");
    match api.register_rpc_endpoint(name, args, &help).await {
        Ok(r) => format!("OK {} {} {}", r.endpoints, r.max_endpoints, r.timeout_ms),
        Err(e) => error(e),
    }
}

/// Answers one `rpc_call`; returns it when it is to stay unanswered.
fn serve_rpc(inv: Invocation, call: RpcCall) -> Result<Option<Invocation>, SdkError> {
    let m = call.method.as_str();
    if m.ends_with("_echo") {
        // Both are JSON already: the method name follows the name rule.
        inv.respond_json(format!(r#"{{"method":"{m}","params":{}}}"#, call.params_json))?;
    } else if m.ends_with("_fail") {
        inv.respond_rpc_error(-8, format!("{m} refuses"))?;
    } else if m.ends_with("_hang") {
        return Ok(Some(inv));
    } else {
        inv.respond_json(r#""ok""#)?;
    }
    Ok(None)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let integration = ModuleIntegration::from_env().await?;
    let mut invocations = integration.invocation_receiver()?;
    let api = integration.node_api();
    let marker = std::path::PathBuf::from(std::env::var("BLVM_MODULE_DATA_DIR").unwrap_or_default()).join("started");
    let restarted = marker.exists();
    if !restarted {
        let _ = std::fs::write(&marker, b"1");
        if let Some(names) = integration.welcome().config.get("register") {
            for name in names.split(',').filter(|n| !n.is_empty()) {
                println!("registered {name} {}", register(&api, name).await);
            }
        }
    }
    let mut hanging = Vec::new();
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => return Ok(()),
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                if let Some(call) = inv.rpc_call() {
                    hanging.extend(serve_rpc(inv, call?)?);
                    continue;
                }
                if inv.method() != MODULE_CALL {
                    let method = inv.method().to_owned();
                    inv.reject(RemoteError::method_not_found(&method));
                    continue;
                }
                let call: ModuleCall = inv.params()?;
                let params = String::from_utf8_lossy(&call.params).into_owned();
                let answer = match call.method.as_str() {
                    "register" => register(&api, &params).await,
                    "unregister" => match api.unregister_rpc_endpoint(&params).await {
                        Ok(removed) => format!("OK {removed}"),
                        Err(e) => error(e),
                    },
                    "crash" => std::process::exit(3),
                    "ping" => match api.ping().await {
                        Ok(()) => "PONG".to_owned(),
                        Err(e) => error(e),
                    },
                    other => {
                        inv.reject(RemoteError::method_not_found(other));
                        continue;
                    }
                };
                inv.respond(&ModuleCallResult { result: answer.into_bytes() })?;
            }
        }
    }
}
