//! The IPC server: a listening Unix socket per spawned module (and the
//! node's own, for tests and tools), every connection served on its own
//! threads, authenticated by a per-spawn token and the peer's pid.

mod auth;
pub(crate) mod connection;
mod deadlines;
mod listener;
pub(crate) mod rate;
mod server;
mod slots;

pub use auth::{ModuleSpec, ModuleTicket};
pub use connection::ModuleConnectionHandle;
pub use rate::RequestRate;
pub use server::{ConnectionEvent, IpcServerConfig, ModuleIpcServer, MAX_HELLO_LEN};
