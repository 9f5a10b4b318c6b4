//! Chain methods: `getblockchaininfo`, `getblockcount`, `getbestblockhash`,
//! `getblockhash`, `getblock`, `getblockheader`, `getrawtransaction`,
//! `gettxout`, `invalidateblock`, `reconsiderblock`, `uptime`, `stop`.

use std::sync::Arc;

use bitcoin::consensus::encode::serialize_hex;
use serde_json::{json, Value};

use super::json::{block_hash, block_json, btc, header_json, hex, script_json, tx_json, txid};
use super::Method;
use crate::config::core_name;
use crate::node::Node;
use crate::rpc::{Params, RpcError};

pub(super) const METHODS: &[(&str, &str, Method)] = &[
    ("getblockchaininfo", "getblockchaininfo\nReturns an object containing various state info regarding blockchain processing.", getblockchaininfo),
    ("getblockcount", "getblockcount\nReturns the height of the most-work fully-validated chain.", getblockcount),
    ("getbestblockhash", "getbestblockhash\nReturns the hash of the best (tip) block in the most-work fully-validated chain.", getbestblockhash),
    ("getblockhash", "getblockhash height\nReturns hash of block in best-block-chain at height provided.", getblockhash),
    ("getblock", "getblock \"blockhash\" ( verbosity )\nIf verbosity is 0, returns hex-encoded data for the block; 1 an object; 2 an object with transaction details.", getblock),
    ("getblockheader", "getblockheader \"blockhash\" ( verbose )\nIf verbose is false, returns hex-encoded data for the header, else an object.", getblockheader),
    ("getrawtransaction", "getrawtransaction \"txid\" ( verbosity )\nReturns the raw transaction data from the mempool or the transaction index (the transaction index covers every block, so no blockhash is needed).", getrawtransaction),
    ("gettxout", "gettxout \"txid\" n ( include_mempool )\nReturns details about an unspent transaction output.", gettxout),
    ("invalidateblock", "invalidateblock \"blockhash\"\nPermanently marks a block as invalid, as if it violated a consensus rule.", invalidateblock),
    ("reconsiderblock", "reconsiderblock \"blockhash\"\nRemoves invalidity status of a block, its ancestors and its descendants.", reconsiderblock),
    ("uptime", "uptime\nReturns the total uptime of the server in seconds.", uptime),
    ("stop", "stop\nRequest a graceful shutdown of blvm-node.", stop),
];

fn getblockchaininfo(node: &Arc<Node>, _: &Params) -> Result<Value, RpcError> {
    let tip = node.chain.tip();
    let header = node.chain.header(&tip.hash);
    Ok(json!({
        "chain": core_name(node.config.network),
        "blocks": tip.height,
        "headers": tip.height,
        "bestblockhash": tip.hash.to_string(),
        "bits": format!("{:08x}", tip.bits),
        "difficulty": crate::node::convert::difficulty(tip.bits),
        "time": header.map_or(0, |h| h.header.time),
        "mediantime": tip.median_time_past,
        "verificationprogress": 1.0,
        // The same rule as modules' `get_chain_info.is_synced`.
        "initialblockdownload": !node.is_synced(),
        "chainwork": hex(&tip.chain_work),
        "size_on_disk": dir_size(&node.config.datadir.join("chain")),
        "pruned": false,
        "warnings": node.disk_warnings(),
    }))
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn getblockcount(node: &Arc<Node>, _: &Params) -> Result<Value, RpcError> {
    Ok(json!(node.chain.tip().height))
}

fn getbestblockhash(node: &Arc<Node>, _: &Params) -> Result<Value, RpcError> {
    Ok(json!(node.chain.tip().hash.to_string()))
}

fn getblockhash(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let height: i64 = p.required(0, "height")?;
    u32::try_from(height)
        .ok()
        .and_then(|h| node.chain.block_hash(h))
        .map(|h| json!(h.to_string()))
        .ok_or_else(|| RpcError::invalid_parameter("Block height out of range"))
}

/// `getblock` verbosity: Core accepts a number or (legacy) a boolean.
fn verbosity(p: &Params, index: usize, name: &str, default: u8) -> Result<u8, RpcError> {
    match p.raw(index, name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(u8::from(*b)),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| RpcError::invalid_parameter("Verbosity out of range")),
        Some(_) => Err(RpcError::type_error("Expected number or boolean for verbosity")),
    }
}

fn confirmations(node: &Node, hash: &bitcoin::BlockHash, height: u32) -> i64 {
    if node.chain.is_on_active_chain(hash) {
        i64::from(node.chain.tip().height) - i64::from(height) + 1
    } else {
        -1
    }
}

