//! The mempool: unconfirmed transactions validated against the chain's UTXO
//! set and scripts, the way Bitcoin Core's `AcceptToMemoryPool` does it,
//! within reason.
//!
//! # What [`Mempool::accept`] checks, in Core's order
//!
//! 1. `CheckTransaction` (consensus, context-free): `bad-txns-vin-empty`,
//!    `bad-txns-vout-empty`, `bad-txns-oversize`, `bad-txns-vout-toolarge`,
//!    `bad-txns-txouttotal-toolarge`, `bad-txns-inputs-duplicate`,
//!    `bad-txns-prevout-null`; then `coinbase` for a coinbase.
//! 2. Standardness, when [`MempoolConfig::require_standard`] (the default, as
//!    on Core's regtest): `version` (1..=3), `tx-size` (weight above
//!    400,000 WU), `scriptsig-size` (> 1650 bytes), `scriptsig-not-pushonly`,
//!    `tx-size-small` (non-witness size < 65 bytes). *Not* applied: output
//!    script types, dust, data-carrier size, `AreInputsStandard`,
//!    `IsWitnessStandard`.
//! 3. `non-final`: nLockTime against height `tip + 1` and the tip's median
//!    time past (BIP113).
//! 4. `txn-already-in-mempool` (same wtxid) and
//!    `txn-same-nonwitness-data-in-mempool` (same txid, other witness).
//! 5. `txn-mempool-conflict`: an input is already spent by a mempool
//!    transaction. There is no replacement (no RBF).
//! 6. Inputs come from the chain's UTXO set or from outputs of mempool
//!    transactions (chains of unconfirmed transactions are allowed). A
//!    missing input gives `txn-already-known` (-27) when the transaction's
//!    own outputs are in the UTXO set, else `bad-txns-inputs-missingorspent`
//!    (-25).
//! 7. `non-BIP68-final`: BIP68 sequence locks once CSV is active (taken from
//!    the CHECKSEQUENCEVERIFY bit of `chain.script_flags(tip + 1)`). Height
//!    locks are exact; time locks with a non-zero value are refused because
//!    [`ChainView`] cannot give the past median time they need (see
//!    [`policy::check_sequence_locks`]).
//! 8. `CheckTxInputs`: `bad-txns-premature-spend-of-coinbase` (fewer than
//!    100 confirmations at `tip + 1`), `bad-txns-inputvalues-outofrange`,
//!    `bad-txns-in-belowout`.
//! 9. `bad-txns-too-many-sigops` (sigop cost above 16,000).
//! 10. `min relay fee not met`: fee below
//!     `ceil(`[`MempoolConfig::min_relay_fee_sat_vb`]` * vsize)` (1 sat/vB by
//!     default). vsize is Core's sigop-adjusted virtual size.
//! 11. `too-long-mempool-chain`: more than 25 in-mempool ancestors
//!     (self included) or 101 kvB of them, or an ancestor that would get
//!     more than 25 descendants.
//! 12. Scripts, with `chain.script_flags(tip + 1)` restricted to the bits
//!     libbitcoinconsensus (Core 25) knows — P2SH, DERSIG, NULLDUMMY, CLTV,
//!     CSV, WITNESS; Taproot spends are therefore *not* script-checked.
//!     A failure is `mandatory-script-verify-flag-failed (...)`: there is no
//!     separate pass with Core's stricter policy flags, and libconsensus does
//!     not say which script error occurred.
//!
//! There is no size limit, expiry or eviction by fee; the minimum fee rate
//! is always the relay minimum.
//!
//! # Block interaction
//!
//! [`Mempool::remove_for_block`] (confirmed transactions leave, conflicting
//! ones are evicted with their descendants, confirmations are recorded for
//! fee estimation), [`Mempool::readd_disconnected`] (a disconnected block's
//! transactions come back, revalidated) and
//! [`Mempool::remove_invalid_after_reorg`] (after the tip changed, whatever
//! no longer validates leaves). Every call returns what happened so the
//! caller can publish events; nothing is called back.
//!
//! The mempool calls [`ChainView`] methods while holding its own lock: a
//! `ChainView` must not call back into the mempool.

