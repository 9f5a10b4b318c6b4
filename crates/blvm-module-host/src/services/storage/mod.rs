//! Module storage: a key-value store per module, in named trees, kept by
//! the node in its own files.
//!
//! Each module's data is one redb database, `<dir>/<module name>.redb`,
//! where `dir` is `<modules data dir>/.storage` by default: a directory
//! the module's mount namespace does not show (its sandbox mounts only its
//! own data dir), so a module reaches its data only through these
//! requests and cannot corrupt the file. The store is chosen by the
//! module's name from the authenticated connection, never by anything the
//! module sends, so a module never sees another's trees.
//!
//! The data outlives the module's process, its reloads and the node's
//! restarts; unloading a module keeps it; [`StorageService::remove`] (the
//! operator's `blvm-node module storage-remove <name>`) deletes it.
//!
//! Quotas: each module may store at most `max_bytes` bytes (keys plus
//! values) and `max_keys` keys. The operator's `[storage]` settings give
//! the cap (a default and per module); a manifest's `[resources]`
//! `storage_mb` / `storage_keys` may ask for less, never more. A write that
//! would take the module past either quota answers `quota_exceeded` and
//! writes nothing.
//!
//! Capabilities (checked by the hub before any of this runs): `storage_get`
//! and `storage_scan` need `read_storage`; `storage_put`, `storage_delete`
//! and `storage_batch` need `write_storage`; tree creation, dropping and
//! listing, and `storage_usage`, need `manage_storage`. A write creates
//! the tree it writes to, so a module that only reads and writes needs no
//! `manage_storage`.

mod store;

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use blvm_module_protocol::events::{Event, StorageQuery, StorageRead, StorageWrite};
use blvm_module_protocol::methods::storage::WriteResult;
use blvm_module_protocol::methods::storage::{
    Batch, BatchOpKind, BatchResult, GetResult, Put, Scan, ScanResult, StorageUsage, TreeKey, MAX_BATCH_OPS,
    MAX_KEY_LEN, MAX_SCAN_LIMIT, MAX_TREE_NAME_LEN, MAX_VALUE_LEN,
};
use blvm_module_protocol::{ErrorCode, RemoteError};

use self::store::{Applied, ModuleStore, Op};
use crate::api::events::EventManager;

/// How much one module may store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageQuota {
    /// Bytes of keys plus values, all trees together.
    pub max_bytes: u64,
    /// Keys, all trees together.
    pub max_keys: u64,
}

impl Default for StorageQuota {
    /// 64 MiB in at most 1 000 000 keys.
    fn default() -> StorageQuota {
        StorageQuota {
            max_bytes: 64 << 20,
            max_keys: 1_000_000,
        }
    }
}

impl StorageQuota {
    /// Field by field, the smaller of the two.
    pub fn min(self, other: StorageQuota) -> StorageQuota {
        StorageQuota {
            max_bytes: self.max_bytes.min(other.max_bytes),
            max_keys: self.max_keys.min(other.max_keys),
        }
    }
}

/// The operator's storage settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageConfig {
    /// Where the databases live; `None`: `<modules data dir>/.storage`.
    pub dir: Option<PathBuf>,
    /// Every module's quota cap.
    pub default_quota: StorageQuota,
    /// Per-module caps, replacing `default_quota` for that module.
    pub quotas: BTreeMap<String, StorageQuota>,
}

/// What a manifest asks for (`[resources]` `storage_mb`, `storage_keys`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageRequest {
    /// Bytes.
    pub max_bytes: Option<u64>,
    /// Keys.
    pub max_keys: Option<u64>,
}

/// Why a storage request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Past a quota; nothing was written.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// A tree name, key or value out of range.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("storage failure: {0}")]
    Store(String),
}

impl StorageError {
    fn store(e: impl std::fmt::Display) -> StorageError {
        StorageError::Store(e.to_string())
    }
}

impl From<StorageError> for RemoteError {
    fn from(e: StorageError) -> RemoteError {
        let code = match &e {
            StorageError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            StorageError::Invalid(_) => ErrorCode::InvalidParams,
            StorageError::Store(_) => ErrorCode::Internal,
        };
        RemoteError::new(code, e.to_string())
    }
}

/// The storage service: every module's store, opened on first use.
pub struct StorageService {
    dir: PathBuf,
    config: StorageConfig,
    requested: Mutex<HashMap<String, StorageRequest>>,
    stores: Mutex<HashMap<String, Arc<ModuleStore>>>,
    events: Option<Arc<EventManager>>,
}

impl std::fmt::Debug for StorageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageService").field("dir", &self.dir).finish()
    }
}

/// A module name as a file name: what the manifest allows, nothing that
/// could leave the directory.
fn check_module_name(name: &str) -> Result<(), StorageError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "module name `{name}` cannot have storage"
        )))
    }
}

