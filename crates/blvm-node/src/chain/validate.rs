//! Checks that need no UTXO set: proof of work, header context (difficulty,
//! time, version), the merkle root, the transaction list and the witness
//! commitment. Reasons are Bitcoin Core's reject strings.

use std::collections::HashSet;

use bitcoin::block::Header;
use bitcoin::blockdata::script::Builder;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{Block, BlockHash, CompactTarget, Target, Transaction};

use super::error::Reject;
use super::params::ChainParams;

/// Consensus maximum block weight (BIP141).
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Consensus maximum signature operation cost per block.
pub const MAX_BLOCK_SIGOPS_COST: usize = 80_000;
/// Witness scale factor (BIP141).
const WITNESS_SCALE_FACTOR: usize = 4;
/// 21 million BTC in satoshis: no amount may exceed it.
pub const MAX_MONEY: u64 = 21_000_000 * 100_000_000;
/// How far in the future a block's timestamp may be (Core: 2 hours).
pub const MAX_FUTURE_BLOCK_TIME: u64 = 2 * 60 * 60;
/// Locktimes below this are heights, at or above it are Unix times.
const LOCKTIME_THRESHOLD: u32 = 500_000_000;
/// Prefix of the witness commitment output (OP_RETURN, push 36, 0xaa21a9ed).
const WITNESS_MAGIC: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/// The facts about a block's position that contextual checks need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    /// Height the block would have.
    pub height: u32,
    /// Median time past of its parent.
    pub mtp_prev: u32,
    /// Bits it must carry.
    pub required_bits: CompactTarget,
    /// The clock, in Unix seconds.
    pub now: u64,
}

/// Decodes `bits` as Core's `DeriveTarget` does: negative, zero, overflowing
/// or above the network's limit is no target at all.
pub(crate) fn derive_target(bits: CompactTarget, cp: &ChainParams) -> Option<Target> {
    let b = bits.to_consensus();
    let exponent = b >> 24;
    let mantissa = b & 0x007f_ffff;
    let negative = mantissa != 0 && b & 0x0080_0000 != 0;
    let overflow =
        mantissa != 0 && (exponent > 34 || (mantissa > 0xff && exponent > 33) || (mantissa > 0xffff && exponent > 32));
    if negative || overflow || mantissa == 0 {
        return None;
    }
    let target = Target::from_compact(bits);
    (target <= cp.params.max_attainable_target).then_some(target)
}

/// Proof of work: the hash meets the target its bits claim (`high-hash`).
pub(crate) fn check_pow(header: &Header, hash: &BlockHash, cp: &ChainParams) -> Result<(), Reject> {
    match derive_target(header.bits, cp) {
        Some(t) if t.is_met_by(*hash) => Ok(()),
        Some(_) => Err(Reject::new("high-hash", "proof of work failed")),
        None => Err(Reject::new(
            "high-hash",
            format!("invalid bits {:#010x}", header.bits.to_consensus()),
        )),
    }
}

/// Core's `ContextualCheckBlockHeader`: difficulty, time and version.
pub(crate) fn check_header_context(header: &Header, ctx: &Context, cp: &ChainParams) -> Result<(), Reject> {
    if header.bits != ctx.required_bits {
        return Err(Reject::new(
            "bad-diffbits",
            format!(
                "incorrect proof of work: {:#010x}, need {:#010x}",
                header.bits.to_consensus(),
                ctx.required_bits.to_consensus()
            ),
        ));
    }
    if header.time <= ctx.mtp_prev {
        return Err(Reject::new("time-too-old", "block's timestamp is too early"));
    }
    if u64::from(header.time) > ctx.now + MAX_FUTURE_BLOCK_TIME {
        return Err(Reject::new("time-too-new", "block timestamp too far in the future"));
    }
    let v = header.version.to_consensus();
    let p = &cp.params;
    if (v < 2 && ctx.height >= cp.bip34_height)
        || (v < 3 && ctx.height >= p.bip66_height)
        || (v < 4 && ctx.height >= p.bip65_height)
    {
        return Err(Reject::new("bad-version", format!("rejected nVersion={v:#010x} block")));
    }
    Ok(())
}

