//! Helpers shared by the chain tests: test data, a recording listener, and
//! a regtest block builder that mines (regtest targets are met by about
//! every second hash).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bitcoin::block::{Header, Version};
use bitcoin::blockdata::opcodes::OP_TRUE;
use bitcoin::blockdata::script::Builder;
use bitcoin::consensus::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::{
    absolute, transaction, Amount, Block, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Witness,
};
use blvm_node::chain::{ChainEvent, ChainListener};

/// A file under `tests/data`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The blocks of a framed (`blk*.dat`) file, mainnet magic.
pub fn framed_blocks(name: &str) -> Vec<Block> {
    let bytes = std::fs::read(data(name)).expect("test data present");
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= bytes.len() {
        assert_eq!(&bytes[i..i + 4], &[0xf9, 0xbe, 0xb4, 0xd9], "magic at {i}");
        let len = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().unwrap()) as usize;
        out.push(deserialize(&bytes[i + 8..i + 8 + len]).expect("block decodes"));
        i += 8 + len;
    }
    out
}

/// Records every event.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<ChainEvent>>);

impl ChainListener for Recorder {
    fn on_event(&self, event: &ChainEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }
    pub fn take(&self) -> Vec<ChainEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Regtest proof-of-work limit in compact form.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// A coinbase for `height` (BIP34) paying `value` to OP_TRUE.
pub fn coinbase(height: u32, value: u64) -> Transaction {
    Transaction {
        version: transaction::Version::ONE,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: Builder::new().push_int(height as i64).push_int(0x0b1e).into_script(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(value),
            script_pubkey: op_true(),
        }],
    }
}

pub fn op_true() -> ScriptBuf {
    Builder::new().push_opcode(OP_TRUE).into_script()
}

/// A transaction spending `prev` (an OP_TRUE output) to OP_TRUE outputs of `values`.
pub fn spend(prev: OutPoint, values: &[u64]) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: prev,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: values
            .iter()
            .map(|v| TxOut {
                value: Amount::from_sat(*v),
                script_pubkey: op_true(),
            })
            .collect(),
    }
}

/// Builds and mines a block on `prev` with `txs` after `coinbase`.
pub fn mine(prev: &Header, coinbase: Transaction, txs: Vec<Transaction>, bits: u32, time: u32) -> Block {
    let mut txdata = vec![coinbase];
    txdata.extend(txs);
    let mut block = Block {
        header: Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: prev.block_hash(),
            merkle_root: TxMerkleNode::all_zeros(),
            time,
            bits: CompactTarget::from_consensus(bits),
            nonce: 0,
        },
        txdata,
    };
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    grind(&mut block.header);
    block
}

/// Finds a nonce meeting the header's own target.
pub fn grind(h: &mut Header) {
    let target = h.target();
    while !target.is_met_by(h.block_hash()) {
        h.nonce += 1;
    }
}

/// A simple regtest block at `height` on `prev` with an OP_TRUE coinbase of 50 BTC.
pub fn next(prev: &Header, height: u32, txs: Vec<Transaction>) -> Block {
    let fees = 0;
    mine(
        prev,
        coinbase(height, 50 * 100_000_000 + fees),
        txs,
        REGTEST_BITS,
        prev.time + 600,
    )
}

/// A directory removed on drop.
pub struct TempDir(std::path::PathBuf);
impl TempDir {
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
pub fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "blvm-chain-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    TempDir(p)
}
