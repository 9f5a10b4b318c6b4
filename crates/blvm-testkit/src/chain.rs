//! [`MemoryChain`]: mainnet blocks 0..=438 parsed, checked and indexed.
//!
//! The framed file is parsed once per process (a `OnceLock`) and every
//! constructor indexes the prefix it asks for. Loading checks what a
//! fixture must not get wrong: each block parses and re-serializes to the
//! same bytes, meets the proof of work of its own bits, has a correct merkle
//! root, and names the previous block as its parent; block 0 is the mainnet
//! genesis block. A failure is a corrupt fixture and panics.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::{Block, BlockHash, Transaction, Txid};
use blvm_module_protocol::methods::chain::{OutPoint, Utxo};
use blvm_module_protocol::Hash32;

use crate::backend::Mempool;

/// The framed mainnet blocks 0..=438 (Bitcoin Core `blk*.dat` format).
const MAINNET_0_438: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/mainnet/blocks-000000-000438.dat"
));

/// The raw mainnet block 702861.
const BLOCK_702861: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mainnet/block-702861.raw"));

/// Mainnet message start, as the bytes appear in `blk*.dat`.
const MAINNET_MAGIC: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];

/// Height of the last block in the embedded mainnet file.
pub const MAINNET_TIP_HEIGHT: u64 = 438;

/// The mainnet genesis block hash, display (reversed) hex.
pub const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

/// The hash of mainnet block 438, the last embedded block, display hex.
pub const MAINNET_TIP_HASH: &str = "0000000025c6b644f8add734be7e666fa4afa43ca0204d623a0c0b1fd2104c7a";

/// The hash of mainnet block 702861 (see [`block_702861`]), display hex.
pub const BLOCK_702861_HASH: &str = "000000000000000000000c835b2adcaedc20fdf6ee440009c249452c726dafae";

/// Coinbase outputs may be spent by a block this many blocks deeper.
pub(crate) const COINBASE_MATURITY: u64 = 100;

/// The raw mainnet block 702861 (1,381,836 bytes, 2,500 transactions) and
/// its hash in internal byte order.
///
/// The block is not connected to [`MemoryChain`]; it is a large real
/// payload for tests and benchmarks of `get_block`-sized messages.
///
/// # Panics
///
/// If the embedded header does not hash to [`BLOCK_702861_HASH`] (a
/// corrupt fixture).
pub fn block_702861() -> (&'static [u8], Hash32) {
    let header: bitcoin::block::Header = bitcoin::consensus::deserialize(&BLOCK_702861[..80]).expect("80-byte header");
    let hash = block_hash32(header.block_hash());
    assert_eq!(hash.to_string(), BLOCK_702861_HASH, "block-702861.raw is corrupt");
    (BLOCK_702861, hash)
}

pub(crate) fn block_hash32(h: BlockHash) -> Hash32 {
    Hash32(h.to_byte_array())
}

pub(crate) fn txid32(t: Txid) -> Hash32 {
    Hash32(t.to_byte_array())
}

fn to_btc_outpoint(o: &OutPoint) -> bitcoin::OutPoint {
    bitcoin::OutPoint {
        txid: Txid::from_byte_array(o.txid.0),
        vout: o.vout,
    }
}

/// Bitcoin Core's `CScript::IsUnspendable`: such outputs never enter the
/// UTXO set.
fn is_unspendable(script: &bitcoin::Script) -> bool {
    let b = script.as_bytes();
    b.first() == Some(&0x6a) || b.len() > 10_000
}

/// One block of the embedded file, parsed and checked.
struct ParsedBlock {
    block: Block,
    raw: &'static [u8],
    hash: BlockHash,
}

