//! [`ModuleStore`]: one module's key-value store, a redb database.
//!
//! Each tree is a table `tree:<name>` mapping a key to `(generation,
//! value)`; the table `meta` holds the usage (`bytes`, `keys`) and the
//! store's `revision`. Usage is updated in the same write transaction as
//! the data it counts, so the two never disagree, and a quota check is a
//! comparison made before the commit: a write past a quota is aborted and
//! leaves nothing behind.
//!
//! A generation is the store's revision at the key's last write: it grows
//! at every write of the store and is never reused, so a key deleted and
//! written again does not come back with a generation a stale
//! compare-and-swap could match (no ABA).

use std::ops::Bound;
use std::path::Path;

use blvm_module_protocol::methods::storage::{BatchOpKind, Entry, StorageUsage};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};

use super::{StorageError, StorageQuota};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const TREE_PREFIX: &str = "tree:";
/// Past this many bytes of entries a scan page ends early (with a cursor),
/// well inside the 16 MiB frame limit.
const SCAN_PAGE_BYTES: usize = 8 << 20;

type TreeDef<'a> = TableDefinition<'a, &'static [u8], (u64, &'static [u8])>;

fn tree_table(name: &str) -> String {
    format!("{TREE_PREFIX}{name}")
}

/// One operation of [`ModuleStore::apply`].
pub(super) struct Op<'a> {
    pub kind: BatchOpKind,
    pub tree: &'a str,
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub expect_generation: Option<u64>,
}

/// What [`ModuleStore::apply`] did.
pub(super) enum Applied {
    /// Written: each operation's generation afterwards.
    Written { generations: Vec<u64>, bytes_written: u64 },
    /// Nothing written: these operations' expectations failed.
    Conflicts(Vec<u32>),
}

/// One module's store.
pub(super) struct ModuleStore {
    db: Database,
}

