//! Conversions between rust-bitcoin types and the wire's `Hash32`.

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid, Wtxid};
use blvm_module_protocol::Hash32;

/// A block hash on the wire.
pub fn block_hash(h: &BlockHash) -> Hash32 {
    Hash32(h.to_byte_array())
}

/// A txid on the wire.
pub fn txid(t: &Txid) -> Hash32 {
    Hash32(t.to_byte_array())
}

/// A wtxid on the wire.
pub fn wtxid(t: &Wtxid) -> Hash32 {
    Hash32(t.to_byte_array())
}

/// A wire hash as a block hash.
pub fn to_block_hash(h: &Hash32) -> BlockHash {
    BlockHash::from_byte_array(h.0)
}

/// A wire hash as a txid.
pub fn to_txid(h: &Hash32) -> Txid {
    Txid::from_byte_array(h.0)
}

/// Difficulty of a compact target, as `getblockchaininfo` reports it
/// (relative to the difficulty-1 target `0x1d00ffff` on every network, as
/// Core computes it).
pub fn difficulty(bits: u32) -> f64 {
    bitcoin::Target::from_compact(bitcoin::CompactTarget::from_consensus(bits)).difficulty_float()
}
