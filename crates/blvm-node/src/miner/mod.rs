//! Block templates and regtest block production.
//!
//! - [`build_template`] picks mempool transactions and builds the coinbase:
//!   BIP34 height push followed by an extranonce push (Core's
//!   `<height> <extranonce>` scriptSig), paying subsidy plus fees to the
//!   given script, and — whenever segwit is active for the new block (the
//!   WITNESS bit of `chain.script_flags(height)`), as Core does — a BIP141
//!   witness commitment output with a zero 32-byte witness reserved value in
//!   the coinbase witness.
//! - Selection is Core's ancestor-fee-rate greedy (`addPackageTxs`),
//!   simplified: repeatedly take the transaction whose package (itself plus
//!   its not-yet-selected in-mempool ancestors) has the best fee rate, add
//!   the whole package parents first, and re-score the descendants of what
//!   was added. A package that does not fit the remaining weight
//!   (4,000,000 WU minus 4,000 WU reserved for header and coinbase) or sigop
//!   cost (80,000 minus 400 reserved) is skipped; selection goes on with the
//!   others. [`build_template_reserving`] takes another [`CoinbaseReserve`]
//!   (a Stratum V2 pool's coinbase outputs need room of their own). There is no early stop when the block is nearly full.
//! - [`assemble`] turns a template into a block with its merkle root;
//!   [`mine`] grinds the nonce, then the extranonce, until the header hash
//!   meets its target — meant for regtest, where the target is trivial.

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use bitcoin::blockdata::block::{Header, Version};
use bitcoin::blockdata::opcodes::all::OP_RETURN;
use bitcoin::blockdata::script::{Builder, PushBytesBuf};
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Target};
use bitcoin::{
    absolute, transaction, Address, Amount, Block, BlockHash, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxMerkleNode, TxOut, Txid, Witness, WitnessCommitment, Wtxid,
};

use crate::chain::ChainView;
use crate::mempool::{policy, Entry, Mempool};

/// BIP141 block weight limit.
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// BIP141 block sigop cost limit.
pub const MAX_BLOCK_SIGOPS_COST: u64 = 80_000;
/// Weight kept free for the header, transaction count and coinbase (Core's
/// block reserved weight).
pub const COINBASE_RESERVED_WEIGHT: u64 = 4_000;
/// Sigop cost kept free for the coinbase.
pub const COINBASE_RESERVED_SIGOPS: u64 = 400;
/// Version of produced blocks: BIP9 top bits, no deployment signalled
/// (what Core's regtest produces).
pub const BLOCK_VERSION: i32 = 0x2000_0000;
/// The 4 bytes that follow `OP_RETURN OP_PUSHBYTES_36` in a witness commitment.
pub const WITNESS_COMMITMENT_HEADER: [u8; 4] = [0xaa, 0x21, 0xa9, 0xed];
/// The witness reserved value put in the coinbase witness.
pub const WITNESS_RESERVED_VALUE: [u8; 32] = [0u8; 32];

/// A transaction of a template.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateTx {
    /// The transaction.
    pub tx: Arc<Transaction>,
    /// Transaction id.
    pub txid: Txid,
    /// Witness transaction id.
    pub wtxid: Wtxid,
    /// Fee it pays.
    pub fee: Amount,
    /// Weight, WU.
    pub weight: u64,
    /// Sigop cost.
    pub sigop_cost: u64,
    /// Positions, **1-based** as in `getblocktemplate`'s `depends`, of the
    /// template transactions it spends from.
    pub depends: Vec<usize>,
}

impl TemplateTx {
    /// From a mempool entry (`depends` is filled in by the template builder).
    pub fn from_entry(entry: &Entry) -> Self {
        TemplateTx {
            tx: entry.tx.clone(),
            txid: entry.txid,
            wtxid: entry.wtxid,
            fee: entry.fee,
            weight: entry.weight,
            sigop_cost: entry.sigop_cost,
            depends: Vec::new(),
        }
    }
}

