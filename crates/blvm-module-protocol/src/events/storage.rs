//! Payloads of the storage events: operations of the module storage
//! service and backups of the node's database. They name no module and no
//! key: a module with `read_storage` may see that storage is busy, not
//! what other modules store.

use serde::{Deserialize, Serialize};

/// A storage read finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageRead {
    /// The operation, e.g. `"get"`, `"contains_key"`.
    pub operation: String,
    /// Time it took, in milliseconds.
    pub duration_ms: u64,
}

/// A storage write finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageWrite {
    /// The operation, e.g. `"insert"`, `"remove"`, `"transaction"`.
    pub operation: String,
    /// Time it took, in milliseconds.
    pub duration_ms: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

/// A storage query (iteration or range scan) finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageQuery {
    /// The query, e.g. `"iter"`, `"range"`.
    pub query_type: String,
    /// Time it took, in milliseconds.
    pub duration_ms: u64,
}

/// A backup of the node's database started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseBackupStarted {
    /// Where the backup is written.
    pub backup_path: String,
}

/// A backup of the node's database finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseBackupCompleted {
    /// Where the backup was written.
    pub backup_path: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Size of the backup, in bytes.
    pub size_bytes: u64,
    /// Time it took, in milliseconds.
    pub duration_ms: u64,
}
