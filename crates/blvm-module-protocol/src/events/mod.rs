//! The event catalogue: every event type the node and modules publish, the
//! payload each carries, and who may subscribe to it and publish it.
//!
//! # Wire form
//!
//! An event frame carries `event`, the event's name (the [`EventType`]
//! variant name, e.g. `"NewBlock"`), and `payload`, a MessagePack **map**
//! keyed by field name (the payload struct encoded with
//! [`rmp_serde::encode::write_named`]). Hashes are `bin` of 32 bytes in
//! internal byte order ([`Hash32`](crate::hash::Hash32)); blocks, headers
//! and transactions are `bin` holding their consensus serialization. The
//! frame's other fields (such as the delivery sequence number) belong to
//! the frame, not to the payload: see `docs/ipc-protocol.md`.
//!
//! # Compatibility
//!
//! Names, not positions, identify events and fields, so the catalogue can
//! grow without breaking a module built against an older one:
//!
//! - an event whose name this build does not know decodes as
//!   [`Event::Unknown`], which keeps the raw payload and re-encodes it
//!   byte for byte;
//! - a field this build does not know is ignored (no payload uses
//!   `deny_unknown_fields`);
//! - a missing `Option` field decodes as `None`, so new fields must be
//!   added as `Option`; adding a required field, or removing or renaming
//!   one, is a breaking change;
//! - [`EventType::index`] and the order of [`EventType::ALL`] never travel
//!   on the wire: they exist for array-indexed subscriber tables and may
//!   change between builds.
//!
//! Kinds, reasons and states inside payloads are documented strings rather
//! than enums, for the same reason: a new value must not make an older
//! module fail to decode the whole event.
//!
//! # Who may subscribe, who may publish
//!
//! Subscribing needs `subscribe_events` plus the permission of the event's
//! [`EventCategory`] ([`EventType::required_permission`]). Events the node
//! observes itself (chain, consensus, mempool, sync, network as the node
//! sees it, lifecycle, configuration, maintenance, resources, storage) are
//! [`EventType::is_node_only`]: a module's `PublishEvent` must never carry
//! them. The others are published by modules (payments, Lightning, mining
//! pools, governance, FIBRE ...).
//!
//! # Adding an event
//!
//! 1. Write its payload struct in the file of its category (`blockchain.rs`,
//!    `mempool.rs` ...), with a doc on the struct and on every field.
//! 2. Add one line to the table at the bottom of this file: doc, name,
//!    payload type, category, and `node` or `any` for who may publish it.
//! 3. Add its row to `docs/events.md` (a test compares that page with the
//!    table and the payload's fields, and fails until the row is right).
//!
//! [`EventType`], [`Event`], the name tables and the decode dispatch are
//! generated from the table; the tests in `tests.rs` check every entry.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::permissions::Permission;

mod category;

mod ban_list;
mod blockchain;
mod compact_blocks;
mod configuration;
mod consensus;
mod dandelion;
mod fibre;
mod governance;
mod lightning;
mod maintenance;
mod mempool;
mod mesh;
mod mining;
mod module_lifecycle;
mod network;
mod node_lifecycle;
mod package_relay;
mod payment;
mod resource;
mod storage;
mod stratum_v2;
mod sync;
mod utxo_commitments;

#[cfg(test)]
mod tests;

pub use self::category::EventCategory;

pub use self::ban_list::*;
pub use self::blockchain::*;
pub use self::compact_blocks::*;
pub use self::configuration::*;
pub use self::consensus::*;
pub use self::dandelion::*;
pub use self::fibre::*;
pub use self::governance::*;
pub use self::lightning::*;
pub use self::maintenance::*;
pub use self::mempool::*;
pub use self::mesh::*;
pub use self::mining::*;
pub use self::module_lifecycle::*;
pub use self::network::*;
pub use self::node_lifecycle::*;
pub use self::package_relay::*;
pub use self::payment::*;
pub use self::resource::*;
pub use self::storage::*;
pub use self::stratum_v2::*;
pub use self::sync::*;
pub use self::utxo_commitments::*;

