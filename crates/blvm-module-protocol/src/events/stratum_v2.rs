//! Payloads of the Stratum V2 events: messages the node received for a
//! Stratum V2 module, and miner connections that module reports.

use serde::{Deserialize, Serialize};

/// The node received a Stratum V2 message from a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StratumV2MessageReceived {
    /// Address of the peer that sent it (`ip:port`).
    pub peer_addr: String,
    /// The message, as received.
    #[serde(with = "crate::hash::bytes_field")]
    pub message_data: Vec<u8>,
}

/// A miner connected to a Stratum V2 module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StratumClientConnected {
    /// The miner's endpoint (`ip:port`).
    pub endpoint: String,
    /// Stratum V2 protocol version negotiated.
    pub protocol_version: u32,
}

/// A miner disconnected from a Stratum V2 module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StratumClientDisconnected {
    /// The miner's endpoint (`ip:port`).
    pub endpoint: String,
    /// Human-readable reason.
    pub reason: String,
}
