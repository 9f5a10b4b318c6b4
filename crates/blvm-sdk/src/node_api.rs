//! [`NodeApiIpc`]: typed async methods for every request a module can make.
//!
//! Each method needs the capability named in its doc; without it the node
//! answers `permission_denied` ([`SdkError::Remote`]) and the connection
//! stays usable.

use blvm_module_protocol::methods::chain::{
    BlockHashResult, BlockResult, ByHash, ByHeight, ByTxid, ChainInfo, ChainTip, FoundResult, HeaderResult,
    HeightResult, OutPoint, TransactionResult, Utxo, UtxoResult,
};
use blvm_module_protocol::methods::events::{
    AckEvents, AckResult, DurableCursor, DurableSubscribed, DurableSubscription, EventTypes, SubscriptionResult,
};
use blvm_module_protocol::methods::filesystem::{CreateDir, DirChanged, FsUsage, RemoveDir};
use blvm_module_protocol::methods::mempool::{
    FeeEstimate, FeeEstimateParams, MempoolSize, MempoolTransaction, MempoolTxids, SubmitTransaction,
    SubmittedTransaction,
};
use blvm_module_protocol::methods::metrics::{
    MetricUpdate, MetricValue, MetricValues, ReadMetrics, ReportMetrics, ReportMetricsResult,
};
use blvm_module_protocol::methods::mining::{BlockTemplate, BlockTemplateParams, SubmitBlock, SubmitBlockResult};
use blvm_module_protocol::methods::modules::{
    ApiMethod, CallModule, CallModuleResult, DiscoveredModules, ModuleApi, ModuleDescription, PublishEvent, Published,
    RegisterModuleApi,
};
use blvm_module_protocol::methods::network::{NetworkPeers, NetworkStats, PeerInfo};
use blvm_module_protocol::methods::rpc::{
    RegisterRpcEndpoint, RegisterRpcEndpointResult, UnregisterRpcEndpoint, UnregisterRpcEndpointResult,
};
use blvm_module_protocol::methods::storage::{
    Batch, BatchOp, BatchResult, GetResult, Put, Scan, ScanResult, StorageUsage, TreeChanged, TreeKey, TreeList,
    TreeName, WriteResult,
};
use blvm_module_protocol::methods::timers::{CancelTimer, Cancelled, ScheduleTimer, Scheduled, TimerList};
use blvm_module_protocol::{Empty, EventType, Hash32, Method};

use crate::error::SdkError;
use crate::ipc::ModuleIpcClient;

/// The node's API as seen from a module.
#[derive(Debug, Clone)]
pub struct NodeApiIpc {
    client: ModuleIpcClient,
}

impl NodeApiIpc {
    /// Wraps a connected (and handshaken) client.
    pub fn new(client: ModuleIpcClient) -> Self {
        NodeApiIpc { client }
    }

    /// The underlying client, for custom requests.
    pub fn client(&self) -> &ModuleIpcClient {
        &self.client
    }

