//! What every connection shares: the node, the authority key, the tip and
//! mempool notices, the template ids, the status, and the metrics and
//! events the module reports.
//!
//! Metrics and events leave through bounded queues drained by tasks of
//! their own ([`Provider::start`]): a slow node never holds a client up,
//! and a full queue drops (and counts) rather than waits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blvm_sdk::protocol::events::{
    MiningJobCreated, StratumClientConnected, StratumClientDisconnected, StratumV2MessageReceived,
};
use blvm_sdk::protocol::methods::metrics::{MetricKind, MetricUpdate};
use blvm_sdk::protocol::methods::mining::BlockTemplateParams;
use blvm_sdk::{Event, Hash32, NodeApiIpc};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::authority::Authority;
use crate::config::Config;
use crate::messages::{Setup, TDP_VERSION};
use crate::status::{ClientStatus, LastSolution, Samples, Status};
use crate::template::Template;
use crate::wire::Frame;
use crate::Error;

/// Bytes a template keeps for what surrounds the pool's coinbase outputs:
/// the header (80), the transaction count (up to 3), the coinbase without
/// its payout outputs (version 4, input count 1, outpoint 36, scriptSig
/// length 1 and at most 100 bytes, sequence 4, output count 1, the
/// witness commitment output 47, lock time 4) and its witness (marker and
/// flag 2, item count 1, length 1, reserved value 32). Every byte is
/// counted at 4 weight units, witness bytes too: an upper bound.
pub const COINBASE_OVERHEAD_BYTES: u32 = 80 + 3 + 4 + 1 + 36 + 1 + 100 + 4 + 1 + 47 + 4 + 2 + 1 + 1 + 32;
/// A legacy sigop costs this much block sigop cost (BIP141).
pub const WITNESS_SCALE_FACTOR: u32 = 4;
/// The most clients served at once; more are closed at once.
pub const MAX_CLIENTS: usize = 64;
/// The largest message republished as `StratumV2MessageReceived` (the
/// node takes payloads of 64 KiB).
pub const MAX_PUBLISHED_MESSAGE: usize = 60 * 1024;
/// Buckets of `new_block_to_prev_hash_seconds`.
pub const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The weight and sigop cost a client's coinbase constraints need the
/// template to leave free: `4 * (COINBASE_OVERHEAD_BYTES + size)` weight
/// units (at least the node's minimum, 2000) and `4 * sigops`.
pub fn reserve(max_additional_size: u32, max_additional_sigops: u16) -> (u32, u32) {
    let weight = WITNESS_SCALE_FACTOR.saturating_mul(COINBASE_OVERHEAD_BYTES.saturating_add(max_additional_size));
    (
        weight.max(BlockTemplateParams::MIN_COINBASE_RESERVED_WEIGHT),
        WITNESS_SCALE_FACTOR * u32::from(max_additional_sigops),
    )
}

/// The node's latest tip, as the module heard of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: Hash32,
    /// When its `NewBlock` arrived.
    pub seen: Instant,
}

#[derive(Default)]
struct State {
    clients: BTreeMap<u64, ClientStatus>,
    status: Status,
    latency: Samples,
}

/// The shared state.
pub struct Provider {
    api: Arc<NodeApiIpc>,
    /// The settings.
    pub config: Config,
    /// The authority key.
    pub authority: Authority,
    next_template: AtomicU64,
    next_client: AtomicU64,
    tip: watch::Sender<Option<Tip>>,
    mempool: watch::Sender<u64>,
    state: Mutex<State>,
    events: mpsc::Sender<Event>,
    metrics: mpsc::Sender<MetricUpdate>,
    dropped: AtomicU64,
}

/// The queues [`Provider::start`] drains.
pub struct Queues {
    events: mpsc::Receiver<Event>,
    metrics: mpsc::Receiver<MetricUpdate>,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn metric(name: &str, kind: MetricKind, value: f64, help: &str) -> MetricUpdate {
    MetricUpdate {
        name: name.into(),
        kind,
        help: Some(help.into()),
        labels: BTreeMap::new(),
        value,
        observations: vec![],
        buckets: None,
    }
}

impl Provider {
    /// The shared state of a module whose node is `api`; `network_access`:
    /// whether the node granted it.
    pub fn new(
        api: Arc<NodeApiIpc>,
        config: Config,
        authority: Authority,
        network_access: bool,
    ) -> (Arc<Provider>, Queues) {
        let (events, events_rx) = mpsc::channel(1024);
        let (metrics, metrics_rx) = mpsc::channel(4096);
        let state = State {
            status: Status {
                network_access,
                authority_public_key: authority.public_key_base58(),
                ..Status::default()
            },
            ..State::default()
        };
        let provider = Provider {
            api,
            config,
            authority,
            next_template: AtomicU64::new(1),
            next_client: AtomicU64::new(1),
            tip: watch::Sender::new(None),
            mempool: watch::Sender::new(0),
            state: Mutex::new(state),
            events,
            metrics,
            dropped: AtomicU64::new(0),
        };
        (
            Arc::new(provider),
            Queues {
                events: events_rx,
                metrics: metrics_rx,
            },
        )
    }

