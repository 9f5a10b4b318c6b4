//! Events as the module receives them.

use blvm_module_protocol::events::Event;
use blvm_module_protocol::DurableMark;
use tokio::sync::mpsc;

/// One delivered event.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The node's delivery sequence number for this module: consecutive
    /// unless the node dropped events for it (its queue was full), so a gap
    /// is exactly the number of missed events.
    pub seq: u64,
    /// The event. Types this SDK does not know arrive as
    /// [`Event::Unknown`], and so do modules' own `<module>.<Event>`
    /// events.
    pub event: Event,
    /// The module that published it (set by the node); `None` for the
    /// node's own events.
    pub origin: Option<String>,
    /// For an event of the durable subscription: the number to pass to
    /// [`NodeApiIpc::ack_events`](crate::NodeApiIpc::ack_events) once it
    /// is processed, and its idempotency key. `None` on the at-most-once
    /// path.
    pub durable: Option<DurableMark>,
}

/// The stream of events the module subscribed to, in delivery order.
#[derive(Debug)]
pub struct EventReceiver {
    rx: mpsc::Receiver<ReceivedEvent>,
}

impl EventReceiver {
    pub(crate) fn new(rx: mpsc::Receiver<ReceivedEvent>) -> Self {
        EventReceiver { rx }
    }

    /// The next event; `None` once the connection is closed and every
    /// received event has been taken.
    pub async fn recv(&mut self) -> Option<ReceivedEvent> {
        self.rx.recv().await
    }

    /// An event if one is waiting.
    pub fn try_recv(&mut self) -> Option<ReceivedEvent> {
        self.rx.try_recv().ok()
    }

    /// Moves up to `limit` waiting events into `out` (waiting for at least
    /// one); returns how many. Cheaper per event than `recv` under load.
    pub async fn recv_many(&mut self, out: &mut Vec<ReceivedEvent>, limit: usize) -> usize {
        self.rx.recv_many(out, limit).await
    }
}
