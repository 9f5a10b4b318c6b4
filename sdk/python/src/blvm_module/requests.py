"""The request table: every method a module may call (docs/ipc-protocol.md
§8.2), its params, its result and the capability it needs, in one list,
:data:`REQUESTS`. :class:`blvm_module.node_api.NodeApi` builds its typed
methods from it, the frame validator of :mod:`blvm_module.testing` checks
modules' requests against it, and ``tests/test_doc_tables.py`` checks that it
names exactly the methods and capabilities of the spec's table.

Standard library only (see :mod:`blvm_module.schema`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from .schema import F64, I32, U32, U64, Bin, Hash


@dataclass
class Empty:
    """``{}``: a method without params, or a result without fields."""


# --- chain -----------------------------------------------------------------

@dataclass
class HashParams:
    """``hash``: a block hash."""
    hash: Hash


@dataclass
class HeightParams:
    """``height``: a block height."""
    height: U64


@dataclass
class TxidParams:
    """``txid``: a transaction id."""
    txid: Hash


@dataclass
class BlockResult:
    """``block``: the consensus bytes, ``None`` when the node has no such block."""
    block: Bin | None


@dataclass
class BlockHeaderResult:
    """The 80-byte header and height, both ``None`` when unknown."""
    header: Bin | None
    height: U64 | None


@dataclass
class BlockHashResult:
    """``hash``: ``None`` above the tip."""
    hash: Hash | None


@dataclass
class TransactionResult:
    """A confirmed transaction and the block that confirms it."""
    tx: Bin | None
    block_hash: Hash | None


@dataclass
class FoundResult:
    """``found``: whether it exists."""
    found: bool


@dataclass
class ChainTipResult:
    """The active chain's tip."""
    hash: Hash
    height: U64


@dataclass
class HeightResult:
    """``height`` of the tip."""
    height: U64


@dataclass
class ChainInfoResult:
    """The chain's network, tip, work, target, difficulty and sync state."""
    network: str
    tip_hash: Hash
    height: U64
    chain_work: Bin
    bits: U32
    difficulty: F64
    is_synced: bool


@dataclass
class UtxoParams:
    """An outpoint."""
    txid: Hash
    vout: U32


@dataclass
class Utxo:
    """An unspent output."""
    value: U64
    script_pubkey: Bin
    height: U64
    is_coinbase: bool


@dataclass
class UtxoResult:
    """``utxo``: ``None`` when spent or unknown."""
    utxo: Utxo | None


# --- mempool ---------------------------------------------------------------

@dataclass
class TxidsResult:
    """``txids`` in the mempool."""
    txids: list[Hash]


@dataclass
class MempoolTransactionResult:
    """A mempool transaction and its fee in satoshis (both ``None`` when absent)."""
    tx: Bin | None
    fee: U64 | None


@dataclass
class MempoolSizeResult:
    """Count, total virtual size and total fee of the mempool."""
    count: U64
    vsize: U64
    total_fee: U64


@dataclass
class FeeEstimateParams:
    """``target_blocks``: at least 1."""
    target_blocks: U32


@dataclass
class FeeEstimateResult:
    """``sat_per_vb``: ``None`` while the node has too few observations."""
    sat_per_vb: F64 | None


@dataclass
class BlockTemplateParams:
    """Optional coinbase script and reservations (``None``: the node's defaults)."""
    coinbase_script: Bin | None = None
    coinbase_reserved_weight: U32 | None = None
    coinbase_reserved_sigops: U32 | None = None


@dataclass
class TemplateTransaction:
    """A transaction of a template and its fee."""
    data: Bin
    fee: U64


@dataclass
class BlockTemplateResult:
    """A block template."""
    version: I32
    prev_hash: Hash
    height: U64
    bits: U32
    min_time: U32
    cur_time: U32
    coinbase_value: U64
    coinbase_tx: Bin
    transactions: list[TemplateTransaction]


@dataclass
class SubmitTransactionParams:
    """``tx``: consensus bytes."""
    tx: Bin


@dataclass
class SubmitTransactionResult:
    """``txid`` of the accepted transaction."""
    txid: Hash


@dataclass
class SubmitBlockParams:
    """``block``: consensus bytes."""
    block: Bin


@dataclass
class SubmitBlockResult:
    """``status`` (``accepted``, ``duplicate``, ``inconclusive``, ``rejected`` …) and Core's reason."""
    status: str
    reason: str | None


# --- network ---------------------------------------------------------------

@dataclass
class NetworkStatsResult:
    """Always 0 on the reference node (no P2P)."""
    peer_count: U64
    bytes_sent: U64
    bytes_received: U64


