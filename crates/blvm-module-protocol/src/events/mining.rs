//! Payloads of the mining events: templates, mined blocks and difficulty
//! (published by the node), jobs, shares and pools (published by mining
//! modules such as a Stratum V2 pool).
//!
//! Difficulty travels twice: as the `f64` that `getdifficulty` prints, and
//! as the exact compact target (`bits`) it was computed from. The earlier
//! implementation sent it as a truncated `u32`, which loses everything
//! below 1 and saturates on mainnet.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// The node accepted a block mined through it (`submitblock` or the
/// `SubmitBlock` API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMined {
    /// Hash of the mined block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// Who mined it, when the submitter said so.
    pub miner_id: Option<String>,
}

/// The node built a new block template (new tip or new transactions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockTemplateUpdated {
    /// Hash of the block the template builds on.
    pub prev_hash: Hash32,
    /// Height of the block being built.
    pub height: u64,
    /// Number of transactions in the template, coinbase excluded.
    pub tx_count: u32,
}

/// The difficulty of the next block to mine changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiningDifficultyChanged {
    /// Previous difficulty, as `getdifficulty` prints it.
    pub old_difficulty: f64,
    /// New difficulty.
    pub new_difficulty: f64,
    /// Previous compact target (`nBits`).
    pub old_bits: u32,
    /// New compact target (`nBits`).
    pub new_bits: u32,
    /// Height of the first block mined at the new difficulty.
    pub height: u64,
}

/// A mining module created a job for its miners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiningJobCreated {
    /// Job identifier, chosen by the module.
    pub job_id: String,
    /// Hash of the block the job builds on.
    pub prev_hash: Hash32,
    /// Height of the block being mined.
    pub height: u64,
}

/// A miner submitted a share to a mining module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareSubmitted {
    /// Job the share belongs to.
    pub job_id: String,
    /// Hash of the share's block header.
    pub share_hash: Hash32,
    /// The miner, when known.
    pub miner_id: Option<String>,
}

/// A merge-mining module earned a reward on a secondary chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeMiningReward {
    /// Name of the secondary chain.
    pub secondary_chain: String,
    /// Reward, in the secondary chain's smallest unit.
    pub reward_amount: u64,
    /// Hash of the secondary chain's block that paid it.
    pub block_hash: Hash32,
}

/// A mining module connected to a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiningPoolConnected {
    /// The pool's URL.
    pub pool_url: String,
    /// The pool's identifier, when it has one.
    pub pool_id: Option<String>,
}

/// A mining module disconnected from a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiningPoolDisconnected {
    /// The pool's URL.
    pub pool_url: String,
    /// Human-readable reason.
    pub reason: String,
}

/// A mining-operations module executed an action on its miners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionExecuted {
    /// Identifier of the action.
    pub action_id: String,
    /// Kind of action, e.g. `"restart"`, `"set_power"`.
    pub action_type: String,
    /// The miner it applied to, or `"all"`.
    pub target: String,
    /// Whether it succeeded.
    pub success: bool,
}