fn with_chain_context(node: &Node, mut v: Value, hash: &bitcoin::BlockHash, height: u32) -> Value {
    v["confirmations"] = json!(confirmations(node, hash, height));
    if let Some(info) = node.chain.header(hash) {
        v["chainwork"] = json!(hex(&info.chain_work));
    }
    if node.chain.is_on_active_chain(hash) {
        if let Some(next) = node.chain.block_hash(height + 1) {
            v["nextblockhash"] = json!(next.to_string());
        }
    }
    v
}

fn getblock(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let hash = block_hash(&p.required::<String>(0, "blockhash")?)?;
    let verbosity = verbosity(p, 1, "verbosity", 1)?;
    let info = node
        .chain
        .header(&hash)
        .ok_or_else(|| RpcError::invalid_address_or_key("Block not found"))?;
    let block = node
        .chain
        .block(&hash)
        .ok_or_else(|| RpcError::misc("Block not available (pruned data)"))?;
    if verbosity == 0 {
        return Ok(json!(serialize_hex(&block)));
    }
    let v = block_json(&block, info.height, node.config.network, verbosity);
    Ok(with_chain_context(node, v, &hash, info.height))
}

fn getblockheader(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let hash = block_hash(&p.required::<String>(0, "blockhash")?)?;
    let verbose = verbosity(p, 1, "verbose", 1)? != 0;
    let info = node
        .chain
        .header(&hash)
        .ok_or_else(|| RpcError::invalid_address_or_key("Block not found"))?;
    if !verbose {
        return Ok(json!(serialize_hex(&info.header)));
    }
    let mut v = header_json(&info.header, info.height);
    v["nTx"] = json!(node.chain.block(&hash).map_or(0, |b| b.txdata.len()));
    Ok(with_chain_context(node, v, &hash, info.height))
}

fn getrawtransaction(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let id = txid(&p.required::<String>(0, "txid")?)?;
    let verbose = verbosity(p, 1, "verbosity", 0)? != 0;
    let network = node.config.network;
    if let Some(entry) = node.mempool.get(&id) {
        return Ok(if verbose {
            tx_json(&entry.tx, network)
        } else {
            json!(serialize_hex(&*entry.tx))
        });
    }
    let (tx, in_block) = node.chain.transaction(&id).ok_or_else(|| {
        RpcError::invalid_address_or_key(
            "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
        )
    })?;
    if !verbose {
        return Ok(json!(serialize_hex(&tx)));
    }
    let mut v = tx_json(&tx, network);
    v["blockhash"] = json!(in_block.to_string());
    if let Some(info) = node.chain.header(&in_block) {
        v["confirmations"] = json!(confirmations(node, &in_block, info.height));
        v["time"] = json!(info.header.time);
        v["blocktime"] = json!(info.header.time);
    }
    Ok(v)
}

fn gettxout(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let id = txid(&p.required::<String>(0, "txid")?)?;
    let n: u32 = p.required(1, "n")?;
    let include_mempool = p.get::<bool>(2, "include_mempool")?.unwrap_or(true);
    let outpoint = bitcoin::OutPoint { txid: id, vout: n };
    let tip = node.chain.tip();
    let network = node.config.network;
    if include_mempool {
        if node.mempool.spends(&outpoint).is_some() {
            return Ok(Value::Null);
        }
        if let Some(out) = node.mempool.output(&outpoint) {
            return Ok(json!({
                "bestblock": tip.hash.to_string(),
                "confirmations": 0,
                "value": btc(out.value),
                "scriptPubKey": script_json(&out.script_pubkey, network),
                "coinbase": false,
            }));
        }
    }
    Ok(match node.chain.coin(&outpoint) {
        Some(coin) => json!({
            "bestblock": tip.hash.to_string(),
            "confirmations": i64::from(tip.height) - i64::from(coin.height) + 1,
            "value": btc(coin.txout.value),
            "scriptPubKey": script_json(&coin.txout.script_pubkey, network),
            "coinbase": coin.is_coinbase,
        }),
        None => Value::Null,
    })
}

fn invalidateblock(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let hash = block_hash(&p.required::<String>(0, "blockhash")?)?;
    node.invalidate_block(&hash).map_err(chain_error)?;
    Ok(Value::Null)
}

fn reconsiderblock(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let hash = block_hash(&p.required::<String>(0, "blockhash")?)?;
    node.reconsider_block(&hash).map_err(chain_error)?;
    Ok(Value::Null)
}

fn chain_error(e: crate::chain::ChainError) -> RpcError {
    match e {
        crate::chain::ChainError::UnknownBlock(_) => RpcError::invalid_address_or_key("Block not found"),
        other => RpcError::misc(other.to_string()),
    }
}

fn uptime(node: &Arc<Node>, _: &Params) -> Result<Value, RpcError> {
    Ok(json!(node.uptime().as_secs()))
}

fn stop(node: &Arc<Node>, _: &Params) -> Result<Value, RpcError> {
    node.request_stop();
    Ok(json!("blvm-node stopping"))
}