mod error;
mod fees;
pub mod policy;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

pub use error::{MempoolError, RejectKind, RPC_VERIFY_ALREADY_IN_CHAIN, RPC_VERIFY_ERROR, RPC_VERIFY_REJECTED};
pub use fees::{FeeEstimator, FeeSample, ESTIMATE_PERCENTILE};
pub use policy::MempoolConfig;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::blockdata::constants::COINBASE_MATURITY;
use bitcoin::{Amount, Block, OutPoint, Transaction, TxOut, Txid, Wtxid};
use serde::{Deserialize, Serialize};

use crate::chain::{ChainView, Coin};
use policy::SpentCoinHeight;

/// Why a transaction left the mempool, named as Bitcoin Core names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemovalReason {
    /// Confirmed by a connected block (`"block"`).
    Block,
    /// Spends an output a connected block's transaction spends, or descends
    /// from such a transaction (`"conflict"`).
    Conflict,
    /// No longer valid after the tip changed: an input vanished, a coinbase
    /// input became immature, or it became non-final (`"reorg"`).
    Reorg,
    /// Replaced by another transaction (`"replaced"`; not produced: no RBF).
    Replaced,
    /// Too old (`"expiry"`; not produced: no expiry).
    Expiry,
    /// Evicted to respect the size limit (`"sizelimit"`; not produced: no limit).
    SizeLimit,
}

impl RemovalReason {
    /// Core's name for the reason.
    pub fn as_str(&self) -> &'static str {
        match self {
            RemovalReason::Block => "block",
            RemovalReason::Conflict => "conflict",
            RemovalReason::Reorg => "reorg",
            RemovalReason::Replaced => "replaced",
            RemovalReason::Expiry => "expiry",
            RemovalReason::SizeLimit => "sizelimit",
        }
    }
}

impl std::fmt::Display for RemovalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transaction the mempool took in.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// Transaction id.
    pub txid: Txid,
    /// Witness transaction id.
    pub wtxid: Wtxid,
    /// Fee paid (inputs minus outputs).
    pub fee: Amount,
    /// Virtual size in vbytes (Core's sigop-adjusted vsize).
    pub vsize: u64,
    /// Weight in weight units.
    pub weight: u64,
    /// `fee / vsize`, sat/vB.
    pub fee_rate_sat_vb: f64,
    /// Transactions in the mempool after the addition (0 for
    /// [`Mempool::test_accept`], which adds nothing).
    pub mempool_size: u64,
}

/// Count, size and fees of a set of related mempool transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackageStats {
    /// Number of transactions, the entry itself included.
    pub count: usize,
    /// Summed vsize.
    pub vsize: u64,
    /// Summed fees.
    pub fees: Amount,
}

/// A transaction in the mempool, with what validation learned about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The transaction.
    pub tx: Arc<Transaction>,
    /// Transaction id.
    pub txid: Txid,
    /// Witness transaction id.
    pub wtxid: Wtxid,
    /// Fee paid.
    pub fee: Amount,
    /// Virtual size (sigop-adjusted), vbytes.
    pub vsize: u64,
    /// Weight, weight units.
    pub weight: u64,
    /// Sigop cost (legacy ×4, P2SH ×4, witness ×1).
    pub sigop_cost: u64,
    /// `fee / vsize`, sat/vB.
    pub fee_rate: f64,
    /// Unix time (seconds) it entered the mempool.
    pub time: u64,
    /// Chain tip height when it entered.
    pub height: u32,
    /// Whether its confirmation will be used for fee estimation (false for
    /// transactions re-added from disconnected blocks, as in Core).
    pub counts_for_fee_estimation: bool,
    /// In-mempool transactions it spends from (Core's `depends`).
    pub parents: Vec<Txid>,
    /// In-mempool transactions spending its outputs (Core's `spentby`).
    pub children: Vec<Txid>,
    /// It and all its in-mempool ancestors.
    pub ancestors: PackageStats,
    /// It and all its in-mempool descendants.
    pub descendants: PackageStats,
    seq: u64,
}

