//! Module storage: a key-value store per module, in named trees, kept by
//! the node in its own files.
//!
//! Keys and values are `bin`. Every stored key has a *generation*: 1 when
//! it is first written, one more at each later write; a key that does not
//! exist has generation 0. A batch may say which generation it expects for
//! each key it touches (compare-and-swap): if any expectation fails, the
//! batch writes nothing. Reads need `read_storage`, writes
//! `write_storage`, tree management and usage `manage_storage`.

use serde::{Deserialize, Serialize};

use crate::hash::bytes_field;

/// The longest tree name, in bytes.
pub const MAX_TREE_NAME_LEN: usize = 64;
/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// The largest value, in bytes.
pub const MAX_VALUE_LEN: usize = 4 << 20;
/// The most entries one `storage_scan` answers; also its default limit.
pub const MAX_SCAN_LIMIT: u32 = 1000;
/// The most operations in one `storage_batch`.
pub const MAX_BATCH_OPS: usize = 10_000;

/// Params of `storage_get`, `storage_delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeKey {
    /// The tree.
    pub tree: String,
    /// The key.
    #[serde(with = "bytes_field")]
    pub key: Vec<u8>,
}

/// Result of `storage_get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResult {
    /// The value; nil when the key (or the tree) does not exist.
    #[serde(with = "bytes_field::option", default)]
    pub value: Option<Vec<u8>>,
    /// The key's generation; 0 when it does not exist.
    pub generation: u64,
}

/// Params of `storage_put`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    /// The tree; created by the first write into it.
    pub tree: String,
    /// The key.
    #[serde(with = "bytes_field")]
    pub key: Vec<u8>,
    /// The value.
    #[serde(with = "bytes_field")]
    pub value: Vec<u8>,
}

/// Result of `storage_put`, `storage_delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    /// The key's generation after the write (0 after a delete).
    pub generation: u64,
    /// For a delete: whether the key existed.
    #[serde(default)]
    pub existed: bool,
}

/// Params of `storage_scan`: the keys of one tree in byte order, either
/// those starting with `prefix` or those in `[start, end)`, from after
/// `cursor` on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// The tree.
    pub tree: String,
    /// Only keys starting with these bytes (exclusive with `start`/`end`).
    #[serde(with = "bytes_field::option", default)]
    pub prefix: Option<Vec<u8>>,
    /// First key of the range, included.
    #[serde(with = "bytes_field::option", default)]
    pub start: Option<Vec<u8>>,
    /// End of the range, excluded.
    #[serde(with = "bytes_field::option", default)]
    pub end: Option<Vec<u8>>,
    /// The `cursor` of the previous page: this page starts after it.
    #[serde(with = "bytes_field::option", default)]
    pub cursor: Option<Vec<u8>>,
    /// Most entries to return (default and maximum [`MAX_SCAN_LIMIT`]).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key.
    #[serde(with = "bytes_field")]
    pub key: Vec<u8>,
    /// The value.
    #[serde(with = "bytes_field")]
    pub value: Vec<u8>,
    /// Its generation.
    pub generation: u64,
}

/// Result of `storage_scan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResult {
    /// The entries, in key order.
    pub entries: Vec<Entry>,
    /// Set when more entries may follow: pass it as the next `cursor`.
    #[serde(with = "bytes_field::option", default)]
    pub cursor: Option<Vec<u8>>,
}

/// What one batch operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchOpKind {
    /// Write `value` at `key`.
    Put,
    /// Remove `key`.
    Delete,
}

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOp {
    /// `put` or `delete`.
    pub op: BatchOpKind,
    /// The tree.
    pub tree: String,
    /// The key.
    #[serde(with = "bytes_field")]
    pub key: Vec<u8>,
    /// The value of a `put`.
    #[serde(with = "bytes_field::option", default)]
    pub value: Option<Vec<u8>>,
    /// Compare-and-swap: the generation the key must have before the batch
    /// (0: it must not exist). Nil: no condition.
    #[serde(default)]
    pub expect_generation: Option<u64>,
}

/// Params of `storage_batch`: applied all together or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The operations, in order.
    pub ops: Vec<BatchOp>,
}

/// Result of `storage_batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    /// Whether the batch was written; false when an expectation failed.
    pub applied: bool,
    /// When applied: each operation's key generation after the batch.
    pub generations: Vec<u64>,
    /// When not applied: the indices of the operations whose expected
    /// generation did not match.
    pub conflicts: Vec<u32>,
}

/// Params of `storage_create_tree`, `storage_drop_tree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeName {
    /// The tree.
    pub tree: String,
}

/// Result of `storage_create_tree`, `storage_drop_tree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeChanged {
    /// Whether anything changed (false: it already existed / did not exist).
    pub changed: bool,
}

/// Result of `storage_list_trees`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeList {
    /// The module's trees, sorted.
    pub trees: Vec<String>,
}

/// Result of `storage_usage`: what the module stores and may store.
/// Bytes count keys plus values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageUsage {
    /// Bytes stored (keys plus values).
    pub bytes: u64,
    /// Keys stored, all trees together.
    pub keys: u64,
    /// The byte quota.
    pub max_bytes: u64,
    /// The key quota.
    pub max_keys: u64,
}
