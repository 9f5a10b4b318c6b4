//! Connecting a block to the tip and disconnecting the tip, each in one
//! redb write transaction: the UTXO changes, undo data, transaction index,
//! active chain, tip and counters commit together or not at all.
//!
//! Connection checks, in Core's `ConnectBlock` order: every input exists
//! (in the UTXO set or earlier in the block) and is unspent, coinbase
//! maturity, input value ≥ output value, BIP68 sequence locks, sigops with
//! P2SH, coinbase value ≤ subsidy + fees, then scripts with the flags in
//! force at the block's height (skipped when `check_scripts` is off).
//! Witness sigops are not counted (the weight limit bounds them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bitcoin::blockdata::script::Instruction;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::{Block, BlockHash, OutPoint, Script, Transaction, TxOut};
use redb::{ReadableTable, WriteTransaction};

use super::api::Chain;
use super::error::{BlockError, ChainError, Reject};
use super::events::ChainEvent;
use super::params::VERIFY_P2SH;
use super::store::{self, BlockStatus, IndexRecord};
use super::validate::{self, Context, MAX_BLOCK_SIGOPS_COST, MAX_MONEY};
use super::view::Coin;

/// Outputs larger than this can never be spent (Core's `MAX_SCRIPT_SIZE`).
const MAX_SCRIPT_SIZE: usize = 10_000;
/// BIP68: the sequence number carries no relative lock.
const SEQUENCE_DISABLE_FLAG: u32 = 1 << 31;
/// BIP68: the relative lock is in units of 512 seconds.
const SEQUENCE_TYPE_FLAG: u32 = 1 << 22;
const SEQUENCE_MASK: u32 = 0x0000_ffff;
/// Below this many inputs a block's scripts are verified on one thread:
/// spawning costs more than it saves.
const PARALLEL_SCRIPT_THRESHOLD: usize = 64;
/// Mainnet blocks 91842 and 91880 re-created coinbases that were still
/// unspent (before BIP30); Core lets exactly these two overwrite.
const BIP30_EXCEPTIONS: [u32; 2] = [91_842, 91_880];

/// Whether an output can never be spent and so never enters the UTXO set
/// (Core's `IsUnspendable`).
pub(crate) fn is_unspendable(out: &TxOut) -> bool {
    out.script_pubkey.is_op_return() || out.script_pubkey.len() > MAX_SCRIPT_SIZE
}

/// Net change a connected block made to the UTXO counters.
struct Delta {
    count: i64,
    value: i128,
}

