//! The IPC server: one listening Unix socket, every connection served on
//! its own threads, authenticated by a per-spawn token and the peer's pid.

mod auth;
mod connection;
mod rate;
mod server;

pub use auth::{ModuleSpec, ModuleTicket};
pub use connection::ModuleConnectionHandle;
pub use rate::RequestRate;
pub use server::{ConnectionEvent, IpcServerConfig, ModuleIpcServer};
