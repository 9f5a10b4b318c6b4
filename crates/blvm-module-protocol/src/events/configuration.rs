//! Payload of the configuration event.
//!
//! Unlike the earlier implementation, the event does not carry the node's
//! configuration as JSON: it needs no permission to subscribe to, it is
//! encoded once for every subscriber, and the configuration holds secrets
//! (RPC credentials). A module reads its own configuration from the
//! handshake or by request.

use serde::{Deserialize, Serialize};

/// The node's configuration was loaded (at startup) or reloaded. The
/// latest one is replayed to a module that subscribes to it later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigLoaded {
    /// Top-level sections that changed (all sections at startup).
    pub changed_sections: Vec<String>,
    /// False for the load at startup, true for a later reload.
    pub reload: bool,
}
