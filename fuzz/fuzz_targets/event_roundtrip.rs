//! Structure-aware events of every event type of the catalogue, and of
//! names it does not know, each payload built by its type's own
//! `Deserialize` from the fuzz bytes (`blvm_fuzz::arb`), so that every
//! input is a valid event. Properties: `decode(encode(event)) == event`
//! (`Event::decode`, as the SDK decodes a payload); the event frame that
//! carries it (with or without `origin`, or with a durable mark) goes
//! through the codec and `Frame::decode` to the same sequence number,
//! name, origin, durable mark, payload and event; and the decoded frame re-encodes to the very same bytes.
//!
//! The match below names every event type: one added to the catalogue
//! fails to compile here until it is added (as one line).
#![no_main]

use std::collections::BTreeMap;

use blvm_fuzz::arb::{Error, Source};
use blvm_module_protocol::codec::FrameDecoder;
use blvm_module_protocol::events::{self, Event, EventType};
use blvm_module_protocol::frame::{encode, Frame};
use blvm_module_protocol::DurableMark;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

macro_rules! catalogue {
    ($($name:ident,)+) => {
        /// An event of type `ty`, its payload from `src`.
        fn generate(ty: EventType, src: &mut Source<'_>) -> Result<Event, Error> {
            Ok(match ty {
                $(EventType::$name => Event::$name(src.value::<events::$name>()?.0),)+
            })
        }
    };
}

catalogue! {
    NewBlock, NewTransaction, BlockDisconnected, ChainReorg, PaymentRequestCreated, PaymentSettled,
    PaymentFailed, PaymentVerified, PaymentRouteFound, PaymentRouteFailed, ModulePurchaseCompleted,
    ChannelOpened, ChannelClosed, BlockMined, BlockTemplateUpdated, MiningDifficultyChanged,
    MiningJobCreated, ShareSubmitted, MergeMiningReward, MiningPoolConnected,
    MiningPoolDisconnected, ActionExecuted, MeshPacketReceived, StratumV2MessageReceived,
    StratumClientConnected, StratumClientDisconnected, ModuleLoaded, ModuleUnloaded,
    ModuleReloaded, ModuleStarted, ModuleStopped, ModuleCrashed, ModuleHealthChanged,
    ModuleStateChanged, ModuleDiscovered, ModuleInstalled, ModuleUpdated, ModuleRemoved,
    ConfigLoaded, NodeStartupCompleted, NodeShutdown, NodeShutdownCompleted, DataMaintenance,
    MaintenanceStarted, MaintenanceCompleted, HealthCheck, DiskSpaceLow, ResourceLimitWarning,
    GovernanceProposalCreated, GovernanceProposalVoted, GovernanceProposalMerged,
    EconomicNodeRegistered, EconomicNodeStatus, EconomicNodeForkDecision, EconomicNodeVeto,
    VetoThresholdReached, GovernanceForkDetected, WebhookSent, WebhookFailed, PeerConnected,
    PeerDisconnected, PeerBanned, PeerUnbanned, MessageReceived, MessageSent, BroadcastStarted,
    BroadcastCompleted, RouteDiscovered, RouteFailed, ConnectionAttempt, AddressDiscovered,
    AddressExpired, NetworkPartition, NetworkReconnected, DoSAttackDetected, RateLimitExceeded,
    BlockValidationStarted, BlockValidationCompleted, ScriptVerificationStarted,
    ScriptVerificationCompleted, UTXOValidationStarted, UTXOValidationCompleted,
    DifficultyAdjusted, SoftForkActivated, SoftForkLockedIn, ConsensusRuleViolation,
    HeadersSyncStarted, HeadersSyncProgress, HeadersSyncCompleted, BlockSyncStarted,
    BlockSyncProgress, BlockSyncCompleted, SyncStateChanged, SelectiveSyncPolicyApplied,
    IBDBlockFiltered, MempoolTransactionAdded, MempoolTransactionRemoved, MempoolThresholdExceeded,
    FeeRateChanged, MempoolCleared, StorageRead, StorageWrite, StorageQuery, DatabaseBackupStarted,
    DatabaseBackupCompleted, DandelionStemStarted, DandelionStemAdvanced, DandelionFluffed,
    DandelionStemPathExpired, CompactBlockReceived, BlockReconstructionStarted,
    BlockReconstructionCompleted, FibreBlockEncoded, FibreBlockSent, FibrePeerRegistered,
    CompanionUdpPeerRegistered, CompanionUdpPeerUnregistered, PackageReceived, PackageRejected,
    UtxoCommitmentReceived, UtxoCommitmentVerified, BanListShared, BanListReceived,
}

