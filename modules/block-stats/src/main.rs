//! Example module: per-block statistics, and every module service at work.
//!
//! Follows `NewBlock` and `BlockDisconnected`. For every connected block it
//! fetches the block from the node, parses it (consensus bytes, with the
//! `bitcoin` crate) and records its statistics; a disconnected block's are
//! dropped, so the table always describes the active chain. Then:
//!
//! - the table lives in the node's module **storage** ([`table`]): it
//!   survives restarts of the module and of the node;
//! - it is served as the JSON-RPC method **`blockstats_summary ( last )`**
//!   (`bitcoin-cli`, python-bitcoinrpc, curl), with help;
//! - other modules may call its **API** method `summary` (MessagePack of
//!   [`table::Summary`]) and subscribe to the event it **publishes** after
//!   every block, `block-stats.summary` (the same summary);
//! - it exports **metrics**: `module_block_stats_blocks_seen_total`,
//!   `…_table_blocks`, `…_last_block_txs`, `…_last_block_weight`;
//! - a repeating **timer** logs a summary (config `summary_every_ms`,
//!   default 30000).
//!
//! Every step is logged, so a user sees the module system at work.

mod table;

use std::collections::BTreeMap;

use bitcoin::consensus::deserialize;
use bitcoin::Block;
use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult, MODULE_CALL, TIMER_FIRED};
use blvm_sdk::protocol::methods::metrics::{MetricKind, MetricUpdate};
use blvm_sdk::protocol::methods::timers::ScheduleTimer;
use blvm_sdk::protocol::{Event, LogLevel, LogRecord, RemoteError};
use blvm_sdk::{EventType, Invocation, ModuleIntegration, NodeApiIpc, SdkError};

use table::{BlockStats, Table};

/// The JSON-RPC method this module serves.
const RPC_METHOD: &str = "blockstats_summary";
/// Its help text after the usage line.
const RPC_HELP: &str = "Summarises the blocks block-stats has recorded: blocks, transactions, bytes, weight and \
output value, over the whole active chain it has seen or over its last blocks.\n\nArguments:\n1. last    \
(numeric, optional) Only the last `last` blocks.\n\nResult:\n{ \"blocks\": n, \"txs\": n, \"bytes\": n, \
\"weight\": n, \"outputs_sat\": n, \"first_height\": n, \"last_height\": n }";
/// The event it publishes after every block.
const SUMMARY_EVENT: &str = "block-stats.summary";

/// Logs through the node (a `log` frame), which records the line under
/// this module's name.
fn log(integration: &ModuleIntegration, level: LogLevel, message: String) {
    let _ = integration.ipc().log(&LogRecord {
        level,
        target: "block_stats".into(),
        message,
        fields: BTreeMap::new(),
    });
}

fn metric(name: &str, kind: MetricKind, value: f64, help: &str) -> MetricUpdate {
    MetricUpdate {
        name: name.into(),
        kind,
        help: Some(help.into()),
        labels: BTreeMap::new(),
        value,
        observations: vec![],
        buckets: None,
    }
}

/// Reports the metrics after a change of the table.
async fn report(api: &NodeApiIpc, table: &Table, block: Option<&BlockStats>) -> Result<(), SdkError> {
    let mut updates = vec![metric(
        "table_blocks",
        MetricKind::Gauge,
        table.len() as f64,
        "Blocks in block-stats' table.",
    )];
    if let Some(b) = block {
        updates.push(metric(
            "blocks_seen",
            MetricKind::Counter,
            1.0,
            "Blocks block-stats recorded.",
        ));
        updates.push(metric(
            "last_block_txs",
            MetricKind::Gauge,
            b.txs as f64,
            "Transactions in the last block.",
        ));
        updates.push(metric(
            "last_block_weight",
            MetricKind::Gauge,
            b.weight as f64,
            "Weight of the last block, in weight units.",
        ));
    }
    api.report_metrics(updates).await.map(drop)
}

/// `last` from a JSON-RPC call's params: `[n]`, `{"last": n}`, or none.
fn last_param(params_json: &str) -> Result<Option<usize>, String> {
    let v: serde_json::Value = serde_json::from_str(params_json).map_err(|e| e.to_string())?;
    let last = match &v {
        serde_json::Value::Array(a) => a.first().cloned(),
        serde_json::Value::Object(o) => o.get("last").cloned(),
        _ => None,
    };
    match last {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(n) => n
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("last must be a non-negative integer, got {n}")),
    }
}

