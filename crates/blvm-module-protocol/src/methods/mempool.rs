//! Mempool reads and transaction submission.

use serde::{Deserialize, Serialize};

use crate::hash::{bytes_field, Hash32};

/// Result of `get_mempool_transactions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolTxids {
    /// Every txid in the mempool.
    pub txids: Vec<Hash32>,
}

/// Result of `get_mempool_transaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolTransaction {
    /// Consensus bytes; nil when not in the mempool.
    #[serde(with = "bytes_field::option", default)]
    pub tx: Option<Vec<u8>>,
    /// Fee in satoshis, when in the mempool.
    #[serde(default)]
    pub fee: Option<u64>,
}

/// Result of `get_mempool_size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolSize {
    /// Number of transactions.
    pub count: u64,
    /// Sum of their virtual sizes.
    pub vsize: u64,
    /// Sum of their fees, satoshis.
    pub total_fee: u64,
}

/// Params of `get_fee_estimate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeEstimateParams {
    /// Confirmation target in blocks.
    pub target_blocks: u32,
}

/// Result of `get_fee_estimate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeeEstimate {
    /// Estimated fee rate in sat/vB; nil when the node has not observed
    /// enough fee rates to estimate (never invented).
    #[serde(default)]
    pub sat_per_vb: Option<f64>,
}

/// Params of `submit_transaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitTransaction {
    /// The transaction's consensus bytes.
    #[serde(with = "bytes_field")]
    pub tx: Vec<u8>,
}

/// Result of `submit_transaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedTransaction {
    /// The accepted transaction's id.
    pub txid: Hash32,
}
