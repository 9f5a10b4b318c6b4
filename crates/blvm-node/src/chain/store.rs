//! The redb tables and the encoding of their records.
//!
//! Every change to the active chain is one write transaction that updates
//! all tables together (index, block, active chain, tx index, UTXO set, undo,
//! tip and counters), so a crash at any point leaves the store at the last
//! committed block: redb's commit is atomic, and nothing about the chain is
//! kept only in memory across commits.

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::{Amount, BlockHash, OutPoint, ScriptBuf, TxOut, Txid};
use redb::TableDefinition;

use super::error::ChainError;
use super::view::Coin;

/// Block index: block hash → [`IndexRecord`].
pub(crate) const INDEX: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("block_index");
/// Raw blocks: block hash → consensus bytes.
pub(crate) const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
/// Active chain: height → block hash.
pub(crate) const ACTIVE: TableDefinition<u32, &[u8; 32]> = TableDefinition::new("active_chain");
/// Transaction index: txid → block hash + position in the block (u32 LE).
pub(crate) const TX_INDEX: TableDefinition<&[u8; 32], &[u8; 36]> = TableDefinition::new("tx_index");
/// UTXO set: txid + vout (u32 LE) → [`encode_coin`].
pub(crate) const UTXO: TableDefinition<&[u8; 36], &[u8]> = TableDefinition::new("utxo");
/// Undo data: block hash → the coins its inputs spent, in block order.
pub(crate) const UNDO: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("undo");
/// Durable event cursors of modules: module name → [`encode_cursor`]
/// (`node::cursors`), written by the module's acknowledgements.
pub(crate) const MODULE_CURSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("module_cursors");
/// Tip, counters and the network name.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

pub(crate) const META_TIP: &str = "tip";
pub(crate) const META_UTXO_COUNT: &str = "utxo_count";
pub(crate) const META_UTXO_VALUE: &str = "utxo_value";
pub(crate) const META_NETWORK: &str = "network";

/// Validation state of a block in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockStatus {
    /// Stored, not yet connected (a side branch, or waiting for a reorg).
    HaveData,
    /// Connected at least once: fully valid.
    Valid,
    /// The block itself broke a rule (or was invalidated by `invalidateblock`).
    Failed,
    /// An ancestor failed.
    FailedChild,
}

impl BlockStatus {
    /// Whether this block or an ancestor is known invalid.
    pub fn is_invalid(self) -> bool {
        matches!(self, BlockStatus::Failed | BlockStatus::FailedChild)
    }

    fn to_byte(self) -> u8 {
        match self {
            BlockStatus::HaveData => 0,
            BlockStatus::Valid => 1,
            BlockStatus::Failed => 2,
            BlockStatus::FailedChild => 3,
        }
    }

    fn from_byte(b: u8) -> Option<BlockStatus> {
        Some(match b {
            0 => BlockStatus::HaveData,
            1 => BlockStatus::Valid,
            2 => BlockStatus::Failed,
            3 => BlockStatus::FailedChild,
            _ => return None,
        })
    }
}

/// One block index entry as stored: header, height, total chain work, status.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexRecord {
    pub header: Header,
    pub height: u32,
    pub work: Work,
    pub status: BlockStatus,
}

impl IndexRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(80 + 4 + 32 + 1);
        v.extend_from_slice(&serialize(&self.header));
        v.extend_from_slice(&self.height.to_le_bytes());
        v.extend_from_slice(&self.work.to_be_bytes());
        v.push(self.status.to_byte());
        v
    }

    pub fn decode(b: &[u8]) -> Result<IndexRecord, ChainError> {
        if b.len() != 117 {
            return Err(ChainError::Corrupt(format!("index record of {} bytes", b.len())));
        }
        let header: Header = deserialize(&b[..80]).map_err(|e| ChainError::Corrupt(format!("index header: {e}")))?;
        let height = u32::from_le_bytes([b[80], b[81], b[82], b[83]]);
        let mut work = [0u8; 32];
        work.copy_from_slice(&b[84..116]);
        let status = BlockStatus::from_byte(b[116]).ok_or_else(|| ChainError::Corrupt("index status".into()))?;
        Ok(IndexRecord {
            header,
            height,
            work: Work::from_be_bytes(work),
            status,
        })
    }
}

pub(crate) fn hash_key(h: &BlockHash) -> [u8; 32] {
    h.to_byte_array()
}

pub(crate) fn txid_key(t: &Txid) -> [u8; 32] {
    t.to_byte_array()
}

pub(crate) fn outpoint_key(op: &OutPoint) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(&op.txid.to_byte_array());
    k[32..].copy_from_slice(&op.vout.to_le_bytes());
    k
}

pub(crate) fn tx_location(block: &BlockHash, pos: u32) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(&block.to_byte_array());
    k[32..].copy_from_slice(&pos.to_le_bytes());
    k
}

pub(crate) fn decode_tx_location(b: &[u8; 36]) -> (BlockHash, u32) {
    let mut h = [0u8; 32];
    h.copy_from_slice(&b[..32]);
    (
        BlockHash::from_byte_array(h),
        u32::from_le_bytes([b[32], b[33], b[34], b[35]]),
    )
}

/// Coin: value u64 LE, height u32 LE, coinbase flag u8, script bytes.
pub(crate) fn encode_coin(c: &Coin, out: &mut Vec<u8>) {
    out.extend_from_slice(&c.txout.value.to_sat().to_le_bytes());
    out.extend_from_slice(&c.height.to_le_bytes());
    out.push(c.is_coinbase as u8);
    out.extend_from_slice(c.txout.script_pubkey.as_bytes());
}

pub(crate) fn decode_coin(b: &[u8]) -> Result<Coin, ChainError> {
    if b.len() < 13 {
        return Err(ChainError::Corrupt(format!("coin of {} bytes", b.len())));
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[..8]);
    Ok(Coin {
        txout: TxOut {
            value: Amount::from_sat(u64::from_le_bytes(v)),
            script_pubkey: ScriptBuf::from_bytes(b[13..].to_vec()),
        },
        height: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        is_coinbase: b[12] != 0,
    })
}

/// Undo data: for each spent coin in block order, u32 LE length + coin.
pub(crate) fn encode_undo(coins: &[Coin]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for c in coins {
        buf.clear();
        encode_coin(c, &mut buf);
        out.extend_from_slice(&(buf.len() as u32).to_le_bytes());
        out.extend_from_slice(&buf);
    }
    out
}

pub(crate) fn decode_undo(mut b: &[u8]) -> Result<Vec<Coin>, ChainError> {
    let mut coins = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(ChainError::Corrupt("undo length".into()));
        }
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let rest = &b[4..];
        if rest.len() < n {
            return Err(ChainError::Corrupt("undo record".into()));
        }
        coins.push(decode_coin(&rest[..n])?);
        b = &rest[n..];
    }
    Ok(coins)
}

pub(crate) fn u64_bytes(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

pub(crate) fn read_u64(b: &[u8]) -> Result<u64, ChainError> {
    let a: [u8; 8] = b.try_into().map_err(|_| ChainError::Corrupt("counter".into()))?;
    Ok(u64::from_le_bytes(a))
}
