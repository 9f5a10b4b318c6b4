//! Payloads of the Dandelion++ (BIP156) events: a transaction's stem phase,
//! its fluff, and stem route expiry.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// A transaction entered the stem phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DandelionStemStarted {
    /// The transaction.
    pub txid: Hash32,
    /// The peer it came from; `None` when it originated locally.
    pub current_peer: Option<String>,
    /// The stem peer it is relayed to.
    pub next_peer: String,
}

/// A stem transaction was relayed one more hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DandelionStemAdvanced {
    /// The transaction.
    pub txid: Hash32,
    /// Hops so far, as far as this node knows.
    pub hop_count: u32,
    /// The stem peer it is relayed to.
    pub next_peer: String,
}

/// A transaction left the stem phase and was broadcast normally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DandelionFluffed {
    /// The transaction.
    pub txid: Hash32,
    /// Stem hops it made, as far as this node knows.
    pub stem_hops: u32,
}

/// A stem route through a peer expired (epoch change or disconnect).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DandelionStemPathExpired {
    /// The stem peer of the expired route.
    pub peer_addr: String,
}