/// Parses and checks the whole embedded file once per process.
fn parsed_mainnet() -> &'static [ParsedBlock] {
    static PARSED: OnceLock<Vec<ParsedBlock>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let mut out: Vec<ParsedBlock> = Vec::new();
        let mut rest = MAINNET_0_438;
        while !rest.is_empty() {
            let height = out.len();
            assert!(rest.len() >= 8, "truncated frame before block {height}");
            assert_eq!(rest[..4], MAINNET_MAGIC, "bad magic before block {height}");
            let len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
            assert!(rest.len() >= 8 + len, "truncated block {height}");
            let raw = &rest[8..8 + len];
            rest = &rest[8 + len..];
            let block: Block =
                bitcoin::consensus::deserialize(raw).unwrap_or_else(|e| panic!("block {height} does not parse: {e}"));
            assert_eq!(
                bitcoin::consensus::serialize(&block),
                raw,
                "block {height} re-serializes differently"
            );
            let hash = block
                .header
                .validate_pow(block.header.target())
                .unwrap_or_else(|e| panic!("block {height} fails its proof of work: {e}"));
            assert!(block.check_merkle_root(), "block {height} has a wrong merkle root");
            match out.last() {
                None => assert_eq!(hash.to_string(), GENESIS_HASH, "block 0 is not the mainnet genesis"),
                Some(prev) => assert_eq!(
                    block.header.prev_blockhash,
                    prev.hash,
                    "block {height} does not link to block {}",
                    height - 1
                ),
            }
            out.push(ParsedBlock { block, raw, hash });
        }
        assert_eq!(out.len() as u64, MAINNET_TIP_HEIGHT + 1, "expected blocks 0..=438");
        out
    })
}

/// One connected block.
struct BlockEntry {
    hash: Hash32,
    raw: &'static [u8],
    header: Vec<u8>,
    bits: u32,
}

/// Real mainnet blocks from genesis, indexed in memory, with their UTXO set
/// and an in-memory mempool; implements
/// [`NodeBackend`](blvm_module_host::NodeBackend).
///
/// Built from the embedded first 439 mainnet blocks (see `data/README.md`).
/// The chain itself is immutable; only the mempool changes, through
/// `submit_transaction`. See the `NodeBackend` impl for what each request
/// answers and which checks a submitted transaction goes through.
pub struct MemoryChain {
    blocks: Vec<BlockEntry>,
    heights: HashMap<Hash32, u64>,
    /// txid → (consensus bytes, index of the confirming block).
    txs: HashMap<Hash32, (Vec<u8>, u64)>,
    /// Every confirmed txid in chain order.
    txid_order: Vec<Hash32>,
    utxos: HashMap<bitcoin::OutPoint, Utxo>,
    chain_work: Work,
    pub(crate) mempool: Mutex<Mempool>,
}

impl MemoryChain {
    /// Mainnet blocks 0..=438, all of the embedded file.
    pub fn mainnet_0_438() -> MemoryChain {
        MemoryChain::mainnet_up_to(MAINNET_TIP_HEIGHT)
    }

    /// Mainnet blocks 0..=`height`: the chain as it stood when `height` was
    /// the tip, so a real transaction of a later block is a valid
    /// unconfirmed spend (e.g. built up to 169, the block-170 transaction
    /// [`MemoryChain::raw_tx`] returns is accepted by `submit_transaction`).
    ///
    /// # Panics
    ///
    /// If `height` is above [`MAINNET_TIP_HEIGHT`], or if the embedded data
    /// is corrupt.
    pub fn mainnet_up_to(height: u64) -> MemoryChain {
        assert!(
            height <= MAINNET_TIP_HEIGHT,
            "the embedded mainnet chain ends at {MAINNET_TIP_HEIGHT}, asked for {height}"
        );
        let parsed = &parsed_mainnet()[..=height as usize];
        let mut chain = MemoryChain {
            blocks: Vec::with_capacity(parsed.len()),
            heights: HashMap::with_capacity(parsed.len()),
            txs: HashMap::new(),
            txid_order: Vec::new(),
            utxos: HashMap::new(),
            chain_work: Work::from_be_bytes([0; 32]),
            mempool: Mutex::new(Mempool::default()),
        };
        for (h, p) in parsed.iter().enumerate() {
            chain.connect(h as u64, p);
        }
        chain
    }

