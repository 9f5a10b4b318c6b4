//! Payloads of the mempool events. Fee rates are in sat/vB as `f64`;
//! `mempool_size` is a number of transactions, as in Bitcoin Core's
//! `getmempoolinfo`.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// A transaction entered the mempool.
///
/// Published together with [`NewTransaction`](super::NewTransaction), which
/// carries the transaction bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MempoolTransactionAdded {
    /// Transaction id.
    pub txid: Hash32,
    /// Witness transaction id.
    pub wtxid: Hash32,
    /// Fee paid, in satoshis.
    pub fee_sats: u64,
    /// Virtual size, in vbytes.
    pub vsize: u64,
    /// `fee_sats / vsize`, in sat/vB.
    pub fee_rate: f64,
    /// Transactions in the mempool after the addition.
    pub mempool_size: u64,
}

/// A transaction left the mempool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MempoolTransactionRemoved {
    /// Transaction id.
    pub txid: Hash32,
    /// Why, as Bitcoin Core names it: `"block"`, `"conflict"`,
    /// `"replaced"`, `"expiry"`, `"sizelimit"`, `"reorg"`.
    pub reason: String,
    /// Transactions in the mempool after the removal.
    pub mempool_size: u64,
}

/// The mempool's memory usage crossed its threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MempoolThresholdExceeded {
    /// Current memory usage, in bytes.
    pub usage_bytes: u64,
    /// The threshold, in bytes.
    pub threshold_bytes: u64,
}

/// The mempool's estimated fee rate changed noticeably.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeeRateChanged {
    /// Previous fee rate, in sat/vB.
    pub old_fee_rate: f64,
    /// New fee rate, in sat/vB.
    pub new_fee_rate: f64,
    /// Transactions in the mempool.
    pub mempool_size: u64,
}

/// The mempool was emptied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MempoolCleared {
    /// Transactions removed.
    pub cleared_count: u64,
}
