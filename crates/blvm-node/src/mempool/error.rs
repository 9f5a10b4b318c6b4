//! [`MempoolError`]: why a transaction was refused, carrying Bitcoin Core's
//! reject reason string and the JSON-RPC error code Core would answer with.

use std::fmt;

/// `RPC_VERIFY_ERROR` (`RPC_TRANSACTION_ERROR`): general error during
/// transaction submission; Core uses it for missing or spent inputs.
pub const RPC_VERIFY_ERROR: i32 = -25;
/// `RPC_VERIFY_REJECTED` (`RPC_TRANSACTION_REJECTED`): the transaction was
/// rejected by network rules or policy.
pub const RPC_VERIFY_REJECTED: i32 = -26;
/// `RPC_VERIFY_ALREADY_IN_CHAIN` (`RPC_TRANSACTION_ALREADY_IN_CHAIN`): the
/// transaction is already confirmed.
pub const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;

/// The class of a refusal; decides the RPC error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// Breaks a consensus rule (`bad-txns-*`, script failures, `coinbase`).
    Consensus,
    /// Breaks a local relay policy (standardness, fees, chain limits, finality).
    Policy,
    /// Spends an output another mempool transaction already spends.
    Conflict,
    /// An input is neither in the UTXO set nor created by a mempool transaction.
    MissingInputs,
    /// The transaction's outputs are already in the UTXO set (it is confirmed).
    AlreadyInChain,
    /// The same transaction (txid or wtxid) is already in the mempool.
    AlreadyInMempool,
}

/// A transaction the mempool refused.
///
/// `reason` is Bitcoin Core's reject reason (what `testmempoolaccept` prints
/// as `reject-reason`); `Display` gives Core's `state.ToString()`,
/// `reason, debug`, which is what `sendrawtransaction` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolError {
    kind: RejectKind,
    reason: String,
    debug: Option<String>,
}

impl MempoolError {
    /// A refusal of `kind` with Core's `reason` and no debug detail.
    pub fn new(kind: RejectKind, reason: impl Into<String>) -> Self {
        MempoolError {
            kind,
            reason: reason.into(),
            debug: None,
        }
    }

    /// Adds a debug detail (Core's `GetDebugMessage()`).
    pub fn with_debug(mut self, debug: impl Into<String>) -> Self {
        self.debug = Some(debug.into());
        self
    }

    /// A consensus refusal.
    pub(crate) fn consensus(reason: impl Into<String>) -> Self {
        Self::new(RejectKind::Consensus, reason)
    }

    /// A policy refusal.
    pub(crate) fn policy(reason: impl Into<String>) -> Self {
        Self::new(RejectKind::Policy, reason)
    }

    /// Which class of refusal this is.
    pub fn kind(&self) -> RejectKind {
        self.kind
    }

    /// Core's reject reason, e.g. `txn-mempool-conflict`.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The debug detail, if any.
    pub fn debug(&self) -> Option<&str> {
        self.debug.as_deref()
    }

    /// The JSON-RPC error code `sendrawtransaction` answers with:
    /// -25 for missing inputs, -27 for an already confirmed transaction,
    /// -26 otherwise.
    ///
    /// Note: Core's `sendrawtransaction` does not fail at all for a
    /// transaction already in its mempool (it returns the txid);
    /// check [`RejectKind::AlreadyInMempool`] for that case.
    pub fn code(&self) -> i32 {
        match self.kind {
            RejectKind::MissingInputs => RPC_VERIFY_ERROR,
            RejectKind::AlreadyInChain => RPC_VERIFY_ALREADY_IN_CHAIN,
            RejectKind::Consensus | RejectKind::Policy | RejectKind::Conflict | RejectKind::AlreadyInMempool => {
                RPC_VERIFY_REJECTED
            }
        }
    }
}

impl fmt::Display for MempoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.debug {
            Some(debug) => write!(f, "{}, {}", self.reason, debug),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for MempoolError {}