    /// Applies one block: indexes it and its transactions, updates the UTXO
    /// set and the chain work.
    fn connect(&mut self, height: u64, p: &ParsedBlock) {
        let hash = block_hash32(p.hash);
        for tx in &p.block.txdata {
            let txid = tx.compute_txid();
            if !tx.is_coinbase() {
                for input in &tx.input {
                    assert!(
                        self.utxos.remove(&input.previous_output).is_some(),
                        "block {height} tx {txid} spends {} which is not unspent",
                        input.previous_output
                    );
                }
            }
            // As in Bitcoin Core, the genesis coinbase output never enters
            // the UTXO set, and neither do unspendable outputs.
            if height > 0 {
                for (vout, out) in tx.output.iter().enumerate() {
                    if is_unspendable(&out.script_pubkey) {
                        continue;
                    }
                    self.utxos.insert(
                        bitcoin::OutPoint {
                            txid,
                            vout: vout as u32,
                        },
                        Utxo {
                            value: out.value.to_sat(),
                            script_pubkey: out.script_pubkey.to_bytes(),
                            height,
                            is_coinbase: tx.is_coinbase(),
                        },
                    );
                }
            }
            let id = txid32(txid);
            self.txs.insert(id, (bitcoin::consensus::serialize(tx), height));
            self.txid_order.push(id);
        }
        self.chain_work = self.chain_work + p.block.header.work();
        self.heights.insert(hash, height);
        self.blocks.push(BlockEntry {
            hash,
            raw: p.raw,
            header: bitcoin::consensus::serialize(&p.block.header),
            bits: p.block.header.bits.to_consensus(),
        });
    }

    /// A transaction of the embedded mainnet blocks 0..=438 by txid,
    /// whether or not a given `MemoryChain` was built up to its block.
    pub fn raw_tx(txid: &Hash32) -> Option<Vec<u8>> {
        let wanted = Txid::from_byte_array(txid.0);
        parsed_mainnet()
            .iter()
            .flat_map(|p| p.block.txdata.iter())
            .find(|tx| tx.compute_txid() == wanted)
            .map(bitcoin::consensus::serialize)
    }

    /// The tip's hash and height.
    pub fn tip(&self) -> (Hash32, u64) {
        let h = self.tip_height();
        (self.blocks[h as usize].hash, h)
    }

    /// The tip's height.
    pub fn tip_height(&self) -> u64 {
        self.blocks.len() as u64 - 1
    }

    /// The tip's compact target.
    pub(crate) fn tip_bits(&self) -> u32 {
        self.blocks[self.tip_height() as usize].bits
    }

    /// The block hash at `height`.
    ///
    /// # Panics
    ///
    /// Above the tip (use [`MemoryChain::height_of`] / the backend's
    /// `get_block_hash` for an `Option`).
    pub fn hash_at(&self, height: u64) -> Hash32 {
        self.entry(height).hash
    }

    /// The height of a block of this chain, `None` for any other hash.
    pub fn height_of(&self, hash: &Hash32) -> Option<u64> {
        self.heights.get(hash).copied()
    }

    /// The consensus bytes of the block at `height`.
    ///
    /// # Panics
    ///
    /// Above the tip.
    pub fn block_bytes(&self, height: u64) -> Vec<u8> {
        self.entry(height).raw.to_vec()
    }

    /// The 80-byte header of the block at `height`.
    ///
    /// # Panics
    ///
    /// Above the tip.
    pub fn header_bytes(&self, height: u64) -> Vec<u8> {
        self.entry(height).header.clone()
    }

    fn entry(&self, height: u64) -> &BlockEntry {
        usize::try_from(height)
            .ok()
            .and_then(|h| self.blocks.get(h))
            .unwrap_or_else(|| panic!("height {height} is above the tip {}", self.tip_height()))
    }

    /// Total chain work up to the tip, 32 bytes big-endian.
    pub fn chain_work(&self) -> [u8; 32] {
        self.chain_work.to_be_bytes()
    }

    /// Number of unspent outputs.
    pub fn utxo_count(&self) -> usize {
        self.utxos.len()
    }

    /// Sum of the unspent outputs' values, satoshis.
    pub fn utxo_total_value(&self) -> u64 {
        self.utxos.values().map(|u| u.value).sum()
    }

