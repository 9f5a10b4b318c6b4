//! Mempool methods: `sendrawtransaction`, `testmempoolaccept`,
//! `getrawmempool`, `getmempoolinfo`, `getmempoolentry`,
//! `estimatesmartfee`.

use std::sync::Arc;

use bitcoin::consensus::deserialize;
use bitcoin::Transaction;
use serde_json::{json, Map, Value};

use super::json::{btc, from_hex, txid};
use super::Method;
use crate::mempool::{Entry, MempoolError, RejectKind};
use crate::node::Node;
use crate::rpc::{Params, RpcError};

pub(super) const METHODS: &[(&str, &str, Method)] = &[
    ("sendrawtransaction", "sendrawtransaction \"hexstring\"\nSubmit a raw transaction (serialized, hex-encoded) to the mempool.", sendrawtransaction),
    ("testmempoolaccept", "testmempoolaccept [\"rawtx\",...]\nReturns result of mempool acceptance tests indicating if raw transactions would be accepted.", testmempoolaccept),
    ("getrawmempool", "getrawmempool ( verbose )\nReturns all transaction ids in the memory pool.", getrawmempool),
    ("getmempoolinfo", "getmempoolinfo\nReturns details on the active state of the TX memory pool.", getmempoolinfo),
    ("getmempoolentry", "getmempoolentry \"txid\"\nReturns mempool data for given transaction.", getmempoolentry),
    ("estimatesmartfee", "estimatesmartfee conf_target\nEstimates the fee per kilobyte needed for a transaction to begin confirmation within conf_target blocks, from fee rates observed confirming.", estimatesmartfee),
];

fn decode_tx(hex: &str) -> Result<Transaction, RpcError> {
    let bytes = from_hex(hex, "TX")?;
    deserialize(&bytes)
        .map_err(|_| RpcError::deserialization("TX decode failed. Make sure the tx has at least one input."))
}

fn mempool_error(e: &MempoolError) -> RpcError {
    RpcError::new(e.code(), e.to_string())
}

fn sendrawtransaction(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let tx = decode_tx(&p.required::<String>(0, "hexstring")?)?;
    let id = tx.compute_txid();
    match node.accept_transaction(tx) {
        Ok(a) => Ok(json!(a.txid.to_string())),
        // Core answers the txid when the transaction is already known.
        Err(e) if e.kind() == RejectKind::AlreadyInMempool => Ok(json!(id.to_string())),
        Err(e) => Err(mempool_error(&e)),
    }
}

fn testmempoolaccept(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let raws: Vec<String> = p.required(0, "rawtxs")?;
    if raws.is_empty() || raws.len() > 25 {
        return Err(RpcError::invalid_parameter(
            "Array must contain between 1 and 25 transactions.",
        ));
    }
    let mut out = Vec::new();
    for raw in raws {
        let tx = decode_tx(&raw)?;
        let mut v = json!({"txid": tx.compute_txid().to_string(), "wtxid": tx.compute_wtxid().to_string()});
        match node.mempool.test_accept(&tx, &*node.chain) {
            Ok(a) => {
                v["allowed"] = json!(true);
                v["vsize"] = json!(a.vsize);
                v["fees"] = json!({"base": btc(a.fee)});
            }
            Err(e) => {
                v["allowed"] = json!(false);
                v["reject-reason"] = json!(e.reason());
            }
        }
        out.push(v);
    }
    Ok(json!(out))
}

fn entry_json(e: &Entry) -> Value {
    json!({
        "vsize": e.vsize,
        "weight": e.weight,
        "time": e.time,
        "height": e.height,
        "descendantcount": e.descendants.count,
        "descendantsize": e.descendants.vsize,
        "ancestorcount": e.ancestors.count,
        "ancestorsize": e.ancestors.vsize,
        "wtxid": e.wtxid.to_string(),
        "fees": {
            "base": btc(e.fee),
            "modified": btc(e.fee),
            "ancestor": btc(e.ancestors.fees),
            "descendant": btc(e.descendants.fees),
        },
        "depends": e.parents.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "spentby": e.children.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "bip125-replaceable": false,
        "unbroadcast": false,
    })
}

fn getrawmempool(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    if p.get::<bool>(0, "verbose")?.unwrap_or(false) {
        let mut map = Map::new();
        for e in node.mempool.entries() {
            map.insert(e.txid.to_string(), entry_json(&e));
        }
        return Ok(Value::Object(map));
    }
    Ok(json!(node
        .mempool
        .txids()
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()))
}

/// A fee rate in sat/vB as Core's BTC/kvB.
fn btc_per_kvb(sat_per_vb: f64) -> f64 {
    sat_per_vb * 1000.0 / 1e8
}

fn getmempoolinfo(node: &Arc<Node>, _: &Params) -> Result<Value, RpcError> {
    let info = node.mempool.info();
    Ok(json!({
        "loaded": true,
        "size": info.size,
        "bytes": info.bytes,
        "usage": info.usage,
        "total_fee": btc(info.total_fee),
        "maxmempool": 300_000_000u64,
        "mempoolminfee": btc_per_kvb(info.min_fee_rate),
        "minrelaytxfee": btc_per_kvb(info.min_relay_fee_rate),
        "incrementalrelayfee": btc_per_kvb(1.0),
        "unbroadcastcount": 0,
        "fullrbf": false,
    }))
}

fn getmempoolentry(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let id = txid(&p.required::<String>(0, "txid")?)?;
    node.mempool
        .get(&id)
        .map(|e| entry_json(&e))
        .ok_or_else(|| RpcError::invalid_address_or_key("Transaction not in mempool"))
}

fn estimatesmartfee(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let target: i64 = p.required(0, "conf_target")?;
    if !(1..=1008).contains(&target) {
        return Err(RpcError::invalid_parameter(
            "Invalid conf_target, must be between 1 and 1008",
        ));
    }
    let blocks = target.max(2);
    Ok(match node.mempool.estimate_fee(target as u32) {
        Some(rate) => {
            // Core never estimates below the relay minimum.
            let floor = node.mempool.info().min_relay_fee_rate;
            json!({"feerate": btc_per_kvb(rate.max(floor)), "blocks": blocks})
        }
        None => json!({"errors": ["Insufficient data or no feerate found"], "blocks": blocks}),
    })
}
