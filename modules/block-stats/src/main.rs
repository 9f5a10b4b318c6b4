//! Example module: per-block statistics.
//!
//! Follows `NewBlock` and `BlockDisconnected`. For every connected block it
//! fetches the block from the node, parses it (consensus bytes, with the
//! `bitcoin` crate) and keeps its statistics; a disconnected block's
//! statistics are dropped, so the table always describes the active chain.
//! Every step is logged, so a user sees the module system at work.

use std::collections::BTreeMap;

use bitcoin::consensus::deserialize;
use bitcoin::{Amount, Block};
use blvm_sdk::protocol::{Event, LogLevel, LogRecord};
use blvm_sdk::{EventType, ModuleIntegration, SdkError};

/// What the module keeps per block.
struct BlockStats {
    txs: usize,
    size: usize,
    weight: u64,
    outputs: Amount,
}

/// Logs through the node (a `Log` frame), which records the line under
/// this module's name.
fn log(integration: &ModuleIntegration, level: LogLevel, message: String) {
    let _ = integration.ipc().log(&LogRecord {
        level,
        target: "block_stats".into(),
        message,
        fields: BTreeMap::new(),
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let mut integration = ModuleIntegration::from_env().await?;
    integration
        .subscribe_events(vec![EventType::NewBlock, EventType::BlockDisconnected])
        .await?;
    let api = integration.node_api();
    let mut events = integration.event_receiver()?;
    let tip = api.get_chain_tip().await?;
    log(
        &integration,
        LogLevel::Info,
        format!("following the chain from height {} ({})", tip.height, tip.hash),
    );
    let mut table: BTreeMap<u64, BlockStats> = BTreeMap::new();
    let mut last_seq = 0;
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => {
                log(&integration, LogLevel::Info, format!("shutting down with {} blocks in the table", table.len()));
                // The last log line must leave before the process exits.
                return integration.flush().await;
            }
            received = events.recv() => {
                let Some(received) = received else {
                    // The node is gone without asking us to stop: a crash
                    // from the node's point of view, so say so.
                    return Err(SdkError::ConnectionClosed);
                };
                if received.seq != last_seq + 1 && last_seq != 0 {
                    log(&integration, LogLevel::Warn, format!("missed {} events", received.seq - last_seq - 1));
                }
                last_seq = received.seq;
                match received.event {
                    Event::NewBlock(b) => {
                        let Some(bytes) = api.get_block(b.block_hash).await? else {
                            log(&integration, LogLevel::Warn, format!("block {} is gone already", b.block_hash));
                            continue;
                        };
                        let block: Block = match deserialize(&bytes) {
                            Ok(block) => block,
                            Err(e) => {
                                log(&integration, LogLevel::Error, format!("cannot parse block {}: {e}", b.block_hash));
                                continue;
                            }
                        };
                        let outputs = block
                            .txdata
                            .iter()
                            .flat_map(|tx| tx.output.iter())
                            .map(|o| o.value)
                            .fold(Amount::ZERO, |a, v| a.checked_add(v).unwrap_or(a));
                        let stats = BlockStats {
                            txs: block.txdata.len(),
                            size: bytes.len(),
                            weight: block.weight().to_wu(),
                            outputs,
                        };
                        log(
                            &integration,
                            LogLevel::Info,
                            format!(
                                "block {} {}: {} txs, {} bytes, {} WU, outputs {}",
                                b.height, b.block_hash, stats.txs, stats.size, stats.weight, stats.outputs
                            ),
                        );
                        table.insert(b.height, stats);
                    }
                    Event::BlockDisconnected(b) => {
                        table.remove(&b.height);
                        log(&integration, LogLevel::Info, format!("block {} {} disconnected; statistics dropped", b.height, b.block_hash));
                    }
                    _ => {}
                }
            }
        }
    }
}