impl Chain {
    /// Connects `block` (whose parent is the tip) in one write transaction.
    /// The caller holds `writer`. `recheck` runs the header and context-free
    /// checks too (for blocks stored earlier and connected during a reorg or
    /// after `reconsider_block`), and wraps the work in validation events.
    pub(crate) fn connect_tip(&self, block: &Arc<Block>, hash: BlockHash, recheck: bool) -> Result<(), BlockError> {
        let (height, parent_bits, work, ctx) = {
            let st = self.read_state();
            let parent = block.header.prev_blockhash;
            let prec = st.index.get(&parent).ok_or(BlockError::Orphan(parent))?;
            debug_assert_eq!(
                parent,
                st.index.tip(),
                "connect_tip on a block that does not extend the tip"
            );
            let ctx = Context {
                height: prec.height + 1,
                mtp_prev: st.index.median_time_past(&parent),
                required_bits: st.index.next_bits(&parent, Some(block.header.time), &self.cp),
                now: self.now(),
            };
            (prec.height + 1, prec.header.bits, prec.work + block.header.work(), ctx)
        };
        let started = Instant::now();
        if recheck {
            self.emit(ChainEvent::BlockValidationStarted { hash, height });
        }
        let result = (|| {
            if recheck {
                validate::check_pow(&block.header, &hash, &self.cp)?;
                validate::check_block(block)?;
                validate::check_header_context(&block.header, &ctx, &self.cp)?;
                validate::check_block_context(block, &ctx, &self.cp)?;
            }
            let wtx = self.db.begin_write()?;
            let delta = self.apply_block(&wtx, block, hash, &ctx)?;
            let (count, value) = {
                let st = self.read_state();
                (
                    (st.utxo_count as i64 + delta.count) as u64,
                    (i128::from(st.utxo_value) + delta.value) as u64,
                )
            };
            let key = store::hash_key(&hash);
            let rec = IndexRecord {
                header: block.header,
                height,
                work,
                status: BlockStatus::Valid,
            };
            wtx.open_table(store::INDEX)?.insert(&key, rec.encode().as_slice())?;
            {
                let mut blocks = wtx.open_table(store::BLOCKS)?;
                if blocks.get(&key)?.is_none() {
                    blocks.insert(&key, serialize(block.as_ref()).as_slice())?;
                }
            }
            wtx.open_table(store::ACTIVE)?.insert(height, &key)?;
            write_tip(&wtx, &key, count, value)?;
            wtx.commit()?;
            let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
            st.index.map.insert(hash, rec);
            st.index.active.push(hash);
            st.utxo_count = count;
            st.utxo_value = value;
            Ok::<(), BlockError>(())
        })();
        if let Err(e) = &result {
            if let BlockError::Invalid(r) = e {
                self.violation(r, hash);
            }
            if recheck {
                self.emit(ChainEvent::BlockValidationCompleted {
                    hash,
                    height,
                    success: false,
                    duration: started.elapsed(),
                    error: Some(e.to_string()),
                });
            }
            return result;
        }
        if recheck {
            self.emit(ChainEvent::BlockValidationCompleted {
                hash,
                height,
                success: true,
                duration: started.elapsed(),
                error: None,
            });
        }
        tracing::debug!(%hash, height, txs = block.txdata.len(), "connected");
        self.emit(ChainEvent::BlockConnected {
            block: block.clone(),
            height,
        });
        if block.header.bits != parent_bits {
            self.emit(ChainEvent::DifficultyAdjusted {
                old_bits: parent_bits.to_consensus(),
                new_bits: block.header.bits.to_consensus(),
                height,
            });
        }
        Ok(())
    }

    pub(crate) fn violation(&self, r: &Reject, hash: BlockHash) {
        self.emit(ChainEvent::ConsensusRuleViolation {
            rule: r.reason.to_string(),
            block_hash: Some(hash),
            txid: r.txid,
            error: r.to_string(),
        });
    }

    /// The UTXO half of connection: spends inputs, checks values and
    /// scripts, adds outputs, writes undo data and the tx index.
    fn apply_block(
        &self,
        wtx: &WriteTransaction,
        block: &Block,
        hash: BlockHash,
        ctx: &Context,
    ) -> Result<Delta, BlockError> {
        let height = ctx.height;
        self.emit(ChainEvent::UtxoValidationStarted { hash, height });
        let spent = self.spend_inputs(wtx, block, hash, ctx);
        self.emit(ChainEvent::UtxoValidationCompleted {
            hash,
            height,
            success: spent.is_ok(),
        });
        let (mut delta, created, undo, jobs) = spent?;

        if self.opts.check_scripts && !jobs.is_empty() {
            let flags = self.cp.script_flags_at(height, block.header.time);
            let inputs: usize = jobs.iter().map(|(_, s)| s.len()).sum();
            self.emit(ChainEvent::ScriptVerificationStarted { hash, height, inputs });
            let t = Instant::now();
            let r = verify_scripts(block, &jobs, flags, inputs);
            self.emit(ChainEvent::ScriptVerificationCompleted {
                hash,
                height,
                inputs,
                success: r.is_ok(),
                duration: t.elapsed(),
            });
            r?;
        }

        let mut utxo = wtx.open_table(store::UTXO)?;
        let mut buf = Vec::new();
        for (op, coin) in &created {
            buf.clear();
            store::encode_coin(coin, &mut buf);
            let old = utxo
                .insert(&store::outpoint_key(op), buf.as_slice())?
                .map(|v| store::decode_coin(v.value()));
            match old {
                None => delta.count += 1,
                Some(old) => {
                    let allowed = self.cp.network() == bitcoin::Network::Bitcoin && BIP30_EXCEPTIONS.contains(&height);
                    if !allowed {
                        return Err(Reject::tx("bad-txns-BIP30", op.txid, "tried to overwrite transaction").into());
                    }
                    delta.value -= i128::from(old?.txout.value.to_sat());
                }
            }
            delta.value += i128::from(coin.txout.value.to_sat());
        }
        wtx.open_table(store::UNDO)?
            .insert(&store::hash_key(&hash), store::encode_undo(&undo).as_slice())?;
        Ok(delta)
    }