    /// Starts the tasks that publish the events and report the metrics.
    pub fn start(self: &Arc<Self>, queues: Queues) {
        let Queues {
            mut events,
            mut metrics,
        } = queues;
        let api = Arc::clone(&self.api);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let Err(e) = api.publish(&event).await {
                    tracing::debug!(event = event.name(), error = %e, "event not published");
                }
            }
        });
        let api = Arc::clone(&self.api);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while metrics.recv_many(&mut batch, 256).await > 0 {
                if let Err(e) = api.report_metrics(std::mem::take(&mut batch)).await {
                    tracing::debug!(error = %e, "metrics not reported");
                }
            }
        });
        self.report(vec![
            metric(
                "clients_connected",
                MetricKind::Gauge,
                0.0,
                "Stratum V2 clients connected.",
            ),
            metric("templates_sent", MetricKind::Counter, 0.0, "NewTemplate messages sent."),
            MetricUpdate {
                buckets: Some(LATENCY_BUCKETS.to_vec()),
                ..metric(
                    "new_block_to_prev_hash_seconds",
                    MetricKind::Histogram,
                    0.0,
                    "From the node's NewBlock to SetNewPrevHash written to a client, seconds.",
                )
            },
        ]);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, updates: Vec<MetricUpdate>) {
        for u in updates {
            if self.metrics.try_send(u).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn publish(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The node's `NewBlock`.
    pub fn new_tip(&self, height: u64, hash: Hash32) {
        self.tip.send_replace(Some(Tip {
            height,
            hash,
            seen: Instant::now(),
        }));
    }

    /// A mempool addition or removal.
    pub fn mempool_changed(&self) {
        self.mempool.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Tip notices, from now on.
    pub fn tips(&self) -> watch::Receiver<Option<Tip>> {
        self.tip.subscribe()
    }

    /// Mempool notices, from now on.
    pub fn mempool(&self) -> watch::Receiver<u64> {
        self.mempool.subscribe()
    }

    /// A template from the node leaving `reserve` (weight, sigops) free,
    /// with the next template id.
    ///
    /// # Errors
    ///
    /// The node's, or [`Error::Template`] for a template that cannot be
    /// used.
    pub async fn template(&self, reserve: (u32, u32)) -> Result<Template, Error> {
        let params = BlockTemplateParams {
            coinbase_script: None,
            coinbase_reserved_weight: Some(reserve.0),
            coinbase_reserved_sigops: Some(reserve.1),
        };
        let node = self.api.get_block_template_with(&params).await?;
        Template::from_node(self.next_template.fetch_add(1, Ordering::Relaxed), &node)
    }

    /// Submits a block (`send_transactions`); the node's status and reason.
    ///
    /// # Errors
    ///
    /// The node's.
    pub async fn submit_block(&self, block: Vec<u8>) -> Result<(String, Option<String>), Error> {
        let r = self.api.submit_block(block).await?;
        Ok((r.status, r.reason))
    }

    /// Where the module listens.
    pub fn set_listening(&self, addr: SocketAddr) {
        self.state().status.listening = Some(addr.to_string());
    }

    /// Why it does not.
    pub fn set_listen_error(&self, why: String) {
        self.state().status.listen_error = Some(why);
    }

    /// A new connection from `peer`: its id, or `None` when
    /// [`MAX_CLIENTS`] are connected.
    pub fn client_connected(&self, peer: SocketAddr) -> Option<u64> {
        let mut s = self.state();
        if s.clients.len() >= MAX_CLIENTS {
            s.status.clients_refused += 1;
            return None;
        }
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        s.clients.insert(
            id,
            ClientStatus {
                id,
                peer: peer.to_string(),
                connected_at: now_unix(),
                ..ClientStatus::default()
            },
        );
        Some(id)
    }

    /// Client `id`'s `SetupConnection` succeeded.
    pub fn client_setup(&self, id: u64, setup: &Setup) {
        let (peer, count) = {
            let mut s = self.state();
            let count = s.clients.values().filter(|c| c.setup).count() + 1;
            let Some(c) = s.clients.get_mut(&id) else { return };
            c.setup = true;
            c.protocol_version = Some(TDP_VERSION);
            c.vendor.clone_from(&setup.vendor);
            c.hardware_version.clone_from(&setup.hardware_version);
            c.firmware.clone_from(&setup.firmware);
            c.device_id.clone_from(&setup.device_id);
            (c.peer.clone(), count)
        };
        self.report(vec![metric(
            "clients_connected",
            MetricKind::Gauge,
            count as f64,
            "Stratum V2 clients connected.",
        )]);
        self.publish(Event::StratumClientConnected(StratumClientConnected {
            endpoint: peer,
            protocol_version: u32::from(TDP_VERSION),
        }));
    }

    /// Changes client `id`'s status.
    pub fn update_client(&self, id: u64, f: impl FnOnce(&mut ClientStatus)) {
        if let Some(c) = self.state().clients.get_mut(&id) {
            f(c);
        }
    }

    /// Client `id` is gone; `refused`: for a protocol error.
    pub fn client_gone(&self, id: u64, reason: &str, refused: bool) {
        let (gone, count) = {
            let mut s = self.state();
            if refused {
                s.status.clients_refused += 1;
            }
            let gone = s.clients.remove(&id);
            (gone, s.clients.values().filter(|c| c.setup).count())
        };
        let Some(gone) = gone else { return };
        if gone.setup {
            self.report(vec![metric(
                "clients_connected",
                MetricKind::Gauge,
                count as f64,
                "Stratum V2 clients connected.",
            )]);
            self.publish(Event::StratumClientDisconnected(StratumClientDisconnected {
                endpoint: gone.peer,
                reason: reason.to_owned(),
            }));
        }
    }

    /// A frame from `peer`, republished as `StratumV2MessageReceived`.
    pub fn message_received(&self, peer: SocketAddr, frame: &Frame) {
        if frame.payload.len() <= MAX_PUBLISHED_MESSAGE {
            self.publish(Event::StratumV2MessageReceived(StratumV2MessageReceived {
                peer_addr: peer.to_string(),
                message_data: frame.to_bytes(),
            }));
        }
    }

    /// `t` went to client `id` as a `NewTemplate`.
    pub fn template_sent(&self, id: u64, t: &Template) {
        {
            let mut s = self.state();
            s.status.templates_sent += 1;
            if let Some(c) = s.clients.get_mut(&id) {
                c.templates_sent += 1;
                c.last_template_id = Some(t.id);
                c.last_template_fees = Some(t.fees);
            }
        }
        self.report(vec![metric(
            "templates_sent",
            MetricKind::Counter,
            1.0,
            "NewTemplate messages sent.",
        )]);
        self.publish(Event::MiningJobCreated(MiningJobCreated {
            job_id: t.id.to_string(),
            prev_hash: Hash32(bitcoin::hashes::Hash::to_byte_array(t.prev_hash)),
            height: t.height,
        }));
    }

    /// A `SetNewPrevHash` went, `latency` after its tip's `NewBlock`.
    pub fn prev_hash_sent(&self, latency: Option<Duration>) {
        {
            let mut s = self.state();
            s.status.prev_hashes_sent += 1;
            if let Some(l) = latency {
                s.latency.push(l.as_secs_f64());
            }
        }
        if let Some(l) = latency {
            self.report(vec![MetricUpdate {
                observations: vec![l.as_secs_f64()],
                buckets: Some(LATENCY_BUCKETS.to_vec()),
                ..metric(
                    "new_block_to_prev_hash_seconds",
                    MetricKind::Histogram,
                    0.0,
                    "From the node's NewBlock to SetNewPrevHash written to a client, seconds.",
                )
            }]);
        }
    }

    /// A solution's outcome: `result` one of `accepted`, `not_accepted`,
    /// `stale`, `unknown_template`, `invalid`; `last` the submitted one.
    pub fn solution(&self, id: u64, result: &'static str, last: Option<LastSolution>) {
        {
            let mut s = self.state();
            if let Some(c) = s.clients.get_mut(&id) {
                c.solutions += 1;
            }
            let counts = &mut s.status.solutions;
            match result {
                "accepted" => counts.accepted += 1,
                "not_accepted" => counts.not_accepted += 1,
                "stale" => counts.stale += 1,
                "unknown_template" => counts.unknown_template += 1,
                _ => counts.invalid += 1,
            }
            if last.is_some() {
                counts.submitted += 1;
                s.status.last_solution = last;
            }
        }
        self.report(vec![MetricUpdate {
            labels: BTreeMap::from([("result".to_owned(), result.to_owned())]),
            ..metric(
                "solutions",
                MetricKind::Counter,
                1.0,
                "SubmitSolution messages, by outcome.",
            )
        }]);
    }

    /// The status, now.
    pub fn status(&self) -> Status {
        let s = self.state();
        Status {
            clients: s.clients.values().cloned().collect(),
            new_block_to_prev_hash: s.latency.summary(),
            ..s.status.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_become_a_reserve() {
        assert_eq!(COINBASE_OVERHEAD_BYTES, 317);
        // A single P2WPKH payout (31 bytes, 1 sigop) fits the minimum.
        assert_eq!(reserve(31, 1), (2000, 4));
        assert_eq!(reserve(1000, 10), (4 * 1317, 40));
        assert_eq!(reserve(0, 0), (2000, 0), "at least the node's minimum");
        assert_eq!(reserve(u32::MAX, u16::MAX), (u32::MAX, 4 * 65_535));
    }
}
