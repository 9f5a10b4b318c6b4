//! Payloads of the Lightning channel events, published by Lightning
//! modules. They have their own category because subscribing to them needs
//! `read_lightning` rather than `read_payment`.

use serde::{Deserialize, Serialize};

/// A Lightning channel was opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelOpened {
    /// Channel id as the Lightning implementation reports it (hex).
    pub channel_id: String,
    /// The peer's 33-byte compressed node public key.
    #[serde(with = "crate::hash::bytes_field")]
    pub peer_pubkey: Vec<u8>,
    /// Channel capacity in satoshis.
    pub capacity_sats: u64,
}

/// A Lightning channel was closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelClosed {
    /// Channel id as the Lightning implementation reports it (hex).
    pub channel_id: String,
    /// Why it closed, e.g. `"cooperative"`, `"force"`, `"breach"`.
    pub reason: String,
}
