//! Event subscription requests.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

/// Params of `subscribe_events` and `unsubscribe_events`.
///
/// Event types travel as their names so that a module may name an event a
/// node does not know; the node answers which ones it subscribed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTypes {
    /// Event names, e.g. `NewBlock`.
    pub events: Vec<String>,
}

/// Result of `subscribe_events` and `unsubscribe_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionResult {
    /// The event types the module is now subscribed to (all of them, not
    /// only those this request added).
    pub subscribed: Vec<String>,
}

/// The most durable events a node sends a module unacknowledged (the
/// module's event queue capacity, at most this). A module's event buffer
/// keeps this much room for durable events beyond what at-most-once events
/// may fill, so that it never has to drop one.
pub const MAX_DURABLE_WINDOW: usize = 256;

/// Params of `subscribe_durable`: chain events delivered from the module's
/// cursor, never lost (see `docs/ipc-protocol.md`, durable subscriptions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableSubscription {
    /// Any of `NewBlock`, `BlockDisconnected`, `ChainReorg` (each needs
    /// its usual capability). The module's view follows the active chain
    /// whichever of them it names; those it leaves out are not sent.
    pub events: Vec<String>,
    /// Where a module that has no cursor yet starts: the first height it
    /// is sent. Absent: after the current tip (only blocks from now on).
    /// Ignored once the module has a cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_height: Option<u64>,
}

/// A block the module's view of the chain ends at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: Hash32,
}

/// A module's durable cursor: what it has acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableCursor {
    /// The last durable sequence number it acknowledged (0: none yet).
    pub seq: u64,
    /// The tip of its view after that event: the block its acknowledged
    /// events leave it at. Nil when its view is before genesis (it asked
    /// for `start_height` 0 and has acknowledged nothing).
    #[serde(default)]
    pub at: Option<ChainPoint>,
}

/// Result of `subscribe_durable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableSubscribed {
    /// The event types now delivered durably.
    pub durable: Vec<String>,
    /// The cursor delivery resumes from: every event after it is sent,
    /// those it acknowledged never again.
    pub cursor: DurableCursor,
}

/// Params of `ack_events`: every durable event up to and including `seq`
/// is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckEvents {
    /// A durable sequence number the module received.
    pub seq: u64,
}

/// Result of `ack_events`: the cursor as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckResult {
    /// The module's cursor now.
    pub cursor: DurableCursor,
}
