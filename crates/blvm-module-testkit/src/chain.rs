//! [`TestChain`]: the chain behind the harness's node, real mainnet blocks
//! whose tip the test moves: it connects the next real block, or walks
//! back and forward again in a reorg, and the module's requests are
//! answered from the chain as it stands after each step.

use std::sync::{Arc, OnceLock, RwLock};

use blvm_module_host::{BackendError, NodeBackend};
use blvm_module_protocol::methods::chain::{ChainInfo, ChainTip, OutPoint, Utxo};
use blvm_module_protocol::methods::mempool::{MempoolSize, MempoolTransaction};
use blvm_module_protocol::methods::mining::{BlockTemplate, BlockTemplateParams, SubmitBlockResult};
use blvm_module_protocol::methods::network::{NetworkStats, PeerInfo};
use blvm_module_protocol::Hash32;
use blvm_testkit::{MemoryChain, MAINNET_TIP_HEIGHT};

/// The harness's chain: the embedded mainnet blocks `0..=tip`, `tip`
/// moved by the test. Implements [`NodeBackend`] over the chain as it
/// stands now; a request in flight while the tip moves is answered from
/// the chain before or after the move, never a mix. Blocks a move down
/// left above the tip are still found by hash (`get_block`,
/// `get_block_header`), as in a node's block store.
pub struct TestChain {
    current: RwLock<Arc<MemoryChain>>,
}

impl TestChain {
    /// The chain with mainnet block `height` as its tip.
    ///
    /// # Panics
    ///
    /// Above the last embedded block ([`MAINNET_TIP_HEIGHT`]).
    pub fn at(height: u64) -> TestChain {
        TestChain {
            current: RwLock::new(Arc::new(MemoryChain::mainnet_up_to(height))),
        }
    }

    /// The chain as it stands now (hashes, blocks, transactions, UTXOs).
    pub fn now(&self) -> Arc<MemoryChain> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The tip's height now.
    pub fn tip_height(&self) -> u64 {
        self.now().tip_height()
    }

    /// Moves the tip to `height` (up or down). The mempool starts empty
    /// again: the embedded chain knows no unconfirmed transactions of its
    /// own, and the ones a test submitted belonged to the old tip.
    ///
    /// # Panics
    ///
    /// Above [`MAINNET_TIP_HEIGHT`].
    pub(crate) fn set_tip(&self, height: u64) -> Arc<MemoryChain> {
        let chain = Arc::new(MemoryChain::mainnet_up_to(height));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&chain);
        chain
    }

    /// Whether a block above the tip is left to connect.
    pub fn can_connect(&self) -> bool {
        self.tip_height() < MAINNET_TIP_HEIGHT
    }
}

/// Every embedded block: where blocks off the active chain (above a tip
/// moved down) are still found by hash, as a node's block store keeps the
/// blocks a reorg disconnected.
fn store() -> &'static MemoryChain {
    static STORE: OnceLock<MemoryChain> = OnceLock::new();
    STORE.get_or_init(MemoryChain::mainnet_0_438)
}

impl NodeBackend for TestChain {
    fn get_block(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, BackendError> {
        match self.now().get_block(hash)? {
            Some(block) => Ok(Some(block)),
            None => store().get_block(hash),
        }
    }
    fn get_block_header(&self, hash: &Hash32) -> Result<Option<(Vec<u8>, u64)>, BackendError> {
        match self.now().get_block_header(hash)? {
            Some(header) => Ok(Some(header)),
            None => store().get_block_header(hash),
        }
    }
    fn get_block_hash(&self, height: u64) -> Result<Option<Hash32>, BackendError> {
        self.now().get_block_hash(height)
    }
    fn get_transaction(&self, txid: &Hash32) -> Result<Option<(Vec<u8>, Hash32)>, BackendError> {
        self.now().get_transaction(txid)
    }
    fn get_chain_tip(&self) -> Result<ChainTip, BackendError> {
        self.now().get_chain_tip()
    }
    fn get_chain_info(&self) -> Result<ChainInfo, BackendError> {
        self.now().get_chain_info()
    }
    fn get_utxo(&self, outpoint: &OutPoint) -> Result<Option<Utxo>, BackendError> {
        self.now().get_utxo(outpoint)
    }
    fn get_mempool_txids(&self) -> Result<Vec<Hash32>, BackendError> {
        self.now().get_mempool_txids()
    }
    fn get_mempool_transaction(&self, txid: &Hash32) -> Result<MempoolTransaction, BackendError> {
        self.now().get_mempool_transaction(txid)
    }
    fn get_mempool_size(&self) -> Result<MempoolSize, BackendError> {
        self.now().get_mempool_size()
    }
    fn get_fee_estimate(&self, target_blocks: u32) -> Result<Option<f64>, BackendError> {
        self.now().get_fee_estimate(target_blocks)
    }
    fn get_block_template(&self, params: &BlockTemplateParams) -> Result<BlockTemplate, BackendError> {
        self.now().get_block_template(params)
    }
    fn submit_transaction(&self, tx: &[u8]) -> Result<Hash32, BackendError> {
        self.now().submit_transaction(tx)
    }
    fn submit_block(&self, block: &[u8]) -> Result<SubmitBlockResult, BackendError> {
        self.now().submit_block(block)
    }
    fn get_network_stats(&self) -> Result<NetworkStats, BackendError> {
        self.now().get_network_stats()
    }
    fn get_network_peers(&self) -> Result<Vec<PeerInfo>, BackendError> {
        self.now().get_network_peers()
    }
}
