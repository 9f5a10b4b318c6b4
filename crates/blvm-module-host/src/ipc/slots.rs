//! Handshake slots: how many connections may be waiting to complete their
//! handshake at once. A connection takes a slot at accept, before any
//! thread or buffer is given to it, and gives it back (the guard drops)
//! when its handshake ends either way; one more than the cap is refused
//! `too_many_connections` on the accept thread.
//!
//! - The node socket ([`NodeSlots`]) caps them in all and per connecting
//!   process (`SO_PEERCRED` pid): one process opening connections in a loop
//!   cannot take the others' share.
//! - A module's own socket ([`ModuleSlots`]) admits only the module's pid,
//!   so a plain count per socket is enough: a module can tie up its own
//!   slots and nobody else's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The slots of the node socket, by peer pid (0: unknown).
pub(super) struct NodeSlots {
    pending: Mutex<HashMap<u32, usize>>,
    max_total: usize,
    max_per_process: usize,
}

/// One connection counted in [`NodeSlots`] until dropped.
pub(super) struct NodeSlot {
    slots: Arc<NodeSlots>,
    pid: u32,
}

impl NodeSlots {
    /// At most `max_total` pending connections, `max_per_process` of them
    /// from one pid.
    pub(super) fn new(max_total: usize, max_per_process: usize) -> Arc<NodeSlots> {
        Arc::new(NodeSlots {
            pending: Mutex::new(HashMap::new()),
            max_total,
            max_per_process,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, usize>> {
        // Every update is one insert, increment or removal.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection from `pid`, or says why it is one too many.
    pub(super) fn take(self: &Arc<Self>, pid: u32) -> Result<NodeSlot, String> {
        let mut pending = self.lock();
        let total: usize = pending.values().sum();
        let mine = pending.get(&pid).copied().unwrap_or(0);
        if total >= self.max_total {
            return Err(format!(
                "{total} connections are already waiting to complete their handshake (the limit)"
            ));
        }
        if mine >= self.max_per_process {
            return Err(format!(
                "process {pid} already has {mine} connections waiting to complete their handshake (the limit)"
            ));
        }
        *pending.entry(pid).or_insert(0) += 1;
        Ok(NodeSlot {
            slots: Arc::clone(self),
            pid,
        })
    }
}

impl Drop for NodeSlot {
    fn drop(&mut self) {
        let mut pending = self.slots.lock();
        if let Some(n) = pending.get_mut(&self.pid) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.pid);
            }
        }
    }
}

/// The slots of one module's socket.
pub(super) struct ModuleSlots {
    pending: AtomicUsize,
    cap: usize,
}

/// One connection counted in its socket's [`ModuleSlots`] until dropped.
pub(super) struct ModuleSlot(Arc<ModuleSlots>);

impl ModuleSlots {
    /// At most `cap` pending connections.
    pub(super) fn new(cap: usize) -> Arc<ModuleSlots> {
        Arc::new(ModuleSlots {
            pending: AtomicUsize::new(0),
            cap,
        })
    }

    /// The cap.
    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// Counts a new connection, or `None` when all slots are taken.
    pub(super) fn take(self: &Arc<Self>) -> Option<ModuleSlot> {
        self.pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.cap).then_some(n + 1))
            .ok()
            .map(|_| ModuleSlot(Arc::clone(self)))
    }
}

impl Drop for ModuleSlot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_slots_are_capped_in_all_and_per_process_and_given_back_on_drop() {
        let slots = NodeSlots::new(3, 2);
        let a1 = slots.take(1).unwrap();
        let _a2 = slots.take(1).unwrap();
        assert!(slots.take(1).err().is_some_and(|e| e.contains("process 1")));
        let _b1 = slots.take(2).unwrap();
        assert!(slots.take(3).err().is_some_and(|e| e.contains("3 connections")));
        drop(a1);
        assert!(slots.take(3).is_ok());
    }

    #[test]
    fn module_slots_are_capped_and_given_back_on_drop() {
        let slots = ModuleSlots::new(2);
        let first = slots.take().unwrap();
        let _second = slots.take().unwrap();
        assert!(slots.take().is_none());
        drop(first);
        assert!(slots.take().is_some());
    }
}
