//! Payloads of the Stratum V2 events: messages a Stratum V2 module (the
//! `stratum-v2` Template Provider) received from its clients, and the
//! client connections it reports.

use serde::{Deserialize, Serialize};

/// A Stratum V2 module received a message from a peer (published by the
/// module that holds the connection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StratumV2MessageReceived {
    /// Address of the peer that sent it (`ip:port`).
    pub peer_addr: String,
    /// The message, as received: its Stratum V2 frame (6-byte header and
    /// payload), decrypted.
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
