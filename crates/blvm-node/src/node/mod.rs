//! [`Node`]: the chain, the mempool, the miner and the module manager,
//! wired together, and every node event published where it happens.
//!
//! Every change to the chain goes through the node (`submit_block`,
//! `generate`, `invalidate_block`, `import`), which then drains the chain's
//! event queue before returning: a caller that mined a block sees the
//! mempool already without its transactions, and modules get `NewBlock`
//! in chain order.

mod backend;
pub mod bridge;
pub mod convert;
pub mod cursors;
pub mod disk;
mod lifecycle;
pub mod metrics;
pub mod registry;
mod rpc;
pub mod sync_state;

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::{Block, BlockHash, ScriptBuf, Transaction};
use blvm_module_host::manager::{ManagerConfig, ModuleManager};
use blvm_module_protocol::events as ev;
use blvm_module_protocol::events::Event;

pub use backend::NodeBackendImpl;
pub use rpc::{register_methods, serve_module_endpoints};

use crate::chain::{BlockError, Chain, ChainError, ChainEvent, ChainOptions, ProcessOutcome, ReorgSummary};
use crate::config::NodeConfig;
use crate::mempool::{Accepted, Mempool, MempoolError};
use crate::miner;

/// The node.
pub struct Node {
    /// Settings.
    pub config: NodeConfig,
    /// The chain.
    pub chain: Arc<Chain>,
    /// The mempool.
    pub mempool: Arc<Mempool>,
    /// The module manager (and, through it, the event bus).
    pub manager: ModuleManager,
    events: Mutex<Receiver<ChainEvent>>,
    /// Serialises chain changes with the draining of their events.
    writer: Mutex<()>,
    started: Instant,
    last_fee_rate: Mutex<Option<f64>>,
    sync: Mutex<Option<SyncProgress>>,
    coinbase_script: ScriptBuf,
    stop: tokio::sync::Notify,
    /// Free space on the chain store's and the modules' file systems.
    disk: disk::DiskWatch,
}

