//! The requests a module may send to the node, and the invocations the node
//! sends to a module.
//!
//! A request names its method as a `snake_case` string; its `params` and the
//! `result` of its response are MessagePack maps with field names. Each
//! family of methods lives in its own file with its parameter and result
//! types. [`Method`] is the one table of known method names, and
//! [`Method::required_permission`] is the one place that says which
//! capability each request needs. A method name that is not in the table is
//! answered with [`crate::ErrorCode::MethodNotFound`]; the connection stays.

pub mod chain;
pub mod events;
pub mod filesystem;
pub mod invocation;
pub mod mempool;
pub mod metrics;
pub mod mining;
pub mod modules;
pub mod network;
pub mod rpc;
pub mod storage;
pub mod timers;

use crate::permissions::Permission;

macro_rules! methods {
    ($($variant:ident => $name:literal, $perm:expr, $doc:literal;)+) => {
        /// A module→node request method this protocol version knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Method {
            $(#[doc = $doc] $variant,)+
        }

        impl Method {
            /// Every known method.
            pub const ALL: &'static [Method] = &[$(Method::$variant,)+];

            /// The wire name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Method::$variant => $name,)+
                }
            }

            /// Looks a wire name up; `None` answers `MethodNotFound`.
            pub fn from_name(name: &str) -> Option<Method> {
                match name {
                    $($name => Some(Method::$variant),)+
                    _ => None,
                }
            }

            /// The capability a module needs to make this request, or `None`
            /// when every authenticated module may make it.
            pub const fn required_permission(self) -> Option<Permission> {
                match self {
                    $(Method::$variant => $perm,)+
                }
            }
        }
    };
}

