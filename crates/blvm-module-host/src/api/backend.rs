//! [`NodeBackend`]: the seam between the module host and the node.
//!
//! The host knows nothing of chain storage; the node implements this trait
//! over its store, mempool and miner, and tests implement it over real
//! blocks held in memory. Every method is synchronous and must be cheap
//! enough to run on a module's connection thread: a slow call delays that
//! module only, never the node or another module.

use blvm_module_protocol::methods::chain::{ChainInfo, ChainTip, OutPoint, Utxo};
use blvm_module_protocol::methods::mempool::{MempoolSize, MempoolTransaction};
use blvm_module_protocol::methods::mining::{BlockTemplate, BlockTemplateParams, SubmitBlockResult};
use blvm_module_protocol::methods::network::{NetworkStats, PeerInfo};
use blvm_module_protocol::{ErrorCode, Hash32, RemoteError};

/// Why the backend could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The node cannot serve this now (no chain yet, store closed, no
    /// mempool). Answered as `unavailable`.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The node refused a submitted transaction or block; the reason is
    /// Bitcoin Core's where one exists. Answered as `rejected`.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The request's values are out of range. Answered as `invalid_params`.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// A fault inside the node. Answered as `internal`.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<BackendError> for RemoteError {
    fn from(e: BackendError) -> Self {
        let (code, message) = match e {
            BackendError::Unavailable(m) => (ErrorCode::Unavailable, m),
            BackendError::Rejected(m) => (ErrorCode::Rejected, m),
            BackendError::InvalidParams(m) => (ErrorCode::InvalidParams, m),
            BackendError::Internal(m) => (ErrorCode::Internal, m),
        };
        RemoteError::new(code, message)
    }
}

/// What the hub needs from the node to answer module requests.
///
/// Blocks, headers and transactions are consensus-serialized bytes. A value
/// the node does not have is `Ok(None)`, not an error.
pub trait NodeBackend: Send + Sync + 'static {
    /// A block by hash.
    fn get_block(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, BackendError>;
    /// An 80-byte header by hash, with its height.
    fn get_block_header(&self, hash: &Hash32) -> Result<Option<(Vec<u8>, u64)>, BackendError>;
    /// The active chain's block hash at `height`.
    fn get_block_hash(&self, height: u64) -> Result<Option<Hash32>, BackendError>;
    /// A confirmed transaction and the block that holds it.
    fn get_transaction(&self, txid: &Hash32) -> Result<Option<(Vec<u8>, Hash32)>, BackendError>;
    /// The active tip.
    fn get_chain_tip(&self) -> Result<ChainTip, BackendError>;
    /// Network, tip, chain work, difficulty, sync state.
    fn get_chain_info(&self) -> Result<ChainInfo, BackendError>;
    /// An unspent output.
    fn get_utxo(&self, outpoint: &OutPoint) -> Result<Option<Utxo>, BackendError>;
    /// The txids in the mempool.
    fn get_mempool_txids(&self) -> Result<Vec<Hash32>, BackendError>;
    /// A mempool transaction with its fee.
    fn get_mempool_transaction(&self, txid: &Hash32) -> Result<MempoolTransaction, BackendError>;
    /// Mempool totals.
    fn get_mempool_size(&self) -> Result<MempoolSize, BackendError>;
    /// A fee-rate estimate in sat/vB, `None` without enough observations.
    fn get_fee_estimate(&self, target_blocks: u32) -> Result<Option<f64>, BackendError>;
    /// A block template.
    fn get_block_template(&self, params: &BlockTemplateParams) -> Result<BlockTemplate, BackendError>;
    /// Validates and accepts a transaction into the mempool.
    fn submit_transaction(&self, tx: &[u8]) -> Result<Hash32, BackendError>;
    /// Validates and connects a block.
    fn submit_block(&self, block: &[u8]) -> Result<SubmitBlockResult, BackendError>;
    /// Traffic counters and peer count.
    fn get_network_stats(&self) -> Result<NetworkStats, BackendError>;
    /// Connected peers.
    fn get_network_peers(&self) -> Result<Vec<PeerInfo>, BackendError>;
}
