//! Network reads.

use serde::{Deserialize, Serialize};

/// Result of `get_network_stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Connected peers.
    pub peer_count: u64,
    /// Bytes sent to peers since start.
    pub bytes_sent: u64,
    /// Bytes received from peers since start.
    pub bytes_received: u64,
}

/// One connected peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// `ip:port`.
    pub addr: String,
    /// Whether the peer connected to us.
    pub inbound: bool,
    /// Protocol version it announced.
    pub version: u32,
    /// Service bits it announced.
    pub services: u64,
    /// Its user agent.
    pub subver: String,
}

/// Result of `get_network_peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPeers {
    /// The peers (empty when the node has no P2P layer; never invented).
    pub peers: Vec<PeerInfo>,
}
