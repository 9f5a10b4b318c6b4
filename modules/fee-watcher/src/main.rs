//! Example module: watches the mempool and reports fee-rate changes.
//!
//! Follows the mempool events; after each change it asks the node for the
//! mempool's size and its fee estimates and logs them when they moved.

use std::collections::BTreeMap;

use blvm_sdk::protocol::{Event, LogLevel, LogRecord};
use blvm_sdk::{EventType, ModuleIntegration, SdkError};

/// Logs through the node (a `Log` frame), which records the line under
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let mut integration = ModuleIntegration::from_env().await?;
    integration
        .subscribe_events(vec![
            EventType::MempoolTransactionAdded,
            EventType::MempoolTransactionRemoved,
            EventType::FeeRateChanged,
        ])
        .await?;
    let api = integration.node_api();
    let mut events = integration.event_receiver()?;
    log(&integration, LogLevel::Info, "watching the mempool".into());
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