/// Summary of the mempool (Core's `getmempoolinfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct MempoolInfo {
    /// Number of transactions.
    pub size: u64,
    /// Sum of their vsizes, vbytes.
    pub bytes: u64,
    /// Approximate memory used by the mempool, bytes.
    pub usage: u64,
    /// Sum of their fees.
    pub total_fee: Amount,
    /// Lowest fee rate a new transaction may pay, sat/vB (the relay minimum:
    /// there is no size-limit eviction).
    pub min_fee_rate: f64,
    /// The relay minimum, sat/vB.
    pub min_relay_fee_rate: f64,
}

/// Fee rates of the transactions now in the mempool, sat/vB.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeeRateSummary {
    /// Number of transactions.
    pub count: u64,
    /// Lowest fee rate.
    pub min: f64,
    /// Median fee rate (nearest-rank).
    pub median: f64,
    /// Highest fee rate.
    pub max: f64,
}

/// What validation computed, ready for insertion.
struct Validated {
    txid: Txid,
    wtxid: Wtxid,
    fee: Amount,
    vsize: u64,
    weight: u64,
    sigop_cost: u64,
    parents: Vec<Txid>,
    tip_height: u32,
}

struct Inner {
    entries: HashMap<Txid, Entry>,
    by_wtxid: HashMap<Wtxid, Txid>,
    spends: HashMap<OutPoint, Txid>,
    total_vsize: u64,
    total_fee: Amount,
    usage: u64,
    next_seq: u64,
    fees: FeeEstimator,
}

/// The mempool. `Send + Sync`; every method takes `&self` and locks inside.
pub struct Mempool {
    config: MempoolConfig,
    inner: Mutex<Inner>,
}

impl Default for Mempool {
    fn default() -> Self {
        Mempool::new(MempoolConfig::default())
    }
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("config", &self.config)
            .field("size", &self.len())
            .finish()
    }
}

