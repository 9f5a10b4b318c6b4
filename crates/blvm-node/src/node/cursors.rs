//! [`ChainCursorStore`]: modules' durable event cursors in the node's own
//! store (the chain's redb database, table `module_cursors`), so a cursor
//! survives the node's crash exactly as the chain does.

use std::sync::Arc;

use blvm_module_host::{BackendError, CursorStore};
use blvm_module_protocol::methods::events::{ChainPoint, DurableCursor};
use blvm_module_protocol::Hash32;

use crate::chain::{store, Chain, ChainError};

/// The node's store of durable cursors, by module name.
pub struct ChainCursorStore {
    chain: Arc<Chain>,
}

impl ChainCursorStore {
    /// Cursors kept in `chain`'s database.
    pub fn new(chain: Arc<Chain>) -> Self {
        ChainCursorStore { chain }
    }
}

fn store_error(e: impl Into<ChainError>) -> BackendError {
    BackendError::Internal(format!("module cursors: {}", e.into()))
}

impl CursorStore for ChainCursorStore {
    fn load(&self, module: &str) -> Result<Option<DurableCursor>, BackendError> {
        let rtx = self.chain.db.begin_read().map_err(store_error)?;
        let table = match rtx.open_table(store::MODULE_CURSORS) {
            Ok(table) => table,
            // Before the first durable subscription of any module.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(store_error(e)),
        };
        let Some(record) = table.get(module).map_err(store_error)? else {
            return Ok(None);
        };
        decode_cursor(record.value())
            .map(Some)
            .ok_or_else(|| BackendError::Internal(format!("module cursors: the record of `{module}` is corrupt")))
    }

    fn save(&self, module: &str, cursor: &DurableCursor) -> Result<(), BackendError> {
        // redb's commit is durable (fsync) before it returns.
        let wtx = self.chain.db.begin_write().map_err(store_error)?;
        wtx.open_table(store::MODULE_CURSORS)
            .map_err(store_error)?
            .insert(module, encode_cursor(cursor).as_slice())
            .map_err(store_error)?;
        wtx.commit().map_err(store_error)
    }
}

/// seq u64 LE, then 0 (before genesis) or 1 + height u64 LE + hash (32,
/// internal order).
fn encode_cursor(c: &DurableCursor) -> Vec<u8> {
    let mut out = Vec::with_capacity(49);
    out.extend_from_slice(&c.seq.to_le_bytes());
    match c.at {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            out.extend_from_slice(&p.height.to_le_bytes());
            out.extend_from_slice(&p.hash.0);
        }
    }
    out
}

fn decode_cursor(b: &[u8]) -> Option<DurableCursor> {
    let seq = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let at = match (b.get(8)?, b.len()) {
        (0, 9) => None,
        (1, 49) => Some(ChainPoint {
            height: u64::from_le_bytes(b[9..17].try_into().ok()?),
            hash: Hash32(b[17..49].try_into().ok()?),
        }),
        _ => return None,
    };
    Some(DurableCursor { seq, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_record_round_trips_and_a_torn_one_is_refused() {
        for c in [
            DurableCursor { seq: 0, at: None },
            DurableCursor {
                seq: 7,
                at: Some(ChainPoint {
                    height: 438,
                    hash: Hash32([9; 32]),
                }),
            },
        ] {
            let bytes = encode_cursor(&c);
            assert_eq!(decode_cursor(&bytes), Some(c));
            assert_eq!(decode_cursor(&bytes[..bytes.len() - 1]), None);
        }
    }
}
