//! Payloads of the compact block (BIP152) events: a compact block arrived,
//! and the full block was rebuilt from it and the mempool.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// A compact block was received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactBlockReceived {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// The peer that sent it.
    pub peer_addr: String,
    /// Number of short transaction ids in it.
    pub short_ids_count: u32,
}

/// Rebuilding a block from a compact block started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockReconstructionStarted {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
}

/// Rebuilding a block from a compact block finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockReconstructionCompleted {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// Whether the block was rebuilt.
    pub success: bool,
    /// Transactions that were not in the mempool and had to be requested.
    pub missing_txs: u32,
}
