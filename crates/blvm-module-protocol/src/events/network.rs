//! Payloads of the network events: peers, messages, broadcasts, addresses,
//! bans, partitions, attacks and rate limits, plus mesh routes.
//!
//! Peer addresses travel as text (`ip:port`, `[ipv6]:port`, or a transport
//! specific form such as an onion or iroh address), sizes and counts as
//! unsigned integers of fixed width.

use serde::{Deserialize, Serialize};

/// A peer connection completed its version handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerConnected {
    /// The peer's address.
    pub peer_addr: String,
    /// Transport: `"tcp"`, `"quinn"`, `"iroh"`, `"mesh"` ...
    pub transport_type: String,
    /// Whether the peer connected to us (true) or we to it (false).
    pub inbound: bool,
    /// Service bits the peer advertised.
    pub services: u64,
    /// Protocol version the peer advertised.
    pub version: u32,
    /// The peer's node id on transports that have one (e.g. a public key).
    #[serde(default, with = "crate::hash::bytes_field::option")]
    pub peer_node_id: Option<Vec<u8>>,
}

/// A peer disconnected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerDisconnected {
    /// The peer's address.
    pub peer_addr: String,
    /// Why: `"timeout"`, `"error"`, `"ban"`, `"manual"`, `"remote"` ...
    pub reason: String,
}

/// A peer was banned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerBanned {
    /// The banned address or subnet.
    pub peer_addr: String,
    /// Why.
    pub reason: String,
    /// When the ban ends, in unix seconds.
    pub banned_until: u64,
}

/// A ban was lifted (expired or removed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerUnbanned {
    /// The address or subnet no longer banned.
    pub peer_addr: String,
}

/// A P2P message was received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageReceived {
    /// The sending peer.
    pub peer_addr: String,
    /// The message command, e.g. `"block"`, `"tx"`, `"inv"`.
    pub message_type: String,
    /// Payload size in bytes.
    pub message_size: u64,
    /// Protocol version of the connection.
    pub protocol_version: u32,
}

/// A P2P message was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSent {
    /// The receiving peer.
    pub peer_addr: String,
    /// The message command.
    pub message_type: String,
    /// Payload size in bytes.
    pub message_size: u64,
}

/// The node started broadcasting a message to its peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastStarted {
    /// The message command.
    pub message_type: String,
    /// Number of peers it is sent to.
    pub target_peers: u32,
}

/// A broadcast finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastCompleted {
    /// The message command.
    pub message_type: String,
    /// Peers it reached.
    pub successful: u32,
    /// Peers it could not be sent to.
    pub failed: u32,
}

/// A mesh module discovered a route to a destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteDiscovered {
    /// The destination's node id or address, as bytes.
    #[serde(with = "crate::hash::bytes_field")]
    pub destination: Vec<u8>,
    /// The hops, as peer addresses, in order.
    pub route_path: Vec<String>,
    /// Cost of the route, in the mesh module's unit.
    pub route_cost: u64,
}

/// A mesh module found no route to a destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteFailed {
    /// The destination's node id or address, as bytes.
    #[serde(with = "crate::hash::bytes_field")]
    pub destination: Vec<u8>,
    /// Why.
    pub reason: String,
}

/// The node tried to connect to a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionAttempt {
    /// The address tried.
    pub peer_addr: String,
    /// Whether the connection was established.
    pub success: bool,
    /// What went wrong, when it failed.
    pub error: Option<String>,
}

/// The node learnt a new peer address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressDiscovered {
    /// The address.
    pub peer_addr: String,
    /// Where from: `"dns"`, `"peer"`, `"manual"`, `"fixed"` ...
    pub source: String,
}

/// A peer address expired from the address manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressExpired {
    /// The address.
    pub peer_addr: String,
}

/// The node lost contact with a group of peers at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkPartition {
    /// Identifier of the partition, for pairing with `NetworkReconnected`.
    #[serde(with = "crate::hash::bytes_field")]
    pub partition_id: Vec<u8>,
    /// The peers lost.
    pub disconnected_peers: Vec<String>,
    /// Number of peers in the partition.
    pub partition_size: u32,
}

/// A partition healed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkReconnected {
    /// Identifier of the partition (as in `NetworkPartition`).
    #[serde(with = "crate::hash::bytes_field")]
    pub partition_id: Vec<u8>,
    /// The peers back in contact.
    pub reconnected_peers: Vec<String>,
}

/// The node detected a denial-of-service attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoSAttackDetected {
    /// The offending peer.
    pub peer_addr: String,
    /// Kind of attack, e.g. `"message_flood"`, `"invalid_blocks"`.
    pub attack_type: String,
    /// Severity: `"low"`, `"medium"`, `"high"` or `"critical"`.
    pub severity: String,
}

/// A peer exceeded a rate limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimitExceeded {
    /// The peer.
    pub peer_addr: String,
    /// The limit, e.g. `"messages"`, `"bytes"`, `"inv"`.
    pub limit_type: String,
    /// Observed rate, per second, in the limit's unit.
    pub current_rate: f64,
    /// The allowed rate, per second.
    pub limit: f64,
}
