//! What the chain tells its listener, at the moment it happens.
//!
//! The listener is called synchronously on the thread doing the work, after
//! the store commit an event describes (a `BlockConnected` listener that reads
//! the chain sees the block). It must return quickly: the node maps events to
//! module events with a non-blocking `try_send`, which is the intended use.
//!
//! Order during a reorganisation: `BlockDisconnected` for each block from the
//! old tip down to the fork point, then `BlockConnected` for each new block
//! from the fork point up, then one `Reorg`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Block, BlockHash, Txid};

/// Receives [`ChainEvent`]s.
pub trait ChainListener: Send + Sync {
    /// Called once per event, in order, on the thread that changed the chain.
    fn on_event(&self, event: &ChainEvent);
}

/// Something that happened to the chain.
#[derive(Debug, Clone)]
pub enum ChainEvent {
    /// Validation of a block began (header and context-free checks first).
    BlockValidationStarted {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// Validation of a block ended.
    BlockValidationCompleted {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Whether it passed.
        success: bool,
        /// Time spent since `BlockValidationStarted`.
        duration: Duration,
        /// Core's reject reason and detail when it failed.
        error: Option<String>,
    },
    /// Script verification of all inputs of a block began.
    ScriptVerificationStarted {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Number of inputs to verify.
        inputs: usize,
    },
    /// Script verification of a block ended.
    ScriptVerificationCompleted {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Number of inputs verified.
        inputs: usize,
        /// Whether every script passed.
        success: bool,
        /// Time spent.
        duration: Duration,
    },
    /// Checking a block's inputs against the UTXO set began.
    UtxoValidationStarted {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// Checking a block's inputs against the UTXO set ended.
    UtxoValidationCompleted {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// Whether every input existed, was mature and values balanced.
        success: bool,
    },
    /// A block became the active tip (committed).
    BlockConnected {
        /// The block.
        block: Arc<Block>,
        /// Its height.
        height: u32,
    },
    /// A block stopped being the active tip (committed).
    BlockDisconnected {
        /// The block.
        block: Arc<Block>,
        /// Its height.
        height: u32,
    },
    /// The active chain switched branches (or moved back after `invalidate_block`).
    Reorg {
        /// Tip before.
        old_tip: BlockHash,
        /// Height of the tip before.
        old_height: u32,
        /// Tip after.
        new_tip: BlockHash,
        /// Height of the tip after.
        new_height: u32,
        /// Last block common to both branches.
        fork_point: BlockHash,
        /// Its height.
        fork_height: u32,
        /// Blocks disconnected, old tip first.
        disconnected: Vec<BlockHash>,
        /// Blocks connected, lowest first.
        connected: Vec<BlockHash>,
    },
    /// A connected block changed the difficulty.
    DifficultyAdjusted {
        /// Compact target of the parent.
        old_bits: u32,
        /// Compact target of the block.
        new_bits: u32,
        /// Height of the block.
        height: u32,
    },
    /// A block or transaction broke a consensus rule.
    ConsensusRuleViolation {
        /// Core's reject reason (`bad-txnmrklroot`, `high-hash`, …).
        rule: String,
        /// The block, when known.
        block_hash: Option<BlockHash>,
        /// The transaction, when the rule is about one.
        txid: Option<Txid>,
        /// Reason and detail.
        error: String,
    },
    /// Import of a block file began.
    ImportStarted {
        /// The file.
        path: PathBuf,
    },
    /// Import progress: after each record that added a block.
    ImportProgress {
        /// Blocks accepted so far in this file.
        blocks: u64,
        /// Active tip height.
        height: u32,
    },
    /// Import of a block file ended.
    ImportCompleted {
        /// The file.
        path: PathBuf,
        /// Blocks accepted.
        blocks: u64,
        /// Transactions in those blocks.
        txs: u64,
        /// Time spent.
        elapsed: Duration,
    },
}