/// Everything needed to build and mine the next block (and to answer
/// `getblocktemplate`).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Block version.
    pub version: Version,
    /// Hash of the tip the block builds on.
    pub prev_hash: BlockHash,
    /// Height of the block.
    pub height: u32,
    /// Compact target the block must have.
    pub bits: CompactTarget,
    /// The target, expanded.
    pub target: Target,
    /// Header time: the requested time, raised to `min_time` if needed.
    pub time: u32,
    /// Earliest valid header time: the tip's median time past + 1.
    pub min_time: u32,
    /// Block subsidy at `height`.
    pub subsidy: Amount,
    /// Fees of the selected transactions.
    pub total_fees: Amount,
    /// What the coinbase may pay: subsidy + fees.
    pub coinbase_value: Amount,
    /// The script the coinbase pays to.
    pub coinbase_script: ScriptBuf,
    /// Extranonce in the coinbase scriptSig.
    pub extranonce: u32,
    /// The witness commitment output script, when present (Core's
    /// `default_witness_commitment`).
    pub witness_commitment: Option<ScriptBuf>,
    /// The coinbase transaction.
    pub coinbase: Transaction,
    /// The other transactions, in block (dependency) order.
    pub transactions: Vec<TemplateTx>,
    /// Weight of the assembled block, WU.
    pub weight: u64,
    /// Sigop cost of the block, coinbase included.
    pub sigop_cost: u64,
    /// Weight limit (`weightlimit`).
    pub weight_limit: u64,
    /// Sigop cost limit (`sigoplimit`).
    pub sigop_limit: u64,
}

/// The block subsidy at `height` (halving every 210,000 blocks, every 150
/// on regtest).
pub fn block_subsidy(height: u32, network: Network) -> Amount {
    let interval = match network {
        Network::Regtest => 150,
        _ => 210_000,
    };
    let halvings = height / interval;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000u64) >> halvings)
}

/// The script a coinbase paying `addr` uses.
pub fn coinbase_script_for_address(addr: &Address) -> ScriptBuf {
    addr.script_pubkey()
}

/// The coinbase scriptSig: `<height> <extranonce>` (BIP34).
pub fn coinbase_script_sig(height: u32, extranonce: u32) -> ScriptBuf {
    Builder::new()
        .push_int(i64::from(height))
        .push_int(i64::from(extranonce))
        .into_script()
}

/// The witness commitment output script: `OP_RETURN <aa21a9ed || commitment>`.
pub fn witness_commitment_script(commitment: &WitnessCommitment) -> ScriptBuf {
    let mut data = PushBytesBuf::with_capacity(36);
    // 36 bytes always fit a push.
    let _ = data.extend_from_slice(&WITNESS_COMMITMENT_HEADER);
    let _ = data.extend_from_slice(commitment.as_byte_array());
    Builder::new().push_opcode(OP_RETURN).push_slice(data).into_script()
}

/// The witness commitment for a block whose non-coinbase transactions have
/// `wtxids`, with [`WITNESS_RESERVED_VALUE`].
pub fn witness_commitment(wtxids: impl Iterator<Item = Wtxid>) -> WitnessCommitment {
    let hashes = std::iter::once(Wtxid::all_zeros())
        .chain(wtxids)
        .map(|w| w.to_raw_hash());
    let root = bitcoin::merkle_tree::calculate_root(hashes)
        .map(bitcoin::WitnessMerkleNode::from_raw_hash)
        .unwrap_or_else(bitcoin::WitnessMerkleNode::all_zeros);
    Block::compute_witness_commitment(&root, &WITNESS_RESERVED_VALUE)
}

/// Builds the coinbase for a block at `height`.
pub fn build_coinbase(
    height: u32,
    extranonce: u32,
    script: ScriptBuf,
    value: Amount,
    commitment: Option<&ScriptBuf>,
) -> Transaction {
    let mut witness = Witness::new();
    if commitment.is_some() {
        witness.push(WITNESS_RESERVED_VALUE);
    }
    let mut output = vec![TxOut {
        value,
        script_pubkey: script,
    }];
    if let Some(c) = commitment {
        output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: c.clone(),
        });
    }
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: coinbase_script_sig(height, extranonce),
            sequence: Sequence::MAX,
            witness,
        }],
        output,
    }
}

