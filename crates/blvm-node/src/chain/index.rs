//! The block index in memory: every known header with its height, total
//! chain work and status, plus the active chain by height.
//!
//! It is loaded from the store at open and kept in step with each commit.
//! Headers are small (117 bytes a record), so even mainnet's index fits in
//! memory, and chain walks (median time past, retarget windows, fork points)
//! never touch the disk.

use std::collections::HashMap;

use bitcoin::pow::Work;
use bitcoin::{BlockHash, CompactTarget};

use super::params::ChainParams;
use super::store::{BlockStatus, IndexRecord};

/// Number of blocks whose median time a new block must exceed (BIP113).
const MEDIAN_TIME_SPAN: usize = 11;

#[derive(Debug, Default)]
pub(crate) struct BlockIndex {
    pub map: HashMap<BlockHash, IndexRecord>,
    /// Active chain, by height.
    pub active: Vec<BlockHash>,
}

impl BlockIndex {
    pub fn get(&self, hash: &BlockHash) -> Option<&IndexRecord> {
        self.map.get(hash)
    }

    pub fn tip(&self) -> BlockHash {
        // The active chain always holds genesis: `Chain::open` creates it
        // before the index is shared.
        self.active
            .last()
            .copied()
            .unwrap_or_else(|| BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()))
    }

    pub fn tip_height(&self) -> u32 {
        self.active.len().saturating_sub(1) as u32
    }

    pub fn tip_work(&self) -> Work {
        self.get(&self.tip())
            .map(|r| r.work)
            .unwrap_or(Work::from_be_bytes([0; 32]))
    }

    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.get(hash)
            .is_some_and(|r| self.active.get(r.height as usize) == Some(hash))
    }

    /// The ancestor of `hash` at `height` (or `hash` itself).
    pub fn ancestor(&self, hash: &BlockHash, height: u32) -> Option<BlockHash> {
        let mut cur = *hash;
        loop {
            let rec = self.get(&cur)?;
            if rec.height < height {
                return None;
            }
            if rec.height == height {
                return Some(cur);
            }
            // Shortcut: once on the active chain, jump by height.
            if self.active.get(rec.height as usize) == Some(&cur) {
                return self.active.get(height as usize).copied();
            }
            cur = rec.header.prev_blockhash;
        }
    }

    /// Median of the timestamps of the 11 blocks ending at `hash`.
    pub fn median_time_past(&self, hash: &BlockHash) -> u32 {
        let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN);
        let mut cur = *hash;
        while times.len() < MEDIAN_TIME_SPAN {
            let Some(rec) = self.get(&cur) else { break };
            times.push(rec.header.time);
            if rec.height == 0 {
                break;
            }
            cur = rec.header.prev_blockhash;
        }
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or(0)
    }

    /// The bits a block after `parent` must carry (Core's `GetNextWorkRequired`).
    /// `time` is the new block's timestamp, which matters only on networks
    /// that allow minimum-difficulty blocks; `None` means "now-ish", as a
    /// template would be.
    pub fn next_bits(&self, parent: &BlockHash, time: Option<u32>, cp: &ChainParams) -> CompactTarget {
        let p = &cp.params;
        let Some(prec) = self.get(parent) else {
            return p.max_attainable_target.to_compact_lossy();
        };
        let height = prec.height + 1;
        let interval = (p.pow_target_timespan / p.pow_target_spacing) as u32;
        let limit = p.max_attainable_target.to_compact_lossy();
        if height % interval != 0 {
            if p.allow_min_difficulty_blocks {
                // A block more than 20 minutes after its parent may use the
                // minimum difficulty (testnet rule).
                if let Some(t) = time {
                    if u64::from(t) > u64::from(prec.header.time) + 2 * p.pow_target_spacing {
                        return limit;
                    }
                }
                // Otherwise the last bits that were not a minimum-difficulty exception.
                let mut cur = *prec;
                while cur.height > 0 && cur.height % interval != 0 && cur.header.bits == limit {
                    match self.get(&cur.header.prev_blockhash) {
                        Some(r) => cur = *r,
                        None => break,
                    }
                }
                return cur.header.bits;
            }
            return prec.header.bits;
        }
        if p.no_pow_retargeting {
            return prec.header.bits;
        }
        // Core's off-by-one: the window is the last 2016 blocks ending at the
        // parent, i.e. from height - 2016 to height - 1.
        let first_height = height.saturating_sub(interval);
        let Some(first) = self.ancestor(parent, first_height).and_then(|h| self.get(&h)) else {
            return prec.header.bits;
        };
        let timespan = i64::from(prec.header.time) - i64::from(first.header.time);
        CompactTarget::from_next_work_required(prec.header.bits, timespan.max(0) as u64, p)
    }

    /// The last block of the active chain that is an ancestor of `hash`.
    pub fn fork_point(&self, hash: &BlockHash) -> Option<BlockHash> {
        let mut cur = *hash;
        loop {
            if self.is_active(&cur) {
                return Some(cur);
            }
            cur = self.get(&cur)?.header.prev_blockhash;
        }
    }

    /// All blocks that descend from `hash` (not including it).
    pub fn descendants(&self, hash: &BlockHash) -> Vec<BlockHash> {
        let Some(root) = self.get(hash) else { return Vec::new() };
        let root_height = root.height;
        self.map
            .iter()
            .filter(|(h, r)| r.height > root_height && self.ancestor(h, root_height) == Some(*hash))
            .map(|(h, _)| *h)
            .collect()
    }

    /// The block with the most work whose own status and every ancestor's
    /// status down to the active chain is not invalid, if it has more work
    /// than the tip.
    pub fn best_candidate(&self) -> Option<BlockHash> {
        let tip_work = self.tip_work();
        let mut cands: Vec<(&BlockHash, &IndexRecord)> = self
            .map
            .iter()
            .filter(|(_, r)| r.work > tip_work && !r.status.is_invalid())
            .collect();
        // Most work first; equal work: lower hash, only for determinism.
        cands.sort_by(|a, b| b.1.work.cmp(&a.1.work).then(a.0.cmp(b.0)));
        cands.into_iter().map(|(h, _)| *h).find(|h| self.path_is_usable(h))
    }

    fn path_is_usable(&self, hash: &BlockHash) -> bool {
        let mut cur = *hash;
        loop {
            if self.is_active(&cur) {
                return true;
            }
            match self.get(&cur) {
                Some(r) if !r.status.is_invalid() => cur = r.header.prev_blockhash,
                _ => return false,
            }
        }
    }

    /// Blocks from just after the fork point up to `hash`, lowest first.
    pub fn path_from_fork(&self, hash: &BlockHash) -> Vec<BlockHash> {
        let mut path = Vec::new();
        let mut cur = *hash;
        while !self.is_active(&cur) {
            path.push(cur);
            match self.get(&cur) {
                Some(r) => cur = r.header.prev_blockhash,
                None => break,
            }
        }
        path.reverse();
        path
    }

    pub fn set_status(&mut self, hash: &BlockHash, status: BlockStatus) {
        if let Some(r) = self.map.get_mut(hash) {
            r.status = status;
        }
    }
}
