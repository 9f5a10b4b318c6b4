//! The services a module reaches through the hub after its capability
//! check, each owning its state and its quotas: one file or folder per
//! service.

pub mod filesystem;
pub mod metrics;
pub mod modules;
pub mod rpc_endpoints;
pub mod storage;
pub mod timers;
