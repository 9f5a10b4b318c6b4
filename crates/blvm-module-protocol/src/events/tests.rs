//! Tests of the event catalogue: the name and index tables, the permission
//! and publisher rules, and the wire form of every payload.

use std::collections::{BTreeMap, HashSet};

use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::*;
use crate::hash::Hash32;

/// Every event the seed (`module-system.md`, "Event System") names,
/// spelled exactly as there.
const SEED_EVENTS: &[&str] = &[
    // Core Blockchain Events
    "NewBlock",
    "NewTransaction",
    "BlockDisconnected",
    "ChainReorg",
    // Payment Events
    "PaymentRequestCreated",
    "PaymentSettled",
    "PaymentFailed",
    "PaymentVerified",
    "PaymentRouteFound",
    "PaymentRouteFailed",
    "ChannelOpened",
    "ChannelClosed",
    // Mining Events
    "BlockMined",
    "BlockTemplateUpdated",
    "MiningDifficultyChanged",
    "MiningJobCreated",
    "ShareSubmitted",
    "MergeMiningReward",
    "MiningPoolConnected",
    "MiningPoolDisconnected",
    // Mesh Networking Events
    "MeshPacketReceived",
    // Stratum V2 Events
    "StratumV2MessageReceived",
    // Module Lifecycle Events
    "ModuleLoaded",
    "ModuleUnloaded",
    "ModuleCrashed",
    "ModuleDiscovered",
    "ModuleInstalled",
    "ModuleUpdated",
    "ModuleRemoved",
    // Configuration Events
    "ConfigLoaded",
    // Node Lifecycle Events
    "NodeStartupCompleted",
    "NodeShutdown",
    "NodeShutdownCompleted",
    // Maintenance Events
    "DataMaintenance",
    "MaintenanceStarted",
    "MaintenanceCompleted",
    "HealthCheck",
    // Resource Management Events
    "DiskSpaceLow",
    "ResourceLimitWarning",
    // Governance Events
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
    // Network Events
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
    // Consensus Events
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
    // Sync Events
    "HeadersSyncStarted",
    "HeadersSyncProgress",
    "HeadersSyncCompleted",
    "BlockSyncStarted",
    "BlockSyncProgress",
    "BlockSyncCompleted",
    // Mempool Events
    "MempoolTransactionAdded",
    "MempoolTransactionRemoved",
    "FeeRateChanged",
    // Additional Event Categories
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
    "PackageReceived",
    "PackageRejected",
    "UtxoCommitmentReceived",
    "UtxoCommitmentVerified",
    "BanListShared",
    "BanListReceived",
];

/// Events of the earlier implementation that the seed does not list by
/// name; kept so that its modules find them.
const EARLIER_IMPLEMENTATION_EVENTS: &[&str] = &[
    "SyncStateChanged",
    "MempoolThresholdExceeded",
    "MempoolCleared",
    "StorageRead",
    "StorageWrite",
    "StorageQuery",
    "DatabaseBackupStarted",
    "DatabaseBackupCompleted",
    "ModuleReloaded",
    "ModuleStarted",
    "ModuleStopped",
    "ModuleHealthChanged",
    "ModuleStateChanged",
    "CompanionUdpPeerRegistered",
    "CompanionUdpPeerUnregistered",
    "SelectiveSyncPolicyApplied",
    "ActionExecuted",
    "ModulePurchaseCompleted",
    "StratumClientConnected",
    "StratumClientDisconnected",
    "IBDBlockFiltered",
];

// ---------------------------------------------------------------------------
// Sample values: a deserializer that fills in any payload type
// ---------------------------------------------------------------------------

/// A payload of type `T` with every field filled in, built through `T`'s
/// own `Deserialize` so that a new payload type needs no test code.
pub(super) fn sample_payload<T: DeserializeOwned>() -> T {
    T::deserialize(Sample).expect("payload types hold only fields Sample can fill")
}

/// A deserializer that answers every request with one fixed value of the
/// requested type: numbers beyond 32 bits where the type allows, `Some`,
/// one-element lists, and 32 bytes for `bin` (so that a `Hash32` accepts it).
struct Sample;

type SampleError = de::value::Error;

macro_rules! sample_numbers {
    ($($method:ident => $visit:ident($value:expr);)+) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SampleError> {
            visitor.$visit($value)
        })+
    };
}

