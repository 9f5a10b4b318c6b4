//! From what happens in the chain and the mempool to module events.
//!
//! The chain tells its listener on the thread that changed it, possibly
//! with its locks held, so the listener only queues ([`QueueListener`]).
//! Whoever changed the chain then drains the queue (`Node::drain`)
//! before returning: module events are published, and the mempool follows
//! the chain (confirmed transactions leave, disconnected ones come back),
//! in the order things happened.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Mutex;

use bitcoin::consensus::serialize;
use blvm_module_protocol::events as ev;
use blvm_module_protocol::events::Event;

use super::convert::{block_hash, difficulty, txid, wtxid};
use crate::chain::{ChainEvent, ChainListener};
use crate::mempool::{Accepted, RemovalReason};

/// Queues chain events for `Node::drain`.
pub struct QueueListener {
    tx: Mutex<Sender<ChainEvent>>,
}

impl QueueListener {
    /// A listener and the receiving end of its queue.
    pub fn new() -> (QueueListener, Receiver<ChainEvent>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (QueueListener { tx: Mutex::new(tx) }, rx)
    }
}

impl ChainListener for QueueListener {
    fn on_event(&self, event: &ChainEvent) {
        // The receiver lives as long as the node; a send can only fail
        // while the node is being dropped, when nobody listens anyway.
        let _ = self.tx.lock().unwrap_or_else(|p| p.into_inner()).send(event.clone());
    }
}

/// The module events for one chain event that need nothing but the event.
pub fn chain_events(event: &ChainEvent) -> Vec<Event> {
    match event {
        ChainEvent::BlockValidationStarted { hash, height } => vec![ev::BlockValidationStarted {
            block_hash: block_hash(hash),
            height: u64::from(*height),
        }
        .into()],
        ChainEvent::BlockValidationCompleted {
            hash,
            height,
            success,
            duration,
            error,
        } => vec![ev::BlockValidationCompleted {
            block_hash: block_hash(hash),
            height: u64::from(*height),
            success: *success,
            validation_time_ms: duration.as_millis() as u64,
            error: error.clone(),
        }
        .into()],
        ChainEvent::ScriptVerificationStarted { hash, height, inputs } => vec![ev::ScriptVerificationStarted {
            block_hash: block_hash(hash),
            height: u64::from(*height),
            inputs: *inputs as u64,
        }
        .into()],
        ChainEvent::ScriptVerificationCompleted {
            hash,
            height,
            inputs,
            success,
            duration,
        } => vec![ev::ScriptVerificationCompleted {
            block_hash: block_hash(hash),
            height: u64::from(*height),
            inputs: *inputs as u64,
            success: *success,
            verification_time_ms: duration.as_millis() as u64,
        }
        .into()],
        ChainEvent::UtxoValidationStarted { hash, height } => vec![ev::UTXOValidationStarted {
            block_hash: block_hash(hash),
            height: u64::from(*height),
        }
        .into()],
        ChainEvent::UtxoValidationCompleted { hash, height, success } => vec![ev::UTXOValidationCompleted {
            block_hash: block_hash(hash),
            height: u64::from(*height),
            success: *success,
            error: None,
        }
        .into()],
        ChainEvent::BlockConnected { block, height } => vec![ev::NewBlock {
            block_hash: block_hash(&block.block_hash()),
            height: u64::from(*height),
            header: serialize(&block.header),
        }
        .into()],
        ChainEvent::BlockDisconnected { block, height } => vec![ev::BlockDisconnected {
            block_hash: block_hash(&block.block_hash()),
            height: u64::from(*height),
            header: serialize(&block.header),
        }
        .into()],
        ChainEvent::Reorg {
            old_tip,
            old_height,
            new_tip,
            new_height,
            fork_point,
            fork_height,
            disconnected,
            connected,
        } => vec![ev::ChainReorg {
            old_tip: block_hash(old_tip),
            old_height: u64::from(*old_height),
            new_tip: block_hash(new_tip),
            new_height: u64::from(*new_height),
            fork_point: block_hash(fork_point),
            fork_height: u64::from(*fork_height),
            disconnected: disconnected.len() as u32,
            connected: connected.len() as u32,
        }
        .into()],
        ChainEvent::DifficultyAdjusted {
            old_bits,
            new_bits,
            height,
        } => {
            let (old_difficulty, new_difficulty) = (difficulty(*old_bits), difficulty(*new_bits));
            vec![
                ev::DifficultyAdjusted {
                    old_difficulty,
                    new_difficulty,
                    old_bits: *old_bits,
                    new_bits: *new_bits,
                    height: u64::from(*height),
                }
                .into(),
                ev::MiningDifficultyChanged {
                    old_difficulty,
                    new_difficulty,
                    old_bits: *old_bits,
                    new_bits: *new_bits,
                    height: u64::from(*height),
                }
                .into(),
            ]
        }
        ChainEvent::ConsensusRuleViolation {
            rule,
            block_hash: hash,
            txid: tx,
            error,
        } => vec![ev::ConsensusRuleViolation {
            rule_name: rule.clone(),
            block_hash: hash.as_ref().map(block_hash),
            txid: tx.as_ref().map(txid),
            error: error.clone(),
        }
        .into()],
        // Import progress is turned into BlockSync* by the node, which
        // knows the target height.
        ChainEvent::ImportStarted { .. } | ChainEvent::ImportProgress { .. } | ChainEvent::ImportCompleted { .. } => {
            Vec::new()
        }
    }
}

/// `MempoolTransactionAdded` and `NewTransaction` for an accepted
/// transaction.
pub fn accepted_events(a: &Accepted, tx: &bitcoin::Transaction) -> [Event; 2] {
    [
        ev::MempoolTransactionAdded {
            txid: txid(&a.txid),
            wtxid: wtxid(&a.wtxid),
            fee_sats: a.fee.to_sat(),
            vsize: a.vsize,
            fee_rate: a.fee_rate_sat_vb,
            mempool_size: a.mempool_size,
        }
        .into(),
        ev::NewTransaction {
            txid: txid(&a.txid),
            wtxid: wtxid(&a.wtxid),
            tx: serialize(tx),
        }
        .into(),
    ]
}

/// `MempoolTransactionRemoved`.
pub fn removed_event(t: &bitcoin::Txid, reason: &RemovalReason, mempool_size: usize) -> Event {
    ev::MempoolTransactionRemoved {
        txid: txid(t),
        reason: reason.as_str().to_owned(),
        mempool_size: mempool_size as u64,
    }
    .into()
}
