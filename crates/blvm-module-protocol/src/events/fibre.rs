//! Payloads of the FIBRE events: blocks encoded and sent by a FIBRE module,
//! FIBRE peers it registered, and the companion UDP endpoints (NODE_FIBRE)
//! that P2P peers advertise to the node.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// A FIBRE module encoded a block into forward-error-corrected chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FibreBlockEncoded {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// Number of chunks produced.
    pub chunks: u32,
    /// Time encoding took, in milliseconds.
    pub encoding_time_ms: u64,
}

/// A FIBRE module sent a block to a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FibreBlockSent {
    /// The block.
    pub block_hash: Hash32,
    /// Its height.
    pub height: u64,
    /// The FIBRE peer it was sent to.
    pub peer_addr: String,
}

/// A FIBRE module registered a peer for FIBRE relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FibrePeerRegistered {
    /// The peer's P2P address.
    pub peer_addr: String,
    /// The UDP address FIBRE traffic goes to.
    pub udp_addr: String,
}

/// A P2P peer advertised a companion UDP endpoint to the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompanionUdpPeerRegistered {
    /// The peer's P2P address.
    pub p2p_peer_addr: String,
    /// The UDP address it advertised.
    pub udp_addr: String,
}

/// A P2P peer's companion UDP endpoint is gone (peer disconnected or
/// withdrew it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompanionUdpPeerUnregistered {
    /// The peer's P2P address.
    pub p2p_peer_addr: String,
}
