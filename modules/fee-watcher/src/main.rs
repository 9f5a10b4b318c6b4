//! Example module: watches the mempool and reports fee-rate changes, and
//! works with another module.
//!
//! Follows the mempool events; after each change it asks the node for the
//! mempool's size and its fee estimates and logs them when they moved.
//! It also subscribes to `block-stats.summary`, the event the `block-stats`
//! module publishes after every block (the node tells it who published
//! it), and on each one calls `block-stats`' API method `summary` through
//! the node, logging the average block of the chain so far beside the
//! mempool it sees.

use std::collections::BTreeMap;
use std::time::Duration;

use blvm_sdk::protocol::{Event, LogLevel, LogRecord};
use blvm_sdk::{EventType, ModuleIntegration, NodeApiIpc, SdkError};
use serde::Deserialize;

/// The module whose summary it follows.
const BLOCK_STATS: &str = "block-stats";
/// The event `block-stats` publishes after every block.
const SUMMARY_EVENT: &str = "block-stats.summary";

/// The part of `block-stats`' summary this module reads (its `summary`
/// API method's answer, MessagePack).
#[derive(Debug, Deserialize)]
struct Summary {
    blocks: u64,
    txs: u64,
    weight: u64,
    last_height: Option<u64>,
}

/// Logs through the node (a `log` frame), which records the line under
/// this module's name.
fn log(integration: &ModuleIntegration, level: LogLevel, message: String) {
    let _ = integration.ipc().log(&LogRecord {
        level,
        target: "fee_watcher".into(),
        message,
        fields: BTreeMap::new(),
    });
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "no estimate yet".to_owned(), |r| format!("{r:.2} sat/vB"))
}

/// Asks `block-stats` for its summary and logs the chain's average block
/// beside the mempool. A `block-stats` that is not running (or not
/// answering) is logged, never fatal.
async fn compare(integration: &ModuleIntegration, api: &NodeApiIpc) -> Result<(), SdkError> {
    let answer = api
        .call_module(BLOCK_STATS, "summary", vec![0x80], Some(Duration::from_secs(5)))
        .await;
    let summary = match answer.map(|bytes| rmp_serde::from_slice::<Summary>(&bytes)) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            log(
                integration,
                LogLevel::Warn,
                format!("{BLOCK_STATS} answered a summary I cannot read: {e}"),
            );
            return Ok(());
        }
        Err(SdkError::Remote(e)) => {
            log(integration, LogLevel::Warn, format!("cannot ask {BLOCK_STATS}: {e}"));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let size = api.get_mempool_size().await?;
    let per_block = |v: u64| v.checked_div(summary.blocks).unwrap_or(0);
    log(
        integration,
        LogLevel::Info,
        format!(
            "{BLOCK_STATS} says: {} blocks up to height {:?}, {} txs and {} WU per block on average; the mempool holds {} txs",
            summary.blocks,
            summary.last_height,
            per_block(summary.txs),
            per_block(summary.weight),
            size.count
        ),
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let mut integration = ModuleIntegration::from_env().await?;
    let api = integration.node_api();
    api.subscribe_event_names(&[
        EventType::MempoolTransactionAdded.name(),
        EventType::MempoolTransactionRemoved.name(),
        EventType::FeeRateChanged.name(),
        SUMMARY_EVENT,
    ])
    .await?;
    let mut events = integration.event_receiver()?;
    log(
        &integration,
        LogLevel::Info,
        format!("watching the mempool and {BLOCK_STATS}' summaries"),
    );
    let mut last = (None, None);
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => {
                log(&integration, LogLevel::Info, "shutting down".into());
                return integration.flush().await;
            }
            received = events.recv() => {
                let Some(received) = received else { return Err(SdkError::ConnectionClosed) };
                match &received.event {
                    Event::MempoolTransactionAdded(t) => {
                        log(&integration, LogLevel::Info, format!("mempool + {} ({:.2} sat/vB)", t.txid, t.fee_rate));
                    }
                    Event::MempoolTransactionRemoved(t) => {
                        log(&integration, LogLevel::Info, format!("mempool - {} ({})", t.txid, t.reason));
                    }
                    Event::FeeRateChanged(f) => {
                        log(&integration, LogLevel::Info, format!("fee rate moved from {:.2} to {:.2} sat/vB", f.old_fee_rate, f.new_fee_rate));
                    }
                    Event::Unknown { name, .. } if name == SUMMARY_EVENT => {
                        // Only block-stats may publish its own events: the
                        // node refuses a `block-stats.` event from anyone else.
                        if received.origin.as_deref() == Some(BLOCK_STATS) {
                            compare(&integration, &api).await?;
                        }
                        continue;
                    }
                    _ => continue,
                }
                let size = api.get_mempool_size().await?;
                let estimates = (api.get_fee_estimate(1).await?, api.get_fee_estimate(6).await?);
                if estimates != last {
                    log(
                        &integration,
                        LogLevel::Info,
                        format!(
                            "mempool: {} txs, {} vB, {} sat in fees; next block {}, within 6 blocks {}",
                            size.count, size.vsize, size.total_fee, rate(estimates.0), rate(estimates.1)
                        ),
                    );
                    last = estimates;
                }
            }
        }
    }
}
