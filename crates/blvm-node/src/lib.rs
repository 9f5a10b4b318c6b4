//! The reference node: a real chain in an embedded store, a mempool, a
//! regtest miner and a Bitcoin Core-compatible JSON-RPC server, hosting the
//! blvm module system. It exists so that modules have real data to serve.
//!
//! # Layout
//!
//! - [`chain`]: block index, blocks, transaction index, UTXO set and undo
//!   data in redb; block validation and connection; reorganisations;
//!   import of `blk*.dat` files.
//! - [`mempool`]: transactions validated against the UTXO set and scripts.
//! - [`miner`]: block templates and regtest block production.
//! - [`rpc`]: the JSON-RPC server.

pub mod chain;
pub mod cli;
pub mod config;
pub mod mempool;
pub mod miner;
pub mod node;
pub mod rpc;

/// The module system, under the path the seed uses
/// (`blvm_node::module::ModuleManager`).
pub use blvm_module_host as module;
