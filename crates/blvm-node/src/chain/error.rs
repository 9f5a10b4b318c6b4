//! Errors of the chain: [`ChainError`] for the store, [`BlockError`] for a
//! block that was refused, with Bitcoin Core's reject reason.

use bitcoin::{BlockHash, Txid};

/// The store failed or holds something it should not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// redb failed (boxed: redb's error is large and errors travel by value).
    #[error("chain store: {0}")]
    Store(Box<redb::Error>),
    /// Another process has the store open (redb's lock): a node running
    /// on the same data directory.
    #[error("the chain store {} is in use by another process", .0.display())]
    Locked(std::path::PathBuf),
    /// A stored record does not decode; the store was written by something else.
    #[error("chain store is corrupt: {0}")]
    Corrupt(String),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The store was created for another network.
    #[error("chain store is for {found}, not {expected}")]
    WrongNetwork {
        /// Network asked for.
        expected: String,
        /// Network of the store.
        found: String,
    },
    /// The block is not in the block index.
    #[error("block not found: {0}")]
    UnknownBlock(BlockHash),
    /// `invalidate_block` on the genesis block.
    #[error("cannot invalidate the genesis block")]
    Genesis,
}

impl From<redb::Error> for ChainError {
    fn from(e: redb::Error) -> Self {
        ChainError::Store(Box::new(e))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for ChainError {
            fn from(e: $t) -> Self {
                ChainError::Store(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A block was refused (or could not be processed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The block breaks a consensus rule.
    #[error("{0}")]
    Invalid(Reject),
    /// Its parent is unknown (Core: `prev-blk-not-found`).
    #[error("prev-blk-not-found: parent {0} is unknown")]
    Orphan(BlockHash),
    /// The store failed; the block was neither accepted nor judged.
    #[error(transparent)]
    Chain(#[from] ChainError),
}

impl BlockError {
    /// Core's reject reason: `bad-txnmrklroot`, `prev-blk-not-found`, ….
    pub fn reason(&self) -> &str {
        match self {
            BlockError::Invalid(r) => r.reason,
            BlockError::Orphan(_) => "prev-blk-not-found",
            BlockError::Chain(_) => "error",
        }
    }

    /// Whether the block itself is bad (as opposed to unknown parent or a store failure).
    pub fn is_invalid(&self) -> bool {
        matches!(self, BlockError::Invalid(_))
    }
}

impl From<redb::Error> for BlockError {
    fn from(e: redb::Error) -> Self {
        BlockError::Chain(ChainError::from(e))
    }
}

macro_rules! block_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for BlockError {
            fn from(e: $t) -> Self {
                BlockError::Chain(e.into())
            }
        }
    )*};
}
block_from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A consensus rule a block broke, with Core's reject reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Core's reject reason string (`high-hash`, `bad-cb-amount`, …).
    pub reason: &'static str,
    /// What exactly failed.
    pub detail: String,
    /// The transaction at fault, for transaction rules.
    pub txid: Option<Txid>,
    /// Whether a peer could have mutated a valid block into this one (bad
    /// merkle root, witness): such a block is refused but not marked invalid,
    /// since the same hash may arrive intact later.
    pub mutated: bool,
}

impl Reject {
    pub(crate) fn new(reason: &'static str, detail: impl Into<String>) -> Reject {
        Reject {
            reason,
            detail: detail.into(),
            txid: None,
            mutated: false,
        }
    }

    pub(crate) fn tx(reason: &'static str, txid: Txid, detail: impl Into<String>) -> Reject {
        Reject {
            reason,
            detail: detail.into(),
            txid: Some(txid),
            mutated: false,
        }
    }

    pub(crate) fn mutated(mut self) -> Reject {
        self.mutated = true;
        self
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.detail.is_empty() {
            f.write_str(self.reason)
        } else {
            write!(f, "{}, {}", self.reason, self.detail)
        }
    }
}

impl From<Reject> for BlockError {
    fn from(r: Reject) -> Self {
        BlockError::Invalid(r)
    }
}
