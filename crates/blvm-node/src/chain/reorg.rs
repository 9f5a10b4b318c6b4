//! Accepting blocks and choosing the best chain: [`Chain::process_block`],
//! reorganisation to the valid branch with the most work, and Core's
//! `invalidateblock` / `reconsiderblock`.
//!
//! A block whose parent is known is checked (proof of work, difficulty,
//! time, merkle root, transactions, witness commitment), then either
//! connected (it extends the tip), stored as a side branch, or — when its
//! branch has more work than the tip — the chain is reorganised: disconnect
//! to the fork point, connect the branch. A branch block that fails is
//! marked invalid with its descendants, and the best valid chain is
//! activated again (possibly the old one).

use std::sync::Arc;
use std::time::Instant;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::{Block, BlockHash};

use super::api::Chain;
use super::error::{BlockError, ChainError, Reject};
use super::events::ChainEvent;
use super::store::{self, BlockStatus, IndexRecord};
use super::validate::{self, Context};

/// What [`Chain::process_block`] did with a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessOutcome {
    /// It extended the active chain.
    Connected {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// It was stored on a branch with no more work than the active chain.
    SideBranch {
        /// The block.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// It was already known (Core's `duplicate`).
    Duplicate {
        /// The block.
        hash: BlockHash,
    },
    /// Its branch had more work: the chain was reorganised.
    Reorg(ReorgSummary),
}

/// What a reorganisation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReorgSummary {
    /// Tip before.
    pub old_tip: BlockHash,
    /// Height of the tip before.
    pub old_height: u32,
    /// Tip after.
    pub new_tip: BlockHash,
    /// Height of the tip after.
    pub new_height: u32,
    /// Blocks disconnected, old tip first.
    pub disconnected: Vec<BlockHash>,
    /// Blocks connected, lowest first.
    pub connected: Vec<BlockHash>,
}