impl Mempool {
    /// An empty mempool applying `config`.
    pub fn new(config: MempoolConfig) -> Self {
        let fees = FeeEstimator::new(config.fee_estimation_window_blocks, config.fee_estimation_max_samples);
        Mempool {
            config,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                by_wtxid: HashMap::new(),
                spends: HashMap::new(),
                total_vsize: 0,
                total_fee: Amount::ZERO,
                usage: 0,
                next_seq: 0,
                fees,
            }),
        }
    }

    /// The policy in force.
    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Validates `tx` against `chain` and the mempool (see the module docs)
    /// and adds it.
    pub fn accept(&self, tx: Transaction, chain: &dyn ChainView) -> Result<Accepted, MempoolError> {
        let mut inner = self.lock();
        let v = inner.validate(&tx, chain, &self.config, false)?;
        Ok(inner.insert(tx, v, true))
    }

    /// Validates `tx` exactly as [`Mempool::accept`] does, without adding it
    /// (`testmempoolaccept`).
    pub fn test_accept(&self, tx: &Transaction, chain: &dyn ChainView) -> Result<Accepted, MempoolError> {
        let inner = self.lock();
        let v = inner.validate(tx, chain, &self.config, false)?;
        Ok(Accepted {
            txid: v.txid,
            wtxid: v.wtxid,
            fee: v.fee,
            vsize: v.vsize,
            weight: v.weight,
            fee_rate_sat_vb: fee_rate(v.fee, v.vsize),
            mempool_size: 0,
        })
    }

    /// A block at `height` was connected: its transactions leave the mempool
    /// (reason `block`, their confirmation recorded for fee estimation), and
    /// mempool transactions spending an output one of its transactions
    /// spends leave with all their descendants (reason `conflict`).
    ///
    /// Returns the removed transactions in removal order.
    pub fn remove_for_block(&self, block: &Block, height: u32) -> Vec<(Txid, RemovalReason)> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        let txids: Vec<Txid> = block.txdata.iter().map(|tx| tx.compute_txid()).collect();
        for txid in &txids {
            if let Some(entry) = inner.remove_entry(txid) {
                if entry.counts_for_fee_estimation {
                    inner.fees.record(entry.fee_rate, entry.height, height);
                }
                out.push((*txid, RemovalReason::Block));
            }
        }
        for (tx, txid) in block.txdata.iter().zip(&txids) {
            if tx.is_coinbase() {
                continue;
            }
            for input in &tx.input {
                if let Some(spender) = inner.spends.get(&input.previous_output).copied() {
                    if spender != *txid {
                        inner.remove_tree(spender, RemovalReason::Conflict, &mut out);
                    }
                }
            }
        }
        inner.fees.prune(height);
        out
    }

    /// A block was disconnected and `chain` now reflects it (its parent is
    /// the tip): its non-coinbase transactions are revalidated and re-added
    /// (without the minimum fee check, and not counted for fee estimation,
    /// as Core does); those that fail are dropped. Fee samples recorded for
    /// blocks above the new tip are forgotten.
    ///
    /// Returns the transactions re-added, in block order.
    pub fn readd_disconnected(&self, block: &Block, chain: &dyn ChainView) -> Vec<Accepted> {
        let mut inner = self.lock();
        let (_, tip_height) = chain.tip();
        inner.fees.forget_from(tip_height.saturating_add(1));
        let mut out = Vec::new();
        for tx in &block.txdata {
            if tx.is_coinbase() {
                continue;
            }
            match inner.validate(tx, chain, &self.config, true) {
                Ok(v) => out.push(inner.insert(tx.clone(), v, false)),
                Err(e) => {
                    tracing::debug!(txid = %tx.compute_txid(), error = %e, "disconnected transaction not re-added")
                }
            }
        }
        out
    }

    /// After the tip changed (a reorganisation, `invalidateblock`, ...):
    /// evicts, with their descendants, the transactions whose inputs are
    /// no longer available, that would spend an immature coinbase at
    /// `tip + 1`, or that are no longer final (lock time, BIP68).
    pub fn remove_invalid_after_reorg(&self, chain: &dyn ChainView) -> Vec<(Txid, RemovalReason)> {
        let mut inner = self.lock();
        let (_, tip_height) = chain.tip();
        let next_height = tip_height.saturating_add(1);
        let mtp = chain.median_time_past();
        let bip68 = chain.script_flags(next_height) & policy::VERIFY_CHECKSEQUENCEVERIFY != 0;
        let mut order: Vec<(u64, Txid)> = inner.entries.values().map(|e| (e.seq, e.txid)).collect();
        order.sort();
        let mut out = Vec::new();
        for (_, txid) in order {
            let Some(tx) = inner.entries.get(&txid).map(|e| e.tx.clone()) else {
                continue;
            };
            let mut ok = policy::is_final(&tx, next_height, mtp);
            let mut heights = Vec::with_capacity(tx.input.len());
            for input in &tx.input {
                if !ok {
                    break;
                }
                match inner.lookup(chain, &input.previous_output, next_height) {
                    Some((coin, in_mempool)) => {
                        if coin.is_coinbase && next_height.saturating_sub(coin.height) < COINBASE_MATURITY {
                            ok = false;
                        }
                        heights.push(SpentCoinHeight {
                            height: coin.height,
                            in_mempool,
                        });
                    }
                    None => ok = false,
                }
            }
            if ok && bip68 {
                ok = policy::check_sequence_locks(&tx, &heights, next_height).is_ok();
            }
            if !ok {
                inner.remove_tree(txid, RemovalReason::Reorg, &mut out);
            }
        }
        out
    }

    /// Removes every transaction; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut inner = self.lock();
        let n = inner.entries.len();
        inner.entries.clear();
        inner.by_wtxid.clear();
        inner.spends.clear();
        inner.total_vsize = 0;
        inner.total_fee = Amount::ZERO;
        inner.usage = 0;
        n
    }

    /// The entry for `txid`, with ancestor/descendant figures.
    pub fn get(&self, txid: &Txid) -> Option<Entry> {
        let inner = self.lock();
        inner.entries.get(txid).map(|e| inner.with_stats(e))
    }

    /// Whether `txid` is in the mempool.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.lock().entries.contains_key(txid)
    }

    /// The txid of the mempool transaction with witness id `wtxid`.
    pub fn txid_of_wtxid(&self, wtxid: &Wtxid) -> Option<Txid> {
        self.lock().by_wtxid.get(wtxid).copied()
    }

    /// The txids in the mempool, oldest entry first.
    pub fn txids(&self) -> Vec<Txid> {
        let inner = self.lock();
        let mut v: Vec<(u64, Txid)> = inner.entries.values().map(|e| (e.seq, e.txid)).collect();
        v.sort();
        v.into_iter().map(|(_, t)| t).collect()
    }

    /// Every entry (with ancestor/descendant figures), oldest first.
    pub fn entries(&self) -> Vec<Entry> {
        let inner = self.lock();
        let mut v: Vec<Entry> = inner.entries.values().map(|e| inner.with_stats(e)).collect();
        v.sort_by_key(|e| e.seq);
        v
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the mempool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The mempool transaction spending `outpoint`, if any.
    pub fn spends(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.lock().spends.get(outpoint).copied()
    }

    /// The output `outpoint` if a mempool transaction created it (spent or not).
    pub fn output(&self, outpoint: &OutPoint) -> Option<TxOut> {
        let inner = self.lock();
        let entry = inner.entries.get(&outpoint.txid)?;
        entry.tx.output.get(outpoint.vout as usize).cloned()
    }

    /// Size, fees and usage (`getmempoolinfo`).
    pub fn info(&self) -> MempoolInfo {
        let inner = self.lock();
        let min = self.config.min_relay_fee_sat_vb.max(0.0);
        MempoolInfo {
            size: inner.entries.len() as u64,
            bytes: inner.total_vsize,
            usage: inner.usage,
            total_fee: inner.total_fee,
            min_fee_rate: min,
            min_relay_fee_rate: min,
        }
    }

    /// Fee estimate for confirmation within `target_blocks`, sat/vB, from
    /// observed confirmations (see [`FeeEstimator`]); `None` without data.
    pub fn estimate_fee(&self, target_blocks: u32) -> Option<f64> {
        self.lock().fees.estimate(target_blocks)
    }

    /// A copy of the fee estimator's state.
    pub fn fee_estimator(&self) -> FeeEstimator {
        self.lock().fees.clone()
    }

    /// Fee rates of the transactions now in the mempool; `None` when empty.
    /// The node can publish `FeeRateChanged` when the median moves.
    pub fn fee_rate_summary(&self) -> Option<FeeRateSummary> {
        let inner = self.lock();
        let mut rates: Vec<f64> = inner.entries.values().map(|e| e.fee_rate).collect();
        let median = fees::percentile(&mut rates, 0.5)?;
        Some(FeeRateSummary {
            count: rates.len() as u64,
            min: rates.first().copied().unwrap_or(median),
            median,
            max: rates.last().copied().unwrap_or(median),
        })
    }
}