    async fn call<P: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        params: &P,
    ) -> Result<R, SdkError> {
        self.client.request(method.name(), params).await
    }

    /// Liveness check; needs no capability.
    pub async fn ping(&self) -> Result<(), SdkError> {
        self.call::<_, Empty>(Method::Ping, &Empty {}).await.map(|_| ())
    }

    /// A block's consensus bytes by hash (`read_blockchain`).
    pub async fn get_block(&self, hash: Hash32) -> Result<Option<Vec<u8>>, SdkError> {
        Ok(self
            .call::<_, BlockResult>(Method::GetBlock, &ByHash { hash })
            .await?
            .block)
    }

    /// An 80-byte header and its height (`read_blockchain`).
    pub async fn get_block_header(&self, hash: Hash32) -> Result<Option<(Vec<u8>, u64)>, SdkError> {
        let r: HeaderResult = self.call(Method::GetBlockHeader, &ByHash { hash }).await?;
        Ok(r.header.zip(r.height))
    }

    /// A block of the active chain by height (`read_blockchain`).
    pub async fn get_block_by_height(&self, height: u64) -> Result<Option<Vec<u8>>, SdkError> {
        Ok(self
            .call::<_, BlockResult>(Method::GetBlockByHeight, &ByHeight { height })
            .await?
            .block)
    }

    /// The active chain's block hash at a height (`read_blockchain`).
    pub async fn get_block_hash(&self, height: u64) -> Result<Option<Hash32>, SdkError> {
        Ok(self
            .call::<_, BlockHashResult>(Method::GetBlockHash, &ByHeight { height })
            .await?
            .hash)
    }

    /// A confirmed transaction and its block (`read_blockchain`).
    pub async fn get_transaction(&self, txid: Hash32) -> Result<Option<(Vec<u8>, Hash32)>, SdkError> {
        let r: TransactionResult = self.call(Method::GetTransaction, &ByTxid { txid }).await?;
        Ok(r.tx.zip(r.block_hash))
    }

    /// Whether a confirmed transaction exists (`read_blockchain`).
    pub async fn has_transaction(&self, txid: Hash32) -> Result<bool, SdkError> {
        Ok(self
            .call::<_, FoundResult>(Method::HasTransaction, &ByTxid { txid })
            .await?
            .found)
    }

    /// The active tip (`read_chain_state`).
    pub async fn get_chain_tip(&self) -> Result<ChainTip, SdkError> {
        self.call(Method::GetChainTip, &Empty {}).await
    }

    /// The active tip's height (`read_chain_state`).
    pub async fn get_block_height(&self) -> Result<u64, SdkError> {
        Ok(self
            .call::<_, HeightResult>(Method::GetBlockHeight, &Empty {})
            .await?
            .height)
    }

    /// Network, tip, chain work, difficulty (`read_chain_state`).
    pub async fn get_chain_info(&self) -> Result<ChainInfo, SdkError> {
        self.call(Method::GetChainInfo, &Empty {}).await
    }

    /// An unspent output (`read_utxo`).
    pub async fn get_utxo(&self, txid: Hash32, vout: u32) -> Result<Option<Utxo>, SdkError> {
        Ok(self
            .call::<_, UtxoResult>(Method::GetUtxo, &OutPoint { txid, vout })
            .await?
            .utxo)
    }

    /// The mempool's txids (`read_mempool`).
    pub async fn get_mempool_transactions(&self) -> Result<Vec<Hash32>, SdkError> {
        Ok(self
            .call::<_, MempoolTxids>(Method::GetMempoolTransactions, &Empty {})
            .await?
            .txids)
    }

    /// A mempool transaction and its fee (`read_mempool`).
    pub async fn get_mempool_transaction(&self, txid: Hash32) -> Result<MempoolTransaction, SdkError> {
        self.call(Method::GetMempoolTransaction, &ByTxid { txid }).await
    }

    /// Mempool totals (`read_mempool`).
    pub async fn get_mempool_size(&self) -> Result<MempoolSize, SdkError> {
        self.call(Method::GetMempoolSize, &Empty {}).await
    }

    /// Whether a txid is in the mempool (`read_mempool`).
    pub async fn check_transaction_in_mempool(&self, txid: Hash32) -> Result<bool, SdkError> {
        Ok(self
            .call::<_, FoundResult>(Method::CheckTransactionInMempool, &ByTxid { txid })
            .await?
            .found)
    }

    /// A fee-rate estimate in sat/vB (`read_mempool`).
    pub async fn get_fee_estimate(&self, target_blocks: u32) -> Result<Option<f64>, SdkError> {
        Ok(self
            .call::<_, FeeEstimate>(Method::GetFeeEstimate, &FeeEstimateParams { target_blocks })
            .await?
            .sat_per_vb)
    }

    /// A block template (`read_mempool`).
    pub async fn get_block_template(&self, coinbase_script: Option<Vec<u8>>) -> Result<BlockTemplate, SdkError> {
        self.get_block_template_with(&BlockTemplateParams {
            coinbase_script,
            ..BlockTemplateParams::default()
        })
        .await
    }

    /// A block template built with every param of `get_block_template`:
    /// the coinbase script and the weight and sigops to leave free for a
    /// coinbase the caller rewrites (`read_mempool`).
    pub async fn get_block_template_with(&self, params: &BlockTemplateParams) -> Result<BlockTemplate, SdkError> {
        self.call(Method::GetBlockTemplate, params).await
    }

    /// Submits a transaction (`send_transactions`).
    pub async fn submit_transaction(&self, tx: Vec<u8>) -> Result<Hash32, SdkError> {
        Ok(self
            .call::<_, SubmittedTransaction>(Method::SubmitTransaction, &SubmitTransaction { tx })
            .await?
            .txid)
    }

    /// Submits a mined block (`send_transactions`).
    pub async fn submit_block(&self, block: Vec<u8>) -> Result<SubmitBlockResult, SdkError> {
        self.call(Method::SubmitBlock, &SubmitBlock { block }).await
    }

    /// Traffic counters (`read_network`).
    pub async fn get_network_stats(&self) -> Result<NetworkStats, SdkError> {
        self.call(Method::GetNetworkStats, &Empty {}).await
    }

    /// Connected peers (`read_network`).
    pub async fn get_network_peers(&self) -> Result<Vec<PeerInfo>, SdkError> {
        Ok(self
            .call::<_, NetworkPeers>(Method::GetNetworkPeers, &Empty {})
            .await?
            .peers)
    }

    /// Subscribes to event types (`subscribe_events`, plus each type's own
    /// capability); returns every type now subscribed, by name.
    pub async fn subscribe_events(&self, types: &[EventType]) -> Result<Vec<String>, SdkError> {
        let events = types.iter().map(|t| t.name().to_owned()).collect();
        Ok(self
            .call::<_, SubscriptionResult>(Method::SubscribeEvents, &EventTypes { events })
            .await?
            .subscribed)
    }

    /// Subscribes to events by name: catalogue names, and other modules'
    /// own `<module>.<Event>` events (those need only `subscribe_events`);
    /// returns every name now subscribed.
    pub async fn subscribe_event_names(&self, names: &[&str]) -> Result<Vec<String>, SdkError> {
        let events = names.iter().map(|n| (*n).to_owned()).collect();
        Ok(self
            .call::<_, SubscriptionResult>(Method::SubscribeEvents, &EventTypes { events })
            .await?
            .subscribed)
    }

    /// Subscribes to chain events durably (`subscribe_durable`): `types`
    /// of `NewBlock`, `BlockDisconnected`, `ChainReorg`, sent from the
    /// module's stored cursor, or, the first time, from `start_height`
    /// (`None`: after the current tip). Each arrives with
    /// [`ReceivedEvent::durable`](crate::ReceivedEvent::durable) set; pass
    /// its `seq` to [`NodeApiIpc::ack_events`] once processed, or it is
    /// sent again after a restart.
    pub async fn subscribe_durable(
        &self,
        types: &[EventType],
        start_height: Option<u64>,
    ) -> Result<DurableSubscribed, SdkError> {
        let events = types.iter().map(|t| t.name().to_owned()).collect();
        self.call(Method::SubscribeDurable, &DurableSubscription { events, start_height })
            .await
    }

    /// Acknowledges every durable event up to `seq` (`ack_events`); returns
    /// the cursor the node stored.
    pub async fn ack_events(&self, seq: u64) -> Result<DurableCursor, SdkError> {
        Ok(self
            .call::<_, AckResult>(Method::AckEvents, &AckEvents { seq })
            .await?
            .cursor)
    }

    /// Removes event types from the subscription.
    pub async fn unsubscribe_events(&self, types: &[EventType]) -> Result<Vec<String>, SdkError> {
        let events = types.iter().map(|t| t.name().to_owned()).collect();
        Ok(self
            .call::<_, SubscriptionResult>(Method::UnsubscribeEvents, &EventTypes { events })
            .await?
            .subscribed)
    }

    /// A stored value and its generation (`read_storage`); `None` when the
    /// key does not exist.
    pub async fn storage_get(&self, tree: &str, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>, SdkError> {
        let r: GetResult = self
            .call(
                Method::StorageGet,
                &TreeKey {
                    tree: tree.into(),
                    key: key.to_vec(),
                },
            )
            .await?;
        Ok(r.value.map(|v| (v, r.generation)))
    }

    /// A page of a tree's entries (`read_storage`); pass the result's
    /// `cursor` back in `scan.cursor` for the next page.
    pub async fn storage_scan(&self, scan: &Scan) -> Result<ScanResult, SdkError> {
        self.call(Method::StorageScan, scan).await
    }

    /// Writes a value, creating the tree (`write_storage`); returns the
    /// key's new generation. Past a quota: `quota_exceeded`, nothing written.
    pub async fn storage_put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<u64, SdkError> {
        let r: WriteResult = self
            .call(
                Method::StoragePut,
                &Put {
                    tree: tree.into(),
                    key: key.to_vec(),
                    value: value.to_vec(),
                },
            )
            .await?;
        Ok(r.generation)
    }

    /// Removes a key (`write_storage`); returns whether it existed.
    pub async fn storage_delete(&self, tree: &str, key: &[u8]) -> Result<bool, SdkError> {
        let r: WriteResult = self
            .call(
                Method::StorageDelete,
                &TreeKey {
                    tree: tree.into(),
                    key: key.to_vec(),
                },
            )
            .await?;
        Ok(r.existed)
    }

    /// Applies puts and deletes atomically (`write_storage`): all, or none
    /// when an expected generation does not match (`applied: false`).
    pub async fn storage_batch(&self, ops: Vec<BatchOp>) -> Result<BatchResult, SdkError> {
        self.call(Method::StorageBatch, &Batch { ops }).await
    }

    /// Creates an empty tree (`manage_storage`); false if it existed.
    pub async fn storage_create_tree(&self, tree: &str) -> Result<bool, SdkError> {
        let r: TreeChanged = self
            .call(Method::StorageCreateTree, &TreeName { tree: tree.into() })
            .await?;
        Ok(r.changed)
    }

    /// Removes a tree and its entries (`manage_storage`); false if it did
    /// not exist.
    pub async fn storage_drop_tree(&self, tree: &str) -> Result<bool, SdkError> {
        let r: TreeChanged = self
            .call(Method::StorageDropTree, &TreeName { tree: tree.into() })
            .await?;
        Ok(r.changed)
    }

    /// The module's trees (`manage_storage`).
    pub async fn storage_list_trees(&self) -> Result<Vec<String>, SdkError> {
        Ok(self
            .call::<_, TreeList>(Method::StorageListTrees, &Empty {})
            .await?
            .trees)
    }

    /// Bytes and keys stored, and the quotas (`manage_storage`).
    pub async fn storage_usage(&self) -> Result<StorageUsage, SdkError> {
        self.call(Method::StorageUsage, &Empty {}).await
    }

    // Metrics (the host's services/metrics).

    /// Reports metric updates, applied all or nothing (`report_metrics`):
    /// a counter adds its `value`, a gauge takes it, a histogram observes
    /// its `observations`. Past the series cap the node answers
    /// `quota_exceeded` and records nothing.
    pub async fn report_metrics(&self, metrics: Vec<MetricUpdate>) -> Result<ReportMetricsResult, SdkError> {
        self.call(Method::ReportMetrics, &ReportMetrics { metrics }).await
    }

    /// The current values of the node's (`source` `node`) or a module's
    /// metrics, or everyone's (`None`), optionally only names starting
    /// with `prefix` (`read_metrics`).
    pub async fn read_metrics(&self, source: Option<&str>, prefix: Option<&str>) -> Result<Vec<MetricValue>, SdkError> {
        let params = ReadMetrics {
            source: source.map(str::to_owned),
            prefix: prefix.map(str::to_owned),
        };
        Ok(self
            .call::<_, MetricValues>(Method::ReadMetrics, &params)
            .await?
            .metrics)
    }

    /// The running modules, with their versions and registered API methods
    /// (`discover_modules`).
    pub async fn discover_modules(&self) -> Result<Vec<ModuleDescription>, SdkError> {
        Ok(self
            .call::<_, DiscoveredModules>(Method::DiscoverModules, &Empty {})
            .await?
            .modules)
    }

    /// Adds methods to this module's API, which other modules may then
    /// call; answers the whole API now (`register_module_api`). Calls
    /// arrive as `module_call` invocations.
    pub async fn register_module_api(&self, methods: &[(&str, &str)]) -> Result<Vec<ApiMethod>, SdkError> {
        let methods = methods
            .iter()
            .map(|(name, description)| ApiMethod {
                name: (*name).to_owned(),
                description: (*description).to_owned(),
            })
            .collect();
        Ok(self
            .call::<_, ModuleApi>(Method::RegisterModuleApi, &RegisterModuleApi { methods })
            .await?
            .methods)
    }

    /// Calls `method` of module `module` with opaque `params`, waiting at
    /// most `timeout` (capped by the node), and returns its opaque result
    /// (`call_module`). Errors: `module_not_running`, `method_not_found`
    /// (it registered no such method), `module_crashed`, `timeout`, or the
    /// target's own error.
    pub async fn call_module(
        &self,
        module: &str,
        method: &str,
        params: Vec<u8>,
        timeout: Option<std::time::Duration>,
    ) -> Result<Vec<u8>, SdkError> {
        let p = CallModule {
            module: module.to_owned(),
            method: method.to_owned(),
            params,
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        Ok(self.call::<_, CallModuleResult>(Method::CallModule, &p).await?.result)
    }

    /// Publishes an event the manifest declares in `publishes`, with a
    /// MessagePack-map payload; answers how many subscribers' queues took
    /// it (`publish_events`).
    pub async fn publish_event(&self, event: &str, payload: Vec<u8>) -> Result<u64, SdkError> {
        let p = PublishEvent {
            event: event.to_owned(),
            payload,
        };
        Ok(self.call::<_, Published>(Method::PublishEvent, &p).await?.delivered)
    }

    /// Publishes a catalogue event (`PaymentSettled`, …) the manifest
    /// declares, encoding its payload (`publish_events`).
    pub async fn publish(&self, event: &blvm_module_protocol::Event) -> Result<u64, SdkError> {
        let mut payload = Vec::new();
        event.encode_payload(&mut payload).map_err(|source| {
            SdkError::Encode(blvm_module_protocol::EncodeError {
                what: "event payload",
                source,
            })
        })?;
        self.publish_event(event.name(), payload).await
    }

    // Filesystem (the host's services/filesystem). Files themselves are
    // read and written with `std::fs` in the data dir
    // (`BLVM_MODULE_DATA_DIR`, the working directory): the kernel allows
    // it with `read_filesystem` / `write_filesystem`.

    /// Creates directory `path`, relative to the data dir, whose parent
    /// exists (`manage_filesystem`); false if it already was one. An
    /// absolute path, a `..` leaving the data dir or a symbolic link on
    /// the way answers `invalid_params`.
    pub async fn fs_create_dir(&self, path: &str) -> Result<bool, SdkError> {
        let r: DirChanged = self.call(Method::FsCreateDir, &CreateDir { path: path.into() }).await?;
        Ok(r.changed)
    }

    /// Removes directory `path`, relative to the data dir
    /// (`manage_filesystem`): only if empty, or with everything in it when
    /// `recursive` (links inside are removed, never followed). Returns the
    /// number of entries removed, 0 if it did not exist.
    pub async fn fs_remove_dir(&self, path: &str, recursive: bool) -> Result<u64, SdkError> {
        let r: DirChanged = self
            .call(
                Method::FsRemoveDir,
                &RemoveDir {
                    path: path.into(),
                    recursive,
                },
            )
            .await?;
        Ok(r.removed)
    }

    /// Bytes and inodes used and free in the data dir's own file system,
    /// and its quota (`manage_filesystem`); all `None` without a disk quota.
    pub async fn fs_usage(&self) -> Result<FsUsage, SdkError> {
        self.call(Method::FsUsage, &Empty {}).await
    }

    // RPC endpoints (the host's services/rpc_endpoints).

    /// Adds `method` to the node's JSON-RPC server (`register_rpc_endpoint`,
    /// capability `register_rpc_endpoint`): `help <method>` shows the usage
    /// line `<method> <args>` (`args` as Core writes them, `"hash" (
    /// verbose )`), a blank line and `help`. Calls arrive as `rpc_call`
    /// invocations ([`crate::Invocation::rpc_call`]). A node method or
    /// another module's is refused with `already_registered`; past the
    /// operator's cap, `quota_exceeded`. Register again after every start:
    /// the methods leave the server when the connection ends.
    pub async fn register_rpc_endpoint(
        &self,
        method: &str,
        args: &str,
        help: &str,
    ) -> Result<RegisterRpcEndpointResult, SdkError> {
        let params = RegisterRpcEndpoint {
            method: method.to_owned(),
            args: args.to_owned(),
            help: help.to_owned(),
        };
        self.call(Method::RegisterRpcEndpoint, &params).await
    }

    /// Removes a JSON-RPC method the module registered
    /// (`unregister_rpc_endpoint`); false if it had not.
    pub async fn unregister_rpc_endpoint(&self, method: &str) -> Result<bool, SdkError> {
        let params = UnregisterRpcEndpoint {
            method: method.to_owned(),
        };
        Ok(self
            .call::<_, UnregisterRpcEndpointResult>(Method::UnregisterRpcEndpoint, &params)
            .await?
            .removed)
    }

    // Timers (the host's services/timers).

    /// Schedules a timer (`manage_timers`): [`ScheduleTimer::once`],
    /// [`ScheduleTimer::repeat`] or [`ScheduleTimer::at_height`]. The node
    /// then sends `timer_fired` invocations naming the answer's `timer_id`
    /// ([`crate::Invocation::timer_fired`]); answer each with `{}`. A
    /// repeating timer's next fire comes an interval after the answer.
    /// Past the module's cap the node answers `quota_exceeded`. Timers end
    /// with the connection: a restarted module schedules its own again.
    pub async fn timer_schedule(&self, timer: &ScheduleTimer) -> Result<Scheduled, SdkError> {
        self.call(Method::TimerSchedule, timer).await
    }

    /// Cancels a timer (`manage_timers`); false if there was none of that
    /// id (a one-shot timer that already fired).
    pub async fn timer_cancel(&self, timer_id: u64) -> Result<bool, SdkError> {
        Ok(self
            .call::<_, Cancelled>(Method::TimerCancel, &CancelTimer { timer_id })
            .await?
            .cancelled)
    }

    /// The module's timers and its cap (`manage_timers`).
    pub async fn timer_list(&self) -> Result<TimerList, SdkError> {
        self.call(Method::TimerList, &Empty {}).await
    }
}
