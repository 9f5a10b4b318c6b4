//! Network methods: `getnetworkinfo`, `getpeerinfo`. This node has no P2P
//! layer yet, so it reports no peers and no connections — never invented
//! ones.

use std::sync::Arc;

use serde_json::{json, Value};

use super::Method;
use crate::node::Node;
use crate::rpc::{Params, RpcError};

pub(super) const METHODS: &[(&str, &str, Method)] = &[
    (
        "getnetworkinfo",
        "getnetworkinfo\nReturns an object containing various state info regarding P2P networking.",
        getnetworkinfo,
    ),
    (
        "getpeerinfo",
        "getpeerinfo\nReturns data about each connected network peer (none: this node has no P2P layer yet).",
        getpeerinfo,
    ),
];

fn getnetworkinfo(node: &Arc<Node>, _: &Params) -> Result<Value, RpcError> {
    let relay = node.mempool.info().min_relay_fee_rate * 1000.0 / 1e8;
    Ok(json!({
        "version": 10000,
        "subversion": format!("/blvm-node:{}/", env!("CARGO_PKG_VERSION")),
        "protocolversion": 70016,
        "localservices": "0000000000000000",
        "localservicesnames": [],
        "localrelay": true,
        "timeoffset": 0,
        "networkactive": false,
        "connections": 0,
        "connections_in": 0,
        "connections_out": 0,
        "networks": [],
        "relayfee": relay,
        "incrementalfee": relay,
        "localaddresses": [],
        "warnings": node.disk_warnings(),
    }))
}

fn getpeerinfo(_: &Arc<Node>, _: &Params) -> Result<Value, RpcError> {
    Ok(json!([]))
}