/// Core's `ComputeMerkleRoot`, which also reports the CVE-2012-2459
/// mutation: two equal adjacent hashes at any level mean a transaction list
/// with a duplicated tail hashes to the same root as the honest one.
pub(crate) fn merkle_root(mut hashes: Vec<[u8; 32]>) -> ([u8; 32], bool) {
    let mut mutated = false;
    if hashes.is_empty() {
        return ([0; 32], false);
    }
    while hashes.len() > 1 {
        for pair in hashes.chunks_exact(2) {
            if pair[0] == pair[1] {
                mutated = true;
            }
        }
        if hashes.len() % 2 == 1 {
            let last = hashes[hashes.len() - 1];
            hashes.push(last);
        }
        hashes = hashes
            .chunks_exact(2)
            .map(|p| {
                let mut buf = [0u8; 64];
                buf[..32].copy_from_slice(&p[0]);
                buf[32..].copy_from_slice(&p[1]);
                sha256d::Hash::hash(&buf).to_byte_array()
            })
            .collect();
    }
    (hashes[0], mutated)
}

/// Core's `CheckTransaction`: the checks one transaction passes on its own.
pub(crate) fn check_transaction(tx: &Transaction) -> Result<(), Reject> {
    let txid = tx.compute_txid();
    if tx.input.is_empty() {
        return Err(Reject::tx("bad-txns-vin-empty", txid, ""));
    }
    if tx.output.is_empty() {
        return Err(Reject::tx("bad-txns-vout-empty", txid, ""));
    }
    if tx.base_size() * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT as usize {
        return Err(Reject::tx("bad-txns-oversize", txid, ""));
    }
    let mut total: u64 = 0;
    for out in &tx.output {
        let v = out.value.to_sat();
        if v > MAX_MONEY {
            return Err(Reject::tx("bad-txns-vout-toolarge", txid, ""));
        }
        total += v;
        if total > MAX_MONEY {
            return Err(Reject::tx("bad-txns-txouttotal-toolarge", txid, ""));
        }
    }
    let mut seen = HashSet::with_capacity(tx.input.len());
    for input in &tx.input {
        if !seen.insert(input.previous_output) {
            return Err(Reject::tx("bad-txns-inputs-duplicate", txid, ""));
        }
    }
    if tx.is_coinbase() {
        let n = tx.input[0].script_sig.len();
        if !(2..=100).contains(&n) {
            return Err(Reject::tx("bad-cb-length", txid, ""));
        }
    } else if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err(Reject::tx("bad-txns-prevout-null", txid, ""));
    }
    Ok(())
}

/// Legacy (pre-P2SH, pre-witness) signature operations of a transaction.
pub(crate) fn legacy_sigops(tx: &Transaction) -> usize {
    tx.input
        .iter()
        .map(|i| i.script_sig.count_sigops_legacy())
        .sum::<usize>()
        + tx.output
            .iter()
            .map(|o| o.script_pubkey.count_sigops_legacy())
            .sum::<usize>()
}

/// Core's `CheckBlock` without the header: merkle root, size, coinbase
/// placement, each transaction, legacy sigops.
pub(crate) fn check_block(block: &Block) -> Result<(), Reject> {
    let txids: Vec<[u8; 32]> = block.txdata.iter().map(|t| t.compute_txid().to_byte_array()).collect();
    let (root, mutated) = merkle_root(txids);
    if root != block.header.merkle_root.to_byte_array() {
        return Err(Reject::new("bad-txnmrklroot", "hashMerkleRoot mismatch").mutated());
    }
    if mutated {
        return Err(Reject::new("bad-txns-duplicate", "duplicate transaction").mutated());
    }
    let n = block.txdata.len();
    let varint = if n < 0xfd {
        1
    } else if n <= 0xffff {
        3
    } else {
        5
    };
    let base_size = 80 + varint + block.txdata.iter().map(|t| t.base_size()).sum::<usize>();
    if n == 0
        || n * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT as usize
        || base_size * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT as usize
    {
        return Err(Reject::new("bad-blk-length", "size limits failed"));
    }
    if !block.txdata[0].is_coinbase() {
        return Err(Reject::new("bad-cb-missing", "first tx is not coinbase"));
    }
    if block.txdata[1..].iter().any(|t| t.is_coinbase()) {
        return Err(Reject::new("bad-cb-multiple", "more than one coinbase"));
    }
    let mut sigops = 0;
    for tx in &block.txdata {
        check_transaction(tx)?;
        sigops += legacy_sigops(tx);
    }
    if sigops * WITNESS_SCALE_FACTOR > MAX_BLOCK_SIGOPS_COST {
        return Err(Reject::new("bad-blk-sigops", "out-of-bounds SigOpCount"));
    }
    Ok(())
}