impl<'de> Deserializer<'de> for Sample {
    type Error = SampleError;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, SampleError> {
        Err(de::Error::custom("Sample needs a type hint"))
    }

    sample_numbers! {
        deserialize_bool => visit_bool(true);
        deserialize_u8 => visit_u8(0xab);
        deserialize_u16 => visit_u16(0xabcd);
        deserialize_u32 => visit_u32(0xdead_beef);
        deserialize_u64 => visit_u64(0x0123_4567_89ab_cdef);
        deserialize_i8 => visit_i8(-8);
        deserialize_i16 => visit_i16(-1600);
        deserialize_i32 => visit_i32(-9);
        deserialize_i64 => visit_i64(-64_000_000_000);
        deserialize_f32 => visit_f32(1.5);
        deserialize_f64 => visit_f64(12.345_678_9);
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SampleError> {
        visitor.visit_str("sample ✓")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SampleError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SampleError> {
        let bytes: Vec<u8> = (1..=32).collect();
        visitor.visit_bytes(&bytes)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SampleError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SampleError> {
        visitor.visit_some(Sample)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SampleError> {
        visitor.visit_seq(OneElement(true))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SampleError> {
        visitor.visit_map(Fields(fields.iter()))
    }

    serde::forward_to_deserialize_any! {
        char unit unit_struct newtype_struct tuple tuple_struct map enum identifier ignored_any
    }
}

/// A sequence of one sample element.
struct OneElement(bool);

impl<'de> de::SeqAccess<'de> for OneElement {
    type Error = SampleError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, SampleError> {
        if std::mem::take(&mut self.0) {
            seed.deserialize(Sample).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A struct's fields, each with a sample value.
struct Fields(std::slice::Iter<'static, &'static str>);

impl<'de> de::MapAccess<'de> for Fields {
    type Error = SampleError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, SampleError> {
        match self.0.next() {
            Some(field) => seed.deserialize((*field).into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, SampleError> {
        seed.deserialize(Sample)
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn encode(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    event
        .encode_payload(&mut out)
        .unwrap_or_else(|e| panic!("encoding {} failed: {e}", event.name()));
    out
}

fn named<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("test values serialize")
}

/// The entries of an encoded map: each field name with the raw bytes of
/// its key and value.
fn map_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut rest = bytes;
    let len = rmp::decode::read_map_len(&mut rest).expect("a map");
    (0..len)
        .map(|_| {
            let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(rest));
            let key = String::deserialize(&mut de).expect("string keys");
            de::IgnoredAny::deserialize(&mut de).expect("a value");
            let (entry, tail) = rest.split_at(de.position() as usize);
            rest = tail;
            (key, entry.to_vec())
        })
        .collect()
}

/// The payload of `entries` with field `index` set to the raw MessagePack
/// `value`, or left out when `value` is `None`.
fn with_field(entries: &[(String, Vec<u8>)], index: usize, value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let len = entries.len() - usize::from(value.is_none());
    rmp::encode::write_map_len(&mut out, len as u32).unwrap();
    for (i, (key, raw)) in entries.iter().enumerate() {
        if i != index {
            out.extend_from_slice(raw);
        } else if let Some(value) = value {
            rmp::encode::write_str(&mut out, key).unwrap();
            out.extend_from_slice(value);
        }
    }
    out
}

/// Whether `event_type` decodes with field `index` set to `value`.
fn accepts(event_type: EventType, entries: &[(String, Vec<u8>)], index: usize, value: &[u8]) -> bool {
    Event::decode(event_type.name(), &with_field(entries, index, Some(value))).is_ok()
}

/// The wire type of field `index`, in the notation of docs/events.md,
/// told from the sample value's MessagePack marker and from which values
/// the field accepts.
fn wire_type(event_type: EventType, entries: &[(String, Vec<u8>)], index: usize) -> String {
    let (key, raw) = &entries[index];
    let value = &raw[rmp_serde::to_vec(key).unwrap().len()..];
    let base = match value[0] {
        0xc4 if accepts(event_type, entries, index, &[0xc4, 3, 1, 2, 3]) => "bin",
        0xc4 => "hash",
        0xa0..=0xbf | 0xd9 => "str",
        0xce => "u32",
        0xcf => "u64",
        0xe0..=0xff => "i32",
        0xcb => "f64",
        0xc3 => "bool",
        0x91 if (0xa0..=0xbf).contains(&value[1]) => "[str]",
        other => panic!("{event_type}.{key}: no doc notation for marker {other:#04x}"),
    };
    if accepts(event_type, entries, index, &[0xc0]) {
        format!("{base}?")
    } else {
        base.to_owned()
    }
}

fn new_block() -> NewBlock {
    NewBlock {
        block_hash: Hash32([0x11; 32]),
        height: 256,
        header: vec![0x22; 80],
    }
}

// ---------------------------------------------------------------------------
// Name and index tables
// ---------------------------------------------------------------------------

#[test]
fn names_are_unique_and_round_trip() {
    let mut seen = HashSet::new();
    for &event_type in EventType::ALL {
        let name = event_type.name();
        assert!(seen.insert(name), "duplicate event name {name}");
        assert_eq!(EventType::from_name(name), Some(event_type));
        assert_eq!(name.parse::<EventType>(), Ok(event_type));
        assert_eq!(event_type.to_string(), name);
        assert_eq!(format!("{event_type:?}"), name, "wire name is the variant name");
    }
    assert_eq!(seen.len(), EventType::COUNT);
}

#[test]
fn index_is_dense_and_matches_position() {
    assert_eq!(EventType::ALL.len(), EventType::COUNT);
    for (position, &event_type) in EventType::ALL.iter().enumerate() {
        assert_eq!(event_type.index(), position, "{event_type}");
    }
}

#[test]
fn unknown_names_are_not_event_types() {
    for name in ["", "newblock", "NewBlock ", "Unknown", "FutureEvent"] {
        assert_eq!(EventType::from_name(name), None, "{name:?}");
    }
    let err = "newblock".parse::<EventType>().unwrap_err();
    assert_eq!(err.name, "newblock");
    assert_eq!(err.to_string(), "unknown event type `newblock`");
}

#[test]
fn every_event_the_seed_names_exists() {
    let missing: Vec<&str> = SEED_EVENTS
        .iter()
        .copied()
        .filter(|name| EventType::from_name(name).is_none())
        .collect();
    assert!(missing.is_empty(), "seed events missing: {missing:?}");
}

#[test]
fn events_of_the_earlier_implementation_are_kept() {
    let missing: Vec<&str> = EARLIER_IMPLEMENTATION_EVENTS
        .iter()
        .copied()
        .filter(|name| EventType::from_name(name).is_none())
        .collect();
    assert!(missing.is_empty(), "events missing: {missing:?}");
}

#[test]
fn catalogue_is_the_seed_plus_the_earlier_extras() {
    let expected: HashSet<&str> = SEED_EVENTS
        .iter()
        .chain(EARLIER_IMPLEMENTATION_EVENTS)
        .copied()
        .collect();
    assert_eq!(expected.len(), SEED_EVENTS.len() + EARLIER_IMPLEMENTATION_EVENTS.len());
    let actual: HashSet<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(actual, expected);
    assert_eq!(EventType::COUNT, 123);
}

#[test]
fn event_type_travels_as_its_name() {
    let bytes = rmp_serde::to_vec(&EventType::UTXOValidationStarted).unwrap();
    assert_eq!(bytes, rmp_serde::to_vec("UTXOValidationStarted").unwrap());
    assert_eq!(
        rmp_serde::from_slice::<EventType>(&bytes).unwrap(),
        EventType::UTXOValidationStarted
    );
    let list = rmp_serde::to_vec(&["NewBlock", "DoSAttackDetected"]).unwrap();
    assert_eq!(
        rmp_serde::from_slice::<Vec<EventType>>(&list).unwrap(),
        vec![EventType::NewBlock, EventType::DoSAttackDetected]
    );
    let unknown = rmp_serde::to_vec("FutureEvent").unwrap();
    assert!(rmp_serde::from_slice::<EventType>(&unknown).is_err());
    assert!(rmp_serde::from_slice::<EventType>(&rmp_serde::to_vec(&7u8).unwrap()).is_err());
}

// ---------------------------------------------------------------------------
// Categories, permissions, publishers
// ---------------------------------------------------------------------------

#[test]
fn every_category_has_events_and_they_partition_the_catalogue() {
    let mut total = 0;
    for &category in EventCategory::ALL {
        let events: Vec<EventType> = category.events().collect();
        assert!(!events.is_empty(), "category {category} has no event");
        assert!(events.iter().all(|e| e.category() == category));
        total += events.len();
    }
    assert_eq!(total, EventType::COUNT);
}

#[test]
fn subscription_permissions_follow_the_category_table() {
    use Permission::*;
    let expected: &[(EventCategory, Option<Permission>)] = &[
        (EventCategory::Blockchain, Some(ReadBlockchain)),
        (EventCategory::Consensus, Some(ReadBlockchain)),
        (EventCategory::Mining, Some(ReadChainState)),
        (EventCategory::Sync, Some(ReadChainState)),
        (EventCategory::Mempool, Some(ReadMempool)),
        (EventCategory::Network, Some(ReadNetwork)),
        (EventCategory::Dandelion, Some(ReadNetwork)),
        (EventCategory::CompactBlocks, Some(ReadNetwork)),
        (EventCategory::Fibre, Some(ReadNetwork)),
        (EventCategory::PackageRelay, Some(ReadNetwork)),
        (EventCategory::BanList, Some(ReadNetwork)),
        (EventCategory::MeshNetworking, Some(ReadNetwork)),
        (EventCategory::StratumV2, Some(ReadNetwork)),
        (EventCategory::Payment, Some(ReadPayment)),
        (EventCategory::Lightning, Some(ReadLightning)),
        (EventCategory::UtxoCommitments, Some(ReadUTXO)),
        (EventCategory::Storage, Some(ReadStorage)),
        (EventCategory::Governance, None),
        (EventCategory::ModuleLifecycle, None),
        (EventCategory::Configuration, None),
        (EventCategory::NodeLifecycle, None),
        (EventCategory::Maintenance, None),
        (EventCategory::Resource, None),
    ];
    assert_eq!(expected.len(), EventCategory::ALL.len());
    for &(category, permission) in expected {
        assert_eq!(category.required_permission(), permission, "{category}");
        for event in category.events() {
            assert_eq!(event.required_permission(), permission, "{event}");
        }
    }
    assert_eq!(EventType::ChannelOpened.required_permission(), Some(ReadLightning));
    assert_eq!(EventType::ChannelClosed.required_permission(), Some(ReadLightning));
    assert_eq!(EventType::PaymentVerified.required_permission(), Some(ReadPayment));
    assert_eq!(EventType::ModuleLoaded.required_permission(), None);
}

#[test]
fn node_observed_categories_are_node_only() {
    let node_only = [
        EventCategory::Blockchain,
        EventCategory::Consensus,
        EventCategory::Mempool,
        EventCategory::ModuleLifecycle,
        EventCategory::Configuration,
        EventCategory::NodeLifecycle,
        EventCategory::Maintenance,
        EventCategory::Resource,
        EventCategory::Storage,
        EventCategory::Dandelion,
        EventCategory::CompactBlocks,
        EventCategory::PackageRelay,
        EventCategory::UtxoCommitments,
        EventCategory::BanList,
        EventCategory::MeshNetworking,
    ];
    for category in node_only {
        for event in category.events() {
            assert!(event.is_node_only(), "{event} must be node-only");
        }
    }
    let module_published = [
        EventCategory::Payment,
        EventCategory::Lightning,
        EventCategory::Governance,
    ];
    for category in module_published {
        for event in category.events() {
            assert!(!event.is_node_only(), "{event} is published by modules");
        }
    }
    for event in [
        EventType::PeerConnected,
        EventType::MessageReceived,
        EventType::DoSAttackDetected,
        EventType::HeadersSyncStarted,
        EventType::SyncStateChanged,
        EventType::BlockMined,
        EventType::BlockTemplateUpdated,
        EventType::CompanionUdpPeerRegistered,
    ] {
        assert!(event.is_node_only(), "{event} must be node-only");
    }
    for event in [
        EventType::MiningJobCreated,
        EventType::ShareSubmitted,
        EventType::FibreBlockEncoded,
        EventType::FibrePeerRegistered,
        EventType::RouteDiscovered,
        EventType::SelectiveSyncPolicyApplied,
        EventType::StratumClientConnected,
        EventType::StratumV2MessageReceived,
    ] {
        assert!(!event.is_node_only(), "{event} is published by modules");
    }
}

// ---------------------------------------------------------------------------
// Payload wire form
// ---------------------------------------------------------------------------

#[test]
fn every_payload_round_trips_as_a_named_map() {
    for &event_type in EventType::ALL {
        let event = Event::sample(event_type);
        assert_eq!(event.event_type(), Some(event_type));
        assert_eq!(event.name(), event_type.name());

        let bytes = encode(&event);
        let fields = rmp::decode::read_map_len(&mut &bytes[..])
            .unwrap_or_else(|e| panic!("{event_type} payload is not a map: {e:?}"));
        assert!(fields > 0, "{event_type} payload has no field");

        let decoded = Event::decode(event_type.name(), &bytes)
            .unwrap_or_else(|e| panic!("{event_type} payload does not decode: {e}"));
        assert_eq!(decoded, event, "{event_type}");
        assert_eq!(encode(&decoded), bytes, "{event_type} re-encodes differently");
    }
}

#[test]
fn every_payload_decodes_through_a_string_keyed_map() {
    // A writer in another language produces a plain map of names to
    // values; decoding it through a generic map proves the keys are the
    // field names and nothing depends on Rust struct layout.
    for &event_type in EventType::ALL {
        let bytes = encode(&Event::sample(event_type));
        let map: BTreeMap<String, de::IgnoredAny> =
            rmp_serde::from_slice(&bytes).unwrap_or_else(|e| panic!("{event_type} keys are not strings: {e}"));
        assert!(
            map.keys().all(|k| k
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')),
            "{event_type} field names must be snake_case: {:?}",
            map.keys().collect::<Vec<_>>()
        );
    }
}

#[test]
fn new_block_wire_bytes_are_pinned() {
    let mut expected = vec![0x83];
    expected.push(0xa0 | 10);
    expected.extend_from_slice(b"block_hash");
    expected.extend_from_slice(&[0xc4, 32]);
    expected.extend_from_slice(&[0x11; 32]);
    expected.push(0xa0 | 6);
    expected.extend_from_slice(b"height");
    expected.extend_from_slice(&[0xcd, 0x01, 0x00]);
    expected.push(0xa0 | 6);
    expected.extend_from_slice(b"header");
    expected.extend_from_slice(&[0xc4, 80]);
    expected.extend_from_slice(&[0x22; 80]);

    let event = Event::from(new_block());
    assert_eq!(encode(&event), expected);
    assert_eq!(Event::decode("NewBlock", &expected).unwrap(), event);
}

#[test]
fn transactions_travel_as_consensus_bytes() {
    let tx = NewTransaction {
        txid: Hash32([1; 32]),
        wtxid: Hash32([2; 32]),
        tx: vec![0x02, 0x00, 0x00, 0x00, 0x00],
    };
    let bytes = encode(&Event::from(tx.clone()));
    let tail = [&b"tx"[..], &[0xc4, 5, 0x02, 0, 0, 0, 0][..]].concat();
    assert!(bytes.ends_with(&tail), "tx must be a bin field: {bytes:02x?}");
    assert_eq!(
        Event::decode("NewTransaction", &bytes).unwrap(),
        Event::NewTransaction(tx)
    );
}

#[test]
fn unknown_event_keeps_its_bytes() {
    #[derive(Serialize)]
    struct Future {
        answer: u64,
        blob: serde_bytes_like::Bin,
        nested: Vec<BTreeMap<String, i32>>,
    }
    let payload = named(&Future {
        answer: 42,
        blob: serde_bytes_like::Bin(vec![1, 2, 3]),
        nested: vec![BTreeMap::from([("x".to_owned(), -1)])],
    });

    let event = Event::decode("SomethingFromTheFuture", &payload).unwrap();
    assert_eq!(
        event,
        Event::Unknown {
            name: "SomethingFromTheFuture".to_owned(),
            payload: Bytes::from(payload.clone()),
        }
    );
    assert_eq!(event.event_type(), None);
    assert_eq!(event.name(), "SomethingFromTheFuture");
    assert_eq!(encode(&event), payload, "re-encoding must be byte-identical");
}

#[test]
fn unknown_event_must_still_be_one_map() {
    assert!(Event::decode("Future", &named(&[1u8, 2, 3])).is_err());
    assert!(Event::decode("Future", &[]).is_err());
    let mut trailing = named(&BTreeMap::from([("a", 1u8)]));
    trailing.push(0xc0);
    assert!(Event::decode("Future", &trailing).is_err());
    // A map that claims more entries than it has.
    assert!(Event::decode("Future", &[0x82, 0xa1, b'a', 0x01]).is_err());
}

#[test]
fn extra_unknown_fields_are_ignored() {
    #[derive(Serialize)]
    struct NewBlockFromANewerNode {
        added_first: BTreeMap<String, Vec<u32>>,
        block_hash: Hash32,
        height: u64,
        #[serde(with = "crate::hash::bytes_field")]
        header: Vec<u8>,
        chain_work: Hash32,
        note: Option<String>,
    }
    let bytes = named(&NewBlockFromANewerNode {
        added_first: BTreeMap::from([("k".to_owned(), vec![1, 2])]),
        block_hash: Hash32([0x11; 32]),
        height: 256,
        header: vec![0x22; 80],
        chain_work: Hash32([9; 32]),
        note: Some("hi".to_owned()),
    });
    assert_eq!(Event::decode("NewBlock", &bytes).unwrap(), Event::NewBlock(new_block()));
}

#[test]
fn missing_required_field_is_an_error() {
    #[derive(Serialize)]
    struct NewBlockWithoutHeader {
        block_hash: Hash32,
        height: u64,
    }
    let bytes = named(&NewBlockWithoutHeader {
        block_hash: Hash32([0x11; 32]),
        height: 256,
    });
    let err = Event::decode("NewBlock", &bytes).unwrap_err();
    assert!(err.to_string().contains("header"), "{err}");
}

#[test]
fn dropping_any_field_is_an_error_unless_it_is_optional() {
    for &event_type in EventType::ALL {
        let entries = map_entries(&encode(&Event::sample(event_type)));
        for (index, (field, _)) in entries.iter().enumerate() {
            let without = with_field(&entries, index, None);
            match Event::decode(event_type.name(), &without) {
                // Required: refused, naming the field; and then it must not
                // accept nil either, or it is an `Option` that an older
                // writer (who did not know it) could not omit.
                Err(err) => {
                    assert!(
                        !accepts(event_type, &entries, index, &[0xc0]),
                        "{event_type}.{field} is an Option but must be present: {err}"
                    );
                    assert!(err.to_string().contains(field.as_str()), "{event_type}: {err}");
                }
                // Optional: decodes as None, which re-encodes as nil.
                Ok(event) => {
                    let reencoded = map_entries(&encode(&event));
                    let (_, raw) = reencoded
                        .iter()
                        .find(|(name, _)| name == field)
                        .unwrap_or_else(|| panic!("{event_type}.{field} vanished"));
                    assert_eq!(
                        raw.last(),
                        Some(&0xc0),
                        "{event_type}.{field} is required but was not refused"
                    );
                }
            }
        }
    }
}

/// The doc's catalogue, checked against the code below so the two cannot
/// drift apart.
const CATALOGUE_DOC: &str = include_str!("../../../../docs/events.md");

#[test]
fn docs_list_every_event_with_its_fields_permission_and_publisher() {
    // Catalogue rows: | `Name` | meaning | fields | permission | publisher |
    let mut rows = std::collections::HashMap::new();
    for line in CATALOGUE_DOC.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() != 7 {
            continue; // a row of another table
        }
        let name = cells[1].trim_matches('`');
        let previous = rows.insert(name, (cells[3], cells[4], cells[5]));
        assert!(previous.is_none(), "{name} is listed twice in docs/events.md");
    }
    assert_eq!(rows.len(), EventType::COUNT, "docs/events.md rows");

    for &event_type in EventType::ALL {
        let (fields, permission, publisher) = rows
            .get(event_type.name())
            .unwrap_or_else(|| panic!("{event_type} is missing from docs/events.md"));

        let entries = map_entries(&encode(&Event::sample(event_type)));
        let actual: Vec<String> = (0..entries.len())
            .map(|i| format!("`{}`: {}", entries[i].0, wire_type(event_type, &entries, i)))
            .collect();
        assert_eq!(fields.split(", ").collect::<Vec<_>>(), actual, "{event_type} fields");

        let expected_permission = match event_type.required_permission() {
            Some(p) => format!("`{p}`"),
            None => "—".to_owned(),
        };
        assert_eq!(*permission, expected_permission, "{event_type} permission");
        let expected_publisher = if event_type.is_node_only() {
            "node only"
        } else {
            "node or module"
        };
        assert_eq!(*publisher, expected_publisher, "{event_type} publisher");
    }
}

#[test]
fn missing_optional_fields_decode_as_none() {
    #[derive(Serialize)]
    struct OldPeerConnected<'a> {
        peer_addr: &'a str,
        transport_type: &'a str,
        inbound: bool,
        services: u64,
        version: u32,
    }
    let bytes = named(&OldPeerConnected {
        peer_addr: "127.0.0.1:8333",
        transport_type: "tcp",
        inbound: false,
        services: 9,
        version: 70016,
    });
    match Event::decode("PeerConnected", &bytes).unwrap() {
        Event::PeerConnected(p) => assert_eq!(p.peer_node_id, None),
        other => panic!("{other:?}"),
    }

    #[derive(Serialize)]
    struct TerseCrash<'a> {
        module_name: &'a str,
        version: &'a str,
        error: &'a str,
        restarts: u32,
        will_restart: bool,
    }
    let bytes = named(&TerseCrash {
        module_name: "blvm-zmq",
        version: "0.1.0",
        error: "killed by SIGKILL",
        restarts: 2,
        will_restart: true,
    });
    match Event::decode("ModuleCrashed", &bytes).unwrap() {
        Event::ModuleCrashed(c) => {
            assert_eq!((c.exit_code, c.signal), (None, None));
            assert_eq!(c.restarts, 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_payloads_are_errors() {
    // A hash that is not 32 bytes.
    #[derive(Serialize)]
    struct ShortHash {
        #[serde(with = "crate::hash::bytes_field")]
        block_hash: Vec<u8>,
        height: u64,
        #[serde(with = "crate::hash::bytes_field")]
        header: Vec<u8>,
    }
    let bytes = named(&ShortHash {
        block_hash: vec![1; 31],
        height: 1,
        header: vec![0; 80],
    });
    assert!(Event::decode("NewBlock", &bytes).is_err());

    // A height that does not fit.
    #[derive(Serialize)]
    struct NegativeHeight {
        block_hash: Hash32,
        height: i64,
        #[serde(with = "crate::hash::bytes_field")]
        header: Vec<u8>,
    }
    let bytes = named(&NegativeHeight {
        block_hash: Hash32::default(),
        height: -1,
        header: vec![0; 80],
    });
    assert!(Event::decode("NewBlock", &bytes).is_err());

    // The positional (array) form of a struct is not the protocol.
    let positional = rmp_serde::to_vec(&new_block()).unwrap();
    assert!(Event::decode("NewBlock", &positional).is_err());

    // Empty, and trailing bytes after the map.
    assert!(Event::decode("NewBlock", &[]).is_err());
    let mut trailing = encode(&Event::from(new_block()));
    trailing.push(0x00);
    assert!(Event::decode("NewBlock", &trailing).is_err());
}

#[test]
fn truncated_or_corrupted_payloads_never_panic() {
    for &event_type in EventType::ALL {
        let bytes = encode(&Event::sample(event_type));
        for len in 0..bytes.len() {
            assert!(
                Event::decode(event_type.name(), &bytes[..len]).is_err(),
                "{event_type} decoded from {len} of {} bytes",
                bytes.len()
            );
        }
        for position in 0..bytes.len() {
            let mut corrupted = bytes.clone();
            corrupted[position] ^= 0xff;
            // Either outcome is fine; it must not panic.
            let _ = Event::decode(event_type.name(), &corrupted);
        }
    }
}

#[test]
fn from_payload_gives_the_matching_event() {
    let event: Event = ModuleLoaded {
        module_name: "blvm-zmq".to_owned(),
        version: "0.1.0".to_owned(),
    }
    .into();
    assert_eq!(event.event_type(), Some(EventType::ModuleLoaded));
    let event: Event = ResourceLimitWarning {
        module_name: None,
        resource_type: "memory".to_owned(),
        usage_percent: 91.5,
        current_usage: 915 << 20,
        limit: 1000 << 20,
        threshold_percent: 90.0,
    }
    .into();
    assert_eq!(event.name(), "ResourceLimitWarning");
}

/// A minimal `bin` wrapper for test structs (the crate has no
/// `serde_bytes`).
mod serde_bytes_like {
    /// Bytes that serialize as MessagePack `bin`.
    pub struct Bin(pub Vec<u8>);

    impl serde::Serialize for Bin {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }
}
