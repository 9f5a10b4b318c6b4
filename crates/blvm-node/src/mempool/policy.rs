//! The checks the mempool applies that need no coins: Core's
//! `CheckTransaction` (consensus, context-free), the subset of `IsStandardTx`
//! this node applies, absolute lock-time finality (`IsFinalTx`) and BIP68
//! sequence locks (`CalculateSequenceLocks`), plus [`MempoolConfig`].

use bitcoin::{Amount, Transaction};
use std::collections::HashSet;

use super::error::MempoolError;

/// `MAX_BLOCK_WEIGHT` (BIP141).
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Largest scriptSig a standard transaction may carry (`MAX_STANDARD_SCRIPTSIG_SIZE`).
pub const MAX_STANDARD_SCRIPTSIG_SIZE: usize = 1650;
/// Smallest non-witness serialization a standard transaction may have
/// (`MIN_STANDARD_TX_NONWITNESS_SIZE`, Core 25+).
pub const MIN_STANDARD_TX_NONWITNESS_SIZE: usize = 65;
/// Largest standard transaction version (`TX_MAX_STANDARD_VERSION`, 3 since Core 28).
pub const MAX_STANDARD_TX_VERSION: i32 = 3;

/// `bitcoinconsensus` flag bits the linked libconsensus (Core 25) accepts:
/// P2SH, DERSIG, NULLDUMMY, CHECKLOCKTIMEVERIFY, CHECKSEQUENCEVERIFY, WITNESS.
/// Other bits (e.g. TAPROOT, `1 << 17`) make it fail with
/// `ERR_INVALID_FLAGS`, so they are masked off before verification.
pub const LIBCONSENSUS_FLAGS: u32 = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 9) | (1 << 10) | (1 << 11);
/// The WITNESS verification flag (BIP141).
pub const VERIFY_WITNESS: u32 = 1 << 11;
/// The CHECKSEQUENCEVERIFY flag; its deployment (CSV) also activates BIP68.
pub const VERIFY_CHECKSEQUENCEVERIFY: u32 = 1 << 10;

const SEQUENCE_LOCKTIME_DISABLE_FLAG: u32 = 1 << 31;
const SEQUENCE_LOCKTIME_TYPE_FLAG: u32 = 1 << 22;
const SEQUENCE_LOCKTIME_MASK: u32 = 0x0000_ffff;
const SEQUENCE_LOCKTIME_GRANULARITY: u32 = 9;
const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// Relay policy of the mempool. Defaults follow Bitcoin Core's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MempoolConfig {
    /// Minimum relay fee rate in sat/vB (`-minrelaytxfee`, default 1 sat/vB).
    /// The required fee is `ceil(rate * vsize)`.
    pub min_relay_fee_sat_vb: f64,
    /// Apply the standardness checks listed in the module docs (`-acceptnonstdtxn=0`).
    pub require_standard: bool,
    /// Largest standard transaction weight (`MAX_STANDARD_TX_WEIGHT`, 400,000 WU).
    pub max_standard_weight: u64,
    /// Largest standard sigop cost per transaction (`MAX_STANDARD_TX_SIGOPS_COST`, 16,000).
    pub max_standard_sigops_cost: u64,
    /// Most in-mempool ancestors, the transaction itself counted (`-limitancestorcount`, 25).
    pub max_ancestors: usize,
    /// Largest summed vsize of a transaction and its in-mempool ancestors
    /// (`-limitancestorsize`, 101 kvB).
    pub max_ancestor_vsize: u64,
    /// Most in-mempool descendants of any ancestor, itself counted (`-limitdescendantcount`, 25).
    pub max_descendants: usize,
    /// Fee estimation looks at confirmations seen in this many most recent blocks.
    pub fee_estimation_window_blocks: u32,
    /// Fee estimation keeps at most this many confirmation samples.
    pub fee_estimation_max_samples: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            min_relay_fee_sat_vb: 1.0,
            require_standard: true,
            max_standard_weight: u64::from(bitcoin::policy::MAX_STANDARD_TX_WEIGHT),
            max_standard_sigops_cost: u64::from(bitcoin::policy::MAX_STANDARD_TX_SIGOPS_COST),
            max_ancestors: 25,
            max_ancestor_vsize: 101_000,
            max_descendants: 25,
            fee_estimation_window_blocks: 1008,
            fee_estimation_max_samples: 10_000,
        }
    }
}

impl MempoolConfig {
    /// The minimum fee, in satoshis, a transaction of `vsize` vbytes must pay.
    pub fn min_relay_fee(&self, vsize: u64) -> Amount {
        let rate = if self.min_relay_fee_sat_vb.is_finite() {
            self.min_relay_fee_sat_vb.max(0.0)
        } else {
            0.0
        };
        // Work in sat/kvB like Core's CFeeRate, rounding the fee up.
        let per_kvb = (rate * 1000.0).round() as u64;
        Amount::from_sat((per_kvb.saturating_mul(vsize)).div_ceil(1000))
    }
}

