//! The node's JSON-RPC methods, with Bitcoin Core's names, parameters,
//! result shapes and error codes; one file per family.

mod blockchain;
mod endpoints;
mod import;
mod json;
mod mempool;
mod mining;
mod modules;
mod network;
mod registry;

use std::sync::Arc;

use serde_json::Value;

use super::Node;
use crate::rpc::{MethodTable, Params, RpcError};
pub use endpoints::serve_module_endpoints;

/// A method body: the node and the params in, JSON out.
type Method = fn(&Arc<Node>, &Params) -> Result<Value, RpcError>;

/// Registers every node method on `table`.
pub fn register_methods(table: &MethodTable, node: &Arc<Node>) {
    let families: [&[(&str, &str, Method)]; 7] = [
        blockchain::METHODS,
        import::METHODS,
        mempool::METHODS,
        mining::METHODS,
        network::METHODS,
        modules::METHODS,
        registry::METHODS,
    ];
    for family in families {
        for (name, help, method) in family.iter().copied() {
            let node = Arc::clone(node);
            if let Err(e) = table.register(name, help, move |params| method(&node, &params)) {
                tracing::error!("cannot register RPC method `{name}`: {e}");
            }
        }
    }
}
