//! The module's end of the IPC socket.

pub mod client;
mod event_frame;

pub use client::ModuleIpcClient;
