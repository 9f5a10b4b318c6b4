//! Modules' JSON-RPC methods on the node's server: the node's side of the
//! host's RPC endpoint service (`register_rpc_endpoint`).
//!
//! [`serve_module_endpoints`] installs a [`RpcEndpointSink`] that adds each
//! endpoint to the [`MethodTable`] like a built-in method (so it shows in
//! `help`), and a fallback that answers calls of a restarting module's
//! methods. A call runs on the server's blocking pool and waits there for
//! the module's answer, never longer than the module's deadline.
//!
//! # How an answer becomes a JSON-RPC reply
//!
//! | the module / the node | JSON-RPC |
//! |---|---|
//! | `result_json` | the `result` |
//! | `error` {`code`, `message`} (the module's choice) | that code and message, as they are |
//! | an error response `invalid_params` | -32602, the module's message |
//! | an error response `method_not_found` (it does not serve `rpc_call`) | -32601 |
//! | another error response, or a result that is not JSON | -32603, naming the module |
//! | the module is restarting (its connection ended), or has restarted and not registered the method again | -32001 |
//! | no answer within the deadline | -32002 |

use std::sync::{Arc, Weak};

use blvm_module_host::services::rpc_endpoints::{Endpoint, EndpointError, RpcEndpointService, RpcEndpointSink};
use blvm_module_protocol::ErrorCode;
use serde_json::Value;

use super::Node;
use crate::rpc::error::codes;
use crate::rpc::{MethodTable, MethodTableError, Params, RpcError};

/// Serves the modules' endpoints on `table`, now and as they come and go.
pub fn serve_module_endpoints(node: &Node, table: &Arc<MethodTable>) {
    let service = node.manager.rpc_endpoints();
    let weak = Arc::downgrade(service);
    table.set_fallback(move |method| weak.upgrade()?.dormant(method).map(|e| rpc_error(&e)));
    service.set_sink(Arc::new(TableSink {
        table: Arc::downgrade(table),
        service: Arc::downgrade(service),
    }));
}

/// The node's [`MethodTable`] as the service sees it. Weak both ways: the
/// table's methods point back at the service, which holds this sink.
struct TableSink {
    table: Weak<MethodTable>,
    service: Weak<RpcEndpointService>,
}

impl RpcEndpointSink for TableSink {
    fn add(&self, endpoint: &Endpoint) -> Result<(), String> {
        let table = self.table.upgrade().ok_or("the JSON-RPC server has stopped")?;
        let service = self.service.clone();
        let method = endpoint.method.clone();
        let serve = move |params: Params| {
            let service = service
                .upgrade()
                .ok_or_else(|| RpcError::internal("the module host has stopped"))?;
            call(&service, &method, params)
        };
        table
            .register(&endpoint.method, &endpoint.help, serve)
            .map_err(|e| match e {
                MethodTableError::AlreadyRegistered { name } => {
                    format!("`{name}` is a method of the node; a module cannot replace it")
                }
                other => other.to_string(),
            })
    }

    fn remove(&self, method: &str) {
        if let Some(table) = self.table.upgrade() {
            table.unregister(method);
        }
    }
}

fn call(service: &RpcEndpointService, method: &str, params: Params) -> Result<Value, RpcError> {
    let json = match params {
        Params::Positional(values) => serde_json::to_string(&values),
        Params::Named(map) => serde_json::to_string(&map),
    }
    .map_err(|e| RpcError::internal(e.to_string()))?;
    let text = service.call(method, json).map_err(|e| rpc_error(&e))?;
    serde_json::from_str(&text).map_err(|e| {
        RpcError::internal(format!(
            "the module serving `{method}` answered with a result that is not JSON: {e}"
        ))
    })
}

/// The JSON-RPC error of a failed module call (the table in the module
/// docs).
fn rpc_error(e: &EndpointError) -> RpcError {
    match e {
        EndpointError::NotFound { .. } => RpcError::method_not_found(),
        EndpointError::NotRunning { .. } | EndpointError::NotRegisteredAgain { .. } => {
            RpcError::new(codes::MODULE_NOT_RUNNING, e.to_string())
        }
        EndpointError::Timeout { .. } => RpcError::new(codes::MODULE_TIMEOUT, e.to_string()),
        EndpointError::Rpc { code, message } => RpcError::new(*code, message.clone()),
        EndpointError::Failed { error, .. } if error.code == ErrorCode::InvalidParams => {
            RpcError::invalid_params(error.message.clone())
        }
        EndpointError::Failed { error, .. } if error.code == ErrorCode::MethodNotFound => {
            RpcError::new(codes::METHOD_NOT_FOUND, e.to_string())
        }
        EndpointError::Failed { .. } | EndpointError::BadAnswer { .. } => RpcError::internal(e.to_string()),
    }
}
