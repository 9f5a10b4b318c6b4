//! Real Bitcoin chain data in memory, behind the module host's
//! [`NodeBackend`](blvm_module_host::NodeBackend).
//!
//! The module host's integration tests and the benchmark answer module
//! requests from [`MemoryChain`]: the first 439 mainnet blocks (heights
//! 0..=438, embedded from `data/`, see `data/README.md` for provenance),
//! indexed by height, block hash and txid, with the UTXO set and chain work
//! they produce, plus an in-memory mempool. A large real block (mainnet
//! 702861, 2,500 transactions) is available as a payload through
//! [`block_702861`]. Nothing here is invented: every block, transaction and
//! output comes from the embedded files, and what the fixture cannot know
//! (peers, a miner, fee history) is answered as absent or unavailable.

mod backend;
mod chain;

pub use chain::{block_702861, MemoryChain, BLOCK_702861_HASH, GENESIS_HASH, MAINNET_TIP_HASH, MAINNET_TIP_HEIGHT};
