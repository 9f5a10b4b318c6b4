//! [`NodeBackend`] for [`MemoryChain`], and its in-memory mempool.
//!
//! Chain reads answer from the embedded blocks; anything unknown is
//! `Ok(None)`. The mempool accepts a transaction after Bitcoin Core's
//! context-free checks (`CheckTransaction`), its mempool conflict check and
//! its input checks (`CheckTxInputs`), rejecting with Core's reason strings.
//! **Scripts and signatures are not verified**, and no relay policy
//! (standardness, minimum relay fee, replacement) applies: this is a test
//! fixture, not a validator.

use std::collections::HashMap;
use std::sync::MutexGuard;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, Transaction, Txid};
use blvm_module_host::{BackendError, NodeBackend};
use blvm_module_protocol::methods::chain::{ChainInfo, ChainTip, OutPoint, Utxo};
use blvm_module_protocol::methods::mempool::{MempoolSize, MempoolTransaction};
use blvm_module_protocol::methods::mining::{BlockTemplate, BlockTemplateParams, SubmitBlockResult};
use blvm_module_protocol::methods::network::{NetworkStats, PeerInfo};
use blvm_module_protocol::Hash32;

use crate::chain::{txid32, MemoryChain, COINBASE_MATURITY};

/// One accepted transaction.
struct MempoolEntry {
    tx: Transaction,
    bytes: Vec<u8>,
    fee: u64,
    vsize: u64,
}

/// Transactions accepted by `submit_transaction`, in arrival order.
#[derive(Default)]
pub(crate) struct Mempool {
    entries: HashMap<Txid, MempoolEntry>,
    order: Vec<Txid>,
    /// Outpoint → the mempool transaction spending it.
    spent_by: HashMap<bitcoin::OutPoint, Txid>,
}

fn rejected(reason: &str) -> BackendError {
    BackendError::Rejected(reason.to_owned())
}

/// Bitcoin Core's `CheckTransaction` (context-free), same reasons.
fn check_transaction(tx: &Transaction) -> Result<(), BackendError> {
    if tx.input.is_empty() {
        return Err(rejected("bad-txns-vin-empty"));
    }
    if tx.output.is_empty() {
        return Err(rejected("bad-txns-vout-empty"));
    }
    // MAX_BLOCK_WEIGHT / WITNESS_SCALE_FACTOR, stripped size.
    if tx.base_size() * 4 > 4_000_000 {
        return Err(rejected("bad-txns-oversize"));
    }
    let mut total = Amount::ZERO;
    for out in &tx.output {
        if out.value > Amount::MAX_MONEY {
            return Err(rejected("bad-txns-vout-toolarge"));
        }
        total = match total.checked_add(out.value) {
            Some(t) if t <= Amount::MAX_MONEY => t,
            _ => return Err(rejected("bad-txns-txouttotal-toolarge")),
        };
    }
    let mut seen = std::collections::HashSet::with_capacity(tx.input.len());
    for input in &tx.input {
        if !seen.insert(input.previous_output) {
            return Err(rejected("bad-txns-inputs-duplicate"));
        }
    }
    if tx.is_coinbase() {
        let len = tx.input[0].script_sig.len();
        if !(2..=100).contains(&len) {
            return Err(rejected("bad-cb-length"));
        }
    } else if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err(rejected("bad-txns-prevout-null"));
    }
    Ok(())
}

/// Bitcoin Core's `GetDifficulty` for a compact target.
fn difficulty(bits: u32) -> f64 {
    let mut shift = (bits >> 24) & 0xff;
    let mut diff = f64::from(0x0000_ffff_u32) / f64::from(bits & 0x00ff_ffff);
    while shift < 29 {
        diff *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        diff /= 256.0;
        shift -= 1;
    }
    diff
}

