//! Payloads of the maintenance events: maintenance windows, the unified
//! data maintenance request (cleanup and/or flush) and health checks.
//!
//! Kinds, urgencies and operations travel as documented strings rather than
//! enums, so that a newer node can add a value without making an older
//! module fail to decode the whole event.

use serde::{Deserialize, Serialize};

/// A maintenance operation started; modules may want to pause heavy work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceStarted {
    /// Kind of maintenance, e.g. `"compaction"`, `"reindex"`, `"backup"`.
    pub maintenance_type: String,
    /// Expected duration in milliseconds, when the node can tell.
    pub estimated_duration_ms: Option<u64>,
}

/// A maintenance operation completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceCompleted {
    /// Kind of maintenance (as in `MaintenanceStarted`).
    pub maintenance_type: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Time it took, in milliseconds.
    pub duration_ms: u64,
    /// A human-readable summary of what was done, if any.
    pub results: Option<String>,
}

/// The node asks modules to clean up old data and/or flush pending writes
/// (replaces the separate flush and cleanup events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataMaintenance {
    /// What to do: `"cleanup"`, `"flush"` or `"both"`.
    pub operation: String,
    /// How urgent: `"low"`, `"medium"`, `"high"` or `"critical"`
    /// (`"critical"` is sent before shutdown and on low disk space).
    pub urgency: String,
    /// Why, e.g. `"periodic"`, `"shutdown"`, `"disk_space_low"`.
    pub reason: String,
    /// For a cleanup: delete data older than this, in milliseconds.
    pub target_age_ms: Option<u64>,
    /// How long the module has to finish, in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// The node ran a health check; modules may report their own health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Kind of check, e.g. `"periodic"`, `"rpc"`.
    pub check_type: String,
    /// Whether the node considers itself healthy.
    pub node_healthy: bool,
    /// A human-readable report, if any.
    pub health_report: Option<String>,
}