impl Chain {
    /// Validates and stores a block, and connects it or reorganises when its
    /// branch has the most work. Errors carry Core's reject reason
    /// ([`BlockError::reason`]).
    pub fn process_block(&self, block: &Block) -> Result<ProcessOutcome, BlockError> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let hash = block.block_hash();
        let parent = block.header.prev_blockhash;
        let (height, ctx, parent_invalid, extends_tip) = {
            let st = self.read_state();
            if let Some(rec) = st.index.get(&hash) {
                if rec.status.is_invalid() {
                    return Err(Reject::new("duplicate-invalid", "block is marked invalid").into());
                }
                return Ok(ProcessOutcome::Duplicate { hash });
            }
            let prec = st.index.get(&parent).ok_or(BlockError::Orphan(parent))?;
            let ctx = Context {
                height: prec.height + 1,
                mtp_prev: st.index.median_time_past(&parent),
                required_bits: st.index.next_bits(&parent, Some(block.header.time), &self.cp),
                now: self.now(),
            };
            (prec.height + 1, ctx, prec.status.is_invalid(), parent == st.index.tip())
        };
        self.emit(ChainEvent::BlockValidationStarted { hash, height });
        let started = Instant::now();
        let result = self.accept(block, hash, &ctx, parent_invalid, extends_tip);
        self.emit(ChainEvent::BlockValidationCompleted {
            hash,
            height,
            success: result.is_ok(),
            duration: started.elapsed(),
            error: result.as_ref().err().map(|e| e.to_string()),
        });
        result
    }

    fn accept(
        &self,
        block: &Block,
        hash: BlockHash,
        ctx: &Context,
        parent_invalid: bool,
        extends_tip: bool,
    ) -> Result<ProcessOutcome, BlockError> {
        let height = ctx.height;
        // Header checks first: a block failing them is not stored at all
        // (Core does not index it either), so junk costs no disk.
        let header_ok = validate::check_pow(&block.header, &hash, &self.cp)
            .and_then(|_| validate::check_header_context(&block.header, ctx, &self.cp));
        if let Err(r) = header_ok {
            self.violation(&r, hash);
            return Err(r.into());
        }
        if parent_invalid {
            let r = Reject::new("bad-prevblk", "previous block is invalid");
            self.store_block(block, hash, height, BlockStatus::FailedChild)?;
            self.violation(&r, hash);
            return Err(r.into());
        }
        let body_ok = validate::check_block(block).and_then(|_| validate::check_block_context(block, ctx, &self.cp));
        if let Err(r) = body_ok {
            self.violation(&r, hash);
            // A mutated block may have a valid twin with the same hash:
            // remember nothing about it.
            if !r.mutated {
                self.store_block(block, hash, height, BlockStatus::Failed)?;
            }
            return Err(r.into());
        }
        let block = Arc::new(block.clone());
        if extends_tip {
            return match self.connect_tip(&block, hash, false) {
                Ok(()) => Ok(ProcessOutcome::Connected { hash, height }),
                Err(BlockError::Invalid(r)) => {
                    self.store_block(&block, hash, height, BlockStatus::Failed)?;
                    Err(BlockError::Invalid(r))
                }
                Err(e) => Err(e),
            };
        }
        let rec = self.store_block(&block, hash, height, BlockStatus::HaveData)?;
        if rec.work <= self.read_state().index.tip_work() {
            return Ok(ProcessOutcome::SideBranch { hash, height });
        }
        let mut reorg = Reorganisation::start(self);
        let failure = self.activate_best_chain(&mut reorg, Some((hash, block)))?;
        let summary = reorg.finish(self);
        let status = self.read_state().index.get(&hash).map(|r| r.status);
        match status {
            Some(s) if s.is_invalid() => Err(failure
                .map(BlockError::Invalid)
                .unwrap_or_else(|| Reject::new("bad-prevblk", "branch is invalid").into())),
            _ if summary.disconnected.is_empty() && summary.connected.is_empty() => {
                Ok(ProcessOutcome::SideBranch { hash, height })
            }
            _ if summary.disconnected.is_empty() => Ok(ProcessOutcome::Connected { hash, height }),
            _ => Ok(ProcessOutcome::Reorg(summary)),
        }
    }

    /// Writes a block and its index entry (not connected) in one transaction.
    fn store_block(
        &self,
        block: &Block,
        hash: BlockHash,
        height: u32,
        status: BlockStatus,
    ) -> Result<IndexRecord, ChainError> {
        let work = {
            let st = self.read_state();
            st.index
                .get(&block.header.prev_blockhash)
                .map(|p| p.work)
                .ok_or(ChainError::UnknownBlock(block.header.prev_blockhash))?
                + block.header.work()
        };
        let rec = IndexRecord {
            header: block.header,
            height,
            work,
            status,
        };
        let key = store::hash_key(&hash);
        let wtx = self.db.begin_write()?;
        wtx.open_table(store::INDEX)?.insert(&key, rec.encode().as_slice())?;
        wtx.open_table(store::BLOCKS)?
            .insert(&key, serialize(block).as_slice())?;
        wtx.commit()?;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .index
            .map
            .insert(hash, rec);
        Ok(rec)
    }

    /// Marks `hash` failed and its descendants failed-child, in one transaction.
    fn mark_invalid(&self, hash: &BlockHash) -> Result<(), ChainError> {
        let mut changes = Vec::new();
        {
            let st = self.read_state();
            if let Some(r) = st.index.get(hash) {
                changes.push((
                    *hash,
                    IndexRecord {
                        status: BlockStatus::Failed,
                        ..*r
                    },
                ));
            }
            for d in st.index.descendants(hash) {
                if let Some(r) = st.index.get(&d) {
                    if r.status != BlockStatus::Failed {
                        changes.push((
                            d,
                            IndexRecord {
                                status: BlockStatus::FailedChild,
                                ..*r
                            },
                        ));
                    }
                }
            }
        }
        self.write_statuses(&changes)
    }

    fn write_statuses(&self, changes: &[(BlockHash, IndexRecord)]) -> Result<(), ChainError> {
        let wtx = self.db.begin_write()?;
        {
            let mut t = wtx.open_table(store::INDEX)?;
            for (h, r) in changes {
                t.insert(&store::hash_key(h), r.encode().as_slice())?;
            }
        }
        wtx.commit()?;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        for (h, r) in changes {
            st.index.set_status(h, r.status);
        }
        Ok(())
    }

    fn load_block(&self, hash: &BlockHash) -> Result<Arc<Block>, ChainError> {
        let bytes = self
            .try_block_bytes(hash)?
            .ok_or_else(|| ChainError::Corrupt(format!("block {hash} has no data")))?;
        let block = deserialize(&bytes).map_err(|e| ChainError::Corrupt(format!("block {hash}: {e}")))?;
        Ok(Arc::new(block))
    }

    /// Moves the tip to the valid block with the most work, while one has
    /// more work than the tip. Returns the last consensus failure met, if any.
    fn activate_best_chain(
        &self,
        reorg: &mut Reorganisation,
        mut known: Option<(BlockHash, Arc<Block>)>,
    ) -> Result<Option<Reject>, BlockError> {
        let mut failure = None;
        loop {
            let (best, fork, path) = {
                let st = self.read_state();
                let Some(best) = st.index.best_candidate() else { break };
                let Some(fork) = st.index.fork_point(&best) else { break };
                (best, fork, st.index.path_from_fork(&best))
            };
            tracing::info!(%best, %fork, blocks = path.len(), "activating best chain");
            while self.read_state().index.tip() != fork {
                let (h, _, _) = self.disconnect_tip()?;
                reorg.disconnected(h);
            }
            for h in path {
                let block = match &known {
                    Some((k, b)) if *k == h => b.clone(),
                    _ => self.load_block(&h)?,
                };
                match self.connect_tip(&block, h, true) {
                    Ok(()) => reorg.connected(h),
                    Err(BlockError::Invalid(r)) => {
                        tracing::warn!(hash = %h, reason = %r, "branch block invalid");
                        self.mark_invalid(&h)?;
                        failure = Some(r);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            // The in-memory block is only useful on the first pass.
            known = None;
            let _ = best;
        }
        Ok(failure)
    }

    /// Core's `invalidateblock`: marks the block invalid (its descendants
    /// too), disconnects it if active, and activates the best remaining chain.
    pub fn invalidate_block(&self, hash: &BlockHash) -> Result<Option<ReorgSummary>, ChainError> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let height = self
            .read_state()
            .index
            .get(hash)
            .map(|r| r.height)
            .ok_or(ChainError::UnknownBlock(*hash))?;
        if height == 0 {
            return Err(ChainError::Genesis);
        }
        let mut reorg = Reorganisation::start(self);
        while self.read_state().index.is_active(hash) {
            let (h, _, _) = self.disconnect_tip()?;
            reorg.disconnected(h);
        }
        self.mark_invalid(hash)?;
        self.activate_best_chain(&mut reorg, None).map_err(into_chain_error)?;
        let summary = reorg.finish(self);
        Ok((!summary.disconnected.is_empty() || !summary.connected.is_empty()).then_some(summary))
    }

    /// Core's `reconsiderblock`: clears the invalid marks of the block, its
    /// ancestors and descendants, and activates the best chain.
    pub fn reconsider_block(&self, hash: &BlockHash) -> Result<Option<ReorgSummary>, ChainError> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let changes: Vec<(BlockHash, IndexRecord)> = {
            let st = self.read_state();
            let rec = st.index.get(hash).ok_or(ChainError::UnknownBlock(*hash))?;
            let mut related = st.index.descendants(hash);
            related.push(*hash);
            let mut cur = rec.header.prev_blockhash;
            while let Some(r) = st.index.get(&cur) {
                related.push(cur);
                if r.height == 0 {
                    break;
                }
                cur = r.header.prev_blockhash;
            }
            related
                .into_iter()
                .filter_map(|h| {
                    st.index.get(&h).filter(|r| r.status.is_invalid()).map(|r| {
                        (
                            h,
                            IndexRecord {
                                status: BlockStatus::HaveData,
                                ..*r
                            },
                        )
                    })
                })
                .collect()
        };
        self.write_statuses(&changes)?;
        let mut reorg = Reorganisation::start(self);
        self.activate_best_chain(&mut reorg, None).map_err(into_chain_error)?;
        let summary = reorg.finish(self);
        Ok((!summary.disconnected.is_empty() || !summary.connected.is_empty()).then_some(summary))
    }
}

