//! One arm per method: decode the params, call the backend, encode the
//! result. The permission check has already been made by the hub.

use std::sync::Arc;

use blvm_module_protocol::events::EventType;
use blvm_module_protocol::frame::encode;
use blvm_module_protocol::methods::chain::{
    BlockHashResult, BlockResult, ByHash, ByHeight, ByTxid, FoundResult, HeaderResult, HeightResult, OutPoint,
    TransactionResult, UtxoResult,
};
use blvm_module_protocol::methods::events::{
    AckEvents, AckResult, DurableSubscribed, DurableSubscription, EventTypes, SubscriptionResult, MAX_DURABLE_WINDOW,
};
use blvm_module_protocol::methods::filesystem::{CreateDir, RemoveDir};
use blvm_module_protocol::methods::mempool::{
    FeeEstimate, FeeEstimateParams, MempoolSize, MempoolTxids, SubmitTransaction, SubmittedTransaction,
};
use blvm_module_protocol::methods::metrics::{ReadMetrics, ReportMetrics};
use blvm_module_protocol::methods::mining::{BlockTemplateParams, SubmitBlock};
use blvm_module_protocol::methods::modules::{CallModule, PublishEvent, RegisterModuleApi};
use blvm_module_protocol::methods::network::NetworkPeers;
use blvm_module_protocol::methods::rpc::{RegisterRpcEndpoint, UnregisterRpcEndpoint};
use blvm_module_protocol::methods::storage::{Batch, Put, Scan, TreeChanged, TreeKey, TreeList, TreeName};
use blvm_module_protocol::methods::timers::{CancelTimer, ScheduleTimer};
use blvm_module_protocol::{Empty, ErrorCode, Method, RemoteError, Request};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::durable::{DurableFeed, DURABLE_TYPES};
use super::events::DEFAULT_QUEUE_CAPACITY;
use super::hub::{Caller, Deferred, ModuleApiHub};

fn params<T: DeserializeOwned>(request: &Request) -> Result<T, RemoteError> {
    request
        .params()
        .map_err(|e| RemoteError::invalid_params(&request.method, e))
}

fn reply<T: Serialize>(out: &mut Vec<u8>, request: &Request, result: &T) -> Result<(), RemoteError> {
    encode::response(out, request.id, result).map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))
}