/// Names for an event this build does not know.
fn dict(_field: &str, _key: bool) -> &'static [&'static str] {
    &["block-stats.summary", "some-module.Custom", "NewBlockV2", "", "."]
}

/// An event under a name the catalogue does not have: a map of anything.
fn unknown(src: &mut Source<'_>) -> Option<Event> {
    let (name, _) = src.value::<String>().ok()?;
    if EventType::from_name(&name).is_some() {
        return None;
    }
    let (fields, _) = src.value::<BTreeMap<String, serde_json::Value>>().ok()?;
    let mut payload = Vec::new();
    encode::body(&mut payload, "payload", &fields).expect("a map of JSON values encodes");
    Some(Event::Unknown {
        name,
        payload: Bytes::from(payload),
    })
}

fuzz_target!(|data: &[u8]| {
    let mut src = Source::new(data, dict);
    let Ok(pick) = src.unstructured().arbitrary::<u8>() else {
        return;
    };
    let all = EventType::ALL;
    let event = match all.get(usize::from(pick) % (all.len() + 1)) {
        Some(&ty) => match generate(ty, &mut src) {
            Ok(event) => event,
            Err(_) => return,
        },
        None => match unknown(&mut src) {
            Some(event) => event,
            None => return,
        },
    };
    let seq: u64 = src.unstructured().arbitrary().unwrap_or(0);
    let origin: Option<String> = src.value().map(|(o, _)| o).unwrap_or(None);
    // A durable event is the node's own: no origin.
    let durable: Option<DurableMark> = match origin {
        None => src.value().map(|(d, _)| d).unwrap_or(None),
        Some(_) => None,
    };

    // The payload.
    let mut payload = Vec::new();
    event.encode_payload(&mut payload).expect("a payload encodes");
    let decoded = Event::decode(event.name(), &payload).expect("an encoded payload decodes");
    assert_eq!(decoded, event, "decode(encode(event)) == event");

    // The frame that carries it, through the codec.
    let mut wire = Vec::new();
    match (&origin, &durable) {
        (None, None) => encode::event_raw(&mut wire, seq, event.name(), &payload),
        (Some(origin), _) => encode::event_from(&mut wire, seq, event.name(), origin, &payload),
        (None, Some(mark)) => {
            encode::event_durable(&mut wire, seq, event.name(), &payload, mark).expect("a durable mark encodes")
        }
    }
    let mut buf = BytesMut::from(&wire[..]);
    let frame = FrameDecoder::default()
        .next_frame(&mut buf)
        .expect("an encoded event frame decodes")
        .expect("an encoded event frame is complete");
    assert!(buf.is_empty(), "one frame is one frame");
    let Frame::Event(delivered) = &frame else {
        panic!("an event frame decodes as an event: {frame:?}");
    };
    assert_eq!(delivered.seq, seq);
    assert_eq!(delivered.name, event.name());
    assert_eq!(delivered.origin, origin);
    assert_eq!(delivered.durable, durable);
    assert_eq!(delivered.payload, payload);
    assert_eq!(delivered.event().expect("the delivered event decodes"), event);

    // The decoded frame re-encodes to the same bytes.
    let mut again = Vec::new();
    frame.encode(&mut again).expect("a decoded frame re-encodes");
    assert_eq!(again, wire, "encode(decode(frame)) == frame");
});