    /// An unspent output of the confirmed chain (not the mempool view).
    pub fn utxo(&self, outpoint: &OutPoint) -> Option<Utxo> {
        self.utxos.get(&to_btc_outpoint(outpoint)).cloned()
    }

    pub(crate) fn utxo_btc(&self, outpoint: &bitcoin::OutPoint) -> Option<&Utxo> {
        self.utxos.get(outpoint)
    }

    /// Every confirmed txid, in chain order (block order, then position in
    /// the block), the genesis coinbase included.
    pub fn txids(&self) -> Vec<Hash32> {
        self.txid_order.clone()
    }

    /// The confirmed txids that are not coinbases, in chain order.
    pub fn non_coinbase_txids(&self) -> Vec<Hash32> {
        self.blocks
            .iter()
            .enumerate()
            .flat_map(|(h, _)| {
                parsed_mainnet()[h]
                    .block
                    .txdata
                    .iter()
                    .filter(|tx| !tx.is_coinbase())
                    .map(|tx| txid32(tx.compute_txid()))
            })
            .collect()
    }

    /// A confirmed transaction's bytes and the height of its block.
    pub fn confirmed_tx(&self, txid: &Hash32) -> Option<(Vec<u8>, u64)> {
        self.txs.get(txid).cloned()
    }

    /// The lowest-height unspent coinbase output that is mature for the
    /// next block (at least 100 blocks deep), with its output; `None` when
    /// the chain is shorter than that. Real and unspent, but nobody here
    /// holds its key: use it for `get_utxo`, not to build a spend.
    pub fn mature_coinbase_outpoint(&self) -> Option<(OutPoint, Utxo)> {
        let next = self.tip_height() + 1;
        self.utxos
            .iter()
            .filter(|(_, u)| u.is_coinbase && next - u.height >= COINBASE_MATURITY)
            .min_by_key(|(o, u)| (u.height, o.vout))
            .map(|(o, u)| {
                (
                    OutPoint {
                        txid: txid32(o.txid),
                        vout: o.vout,
                    },
                    u.clone(),
                )
            })
    }

