//! Test support shared by the mempool and miner tests: an in-memory regtest
//! [`ChainView`] that connects and disconnects real blocks (UTXO set with
//! undo data), a deterministic P2WPKH key, and real ECDSA signing.

use std::collections::HashMap;

use bitcoin::blockdata::constants::genesis_block;
use bitcoin::params::Params;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Amount, Block, BlockHash, CompactTarget, CompressedPublicKey, OutPoint, ScriptBuf, Sequence,
    Transaction, TxIn, TxOut, Witness,
};

use super::policy::LIBCONSENSUS_FLAGS;
use super::{Mempool, RemovalReason};
use crate::chain::{ChainView, Coin};
use crate::miner;

/// Regtest chain in memory.
pub(crate) struct TestChain {
    pub params: Params,
    pub blocks: Vec<Block>,
    pub coins: HashMap<OutPoint, Coin>,
    undo: Vec<Vec<(OutPoint, Coin)>>,
    pub flags: u32,
}

impl TestChain {
    /// The regtest genesis block alone (its coinbase is unspendable, as in Core).
    pub fn new() -> Self {
        TestChain {
            params: Params::REGTEST,
            blocks: vec![genesis_block(Params::REGTEST)],
            coins: HashMap::new(),
            undo: vec![Vec::new()],
            // Everything active on regtest, Taproot bit included (masked by the mempool).
            flags: LIBCONSENSUS_FLAGS | (1 << 17),
        }
    }

    pub fn height(&self) -> u32 {
        (self.blocks.len() - 1) as u32
    }

    /// Connects `block` on the tip; returns its height.
    pub fn connect(&mut self, block: Block) -> u32 {
        assert_eq!(
            block.header.prev_blockhash,
            self.tip().0,
            "block does not extend the tip"
        );
        let height = self.height() + 1;
        let mut undo = Vec::new();
        for tx in &block.txdata {
            if !tx.is_coinbase() {
                for input in &tx.input {
                    let coin = self.coins.remove(&input.previous_output).expect("input spends a coin");
                    undo.push((input.previous_output, coin));
                }
            }
            let txid = tx.compute_txid();
            for (vout, txout) in tx.output.iter().enumerate() {
                self.coins.insert(
                    OutPoint::new(txid, vout as u32),
                    Coin {
                        txout: txout.clone(),
                        height,
                        is_coinbase: tx.is_coinbase(),
                    },
                );
            }
        }
        self.blocks.push(block);
        self.undo.push(undo);
        height
    }

    /// Disconnects the tip block and returns it.
    pub fn disconnect(&mut self) -> Block {
        let block = self.blocks.pop().expect("not genesis");
        let undo = self.undo.pop().expect("undo data");
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            for vout in 0..tx.output.len() {
                self.coins.remove(&OutPoint::new(txid, vout as u32));
            }
        }
        for (outpoint, coin) in undo {
            self.coins.insert(outpoint, coin);
        }
        block
    }

    /// Output 0 of the coinbase at `height`.
    pub fn coinbase_outpoint(&self, height: u32) -> (OutPoint, TxOut) {
        let cb = &self.blocks[height as usize].txdata[0];
        (OutPoint::new(cb.compute_txid(), 0), cb.output[0].clone())
    }

    /// Header time to use for the next block.
    pub fn next_time(&self) -> u32 {
        1_700_000_000 + self.height() * 600
    }
}

impl ChainView for TestChain {
    fn tip(&self) -> (BlockHash, u32) {
        (self.blocks[self.blocks.len() - 1].block_hash(), self.height())
    }

    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        self.coins.get(outpoint).cloned()
    }

    fn median_time_past(&self) -> u32 {
        let start = self.blocks.len().saturating_sub(11);
        let mut times: Vec<u32> = self.blocks[start..].iter().map(|b| b.header.time).collect();
        times.sort_unstable();
        times[times.len() / 2]
    }

    fn next_block_bits(&self) -> CompactTarget {
        self.blocks[0].header.bits
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn script_flags(&self, _height: u32) -> u32 {
        self.flags
    }
}

/// A deterministic P2WPKH key.
pub(crate) struct Key {
    pub sk: SecretKey,
    pub pk: CompressedPublicKey,
    pub script: ScriptBuf,
}

pub(crate) fn key(seed: u8) -> Key {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[seed; 32]).expect("valid secret key");
    let pk = CompressedPublicKey(bitcoin::secp256k1::PublicKey::from_secret_key(&secp, &sk));
    let script = ScriptBuf::new_p2wpkh(&pk.wpubkey_hash());
    Key { sk, pk, script }
}

/// Mines one block on `chain` from `mempool`'s template paying `script`,
/// connects it and tells the mempool.
pub(crate) fn mine_one(
    chain: &mut TestChain,
    mempool: &Mempool,
    script: &ScriptBuf,
) -> (Block, Vec<(bitcoin::Txid, RemovalReason)>) {
    let time = chain.next_time();
    let block = miner::generate_block(chain, mempool, script.clone(), time, 100_000).expect("regtest block mined");
    let height = chain.connect(block.clone());
    let removed = mempool.remove_for_block(&block, height);
    (block, removed)
}

/// A regtest chain of `n` blocks paying `key`, and an empty mempool.
pub(crate) fn funded(n: u32, key: &Key) -> (TestChain, Mempool) {
    let mut chain = TestChain::new();
    let mempool = Mempool::default();
    for _ in 0..n {
        mine_one(&mut chain, &mempool, &key.script);
    }
    (chain, mempool)
}

/// A version-2 transaction spending P2WPKH `prevouts` of `key`, signed.
pub(crate) fn spend(key: &Key, prevouts: &[(OutPoint, TxOut)], outputs: Vec<TxOut>) -> Transaction {
    spend_with(key, prevouts, outputs, 2, 0, Sequence::MAX)
}

/// Like [`spend`], with version, lock time and input sequence chosen.
pub(crate) fn spend_with(
    key: &Key,
    prevouts: &[(OutPoint, TxOut)],
    outputs: Vec<TxOut>,
    version: i32,
    lock_time: u32,
    sequence: Sequence,
) -> Transaction {
    let tx = Transaction {
        version: transaction::Version(version),
        lock_time: absolute::LockTime::from_consensus(lock_time),
        input: prevouts
            .iter()
            .map(|(op, _)| TxIn {
                previous_output: *op,
                script_sig: ScriptBuf::new(),
                sequence,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    };
    sign(key, tx, prevouts)
}

/// Signs every input of `tx` (P2WPKH, SIGHASH_ALL) with `key`.
pub(crate) fn sign(key: &Key, mut tx: Transaction, prevouts: &[(OutPoint, TxOut)]) -> Transaction {
    let secp = Secp256k1::new();
    let mut cache = SighashCache::new(&mut tx);
    for (i, (_, prev)) in prevouts.iter().enumerate() {
        let sighash = cache
            .p2wpkh_signature_hash(i, &prev.script_pubkey, prev.value, EcdsaSighashType::All)
            .expect("sighash");
        let msg = Message::from(sighash);
        let signature = secp.sign_ecdsa(&msg, &key.sk);
        let sig = bitcoin::ecdsa::Signature {
            signature,
            sighash_type: EcdsaSighashType::All,
        };
        *cache.witness_mut(i).expect("input exists") = Witness::p2wpkh(&sig, &key.pk.0);
    }
    tx
}

/// An output of `sats` to `script`.
pub(crate) fn out(script: &ScriptBuf, sats: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sats),
        script_pubkey: script.clone(),
    }
}
