//! Payloads of the node lifecycle events: startup completed, shutdown
//! started and shutdown completed.

use serde::{Deserialize, Serialize};

/// The node finished starting: every component is running, the modules
/// found at start are loaded. Replayed to a module that subscribes to it
/// after it was published.
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
    /// The grace period each module has, after it is sent `Shutdown`,
    /// before it is killed, in milliseconds.
    pub timeout_ms: u64,
}

/// The node finished shutting down. Published after every module has been
/// unloaded, so no module receives it: it is for code in the node's own
/// process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeShutdownCompleted {
    /// Time from `NodeShutdown` to every module unloaded, in milliseconds.
    pub duration_ms: u64,
}
