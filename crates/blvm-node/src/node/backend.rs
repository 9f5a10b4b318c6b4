//! [`NodeBackendImpl`]: the module API hub's reads and submissions, served
//! from the node's chain, mempool and miner.

use std::sync::{Arc, Weak};

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use blvm_module_host::{BackendError, NodeBackend};
use blvm_module_protocol::methods::chain::{ChainInfo, ChainTip, OutPoint, Utxo};
use blvm_module_protocol::methods::mempool::{MempoolSize, MempoolTransaction};
use blvm_module_protocol::methods::mining::{
    BlockTemplate, BlockTemplateParams, SubmitBlockResult, TemplateTransaction,
};
use blvm_module_protocol::methods::network::{NetworkStats, PeerInfo};
use blvm_module_protocol::Hash32;

use super::convert::{block_hash, difficulty, to_block_hash, to_txid};
use super::Node;
use crate::chain::{BlockError, ProcessOutcome};
use crate::config::core_name;
use crate::miner;

/// Serves module requests from the node. Holds the node weakly: the node
/// owns the module manager, which owns this.
pub struct NodeBackendImpl {
    node: Weak<Node>,
}

impl NodeBackendImpl {
    /// A backend over `node`.
    pub fn new(node: &Arc<Node>) -> Self {
        NodeBackendImpl {
            node: Arc::downgrade(node),
        }
    }

    fn node(&self) -> Result<Arc<Node>, BackendError> {
        self.node
            .upgrade()
            .ok_or_else(|| BackendError::Unavailable("the node is shutting down".into()))
    }
}

