//! The services the node offers modules beyond chain reads: each reached
//! through the hub after the capability check, each owning its state and
//! its quotas.

pub mod storage;