@dataclass
class Peer:
    """A peer."""
    addr: str
    inbound: bool
    version: U32
    services: U64
    subver: str


@dataclass
class NetworkPeersResult:
    """``peers``: always empty on the reference node."""
    peers: list[Peer]


# --- events ----------------------------------------------------------------

@dataclass
class EventsParams:
    """``events``: event type names."""
    events: list[str]


@dataclass
class SubscribedResult:
    """Every event type subscribed to after the request."""
    subscribed: list[str]


@dataclass
class DurableParams:
    """Durable chain events (§10.6) and, for a module without a cursor, where to start."""
    events: list[str]
    start_height: U64 | None = None


@dataclass
class CursorAt:
    """A block of the module's view."""
    height: U64
    hash: Hash


@dataclass
class Cursor:
    """A durable cursor: the last durable seq acknowledged and its block."""
    seq: U64
    at: CursorAt | None


@dataclass
class DurableResult:
    """The types now delivered durably and where delivery resumes."""
    durable: list[str]
    cursor: Cursor


@dataclass
class AckParams:
    """``seq``: a durable sequence number received."""
    seq: U64


@dataclass
class CursorResult:
    """``cursor`` as stored."""
    cursor: Cursor


# --- storage ---------------------------------------------------------------

@dataclass
class StorageKeyParams:
    """A key of a tree."""
    tree: str
    key: Bin


@dataclass
class StorageGetResult:
    """``value`` (``None`` when absent) and its generation (0 when absent)."""
    value: Bin | None
    generation: U64


@dataclass
class StorageScanParams:
    """A scan by ``prefix`` or by ``[start, end)``, paged by ``cursor``."""
    tree: str
    prefix: Bin | None = None
    start: Bin | None = None
    end: Bin | None = None
    cursor: Bin | None = None
    limit: U32 | None = None


@dataclass
class StorageEntry:
    """A stored entry."""
    key: Bin
    value: Bin
    generation: U64


@dataclass
class StorageScanResult:
    """Entries in key order; ``cursor`` ``None`` when nothing follows."""
    entries: list[StorageEntry]
    cursor: Bin | None


@dataclass
class StoragePutParams:
    """A put."""
    tree: str
    key: Bin
    value: Bin


@dataclass
class StorageWriteResult:
    """The key's new generation and whether it existed."""
    generation: U64
    existed: bool


@dataclass
class StorageOp:
    """One operation of a batch: ``op`` is ``put`` or ``delete``."""
    op: str
    tree: str
    key: Bin
    value: Bin | None = None
    expect_generation: U64 | None = None


@dataclass
class StorageBatchParams:
    """Operations applied atomically."""
    ops: list[StorageOp]


@dataclass
class StorageBatchResult:
    """``applied``, per-op ``generations`` when applied, else the ``conflicts``."""
    applied: bool
    generations: list[U64]
    conflicts: list[U32]


@dataclass
class TreeParams:
    """``tree``: a tree name."""
    tree: str


@dataclass
class ChangedResult:
    """``changed``: whether anything changed."""
    changed: bool


@dataclass
class TreesResult:
    """``trees``, sorted."""
    trees: list[str]


@dataclass
class StorageUsageResult:
    """Usage and quotas."""
    bytes: U64
    keys: U64
    max_bytes: U64
    max_keys: U64


# --- metrics ---------------------------------------------------------------

@dataclass
class MetricUpdate:
    """One update: a ``counter`` adds ``value``, a ``gauge`` sets it, a ``histogram`` observes ``observations``."""
    name: str
    kind: str
    help: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    value: F64 = 0.0
    observations: list[F64] = field(default_factory=list)
    buckets: list[F64] | None = None


@dataclass
class ReportMetricsParams:
    """Updates applied all or nothing."""
    metrics: list[MetricUpdate]


@dataclass
class ReportMetricsResult:
    """The module's series now and its cap."""
    series: U64
    max_series: U64


@dataclass
class ReadMetricsParams:
    """``source`` (``node``, a module name, ``None``: all) and a name prefix."""
    source: str | None = None
    prefix: str | None = None


@dataclass
class MetricValue:
    """A current value."""
    source: str
    name: str
    kind: str
    labels: dict[str, str]
    value: F64
    count: U64 | None


@dataclass
class ReadMetricsResult:
    """``metrics``: current values."""
    metrics: list[MetricValue]


# --- filesystem ------------------------------------------------------------

@dataclass
class PathParams:
    """``path``: relative to the data dir."""
    path: str


@dataclass
class RemoveDirParams:
    """``path`` and whether to remove what it holds."""
    path: str
    recursive: bool | None = None