/// Core's `IsFinalTx`.
pub(crate) fn is_final_tx(tx: &Transaction, height: u32, cutoff_time: u32) -> bool {
    let lt = tx.lock_time.to_consensus_u32();
    if lt == 0 {
        return true;
    }
    let limit = if lt < LOCKTIME_THRESHOLD { height } else { cutoff_time };
    if lt < limit {
        return true;
    }
    tx.input.iter().all(|i| i.sequence.0 == u32::MAX)
}

/// Core's `ContextualCheckBlock`: finality, BIP34 height, witness
/// commitment, weight.
pub(crate) fn check_block_context(block: &Block, ctx: &Context, cp: &ChainParams) -> Result<(), Reject> {
    // BIP113: after CSV activation locktimes compare with the median time past.
    let cutoff = if ctx.height >= cp.csv_height {
        ctx.mtp_prev
    } else {
        block.header.time
    };
    for tx in &block.txdata {
        if !is_final_tx(tx, ctx.height, cutoff) {
            return Err(Reject::tx(
                "bad-txns-nonfinal",
                tx.compute_txid(),
                "non-final transaction",
            ));
        }
    }
    if ctx.height >= cp.bip34_height {
        let expect = Builder::new().push_int(i64::from(ctx.height)).into_script();
        let sig = block.txdata[0].input[0].script_sig.as_bytes();
        if !sig.starts_with(expect.as_bytes()) {
            return Err(Reject::new("bad-cb-height", "block height mismatch in coinbase"));
        }
    }
    check_witness(block, ctx.height >= cp.segwit_height)?;
    if block.weight().to_wu() > MAX_BLOCK_WEIGHT {
        return Err(Reject::new("bad-blk-weight", "weight limit failed"));
    }
    Ok(())
}

/// BIP141 witness commitment (Core's `CheckWitnessMalleation`).
fn check_witness(block: &Block, segwit_active: bool) -> Result<(), Reject> {
    let coinbase = &block.txdata[0];
    let commitment_pos = coinbase
        .output
        .iter()
        .rposition(|o| o.script_pubkey.len() >= 38 && o.script_pubkey.as_bytes()[..6] == WITNESS_MAGIC);
    if segwit_active {
        if let Some(pos) = commitment_pos {
            let w = &coinbase.input[0].witness;
            if w.len() != 1 || w.nth(0).map(<[u8]>::len) != Some(32) {
                return Err(Reject::new("bad-witness-nonce-size", "invalid witness reserved value size").mutated());
            }
            let ok = block.witness_root().is_some_and(|root| {
                let c = Block::compute_witness_commitment(&root, w.nth(0).unwrap_or_default());
                c.as_byte_array()[..] == coinbase.output[pos].script_pubkey.as_bytes()[6..38]
            });
            if !ok {
                return Err(Reject::new("bad-witness-merkle-match", "witness merkle commitment mismatch").mutated());
            }
            return Ok(());
        }
    }
    if let Some(tx) = block
        .txdata
        .iter()
        .find(|t| t.input.iter().any(|i| !i.witness.is_empty()))
    {
        return Err(Reject::tx("unexpected-witness", tx.compute_txid(), "unexpected witness data found").mutated());
    }
    Ok(())
}