    /// The decoded transaction behind a confirmed txid (for tests that want
    /// to inspect inputs and outputs).
    pub fn transaction(&self, txid: &Hash32) -> Option<Transaction> {
        let (bytes, _) = self.txs.get(txid)?;
        Some(bitcoin::consensus::deserialize(bytes).expect("indexed tx bytes decode"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hash32 {
        Hash32::from_display_hex(s).unwrap()
    }

    const BLOCK_170_TX: &str = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16";
    const BLOCK_9_COINBASE: &str = "0437cd7f8525ceed2324359c2d0ba26006d92d856a9c20fa0241106ee5a597c9";

    #[test]
    fn memory_chain_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MemoryChain>();
    }

    #[test]
    fn tip_genesis_and_tx_count_are_the_real_ones() {
        let c = MemoryChain::mainnet_0_438();
        assert_eq!(c.tip(), (h(MAINNET_TIP_HASH), 438));
        assert_eq!(c.hash_at(0), h(GENESIS_HASH));
        assert_eq!(c.height_of(&h(GENESIS_HASH)), Some(0));
        assert_eq!(c.txids().len(), 446);
        assert_eq!(c.non_coinbase_txids().len(), 7);
        assert_eq!(c.header_bytes(438).len(), 80);
        let tip: Block = bitcoin::consensus::deserialize(&c.block_bytes(438)).unwrap();
        assert_eq!(block_hash32(tip.block_hash()), h(MAINNET_TIP_HASH));
        // Every header has difficulty-1 bits, so the work is 439 times the
        // work of 0x1d00ffff: 2^256 / (target + 1) = 0x1_0001_0001.
        let mut expected = [0u8; 32];
        expected[24..].copy_from_slice(&(439u64 * 0x1_0001_0001).to_be_bytes());
        assert_eq!(c.chain_work(), expected);
        assert_eq!(439u64 * 0x1_0001_0001, 0x1b7_01b7_01b7);
    }

    #[test]
    fn block_170_spends_block_9_coinbase() {
        let c = MemoryChain::mainnet_0_438();
        let id = h(BLOCK_170_TX);
        assert_eq!(c.non_coinbase_txids()[0], id);
        let (_, height) = c.confirmed_tx(&id).unwrap();
        assert_eq!(height, 170);
        let tx = c.transaction(&id).unwrap();
        assert_eq!(tx.input.len(), 1);
        let spent = OutPoint {
            txid: txid32(tx.input[0].previous_output.txid),
            vout: tx.input[0].previous_output.vout,
        };
        assert_eq!(
            spent,
            OutPoint {
                txid: h(BLOCK_9_COINBASE),
                vout: 0
            }
        );
        assert_eq!(c.confirmed_tx(&h(BLOCK_9_COINBASE)).unwrap().1, 9);
        assert!(c.utxo(&spent).is_none(), "block 9's coinbase is spent");
        // Before block 170 it was unspent: 50 BTC, coinbase, height 9.
        let before = MemoryChain::mainnet_up_to(169);
        let u = before.utxo(&spent).unwrap();
        assert_eq!((u.value, u.height, u.is_coinbase), (50 * 100_000_000, 9, true));
        assert!(before.confirmed_tx(&id).is_none());
        assert_eq!(MemoryChain::raw_tx(&id).unwrap(), c.confirmed_tx(&id).unwrap().0);
    }

    #[test]
    fn utxo_set_matches_an_independent_count() {
        let c = MemoryChain::mainnet_0_438();
        // Independently: every output of heights 1..=438 minus every input
        // of a non-coinbase tx (each spends one earlier output).
        let blocks = parsed_mainnet();
        let (mut count, mut value) = (0usize, 0u64);
        let mut coinbase_value = 0u64;
        for p in &blocks[1..] {
            for tx in &p.block.txdata {
                count += tx.output.len();
                let out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
                value += out;
                if tx.is_coinbase() {
                    coinbase_value += out;
                    continue;
                }
                count -= tx.input.len();
                for input in &tx.input {
                    let funding = blocks
                        .iter()
                        .flat_map(|b| b.block.txdata.iter())
                        .find(|t| t.compute_txid() == input.previous_output.txid)
                        .unwrap();
                    value -= funding.output[input.previous_output.vout as usize].value.to_sat();
                }
            }
        }
        // 438 spendable coinbases of exactly 50 BTC each (no fees were paid
        // in these blocks), so value is conserved: 21,900 BTC.
        assert_eq!(coinbase_value, 438 * 50 * 100_000_000);
        assert_eq!(c.utxo_count(), count);
        assert_eq!(c.utxo_total_value(), value);
        // 438 coinbase outputs + 12 outputs of the 7 spends - 7 spent
        // outputs (one coinbase, block 9's; six outputs of those spends).
        assert_eq!(c.utxo_count(), 443);
        assert_eq!(c.utxo_total_value(), 2_190_000_000_000);
        let coinbase_utxos = c.utxos.values().filter(|u| u.is_coinbase).count();
        assert_eq!(coinbase_utxos, 437);
    }

    #[test]
    fn mature_coinbase_outpoint_is_unspent_and_deep() {
        let c = MemoryChain::mainnet_0_438();
        let (o, u) = c.mature_coinbase_outpoint().unwrap();
        assert!(u.is_coinbase);
        assert_eq!(u.height, 1);
        assert_eq!(c.utxo(&o), Some(u));
        assert!(MemoryChain::mainnet_up_to(50).mature_coinbase_outpoint().is_none());
    }

    #[test]
    fn block_702861_is_the_real_large_block() {
        let (bytes, hash) = block_702861();
        assert_eq!(bytes.len(), 1_381_836);
        assert_eq!(hash, h(BLOCK_702861_HASH));
        let block: Block = bitcoin::consensus::deserialize(bytes).unwrap();
        assert_eq!(block.txdata.len(), 2_500);
        assert!(block.check_merkle_root());
        assert_eq!(block.bip34_block_height().unwrap(), 702_861);
    }
}