/// `node` in the table: only the node may publish the event; `any`: a
/// module holding `publish_events` may publish it too.
macro_rules! node_only {
    (node) => {
        true
    };
    (any) => {
        false
    };
}

/// Generates [`EventType`], [`Event`] and their tables from the catalogue
/// at the bottom of this file, one line per event.
macro_rules! event_catalogue {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident($module:ident::$payload:ident) => $category:ident, $publisher:ident;
    )+) => {
        /// The type of an event: what a module subscribes to.
        ///
        /// On the wire an event type is its name, the variant name
        /// (`"NewBlock"`); see the [module docs](self) for the rules.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($(#[doc = $doc])+ $name,)+
        }

        impl EventType {
            /// Every event type, in catalogue order (`ALL[t.index()] == t`).
            pub const ALL: &'static [EventType] = &[$(EventType::$name,)+];

            /// The number of event types.
            pub const COUNT: usize = EventType::ALL.len();

            /// A dense index in `0..COUNT`, for array-indexed subscriber
            /// tables. Local to this build: never send it on the wire.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The wire name, e.g. `"NewBlock"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(EventType::$name => stringify!($name),)+
                }
            }

            /// The event type with this wire name; `None` for a name this
            /// build does not know.
            pub fn from_name(name: &str) -> Option<EventType> {
                match name {
                    $(stringify!($name) => Some(EventType::$name),)+
                    _ => None,
                }
            }

            /// The category the event belongs to.
            pub const fn category(self) -> EventCategory {
                match self {
                    $(EventType::$name => EventCategory::$category,)+
                }
            }

            /// Whether only the node may publish this event. A module's
            /// `PublishEvent` carrying such an event must be refused: it
            /// would let the module forge node state.
            pub const fn is_node_only(self) -> bool {
                match self {
                    $(EventType::$name => node_only!($publisher),)+
                }
            }
        }

        /// An event with its payload: one variant per [`EventType`], plus
        /// [`Event::Unknown`] for event types this build does not know.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $($(#[doc = $doc])+ $name($module::$payload),)+
            /// An event type this build does not know (a newer node or
            /// module sent it). Kept so that it can be logged, counted or
            /// forwarded unchanged.
            Unknown {
                /// The event's wire name.
                name: String,
                /// The payload exactly as received: one MessagePack map.
                payload: Bytes,
            },
        }

        impl Event {
            /// The event's type; `None` for [`Event::Unknown`].
            pub fn event_type(&self) -> Option<EventType> {
                match self {
                    $(Event::$name(_) => Some(EventType::$name),)+
                    Event::Unknown { .. } => None,
                }
            }

            /// Appends the payload to `out` as a MessagePack map with field
            /// names. [`Event::Unknown`] writes its raw bytes back unchanged.
            ///
            /// # Errors
            ///
            /// Only if a payload's `Serialize` fails, which the payload
            /// types in this module never do; `out` may then hold a partial
            /// payload.
            pub fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), rmp_serde::encode::Error> {
                match self {
                    $(Event::$name(payload) => rmp_serde::encode::write_named(out, payload),)+
                    Event::Unknown { payload, .. } => {
                        out.extend_from_slice(payload);
                        Ok(())
                    }
                }
            }

            /// Decodes the payload of an event named `name`.
            ///
            /// An unknown name gives [`Event::Unknown`] holding a copy of
            /// `payload`. Fields the payload type does not know are
            /// ignored; a missing `Option` field is `None`.
            ///
            /// # Errors
            ///
            /// If `payload` is not exactly one MessagePack map (nothing may
            /// follow it), if a required field is missing, or if a field
            /// has the wrong type (e.g. a hash that is not 32 bytes).
            pub fn decode(name: &str, payload: &[u8]) -> Result<Event, rmp_serde::decode::Error> {
                expect_map(payload)?;
                match name {
                    $(stringify!($name) => decode_payload(payload).map(Event::$name),)+
                    _ => {
                        // Walk the value once so that an Unknown event holds
                        // exactly one well-formed map: it is re-encoded
                        // verbatim into other frames.
                        decode_payload::<IgnoredAny>(payload)?;
                        Ok(Event::Unknown {
                            name: name.to_owned(),
                            payload: Bytes::copy_from_slice(payload),
                        })
                    }
                }
            }
        }

        $(
            impl From<$module::$payload> for Event {
                fn from(payload: $module::$payload) -> Event {
                    Event::$name(payload)
                }
            }
        )+

        #[cfg(test)]
        impl Event {
            /// An event of type `event_type` with every field filled in
            /// (every `Option` is `Some`, every list has an element).
            pub(crate) fn sample(event_type: EventType) -> Event {
                match event_type {
                    $(EventType::$name => Event::$name(tests::sample_payload()),)+
                }
            }
        }
    };
}