pub(super) fn route(
    hub: &ModuleApiHub,
    caller: &Caller<'_>,
    method: Method,
    request: &Request,
    out: &mut Vec<u8>,
    later: &mut Option<Deferred>,
) -> Result<(), RemoteError> {
    let b = &*hub.backend;
    let storage = || {
        hub.storage
            .as_deref()
            .ok_or_else(|| RemoteError::new(ErrorCode::Unavailable, "this node offers no module storage"))
    };
    let module = caller.module_name;
    match method {
        Method::Ping => reply(out, request, &Empty {}),
        Method::GetBlock => {
            let p: ByHash = params(request)?;
            reply(
                out,
                request,
                &BlockResult {
                    block: b.get_block(&p.hash)?,
                },
            )
        }
        Method::GetBlockHeader => {
            let p: ByHash = params(request)?;
            let found = b.get_block_header(&p.hash)?;
            reply(
                out,
                request,
                &HeaderResult {
                    height: found.as_ref().map(|(_, h)| *h),
                    header: found.map(|(bytes, _)| bytes),
                },
            )
        }
        Method::GetBlockByHeight => {
            let p: ByHeight = params(request)?;
            let block = match b.get_block_hash(p.height)? {
                Some(hash) => b.get_block(&hash)?,
                None => None,
            };
            reply(out, request, &BlockResult { block })
        }
        Method::GetBlockHash => {
            let p: ByHeight = params(request)?;
            reply(
                out,
                request,
                &BlockHashResult {
                    hash: b.get_block_hash(p.height)?,
                },
            )
        }
        Method::GetTransaction => {
            let p: ByTxid = params(request)?;
            let found = b.get_transaction(&p.txid)?;
            reply(
                out,
                request,
                &TransactionResult {
                    block_hash: found.as_ref().map(|(_, h)| *h),
                    tx: found.map(|(tx, _)| tx),
                },
            )
        }
        Method::HasTransaction => {
            let p: ByTxid = params(request)?;
            reply(
                out,
                request,
                &FoundResult {
                    found: b.get_transaction(&p.txid)?.is_some(),
                },
            )
        }
        Method::GetChainTip => reply(out, request, &b.get_chain_tip()?),
        Method::GetBlockHeight => reply(
            out,
            request,
            &HeightResult {
                height: b.get_chain_tip()?.height,
            },
        ),
        Method::GetChainInfo => reply(out, request, &b.get_chain_info()?),
        Method::GetUtxo => {
            let p: OutPoint = params(request)?;
            reply(out, request, &UtxoResult { utxo: b.get_utxo(&p)? })
        }
        Method::GetMempoolTransactions => reply(
            out,
            request,
            &MempoolTxids {
                txids: b.get_mempool_txids()?,
            },
        ),
        Method::GetMempoolTransaction => {
            let p: ByTxid = params(request)?;
            reply(out, request, &b.get_mempool_transaction(&p.txid)?)
        }
        Method::GetMempoolSize => {
            let size: MempoolSize = b.get_mempool_size()?;
            reply(out, request, &size)
        }
        Method::CheckTransactionInMempool => {
            let p: ByTxid = params(request)?;
            let found = b.get_mempool_transaction(&p.txid)?.tx.is_some();
            reply(out, request, &FoundResult { found })
        }
        Method::GetFeeEstimate => {
            let p: FeeEstimateParams = params(request)?;
            if p.target_blocks == 0 {
                return Err(RemoteError::invalid_params(
                    &request.method,
                    "target_blocks must be at least 1",
                ));
            }
            reply(
                out,
                request,
                &FeeEstimate {
                    sat_per_vb: b.get_fee_estimate(p.target_blocks)?,
                },
            )
        }
        Method::GetBlockTemplate => {
            let p: BlockTemplateParams = params(request)?;
            reply(out, request, &b.get_block_template(&p)?)
        }
        Method::SubmitTransaction => {
            let p: SubmitTransaction = params(request)?;
            reply(
                out,
                request,
                &SubmittedTransaction {
                    txid: b.submit_transaction(&p.tx)?,
                },
            )
        }
        Method::SubmitBlock => {
            let p: SubmitBlock = params(request)?;
            reply(out, request, &b.submit_block(&p.block)?)
        }
        Method::GetNetworkStats => reply(out, request, &b.get_network_stats()?),
        Method::GetNetworkPeers => reply(
            out,
            request,
            &NetworkPeers {
                peers: b.get_network_peers()?,
            },
        ),
        Method::SubscribeEvents => {
            let p: EventTypes = params(request)?;
            let types = event_types(caller, request, &p.events)?;
            let custom: Vec<String> = p.events.iter().filter(|n| is_custom(n)).cloned().collect();
            let custom_now = hub.events.subscribe_custom(caller.module_id, &custom).ok_or_else(|| {
                RemoteError::new(
                    ErrorCode::QuotaExceeded,
                    format!(
                        "a module may subscribe to {} custom event names",
                        crate::api::events::MAX_CUSTOM_SUBSCRIPTIONS
                    ),
                )
            })?;
            let now = hub.events.subscribe(caller.module_id, &types);
            reply(
                out,
                request,
                &SubscriptionResult {
                    subscribed: names(&now, custom_now),
                },
            )
        }
        Method::UnsubscribeEvents => {
            let p: EventTypes = params(request)?;
            let types: Vec<EventType> = p.events.iter().filter_map(|n| EventType::from_name(n)).collect();
            let custom_now = hub.events.unsubscribe_custom(caller.module_id, &p.events);
            let now = hub.events.unsubscribe(caller.module_id, &types);
            reply(
                out,
                request,
                &SubscriptionResult {
                    subscribed: names(&now, custom_now),
                },
            )
        }
        Method::SubscribeDurable => {
            let p: DurableSubscription = params(request)?;
            let types = event_types(caller, request, &p.events)?;
            if let Some(ty) = types.iter().find(|t| !DURABLE_TYPES.contains(t)) {
                return Err(RemoteError::invalid_params(
                    &request.method,
                    format_args!(
                        "`{}` cannot be subscribed durably (only NewBlock, BlockDisconnected, ChainReorg)",
                        ty.name()
                    ),
                ));
            }
            if types.is_empty() {
                return Err(RemoteError::invalid_params(
                    &request.method,
                    "no event type to subscribe durably",
                ));
            }
            let store = hub
                .cursors
                .clone()
                .ok_or_else(|| RemoteError::new(ErrorCode::Unavailable, "this node keeps no event cursors"))?;
            let conn = connection(hub, caller)?;
            let delivery = hub
                .events
                .delivery_seq(caller.module_id)
                .ok_or_else(|| RemoteError::new(ErrorCode::Unavailable, "the module's connection is closing"))?;
            let window = hub
                .events
                .queue_capacity(caller.module_id)
                .unwrap_or(DEFAULT_QUEUE_CAPACITY)
                .min(MAX_DURABLE_WINDOW);
            let feed = DurableFeed::open(
                module,
                types,
                p.start_height,
                window,
                Arc::clone(&hub.backend),
                store,
                delivery,
            )?;
            let result = DurableSubscribed {
                durable: names(feed.types(), Vec::new()),
                cursor: feed.cursor(),
            };
            // Events may reach the module before this answer, as on the
            // at-most-once path (the writer and the reader write apart).
            hub.events.add_durable(caller.module_id, Arc::clone(&feed));
            conn.set_durable(feed);
            reply(out, request, &result)
        }
        Method::AckEvents => {
            let p: AckEvents = params(request)?;
            let feed = hub.events.durable(caller.module_id).ok_or_else(|| {
                RemoteError::new(
                    ErrorCode::InvalidParams,
                    "`ack_events` without a durable subscription (`subscribe_durable`) on this connection",
                )
            })?;
            reply(
                out,
                request,
                &AckResult {
                    cursor: feed.ack(p.seq)?,
                },
            )
        }
        Method::StorageGet => {
            let p: TreeKey = params(request)?;
            reply(out, request, &storage()?.get(module, &p)?)
        }
        Method::StorageScan => {
            let p: Scan = params(request)?;
            reply(out, request, &storage()?.scan(module, &p)?)
        }
        Method::StoragePut => {
            let p: Put = params(request)?;
            reply(out, request, &storage()?.put(module, &p)?)
        }
        Method::StorageDelete => {
            let p: TreeKey = params(request)?;
            reply(out, request, &storage()?.delete(module, &p)?)
        }
        Method::StorageBatch => {
            let p: Batch = params(request)?;
            reply(out, request, &storage()?.batch(module, &p)?)
        }
        Method::StorageCreateTree => {
            let p: TreeName = params(request)?;
            let changed = storage()?.create_tree(module, &p.tree)?;
            reply(out, request, &TreeChanged { changed })
        }
        Method::StorageDropTree => {
            let p: TreeName = params(request)?;
            let changed = storage()?.drop_tree(module, &p.tree)?;
            reply(out, request, &TreeChanged { changed })
        }
        Method::StorageListTrees => {
            let trees = storage()?.list_trees(module)?;
            reply(out, request, &TreeList { trees })
        }
        Method::StorageUsage => reply(out, request, &storage()?.usage(module)?),
        // Metrics (services/metrics).
        Method::ReportMetrics => {
            let p: ReportMetrics = params(request)?;
            let result = hub.metrics.report(caller.module_id, caller.module_name, &p)?;
            reply(out, request, &result)
        }
        Method::ReadMetrics => {
            let p: ReadMetrics = params(request)?;
            reply(out, request, &hub.metrics.read(&p))
        }
        // Inter-module (services/modules).
        Method::DiscoverModules => reply(out, request, &hub.modules.discover(&hub.directory)),
        Method::RegisterModuleApi => {
            let p: RegisterModuleApi = params(request)?;
            reply(
                out,
                request,
                &hub.modules.register(caller.module_id, module, &p.methods)?,
            )
        }
        Method::CallModule => {
            let p: CallModule = params(request)?;
            *later = Some(hub.modules.call(&hub.directory, hub.runtime(), module, p)?);
            Ok(())
        }
        Method::PublishEvent => {
            let p: PublishEvent = params(request)?;
            let who = crate::services::modules::publish::Publisher {
                module_id: caller.module_id,
                module,
                declared: caller.publishes,
            };
            reply(out, request, &hub.modules.publish(&hub.events, &who, p)?)
        }
        // Filesystem (services/filesystem): the spawn's own data dir.
        Method::FsCreateDir => {
            let p: CreateDir = params(request)?;
            reply(out, request, &hub.filesystem.create_dir(caller.module_id, &p.path)?)
        }
        Method::FsRemoveDir => {
            let p: RemoveDir = params(request)?;
            let result = hub.filesystem.remove_dir(caller.module_id, &p.path, p.recursive)?;
            reply(out, request, &result)
        }
        Method::FsUsage => reply(out, request, &hub.filesystem.usage(caller.module_id)?),
        // RPC endpoints (services/rpc_endpoints).
        Method::RegisterRpcEndpoint => {
            let p: RegisterRpcEndpoint = params(request)?;
            let result = hub.rpc_endpoints.register(caller.module_id, caller.module_name, &p)?;
            reply(out, request, &result)
        }
        Method::UnregisterRpcEndpoint => {
            let p: UnregisterRpcEndpoint = params(request)?;
            reply(out, request, &hub.rpc_endpoints.unregister(caller.module_name, &p))
        }
        // Timers (services/timers): they fire to the caller's connection.
        Method::TimerSchedule => {
            let p: ScheduleTimer = params(request)?;
            let tip = b.get_chain_tip().ok().map(|t| t.height);
            let scheduled = hub.timers.schedule(hub.runtime(), &connection(hub, caller)?, tip, &p)?;
            reply(out, request, &scheduled)
        }
        Method::TimerCancel => {
            let p: CancelTimer = params(request)?;
            reply(out, request, &hub.timers.cancel(&connection(hub, caller)?, p.timer_id))
        }
        Method::TimerList => reply(out, request, &hub.timers.list(&connection(hub, caller)?)),
    }
}

