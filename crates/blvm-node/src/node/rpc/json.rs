//! JSON shapes shared by several methods, as Bitcoin Core prints them.

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, Block, Network, Transaction};
use serde_json::{json, Value};

use crate::rpc::RpcError;

/// An amount in BTC as a JSON number, as Core prints values.
pub fn btc(a: Amount) -> Value {
    json!(a.to_btc())
}

/// A script's JSON (`asm`, `hex`, `type`, and `address` when it has one).
pub fn script_json(script: &bitcoin::Script, network: Network) -> Value {
    let mut v = json!({
        "asm": script.to_asm_string(),
        "hex": script.to_hex_string(),
        "type": script_type(script),
    });
    if let Ok(addr) = bitcoin::Address::from_script(script, network) {
        v["address"] = json!(addr.to_string());
    }
    v
}

fn script_type(s: &bitcoin::Script) -> &'static str {
    if s.is_p2pkh() {
        "pubkeyhash"
    } else if s.is_p2sh() {
        "scripthash"
    } else if s.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if s.is_p2wsh() {
        "witness_v0_scripthash"
    } else if s.is_p2tr() {
        "witness_v1_taproot"
    } else if s.is_p2pk() {
        "pubkey"
    } else if s.is_op_return() {
        "nulldata"
    } else if s.is_multisig() {
        "multisig"
    } else {
        "nonstandard"
    }
}

/// A transaction decoded as `getrawtransaction … true` shows it.
pub fn tx_json(tx: &Transaction, network: Network) -> Value {
    let vin: Vec<Value> = tx
        .input
        .iter()
        .map(|i| {
            if tx.is_coinbase() {
                json!({"coinbase": i.script_sig.to_hex_string(), "sequence": i.sequence.0})
            } else {
                let mut v = json!({
                    "txid": i.previous_output.txid.to_string(),
                    "vout": i.previous_output.vout,
                    "scriptSig": {"asm": i.script_sig.to_asm_string(), "hex": i.script_sig.to_hex_string()},
                    "sequence": i.sequence.0,
                });
                if !i.witness.is_empty() {
                    v["txinwitness"] = json!(i.witness.iter().map(hex).collect::<Vec<_>>());
                }
                v
            }
        })
        .collect();
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, o)| json!({"value": btc(o.value), "n": n, "scriptPubKey": script_json(&o.script_pubkey, network)}))
        .collect();
    json!({
        "txid": tx.compute_txid().to_string(),
        "hash": tx.compute_wtxid().to_string(),
        "version": tx.version.0,
        "size": tx.total_size(),
        "vsize": tx.vsize(),
        "weight": tx.weight().to_wu(),
        "locktime": tx.lock_time.to_consensus_u32(),
        "vin": vin,
        "vout": vout,
        "hex": serialize_hex(tx),
    })
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex, with Core's error for bad hex.
pub fn from_hex(s: &str, what: &str) -> Result<Vec<u8>, RpcError> {
    if s.len() % 2 != 0 {
        return Err(RpcError::deserialization(format!("{what} decode failed")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| RpcError::deserialization(format!("{what} decode failed")))
}

/// A block hash parameter, with Core's errors.
pub fn block_hash(s: &str) -> Result<bitcoin::BlockHash, RpcError> {
    s.parse().map_err(|_| {
        RpcError::invalid_parameter(format!("blockhash must be of length 64 (not {}, for '{s}')", s.len()))
    })
}

/// A txid parameter, with Core's errors.
pub fn txid(s: &str) -> Result<bitcoin::Txid, RpcError> {
    s.parse()
        .map_err(|_| RpcError::invalid_parameter(format!("txid must be of length 64 (not {}, for '{s}')", s.len())))
}

/// The whole block as `getblock … 1|2` shows it (without `confirmations`
/// and `nextblockhash`, which the caller adds).
pub fn block_json(block: &Block, height: u32, network: Network, verbosity: u8) -> Value {
    let txs: Vec<Value> = if verbosity >= 2 {
        block.txdata.iter().map(|t| tx_json(t, network)).collect()
    } else {
        block
            .txdata
            .iter()
            .map(|t| json!(t.compute_txid().to_string()))
            .collect()
    };
    let mut v = header_json(&block.header, height);
    v["size"] = json!(bitcoin::consensus::serialize(block).len());
    let stripped: usize = 80
        + bitcoin::VarInt(block.txdata.len() as u64).size()
        + block.txdata.iter().map(|t| t.base_size()).sum::<usize>();
    v["strippedsize"] = json!(stripped);
    v["weight"] = json!(block.weight().to_wu());
    v["nTx"] = json!(block.txdata.len());
    v["tx"] = json!(txs);
    v
}

/// A header as `getblockheader` shows it (without chain context).
pub fn header_json(h: &bitcoin::block::Header, height: u32) -> Value {
    let mut v = json!({
        "hash": h.block_hash().to_string(),
        "height": height,
        "version": h.version.to_consensus(),
        "versionHex": format!("{:08x}", h.version.to_consensus()),
        "merkleroot": h.merkle_root.to_string(),
        "time": h.time,
        "nonce": h.nonce,
        "bits": format!("{:08x}", h.bits.to_consensus()),
        "difficulty": super::super::convert::difficulty(h.bits.to_consensus()),
    });
    if h.prev_blockhash != bitcoin::BlockHash::all_zeros() {
        v["previousblockhash"] = json!(h.prev_blockhash.to_string());
    }
    v
}

use bitcoin::hashes::Hash as _;