fn into_chain_error(e: BlockError) -> ChainError {
    match e {
        BlockError::Chain(c) => c,
        // activate_best_chain turns consensus failures into invalid marks;
        // an orphan here means the index lost a parent.
        other => ChainError::Corrupt(other.to_string()),
    }
}

/// Bookkeeping of one reorganisation, which may take several passes (a
/// failed branch sends the tip back to the old chain).
struct Reorganisation {
    old_tip: BlockHash,
    old_height: u32,
    disconnected: Vec<BlockHash>,
    connected: Vec<BlockHash>,
}

impl Reorganisation {
    fn start(chain: &Chain) -> Reorganisation {
        let st = chain.read_state();
        Reorganisation {
            old_tip: st.index.tip(),
            old_height: st.index.tip_height(),
            disconnected: Vec::new(),
            connected: Vec::new(),
        }
    }

    fn disconnected(&mut self, h: BlockHash) {
        // Undoing a block this reorganisation connected is no net change.
        if self.connected.last() == Some(&h) {
            self.connected.pop();
        } else {
            self.disconnected.push(h);
        }
    }

    fn connected(&mut self, h: BlockHash) {
        if self.disconnected.last() == Some(&h) {
            self.disconnected.pop();
        } else {
            self.connected.push(h);
        }
    }

    /// Emits `Reorg` when blocks of the old chain were disconnected.
    fn finish(self, chain: &Chain) -> ReorgSummary {
        let (new_tip, new_height, fork) = {
            let st = chain.read_state();
            let fork = st.index.fork_point(&self.old_tip).unwrap_or(self.old_tip);
            (st.index.tip(), st.index.tip_height(), fork)
        };
        if !self.disconnected.is_empty() {
            let fork_height = chain.header(&fork).map(|h| h.height).unwrap_or(0);
            chain.emit(ChainEvent::Reorg {
                old_tip: self.old_tip,
                old_height: self.old_height,
                new_tip,
                new_height,
                fork_point: fork,
                fork_height,
                disconnected: self.disconnected.clone(),
                connected: self.connected.clone(),
            });
        }
        ReorgSummary {
            old_tip: self.old_tip,
            old_height: self.old_height,
            new_tip,
            new_height,
            disconnected: self.disconnected,
            connected: self.connected,
        }
    }
}
