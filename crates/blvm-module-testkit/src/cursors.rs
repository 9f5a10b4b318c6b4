//! [`MemoryCursors`]: durable subscriptions' cursors kept in memory, for
//! the harness's node (a real node writes them to its store).

use std::collections::HashMap;
use std::sync::Mutex;

use blvm_module_host::{BackendError, CursorStore};
use blvm_module_protocol::methods::events::DurableCursor;

/// Cursors by module name, for the life of one harness: a module
/// restarted by the harness resumes where it acknowledged.
#[derive(Default)]
pub struct MemoryCursors {
    cursors: Mutex<HashMap<String, DurableCursor>>,
}

impl CursorStore for MemoryCursors {
    fn load(&self, module: &str) -> Result<Option<DurableCursor>, BackendError> {
        Ok(self
            .cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(module)
            .copied())
    }

    fn save(&self, module: &str, cursor: &DurableCursor) -> Result<(), BackendError> {
        self.cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(module.to_owned(), *cursor);
        Ok(())
    }
}
