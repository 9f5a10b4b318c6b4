//! Payloads of the resource management events: low disk space and
//! resource limit warnings (for the node or for one module).

use serde::{Deserialize, Serialize};

/// Free space on a disk the node uses fell below its threshold; modules
/// should delete data they can rebuild.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskSpaceLow {
    /// Bytes still available to the node.
    pub available_bytes: u64,
    /// Size of the file system, in bytes.
    pub total_bytes: u64,
    /// `available_bytes / total_bytes`, in percent.
    pub percent_free: f64,
    /// A path on the file system concerned (the node's data directory).
    pub disk_path: String,
}

/// Usage of a resource crossed its warning threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceLimitWarning {
    /// The module whose limit it is; `None` for a limit of the node itself.
    pub module_name: Option<String>,
    /// The resource: `"memory"`, `"cpu"`, `"pids"`, `"open_files"`,
    /// `"storage"`, `"filesystem"`, `"event_queue"` ...
    pub resource_type: String,
    /// `current_usage / limit`, in percent.
    pub usage_percent: f64,
    /// Current usage, in the resource's unit (bytes, microseconds of CPU,
    /// processes, descriptors, events).
    pub current_usage: u64,
    /// The limit, in the same unit.
    pub limit: u64,
    /// The threshold that was crossed, in percent of the limit.
    pub threshold_percent: f64,
}
