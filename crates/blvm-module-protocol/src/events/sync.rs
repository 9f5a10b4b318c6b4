//! Payloads of the sync events: headers and block synchronisation (IBD)
//! progress, sync state changes, and selective sync reports.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// Headers synchronisation started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadersSyncStarted {
    /// Height of the best header when it started.
    pub start_height: u64,
}

/// Headers synchronisation progressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadersSyncProgress {
    /// Height of the best header so far.
    pub current_height: u64,
    /// Best height peers announced.
    pub target_height: u64,
    /// Progress in percent.
    pub progress_percent: f64,
}

/// Headers synchronisation finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadersSyncCompleted {
    /// Height of the best header.
    pub final_height: u64,
    /// Time it took, in milliseconds.
    pub duration_ms: u64,
}

/// Block synchronisation (IBD) started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockSyncStarted {
    /// Height of the tip when it started.
    pub start_height: u64,
    /// Height of the best header, the target.
    pub target_height: u64,
}

/// Block synchronisation progressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockSyncProgress {
    /// Height of the tip so far.
    pub current_height: u64,
    /// Target height.
    pub target_height: u64,
    /// Progress in percent.
    pub progress_percent: f64,
    /// Recent connection rate, in blocks per second.
    pub blocks_per_second: f64,
}

/// Block synchronisation finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockSyncCompleted {
    /// Height of the tip.
    pub final_height: u64,
    /// Time it took, in milliseconds.
    pub duration_ms: u64,
}

/// The node's sync state changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStateChanged {
    /// Previous state: `"initial"`, `"headers"`, `"blocks"` or `"synced"`.
    pub old_state: String,
    /// New state.
    pub new_state: String,
}

/// A selective sync module applied its policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectiveSyncPolicyApplied {
    /// What triggered it: `"config"`, `"subscribe"`, `"refresh"`, `"apply"`.
    pub policy_source: String,
    /// Number of policy registries in effect.
    pub registry_count: u32,
}

/// A block was filtered out during IBD (selective sync, pruning ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IBDBlockFiltered {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// Why it was filtered.
    pub reason: String,
}
