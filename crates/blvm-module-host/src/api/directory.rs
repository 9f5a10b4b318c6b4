//! [`ModuleDirectory`]: the live module connections, by module id and by
//! name.
//!
//! The IPC server adds a connection when its handshake completes and
//! removes it when it ends; the services that reach a module on their own
//! initiative (timers, RPC endpoints, inter-module calls) look it up here.
//! One map, one place: a connection the server has dropped cannot still be
//! found by a service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ipc::ModuleConnectionHandle;

/// The live connections, by module id.
#[derive(Default)]
pub struct ModuleDirectory {
    by_id: Mutex<HashMap<String, ModuleConnectionHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is one insert, remove or clone.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ModuleDirectory {
    /// Adds (or replaces) the connection of `handle`'s module id.
    pub(crate) fn insert(&self, handle: ModuleConnectionHandle) {
        lock(&self.by_id).insert(handle.module_id().to_owned(), handle);
    }

    /// Removes `module_id`'s entry if it is still `handle`'s connection
    /// (a newer connection of the same id stays).
    pub(crate) fn remove_if_same(&self, handle: &ModuleConnectionHandle) {
        let mut map = lock(&self.by_id);
        if map
            .get(handle.module_id())
            .is_some_and(|h| Arc::ptr_eq(&h.conn, &handle.conn))
        {
            map.remove(handle.module_id());
        }
    }

    /// Removes and returns `module_id`'s connection.
    pub(crate) fn remove(&self, module_id: &str) -> Option<ModuleConnectionHandle> {
        lock(&self.by_id).remove(module_id)
    }

    /// Removes and returns every connection.
    pub(crate) fn drain(&self) -> Vec<ModuleConnectionHandle> {
        lock(&self.by_id).drain().map(|(_, h)| h).collect()
    }

    /// The live connection of `module_id`.
    pub fn get(&self, module_id: &str) -> Option<ModuleConnectionHandle> {
        lock(&self.by_id).get(module_id).cloned()
    }

    /// The live connection of the module named `name` (a name runs as at
    /// most one module at a time).
    pub fn by_name(&self, name: &str) -> Option<ModuleConnectionHandle> {
        lock(&self.by_id)
            .values()
            .find(|h| h.module_name() == name && !h.is_closed())
            .cloned()
    }

    /// Every live connection, sorted by module name.
    pub fn all(&self) -> Vec<ModuleConnectionHandle> {
        let mut all: Vec<_> = lock(&self.by_id).values().filter(|h| !h.is_closed()).cloned().collect();
        all.sort_by(|a, b| a.module_name().cmp(b.module_name()));
        all
    }

    /// Ids of the connected modules, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<_> = lock(&self.by_id).keys().cloned().collect();
        ids.sort();
        ids
    }
}