/// A package candidate in the selection heap, ordered by fee rate, then age.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    fee: u64,
    vsize: u64,
    seq: usize,
    txid: Txid,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        let a = u128::from(self.fee) * u128::from(other.vsize.max(1));
        let b = u128::from(other.fee) * u128::from(self.vsize.max(1));
        a.cmp(&b).then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Picks mempool entries by ancestor fee rate (see the module docs).
/// `entries` must be one consistent snapshot, oldest first.
pub fn select_transactions(entries: &[Entry], weight_budget: u64, sigop_budget: u64) -> Vec<TemplateTx> {
    let index: HashMap<Txid, usize> = entries.iter().enumerate().map(|(i, e)| (e.txid, i)).collect();
    let mut included: HashSet<Txid> = HashSet::new();
    let mut failed: HashSet<Txid> = HashSet::new();
    let mut selected: Vec<TemplateTx> = Vec::new();
    let (mut weight, mut sigops) = (0u64, 0u64);

    // The not-yet-included package of `i`: itself and its unincluded ancestors.
    let package = |i: usize, included: &HashSet<Txid>| -> Vec<usize> {
        let mut seen = HashSet::new();
        let mut stack = vec![i];
        let mut out = Vec::new();
        while let Some(j) = stack.pop() {
            if !seen.insert(j) || included.contains(&entries[j].txid) {
                continue;
            }
            out.push(j);
            stack.extend(entries[j].parents.iter().filter_map(|p| index.get(p).copied()));
        }
        out
    };
    let score = |pkg: &[usize]| -> (u64, u64) {
        pkg.iter().fold((0u64, 0u64), |(f, v), &j| {
            (f + entries[j].fee.to_sat(), v + entries[j].vsize)
        })
    };

    let mut heap = BinaryHeap::new();
    for (i, entry) in entries.iter().enumerate() {
        let (fee, vsize) = score(&package(i, &included));
        heap.push(Candidate {
            fee,
            vsize,
            seq: i,
            txid: entry.txid,
        });
    }
    while let Some(c) = heap.pop() {
        if included.contains(&c.txid) || failed.contains(&c.txid) {
            continue;
        }
        let mut pkg = package(c.seq, &included);
        let (fee, vsize) = score(&pkg);
        if (fee, vsize) != (c.fee, c.vsize) {
            heap.push(Candidate { fee, vsize, ..c });
            continue;
        }
        let pkg_weight: u64 = pkg.iter().map(|&j| entries[j].weight).sum();
        let pkg_sigops: u64 = pkg.iter().map(|&j| entries[j].sigop_cost).sum();
        if pkg.iter().any(|&j| failed.contains(&entries[j].txid))
            || weight + pkg_weight > weight_budget
            || sigops + pkg_sigops > sigop_budget
        {
            failed.insert(c.txid);
            continue;
        }
        // Parents first: an ancestor always has fewer ancestors.
        pkg.sort_by_key(|&j| (entries[j].ancestors.count, j));
        weight += pkg_weight;
        sigops += pkg_sigops;
        let mut touched = Vec::new();
        for &j in &pkg {
            included.insert(entries[j].txid);
            selected.push(TemplateTx::from_entry(&entries[j]));
            touched.push(j);
        }
        // Re-score every descendant of what was just added.
        let mut seen = HashSet::new();
        while let Some(j) = touched.pop() {
            for child in &entries[j].children {
                if let Some(&k) = index.get(child) {
                    if seen.insert(k) && !included.contains(child) {
                        let (fee, vsize) = score(&package(k, &included));
                        heap.push(Candidate {
                            fee,
                            vsize,
                            seq: k,
                            txid: *child,
                        });
                        touched.push(k);
                    }
                }
            }
        }
    }
    selected
}

/// What a template leaves free for the header, the transaction count and
/// the coinbase: the block weight and sigop cost the selected transactions
/// may not use. A caller that rewrites the coinbase (a Stratum V2 pool
/// adding its payout outputs) asks for more than the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoinbaseReserve {
    /// Weight units kept free.
    pub weight: u64,
    /// Sigop cost kept free.
    pub sigops: u64,
}

