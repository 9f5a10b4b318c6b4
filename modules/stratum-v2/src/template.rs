//! Templates: the node's block template as the fields of a TDP
//! `NewTemplate` and `SetNewPrevHash`, and the block a `SubmitSolution`
//! completes.
//!
//! The node's template holds a whole coinbase (BIP34 height push and an
//! extranonce in its scriptSig; the payout output; the witness
//! commitment output when segwit is active). A pool writes its own
//! coinbase, so the template hands on only what the pool must keep:
//!
//! - `coinbase_prefix`: the BIP34 height push, the first push of the
//!   node's scriptSig (at most 8 bytes, as the spec requires);
//! - `coinbase_tx_version`, `coinbase_tx_input_sequence`,
//!   `coinbase_tx_locktime`: the node's coinbase's;
//! - `coinbase_tx_value_remaining`: what the payout output pays (subsidy
//!   plus fees), for the pool's own outputs to share out;
//! - `coinbase_tx_outputs`: every other output of the node's coinbase, in
//!   order: the witness commitment, which commits to the other
//!   transactions only and so holds for whatever coinbase the pool writes;
//! - `merkle_path`: the hashes that take the coinbase txid to the merkle
//!   root, deepest first.
//!
//! [`Template::block`] puts a solution's header fields and coinbase in
//! front of the template's transactions. The reference implementation's
//! coinbase carries the 32 zero bytes of the witness reserved value; a
//! coinbase without a witness gets it added when the block commits to
//! witnesses, as BIP141 requires.

use bitcoin::block::{Header, Version};
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::pow::Target;
use bitcoin::{Block, BlockHash, CompactTarget, Transaction, TxMerkleNode, TxOut, Txid, Witness};
use blvm_sdk::protocol::methods::mining::BlockTemplate as NodeTemplate;

use crate::Error;

/// The most bytes a `coinbase_prefix` may have (the TDP spec).
pub const MAX_COINBASE_PREFIX: usize = 8;
/// The start of a witness commitment output's script:
/// `OP_RETURN OP_PUSHBYTES_36 aa21a9ed`.
pub const WITNESS_COMMITMENT_PREFIX: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
/// The witness reserved value the node commits with.
pub const WITNESS_RESERVED_VALUE: [u8; 32] = [0; 32];

/// A template, as sent to one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The `template_id` the client knows it by.
    pub id: u64,
    /// The tip it builds on.
    pub prev_hash: BlockHash,
    /// Its height.
    pub height: u64,
    /// The header version.
    pub version: u32,
    /// The compact target.
    pub bits: CompactTarget,
    /// The header time to start from (`SetNewPrevHash.header_timestamp`).
    pub time: u32,
    /// The earliest valid header time (median time past + 1).
    pub min_time: u32,
    /// The BIP34 height push.
    pub coinbase_prefix: Vec<u8>,
    /// The coinbase's `nVersion`.
    pub coinbase_tx_version: u32,
    /// The coinbase input's `nSequence`.
    pub coinbase_tx_input_sequence: u32,
    /// What the pool's coinbase outputs may pay in all, satoshis.
    pub coinbase_tx_value_remaining: u64,
    /// The outputs the pool's coinbase must end with.
    pub coinbase_tx_outputs: Vec<TxOut>,
    /// The coinbase's `nLockTime`.
    pub coinbase_tx_locktime: u32,
    /// From the coinbase txid to the merkle root, deepest first.
    pub merkle_path: Vec<[u8; 32]>,
    /// The other transactions, in block order.
    pub transactions: Vec<Transaction>,
    /// Their fees, satoshis.
    pub fees: u64,
}

/// What a `SubmitSolution` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solution {
    /// The template it solves.
    pub template_id: u64,
    /// The header version.
    pub version: u32,
    /// The header time.
    pub header_timestamp: u32,
    /// The header nonce.
    pub header_nonce: u32,
    /// The whole coinbase transaction.
    pub coinbase_tx: Vec<u8>,
}

fn bad(what: impl Into<String>) -> Error {
    Error::Template(what.into())
}

