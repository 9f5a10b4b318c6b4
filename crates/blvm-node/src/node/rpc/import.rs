//! `importblocks`: block files imported into the running node, so its
//! modules see the import as it happens (`BlockSyncStarted`, each block's
//! validation events, `NewBlock` and `BlockSyncProgress`, then
//! `BlockSyncCompleted`). Bitcoin Core has no such RPC (it has the
//! start-up option `-loadblock`); the files are read by the node process,
//! as Core's `importmempool` and `loadtxoutset` read theirs.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::Method;
use crate::node::{Node, NodeError};
use crate::rpc::{Params, RpcError};

pub(super) const METHODS: &[(&str, &str, Method)] = &[(
    "importblocks",
    "importblocks [\"file\",...]\nImports Bitcoin Core blk*.dat files or raw blocks (absolute paths, read by the node, in order), \
     as `blvm-node import` does, while the node runs: modules receive BlockSync* and each block's events as it goes. \
     Returns blocks, transactions, already_known, rejected, orphans, elapsed_ms, height and tip.",
    importblocks,
)];

fn importblocks(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    // One file as a string, or an array of them.
    let files: Vec<PathBuf> = match p.raw(0, "files") {
        Some(Value::String(one)) => vec![PathBuf::from(one)],
        _ => p.required::<Vec<PathBuf>>(0, "files")?,
    };
    if files.is_empty() {
        return Err(RpcError::invalid_parameter("`files` is empty"));
    }
    if let Some(relative) = files.iter().find(|f| !f.is_absolute()) {
        return Err(RpcError::invalid_parameter(format!(
            "{} is not an absolute path (the node reads it, from its own working directory)",
            relative.display()
        )));
    }
    let stats = node.import(&files).map_err(|e| match e {
        NodeError::ImportRunning => RpcError::misc(e.to_string()),
        NodeError::Block(b) => RpcError::verify_error(b.to_string()),
        other => RpcError::misc(other.to_string()),
    })?;
    let tip = node.chain.tip();
    Ok(json!({
        "blocks": stats.blocks,
        "transactions": stats.txs,
        "already_known": stats.duplicates,
        "rejected": stats.rejected,
        "orphans": stats.orphans,
        "elapsed_ms": stats.elapsed.as_millis() as u64,
        "height": tip.height,
        "tip": tip.hash.to_string(),
    }))
}
