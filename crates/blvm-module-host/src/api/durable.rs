//! Durable chain events: `NewBlock`, `BlockDisconnected` and `ChainReorg`
//! delivered from a module's stored cursor, so that a module that was slow,
//! restarting or crashed, or a node that was killed, loses none.
//!
//! # How it works
//!
//! A [`DurableFeed`] is one module connection's durable subscription. It
//! holds no events: it keeps the tip of the module's *view* of the chain
//! (the block its last sent event leaves it at) and, on each turn of the
//! module's writer thread, reads what comes next from the chain store
//! through the [`NodeBackend`]:
//!
//! - while the view's tip is on the active chain, the next block of the
//!   active chain, as `NewBlock`;
//! - when it left the active chain (a reorg, now or while the module was
//!   away), `ChainReorg` (old tip, current tip, fork point), then
//!   `BlockDisconnected` for each block of the view back to the fork
//!   point, then the new blocks.
//!
//! At most `window` events are unacknowledged; `ack_events` frees the
//! window and stores the cursor (the acknowledged sequence number and the
//! view after it) in the node's store ([`CursorStore`]). A module far
//! behind is sent its backlog `window` events at a time, read from the
//! store, so the node holds at most `window` small entries per module
//! however far behind it is. A new connection of the module (a restart,
//! a reload, the node's restart) resumes at the stored cursor: every event
//! after it is sent again, those acknowledged never. That is at-least-once
//! delivery; each event carries an idempotency key (network, height,
//! hash) by which a consumer drops a redelivery.
//!
//! Reading the chain anew at each step makes the feed follow whatever the
//! active chain became, also in the middle of a reorg: a `NewBlock` is
//! sent only when its parent is the view's tip, so the view is always a
//! chain, and it converges on the active chain once the module catches up.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use blvm_module_protocol::events::{BlockDisconnected, ChainReorg, Event, EventType, NewBlock};
use blvm_module_protocol::methods::events::{ChainPoint, DurableCursor};
use blvm_module_protocol::{DurableMark, ErrorCode, Hash32, RemoteError};

use super::backend::{BackendError, NodeBackend};
use super::events::DeliverySeq;

/// The event types a module may subscribe to durably.
pub const DURABLE_TYPES: [EventType; 3] = [EventType::NewBlock, EventType::BlockDisconnected, EventType::ChainReorg];

/// Where the node keeps each module's cursor, by module name: the node's
/// own store, written durably (a cursor saved is there after a crash).
pub trait CursorStore: Send + Sync + 'static {
    /// The module's cursor, `None` before its first durable subscription.
    fn load(&self, module: &str) -> Result<Option<DurableCursor>, BackendError>;
    /// Stores the module's cursor; returns once it is durable.
    fn save(&self, module: &str, cursor: &DurableCursor) -> Result<(), BackendError>;
}

/// One event a feed has made, ready for the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct DurableEvent {
    /// The event type.
    pub ty: EventType,
    /// The payload, MessagePack.
    pub payload: Vec<u8>,
    /// Its durable sequence number and idempotency key.
    pub mark: DurableMark,
}

/// A durable subscription's state as the status and metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableStatus {
    /// The event types delivered durably.
    pub types: Vec<EventType>,
    /// The stored cursor.
    pub cursor: DurableCursor,
    /// The tip of the view after the last event sent.
    pub sent: Option<ChainPoint>,
    /// Events sent and not yet acknowledged.
    pub unacked: u64,
    /// Blocks between the acknowledged view and the active tip: how far
    /// behind the module is (0 when caught up).
    pub lag_blocks: u64,
}

/// One module connection's durable subscription: see the module docs.
pub struct DurableFeed {
    module: String,
    network: String,
    types: Vec<EventType>,
    window: usize,
    backend: Arc<dyn NodeBackend>,
    store: Arc<dyn CursorStore>,
    delivery: DeliverySeq,
    state: Mutex<FeedState>,
}

impl std::fmt::Debug for DurableFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableFeed")
            .field("module", &self.module)
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct FeedState {
    /// What the store holds.
    acked: DurableCursor,
    /// The view's tip after the last event made (`None`: before genesis).
    view: Option<ChainPoint>,
    /// The durable sequence number of the next event.
    next_seq: u64,
    /// Events sent and not acknowledged: their number and the view after.
    unacked: VecDeque<(u64, Option<ChainPoint>)>,
    /// Whether the last step was a disconnect (a `ChainReorg` announces
    /// each walk back once, at its start).
    walking: bool,
}

/// Steps one call of [`DurableFeed::next_events`] takes at most, sent or
/// not (a walk over types the module did not ask for sends nothing), so a
/// writer turn stays short; the feed wakes its writer for the rest.
const MAX_STEPS: usize = 1024;

