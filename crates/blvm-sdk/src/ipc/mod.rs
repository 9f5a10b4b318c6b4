//! The module's end of the IPC socket.

pub mod client;

pub use client::ModuleIpcClient;