impl Template {
    /// The template of the node's `template`, as `id`.
    ///
    /// # Errors
    ///
    /// [`Error::Template`] when the node's coinbase or a transaction does
    /// not parse, the coinbase has no payout output, or its height push
    /// is longer than [`MAX_COINBASE_PREFIX`].
    pub fn from_node(id: u64, template: &NodeTemplate) -> Result<Template, Error> {
        let coinbase: Transaction =
            deserialize(&template.coinbase_tx).map_err(|e| bad(format!("the node's coinbase: {e}")))?;
        let input = coinbase
            .input
            .first()
            .filter(|_| coinbase.is_coinbase())
            .ok_or_else(|| bad("the node's coinbase is not a coinbase"))?;
        let script = input.script_sig.as_bytes();
        let prefix_len = first_push_len(script).ok_or_else(|| bad("the coinbase's scriptSig starts with no push"))?;
        if prefix_len > MAX_COINBASE_PREFIX {
            return Err(bad(format!(
                "the coinbase's height push has {prefix_len} bytes, more than {MAX_COINBASE_PREFIX}"
            )));
        }
        let (payout, rest) = coinbase
            .output
            .split_first()
            .ok_or_else(|| bad("the node's coinbase has no output"))?;
        let transactions = template
            .transactions
            .iter()
            .map(|t| deserialize::<Transaction>(&t.data).map_err(|e| bad(format!("a transaction: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let txids: Vec<Txid> = transactions.iter().map(Transaction::compute_txid).collect();
        Ok(Template {
            id,
            prev_hash: BlockHash::from_byte_array(template.prev_hash.0),
            height: template.height,
            version: template.version as u32,
            bits: CompactTarget::from_consensus(template.bits),
            time: template.cur_time.max(template.min_time),
            min_time: template.min_time,
            coinbase_prefix: script[..prefix_len].to_vec(),
            coinbase_tx_version: coinbase.version.0 as u32,
            coinbase_tx_input_sequence: input.sequence.0,
            coinbase_tx_value_remaining: payout.value.to_sat(),
            coinbase_tx_outputs: rest.to_vec(),
            coinbase_tx_locktime: coinbase.lock_time.to_consensus_u32(),
            merkle_path: merkle_path(&txids),
            fees: template.transactions.iter().map(|t| t.fee).sum(),
            transactions,
        })
    }

    /// `coinbase_tx_outputs` as the spec sends them: the outputs'
    /// serializations one after the other, without a count.
    pub fn serialized_outputs(&self) -> Vec<u8> {
        self.coinbase_tx_outputs.iter().flat_map(serialize).collect()
    }

    /// The target, as the 32 little-endian bytes of `SetNewPrevHash.target`.
    pub fn target_le(&self) -> [u8; 32] {
        Target::from_compact(self.bits).to_le_bytes()
    }

    /// The block `solution` completes: its header fields and coinbase,
    /// then the template's transactions.
    ///
    /// # Errors
    ///
    /// [`Error::Solution`] when the coinbase does not parse or is not one.
    pub fn block(&self, solution: &Solution) -> Result<Block, Error> {
        let mut coinbase: Transaction = deserialize(&solution.coinbase_tx)
            .map_err(|e| Error::Solution(format!("the coinbase does not parse: {e}")))?;
        if !coinbase.is_coinbase() {
            return Err(Error::Solution("the coinbase transaction is not a coinbase".into()));
        }
        let commits = coinbase
            .output
            .iter()
            .any(|o| o.script_pubkey.as_bytes().starts_with(&WITNESS_COMMITMENT_PREFIX));
        if commits && coinbase.input[0].witness.is_empty() {
            coinbase.input[0].witness = Witness::from_slice(&[WITNESS_RESERVED_VALUE]);
        }
        let header = Header {
            version: Version::from_consensus(solution.version as i32),
            prev_blockhash: self.prev_hash,
            merkle_root: merkle_root(coinbase.compute_txid(), &self.merkle_path),
            time: solution.header_timestamp,
            bits: self.bits,
            nonce: solution.header_nonce,
        };
        let mut txdata = Vec::with_capacity(self.transactions.len() + 1);
        txdata.push(coinbase);
        txdata.extend(self.transactions.iter().cloned());
        Ok(Block { header, txdata })
    }
}

/// The length of the first push of `script` (opcode included): a BIP34
/// height is pushed as `OP_1`..`OP_16` or a direct push of 1 to 75 bytes.
fn first_push_len(script: &[u8]) -> Option<usize> {
    match *script.first()? {
        // OP_0, OP_1NEGATE, OP_1 ..= OP_16.
        0x00 | 0x4f | 0x51..=0x60 => Some(1),
        n @ 0x01..=0x4b => Some(1 + usize::from(n)).filter(|&len| len <= script.len()),
        _ => None,
    }
}

fn parent(left: &sha256d::Hash, right: &sha256d::Hash) -> sha256d::Hash {
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(left.as_byte_array());
    both[32..].copy_from_slice(right.as_byte_array());
    sha256d::Hash::hash(&both)
}

/// The merkle path of the coinbase of a block whose other transactions
/// have `txids` (in block order): at each level of the tree, deepest
/// first, the sibling of the coinbase's ancestor. Empty for a block of
/// the coinbase alone.
pub fn merkle_path(txids: &[Txid]) -> Vec<[u8; 32]> {
    // Index 0 stands for the coinbase: only index 1 of each level is
    // kept, and no level's index 1 depends on the index 0 below it.
    let mut level: Vec<sha256d::Hash> = std::iter::once(sha256d::Hash::all_zeros())
        .chain(txids.iter().map(|t| t.to_raw_hash()))
        .collect();
    let mut path = Vec::new();
    while level.len() > 1 {
        path.push(level[1].to_byte_array());
        level = level
            .chunks(2)
            .map(|pair| parent(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    path
}

/// The merkle root of a block whose coinbase has `coinbase` as txid and
/// whose other transactions give `path` ([`merkle_path`]).
pub fn merkle_root(coinbase: Txid, path: &[[u8; 32]]) -> TxMerkleNode {
    let root = path.iter().fold(coinbase.to_raw_hash(), |h, sibling| {
        parent(&h, &sha256d::Hash::from_byte_array(*sibling))
    });
    TxMerkleNode::from_raw_hash(root)
}

#[cfg(test)]
mod tests;