    /// Spends every input, returning the counter delta, the outputs the block
    /// creates that it does not itself spend, the undo coins, and per
    /// non-coinbase transaction the outputs its inputs spend (for scripts).
    #[allow(clippy::type_complexity)]
    fn spend_inputs(
        &self,
        wtx: &WriteTransaction,
        block: &Block,
        hash: BlockHash,
        ctx: &Context,
    ) -> Result<(Delta, HashMap<OutPoint, Coin>, Vec<Coin>, Vec<(usize, Vec<TxOut>)>), BlockError> {
        let height = ctx.height;
        let mut utxo = wtx.open_table(store::UTXO)?;
        let mut txi = wtx.open_table(store::TX_INDEX)?;
        let mut delta = Delta { count: 0, value: 0 };
        let mut created: HashMap<OutPoint, Coin> = HashMap::new();
        let mut undo = Vec::new();
        let mut jobs = Vec::with_capacity(block.txdata.len().saturating_sub(1));
        let mut fees: u64 = 0;
        let mut sigops: usize = block.txdata.iter().map(validate::legacy_sigops).sum();
        let p2sh = self.cp.script_flags_at(height, block.header.time) & VERIFY_P2SH != 0;
        let csv = height >= self.cp.csv_height;

        for (i, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            if i > 0 {
                let mut in_value: u64 = 0;
                let mut spent = Vec::with_capacity(tx.input.len());
                let mut coin_heights = Vec::with_capacity(tx.input.len());
                for input in &tx.input {
                    let op = input.previous_output;
                    let coin = match created.remove(&op) {
                        Some(c) => c,
                        None => match utxo.remove(&store::outpoint_key(&op))? {
                            Some(v) => {
                                let c = store::decode_coin(v.value())?;
                                delta.count -= 1;
                                delta.value -= i128::from(c.txout.value.to_sat());
                                c
                            }
                            None => {
                                return Err(Reject::tx(
                                    "bad-txns-inputs-missingorspent",
                                    txid,
                                    format!("input {op} missing or spent"),
                                )
                                .into())
                            }
                        },
                    };
                    if coin.is_coinbase && height - coin.height < self.opts.coinbase_maturity {
                        return Err(Reject::tx(
                            "bad-txns-premature-spend-of-coinbase",
                            txid,
                            format!("tried to spend coinbase at depth {}", height - coin.height),
                        )
                        .into());
                    }
                    in_value = in_value.saturating_add(coin.txout.value.to_sat());
                    if in_value > MAX_MONEY {
                        return Err(Reject::tx("bad-txns-inputvalues-outofrange", txid, "").into());
                    }
                    if p2sh && coin.txout.script_pubkey.is_p2sh() {
                        sigops += p2sh_sigops(&input.script_sig);
                    }
                    coin_heights.push(coin.height);
                    spent.push(coin.txout.clone());
                    undo.push(coin);
                }
                let out_value: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
                if in_value < out_value {
                    return Err(Reject::tx(
                        "bad-txns-in-belowout",
                        txid,
                        format!("value in ({in_value}) < value out ({out_value})"),
                    )
                    .into());
                }
                fees += in_value - out_value;
                if fees > MAX_MONEY {
                    return Err(Reject::tx("bad-txns-accumulated-fee-outofrange", txid, "").into());
                }
                if csv && tx.version.0 >= 2 && !self.sequence_locks_ok(tx, &coin_heights, block, ctx) {
                    return Err(Reject::tx("bad-txns-nonfinal", txid, "contains a non-BIP68-final transaction").into());
                }
                jobs.push((i, spent));
            }
            txi.insert(&store::txid_key(&txid), &store::tx_location(&hash, i as u32))?;
            for (vout, out) in tx.output.iter().enumerate() {
                if is_unspendable(out) {
                    continue;
                }
                let coin = Coin {
                    txout: out.clone(),
                    height,
                    is_coinbase: i == 0,
                };
                created.insert(
                    OutPoint {
                        txid,
                        vout: vout as u32,
                    },
                    coin,
                );
            }
        }
        if sigops * 4 > MAX_BLOCK_SIGOPS_COST {
            return Err(Reject::new("bad-blk-sigops", "too many sigops").into());
        }
        let reward: u64 = block.txdata[0].output.iter().map(|o| o.value.to_sat()).sum();
        let allowed = self.cp.subsidy(height) + fees;
        if reward > allowed {
            return Err(Reject::new(
                "bad-cb-amount",
                format!("coinbase pays too much (actual={reward} vs limit={allowed})"),
            )
            .into());
        }
        Ok((delta, created, undo, jobs))
    }

