//! Payloads of the package relay (BIP331) events.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// A transaction package was received from a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageReceived {
    /// The package id (BIP331: hash of the sorted wtxids).
    pub package_id: Hash32,
    /// Number of transactions in the package.
    pub transaction_count: u32,
    /// The peer that sent it.
    pub peer_addr: String,
}

/// A transaction package was rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageRejected {
    /// The package id.
    pub package_id: Hash32,
    /// Why.
    pub reason: String,
    /// The peer that sent it.
    pub peer_addr: String,
}
