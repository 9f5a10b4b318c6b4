//! Payloads of the UTXO commitment events: a peer's commitment to the UTXO
//! set at a block, and the node's verification of it.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// A UTXO set commitment was received from a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UtxoCommitmentReceived {
    /// The block the commitment is for.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// The commitment.
    pub commitment_hash: Hash32,
    /// The peer that sent it.
    pub peer_addr: String,
}

/// A UTXO set commitment was checked against the node's UTXO set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UtxoCommitmentVerified {
    /// The block the commitment is for.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// The commitment.
    pub commitment_hash: Hash32,
    /// Whether it matches.
    pub valid: bool,
}
