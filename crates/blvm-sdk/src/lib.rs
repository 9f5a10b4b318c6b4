//! The blvm module SDK: what a module author needs to join a node.
//!
//! A module is a separate process the node spawns with its connection
//! details in the environment ([`env`](mod@env)). It connects to the node's Unix
//! socket, handshakes with the one-time token, then calls the node
//! ([`NodeApiIpc`]), receives the events it subscribed to
//! ([`EventReceiver`]) and answers the node's invocations
//! ([`InvocationReceiver`]) — all at once, over one connection.
//!
//! Two ways in, as the seed describes:
//!
//! - [`ModuleIntegration`] (recommended): one call connects and handshakes.
//! - [`ModuleIpcClient`] + [`NodeApiIpc`] + [`ModuleClient`] (legacy): the
//!   same machinery in separate pieces.
//!
//! The wire protocol itself is re-exported as [`protocol`].

pub mod client;
pub mod env;
pub mod error;
pub mod events;
pub mod integration;
pub mod invocation;
pub mod ipc;
pub mod node_api;

pub use blvm_module_protocol as protocol;
pub use blvm_module_protocol::{Event, EventType, Hash32, Permission};
pub use client::ModuleClient;
pub use env::ModuleEnv;
pub use error::SdkError;
pub use events::{EventReceiver, ReceivedEvent};
pub use integration::ModuleIntegration;
pub use invocation::{Invocation, InvocationReceiver};
pub use ipc::ModuleIpcClient;
pub use node_api::NodeApiIpc;