    /// BIP68 relative lock times (Core's `CalculateSequenceLocks` +
    /// `EvaluateSequenceLocks`). The parent is the tip, so ancestors are
    /// found on the active chain by height.
    fn sequence_locks_ok(&self, tx: &Transaction, coin_heights: &[u32], block: &Block, ctx: &Context) -> bool {
        let st = self.read_state();
        let parent = block.header.prev_blockhash;
        let mut min_height: i64 = -1;
        let mut min_time: i64 = -1;
        for (input, &coin_height) in tx.input.iter().zip(coin_heights) {
            let seq = input.sequence.0;
            if seq & SEQUENCE_DISABLE_FLAG != 0 {
                continue;
            }
            if seq & SEQUENCE_TYPE_FLAG != 0 {
                // The time lock counts from the median time past of the block
                // before the one that created the coin.
                let base = coin_height.saturating_sub(1);
                let coin_time = st
                    .index
                    .ancestor(&parent, base)
                    .map(|h| st.index.median_time_past(&h))
                    .unwrap_or(0);
                min_time = min_time.max(i64::from(coin_time) + (i64::from(seq & SEQUENCE_MASK) << 9) - 1);
            } else {
                min_height = min_height.max(i64::from(coin_height) + i64::from(seq & SEQUENCE_MASK) - 1);
            }
        }
        min_height < i64::from(ctx.height) && min_time < i64::from(ctx.mtp_prev)
    }

    /// Disconnects the tip in one write transaction, restoring the coins it
    /// spent from its undo data. The caller holds `writer`.
    pub(crate) fn disconnect_tip(&self) -> Result<(BlockHash, Arc<Block>, u32), ChainError> {
        let (hash, height, parent) = {
            let st = self.read_state();
            let hash = st.index.tip();
            let rec = st.index.get(&hash).ok_or(ChainError::UnknownBlock(hash))?;
            if rec.height == 0 {
                return Err(ChainError::Genesis);
            }
            (hash, rec.height, rec.header.prev_blockhash)
        };
        let key = store::hash_key(&hash);
        let wtx = self.db.begin_write()?;
        let block: Block = {
            let t = wtx.open_table(store::BLOCKS)?;
            let bytes = t
                .get(&key)?
                .ok_or_else(|| ChainError::Corrupt(format!("active block {hash} has no data")))?;
            deserialize(bytes.value()).map_err(|e| ChainError::Corrupt(format!("block {hash}: {e}")))?
        };
        let mut undo = {
            let t = wtx.open_table(store::UNDO)?;
            let bytes = t
                .get(&key)?
                .ok_or_else(|| ChainError::Corrupt(format!("active block {hash} has no undo")))?;
            store::decode_undo(bytes.value())?
        };
        let (mut count, mut value) = {
            let st = self.read_state();
            (st.utxo_count as i64, i128::from(st.utxo_value))
        };
        {
            let mut utxo = wtx.open_table(store::UTXO)?;
            let mut txi = wtx.open_table(store::TX_INDEX)?;
            let mut buf = Vec::new();
            // Reverse order: a later transaction may spend an earlier one's
            // output, which must be restored before the earlier one removes it.
            for (i, tx) in block.txdata.iter().enumerate().rev() {
                let txid = tx.compute_txid();
                for (vout, out) in tx.output.iter().enumerate() {
                    if is_unspendable(out) {
                        continue;
                    }
                    let op = OutPoint {
                        txid,
                        vout: vout as u32,
                    };
                    if let Some(v) = utxo.remove(&store::outpoint_key(&op))? {
                        count -= 1;
                        value -= i128::from(store::decode_coin(v.value())?.txout.value.to_sat());
                    }
                }
                txi.remove(&store::txid_key(&txid))?;
                if i == 0 {
                    continue;
                }
                for input in tx.input.iter().rev() {
                    let coin = undo
                        .pop()
                        .ok_or_else(|| ChainError::Corrupt(format!("undo of {hash} too short")))?;
                    buf.clear();
                    store::encode_coin(&coin, &mut buf);
                    match utxo.insert(&store::outpoint_key(&input.previous_output), buf.as_slice())? {
                        None => count += 1,
                        // Cannot happen in a consistent store; keep the counters right anyway.
                        Some(old) => value -= i128::from(store::decode_coin(old.value())?.txout.value.to_sat()),
                    }
                    value += i128::from(coin.txout.value.to_sat());
                }
            }
        }
        wtx.open_table(store::UNDO)?.remove(&key)?;
        wtx.open_table(store::ACTIVE)?.remove(height)?;
        let (count, value) = (count.max(0) as u64, value.max(0) as u64);
        write_tip(&wtx, &store::hash_key(&parent), count, value)?;
        wtx.commit()?;
        {
            let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
            st.index.active.pop();
            st.utxo_count = count;
            st.utxo_value = value;
        }
        tracing::debug!(%hash, height, "disconnected");
        let block = Arc::new(block);
        self.emit(ChainEvent::BlockDisconnected {
            block: block.clone(),
            height,
        });
        Ok((hash, block, height))
    }
}

