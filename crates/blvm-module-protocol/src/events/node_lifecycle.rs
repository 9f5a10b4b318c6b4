//! Payloads of the node lifecycle events: startup completed, shutdown
//! started and shutdown completed.

use serde::{Deserialize, Serialize};

/// The node finished starting: every component is running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStartupCompleted {
    /// Time from process start to this event, in milliseconds.
    pub duration_ms: u64,
    /// The components that were started, e.g. `"chain"`, `"mempool"`,
    /// `"rpc"`, `"modules"`.
    pub components: Vec<String>,
}

/// The node is shutting down; modules should save their state now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeShutdown {
    /// Why, e.g. `"signal"`, `"rpc stop"`, `"fatal error"`.
    pub reason: String,
    /// How long modules have before they are sent `Shutdown` and then
    /// killed, in milliseconds.
    pub timeout_ms: u64,
}

/// The node finished shutting down (last event a module can receive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeShutdownCompleted {
    /// Time the shutdown took, in milliseconds.
    pub duration_ms: u64,
}