impl MemoryChain {
    fn pool(&self) -> MutexGuard<'_, Mempool> {
        // A panic elsewhere while holding the lock leaves the pool
        // consistent (every mutation is a few infallible inserts).
        self.mempool.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Chain reads answer from the embedded blocks (`Ok(None)` for anything the
/// chain does not hold). The mempool holds what `submit_transaction`
/// accepted; scripts are not verified (see the module docs). There is no
/// miner (`get_block_template`, `submit_block` are `Unavailable`) and no P2P
/// layer (zero stats, no peers).
impl NodeBackend for MemoryChain {
    fn get_block(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.height_of(hash).map(|h| self.block_bytes(h)))
    }

    fn get_block_header(&self, hash: &Hash32) -> Result<Option<(Vec<u8>, u64)>, BackendError> {
        Ok(self.height_of(hash).map(|h| (self.header_bytes(h), h)))
    }

    fn get_block_hash(&self, height: u64) -> Result<Option<Hash32>, BackendError> {
        Ok((height <= self.tip_height()).then(|| self.hash_at(height)))
    }

    fn get_transaction(&self, txid: &Hash32) -> Result<Option<(Vec<u8>, Hash32)>, BackendError> {
        Ok(self.confirmed_tx(txid).map(|(bytes, h)| (bytes, self.hash_at(h))))
    }

    fn get_chain_tip(&self) -> Result<ChainTip, BackendError> {
        let (hash, height) = self.tip();
        Ok(ChainTip { hash, height })
    }

    fn get_chain_info(&self) -> Result<ChainInfo, BackendError> {
        let (tip_hash, height) = self.tip();
        let bits = self.tip_bits();
        Ok(ChainInfo {
            network: "main".to_owned(),
            tip_hash,
            height,
            chain_work: self.chain_work().to_vec(),
            bits,
            difficulty: difficulty(bits),
            is_synced: true,
        })
    }

    fn get_utxo(&self, outpoint: &OutPoint) -> Result<Option<Utxo>, BackendError> {
        Ok(self.utxo(outpoint))
    }

    fn get_mempool_txids(&self) -> Result<Vec<Hash32>, BackendError> {
        Ok(self.pool().order.iter().map(|t| txid32(*t)).collect())
    }

    fn get_mempool_transaction(&self, txid: &Hash32) -> Result<MempoolTransaction, BackendError> {
        let pool = self.pool();
        let entry = pool.entries.get(&Txid::from_byte_array(txid.0));
        Ok(MempoolTransaction {
            tx: entry.map(|e| e.bytes.clone()),
            fee: entry.map(|e| e.fee),
        })
    }

    fn get_mempool_size(&self) -> Result<MempoolSize, BackendError> {
        let pool = self.pool();
        Ok(MempoolSize {
            count: pool.entries.len() as u64,
            vsize: pool.entries.values().map(|e| e.vsize).sum(),
            total_fee: pool.entries.values().map(|e| e.fee).sum(),
        })
    }

    /// The median fee rate (sat/vB) of the mempool's transactions, whatever
    /// the target; `None` when the mempool is empty.
    fn get_fee_estimate(&self, _target_blocks: u32) -> Result<Option<f64>, BackendError> {
        let pool = self.pool();
        let mut rates: Vec<f64> = pool.entries.values().map(|e| e.fee as f64 / e.vsize as f64).collect();
        if rates.is_empty() {
            return Ok(None);
        }
        rates.sort_by(f64::total_cmp);
        let mid = rates.len() / 2;
        Ok(Some(if rates.len() % 2 == 0 {
            (rates[mid - 1] + rates[mid]) / 2.0
        } else {
            rates[mid]
        }))
    }

    fn get_block_template(&self, _params: &BlockTemplateParams) -> Result<BlockTemplate, BackendError> {
        Err(BackendError::Unavailable(
            "the in-memory test chain has no miner".into(),
        ))
    }

    /// Checks, in Bitcoin Core's order and with its reasons: decoding
    /// (`TX decode failed`), `CheckTransaction` (`bad-txns-vin-empty`, …),
    /// `coinbase`, `txn-already-in-mempool`, `txn-mempool-conflict` (no
    /// replacement), `txn-already-known` (an output is already unspent in
    /// the chain), `bad-txns-inputs-missingorspent` (inputs from the chain's
    /// UTXO set or from unspent outputs of mempool transactions),
    /// `bad-txns-premature-spend-of-coinbase`, `bad-txns-in-belowout`.
    /// Scripts are not verified and no relay policy applies.
    fn submit_transaction(&self, bytes: &[u8]) -> Result<Hash32, BackendError> {
        let tx: Transaction = bitcoin::consensus::deserialize(bytes).map_err(|_| rejected("TX decode failed"))?;
        check_transaction(&tx)?;
        if tx.is_coinbase() {
            return Err(rejected("coinbase"));
        }
        let txid = tx.compute_txid();
        let mut pool = self.pool();
        if pool.entries.contains_key(&txid) {
            return Err(rejected("txn-already-in-mempool"));
        }
        if tx.input.iter().any(|i| pool.spent_by.contains_key(&i.previous_output)) {
            return Err(rejected("txn-mempool-conflict"));
        }
        let already_known = (0..tx.output.len()).any(|vout| {
            self.utxo_btc(&bitcoin::OutPoint {
                txid,
                vout: vout as u32,
            })
            .is_some()
        });
        if already_known {
            return Err(rejected("txn-already-known"));
        }
        let next_height = self.tip_height() + 1;
        let mut value_in = Amount::ZERO;
        for input in &tx.input {
            let prev = &input.previous_output;
            let value = if let Some(utxo) = self.utxo_btc(prev) {
                if utxo.is_coinbase && next_height - utxo.height < COINBASE_MATURITY {
                    return Err(rejected("bad-txns-premature-spend-of-coinbase"));
                }
                Amount::from_sat(utxo.value)
            } else if let Some(parent) = pool.entries.get(&prev.txid) {
                match parent.tx.output.get(prev.vout as usize) {
                    Some(out) => out.value,
                    None => return Err(rejected("bad-txns-inputs-missingorspent")),
                }
            } else {
                return Err(rejected("bad-txns-inputs-missingorspent"));
            };
            value_in = match value_in.checked_add(value) {
                Some(v) if v <= Amount::MAX_MONEY => v,
                _ => return Err(rejected("bad-txns-inputvalues-outofrange")),
            };
        }
        let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
        if value_in < value_out {
            return Err(rejected("bad-txns-in-belowout"));
        }
        let fee = (value_in - value_out).to_sat();
        for input in &tx.input {
            pool.spent_by.insert(input.previous_output, txid);
        }
        pool.order.push(txid);
        pool.entries.insert(
            txid,
            MempoolEntry {
                vsize: tx.vsize() as u64,
                bytes: bytes.to_vec(),
                fee,
                tx,
            },
        );
        Ok(txid32(txid))
    }

    fn submit_block(&self, _block: &[u8]) -> Result<SubmitBlockResult, BackendError> {
        Err(BackendError::Unavailable(
            "the in-memory test chain has no miner".into(),
        ))
    }

    fn get_network_stats(&self) -> Result<NetworkStats, BackendError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{GENESIS_HASH, MAINNET_TIP_HASH};

    fn h(s: &str) -> Hash32 {
        Hash32::from_display_hex(s).unwrap()
    }

    /// The seven real spends of blocks 0..=438, in chain order: heights 170,
    /// 181, 182, 183, 187, 221, 248. Each after the first spends an output
    /// of an earlier one; the first spends block 9's coinbase.
    fn real_spends() -> Vec<(Hash32, Vec<u8>)> {
        MemoryChain::mainnet_0_438()
            .non_coinbase_txids()
            .into_iter()
            .map(|id| (id, MemoryChain::raw_tx(&id).unwrap()))
            .collect()
    }

    fn reason(r: Result<Hash32, BackendError>) -> String {
        match r {
            Err(BackendError::Rejected(m)) => m,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn chain_reads_answer_real_data_and_none_for_unknown() {
        let c = MemoryChain::mainnet_0_438();
        let genesis = h(GENESIS_HASH);
        let block = c.get_block(&genesis).unwrap().unwrap();
        assert_eq!(block.len(), 285);
        assert_eq!(
            c.get_block_header(&genesis).unwrap().unwrap(),
            (block[..80].to_vec(), 0)
        );
        assert_eq!(c.get_block_hash(438).unwrap(), Some(h(MAINNET_TIP_HASH)));
        assert_eq!(c.get_block_hash(439).unwrap(), None);
        assert_eq!(c.get_block(&Hash32([0; 32])).unwrap(), None);
        assert_eq!(c.get_block_header(&Hash32([0; 32])).unwrap(), None);
        assert_eq!(c.get_transaction(&Hash32([0; 32])).unwrap(), None);
        let tip = c.get_chain_tip().unwrap();
        assert_eq!((tip.hash, tip.height), (h(MAINNET_TIP_HASH), 438));

        let (id, raw) = real_spends().remove(0);
        let (bytes, block_hash) = c.get_transaction(&id).unwrap().unwrap();
        assert_eq!(bytes, raw);
        assert_eq!(block_hash, c.hash_at(170));
    }

    #[test]
    fn chain_info_is_the_tip_as_core_reports_it() {
        let info = MemoryChain::mainnet_0_438().get_chain_info().unwrap();
        assert_eq!(info.network, "main");
        assert_eq!((info.tip_hash, info.height), (h(MAINNET_TIP_HASH), 438));
        assert_eq!(info.bits, 0x1d00_ffff);
        assert_eq!(info.difficulty, 1.0);
        assert!(info.is_synced);
        // getblockchaininfo's chainwork at height 438.
        let mut work = [0u8; 32];
        work[26..].copy_from_slice(&[0x01, 0xb7, 0x01, 0xb7, 0x01, 0xb7]);
        assert_eq!(info.chain_work, work);
        // Core's GetDifficulty on other targets.
        assert_eq!(difficulty(0x1c00_ffff), 256.0);
        assert_eq!(difficulty(0x1b04_04cb), 16_307.420_938_523_983);
    }

    #[test]
    fn utxo_reads() {
        let c = MemoryChain::mainnet_0_438();
        let (o, u) = c.mature_coinbase_outpoint().unwrap();
        assert_eq!(c.get_utxo(&o).unwrap(), Some(u));
        let block_9_coinbase = OutPoint {
            txid: h("0437cd7f8525ceed2324359c2d0ba26006d92d856a9c20fa0241106ee5a597c9"),
            vout: 0,
        };
        assert_eq!(c.get_utxo(&block_9_coinbase).unwrap(), None);
        // The genesis coinbase output never enters the UTXO set.
        let genesis_cb = c.txids()[0];
        assert_eq!(
            c.get_utxo(&OutPoint {
                txid: genesis_cb,
                vout: 0
            })
            .unwrap(),
            None
        );
        // The block-170 payment to Hal Finney is still unspent at 438.
        let (spend, _) = real_spends().remove(0);
        let hal = c.get_utxo(&OutPoint { txid: spend, vout: 0 }).unwrap().unwrap();
        assert_eq!((hal.value, hal.height, hal.is_coinbase), (1_000_000_000, 170, false));
    }

    #[test]
    fn real_spends_are_accepted_as_a_chain_of_unconfirmed_txs() {
        let c = MemoryChain::mainnet_up_to(169);
        assert_eq!(c.get_fee_estimate(6).unwrap(), None);
        let spends = real_spends();
        let mut vsize = 0;
        for (id, raw) in &spends {
            assert_eq!(c.submit_transaction(raw).unwrap(), *id);
            let tx: Transaction = bitcoin::consensus::deserialize(raw).unwrap();
            vsize += tx.vsize() as u64;
        }
        let ids: Vec<Hash32> = spends.iter().map(|(id, _)| *id).collect();
        assert_eq!(c.get_mempool_txids().unwrap(), ids);
        let size = c.get_mempool_size().unwrap();
        assert_eq!((size.count, size.vsize, size.total_fee), (7, vsize, 0));
        assert_eq!(vsize, 1_777);
        let first = c.get_mempool_transaction(&ids[0]).unwrap();
        assert_eq!(first.tx.as_deref(), Some(&spends[0].1[..]));
        // None of the early spends paid a fee.
        assert_eq!(first.fee, Some(0));
        assert_eq!(c.get_fee_estimate(1).unwrap(), Some(0.0));
        let absent = c.get_mempool_transaction(&Hash32([0; 32])).unwrap();
        assert_eq!((absent.tx, absent.fee), (None, None));
        // The chain itself does not change.
        assert_eq!(c.tip().1, 169);
        assert_eq!(c.get_transaction(&ids[0]).unwrap(), None);
    }

    #[test]
    fn submit_refuses_with_core_reasons() {
        let spends = real_spends();
        let (id170, raw170) = &spends[0];
        let raw181 = &spends[1].1;
        let tx170: Transaction = bitcoin::consensus::deserialize(raw170).unwrap();

        let c = MemoryChain::mainnet_up_to(169);
        assert_eq!(reason(c.submit_transaction(&[0xde, 0xad])), "TX decode failed");
        let mut trailing = raw170.clone();
        trailing.push(0);
        assert_eq!(reason(c.submit_transaction(&trailing)), "TX decode failed");
        // Block 181's tx spends block 170's, which is neither confirmed nor
        // in the mempool yet.
        assert_eq!(reason(c.submit_transaction(raw181)), "bad-txns-inputs-missingorspent");
        let coinbase = MemoryChain::raw_tx(&c.txids()[1]).unwrap();
        assert_eq!(reason(c.submit_transaction(&coinbase)), "coinbase");

        // The same input, one satoshi less out: a different tx that
        // conflicts once the real one is in.
        let mut cheaper = tx170.clone();
        cheaper.output[0].value -= Amount::from_sat(1);
        let cheaper = bitcoin::consensus::serialize(&cheaper);
        assert_eq!(c.submit_transaction(raw170).unwrap(), *id170);
        assert_eq!(reason(c.submit_transaction(raw170)), "txn-already-in-mempool");
        assert_eq!(reason(c.submit_transaction(&cheaper)), "txn-mempool-conflict");
        assert_eq!(c.get_mempool_size().unwrap().count, 1);

        // One satoshi more out than block 9's 50 BTC coinbase holds.
        let fresh = MemoryChain::mainnet_up_to(169);
        let mut dearer = tx170.clone();
        dearer.output[0].value += Amount::from_sat(1);
        let dearer = bitcoin::consensus::serialize(&dearer);
        assert_eq!(reason(fresh.submit_transaction(&dearer)), "bad-txns-in-belowout");
        let mut dup = tx170.clone();
        dup.input.push(dup.input[0].clone());
        let dup = bitcoin::consensus::serialize(&dup);
        assert_eq!(reason(fresh.submit_transaction(&dup)), "bad-txns-inputs-duplicate");
        assert_eq!(fresh.get_mempool_size().unwrap().count, 0);

        // Block 9's coinbase matures for block 109 (9 + 100).
        let early = MemoryChain::mainnet_up_to(107);
        assert_eq!(
            reason(early.submit_transaction(raw170)),
            "bad-txns-premature-spend-of-coinbase"
        );
        assert_eq!(
            MemoryChain::mainnet_up_to(108).submit_transaction(raw170).unwrap(),
            *id170
        );

        // Already confirmed: its output 0 (to Hal Finney) is still unspent.
        let full = MemoryChain::mainnet_0_438();
        assert_eq!(reason(full.submit_transaction(raw170)), "txn-already-known");
        // Block 182's tx is confirmed but both its outputs are spent (by
        // blocks 183 and 221), so Core reports its input as spent.
        let raw182 = &spends[2].1;
        assert_eq!(
            reason(full.submit_transaction(raw182)),
            "bad-txns-inputs-missingorspent"
        );
    }

    #[test]
    fn no_miner_and_no_peers() {
        let c = MemoryChain::mainnet_0_438();
        assert!(matches!(
            c.get_block_template(&BlockTemplateParams::default()),
            Err(BackendError::Unavailable(_))
        ));
        assert!(matches!(
            c.submit_block(&c.block_bytes(1)),
            Err(BackendError::Unavailable(_))
        ));
        let stats = c.get_network_stats().unwrap();
        assert_eq!((stats.peer_count, stats.bytes_sent, stats.bytes_received), (0, 0, 0));
        assert!(c.get_network_peers().unwrap().is_empty());
    }

    #[test]
    fn usable_as_a_shared_trait_object() {
        let c: std::sync::Arc<dyn NodeBackend> = std::sync::Arc::new(MemoryChain::mainnet_0_438());
        let c2 = c.clone();
        std::thread::spawn(move || c2.get_chain_tip().unwrap()).join().unwrap();
        assert_eq!(c.get_chain_tip().unwrap().height, 438);
    }
}
