//! JSON-RPC endpoints: a module adds methods to the node's JSON-RPC server
//! (`register_rpc_endpoint`) and takes them away again
//! (`unregister_rpc_endpoint`). Calls reach the module as the `rpc_call`
//! invocation ([`super::invocation::RpcCall`]).
//!
//! # Names
//!
//! A method name is 1 to [`MAX_METHOD_LEN`] characters, a lowercase ASCII
//! letter followed by lowercase letters, digits and `_` (Bitcoin Core's own
//! style: `getblockcount`, `blockstats_summary`). Prefix the names with the
//! module's (`blockstats_…`) so they never meet another module's. A name the
//! node serves itself, or another module registered first, is refused with
//! `already_registered`; nothing is shadowed.

use serde::{Deserialize, Serialize};

/// The longest method name.
pub const MAX_METHOD_LEN: usize = 64;
/// The longest help text, in bytes.
pub const MAX_HELP_LEN: usize = 8192;
/// The longest argument summary, in bytes.
pub const MAX_ARGS_LEN: usize = 512;

/// Whether `name` follows the rule of the module docs.
pub fn is_valid_method_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_METHOD_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Params of `register_rpc_endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRpcEndpoint {
    /// The JSON-RPC method name (see the module docs for the rule).
    pub method: String,
    /// The argument summary of the usage line, as Core writes it:
    /// `"blockhash" ( verbosity )`; empty for none.
    #[serde(default)]
    pub args: String,
    /// What `help <method>` shows below the usage line: what the method does,
    /// its arguments and its result.
    #[serde(default)]
    pub help: String,
}

/// Result of `register_rpc_endpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRpcEndpointResult {
    /// How many endpoints the module has now.
    pub endpoints: u32,
    /// How many it may have (the operator's cap).
    pub max_endpoints: u32,
    /// How long the node waits for each `rpc_call` answer, in ms.
    pub timeout_ms: u64,
}

/// Params of `unregister_rpc_endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterRpcEndpoint {
    /// The method name.
    pub method: String,
}

/// Result of `unregister_rpc_endpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterRpcEndpointResult {
    /// Whether the module had registered it (false: nothing changed).
    pub removed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_rule() {
        for ok in ["a", "blockstats_summary", "x2", &"a".repeat(MAX_METHOD_LEN)] {
            assert!(is_valid_method_name(ok), "{ok}");
        }
        for bad in [
            "",
            "_a",
            "1a",
            "Get",
            "a-b",
            "a b",
            "a.b",
            "é",
            &"a".repeat(MAX_METHOD_LEN + 1),
        ] {
            assert!(!is_valid_method_name(bad), "{bad}");
        }
    }
}