/// Answers one invocation from the node: a JSON-RPC call, another module's
/// call of `summary`, or the summary timer.
fn answer(integration: &ModuleIntegration, table: &Table, inv: Invocation) -> Result<(), SdkError> {
    if let Some(call) = inv.rpc_call() {
        let call = call?;
        return match last_param(&call.params_json) {
            Ok(last) => match serde_json::to_string(&table.summary(last)) {
                Ok(json) => inv.respond_json(json),
                Err(e) => inv.respond_rpc_error(-32603, e.to_string()),
            },
            // Core's "invalid parameter".
            Err(why) => inv.respond_rpc_error(-8, why),
        };
    }
    let method = inv.method().to_owned();
    match method.as_str() {
        MODULE_CALL => {
            let call: ModuleCall = inv.params()?;
            if call.method != "summary" {
                inv.reject(RemoteError::method_not_found(&call.method));
                return Ok(());
            }
            log(
                integration,
                LogLevel::Info,
                format!("module `{}` asked for the summary", call.caller),
            );
            inv.respond(&ModuleCallResult {
                result: table.summary_bytes()?,
            })
        }
        TIMER_FIRED => {
            let s = table.summary(None);
            log(
                integration,
                LogLevel::Info,
                format!(
                    "summary: {} blocks (heights {:?}..{:?}), {} txs, {} bytes, {} WU",
                    s.blocks, s.first_height, s.last_height, s.txs, s.bytes, s.weight
                ),
            );
            inv.respond(&blvm_sdk::protocol::Empty {})
        }
        other => {
            inv.reject(RemoteError::method_not_found(other));
            Ok(())
        }
    }
}

/// Records a connected block: storage, metrics, the published summary.
async fn connected(
    integration: &ModuleIntegration,
    api: &NodeApiIpc,
    table: &mut Table,
    height: u64,
    hash: blvm_sdk::Hash32,
) -> Result<(), SdkError> {
    let Some(bytes) = api.get_block(hash).await? else {
        log(integration, LogLevel::Warn, format!("block {hash} is gone already"));
        return Ok(());
    };
    let block: Block = match deserialize(&bytes) {
        Ok(block) => block,
        Err(e) => {
            log(integration, LogLevel::Error, format!("cannot parse block {hash}: {e}"));
            return Ok(());
        }
    };
    let stats = BlockStats::of(hash, &block, bytes.len());
    log(
        integration,
        LogLevel::Info,
        format!(
            "block {height} {hash}: {} txs, {} bytes, {} WU, outputs {} sat",
            stats.txs, stats.size, stats.weight, stats.outputs_sat
        ),
    );
    table.insert(api, height, stats.clone()).await?;
    report(api, table, Some(&stats)).await?;
    api.publish_event(SUMMARY_EVENT, table.summary_bytes()?).await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let mut integration = ModuleIntegration::from_env().await?;
    let api = integration.node_api();
    let mut invocations = integration.invocation_receiver()?;
    let mut table = Table::load(&api).await?;
    api.register_rpc_endpoint(RPC_METHOD, "( last )", RPC_HELP).await?;
    api.register_module_api(&[("summary", "The summary of block-stats' table, MessagePack.")])
        .await?;
    let every_ms = integration
        .welcome()
        .config
        .get("summary_every_ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000u64);
    api.timer_schedule(&ScheduleTimer::repeat(every_ms)).await?;
    report(&api, &table, None).await?;
    integration
        .subscribe_events(vec![EventType::NewBlock, EventType::BlockDisconnected])
        .await?;
    let mut events = integration.event_receiver()?;
    let tip = api.get_chain_tip().await?;
    log(
        &integration,
        LogLevel::Info,
        format!(
            "following the chain from height {} ({}); {} blocks kept from before, serving {RPC_METHOD}",
            tip.height,
            tip.hash,
            table.len()
        ),
    );
    let mut last_seq = 0;
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => {
                log(&integration, LogLevel::Info, format!("shutting down with {} blocks in the table", table.len()));
                // The last log line must leave before the process exits.
                return integration.flush().await;
            }
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Err(SdkError::ConnectionClosed) };
                answer(&integration, &table, inv)?;
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
                    Event::NewBlock(b) => connected(&integration, &api, &mut table, b.height, b.block_hash).await?,
                    Event::BlockDisconnected(b) => {
                        table.remove(&api, b.height).await?;
                        report(&api, &table, None).await?;
                        log(&integration, LogLevel::Info, format!("block {} {} disconnected; statistics dropped", b.height, b.block_hash));
                    }
                    _ => {}
                }
            }
        }
    }
}