impl CoinbaseReserve {
    /// The least weight a reserve keeps (Core's `-blockreservedweight`
    /// minimum): header, transaction count and the smallest coinbase.
    pub const MIN_WEIGHT: u64 = 2_000;

    /// A reserve of `weight` (raised to [`Self::MIN_WEIGHT`], capped at the
    /// block limit) and `sigops` (capped at the block limit).
    pub fn new(weight: u64, sigops: u64) -> Self {
        CoinbaseReserve {
            weight: weight.clamp(Self::MIN_WEIGHT, MAX_BLOCK_WEIGHT),
            sigops: sigops.min(MAX_BLOCK_SIGOPS_COST),
        }
    }
}

impl Default for CoinbaseReserve {
    /// [`COINBASE_RESERVED_WEIGHT`] and [`COINBASE_RESERVED_SIGOPS`].
    fn default() -> Self {
        CoinbaseReserve {
            weight: COINBASE_RESERVED_WEIGHT,
            sigops: COINBASE_RESERVED_SIGOPS,
        }
    }
}

/// Builds a template on `chain`'s tip with transactions chosen from
/// `mempool`, paying to `coinbase_script`, with header time `time` (raised
/// to the tip's median time past + 1 if lower).
pub fn build_template(chain: &dyn ChainView, mempool: &Mempool, coinbase_script: ScriptBuf, time: u32) -> Template {
    build_template_reserving(chain, mempool, coinbase_script, time, CoinbaseReserve::default())
}

/// [`build_template`], leaving `reserve` free for the coinbase instead of
/// the default: the transactions chosen use at most the block's weight and
/// sigop limits minus the reserve.
pub fn build_template_reserving(
    chain: &dyn ChainView,
    mempool: &Mempool,
    coinbase_script: ScriptBuf,
    time: u32,
    reserve: CoinbaseReserve,
) -> Template {
    let entries = mempool.entries();
    let selected = select_transactions(
        &entries,
        MAX_BLOCK_WEIGHT.saturating_sub(reserve.weight),
        MAX_BLOCK_SIGOPS_COST.saturating_sub(reserve.sigops),
    );
    build_template_with_transactions(chain, coinbase_script, time, selected)
}

/// Builds a template on `chain`'s tip with exactly `transactions` (already
/// in dependency order, e.g. for `generateblock`), filling in their
/// `depends`, the coinbase and the witness commitment. The transactions are
/// not validated here.
pub fn build_template_with_transactions(
    chain: &dyn ChainView,
    coinbase_script: ScriptBuf,
    time: u32,
    mut transactions: Vec<TemplateTx>,
) -> Template {
    let (prev_hash, tip_height) = chain.tip();
    let height = tip_height.saturating_add(1);
    let min_time = chain.median_time_past().saturating_add(1);
    let bits = chain.next_block_bits();
    let network = chain.params().network;

    let position: HashMap<Txid, usize> = transactions.iter().enumerate().map(|(i, t)| (t.txid, i + 1)).collect();
    for t in &mut transactions {
        let mut depends: Vec<usize> =
            t.tx.input
                .iter()
                .filter_map(|i| position.get(&i.previous_output.txid).copied())
                .collect();
        depends.sort_unstable();
        depends.dedup();
        t.depends = depends;
    }

    let subsidy = block_subsidy(height, network);
    let total_fees: Amount = transactions.iter().map(|t| t.fee).sum();
    let coinbase_value = subsidy + total_fees;
    let segwit = chain.script_flags(height) & policy::VERIFY_WITNESS != 0;
    let has_witness = transactions
        .iter()
        .any(|t| t.tx.input.iter().any(|i| !i.witness.is_empty()));
    let witness_commitment = (segwit || has_witness)
        .then(|| witness_commitment_script(&witness_commitment(transactions.iter().map(|t| t.wtxid))));
    let extranonce = 0;
    let coinbase = build_coinbase(
        height,
        extranonce,
        coinbase_script.clone(),
        coinbase_value,
        witness_commitment.as_ref(),
    );

    let coinbase_sigops = coinbase.total_sigop_cost(|_| None) as u64;
    let sigop_cost = coinbase_sigops + transactions.iter().map(|t| t.sigop_cost).sum::<u64>();
    let mut template = Template {
        version: Version::from_consensus(BLOCK_VERSION),
        prev_hash,
        height,
        bits,
        target: Target::from_compact(bits),
        time: time.max(min_time),
        min_time,
        subsidy,
        total_fees,
        coinbase_value,
        coinbase_script,
        extranonce,
        witness_commitment,
        coinbase,
        transactions,
        weight: 0,
        sigop_cost,
        weight_limit: MAX_BLOCK_WEIGHT,
        sigop_limit: MAX_BLOCK_SIGOPS_COST,
    };
    template.weight = assemble(&template).weight().to_wu();
    template
}