/// A module's own event name, `<module>.<Event>`: catalogue names have no
/// dot.
fn is_custom(name: &str) -> bool {
    name.contains('.') && EventType::from_name(name).is_none()
}

/// The caller's own live connection (what its timers fire to).
fn connection(hub: &ModuleApiHub, caller: &Caller<'_>) -> Result<crate::ipc::ModuleConnectionHandle, RemoteError> {
    hub.directory
        .get(caller.module_id)
        .filter(|c| !c.is_closed())
        .ok_or_else(|| RemoteError::new(ErrorCode::Unavailable, "the module's connection is closing"))
}

/// Resolves event names, checking the permission each one needs. The whole
/// subscription is refused if any one is denied, so a module never ends up
/// with half of what it asked for without knowing it. Names this node does
/// not know (a module built against a newer protocol) are skipped; the
/// answer lists what the module is subscribed to.
fn event_types(caller: &Caller<'_>, request: &Request, names: &[String]) -> Result<Vec<EventType>, RemoteError> {
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        let Some(ty) = EventType::from_name(name) else {
            if is_custom(name) {
                // A module's own event: `subscribe_events` is enough (the
                // publisher chose to publish it to every subscriber).
                continue;
            }
            tracing::debug!(module = caller.module_name, method = %request.method, "skipping unknown event type `{name}`");
            continue;
        };
        if let Some(permission) = ty.required_permission() {
            if !caller.capabilities.contains(permission) {
                return Err(RemoteError::permission_denied(
                    permission,
                    format_args!("subscribing to `{name}`"),
                ));
            }
        }
        types.push(ty);
    }
    Ok(types)
}

fn names(types: &[EventType], custom: Vec<String>) -> Vec<String> {
    types.iter().map(|t| t.name().to_owned()).chain(custom).collect()
}