impl DurableFeed {
    /// Opens module `module`'s durable subscription to `types` (of
    /// [`DURABLE_TYPES`]) at its stored cursor, or, without one, at a new
    /// cursor before `start_height` (absent: at the current tip), which is
    /// stored at once so a restart before the first ack starts there too.
    pub fn open(
        module: &str,
        types: Vec<EventType>,
        start_height: Option<u64>,
        window: usize,
        backend: Arc<dyn NodeBackend>,
        store: Arc<dyn CursorStore>,
        delivery: DeliverySeq,
    ) -> Result<Arc<DurableFeed>, RemoteError> {
        let network = backend.get_chain_info()?.network;
        let acked = match store.load(module)? {
            Some(cursor) => cursor,
            None => {
                let tip = backend.get_chain_tip()?;
                let at = match start_height {
                    None => Some(ChainPoint {
                        height: tip.height,
                        hash: tip.hash,
                    }),
                    Some(0) => None,
                    Some(h) => {
                        let height = (h - 1).min(tip.height);
                        let hash = backend.get_block_hash(height)?.ok_or_else(|| {
                            RemoteError::new(ErrorCode::Unavailable, format!("no block at height {height}"))
                        })?;
                        Some(ChainPoint { height, hash })
                    }
                };
                let cursor = DurableCursor { seq: 0, at };
                store.save(module, &cursor)?;
                cursor
            }
        };
        Ok(Arc::new(DurableFeed {
            module: module.to_owned(),
            network,
            types,
            window: window.max(1),
            backend,
            store,
            delivery,
            state: Mutex::new(FeedState {
                acked,
                view: acked.at,
                next_seq: acked.seq + 1,
                unacked: VecDeque::new(),
                walking: false,
            }),
        }))
    }

    /// The event types delivered durably.
    pub fn types(&self) -> &[EventType] {
        &self.types
    }

    /// The stored cursor.
    pub fn cursor(&self) -> DurableCursor {
        lock(&self.state).acked
    }

    /// The module's delivery sequence numbers (shared with its at-most-once
    /// events, so its frames stay in order).
    pub(crate) fn delivery(&self) -> &DeliverySeq {
        &self.delivery
    }

    /// Tells the module's writer to look at the feed (the chain changed, an
    /// ack freed the window).
    pub fn wake(&self) {
        self.delivery.wake();
    }

    /// The next events, as many as the window has room for: read from the
    /// chain store, each with its durable number and key. `true` with them
    /// when there may be more the window had room for (the writer then
    /// wakes itself for them).
    pub fn next_events(&self) -> Result<(Vec<DurableEvent>, bool), BackendError> {
        let mut st = lock(&self.state);
        let room = self.window.saturating_sub(st.unacked.len());
        let mut out = Vec::new();
        if room == 0 {
            return Ok((out, false));
        }
        let tip = self.backend.get_chain_tip()?;
        let mut steps = 0;
        // A step's view change with no event (a type the module did not
        // ask for) is acknowledged at once when nothing is outstanding.
        let mut silent_ack = false;
        while out.len() < room {
            if steps == MAX_STEPS {
                break;
            }
            steps += 1;
            let on_chain = match st.view {
                None => true,
                Some(v) => self.backend.get_block_hash(v.height)? == Some(v.hash),
            };
            let event = if on_chain {
                let height = st.view.map_or(0, |v| v.height + 1);
                if height > tip.height {
                    break;
                }
                let Some(hash) = self.backend.get_block_hash(height)? else {
                    break;
                };
                let Some((header, _)) = self.backend.get_block_header(&hash)? else {
                    break;
                };
                if let Some(v) = st.view {
                    if prev_hash(&header) != Some(v.hash) {
                        // The active chain moved between the two reads;
                        // the next step sees where it went.
                        continue;
                    }
                }
                st.view = Some(ChainPoint { height, hash });
                st.walking = false;
                self.wants(EventType::NewBlock).then(|| {
                    Event::from(NewBlock {
                        block_hash: hash,
                        height,
                        header,
                    })
                })
            } else {
                let Some(v) = st.view else { break };
                if !st.walking && self.wants(EventType::ChainReorg) {
                    if let Some(reorg) = self.reorg_from(v, &tip)? {
                        st.walking = true;
                        let mark = self.mark(&mut st, tip.height, tip.hash);
                        out.push(encode(EventType::ChainReorg, &Event::from(reorg), mark)?);
                        continue;
                    }
                }
                let (header, _) = self.backend.get_block_header(&v.hash)?.ok_or_else(|| {
                    BackendError::Internal(format!(
                        "block {} at height {} of module {}'s view is not in the store",
                        v.hash, v.height, self.module
                    ))
                })?;
                let parent = prev_hash(&header)
                    .ok_or_else(|| BackendError::Internal(format!("the header of block {} is short", v.hash)))?;
                st.view = v
                    .height
                    .checked_sub(1)
                    .map(|height| ChainPoint { height, hash: parent });
                st.walking = true;
                self.wants(EventType::BlockDisconnected).then(|| {
                    Event::from(BlockDisconnected {
                        block_hash: v.hash,
                        height: v.height,
                        header,
                    })
                })
            };
            match event {
                Some(event) => {
                    let ty = event.event_type().unwrap_or(EventType::NewBlock);
                    let (height, hash) = match &event {
                        Event::NewBlock(b) => (b.height, b.block_hash),
                        Event::BlockDisconnected(b) => (b.height, b.block_hash),
                        _ => (tip.height, tip.hash),
                    };
                    let mark = self.mark(&mut st, height, hash);
                    out.push(encode(ty, &event, mark)?);
                }
                // Nothing outstanding: the view change is acknowledged at
                // once. Otherwise the ack that empties the window takes it.
                None if st.unacked.is_empty() => {
                    st.acked.at = st.view;
                    silent_ack = true;
                }
                None => {}
            }
        }
        if silent_ack {
            let cursor = st.acked;
            self.store.save(&self.module, &cursor)?;
        }
        Ok((out, steps == MAX_STEPS))
    }