impl ModuleStore {
    /// Opens (creating it if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<ModuleStore, StorageError> {
        let db = Database::create(path).map_err(StorageError::store)?;
        Ok(ModuleStore { db })
    }

    /// Bytes and keys stored.
    pub fn usage(&self) -> Result<(u64, u64), StorageError> {
        let txn = self.db.begin_read().map_err(StorageError::store)?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, 0)),
            Err(e) => return Err(StorageError::store(e)),
        };
        let get = |k: &str| -> Result<u64, StorageError> {
            Ok(meta
                .get(k)
                .map_err(StorageError::store)?
                .map(|g| g.value())
                .unwrap_or(0))
        };
        Ok((get("bytes")?, get("keys")?))
    }

    /// A value and its generation.
    pub fn get(&self, tree: &str, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>, StorageError> {
        let txn = self.db.begin_read().map_err(StorageError::store)?;
        let name = tree_table(tree);
        let table = match txn.open_table(TreeDef::new(&name)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(StorageError::store(e)),
        };
        let found = table.get(key).map_err(StorageError::store)?;
        Ok(found.map(|g| {
            let (generation, value) = g.value();
            (value.to_vec(), generation)
        }))
    }

    /// Up to `limit` entries of `tree` from `lower` on, while `keep` holds;
    /// the cursor when more may follow.
    pub fn scan(
        &self,
        tree: &str,
        lower: Bound<&[u8]>,
        keep: impl Fn(&[u8]) -> bool,
        limit: usize,
    ) -> Result<(Vec<Entry>, Option<Vec<u8>>), StorageError> {
        let txn = self.db.begin_read().map_err(StorageError::store)?;
        let name = tree_table(tree);
        let table = match txn.open_table(TreeDef::new(&name)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), None)),
            Err(e) => return Err(StorageError::store(e)),
        };
        let mut entries = Vec::new();
        let mut size = 0usize;
        for item in table
            .range::<&[u8]>((lower, Bound::Unbounded))
            .map_err(StorageError::store)?
        {
            let (k, v) = item.map_err(StorageError::store)?;
            let key = k.value();
            if !keep(key) {
                return Ok((entries, None));
            }
            if entries.len() == limit || size >= SCAN_PAGE_BYTES {
                let cursor = entries.last().map(|e: &Entry| e.key.clone());
                return Ok((entries, cursor));
            }
            let (generation, value) = v.value();
            size += key.len() + value.len();
            entries.push(Entry {
                key: key.to_vec(),
                value: value.to_vec(),
                generation,
            });
        }
        Ok((entries, None))
    }

    /// Applies `ops` in one transaction: all of them, or none when an
    /// expectation fails (`Conflicts`) or a quota would be passed
    /// (`QuotaExceeded`).
    pub fn apply(&self, ops: &[Op<'_>], quota: StorageQuota) -> Result<Applied, StorageError> {
        let txn = self.db.begin_write().map_err(StorageError::store)?;
        let mut generations = Vec::with_capacity(ops.len());
        let mut conflicts = Vec::new();
        let mut bytes_written = 0u64;
        let (old_bytes, old_keys, new_bytes, new_keys) = {
            let mut meta = txn.open_table(META).map_err(StorageError::store)?;
            let get = |m: &redb::Table<&str, u64>, k: &str| -> Result<u64, StorageError> {
                Ok(m.get(k).map_err(StorageError::store)?.map(|g| g.value()).unwrap_or(0))
            };
            let (old_bytes, old_keys) = (get(&meta, "bytes")?, get(&meta, "keys")?);
            let revision = get(&meta, "revision")? + 1;
            let (mut bytes, mut keys) = (old_bytes, old_keys);
            for (i, op) in ops.iter().enumerate() {
                let name = tree_table(op.tree);
                let mut table = txn.open_table(TreeDef::new(&name)).map_err(StorageError::store)?;
                let current = table
                    .get(op.key)
                    .map_err(StorageError::store)?
                    .map(|g| (g.value().0, g.value().1.len() as u64));
                let current_generation = current.map_or(0, |(g, _)| g);
                if op.expect_generation.is_some_and(|e| e != current_generation) {
                    conflicts.push(u32::try_from(i).unwrap_or(u32::MAX));
                    continue;
                }
                let old_len = current.map(|(_, len)| len + op.key.len() as u64);
                match op.kind {
                    BatchOpKind::Put => {
                        table
                            .insert(op.key, (revision, op.value))
                            .map_err(StorageError::store)?;
                        let len = (op.key.len() + op.value.len()) as u64;
                        bytes_written += len;
                        bytes = bytes.saturating_sub(old_len.unwrap_or(0)) + len;
                        keys += u64::from(old_len.is_none());
                        generations.push(revision);
                    }
                    BatchOpKind::Delete => {
                        if let Some(len) = old_len {
                            table.remove(op.key).map_err(StorageError::store)?;
                            bytes = bytes.saturating_sub(len);
                            keys = keys.saturating_sub(1);
                        }
                        generations.push(0);
                    }
                }
            }
            meta.insert("bytes", bytes).map_err(StorageError::store)?;
            meta.insert("keys", keys).map_err(StorageError::store)?;
            meta.insert("revision", revision).map_err(StorageError::store)?;
            (old_bytes, old_keys, bytes, keys)
        };
        if !conflicts.is_empty() {
            txn.abort().map_err(StorageError::store)?;
            return Ok(Applied::Conflicts(conflicts));
        }
        // Growing past a quota is refused; shrinking is always allowed,
        // even above a quota the operator has since lowered.
        if (new_bytes > quota.max_bytes && new_bytes > old_bytes) || (new_keys > quota.max_keys && new_keys > old_keys)
        {
            txn.abort().map_err(StorageError::store)?;
            return Err(StorageError::QuotaExceeded(format!(
                "the write would store {new_bytes} bytes in {new_keys} keys; the quota is {} bytes and {} keys",
                quota.max_bytes, quota.max_keys
            )));
        }
        txn.commit().map_err(StorageError::store)?;
        Ok(Applied::Written {
            generations,
            bytes_written,
        })
    }

    /// The module's trees, sorted.
    pub fn list_trees(&self) -> Result<Vec<String>, StorageError> {
        let txn = self.db.begin_read().map_err(StorageError::store)?;
        let mut trees: Vec<String> = txn
            .list_tables()
            .map_err(StorageError::store)?
            .filter_map(|t| t.name().strip_prefix(TREE_PREFIX).map(str::to_owned))
            .collect();
        trees.sort();
        Ok(trees)
    }

    /// Creates an empty tree; false if it existed.
    pub fn create_tree(&self, tree: &str) -> Result<bool, StorageError> {
        if self.list_trees()?.iter().any(|t| t == tree) {
            return Ok(false);
        }
        let txn = self.db.begin_write().map_err(StorageError::store)?;
        let name = tree_table(tree);
        txn.open_table(TreeDef::new(&name)).map_err(StorageError::store)?;
        txn.commit().map_err(StorageError::store)?;
        Ok(true)
    }

    /// Removes a tree and its entries, and their share of the usage; false
    /// if it did not exist.
    pub fn drop_tree(&self, tree: &str) -> Result<bool, StorageError> {
        // Opening a table in a write transaction creates it: ask first.
        if !self.list_trees()?.iter().any(|t| t == tree) {
            return Ok(false);
        }
        let txn = self.db.begin_write().map_err(StorageError::store)?;
        let name = tree_table(tree);
        let (bytes, keys) = {
            let table = txn.open_table(TreeDef::new(&name)).map_err(StorageError::store)?;
            let mut bytes = 0u64;
            for item in table.iter().map_err(StorageError::store)? {
                let (k, v) = item.map_err(StorageError::store)?;
                bytes += (k.value().len() + v.value().1.len()) as u64;
            }
            (bytes, table.len().map_err(StorageError::store)?)
        };
        txn.delete_table(TreeDef::new(&name)).map_err(StorageError::store)?;
        {
            let mut meta = txn.open_table(META).map_err(StorageError::store)?;
            let get = |m: &redb::Table<&str, u64>, k: &str| -> Result<u64, StorageError> {
                Ok(m.get(k).map_err(StorageError::store)?.map(|g| g.value()).unwrap_or(0))
            };
            let (b, n) = (get(&meta, "bytes")?, get(&meta, "keys")?);
            meta.insert("bytes", b.saturating_sub(bytes))
                .map_err(StorageError::store)?;
            meta.insert("keys", n.saturating_sub(keys))
                .map_err(StorageError::store)?;
        }
        txn.commit().map_err(StorageError::store)?;
        Ok(true)
    }
}

/// Usage and quota as the protocol reports them.
pub(super) fn usage_report((bytes, keys): (u64, u64), quota: StorageQuota) -> StorageUsage {
    StorageUsage {
        bytes,
        keys,
        max_bytes: quota.max_bytes,
        max_keys: quota.max_keys,
    }
}