fn write_tip(wtx: &WriteTransaction, tip: &[u8; 32], count: u64, value: u64) -> Result<(), ChainError> {
    let mut meta = wtx.open_table(store::META)?;
    meta.insert(store::META_TIP, tip.as_slice())?;
    meta.insert(store::META_UTXO_COUNT, store::u64_bytes(count).as_slice())?;
    meta.insert(store::META_UTXO_VALUE, store::u64_bytes(value).as_slice())?;
    Ok(())
}

/// Sigops of a P2SH redeem script: the last push of the scriptSig, counted
/// accurately (Core's `GetP2SHSigOpCount`).
fn p2sh_sigops(script_sig: &Script) -> usize {
    let mut last = None;
    for ins in script_sig.instructions() {
        match ins {
            Ok(Instruction::PushBytes(p)) => last = Some(p.as_bytes().to_vec()),
            // A non-push scriptSig fails P2SH evaluation anyway.
            Ok(Instruction::Op(_)) | Err(_) => return 0,
        }
    }
    last.map(|b| Script::from_bytes(&b).count_sigops()).unwrap_or(0)
}

/// Verifies every input script of the block; splits the work over the CPUs
/// when there is enough of it.
fn verify_scripts(block: &Block, jobs: &[(usize, Vec<TxOut>)], flags: u32, inputs: usize) -> Result<(), Reject> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if threads == 1 || inputs < PARALLEL_SCRIPT_THRESHOLD {
        return jobs
            .iter()
            .try_for_each(|(i, spent)| verify_tx(&block.txdata[*i], spent, flags));
    }
    let chunk = jobs.len().div_ceil(threads);
    let results: Vec<Result<(), Reject>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .try_for_each(|(i, spent)| verify_tx(&block.txdata[*i], spent, flags))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Reject::new(
                        "mandatory-script-verify-flag-failed",
                        "(verifier panicked)",
                    ))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

fn verify_tx(tx: &Transaction, spent: &[TxOut], flags: u32) -> Result<(), Reject> {
    let bytes = serialize(tx);
    for (idx, out) in spent.iter().enumerate() {
        if let Err(e) = out.script_pubkey.verify_with_flags(idx, out.value, &bytes, flags) {
            return Err(Reject::tx(
                "mandatory-script-verify-flag-failed",
                tx.compute_txid(),
                format!("({e}) input {idx}"),
            ));
        }
    }
    Ok(())
}
