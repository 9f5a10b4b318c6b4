"""Events (docs/ipc-protocol.md §10, docs/events.md): the :class:`Event`
an integration yields, the delivery sequence and missed-event detection
(§10.3), and typed payloads for the chain and mempool events.

An event whose name is not in :data:`KNOWN_EVENTS` (a newer node's, or a
module's own ``<module>.<Event>``) is still delivered: ``event.known`` is
false and ``payload`` / ``payload_bytes`` keep what came (§4.4 rule 5).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .frames import DurableMark
from .schema import F64, U32, U64, Bin, Hash, SchemaError, from_wire

#: Every event type of docs/events.md's catalogue (checked by the tests).
KNOWN_EVENTS: frozenset[str] = frozenset([
    "NewBlock",
    "NewTransaction",
    "BlockDisconnected",
    "ChainReorg",
    "PaymentRequestCreated",
    "PaymentSettled",
    "PaymentFailed",
    "PaymentVerified",
    "PaymentRouteFound",
    "PaymentRouteFailed",
    "ModulePurchaseCompleted",
    "ChannelOpened",
    "ChannelClosed",
    "BlockMined",
    "BlockTemplateUpdated",
    "MiningDifficultyChanged",
    "MiningJobCreated",
    "ShareSubmitted",
    "MergeMiningReward",
    "MiningPoolConnected",
    "MiningPoolDisconnected",
    "ActionExecuted",
    "MeshPacketReceived",
    "StratumV2MessageReceived",
    "StratumClientConnected",
    "StratumClientDisconnected",
    "ModuleLoaded",
    "ModuleUnloaded",
    "ModuleReloaded",
    "ModuleStarted",
    "ModuleStopped",
    "ModuleCrashed",
    "ModuleHealthChanged",
    "ModuleStateChanged",
    "ModuleDiscovered",
    "ModuleInstalled",
    "ModuleUpdated",
    "ModuleRemoved",
    "ConfigLoaded",
    "NodeStartupCompleted",
    "NodeShutdown",
    "NodeShutdownCompleted",
    "DataMaintenance",
    "MaintenanceStarted",
    "MaintenanceCompleted",
    "HealthCheck",
    "DiskSpaceLow",
    "ResourceLimitWarning",
    "GovernanceProposalCreated",
    "GovernanceProposalVoted",
    "GovernanceProposalMerged",
    "EconomicNodeRegistered",
    "EconomicNodeStatus",
    "EconomicNodeForkDecision",
    "EconomicNodeVeto",
    "VetoThresholdReached",
    "GovernanceForkDetected",
    "WebhookSent",
    "WebhookFailed",
    "PeerConnected",
    "PeerDisconnected",
    "PeerBanned",
    "PeerUnbanned",
    "MessageReceived",
    "MessageSent",
    "BroadcastStarted",
    "BroadcastCompleted",
    "RouteDiscovered",
    "RouteFailed",
    "ConnectionAttempt",
    "AddressDiscovered",
    "AddressExpired",
    "NetworkPartition",
    "NetworkReconnected",
    "DoSAttackDetected",
    "RateLimitExceeded",
    "BlockValidationStarted",
    "BlockValidationCompleted",
    "ScriptVerificationStarted",
    "ScriptVerificationCompleted",
    "UTXOValidationStarted",
    "UTXOValidationCompleted",
    "DifficultyAdjusted",
    "SoftForkActivated",
    "SoftForkLockedIn",
    "ConsensusRuleViolation",
    "HeadersSyncStarted",
    "HeadersSyncProgress",
    "HeadersSyncCompleted",
    "BlockSyncStarted",
    "BlockSyncProgress",
    "BlockSyncCompleted",
    "SyncStateChanged",
    "SelectiveSyncPolicyApplied",
    "IBDBlockFiltered",
    "MempoolTransactionAdded",
    "MempoolTransactionRemoved",
    "MempoolThresholdExceeded",
    "FeeRateChanged",
    "MempoolCleared",
    "StorageRead",
    "StorageWrite",
    "StorageQuery",
    "DatabaseBackupStarted",
    "DatabaseBackupCompleted",
    "DandelionStemStarted",
    "DandelionStemAdvanced",
    "DandelionFluffed",
    "DandelionStemPathExpired",
    "CompactBlockReceived",
    "BlockReconstructionStarted",
    "BlockReconstructionCompleted",
    "FibreBlockEncoded",
    "FibreBlockSent",
    "FibrePeerRegistered",
    "CompanionUdpPeerRegistered",
    "CompanionUdpPeerUnregistered",
    "PackageReceived",
    "PackageRejected",
    "UtxoCommitmentReceived",
    "UtxoCommitmentVerified",
    "BanListShared",
    "BanListReceived",
])


@dataclass
class NewBlock:
    """A block connected to the active chain."""
    block_hash: Hash
    height: U64
    header: Bin


@dataclass
class BlockDisconnected:
    """A block disconnected by a reorg."""
    block_hash: Hash
    height: U64
    header: Bin


@dataclass
class ChainReorg:
    """A chain reorganisation."""
    old_tip: Hash
    old_height: U64
    new_tip: Hash
    new_height: U64
    fork_point: Hash
    fork_height: U64
    disconnected: U32
    connected: U32


@dataclass
class NewTransaction:
    """A transaction entered the mempool (with its bytes)."""
    txid: Hash
    wtxid: Hash
    tx: Bin


@dataclass
class MempoolTransactionAdded:
    """A transaction entered the mempool: fee, vsize and fee rate (sat/vB)."""
    txid: Hash
    wtxid: Hash
    fee_sats: U64
    vsize: U64
    fee_rate: F64
    mempool_size: U64


@dataclass
class MempoolTransactionRemoved:
    """A transaction left the mempool (``reason`` is an open set)."""
    txid: Hash
    reason: str
    mempool_size: U64


@dataclass
class ModuleLoaded:
    """A module was announced (replayed at subscription, §10.5)."""
    module_name: str
    version: str


#: Typed payloads by event name.
PAYLOADS: dict[str, type] = {
    "NewBlock": NewBlock,
    "BlockDisconnected": BlockDisconnected,
    "ChainReorg": ChainReorg,
    "NewTransaction": NewTransaction,
    "MempoolTransactionAdded": MempoolTransactionAdded,
    "MempoolTransactionRemoved": MempoolTransactionRemoved,
    "ModuleLoaded": ModuleLoaded,
}


@dataclass
class Event:
    """One delivered event.

    ``seq`` is the connection's delivery number; ``missed`` how many events
    were dropped for this module just before this one (``seq - previous - 1``,
    §10.3: resynchronise from the node's state when it is not 0).
    """
    name: str
    seq: int
    payload: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None
    durable: DurableMark | None = None
    missed: int = 0

    @property
    def type(self) -> str:
        """The event type's name (the same as ``name``)."""
        return self.name

    @property
    def known(self) -> bool:
        """Whether docs/events.md lists this event type."""
        return self.name in KNOWN_EVENTS

    @property
    def payload_bytes(self) -> bytes:
        """The payload as one MessagePack map (as the node wrote it, for the
        canonical encodings the node uses)."""
        import msgpack

        return msgpack.packb(self.payload, use_bin_type=True)

    def typed(self) -> Any:
        """The payload as its dataclass (:data:`PAYLOADS`), or ``None`` for a
        type without one. Raises :class:`~blvm_module.schema.SchemaError` when a
        required field is missing or mistyped (skip that event, §10.2)."""
        cls = PAYLOADS.get(self.name)
        return None if cls is None else from_wire(cls, self.payload, self.name)


@dataclass
class MissedEvents:
    """Marker yielded by ``events(markers=True)`` before an event that
    follows a gap: ``count`` events (``after_seq`` + 1 … ``before_seq`` - 1)
    were dropped for this module."""
    count: int
    after_seq: int
    before_seq: int


def event_from_frame(frame: dict[str, Any], last_seq: int) -> Event:
    """Builds an :class:`Event` from a decoded ``event`` frame."""
    seq = frame["seq"]
    payload = frame.get("payload")
    if not isinstance(payload, dict):
        payload = {}
    durable = frame.get("durable")
    mark = None
    if isinstance(durable, dict):
        try:
            mark = from_wire(DurableMark, durable, "durable")
        except SchemaError:
            mark = None
    origin = frame.get("origin") if isinstance(frame.get("origin"), str) else None
    missed = seq - last_seq - 1 if seq > last_seq + 1 else 0
    return Event(frame["event"], seq, payload, origin, mark, missed)