@dataclass
class FsChangeResult:
    """Whether it changed and how many entries were removed."""
    changed: bool
    removed: U64


@dataclass
class FsUsageResult:
    """The data dir's file system (all ``None`` without a disk quota)."""
    used_bytes: U64 | None
    free_bytes: U64 | None
    quota_bytes: U64 | None
    used_inodes: U64 | None
    total_inodes: U64 | None


# --- modules ---------------------------------------------------------------

@dataclass
class ApiMethod:
    """A method of a module's API."""
    name: str
    description: str = ""


@dataclass
class ModuleInfo:
    """A running module."""
    name: str
    version: str
    methods: list[ApiMethod]


@dataclass
class ModulesResult:
    """``modules``: the running modules, sorted by name."""
    modules: list[ModuleInfo]


@dataclass
class ApiMethodsParams:
    """Methods to add to the module's API."""
    methods: list[ApiMethod]


@dataclass
class ApiMethodsResult:
    """The module's whole API now, sorted."""
    methods: list[ApiMethod]


@dataclass
class CallModuleParams:
    """A call of ``module``'s ``method`` with opaque ``params`` bytes."""
    module: str
    method: str
    params: Bin
    timeout_ms: U64 | None = None


@dataclass
class CallModuleResult:
    """``result``: the target's answer bytes."""
    result: Bin


@dataclass
class PublishEventParams:
    """``event`` (declared in ``publishes``) and its payload, one MessagePack map."""
    event: str
    payload: Bin


@dataclass
class PublishEventResult:
    """``delivered``: subscribers whose queue took it."""
    delivered: U64


# --- rpc endpoints ---------------------------------------------------------

@dataclass
class RegisterRpcParams:
    """A JSON-RPC method, its usage line's arguments and help."""
    method: str
    args: str | None = None
    help: str | None = None


@dataclass
class RegisterRpcResult:
    """The module's methods now, its cap, and how long the node waits for each answer."""
    endpoints: U32
    max_endpoints: U32
    timeout_ms: U64


@dataclass
class MethodParams:
    """``method``: a JSON-RPC method name."""
    method: str


@dataclass
class RemovedResult:
    """``removed``: false when the module had not registered it."""
    removed: bool


# --- timers ----------------------------------------------------------------

@dataclass
class TimerScheduleParams:
    """``kind`` ``once`` / ``repeat`` (with ``ms``) or ``height`` (with ``height``)."""
    kind: str
    ms: U64 | None = None
    height: U64 | None = None


@dataclass
class TimerScheduleResult:
    """The timer's id, the module's timers now, its cap."""
    timer_id: U64
    timers: U64
    max_timers: U64


@dataclass
class TimerIdParams:
    """``timer_id``."""
    timer_id: U64


@dataclass
class CancelledResult:
    """``cancelled``: false when there was no such timer."""
    cancelled: bool


@dataclass
class TimerInfo:
    """A scheduled timer."""
    timer_id: U64
    kind: str
    ms: U64 | None
    height: U64 | None
    fires: U64


@dataclass
class TimerListResult:
    """The module's timers by id, and its cap."""
    timers: list[TimerInfo]
    max_timers: U64


class Request(NamedTuple):
    """One row of the §8.2 method table."""
    method: str
    params: type
    result: type
    capability: str | None
    doc: str


def _r(method, params, result, capability, doc):
    return Request(method, params, result, capability, doc)


