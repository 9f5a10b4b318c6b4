//! The table of per-block statistics, kept in the node's module storage
//! (tree `blocks`, key: the height as 8 big-endian bytes, value: the
//! MessagePack of [`BlockStats`]) so it survives restarts of the module
//! and of the node; and its summary.

use std::collections::BTreeMap;

use bitcoin::{Amount, Block};
use blvm_sdk::protocol::methods::storage::Scan;
use blvm_sdk::{Hash32, NodeApiIpc, SdkError};
use serde::{Deserialize, Serialize};

/// The storage tree.
pub const TREE: &str = "blocks";

/// What the module keeps per block.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockStats {
    /// The block's hash, as the node names it.
    pub hash: Hash32,
    /// Transactions.
    pub txs: u64,
    /// Serialized size in bytes.
    pub size: u64,
    /// Weight in weight units.
    pub weight: u64,
    /// The sum of its outputs, in satoshis.
    pub outputs_sat: u64,
}

impl BlockStats {
    /// The statistics of `block`, `size` bytes serialized.
    pub fn of(hash: Hash32, block: &Block, size: usize) -> BlockStats {
        let outputs = block
            .txdata
            .iter()
            .flat_map(|tx| tx.output.iter())
            .map(|o| o.value)
            .fold(Amount::ZERO, |a, v| a.checked_add(v).unwrap_or(a));
        BlockStats {
            hash,
            txs: block.txdata.len() as u64,
            size: size as u64,
            weight: block.weight().to_wu(),
            outputs_sat: outputs.to_sat(),
        }
    }
}

/// A summary of the table (or of its last blocks): what the JSON-RPC
/// method, the module API and the `block-stats.summary` event carry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Blocks summarised.
    pub blocks: u64,
    /// Their transactions.
    pub txs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Their weight.
    pub weight: u64,
    /// The sum of their outputs, in satoshis.
    pub outputs_sat: u64,
    /// The lowest height summarised.
    pub first_height: Option<u64>,
    /// The highest.
    pub last_height: Option<u64>,
}

/// The table in memory, mirrored to storage on every change.
#[derive(Debug, Default)]
pub struct Table {
    blocks: BTreeMap<u64, BlockStats>,
}

fn key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

fn encode_error(e: rmp_serde::encode::Error) -> SdkError {
    SdkError::Io(std::io::Error::other(e))
}

impl Table {
    /// Reads the table back from storage, page by page. Entries that do not
    /// decode (written by another version) are skipped.
    pub async fn load(api: &NodeApiIpc) -> Result<Table, SdkError> {
        let mut table = Table::default();
        let mut cursor = None;
        loop {
            let page = api
                .storage_scan(&Scan {
                    tree: TREE.into(),
                    cursor,
                    ..Scan::default()
                })
                .await?;
            for e in page.entries {
                let (Ok(k), Ok(stats)) = (
                    <[u8; 8]>::try_from(e.key.as_slice()),
                    rmp_serde::from_slice::<BlockStats>(&e.value),
                ) else {
                    continue;
                };
                table.blocks.insert(u64::from_be_bytes(k), stats);
            }
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(table),
            }
        }
    }

    /// Records block `height` (replacing what was there) here and in
    /// storage.
    pub async fn insert(&mut self, api: &NodeApiIpc, height: u64, stats: BlockStats) -> Result<(), SdkError> {
        let value = rmp_serde::to_vec_named(&stats).map_err(encode_error)?;
        api.storage_put(TREE, &key(height), &value).await?;
        self.blocks.insert(height, stats);
        Ok(())
    }

    /// Forgets block `height` (disconnected) here and in storage.
    pub async fn remove(&mut self, api: &NodeApiIpc, height: u64) -> Result<(), SdkError> {
        api.storage_delete(TREE, &key(height)).await?;
        self.blocks.remove(&height);
        Ok(())
    }

    /// Blocks in the table.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// The summary of the last `last` blocks (all of them when `None`).
    pub fn summary(&self, last: Option<usize>) -> Summary {
        let take = last.unwrap_or(self.blocks.len());
        let mut s = Summary::default();
        for (height, b) in self.blocks.iter().rev().take(take) {
            s.blocks += 1;
            s.txs += b.txs;
            s.bytes += b.size;
            s.weight += b.weight;
            s.outputs_sat = s.outputs_sat.saturating_add(b.outputs_sat);
            s.first_height = Some(*height);
            s.last_height = s.last_height.or(Some(*height));
        }
        s
    }

    /// The MessagePack of [`Table::summary`] of everything.
    pub fn summary_bytes(&self) -> Result<Vec<u8>, SdkError> {
        rmp_serde::to_vec_named(&self.summary(None)).map_err(encode_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(txs: u64) -> BlockStats {
        BlockStats {
            hash: Hash32([1; 32]),
            txs,
            size: 100 * txs,
            weight: 400 * txs,
            outputs_sat: 50,
        }
    }

    #[test]
    fn a_summary_covers_the_last_blocks_asked_for() {
        let mut t = Table::default();
        for h in 1..=5 {
            t.blocks.insert(h, stats(h));
        }
        let all = t.summary(None);
        assert_eq!(
            (all.blocks, all.txs, all.first_height, all.last_height),
            (5, 15, Some(1), Some(5))
        );
        let last2 = t.summary(Some(2));
        assert_eq!(
            (last2.blocks, last2.txs, last2.first_height, last2.last_height),
            (2, 9, Some(4), Some(5))
        );
        assert_eq!(Table::default().summary(None), Summary::default());
    }
}