/// An import in progress, for `BlockSync*` events.
struct SyncProgress {
    started: Instant,
    start_height: u32,
    target_height: u32,
}

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The chain store failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A block was refused.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// A transaction was refused.
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    /// `import` while another import runs.
    #[error("an import is already running")]
    ImportRunning,
    /// The miner found no valid nonce within its tries.
    #[error("no block found within {0} tries")]
    NotMined(u64),
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl Node {
    /// Opens the chain in `<datadir>/chain` and prepares the module manager.
    pub fn open(config: NodeConfig) -> Result<Arc<Node>, NodeError> {
        Self::open_with(config, ChainOptions::default())
    }

    /// The same with explicit chain options (the listener is the node's).
    pub fn open_with(config: NodeConfig, mut options: ChainOptions) -> Result<Arc<Node>, NodeError> {
        let (listener, events) = bridge::QueueListener::new();
        options.listener = Some(Arc::new(listener));
        let chain = Arc::new(Chain::open_with(
            &config.datadir.join("chain"),
            config.network,
            options,
        )?);
        let mut manager_config = ManagerConfig::new(
            &config.modules_dir,
            config.datadir.join("module-data"),
            config.datadir.join("sockets"),
        );
        let disk = disk::DiskWatch::new(
            config.disk,
            vec![config.datadir.join("chain"), manager_config.data_dir.clone()],
        );
        manager_config.module_configs = config.modules.module_configs.clone();
        if let Some(allowed) = config.modules.default_capabilities {
            manager_config.default_policy = allowed;
        }
        manager_config.policies = config.modules.capabilities.clone();
        if let Some(capacity) = config.modules.event_queue_capacity {
            manager_config.event_queue_capacity = capacity;
        }
        manager_config.event_queue_capacities = config.modules.event_queue_capacities.clone();
        if let Some(cap) = config.modules.max_metric_series {
            manager_config.metrics.max_series = cap;
        }
        manager_config.metrics.max_series_per_module = config.modules.max_metric_series_per_module.clone();
        manager_config.inter_module.defaults = config.modules.inter_module.over(Default::default());
        manager_config.inter_module.per_module = config
            .modules
            .inter_module_per_module
            .iter()
            .map(|(name, keys)| (name.clone(), keys.over(manager_config.inter_module.defaults)))
            .collect();
        if let Some(timeout) = config.modules.rpc_timeout {
            manager_config.rpc_endpoints.timeout = timeout;
        }
        manager_config.rpc_endpoints.timeout_per_module = config.modules.rpc_timeout_per_module.clone();
        if let Some(cap) = config.modules.max_rpc_endpoints {
            manager_config.rpc_endpoints.max_endpoints = cap;
        }
        manager_config.rpc_endpoints.max_endpoints_per_module = config.modules.max_rpc_endpoints_per_module.clone();
        if let Some(cap) = config.modules.max_timers {
            manager_config.timers.max_timers = cap;
        }
        manager_config.timers.max_timers_per_module = config.modules.max_timers_per_module.clone();
        if let Some(deadline) = config.modules.timer_fire_timeout {
            manager_config.timers.fire_timeout = deadline;
        }
        manager_config.timers.fire_timeout_per_module = config.modules.timer_fire_timeouts.clone();
        manager_config.restart = config.supervision.restart.clone();
        manager_config.sandbox = config.sandbox.clone();
        manager_config.signatures = config.signatures.clone();
        manager_config.request_rate = Some(config.request_rate);
        manager_config.health_check_interval = config.supervision.health_check_interval;
        manager_config.health_check_timeout = config.supervision.health_check_timeout;
        manager_config.handshake_timeout = config.supervision.handshake_timeout;
        manager_config.storage = config.storage.clone();
        let coinbase_script = match &config.mining_address {
            Some(a) => a
                .parse::<bitcoin::Address<_>>()
                .ok()
                .and_then(|a| a.require_network(config.network).ok())
                .map(|a| a.script_pubkey())
                .unwrap_or_else(anyone_can_spend),
            None => anyone_can_spend(),
        };
        let manager = ModuleManager::with_config(manager_config);
        manager.set_cursor_store(Arc::new(cursors::ChainCursorStore::new(Arc::clone(&chain))));
        Ok(Arc::new(Node {
            chain,
            mempool: Arc::new(Mempool::new(crate::mempool::MempoolConfig {
                min_relay_fee_sat_vb: config.min_relay_fee,
                ..Default::default()
            })),
            manager,
            events: Mutex::new(events),
            writer: Mutex::new(()),
            started: Instant::now(),
            last_fee_rate: Mutex::new(None),
            sync: Mutex::new(None),
            coinbase_script,
            stop: tokio::sync::Notify::new(),
            disk,
            config,
        }))
    }

    /// Publishes an event to the modules.
    pub fn publish(&self, event: impl Into<Event>) {
        self.manager.events().publish(&event.into());
    }

    /// Seconds since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The script timer blocks pay to.
    pub fn coinbase_script(&self) -> &ScriptBuf {
        &self.coinbase_script
    }

    /// Asks the node to stop (the `stop` RPC).
    pub fn request_stop(&self) {
        self.stop.notify_one();
    }

    /// Resolves when a stop was requested.
    pub async fn stopped(&self) {
        self.stop.notified().await;
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // Guards no data: it only orders writers.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Validates and connects a block, then brings the mempool and the
    /// modules up to date.
    pub fn submit_block(&self, block: &Block) -> Result<ProcessOutcome, BlockError> {
        let _w = self.lock_writer();
        let outcome = self.chain.process_block(block);
        self.drain();
        outcome
    }

    /// `invalidateblock`.
    pub fn invalidate_block(&self, hash: &BlockHash) -> Result<Option<ReorgSummary>, ChainError> {
        let _w = self.lock_writer();
        let r = self.chain.invalidate_block(hash);
        self.drain();
        r
    }

    /// `reconsiderblock`.
    pub fn reconsider_block(&self, hash: &BlockHash) -> Result<Option<ReorgSummary>, ChainError> {
        let _w = self.lock_writer();
        let r = self.chain.reconsider_block(hash);
        self.drain();
        r
    }

    /// Accepts a transaction into the mempool and announces it.
    pub fn accept_transaction(&self, tx: Transaction) -> Result<Accepted, MempoolError> {
        let accepted = self.mempool.accept(tx.clone(), &*self.chain)?;
        for e in bridge::accepted_events(&accepted, &tx) {
            self.publish(e);
        }
        self.fee_rate_moved();
        Ok(accepted)
    }

    /// Mines `count` blocks paying to `script` on top of the tip, with the
    /// mempool's best transactions; returns their hashes.
    pub fn generate(&self, count: u32, script: &ScriptBuf, max_tries: u64) -> Result<Vec<BlockHash>, NodeError> {
        let mut hashes = Vec::new();
        for _ in 0..count {
            let template = miner::build_template(&*self.chain, &self.mempool, script.clone(), now());
            hashes.push(self.mine_and_submit(&template, max_tries)?);
        }
        Ok(hashes)
    }

    /// Mines a template and submits the block.
    pub fn mine_and_submit(&self, template: &miner::Template, max_tries: u64) -> Result<BlockHash, NodeError> {
        let block = miner::mine(miner::assemble(template), max_tries).ok_or(NodeError::NotMined(max_tries))?;
        let hash = block.block_hash();
        let height = template.height;
        self.submit_block(&block)?;
        self.publish(ev::BlockMined {
            block_hash: convert::block_hash(&hash),
            height: u64::from(height),
            miner_id: Some("blvm-node".into()),
        });
        Ok(hash)
    }

    /// Imports block files (Bitcoin Core `blk*.dat` framing, or raw blocks
    /// when a file does not start with the network magic), publishing
    /// `BlockSyncStarted`, then each block's events as it is processed
    /// (its validation events, `NewBlock`, then `BlockSyncProgress`), then
    /// `BlockSyncCompleted`. The writer lock is taken for one block at a
    /// time, so a running node keeps mining and accepting blocks between
    /// them. Each file is opened once and read in order, so a pipe works
    /// too. One import at a time: another is refused while one runs.
    pub fn import(&self, files: &[impl AsRef<Path>]) -> Result<crate::chain::ImportStats, NodeError> {
        let start = self.chain.tip().height;
        let magic = self.chain.chain_params().magic();
        let blocks: u32 = files.iter().map(|f| count_frames(f.as_ref(), magic)).sum();
        let target = start + blocks;
        {
            let mut sync = self.sync.lock().unwrap_or_else(|p| p.into_inner());
            if sync.is_some() {
                return Err(NodeError::ImportRunning);
            }
            *sync = Some(SyncProgress {
                started: Instant::now(),
                start_height: start,
                target_height: target,
            });
        }
        self.publish(ev::BlockSyncStarted {
            start_height: u64::from(start),
            target_height: u64::from(target),
        });
        let mut total = crate::chain::ImportStats::default();
        let result = files.iter().try_for_each(|file| {
            let stats = self.import_file(file.as_ref(), magic)?;
            total.blocks += stats.blocks;
            total.txs += stats.txs;
            total.duplicates += stats.duplicates;
            total.rejected += stats.rejected;
            total.orphans = stats.orphans;
            total.elapsed += stats.elapsed;
            Ok::<_, NodeError>(())
        });
        let progress = self.sync.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.publish(ev::BlockSyncCompleted {
            final_height: u64::from(self.chain.tip().height),
            duration_ms: progress.map_or(0, |p| p.started.elapsed().as_millis() as u64),
        });
        result.map(|()| total)
    }

    /// One file of [`Node::import`]: its records one by one, each under the
    /// writer lock and followed by the drain of its events.
    fn import_file(&self, path: &Path, magic: [u8; 4]) -> Result<crate::chain::ImportStats, NodeError> {
        use std::io::Read;
        let io = |source| {
            NodeError::Chain(ChainError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        let started = Instant::now();
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut head = Vec::with_capacity(4);
        (&mut file).take(4).read_to_end(&mut head).map_err(io)?;
        let mut stats = crate::chain::ImportStats::default();
        if head == magic {
            let reader = std::io::BufReader::with_capacity(1 << 20, std::io::Cursor::new(head).chain(file));
            let mut records = crate::chain::BlkRecords::new(reader, magic, path);
            // The read happens outside the lock: a slow file (or a pipe)
            // holds up no other writer.
            while let Some(record) = records.next_record()? {
                let _w = self.lock_writer();
                let done = self.chain.import_record(record, &mut stats);
                self.drain();
                done?;
            }
            self.chain.finish_import(&mut stats, started);
            return Ok(stats);
        }
        let mut bytes = head;
        file.read_to_end(&mut bytes).map_err(io)?;
        let _w = self.lock_writer();
        let done = self.chain.import_raw_block(&bytes);
        self.drain();
        done?;
        self.sync_progress(self.chain.tip().height);
        stats.blocks = 1;
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// Turns queued chain events into module events and keeps the mempool
    /// in step with the chain. Called by every chain writer, with the
    /// writer lock held, so events keep their order.
    fn drain(&self) {
        let events: Vec<ChainEvent> = {
            let rx = self.events.lock().unwrap_or_else(|p| p.into_inner());
            rx.try_iter().collect()
        };
        let mut tip_moved = false;
        for event in &events {
            for e in bridge::chain_events(event) {
                self.publish(e);
            }
            match event {
                ChainEvent::BlockConnected { block, height } => {
                    tip_moved = true;
                    let removed = self.mempool.remove_for_block(block, *height);
                    let size = self.mempool.len();
                    for (txid, reason) in &removed {
                        self.publish(bridge::removed_event(txid, reason, size));
                    }
                }
                ChainEvent::BlockDisconnected { block, .. } => {
                    tip_moved = true;
                    for accepted in self.mempool.readd_disconnected(block, &*self.chain) {
                        if let Some(entry) = self.mempool.get(&accepted.txid) {
                            for e in bridge::accepted_events(&accepted, &entry.tx) {
                                self.publish(e);
                            }
                        }
                    }
                }
                ChainEvent::Reorg { .. } => {
                    let removed = self.mempool.remove_invalid_after_reorg(&*self.chain);
                    let size = self.mempool.len();
                    for (txid, reason) in &removed {
                        self.publish(bridge::removed_event(txid, reason, size));
                    }
                }
                ChainEvent::ImportProgress { height, .. } => self.sync_progress(*height),
                _ => {}
            }
        }
        if tip_moved {
            let tip = self.chain.tip();
            self.publish(ev::BlockTemplateUpdated {
                prev_hash: convert::block_hash(&tip.hash),
                height: u64::from(tip.height) + 1,
                tx_count: self.mempool.len() as u32,
            });
            self.fee_rate_moved();
            // Height timers fire once the events of their block are out.
            self.manager.timers().on_tip(u64::from(tip.height));
        }
    }

    fn sync_progress(&self, height: u32) {
        let mut sync = self.sync.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = sync.as_mut() {
            // A pipe's blocks were not counted in advance.
            p.target_height = p.target_height.max(height);
            let done = height.saturating_sub(p.start_height);
            let todo = p.target_height.saturating_sub(p.start_height).max(1);
            let secs = p.started.elapsed().as_secs_f64().max(1e-9);
            self.publish(ev::BlockSyncProgress {
                current_height: u64::from(height),
                target_height: u64::from(p.target_height),
                progress_percent: (f64::from(done) / f64::from(todo) * 100.0).min(100.0),
                blocks_per_second: f64::from(done) / secs,
            });
        }
    }

    /// Publishes `FeeRateChanged` when the median mempool fee rate moved.
    fn fee_rate_moved(&self) {
        let now = self.mempool.fee_rate_summary().map(|s| s.median);
        let mut last = self.last_fee_rate.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(new) = now {
            if *last != Some(new) {
                self.publish(ev::FeeRateChanged {
                    old_fee_rate: last.unwrap_or(0.0),
                    new_fee_rate: new,
                    mempool_size: self.mempool.len() as u64,
                });
            }
        }
        *last = now;
    }
}

/// P2WSH of `OP_TRUE`: anyone can spend it with the script as witness —
/// a sensible default payee for regtest blocks.
fn anyone_can_spend() -> ScriptBuf {
    let script = bitcoin::script::Builder::new()
        .push_opcode(bitcoin::opcodes::OP_TRUE)
        .into_script();
    ScriptBuf::new_p2wsh(&script.wscript_hash())
}

fn is_framed(path: &Path, magic: [u8; 4]) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == magic)
}

/// Counts the block frames of a `blk*.dat` file (1 for a raw block; 0
/// for what is not a regular file, such as a pipe, which cannot be read
/// twice).
fn count_frames(path: &Path, magic: [u8; 4]) -> u32 {
    use std::io::{Read, Seek, SeekFrom};
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return 0;
    }
    if !is_framed(path, magic) {
        return 1;
    }
    let Ok(mut f) = std::fs::File::open(path) else { return 0 };
    let mut n = 0;
    let mut head = [0u8; 8];
    while f.read_exact(&mut head).is_ok() && head[..4] == magic {
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if f.seek(SeekFrom::Current(i64::from(len))).is_err() {
            break;
        }
        n += 1;
    }
    n
}
