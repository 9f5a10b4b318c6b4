//! Payload of the mesh networking event: a mesh packet the node received
//! from a P2P peer and hands to mesh modules.

use serde::{Deserialize, Serialize};

/// The node received a mesh packet from a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshPacketReceived {
    /// Address of the peer that sent it (`ip:port`).
    pub peer_addr: String,
    /// The packet, as received.
    #[serde(with = "crate::hash::bytes_field")]
    pub packet_data: Vec<u8>,
}
