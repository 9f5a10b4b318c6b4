//! [`ChainView`]: what the mempool and the miner need from the chain.

use bitcoin::{BlockHash, CompactTarget, OutPoint, TxOut};

/// An unspent output with the facts validation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    /// The output.
    pub txout: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether it is a coinbase output (100-block maturity).
    pub is_coinbase: bool,
}

/// A read-only view of the active chain.
pub trait ChainView: Send + Sync {
    /// The active tip's hash and height.
    fn tip(&self) -> (BlockHash, u32);
    /// An unspent output of the active chain.
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin>;
    /// Median time past of the tip (BIP113).
    fn median_time_past(&self) -> u32;
    /// The compact target the block after the tip must have.
    fn next_block_bits(&self) -> CompactTarget;
    /// The consensus parameters of the chain's network.
    fn params(&self) -> &bitcoin::params::Params;
    /// `bitcoinconsensus` script verification flags for a block at `height`.
    fn script_flags(&self, height: u32) -> u32;
}
