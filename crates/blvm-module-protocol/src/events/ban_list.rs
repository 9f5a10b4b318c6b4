//! Payloads of the ban list sharing events.

use serde::{Deserialize, Serialize};

/// The node shared its ban list with a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BanListShared {
    /// The peer.
    pub peer_addr: String,
    /// Number of entries shared.
    pub ban_count: u32,
}

/// The node received a ban list from a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BanListReceived {
    /// The peer.
    pub peer_addr: String,
    /// Number of entries received.
    pub ban_count: u32,
}