impl EventType {
    /// The permission a module needs, in addition to `subscribe_events`,
    /// to subscribe to this event; `None` when `subscribe_events` is
    /// enough. Decided by the event's category
    /// ([`EventCategory::required_permission`]).
    pub const fn required_permission(self) -> Option<Permission> {
        self.category().required_permission()
    }
}

impl Event {
    /// The event's wire name (for [`Event::Unknown`], the name received).
    pub fn name(&self) -> &str {
        match self {
            Event::Unknown { name, .. } => name,
            known => known
                .event_type()
                .expect("every variant but Unknown has an event type")
                .name(),
        }
    }
}

/// Refuses anything but a map before decoding: serde would also accept the
/// positional (array) form of a struct, which the protocol does not allow.
fn expect_map(payload: &[u8]) -> Result<(), rmp_serde::decode::Error> {
    match payload.first() {
        Some(0x80..=0x8f | 0xde | 0xdf) => Ok(()),
        Some(&byte) => Err(rmp_serde::decode::Error::TypeMismatch(rmp::Marker::from_u8(byte))),
        None => Err(rmp_serde::decode::Error::Syntax("empty event payload".to_owned())),
    }
}

/// Decodes one value that must span the whole of `payload`.
///
/// The extent is checked with the envelope's skipper and the value decoded
/// from the borrowed slice: decoding through `io::Read` instead copies
/// every key into a scratch buffer, which doubled the cost of an event.
fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    let mut reader = crate::msgpack::Reader::new(payload);
    let extent = reader
        .skip_value()
        .map_err(|e| rmp_serde::decode::Error::Syntax(format!("malformed event payload: {e}")))?;
    if extent.end != payload.len() {
        return Err(rmp_serde::decode::Error::Syntax(format!(
            "{} trailing bytes after the event payload",
            payload.len() - extent.end
        )));
    }
    rmp_serde::from_slice(payload)
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for an event name this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{name}`")]
pub struct UnknownEventTypeError {
    /// The name that was given.
    pub name: String,
}

impl FromStr for EventType {
    type Err = UnknownEventTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::from_name(s).ok_or_else(|| UnknownEventTypeError { name: s.to_owned() })
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl serde::de::Visitor<'_> for NameVisitor {
            type Value = EventType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event type name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EventType, E> {
                EventType::from_name(v).ok_or_else(|| E::custom(format!("unknown event type `{v}`")))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

event_catalogue! {
    // --- Core blockchain (seed: Core Blockchain Events) -------------------
    /// Block connected to chain.
    NewBlock(blockchain::NewBlock) => Blockchain, node;
    /// Transaction in mempool.
    NewTransaction(blockchain::NewTransaction) => Blockchain, node;
    /// Block disconnected (reorg).
    BlockDisconnected(blockchain::BlockDisconnected) => Blockchain, node;
    /// Chain reorganization.
    ChainReorg(blockchain::ChainReorg) => Blockchain, node;

    // --- Payment (seed: Payment Events) ------------------------------------
    /// Payment request created.
    PaymentRequestCreated(payment::PaymentRequestCreated) => Payment, any;
    /// Payment settled (confirmed on-chain).
    PaymentSettled(payment::PaymentSettled) => Payment, any;
    /// Payment failed.
    PaymentFailed(payment::PaymentFailed) => Payment, any;
    /// Lightning payment verified.
    PaymentVerified(payment::PaymentVerified) => Payment, any;
    /// Payment route discovered.
    PaymentRouteFound(payment::PaymentRouteFound) => Payment, any;
    /// Payment routing failed.
    PaymentRouteFailed(payment::PaymentRouteFailed) => Payment, any;
    /// Paid module bought from the marketplace.
    ModulePurchaseCompleted(payment::ModulePurchaseCompleted) => Payment, any;
    /// Lightning channel opened.
    ChannelOpened(lightning::ChannelOpened) => Lightning, any;
    /// Lightning channel closed.
    ChannelClosed(lightning::ChannelClosed) => Lightning, any;

    // --- Mining (seed: Mining Events) --------------------------------------
    /// Block mined successfully.
    BlockMined(mining::BlockMined) => Mining, node;
    /// Block template updated.
    BlockTemplateUpdated(mining::BlockTemplateUpdated) => Mining, node;
    /// Mining difficulty changed.
    MiningDifficultyChanged(mining::MiningDifficultyChanged) => Mining, node;
    /// Mining job created.
    MiningJobCreated(mining::MiningJobCreated) => Mining, any;
    /// Mining share submitted.
    ShareSubmitted(mining::ShareSubmitted) => Mining, any;
    /// Merge mining reward received.
    MergeMiningReward(mining::MergeMiningReward) => Mining, any;
    /// Mining pool connected.
    MiningPoolConnected(mining::MiningPoolConnected) => Mining, any;
    /// Mining pool disconnected.
    MiningPoolDisconnected(mining::MiningPoolDisconnected) => Mining, any;
    /// Mining operations action executed.
    ActionExecuted(mining::ActionExecuted) => Mining, any;

    // --- Mesh networking and Stratum V2 ------------------------------------
    /// Mesh packet received from network.
    MeshPacketReceived(mesh::MeshPacketReceived) => MeshNetworking, node;
    /// Stratum V2 message received from network.
    StratumV2MessageReceived(stratum_v2::StratumV2MessageReceived) => StratumV2, any;
    /// Stratum V2 miner connected.
    StratumClientConnected(stratum_v2::StratumClientConnected) => StratumV2, any;
    /// Stratum V2 miner disconnected.
    StratumClientDisconnected(stratum_v2::StratumClientDisconnected) => StratumV2, any;

    // --- Module lifecycle and registry (seed: Module Lifecycle Events) -----
    /// Module loaded (published after subscription; replayed at subscription).
    ModuleLoaded(module_lifecycle::ModuleLoaded) => ModuleLifecycle, node;
    /// Module unloaded.
    ModuleUnloaded(module_lifecycle::ModuleUnloaded) => ModuleLifecycle, node;
    /// Module reloaded.
    ModuleReloaded(module_lifecycle::ModuleReloaded) => ModuleLifecycle, node;
    /// Module process started.
    ModuleStarted(module_lifecycle::ModuleStarted) => ModuleLifecycle, node;
    /// Module process stopped.
    ModuleStopped(module_lifecycle::ModuleStopped) => ModuleLifecycle, node;
    /// Module crashed.
    ModuleCrashed(module_lifecycle::ModuleCrashed) => ModuleLifecycle, node;
    /// Module health status changed.
    ModuleHealthChanged(module_lifecycle::ModuleHealthChanged) => ModuleLifecycle, node;
    /// Module state changed.
    ModuleStateChanged(module_lifecycle::ModuleStateChanged) => ModuleLifecycle, node;
    /// Module discovered.
    ModuleDiscovered(module_lifecycle::ModuleDiscovered) => ModuleLifecycle, node;
    /// Module installed.
    ModuleInstalled(module_lifecycle::ModuleInstalled) => ModuleLifecycle, node;
    /// Module updated.
    ModuleUpdated(module_lifecycle::ModuleUpdated) => ModuleLifecycle, node;
    /// Module removed.
    ModuleRemoved(module_lifecycle::ModuleRemoved) => ModuleLifecycle, node;

    // --- Configuration, node lifecycle, maintenance, resources -------------
    /// Node configuration loaded/changed (the latest is replayed at subscription).
    ConfigLoaded(configuration::ConfigLoaded) => Configuration, node;
    /// Node fully operational (replayed at subscription).
    NodeStartupCompleted(node_lifecycle::NodeStartupCompleted) => NodeLifecycle, node;
    /// Node shutting down.
    NodeShutdown(node_lifecycle::NodeShutdown) => NodeLifecycle, node;
    /// Shutdown complete, every module unloaded (so no module receives it).
    NodeShutdownCompleted(node_lifecycle::NodeShutdownCompleted) => NodeLifecycle, node;
    /// Unified cleanup/flush event (replaces StorageFlush + DataCleanup).
    DataMaintenance(maintenance::DataMaintenance) => Maintenance, node;
    /// Maintenance started.
    MaintenanceStarted(maintenance::MaintenanceStarted) => Maintenance, node;
    /// Maintenance completed.
    MaintenanceCompleted(maintenance::MaintenanceCompleted) => Maintenance, node;
    /// Health check performed.
    HealthCheck(maintenance::HealthCheck) => Maintenance, node;
    /// Disk space low.
    DiskSpaceLow(resource::DiskSpaceLow) => Resource, node;
    /// Resource limit warning.
    ResourceLimitWarning(resource::ResourceLimitWarning) => Resource, node;

    // --- Governance (seed: Governance Events) ------------------------------
    /// Proposal created.
    GovernanceProposalCreated(governance::GovernanceProposalCreated) => Governance, any;
    /// Vote cast.
    GovernanceProposalVoted(governance::GovernanceProposalVoted) => Governance, any;
    /// Proposal merged.
    GovernanceProposalMerged(governance::GovernanceProposalMerged) => Governance, any;
    /// Economic node registered.
    EconomicNodeRegistered(governance::EconomicNodeRegistered) => Governance, any;
    /// Economic node status query/response.
    EconomicNodeStatus(governance::EconomicNodeStatus) => Governance, any;
    /// Economic node fork decision.
    EconomicNodeForkDecision(governance::EconomicNodeForkDecision) => Governance, any;
    /// Economic node veto signal.
    EconomicNodeVeto(governance::EconomicNodeVeto) => Governance, any;
    /// Veto threshold reached.
    VetoThresholdReached(governance::VetoThresholdReached) => Governance, any;
    /// Governance fork detected.
    GovernanceForkDetected(governance::GovernanceForkDetected) => Governance, any;
    /// Webhook sent.
    WebhookSent(governance::WebhookSent) => Governance, any;
    /// Webhook delivery failed.
    WebhookFailed(governance::WebhookFailed) => Governance, any;

    // --- Network (seed: Network Events) ------------------------------------
    /// Peer connected.
    PeerConnected(network::PeerConnected) => Network, node;
    /// Peer disconnected.
    PeerDisconnected(network::PeerDisconnected) => Network, node;
    /// Peer banned.
    PeerBanned(network::PeerBanned) => Network, node;
    /// Peer unbanned.
    PeerUnbanned(network::PeerUnbanned) => Network, node;
    /// Network message received.
    MessageReceived(network::MessageReceived) => Network, node;
    /// Network message sent.
    MessageSent(network::MessageSent) => Network, node;
    /// Broadcast started.
    BroadcastStarted(network::BroadcastStarted) => Network, node;
    /// Broadcast completed.
    BroadcastCompleted(network::BroadcastCompleted) => Network, node;
    /// Route discovered (mesh routing).
    RouteDiscovered(network::RouteDiscovered) => Network, any;
    /// Route failed (mesh routing).
    RouteFailed(network::RouteFailed) => Network, any;
    /// Connection attempt (success/failure).
    ConnectionAttempt(network::ConnectionAttempt) => Network, node;
    /// New peer address discovered.
    AddressDiscovered(network::AddressDiscovered) => Network, node;
    /// Peer address expired.
    AddressExpired(network::AddressExpired) => Network, node;
    /// Network partition detected.
    NetworkPartition(network::NetworkPartition) => Network, node;
    /// Network partition reconnected.
    NetworkReconnected(network::NetworkReconnected) => Network, node;
    /// DoS attack detected.
    DoSAttackDetected(network::DoSAttackDetected) => Network, node;
    /// Rate limit exceeded.
    RateLimitExceeded(network::RateLimitExceeded) => Network, node;

    // --- Consensus (seed: Consensus Events) --------------------------------
    /// Block validation started.
    BlockValidationStarted(consensus::BlockValidationStarted) => Consensus, node;
    /// Block validation completed (success/failure).
    BlockValidationCompleted(consensus::BlockValidationCompleted) => Consensus, node;
    /// Script verification started.
    ScriptVerificationStarted(consensus::ScriptVerificationStarted) => Consensus, node;
    /// Script verification completed.
    ScriptVerificationCompleted(consensus::ScriptVerificationCompleted) => Consensus, node;
    /// UTXO validation started.
    UTXOValidationStarted(consensus::UTXOValidationStarted) => Consensus, node;
    /// UTXO validation completed.
    UTXOValidationCompleted(consensus::UTXOValidationCompleted) => Consensus, node;
    /// Network difficulty adjusted.
    DifficultyAdjusted(consensus::DifficultyAdjusted) => Consensus, node;
    /// Soft fork activated (SegWit, Taproot, CTV, etc.).
    SoftForkActivated(consensus::SoftForkActivated) => Consensus, node;
    /// Soft fork locked in (BIP9).
    SoftForkLockedIn(consensus::SoftForkLockedIn) => Consensus, node;
    /// Consensus rule violation detected.
    ConsensusRuleViolation(consensus::ConsensusRuleViolation) => Consensus, node;

    // --- Sync (seed: Sync Events) ------------------------------------------
    /// Headers sync started.
    HeadersSyncStarted(sync::HeadersSyncStarted) => Sync, node;
    /// Headers sync progress update.
    HeadersSyncProgress(sync::HeadersSyncProgress) => Sync, node;
    /// Headers sync completed.
    HeadersSyncCompleted(sync::HeadersSyncCompleted) => Sync, node;
    /// Block sync started (IBD).
    BlockSyncStarted(sync::BlockSyncStarted) => Sync, node;
    /// Block sync progress update.
    BlockSyncProgress(sync::BlockSyncProgress) => Sync, node;
    /// Block sync completed.
    BlockSyncCompleted(sync::BlockSyncCompleted) => Sync, node;
    /// Sync state changed (initial, headers, blocks, synced).
    SyncStateChanged(sync::SyncStateChanged) => Sync, node;
    /// Selective sync policy applied (by a selective sync module).
    SelectiveSyncPolicyApplied(sync::SelectiveSyncPolicyApplied) => Sync, any;
    /// Block filtered during IBD (selective sync, pruning).
    IBDBlockFiltered(sync::IBDBlockFiltered) => Sync, any;

    // --- Mempool (seed: Mempool Events) ------------------------------------
    /// Transaction added to mempool.
    MempoolTransactionAdded(mempool::MempoolTransactionAdded) => Mempool, node;
    /// Transaction removed from mempool.
    MempoolTransactionRemoved(mempool::MempoolTransactionRemoved) => Mempool, node;
    /// Mempool memory usage threshold exceeded.
    MempoolThresholdExceeded(mempool::MempoolThresholdExceeded) => Mempool, node;
    /// Fee rate changed.
    FeeRateChanged(mempool::FeeRateChanged) => Mempool, node;
    /// Mempool cleared.
    MempoolCleared(mempool::MempoolCleared) => Mempool, node;

    // --- Storage -----------------------------------------------------------
    /// Storage read operation.
    StorageRead(storage::StorageRead) => Storage, node;
    /// Storage write operation.
    StorageWrite(storage::StorageWrite) => Storage, node;
    /// Storage query operation.
    StorageQuery(storage::StorageQuery) => Storage, node;
    /// Database backup started.
    DatabaseBackupStarted(storage::DatabaseBackupStarted) => Storage, node;
    /// Database backup completed.
    DatabaseBackupCompleted(storage::DatabaseBackupCompleted) => Storage, node;

    // --- Dandelion++ -------------------------------------------------------
    /// Transaction entered stem phase.
    DandelionStemStarted(dandelion::DandelionStemStarted) => Dandelion, node;
    /// Transaction advanced in stem phase.
    DandelionStemAdvanced(dandelion::DandelionStemAdvanced) => Dandelion, node;
    /// Transaction transitioned to fluff phase.
    DandelionFluffed(dandelion::DandelionFluffed) => Dandelion, node;
    /// Stem path expired.
    DandelionStemPathExpired(dandelion::DandelionStemPathExpired) => Dandelion, node;

    // --- Compact blocks ----------------------------------------------------
    /// Compact block received.
    CompactBlockReceived(compact_blocks::CompactBlockReceived) => CompactBlocks, node;
    /// Block reconstruction started.
    BlockReconstructionStarted(compact_blocks::BlockReconstructionStarted) => CompactBlocks, node;
    /// Block reconstruction completed.
    BlockReconstructionCompleted(compact_blocks::BlockReconstructionCompleted) => CompactBlocks, node;

    // --- FIBRE -------------------------------------------------------------
    /// Block encoded for FIBRE.
    FibreBlockEncoded(fibre::FibreBlockEncoded) => Fibre, any;
    /// Block sent via FIBRE.
    FibreBlockSent(fibre::FibreBlockSent) => Fibre, any;
    /// FIBRE peer registered.
    FibrePeerRegistered(fibre::FibrePeerRegistered) => Fibre, any;
    /// Peer advertised a companion UDP endpoint (NODE_FIBRE).
    CompanionUdpPeerRegistered(fibre::CompanionUdpPeerRegistered) => Fibre, node;
    /// Peer's companion UDP endpoint gone.
    CompanionUdpPeerUnregistered(fibre::CompanionUdpPeerUnregistered) => Fibre, node;

    // --- Package relay, UTXO commitments, ban list sharing -----------------
    /// Transaction package received.
    PackageReceived(package_relay::PackageReceived) => PackageRelay, node;
    /// Transaction package rejected.
    PackageRejected(package_relay::PackageRejected) => PackageRelay, node;
    /// UTXO commitment received.
    UtxoCommitmentReceived(utxo_commitments::UtxoCommitmentReceived) => UtxoCommitments, node;
    /// UTXO commitment verified.
    UtxoCommitmentVerified(utxo_commitments::UtxoCommitmentVerified) => UtxoCommitments, node;
    /// Ban list shared with peer.
    BanListShared(ban_list::BanListShared) => BanList, node;
    /// Ban list received from peer.
    BanListReceived(ban_list::BanListReceived) => BanList, node;
}