impl NodeBackend for NodeBackendImpl {
    fn get_block(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.node()?.chain.block_bytes(&to_block_hash(hash)))
    }

    fn get_block_header(&self, hash: &Hash32) -> Result<Option<(Vec<u8>, u64)>, BackendError> {
        Ok(self
            .node()?
            .chain
            .header(&to_block_hash(hash))
            .map(|h| (serialize(&h.header), u64::from(h.height))))
    }

    fn get_block_hash(&self, height: u64) -> Result<Option<Hash32>, BackendError> {
        let Ok(height) = u32::try_from(height) else {
            return Ok(None);
        };
        Ok(self.node()?.chain.block_hash(height).map(|h| block_hash(&h)))
    }

    fn get_transaction(&self, txid: &Hash32) -> Result<Option<(Vec<u8>, Hash32)>, BackendError> {
        Ok(self
            .node()?
            .chain
            .transaction(&to_txid(txid))
            .map(|(tx, b)| (serialize(&tx), block_hash(&b))))
    }

    fn get_chain_tip(&self) -> Result<ChainTip, BackendError> {
        let tip = self.node()?.chain.tip();
        Ok(ChainTip {
            hash: block_hash(&tip.hash),
            height: u64::from(tip.height),
        })
    }

    fn get_chain_info(&self) -> Result<ChainInfo, BackendError> {
        let node = self.node()?;
        let tip = node.chain.tip();
        Ok(ChainInfo {
            network: core_name(node.config.network).to_owned(),
            tip_hash: block_hash(&tip.hash),
            height: u64::from(tip.height),
            chain_work: tip.chain_work.to_vec(),
            bits: tip.bits,
            difficulty: difficulty(tip.bits),
            is_synced: node.is_synced(),
        })
    }

    fn get_utxo(&self, outpoint: &OutPoint) -> Result<Option<Utxo>, BackendError> {
        let op = bitcoin::OutPoint {
            txid: to_txid(&outpoint.txid),
            vout: outpoint.vout,
        };
        Ok(self.node()?.chain.coin(&op).map(|c| Utxo {
            value: c.txout.value.to_sat(),
            script_pubkey: c.txout.script_pubkey.to_bytes(),
            height: u64::from(c.height),
            is_coinbase: c.is_coinbase,
        }))
    }

    fn get_mempool_txids(&self) -> Result<Vec<Hash32>, BackendError> {
        Ok(self
            .node()?
            .mempool
            .txids()
            .iter()
            .map(|t| Hash32(t.to_byte_array()))
            .collect())
    }

    fn get_mempool_transaction(&self, txid: &Hash32) -> Result<MempoolTransaction, BackendError> {
        let entry = self.node()?.mempool.get(&to_txid(txid));
        Ok(MempoolTransaction {
            tx: entry.as_ref().map(|e| serialize(&e.tx)),
            fee: entry.map(|e| e.fee.to_sat()),
        })
    }

    fn get_mempool_size(&self) -> Result<MempoolSize, BackendError> {
        let info = self.node()?.mempool.info();
        Ok(MempoolSize {
            count: info.size,
            vsize: info.bytes,
            total_fee: info.total_fee.to_sat(),
        })
    }

    fn get_fee_estimate(&self, target_blocks: u32) -> Result<Option<f64>, BackendError> {
        Ok(self.node()?.mempool.estimate_fee(target_blocks))
    }

    fn get_block_template(&self, params: &BlockTemplateParams) -> Result<BlockTemplate, BackendError> {
        let node = self.node()?;
        let script = params
            .coinbase_script
            .clone()
            .map(bitcoin::ScriptBuf::from_bytes)
            .unwrap_or_else(|| node.coinbase_script().clone());
        let default = miner::CoinbaseReserve::default();
        let reserve = miner::CoinbaseReserve::new(
            params.coinbase_reserved_weight.map_or(default.weight, u64::from),
            params.coinbase_reserved_sigops.map_or(default.sigops, u64::from),
        );
        let t = miner::build_template_reserving(&*node.chain, &node.mempool, script, super::now(), reserve);
        Ok(BlockTemplate {
            version: t.version.to_consensus(),
            prev_hash: block_hash(&t.prev_hash),
            height: u64::from(t.height),
            bits: t.bits.to_consensus(),
            min_time: t.min_time,
            cur_time: t.time,
            coinbase_value: t.coinbase_value.to_sat(),
            coinbase_tx: serialize(&t.coinbase),
            transactions: t
                .transactions
                .iter()
                .map(|tx| TemplateTransaction {
                    data: serialize(&*tx.tx),
                    fee: tx.fee.to_sat(),
                })
                .collect(),
        })
    }

    fn submit_transaction(&self, tx: &[u8]) -> Result<Hash32, BackendError> {
        let tx: bitcoin::Transaction =
            deserialize(tx).map_err(|e| BackendError::InvalidParams(format!("TX decode failed: {e}")))?;
        let accepted = self
            .node()?
            .accept_transaction(tx)
            .map_err(|e| BackendError::Rejected(e.to_string()))?;
        Ok(Hash32(accepted.txid.to_byte_array()))
    }

    fn submit_block(&self, block: &[u8]) -> Result<SubmitBlockResult, BackendError> {
        let block: bitcoin::Block =
            deserialize(block).map_err(|e| BackendError::InvalidParams(format!("Block decode failed: {e}")))?;
        let node = self.node()?;
        let (status, reason) = match node.submit_block(&block) {
            Ok(ProcessOutcome::Duplicate { .. }) => (SubmitBlockResult::DUPLICATE, None),
            Ok(ProcessOutcome::SideBranch { .. }) => (SubmitBlockResult::INCONCLUSIVE, None),
            Ok(outcome) => {
                // A module mined it (a Stratum V2 pool's solution): on the
                // active chain now, as the node's own blocks are.
                let height = match outcome {
                    ProcessOutcome::Connected { height, .. } => height,
                    ProcessOutcome::Reorg(r) => r.new_height,
                    _ => node.chain.tip().height,
                };
                node.publish(blvm_module_protocol::events::BlockMined {
                    block_hash: block_hash(&block.block_hash()),
                    height: u64::from(height),
                    miner_id: None,
                });
                (SubmitBlockResult::ACCEPTED, None)
            }
            Err(BlockError::Orphan(_)) => (SubmitBlockResult::REJECTED, Some("prev-blk-not-found".to_owned())),
            Err(e @ BlockError::Invalid(_)) => (SubmitBlockResult::REJECTED, Some(e.reason().to_owned())),
            Err(e) => return Err(BackendError::Internal(e.to_string())),
        };
        Ok(SubmitBlockResult {
            status: status.to_owned(),
            reason,
        })
    }

    fn get_network_stats(&self) -> Result<NetworkStats, BackendError> {
        // This node has no P2P layer: no peers, no traffic. The spec says
        // so (`ipc-protocol.md` §8.2): zeros here mean "no P2P", not "idle".
        Ok(NetworkStats {
            peer_count: 0,
            bytes_sent: 0,
            bytes_received: 0,
        })
    }

    fn get_network_peers(&self) -> Result<Vec<PeerInfo>, BackendError> {
        Ok(Vec::new())
    }
}