#: Every request of protocol version 1, in the order of §8.2.
REQUESTS: list[Request] = [
    _r("ping", Empty, Empty, None, "Checks the connection."),
    _r("get_block", HashParams, BlockResult, "read_blockchain", "A block's consensus bytes."),
    _r("get_block_header", HashParams, BlockHeaderResult, "read_blockchain", "A block's 80-byte header and height."),
    _r("get_block_by_height", HeightParams, BlockResult, "read_blockchain", "The active chain's block at a height."),
    _r("get_block_hash", HeightParams, BlockHashResult, "read_blockchain", "The active chain's block hash at a height."),
    _r("get_transaction", TxidParams, TransactionResult, "read_blockchain", "A confirmed transaction."),
    _r("has_transaction", TxidParams, FoundResult, "read_blockchain", "Whether a transaction is confirmed."),
    _r("get_chain_tip", Empty, ChainTipResult, "read_chain_state", "The tip's hash and height."),
    _r("get_block_height", Empty, HeightResult, "read_chain_state", "The tip's height."),
    _r("get_chain_info", Empty, ChainInfoResult, "read_chain_state", "Network, tip, chain work, bits, difficulty, sync state."),
    _r("get_utxo", UtxoParams, UtxoResult, "read_utxo", "An unspent output."),
    _r("get_mempool_transactions", Empty, TxidsResult, "read_mempool", "The txids in the mempool."),
    _r("get_mempool_transaction", TxidParams, MempoolTransactionResult, "read_mempool", "A mempool transaction and its fee."),
    _r("get_mempool_size", Empty, MempoolSizeResult, "read_mempool", "Count, vsize and fees of the mempool."),
    _r("check_transaction_in_mempool", TxidParams, FoundResult, "read_mempool", "Whether a transaction is in the mempool."),
    _r("get_fee_estimate", FeeEstimateParams, FeeEstimateResult, "read_mempool", "A fee rate estimate, sat/vB."),
    _r("get_block_template", BlockTemplateParams, BlockTemplateResult, "read_mempool", "A block template."),
    _r("submit_transaction", SubmitTransactionParams, SubmitTransactionResult, "send_transactions", "Submits a transaction."),
    _r("submit_block", SubmitBlockParams, SubmitBlockResult, "send_transactions", "Submits a block."),
    _r("get_network_stats", Empty, NetworkStatsResult, "read_network", "Peer count and bytes (0 without P2P)."),
    _r("get_network_peers", Empty, NetworkPeersResult, "read_network", "The peers (none without P2P)."),
    _r("subscribe_events", EventsParams, SubscribedResult, "subscribe_events", "Subscribes to event types (and marks the module ready)."),
    _r("unsubscribe_events", EventsParams, SubscribedResult, "subscribe_events", "Unsubscribes from event types."),
    _r("subscribe_durable", DurableParams, DurableResult, "subscribe_events", "Subscribes durably to chain events (§10.6)."),
    _r("ack_events", AckParams, CursorResult, "subscribe_events", "Acknowledges durable events up to a seq."),
    _r("storage_get", StorageKeyParams, StorageGetResult, "read_storage", "Reads a key."),
    _r("storage_scan", StorageScanParams, StorageScanResult, "read_storage", "Scans a tree by prefix or range."),
    _r("storage_put", StoragePutParams, StorageWriteResult, "write_storage", "Writes a key."),
    _r("storage_delete", StorageKeyParams, StorageWriteResult, "write_storage", "Deletes a key."),
    _r("storage_batch", StorageBatchParams, StorageBatchResult, "write_storage", "Applies operations atomically."),
    _r("storage_create_tree", TreeParams, ChangedResult, "manage_storage", "Creates an empty tree."),
    _r("storage_drop_tree", TreeParams, ChangedResult, "manage_storage", "Drops a tree and everything in it."),
    _r("storage_list_trees", Empty, TreesResult, "manage_storage", "Lists the module's trees."),
    _r("storage_usage", Empty, StorageUsageResult, "manage_storage", "The module's storage usage and quotas."),
    _r("report_metrics", ReportMetricsParams, ReportMetricsResult, "report_metrics", "Reports metric updates."),
    _r("read_metrics", ReadMetricsParams, ReadMetricsResult, "read_metrics", "Reads current metric values."),
    _r("fs_create_dir", PathParams, FsChangeResult, "manage_filesystem", "Creates a directory in the data dir."),
    _r("fs_remove_dir", RemoveDirParams, FsChangeResult, "manage_filesystem", "Removes a directory of the data dir."),
    _r("fs_usage", Empty, FsUsageResult, "manage_filesystem", "The data dir's usage and quota."),
    _r("discover_modules", Empty, ModulesResult, "discover_modules", "The running modules and their APIs."),
    _r("register_module_api", ApiMethodsParams, ApiMethodsResult, "register_module_api", "Adds methods to the module's API."),
    _r("call_module", CallModuleParams, CallModuleResult, "call_module", "Calls another module's API method."),
    _r("publish_event", PublishEventParams, PublishEventResult, "publish_events", "Publishes an event the manifest declares."),
    _r("register_rpc_endpoint", RegisterRpcParams, RegisterRpcResult, "register_rpc_endpoint", "Adds a JSON-RPC method to the node."),
    _r("unregister_rpc_endpoint", MethodParams, RemovedResult, "register_rpc_endpoint", "Removes a JSON-RPC method."),
    _r("timer_schedule", TimerScheduleParams, TimerScheduleResult, "manage_timers", "Schedules a timer."),
    _r("timer_cancel", TimerIdParams, CancelledResult, "manage_timers", "Cancels a timer."),
    _r("timer_list", Empty, TimerListResult, "manage_timers", "Lists the module's timers."),
]

#: The table by method name.
BY_METHOD: dict[str, Request] = {r.method: r for r in REQUESTS}
