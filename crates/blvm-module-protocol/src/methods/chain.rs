//! Chain reads: blocks, headers, transactions, tip, chain info, UTXOs.
//!
//! Blocks, headers and transactions travel as their consensus serialization
//! (`bin`), which every Bitcoin library in every language parses.

use serde::{Deserialize, Serialize};

use crate::hash::{bytes_field, Hash32};

/// Params of `get_block`, `get_block_header`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByHash {
    /// The block hash.
    pub hash: Hash32,
}

/// Params of `get_block_by_height`, `get_block_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByHeight {
    /// Height in the active chain.
    pub height: u64,
}

/// Params of `get_transaction`, `has_transaction`, and the mempool lookups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByTxid {
    /// The transaction id.
    pub txid: Hash32,
}

/// Result of `get_block`, `get_block_by_height`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockResult {
    /// The block's consensus bytes; nil when the node does not have it.
    #[serde(with = "bytes_field::option", default)]
    pub block: Option<Vec<u8>>,
}

/// Result of `get_block_header`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderResult {
    /// The 80-byte header; nil when unknown.
    #[serde(with = "bytes_field::option", default)]
    pub header: Option<Vec<u8>>,
    /// Its height, when known.
    #[serde(default)]
    pub height: Option<u64>,
}

/// Result of `get_block_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHashResult {
    /// The hash at that height; nil above the tip.
    #[serde(default)]
    pub hash: Option<Hash32>,
}

/// Result of `get_transaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionResult {
    /// The transaction's consensus bytes; nil when unknown.
    #[serde(with = "bytes_field::option", default)]
    pub tx: Option<Vec<u8>>,
    /// The block that confirms it.
    #[serde(default)]
    pub block_hash: Option<Hash32>,
}

/// Result of `has_transaction`, `check_transaction_in_mempool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundResult {
    /// Whether it was found.
    pub found: bool,
}

/// Result of `get_chain_tip`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainTip {
    /// The active tip's hash.
    pub hash: Hash32,
    /// Its height.
    pub height: u64,
}

/// Result of `get_block_height`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeightResult {
    /// The active tip's height.
    pub height: u64,
}

/// Result of `get_chain_info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainInfo {
    /// `main`, `test`, `signet` or `regtest`, as Bitcoin Core names them.
    pub network: String,
    /// The active tip's hash.
    pub tip_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// Total chain work, 32 bytes big-endian (never truncated).
    #[serde(with = "bytes_field")]
    pub chain_work: Vec<u8>,
    /// The tip's compact target.
    pub bits: u32,
    /// The tip's difficulty, as `getblockchaininfo` reports it.
    pub difficulty: f64,
    /// Whether the node considers itself caught up.
    pub is_synced: bool,
}

/// Params of `get_utxo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutPoint {
    /// The funding transaction.
    pub txid: Hash32,
    /// The output index.
    pub vout: u32,
}

/// An unspent output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utxo {
    /// Value in satoshis.
    pub value: u64,
    /// The locking script.
    #[serde(with = "bytes_field")]
    pub script_pubkey: Vec<u8>,
    /// Height of the block that created it.
    pub height: u64,
    /// Whether it is a coinbase output (maturity rules apply).
    pub is_coinbase: bool,
}

/// Result of `get_utxo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtxoResult {
    /// The output; nil when spent or unknown.
    #[serde(default)]
    pub utxo: Option<Utxo>,
}
