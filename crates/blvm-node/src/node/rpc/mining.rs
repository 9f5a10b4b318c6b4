//! Mining methods: `getblocktemplate`, `submitblock`, `generatetoaddress`,
//! `generateblock`.

use std::sync::Arc;

use bitcoin::consensus::deserialize;
use bitcoin::consensus::encode::serialize_hex;
use serde_json::{json, Value};

use super::json::{from_hex, hex, txid};
use super::Method;
use crate::chain::{BlockError, ProcessOutcome};
use crate::miner::{self, TemplateTx};
use crate::node::{Node, NodeError};
use crate::rpc::{Params, RpcError};

pub(super) const METHODS: &[(&str, &str, Method)] = &[
    ("getblocktemplate", "getblocktemplate ( \"template_request\" )\nReturns data needed to construct a block to work on (BIP22/BIP23).", getblocktemplate),
    ("submitblock", "submitblock \"hexdata\"\nAttempts to submit new block to network.", submitblock),
    ("generatetoaddress", "generatetoaddress nblocks \"address\" ( maxtries )\nMine blocks immediately to a specified address (regtest).", generatetoaddress),
    ("generateblock", "generateblock \"output\" [\"rawtx/txid\",...]\nMine a block with a set of ordered transactions immediately to a specified address (regtest).", generateblock),
];

const DEFAULT_MAX_TRIES: u64 = 1_000_000;

fn address_script(node: &Node, s: &str) -> Result<bitcoin::ScriptBuf, RpcError> {
    s.parse::<bitcoin::Address<_>>()
        .ok()
        .and_then(|a| a.require_network(node.config.network).ok())
        .map(|a| a.script_pubkey())
        .ok_or_else(|| RpcError::invalid_address_or_key("Error: Invalid address"))
}

fn regtest_only(node: &Node, method: &str) -> Result<(), RpcError> {
    if node.config.network == bitcoin::Network::Regtest {
        Ok(())
    } else {
        Err(RpcError::misc(format!("{method} is only available on regtest")))
    }
}

fn node_error(e: NodeError) -> RpcError {
    match e {
        NodeError::Block(b) => RpcError::verify_error(b.to_string()),
        NodeError::NotMined(_) => RpcError::misc(e.to_string()),
        other => RpcError::internal(other.to_string()),
    }
}

fn getblocktemplate(node: &Arc<Node>, _: &Params) -> Result<Value, RpcError> {
    let t = miner::build_template(
        &*node.chain,
        &node.mempool,
        node.coinbase_script().clone(),
        super::super::now(),
    );
    let transactions: Vec<Value> = t
        .transactions
        .iter()
        .map(|tx| {
            json!({
                "data": serialize_hex(&*tx.tx),
                "txid": tx.txid.to_string(),
                "hash": tx.wtxid.to_string(),
                "depends": tx.depends,
                "fee": tx.fee.to_sat(),
                "sigops": tx.sigop_cost,
                "weight": tx.weight,
            })
        })
        .collect();
    let mut v = json!({
        "capabilities": ["proposal"],
        "version": t.version.to_consensus(),
        "rules": ["csv", "!segwit", "taproot"],
        "vbavailable": {},
        "vbrequired": 0,
        "previousblockhash": t.prev_hash.to_string(),
        "transactions": transactions,
        "coinbaseaux": {},
        "coinbasevalue": t.coinbase_value.to_sat(),
        "longpollid": format!("{}{}", t.prev_hash, node.mempool.len()),
        "target": hex(&t.target.to_be_bytes()),
        "mintime": t.min_time,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sigoplimit": t.sigop_limit,
        "sizelimit": 4_000_000,
        "weightlimit": t.weight_limit,
        "curtime": t.time,
        "bits": format!("{:08x}", t.bits.to_consensus()),
        "height": t.height,
    });
    if let Some(c) = &t.witness_commitment {
        v["default_witness_commitment"] = json!(c.to_hex_string());
    }
    Ok(v)
}

fn submitblock(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let bytes = from_hex(&p.required::<String>(0, "hexdata")?, "Block")?;
    let block: bitcoin::Block = deserialize(&bytes).map_err(|_| RpcError::deserialization("Block decode failed"))?;
    // Core answers null when accepted, else a BIP22 reason string.
    Ok(match node.submit_block(&block) {
        Ok(ProcessOutcome::Duplicate { .. }) => json!("duplicate"),
        Ok(ProcessOutcome::SideBranch { .. }) => json!("inconclusive"),
        Ok(_) => Value::Null,
        Err(BlockError::Orphan(_)) => json!("prev-blk-not-found"),
        Err(e @ BlockError::Invalid(_)) => json!(e.reason()),
        Err(e) => return Err(RpcError::internal(e.to_string())),
    })
}

fn generatetoaddress(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    regtest_only(node, "generatetoaddress")?;
    let count: u32 = p.required(0, "nblocks")?;
    let script = address_script(node, &p.required::<String>(1, "address")?)?;
    let tries = p.get::<u64>(2, "maxtries")?.unwrap_or(DEFAULT_MAX_TRIES);
    let hashes = node.generate(count, &script, tries).map_err(node_error)?;
    Ok(json!(hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>()))
}

fn generateblock(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    regtest_only(node, "generateblock")?;
    let script = address_script(node, &p.required::<String>(0, "output")?)?;
    let items: Vec<String> = p.required(1, "transactions")?;
    let mut txs = Vec::new();
    for item in items {
        if item.len() == 64 {
            let id = txid(&item)?;
            let entry = node
                .mempool
                .get(&id)
                .ok_or_else(|| RpcError::invalid_address_or_key(format!("Transaction {id} not in mempool.")))?;
            txs.push(TemplateTx::from_entry(&entry));
            continue;
        }
        let tx: bitcoin::Transaction = deserialize(&from_hex(&item, "Transaction")?)
            .map_err(|_| RpcError::deserialization(format!("Transaction decode failed for {item}")))?;
        // The fee is what the inputs bring minus what the outputs take;
        // inputs the chain does not know make the block invalid anyway.
        let inputs: u64 = tx
            .input
            .iter()
            .filter_map(|i| node.chain.coin(&i.previous_output))
            .map(|c| c.txout.value.to_sat())
            .sum();
        let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        txs.push(TemplateTx {
            txid: tx.compute_txid(),
            wtxid: tx.compute_wtxid(),
            fee: bitcoin::Amount::from_sat(inputs.saturating_sub(outputs)),
            weight: tx.weight().to_wu(),
            sigop_cost: 0,
            depends: Vec::new(),
            tx: Arc::new(tx),
        });
    }
    let t = miner::build_template_with_transactions(&*node.chain, script, super::super::now(), txs);
    let hash = node.mine_and_submit(&t, DEFAULT_MAX_TRIES).map_err(node_error)?;
    Ok(json!({"hash": hash.to_string()}))
}