/// Core's `CheckTransaction`: consensus checks that need no context.
pub fn check_transaction(tx: &Transaction) -> Result<(), MempoolError> {
    if tx.input.is_empty() {
        return Err(MempoolError::consensus("bad-txns-vin-empty"));
    }
    if tx.output.is_empty() {
        return Err(MempoolError::consensus("bad-txns-vout-empty"));
    }
    if (tx.base_size() as u64).saturating_mul(4) > MAX_BLOCK_WEIGHT {
        return Err(MempoolError::consensus("bad-txns-oversize"));
    }
    let mut total = Amount::ZERO;
    for out in &tx.output {
        if out.value > Amount::MAX_MONEY {
            return Err(MempoolError::consensus("bad-txns-vout-toolarge"));
        }
        total = match total.checked_add(out.value) {
            Some(t) if t <= Amount::MAX_MONEY => t,
            _ => return Err(MempoolError::consensus("bad-txns-txouttotal-toolarge")),
        };
    }
    let mut seen = HashSet::with_capacity(tx.input.len());
    for input in &tx.input {
        if !seen.insert(input.previous_output) {
            return Err(MempoolError::consensus("bad-txns-inputs-duplicate"));
        }
    }
    if tx.is_coinbase() {
        let len = tx.input[0].script_sig.len();
        if !(2..=100).contains(&len) {
            return Err(MempoolError::consensus("bad-cb-length"));
        }
    } else if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err(MempoolError::consensus("bad-txns-prevout-null"));
    }
    Ok(())
}

/// The part of Core's `IsStandardTx` (plus `tx-size-small`) this node
/// applies: version, weight, scriptSig size and push-only-ness, and the
/// minimum non-witness size. Output script types, dust and data-carrier
/// limits are not checked.
pub fn check_standard(tx: &Transaction, config: &MempoolConfig) -> Result<(), MempoolError> {
    let version = tx.version.0;
    if !(1..=MAX_STANDARD_TX_VERSION).contains(&version) {
        return Err(MempoolError::policy("version"));
    }
    if tx.weight().to_wu() > config.max_standard_weight {
        return Err(MempoolError::policy("tx-size"));
    }
    for input in &tx.input {
        if input.script_sig.len() > MAX_STANDARD_SCRIPTSIG_SIZE {
            return Err(MempoolError::policy("scriptsig-size"));
        }
        if !input.script_sig.is_push_only() {
            return Err(MempoolError::policy("scriptsig-not-pushonly"));
        }
    }
    if tx.base_size() < MIN_STANDARD_TX_NONWITNESS_SIZE {
        return Err(MempoolError::policy("tx-size-small"));
    }
    Ok(())
}

/// Core's `IsFinalTx` for a block at `height` whose lock-time cut-off is
/// `time` (the tip's median time past, BIP113).
pub fn is_final(tx: &Transaction, height: u32, time: u32) -> bool {
    let lock = tx.lock_time.to_consensus_u32();
    if lock == 0 {
        return true;
    }
    let cutoff = if lock < LOCKTIME_THRESHOLD { height } else { time };
    if lock < cutoff {
        return true;
    }
    tx.input.iter().all(|i| i.sequence.is_final())
}

/// The height and kind of coin an input spends, for BIP68.
#[derive(Debug, Clone, Copy)]
pub struct SpentCoinHeight {
    /// Height of the block that created the coin (`tip + 1` for a mempool coin).
    pub height: u32,
    /// Whether the coin is unconfirmed (created by a mempool transaction).
    pub in_mempool: bool,
}

/// BIP68 sequence locks (Core's `CalculateSequenceLocks` and
/// `EvaluateSequenceLocks`) for a block at `next_height`; `coins[i]` is the
/// coin input `i` spends.
///
/// Simplification: [`crate::chain::ChainView`] does not give the median
/// time past of arbitrary past blocks, which time-based relative locks on
/// confirmed coins need. Such a lock with a non-zero value is therefore
/// refused (conservatively) as not final; a zero-valued one is always
/// satisfied. Height-based locks are checked exactly.
pub fn check_sequence_locks(tx: &Transaction, coins: &[SpentCoinHeight], next_height: u32) -> Result<(), MempoolError> {
    // Core compares the version as unsigned: negative versions enforce BIP68.
    if (tx.version.0 as u32) < 2 {
        return Ok(());
    }
    let non_final = |debug: String| Err(MempoolError::policy("non-BIP68-final").with_debug(debug));
    for (input, coin) in tx.input.iter().zip(coins) {
        let seq = input.sequence.to_consensus_u32();
        if seq & SEQUENCE_LOCKTIME_DISABLE_FLAG != 0 {
            continue;
        }
        let value = seq & SEQUENCE_LOCKTIME_MASK;
        if seq & SEQUENCE_LOCKTIME_TYPE_FLAG != 0 {
            let seconds = value << SEQUENCE_LOCKTIME_GRANULARITY;
            if seconds == 0 {
                continue;
            }
            if coin.in_mempool {
                // Coin time is the tip's MTP: MTP + seconds - 1 >= MTP.
                return non_final(format!("relative time lock of {seconds}s on an unconfirmed coin"));
            }
            return non_final(format!(
                "relative time lock of {seconds}s on a coin at height {} cannot be checked",
                coin.height
            ));
        }
        // min_height = coin_height + value - 1 must be < next_height.
        let min_height = i64::from(coin.height) + i64::from(value) - 1;
        if min_height >= i64::from(next_height) {
            return non_final(format!(
                "relative lock of {value} blocks on a coin at height {} not met at height {next_height}",
                coin.height
            ));
        }
    }
    Ok(())
}