/// `fee / vsize` in sat/vB (0 for a zero vsize).
fn fee_rate(fee: Amount, vsize: u64) -> f64 {
    if vsize == 0 {
        0.0
    } else {
        fee.to_sat() as f64 / vsize as f64
    }
}

/// Core's `FormatMoney`: BTC with at least two decimals.
fn format_money(amount: Amount) -> String {
    let sat = amount.to_sat();
    let mut s = format!("{}.{:08}", sat / 100_000_000, sat % 100_000_000);
    while s.ends_with('0') && s.len() - s.find('.').unwrap_or(0) > 3 {
        s.pop();
    }
    s
}

/// A description of a libbitcoinconsensus failure.
fn describe_script_error(e: &bitcoin::consensus::validation::BitcoinconsensusError) -> String {
    let debug = format!("{e:?}");
    if debug.contains("ERR_SCRIPT") {
        "Script evaluation failed".to_string()
    } else {
        debug
    }
}

/// Approximate heap use of an entry.
fn entry_usage(tx: &Transaction) -> u64 {
    (tx.total_size() + 64 * tx.input.len() + 48 * tx.output.len() + 256) as u64
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Inner {
    /// The coin `outpoint` refers to, from the mempool (height `next_height`)
    /// or the chain, and whether it is unconfirmed.
    fn lookup(&self, chain: &dyn ChainView, outpoint: &OutPoint, next_height: u32) -> Option<(Coin, bool)> {
        if let Some(parent) = self.entries.get(&outpoint.txid) {
            let txout = parent.tx.output.get(outpoint.vout as usize)?.clone();
            return Some((
                Coin {
                    txout,
                    height: next_height,
                    is_coinbase: false,
                },
                true,
            ));
        }
        chain.coin(outpoint).map(|c| (c, false))
    }

    /// In-mempool transactions spending outputs of `txid`.
    fn children(&self, txid: &Txid) -> Vec<Txid> {
        let Some(entry) = self.entries.get(txid) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for vout in 0..entry.tx.output.len() {
            if let Some(child) = self.spends.get(&OutPoint::new(*txid, vout as u32)) {
                if !out.contains(child) {
                    out.push(*child);
                }
            }
        }
        out
    }

    /// All in-mempool ancestors reachable from `parents` (not the tx itself).
    fn ancestors_of(&self, parents: &[Txid]) -> HashSet<Txid> {
        let mut seen = HashSet::new();
        let mut stack: Vec<Txid> = parents.to_vec();
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            if let Some(e) = self.entries.get(&t) {
                stack.extend(e.parents.iter().copied());
            }
        }
        seen
    }

    /// All in-mempool descendants of `txid` (not itself), breadth first.
    fn descendants_of(&self, txid: &Txid) -> Vec<Txid> {
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        let mut queue: VecDeque<Txid> = self.children(txid).into();
        while let Some(t) = queue.pop_front() {
            if t == *txid || !seen.insert(t) {
                continue;
            }
            order.push(t);
            queue.extend(self.children(&t));
        }
        order
    }

    fn stats(&self, txids: impl Iterator<Item = Txid>) -> PackageStats {
        let mut s = PackageStats::default();
        for t in txids {
            if let Some(e) = self.entries.get(&t) {
                s.count += 1;
                s.vsize += e.vsize;
                s.fees += e.fee;
            }
        }
        s
    }

    fn with_stats(&self, e: &Entry) -> Entry {
        let mut out = e.clone();
        let ancestors = self.ancestors_of(&e.parents);
        out.ancestors = self.stats(ancestors.into_iter().chain(std::iter::once(e.txid)));
        out.descendants = self.stats(self.descendants_of(&e.txid).into_iter().chain(std::iter::once(e.txid)));
        out.children = self.children(&e.txid);
        out
    }

    fn validate(
        &self,
        tx: &Transaction,
        chain: &dyn ChainView,
        config: &MempoolConfig,
        bypass_fee: bool,
    ) -> Result<Validated, MempoolError> {
        policy::check_transaction(tx)?;
        if tx.is_coinbase() {
            return Err(MempoolError::consensus("coinbase"));
        }
        if config.require_standard {
            policy::check_standard(tx, config)?;
        }
        let (_, tip_height) = chain.tip();
        let next_height = tip_height.saturating_add(1);
        let mtp = chain.median_time_past();
        if !policy::is_final(tx, next_height, mtp) {
            return Err(MempoolError::policy("non-final"));
        }

        let txid = tx.compute_txid();
        let wtxid = tx.compute_wtxid();
        if self.by_wtxid.contains_key(&wtxid) {
            return Err(MempoolError::new(
                RejectKind::AlreadyInMempool,
                "txn-already-in-mempool",
            ));
        }
        if self.entries.contains_key(&txid) {
            return Err(MempoolError::new(
                RejectKind::AlreadyInMempool,
                "txn-same-nonwitness-data-in-mempool",
            ));
        }
        for input in &tx.input {
            if let Some(other) = self.spends.get(&input.previous_output) {
                return Err(
                    MempoolError::new(RejectKind::Conflict, "txn-mempool-conflict").with_debug(format!(
                        "{} already spent by mempool transaction {other}",
                        input.previous_output
                    )),
                );
            }
        }

        // Inputs.
        let mut coins: Vec<Coin> = Vec::with_capacity(tx.input.len());
        let mut heights = Vec::with_capacity(tx.input.len());
        let mut parents: Vec<Txid> = Vec::new();
        for input in &tx.input {
            match self.lookup(chain, &input.previous_output, next_height) {
                Some((coin, in_mempool)) => {
                    if in_mempool && !parents.contains(&input.previous_output.txid) {
                        parents.push(input.previous_output.txid);
                    }
                    heights.push(SpentCoinHeight {
                        height: coin.height,
                        in_mempool,
                    });
                    coins.push(coin);
                }
                None => {
                    let known = (0..tx.output.len()).any(|i| chain.coin(&OutPoint::new(txid, i as u32)).is_some());
                    if known {
                        return Err(MempoolError::new(RejectKind::AlreadyInChain, "txn-already-known"));
                    }
                    return Err(MempoolError::new(
                        RejectKind::MissingInputs,
                        "bad-txns-inputs-missingorspent",
                    ));
                }
            }
        }

        let flags = chain.script_flags(next_height);
        if flags & policy::VERIFY_CHECKSEQUENCEVERIFY != 0 {
            policy::check_sequence_locks(tx, &heights, next_height)?;
        }

        // Consensus::CheckTxInputs.
        let mut value_in = Amount::ZERO;
        for coin in &coins {
            if coin.is_coinbase && next_height.saturating_sub(coin.height) < COINBASE_MATURITY {
                return Err(
                    MempoolError::consensus("bad-txns-premature-spend-of-coinbase").with_debug(format!(
                        "tried to spend coinbase at depth {}",
                        next_height.saturating_sub(coin.height)
                    )),
                );
            }
            value_in = match value_in.checked_add(coin.txout.value) {
                Some(v) if coin.txout.value <= Amount::MAX_MONEY && v <= Amount::MAX_MONEY => v,
                _ => return Err(MempoolError::consensus("bad-txns-inputvalues-outofrange")),
            };
        }
        let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
        let Some(fee) = value_in.checked_sub(value_out) else {
            return Err(MempoolError::consensus("bad-txns-in-belowout").with_debug(format!(
                "value in ({}) < value out ({})",
                format_money(value_in),
                format_money(value_out)
            )));
        };

        // Sigops and virtual size.
        let spent: HashMap<OutPoint, TxOut> = tx
            .input
            .iter()
            .zip(&coins)
            .map(|(i, c)| (i.previous_output, c.txout.clone()))
            .collect();
        let sigop_cost = tx.total_sigop_cost(|op| spent.get(op).cloned()) as u64;
        if sigop_cost > config.max_standard_sigops_cost {
            return Err(MempoolError::policy("bad-txns-too-many-sigops").with_debug(sigop_cost.to_string()));
        }
        let weight = tx.weight().to_wu();
        // Core's GetVirtualTransactionSize with -bytespersigop=20.
        let bytes_per_sigop = u64::from(bitcoin::policy::DEFAULT_BYTES_PER_SIGOP);
        let vsize = weight.max(sigop_cost.saturating_mul(bytes_per_sigop)).div_ceil(4);

        if !bypass_fee {
            let min = config.min_relay_fee(vsize);
            if fee < min {
                return Err(MempoolError::policy("min relay fee not met").with_debug(format!(
                    "{} < {}",
                    fee.to_sat(),
                    min.to_sat()
                )));
            }
        }

        // Package limits.
        let ancestors = self.ancestors_of(&parents);
        if ancestors.len() + 1 > config.max_ancestors {
            return Err(MempoolError::policy("too-long-mempool-chain").with_debug(format!(
                "too many unconfirmed ancestors [limit: {}]",
                config.max_ancestors
            )));
        }
        let ancestor_vsize: u64 = vsize + self.stats(ancestors.iter().copied()).vsize;
        if ancestor_vsize > config.max_ancestor_vsize {
            return Err(MempoolError::policy("too-long-mempool-chain").with_debug(format!(
                "exceeds ancestor size limit [limit: {}]",
                config.max_ancestor_vsize
            )));
        }
        for a in &ancestors {
            let with_descendants = self.descendants_of(a).len() + 1;
            if with_descendants + 1 > config.max_descendants {
                return Err(MempoolError::policy("too-long-mempool-chain").with_debug(format!(
                    "too many descendants for tx {a} [limit: {}]",
                    config.max_descendants
                )));
            }
        }

        // Scripts.
        let script_flags = flags & policy::LIBCONSENSUS_FLAGS;
        let serialized = bitcoin::consensus::encode::serialize(tx);
        for (index, (input, coin)) in tx.input.iter().zip(&coins).enumerate() {
            if let Err(e) = bitcoin::consensus::validation::verify_script_with_flags(
                &coin.txout.script_pubkey,
                index,
                coin.txout.value,
                &serialized,
                script_flags,
            ) {
                return Err(MempoolError::consensus(format!(
                    "mandatory-script-verify-flag-failed ({})",
                    describe_script_error(&e)
                ))
                .with_debug(format!(
                    "input {index} of {txid} (wtxid {wtxid}), spending {}",
                    input.previous_output
                )));
            }
        }

        Ok(Validated {
            txid,
            wtxid,
            fee,
            vsize,
            weight,
            sigop_cost,
            parents,
            tip_height,
        })
    }

    fn insert(&mut self, tx: Transaction, v: Validated, counts_for_fee_estimation: bool) -> Accepted {
        let tx = Arc::new(tx);
        for input in &tx.input {
            self.spends.insert(input.previous_output, v.txid);
        }
        // Children already here (their parent came back from a disconnected block).
        for vout in 0..tx.output.len() {
            if let Some(child) = self.spends.get(&OutPoint::new(v.txid, vout as u32)).copied() {
                if let Some(c) = self.entries.get_mut(&child) {
                    if !c.parents.contains(&v.txid) {
                        c.parents.push(v.txid);
                    }
                }
            }
        }
        let rate = fee_rate(v.fee, v.vsize);
        self.total_vsize += v.vsize;
        self.total_fee += v.fee;
        self.usage += entry_usage(&tx);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_wtxid.insert(v.wtxid, v.txid);
        self.entries.insert(
            v.txid,
            Entry {
                tx,
                txid: v.txid,
                wtxid: v.wtxid,
                fee: v.fee,
                vsize: v.vsize,
                weight: v.weight,
                sigop_cost: v.sigop_cost,
                fee_rate: rate,
                time: now_secs(),
                height: v.tip_height,
                counts_for_fee_estimation,
                parents: v.parents,
                children: Vec::new(),
                ancestors: PackageStats::default(),
                descendants: PackageStats::default(),
                seq,
            },
        );
        Accepted {
            txid: v.txid,
            wtxid: v.wtxid,
            fee: v.fee,
            vsize: v.vsize,
            weight: v.weight,
            fee_rate_sat_vb: rate,
            mempool_size: self.entries.len() as u64,
        }
    }

    fn remove_entry(&mut self, txid: &Txid) -> Option<Entry> {
        let entry = self.entries.remove(txid)?;
        if self.by_wtxid.get(&entry.wtxid) == Some(txid) {
            self.by_wtxid.remove(&entry.wtxid);
        }
        for input in &entry.tx.input {
            if self.spends.get(&input.previous_output) == Some(txid) {
                self.spends.remove(&input.previous_output);
            }
        }
        for vout in 0..entry.tx.output.len() {
            if let Some(child) = self.spends.get(&OutPoint::new(*txid, vout as u32)).copied() {
                if let Some(c) = self.entries.get_mut(&child) {
                    c.parents.retain(|p| p != txid);
                }
            }
        }
        self.total_vsize = self.total_vsize.saturating_sub(entry.vsize);
        self.total_fee = self.total_fee.checked_sub(entry.fee).unwrap_or(Amount::ZERO);
        self.usage = self.usage.saturating_sub(entry_usage(&entry.tx));
        Some(entry)
    }

    /// Removes `txid` and its descendants, appending them to `out`.
    fn remove_tree(&mut self, txid: Txid, reason: RemovalReason, out: &mut Vec<(Txid, RemovalReason)>) {
        if !self.entries.contains_key(&txid) {
            return;
        }
        let descendants = self.descendants_of(&txid);
        for t in std::iter::once(txid).chain(descendants) {
            if self.remove_entry(&t).is_some() {
                out.push((t, reason));
            }
        }
    }
}