/// The block a template describes, with nonce 0 and its merkle root.
pub fn assemble(template: &Template) -> Block {
    let mut txdata = Vec::with_capacity(template.transactions.len() + 1);
    txdata.push(template.coinbase.clone());
    txdata.extend(template.transactions.iter().map(|t| (*t.tx).clone()));
    let mut block = Block {
        header: Header {
            version: template.version,
            prev_blockhash: template.prev_hash,
            merkle_root: TxMerkleNode::all_zeros(),
            time: template.time,
            bits: template.bits,
            nonce: 0,
        },
        txdata,
    };
    block.header.merkle_root = block.compute_merkle_root().unwrap_or_else(TxMerkleNode::all_zeros);
    block
}

/// The extranonce in `block`'s coinbase scriptSig (its second push), if any.
pub fn extranonce(block: &Block) -> Option<u32> {
    let coinbase = block.txdata.first().filter(|t| t.is_coinbase())?;
    let second = coinbase.input[0].script_sig.instructions().nth(1)?.ok()?;
    second.script_num().and_then(|n| u32::try_from(n).ok())
}

/// Rewrites the coinbase scriptSig of `block` as `<height push> <extranonce>`
/// and recomputes the merkle root (the witness commitment does not depend on
/// the coinbase). Returns false if the block has no coinbase to rewrite.
pub fn set_extranonce(block: &mut Block, extranonce: u32) -> bool {
    let Some(coinbase) = block.txdata.first_mut().filter(|t| t.is_coinbase()) else {
        return false;
    };
    let Some(Ok(first)) = coinbase.input[0].script_sig.instructions().next() else {
        return false;
    };
    let builder = match first {
        bitcoin::script::Instruction::PushBytes(bytes) => Builder::new().push_slice(bytes),
        bitcoin::script::Instruction::Op(op) => Builder::new().push_opcode(op),
    };
    let script_sig = builder.push_int(i64::from(extranonce)).into_script();
    if script_sig.len() > 100 {
        return false;
    }
    coinbase.input[0].script_sig = script_sig;
    block.header.merkle_root = block.compute_merkle_root().unwrap_or_else(TxMerkleNode::all_zeros);
    true
}

/// Grinds `block` until its header hash meets the target its `bits` encode,
/// trying at most `max_tries` headers: the nonce first, then, when the
/// nonce space is exhausted, the next extranonce (or, without a coinbase to
/// rewrite, the next second of time). `None` if no solution was found.
///
/// Only sensible where the target is trivial (regtest).
pub fn mine(mut block: Block, max_tries: u64) -> Option<Block> {
    let target = block.header.target();
    for _ in 0..max_tries {
        if block.header.validate_pow(target).is_ok() {
            return Some(block);
        }
        if block.header.nonce == u32::MAX {
            block.header.nonce = 0;
            let next = extranonce(&block).unwrap_or(0).wrapping_add(1);
            if !set_extranonce(&mut block, next) {
                block.header.time = block.header.time.wrapping_add(1);
            }
        } else {
            block.header.nonce += 1;
        }
    }
    None
}

/// Builds, assembles and mines the next block: [`build_template`], then
/// [`assemble`], then [`mine`].
pub fn generate_block(
    chain: &dyn ChainView,
    mempool: &Mempool,
    coinbase_script: ScriptBuf,
    time: u32,
    max_tries: u64,
) -> Option<Block> {
    mine(
        assemble(&build_template(chain, mempool, coinbase_script, time)),
        max_tries,
    )
}
