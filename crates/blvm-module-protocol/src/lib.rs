//! The blvm module IPC protocol: wire types, codec and version rules.
//!
//! A module is a separate process that talks to the node over one Unix
//! socket. Everything that crosses that socket is defined here, and nothing
//! else is: this crate does no I/O, so the node, the SDK, other-language
//! ports (via `docs/ipc-protocol.md`), fuzzers and benchmarks share it.
//!
//! # Layout
//!
//! - [`codec`]: 4-byte big-endian length prefix, maximum checked before any
//!   allocation.
//! - [`frame`]: the frame kinds (`hello`, `welcome`, `refused`, `request`,
//!   `response`, `event`, `log`, `shutdown`) and their encoders.
//! - [`control`]: handshake, log and shutdown bodies.
//! - [`methods`]: every request method, its params and result, and the
//!   permission it needs.
//! - [`events`]: every event type and its payload, and the permission needed
//!   to subscribe.
//! - [`permissions`]: the 24 capabilities.
//!
//! # Why MessagePack with field names
//!
//! Modules may be written in any language, and old modules must keep
//! working against newer nodes. MessagePack is self-describing and has a
//! library in every language; writing structs as maps with field names
//! (never positionally) is what lets a peer skip a field it does not know
//! and default one it does not get. The cost is a few bytes of key per
//! field, measured in the benchmark. Blocks, headers and transactions travel
//! as their consensus serialization, which every Bitcoin library parses,
//! rather than as a serde shape that would tie a module to our types.

pub mod codec;
pub mod control;
pub mod error;
pub mod events;
pub mod frame;
pub mod hash;
pub mod methods;
mod msgpack;
pub mod permissions;

pub use codec::{FrameDecoder, DEFAULT_MAX_FRAME_LEN};
pub use control::{Hello, LogLevel, LogRecord, Refused, Shutdown, Welcome};
pub use error::{DecodeError, EncodeError, ErrorCode, FrameError, RemoteError};
pub use events::{Event, EventType};
pub use frame::{DurableMark, EventFrame, Frame, Request, Response, PROTOCOL_VERSION, SUPPORTED_VERSIONS};
pub use hash::Hash32;
pub use methods::Method;
pub use permissions::{Permission, PermissionSet};

/// The params or result of a method that has none: an empty map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Empty {}