methods! {
    Ping => "ping", None, "Liveness check; answers an empty map.";
    GetBlock => "get_block", Some(Permission::ReadBlockchain), "A block by hash, consensus bytes.";
    GetBlockHeader => "get_block_header", Some(Permission::ReadBlockchain), "An 80-byte header by hash, with its height.";
    GetBlockByHeight => "get_block_by_height", Some(Permission::ReadBlockchain), "A block of the active chain by height.";
    GetBlockHash => "get_block_hash", Some(Permission::ReadBlockchain), "The hash of the active chain's block at a height.";
    GetTransaction => "get_transaction", Some(Permission::ReadBlockchain), "A confirmed transaction by txid, with its block.";
    HasTransaction => "has_transaction", Some(Permission::ReadBlockchain), "Whether a confirmed transaction exists.";
    GetChainTip => "get_chain_tip", Some(Permission::ReadChainState), "The active tip's hash and height.";
    GetBlockHeight => "get_block_height", Some(Permission::ReadChainState), "The active tip's height.";
    GetChainInfo => "get_chain_info", Some(Permission::ReadChainState), "Network, tip, chain work, difficulty, sync state.";
    GetUtxo => "get_utxo", Some(Permission::ReadUTXO), "An unspent output by outpoint.";
    GetMempoolTransactions => "get_mempool_transactions", Some(Permission::ReadMempool), "The txids in the mempool.";
    GetMempoolTransaction => "get_mempool_transaction", Some(Permission::ReadMempool), "A mempool transaction by txid.";
    GetMempoolSize => "get_mempool_size", Some(Permission::ReadMempool), "Mempool count, virtual size and total fee.";
    CheckTransactionInMempool => "check_transaction_in_mempool", Some(Permission::ReadMempool), "Whether a txid is in the mempool.";
    GetFeeEstimate => "get_fee_estimate", Some(Permission::ReadMempool), "A fee-rate estimate for a confirmation target.";
    GetBlockTemplate => "get_block_template", Some(Permission::ReadMempool), "A block template built from the mempool (a mempool read, not a chain read).";
    SubmitTransaction => "submit_transaction", Some(Permission::SendTransactions), "Submits a transaction to the mempool.";
    SubmitBlock => "submit_block", Some(Permission::SendTransactions), "Submits a mined block for validation.";
    GetNetworkStats => "get_network_stats", Some(Permission::ReadNetwork), "Peer count and traffic counters.";
    GetNetworkPeers => "get_network_peers", Some(Permission::ReadNetwork), "The connected peers.";
    SubscribeEvents => "subscribe_events", Some(Permission::SubscribeEvents), "Subscribes to event types (each may need a further permission).";
    UnsubscribeEvents => "unsubscribe_events", Some(Permission::SubscribeEvents), "Removes event types from the subscription.";
    SubscribeDurable => "subscribe_durable", Some(Permission::SubscribeEvents), "Subscribes to chain events durably: sent from the module's stored cursor, replayed after any restart.";
    AckEvents => "ack_events", Some(Permission::SubscribeEvents), "Acknowledges durable events up to a sequence number; the node stores the cursor.";
    StorageGet => "storage_get", Some(Permission::ReadStorage), "A value of the module's storage, with its generation.";
    StorageScan => "storage_scan", Some(Permission::ReadStorage), "A page of a tree's entries by prefix or range, with a resume cursor.";
    StoragePut => "storage_put", Some(Permission::WriteStorage), "Writes a value (creating the tree); answers the new generation.";
    StorageDelete => "storage_delete", Some(Permission::WriteStorage), "Removes a key.";
    StorageBatch => "storage_batch", Some(Permission::WriteStorage), "Puts and deletes applied atomically, with compare-and-swap on generations.";
    StorageCreateTree => "storage_create_tree", Some(Permission::ManageStorage), "Creates an empty tree.";
    StorageDropTree => "storage_drop_tree", Some(Permission::ManageStorage), "Removes a tree and everything in it.";
    StorageListTrees => "storage_list_trees", Some(Permission::ManageStorage), "The module's trees.";
    StorageUsage => "storage_usage", Some(Permission::ManageStorage), "Bytes and keys stored, and the module's quotas.";
    // Metrics (services/metrics in the host).
    ReportMetrics => "report_metrics", Some(Permission::ReportMetrics), "Adds to counters, sets gauges, observes histograms; all or nothing, within the series cap.";
    ReadMetrics => "read_metrics", Some(Permission::ReadMetrics), "The current values of the node's and modules' metrics.";
    // Inter-module (services/modules in the host).
    DiscoverModules => "discover_modules", Some(Permission::DiscoverModules), "The running modules: name, version, registered API methods.";
    RegisterModuleApi => "register_module_api", Some(Permission::RegisterModuleApi), "Adds methods to the module's API, which other modules may call.";
    CallModule => "call_module", Some(Permission::CallModule), "Calls another module's API method, with a deadline; the node names the caller.";
    PublishEvent => "publish_event", Some(Permission::PublishEvents), "Publishes an event the manifest declares in `publishes`, to its subscribers.";
    // Filesystem (services/filesystem in the host). Reading and writing
    // files is the kernel's: Landlock follows `read_filesystem` and
    // `write_filesystem`.
    FsCreateDir => "fs_create_dir", Some(Permission::ManageFilesystem), "Creates a directory beneath the data dir (no `..`, no symlink, no absolute path).";
    FsRemoveDir => "fs_remove_dir", Some(Permission::ManageFilesystem), "Removes a directory beneath the data dir: empty, or with everything in it (`recursive`).";
    FsUsage => "fs_usage", Some(Permission::ManageFilesystem), "Bytes and inodes used in the data dir's own file system, and its quota.";
    // RPC endpoints (services/rpc_endpoints in the host).
    RegisterRpcEndpoint => "register_rpc_endpoint", Some(Permission::RegisterRpcEndpoint), "Adds a JSON-RPC method, served by the module through `rpc_call`.";
    UnregisterRpcEndpoint => "unregister_rpc_endpoint", Some(Permission::RegisterRpcEndpoint), "Removes a JSON-RPC method the module registered.";
    // Timers (services/timers in the host).
    TimerSchedule => "timer_schedule", Some(Permission::ManageTimers), "Schedules a one-shot, repeating or block-height timer; the node sends `timer_fired`.";
    TimerCancel => "timer_cancel", Some(Permission::ManageTimers), "Cancels one of the module's timers.";
    TimerList => "timer_list", Some(Permission::ManageTimers), "The module's timers.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_are_unique_and_round_trip() {
        let mut names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Method::ALL.len());
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(*m));
        }
        assert_eq!(Method::from_name("get_private_keys"), None);
    }
}
