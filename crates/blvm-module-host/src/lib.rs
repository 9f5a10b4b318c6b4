//! The node side of the blvm module system.
//!
//! Modules are untrusted processes. This crate accepts their connections,
//! authenticates them, answers their requests through the API hub after a
//! capability check, and delivers node events to them without ever letting
//! a slow or dead module hold the node up.
//!
//! # Layout
//!
//! - [`ipc`]: the Unix-socket server ([`ipc::ModuleIpcServer`]), the
//!   handshake and its authentication, one reader thread per connection.
//! - [`api`]: the [`NodeBackend`] seam the node implements, the
//!   [`api::hub::ModuleApiHub`] that routes requests to it, and the event
//!   bus ([`api::events::EventManager`]).
//!
//! # Threads, and why
//!
//! Each connection gets a reader thread that blocks in `read`, handles the
//! requests it finds (backend calls are synchronous and short) and writes
//! the batch of answers with one `write`, and a writer thread that drains
//! the module's bounded event queue. Blocking threads reach the latency of
//! a raw socket ping-pong, which an async reactor (one extra `epoll_wait`
//! and an `EAGAIN` read per call) does not; a stuck module blocks only its
//! own two threads. The publisher only ever `try_send`s.

pub mod api;
pub mod ipc;
pub mod manager;
pub mod process;
pub mod registry;
pub mod sandbox;
pub mod security;
pub mod services;

pub use api::backend::{BackendError, NodeBackend};
pub use api::durable::{CursorStore, DurableStatus};
pub use api::events::{DeliveryStats, EventManager};
pub use api::hub::{Caller, ModuleApiHub, RequestTap};
pub use ipc::{ConnectionEvent, IpcServerConfig, ModuleConnectionHandle, ModuleIpcServer, ModuleSpec, ModuleTicket};
pub use manager::{ManagerConfig, ModuleManager, ModuleState, ModuleStatus};
/// The seed calls a module's `module.toml` its metadata
/// (`blvm_node::module::ModuleMetadata`, the node re-exporting this crate as
/// `module`); the type is [`registry::ModuleManifest`], named for the file it
/// is parsed from. The alias keeps the seed's paths resolving.
pub use registry::ModuleManifest as ModuleMetadata;