    /// Whether the module asked for `ty`.
    fn wants(&self, ty: EventType) -> bool {
        self.types.contains(&ty)
    }

    /// Takes the next durable number for an event about block
    /// (`height`, `hash`) and records it as unacknowledged, with the view
    /// after it (the current one).
    fn mark(&self, st: &mut FeedState, height: u64, hash: Hash32) -> DurableMark {
        let seq = st.next_seq;
        st.next_seq += 1;
        st.unacked.push_back((seq, st.view));
        DurableMark {
            seq,
            network: self.network.clone(),
            height,
            hash,
        }
    }

    /// The `ChainReorg` of a walk back from `view` (off the active chain)
    /// to the active chain, whose tip is `tip`; `None` when the walk meets
    /// a block the store lacks (the disconnect step then reports it).
    fn reorg_from(
        &self,
        view: ChainPoint,
        tip: &blvm_module_protocol::methods::chain::ChainTip,
    ) -> Result<Option<ChainReorg>, BackendError> {
        let mut at = view;
        let mut disconnected = 0u32;
        loop {
            if self.backend.get_block_hash(at.height)? == Some(at.hash) {
                break;
            }
            let Some((header, _)) = self.backend.get_block_header(&at.hash)? else {
                return Ok(None);
            };
            let (Some(parent), Some(height)) = (prev_hash(&header), at.height.checked_sub(1)) else {
                return Ok(None);
            };
            disconnected += 1;
            at = ChainPoint { height, hash: parent };
        }
        Ok(Some(ChainReorg {
            old_tip: view.hash,
            old_height: view.height,
            new_tip: tip.hash,
            new_height: tip.height,
            fork_point: at.hash,
            fork_height: at.height,
            disconnected,
            connected: u32::try_from(tip.height.saturating_sub(at.height)).unwrap_or(u32::MAX),
        }))
    }

    /// Acknowledges every durable event up to `seq`: stores the cursor
    /// (the view after event `seq`) and frees the window. A number already
    /// acknowledged changes nothing; one not sent yet is refused.
    pub fn ack(&self, seq: u64) -> Result<DurableCursor, RemoteError> {
        let mut st = lock(&self.state);
        if seq <= st.acked.seq {
            return Ok(st.acked);
        }
        let Some(pos) = st.unacked.iter().position(|(s, _)| *s == seq) else {
            return Err(RemoteError::new(
                ErrorCode::InvalidParams,
                format!(
                    "durable event {seq} was not sent on this connection (acknowledged up to {}, sent up to {})",
                    st.acked.seq,
                    st.next_seq - 1
                ),
            ));
        };
        // The view after event `seq`; when it was the last outstanding,
        // the current view (steps after it sent nothing).
        let at = if pos + 1 == st.unacked.len() {
            st.view
        } else {
            st.unacked[pos].1
        };
        let cursor = DurableCursor { seq, at };
        self.store.save(&self.module, &cursor)?;
        st.unacked.drain(..=pos);
        st.acked = cursor;
        drop(st);
        self.wake();
        Ok(cursor)
    }

    /// Where the subscription stands.
    pub fn status(&self) -> DurableStatus {
        let st = lock(&self.state);
        let tip = self.backend.get_chain_tip().map(|t| t.height).unwrap_or(0);
        let acked_height = st.acked.at.map_or(0, |p| p.height + 1);
        DurableStatus {
            types: self.types.clone(),
            cursor: st.acked,
            sent: st.view,
            unacked: st.unacked.len() as u64,
            lag_blocks: (tip + 1).saturating_sub(acked_height),
        }
    }
}

/// The previous block's hash in an 80-byte header (bytes 4..36, internal
/// order as [`Hash32`] holds it).
fn prev_hash(header: &[u8]) -> Option<Hash32> {
    let bytes: [u8; 32] = header.get(4..36)?.try_into().ok()?;
    Some(Hash32(bytes))
}

fn encode(ty: EventType, event: &Event, mark: DurableMark) -> Result<DurableEvent, BackendError> {
    let mut payload = Vec::with_capacity(160);
    event
        .encode_payload(&mut payload)
        .map_err(|e| BackendError::Internal(format!("cannot encode {}: {e}", ty.name())))?;
    Ok(DurableEvent { ty, payload, mark })
}

// The feed's lock guards plain values every step leaves consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
