//! Payloads of the core blockchain events: blocks connected and
//! disconnected, chain reorganisations and new transactions.
//!
//! Blocks, headers and transactions travel as their consensus serialization
//! (MessagePack `bin`), which every Bitcoin library in every language
//! parses; a subscriber that needs the whole block asks for it by hash.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// A block was connected to the active chain (it is the new tip).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewBlock {
    /// Hash of the block.
    pub block_hash: Hash32,
    /// Height of the block in the active chain.
    pub height: u64,
    /// The 80-byte consensus-serialized block header.
    #[serde(with = "crate::hash::bytes_field")]
    pub header: Vec<u8>,
}

/// A transaction was accepted into the mempool.
///
/// Published together with [`MempoolTransactionAdded`](super::MempoolTransactionAdded),
/// which carries the fee data; this event carries the transaction itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTransaction {
    /// Transaction id (hash without witness data).
    pub txid: Hash32,
    /// Witness transaction id (hash with witness data; equals `txid` for a
    /// transaction without witnesses).
    pub wtxid: Hash32,
    /// The consensus-serialized transaction, with witness data.
    #[serde(with = "crate::hash::bytes_field")]
    pub tx: Vec<u8>,
}

/// A block was disconnected from the active chain (during a reorg, or by
/// `invalidateblock`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDisconnected {
    /// Hash of the disconnected block.
    pub block_hash: Hash32,
    /// Height the block had in the active chain.
    pub height: u64,
    /// The 80-byte consensus-serialized block header.
    #[serde(with = "crate::hash::bytes_field")]
    pub header: Vec<u8>,
}

/// The active chain switched to another branch.
///
/// Published once the new branch is connected, after the individual
/// [`BlockDisconnected`] and [`NewBlock`] events of the blocks involved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainReorg {
    /// Tip before the reorganisation.
    pub old_tip: Hash32,
    /// Height of the old tip.
    pub old_height: u64,
    /// Tip after the reorganisation.
    pub new_tip: Hash32,
    /// Height of the new tip.
    pub new_height: u64,
    /// Last block common to both branches.
    pub fork_point: Hash32,
    /// Height of the fork point.
    pub fork_height: u64,
    /// Number of blocks disconnected from the old branch.
    pub disconnected: u32,
    /// Number of blocks connected from the new branch.
    pub connected: u32,
}
