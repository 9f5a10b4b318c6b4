//! The chain: block index, blocks, transaction index, UTXO set and undo data
//! in one redb database; block validation and connection; reorganisation
//! to the valid chain with the most work; import of `blk*.dat` files.
//!
//! # Key decision: one write transaction per block
//!
//! Connecting (or disconnecting) a block writes the UTXO changes, its undo
//! data, the transaction index, the active chain entry, the tip and the UTXO
//! counters in a single redb transaction. A crash (`kill -9`, power loss with
//! redb's default durability) therefore leaves the store at the last fully
//! committed block, and reopening needs no replay or repair. The cost is one
//! fsync per block; at our import speeds (see `ImportStats`) it is the
//! largest single cost for small blocks, and a batch mode would trade it
//! for a window of blocks to re-import after a crash.
//!
//! # Validation
//!
//! Core's checks and reject reasons (`high-hash`, `bad-diffbits`,
//! `time-too-old`, `time-too-new`, `bad-txnmrklroot`, `bad-txns-duplicate`,
//! `bad-cb-height`, `bad-witness-merkle-match`, `bad-txns-inputs-missingorspent`,
//! `bad-txns-premature-spend-of-coinbase`, `bad-txns-in-belowout`,
//! `bad-cb-amount`, `bad-blk-sigops`, `mandatory-script-verify-flag-failed`, …).
//! Scripts are verified by libbitcoinconsensus 25.1 (through rust-bitcoin),
//! with the flags in force at each height; it has no taproot support, so
//! taproot spends are accepted unverified (see [`ChainParams::script_flags`]).
//! Not done: witness sigop counting, BIP30 beyond the overwrite check, the
//! testnet4 BIP94 timewarp rule.
//!
//! # Concurrency
//!
//! [`Chain`] is `Send + Sync`. One writer at a time (block processing,
//! invalidate, reconsider); readers use redb read transactions and a
//! short-held lock on the in-memory index, so they never wait for a block's
//! validation.

mod api;
mod connect;
mod error;
mod events;
mod import;
mod index;
mod params;
mod reorg;
pub(crate) mod store;
mod validate;
pub mod view;

pub use api::{Chain, ChainOptions, Clock, HeaderInfo, TipInfo};
pub use error::{BlockError, ChainError, Reject};
pub use events::{ChainEvent, ChainListener};
pub use import::{BlkRecord, BlkRecords, ImportStats};
pub use params::ChainParams;
pub use reorg::{ProcessOutcome, ReorgSummary};
pub use store::BlockStatus;
pub use view::{ChainView, Coin};