fn check_tree(tree: &str) -> Result<(), StorageError> {
    let ok = !tree.is_empty()
        && tree.len() <= MAX_TREE_NAME_LEN
        && tree.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "tree name `{tree}`: 1 to {MAX_TREE_NAME_LEN} of A-Z a-z 0-9 - _ . : /"
        )))
    }
}

fn check_key(key: &[u8]) -> Result<(), StorageError> {
    if key.len() > MAX_KEY_LEN {
        return Err(StorageError::Invalid(format!(
            "a key of {} bytes; the maximum is {MAX_KEY_LEN}",
            key.len()
        )));
    }
    Ok(())
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl StorageService {
    /// A service keeping its databases in `dir`, announcing operations on
    /// `events` (the storage events of the protocol).
    pub fn new(dir: impl Into<PathBuf>, config: StorageConfig, events: Option<Arc<EventManager>>) -> StorageService {
        StorageService {
            dir: dir.into(),
            config,
            requested: Mutex::new(HashMap::new()),
            stores: Mutex::new(HashMap::new()),
            events,
        }
    }

    /// Where the databases live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records what `module`'s manifest asks for (called at each load).
    pub fn set_request(&self, module: &str, request: StorageRequest) {
        self.requested
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(module.to_owned(), request);
    }

    /// `module`'s quota: the operator's cap, lowered by what its manifest
    /// asks for.
    pub fn quota(&self, module: &str) -> StorageQuota {
        let cap = self
            .config
            .quotas
            .get(module)
            .copied()
            .unwrap_or(self.config.default_quota);
        let asked = self
            .requested
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(module)
            .copied()
            .unwrap_or_default();
        cap.min(StorageQuota {
            max_bytes: asked.max_bytes.unwrap_or(u64::MAX),
            max_keys: asked.max_keys.unwrap_or(u64::MAX),
        })
    }

    fn path(&self, module: &str) -> PathBuf {
        self.dir.join(format!("{module}.redb"))
    }

    fn store(&self, module: &str) -> Result<Arc<ModuleStore>, StorageError> {
        check_module_name(module)?;
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stores.get(module) {
            return Ok(Arc::clone(s));
        }
        std::fs::create_dir_all(&self.dir).map_err(StorageError::store)?;
        // Owner only: the modules may run under the node's uid, but never
        // see this directory; other local users have no business in it.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        let store = Arc::new(ModuleStore::open(&self.path(module))?);
        stores.insert(module.to_owned(), Arc::clone(&store));
        Ok(store)
    }

    fn publish(&self, event: Event) {
        if let Some(events) = &self.events {
            events.publish(&event);
        }
    }

    /// Bytes and keys `module` stores, with its quota. A module that never
    /// stored anything uses nothing (no file is created to say so).
    pub fn usage(&self, module: &str) -> Result<StorageUsage, StorageError> {
        let quota = self.quota(module);
        let open = self
            .stores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(module);
        if !open && !self.path(module).exists() {
            return Ok(store::usage_report((0, 0), quota));
        }
        Ok(store::usage_report(self.store(module)?.usage()?, quota))
    }

    /// Deletes all of `module`'s data; false if it had none. The caller
    /// makes sure the module is not running.
    pub fn remove(&self, module: &str) -> Result<bool, StorageError> {
        check_module_name(module)?;
        // Closing the database first: the file is deleted, not truncated
        // under an open handle.
        drop(self.stores.lock().unwrap_or_else(|p| p.into_inner()).remove(module));
        match std::fs::remove_file(self.path(module)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StorageError::store(e)),
        }
    }

    /// Closes every open database (at node shutdown; a later request
    /// opens its module's again).
    pub fn close_all(&self) {
        self.stores.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// `storage_get`.
    pub fn get(&self, module: &str, p: &TreeKey) -> Result<GetResult, StorageError> {
        check_tree(&p.tree)?;
        let start = Instant::now();
        let found = self.store(module)?.get(&p.tree, &p.key)?;
        self.publish(Event::StorageRead(StorageRead {
            operation: "get".into(),
            duration_ms: elapsed_ms(start),
        }));
        Ok(match found {
            Some((value, generation)) => GetResult {
                value: Some(value),
                generation,
            },
            None => GetResult {
                value: None,
                generation: 0,
            },
        })
    }

    /// `storage_scan`.
    pub fn scan(&self, module: &str, p: &Scan) -> Result<ScanResult, StorageError> {
        check_tree(&p.tree)?;
        if p.prefix.is_some() && (p.start.is_some() || p.end.is_some()) {
            return Err(StorageError::Invalid(
                "a scan takes a prefix or a range, not both".into(),
            ));
        }
        let limit = p.limit.unwrap_or(MAX_SCAN_LIMIT).clamp(1, MAX_SCAN_LIMIT) as usize;
        let begin = p.prefix.as_deref().or(p.start.as_deref());
        // The page starts after the cursor, or at the range's start,
        // whichever is later.
        let lower = match (&p.cursor, begin) {
            (Some(c), Some(b)) if c.as_slice() < b => Bound::Included(b),
            (Some(c), _) => Bound::Excluded(c.as_slice()),
            (None, Some(b)) => Bound::Included(b),
            (None, None) => Bound::Unbounded,
        };
        let start = Instant::now();
        let (entries, cursor) = self.store(module)?.scan(
            &p.tree,
            lower,
            |key| {
                p.prefix.as_deref().is_none_or(|pre| key.starts_with(pre))
                    && p.end.as_deref().is_none_or(|end| key < end)
            },
            limit,
        )?;
        self.publish(Event::StorageQuery(StorageQuery {
            query_type: if p.prefix.is_some() { "prefix" } else { "range" }.into(),
            duration_ms: elapsed_ms(start),
        }));
        Ok(ScanResult { entries, cursor })
    }

    /// `storage_put`.
    pub fn put(&self, module: &str, p: &Put) -> Result<WriteResult, StorageError> {
        let op = Op {
            kind: BatchOpKind::Put,
            tree: &p.tree,
            key: &p.key,
            value: &p.value,
            expect_generation: None,
        };
        let generations = self
            .write(module, "insert", &[op])?
            .map_err(|_| StorageError::Store("an unconditional put reported a conflict".into()))?;
        Ok(WriteResult {
            generation: generations.first().copied().unwrap_or(0),
            existed: false,
        })
    }

    /// `storage_delete`.
    pub fn delete(&self, module: &str, p: &TreeKey) -> Result<WriteResult, StorageError> {
        check_tree(&p.tree)?;
        let existed = self.store(module)?.get(&p.tree, &p.key)?.is_some();
        if existed {
            let op = Op {
                kind: BatchOpKind::Delete,
                tree: &p.tree,
                key: &p.key,
                value: &[],
                expect_generation: None,
            };
            self.write(module, "remove", &[op])?
                .map_err(|_| StorageError::Store("an unconditional delete reported a conflict".into()))?;
        }
        Ok(WriteResult { generation: 0, existed })
    }

    /// `storage_batch`.
    pub fn batch(&self, module: &str, p: &Batch) -> Result<BatchResult, StorageError> {
        if p.ops.len() > MAX_BATCH_OPS {
            return Err(StorageError::Invalid(format!(
                "a batch of {} operations; the maximum is {MAX_BATCH_OPS}",
                p.ops.len()
            )));
        }
        let mut ops = Vec::with_capacity(p.ops.len());
        for (i, op) in p.ops.iter().enumerate() {
            let value = match (op.op, &op.value) {
                (BatchOpKind::Put, Some(v)) => v.as_slice(),
                (BatchOpKind::Put, None) => {
                    return Err(StorageError::Invalid(format!("ops[{i}]: a put needs a value")))
                }
                (BatchOpKind::Delete, _) => &[],
            };
            ops.push(Op {
                kind: op.op,
                tree: &op.tree,
                key: &op.key,
                value,
                expect_generation: op.expect_generation,
            });
        }
        Ok(match self.write(module, "transaction", &ops)? {
            Ok(generations) => BatchResult {
                applied: true,
                generations,
                conflicts: Vec::new(),
            },
            Err(conflicts) => BatchResult {
                applied: false,
                generations: Vec::new(),
                conflicts,
            },
        })
    }

    /// Checks and applies `ops` atomically; publishes `StorageWrite` when
    /// something was written.
    fn write(&self, module: &str, operation: &str, ops: &[Op<'_>]) -> Result<Result<Vec<u64>, Vec<u32>>, StorageError> {
        for op in ops {
            check_tree(op.tree)?;
            check_key(op.key)?;
            if op.value.len() > MAX_VALUE_LEN {
                return Err(StorageError::Invalid(format!(
                    "a value of {} bytes; the maximum is {MAX_VALUE_LEN}",
                    op.value.len()
                )));
            }
        }
        let start = Instant::now();
        let quota = self.quota(module);
        match self.store(module)?.apply(ops, quota)? {
            Applied::Written {
                generations,
                bytes_written,
            } => {
                self.publish(Event::StorageWrite(StorageWrite {
                    operation: operation.into(),
                    duration_ms: elapsed_ms(start),
                    bytes_written,
                }));
                Ok(Ok(generations))
            }
            Applied::Conflicts(c) => Ok(Err(c)),
        }
    }

    /// `storage_create_tree`: true if it was created.
    pub fn create_tree(&self, module: &str, tree: &str) -> Result<bool, StorageError> {
        check_tree(tree)?;
        self.store(module)?.create_tree(tree)
    }

    /// `storage_drop_tree`: true if it existed.
    pub fn drop_tree(&self, module: &str, tree: &str) -> Result<bool, StorageError> {
        check_tree(tree)?;
        self.store(module)?.drop_tree(tree)
    }

    /// `storage_list_trees`.
    pub fn list_trees(&self, module: &str) -> Result<Vec<String>, StorageError> {
        self.store(module)?.list_trees()
    }
}
