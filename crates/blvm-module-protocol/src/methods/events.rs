//! Event subscription requests.

use serde::{Deserialize, Serialize};

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
