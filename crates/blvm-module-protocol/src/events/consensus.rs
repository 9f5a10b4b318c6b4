//! Payloads of the consensus events: block, script and UTXO validation,
//! difficulty adjustment, soft fork deployment and rule violations.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// Validation of a block started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockValidationStarted {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
}

/// Validation of a block finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockValidationCompleted {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// Whether it is valid.
    pub success: bool,
    /// Time validation took, in milliseconds.
    pub validation_time_ms: u64,
    /// Why it is invalid, when it is.
    pub error: Option<String>,
}

/// Verification of the input scripts of a block started.
///
/// One event per block, not per input: a block has thousands of inputs,
/// and an event each would flood every subscriber with sub-millisecond
/// timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptVerificationStarted {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// Number of inputs whose scripts are verified.
    pub inputs: u64,
}

/// Verification of the input scripts of a block finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptVerificationCompleted {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// Number of inputs verified.
    pub inputs: u64,
    /// Whether every script succeeded.
    pub success: bool,
    /// Time verification took, in milliseconds.
    pub verification_time_ms: u64,
}

/// Checking a block's inputs against the UTXO set started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UTXOValidationStarted {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
}

/// Checking a block's inputs against the UTXO set finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UTXOValidationCompleted {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// Whether every input was found unspent and the amounts balance.
    pub success: bool,
    /// What failed, when something did.
    pub error: Option<String>,
}

/// The network difficulty was retargeted (every 2016 blocks on mainnet).
///
/// Difficulty is sent as `getdifficulty`'s `f64` and as the exact compact
/// target; see the mining events for why not as an integer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifficultyAdjusted {
    /// Difficulty before the retarget.
    pub old_difficulty: f64,
    /// Difficulty after the retarget.
    pub new_difficulty: f64,
    /// Compact target (`nBits`) before.
    pub old_bits: u32,
    /// Compact target (`nBits`) after.
    pub new_bits: u32,
    /// Height of the first block of the new period.
    pub height: u64,
}

/// A soft fork became active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftForkActivated {
    /// The deployment, as `getdeploymentinfo` names it (`"segwit"`,
    /// `"taproot"` ...).
    pub fork_name: String,
    /// First height at which its rules apply.
    pub height: u64,
}

/// A BIP9 soft fork locked in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftForkLockedIn {
    /// The deployment, as `getdeploymentinfo` names it.
    pub fork_name: String,
    /// Height at which it locked in.
    pub height: u64,
}

/// A block or transaction broke a consensus rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsensusRuleViolation {
    /// The rule, e.g. `"bad-txns-inputs-missingorspent"`.
    pub rule_name: String,
    /// The offending block, if a block.
    pub block_hash: Option<Hash32>,
    /// The offending transaction, if a transaction.
    pub txid: Option<Hash32>,
    /// Details.
    pub error: String,
}
