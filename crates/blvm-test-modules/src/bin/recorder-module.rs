//! A module that records the events it receives and reports them when the
//! node asks (`module_call` method `report`), so a test can see exactly
//! what a subscribed module saw, in order.
//!
//! What it subscribes to, and when:
//!
//! - config `events` (comma-separated names): its first subscription, at
//!   start; none when empty (so that a later one is its first);
//! - config `then`: a second subscription, made once its first event has
//!   arrived — after whatever the node published before that event;
//! - `module_call` `subscribe` (params: names): whenever the test says,
//!   answered `SUBSCRIBED <all its types>` or `ERROR <why>`.
//!
//! Every event is also printed on stdout as `recorded <seq> <event>` (the
//! node logs module stdout), and `shutdown <reason>` when the node says
//! `shutdown`: so a test can see what it received while the node stopped,
//! after which no call can ask it.

use std::sync::{Arc, Mutex};

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult};
use blvm_sdk::protocol::{Event, EventType, RemoteError};
use blvm_sdk::{ModuleIntegration, NodeApiIpc, SdkError};

fn describe(event: &Event) -> String {
    match event {
        Event::NewBlock(b) => format!("NewBlock {} {}", b.height, b.block_hash),
        Event::BlockDisconnected(b) => format!("BlockDisconnected {} {}", b.height, b.block_hash),
        Event::ChainReorg(r) => format!("ChainReorg {} {}", r.old_tip, r.new_tip),
        Event::ModuleLoaded(m) => format!("ModuleLoaded {} {}", m.module_name, m.version),
        Event::ModuleStateChanged(m) => {
            format!("ModuleStateChanged {} {} {}", m.module_name, m.old_state, m.new_state)
        }
        Event::ModuleDiscovered(m) => format!("ModuleDiscovered {} {} {}", m.module_name, m.version, m.source),
        Event::ModuleInstalled(m) => format!("ModuleInstalled {} {}", m.module_name, m.version),
        Event::ModuleUpdated(m) => format!("ModuleUpdated {} {} {}", m.module_name, m.old_version, m.new_version),
        Event::ModuleReloaded(m) => format!("ModuleReloaded {} {} {}", m.module_name, m.old_version, m.new_version),
        Event::ModuleRemoved(m) => format!("ModuleRemoved {} {}", m.module_name, m.version),
        Event::ConfigLoaded(c) => format!("ConfigLoaded reload={} {}", c.reload, c.changed_sections.join(",")),
        Event::NodeStartupCompleted(s) => {
            format!("NodeStartupCompleted {} {}", s.duration_ms, s.components.join(","))
        }
        Event::NodeShutdown(s) => format!("NodeShutdown {} {}", s.reason, s.timeout_ms),
        Event::NodeShutdownCompleted(s) => format!("NodeShutdownCompleted {}", s.duration_ms),
        Event::DataMaintenance(d) => format!("DataMaintenance {} {} {:?}", d.operation, d.urgency, d.timeout_ms),
        Event::HealthCheck(h) => format!("HealthCheck {} {}", h.check_type, h.node_healthy),
        Event::DiskSpaceLow(d) => format!("DiskSpaceLow {:.1} {}", d.percent_free, d.disk_path),
        Event::MaintenanceStarted(m) => format!("MaintenanceStarted {}", m.maintenance_type),
        Event::MaintenanceCompleted(m) => format!("MaintenanceCompleted {} {}", m.maintenance_type, m.success),
        Event::BlockSyncStarted(s) => format!("BlockSyncStarted {} {}", s.start_height, s.target_height),
        Event::BlockSyncProgress(s) => format!("BlockSyncProgress {} {}", s.current_height, s.target_height),
        Event::BlockSyncCompleted(s) => format!("BlockSyncCompleted {}", s.final_height),
        Event::BlockMined(b) => format!("BlockMined {} {}", b.height, b.block_hash),
        Event::MiningJobCreated(j) => format!("MiningJobCreated {} {}", j.job_id, j.height),
        Event::StratumClientConnected(c) => {
            format!("StratumClientConnected {} {}", c.endpoint, c.protocol_version)
        }
        Event::StratumClientDisconnected(c) => format!("StratumClientDisconnected {} {}", c.endpoint, c.reason),
        Event::StratumV2MessageReceived(m) => {
            let header: String = m.message_data.iter().take(6).map(|b| format!("{b:02x}")).collect();
            format!("StratumV2MessageReceived {} {header}", m.peer_addr)
        }
        other => other.name().to_owned(),
    }
}

fn types(names: &str) -> Vec<EventType> {
    names
        .split(',')
        .filter_map(|n| EventType::from_name(n.trim()))
        .collect()
}

/// Subscribes to `names`; the answer a test reads.
async fn subscribe(api: &NodeApiIpc, names: &str) -> String {
    match api.subscribe_events(&types(names)).await {
        Ok(all) => format!("SUBSCRIBED {}", all.join(",")),
        Err(e) => format!("ERROR {e}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let mut integration = ModuleIntegration::from_env().await?;
    let mut invocations = integration.invocation_receiver()?;
    let config = integration.welcome().config.clone();
    let first = config.get("events").cloned().unwrap_or_default();
    let then = config.get("then").cloned().unwrap_or_default();
    let mut events = integration.event_receiver()?;
    let api = integration.node_api();
    if !types(&first).is_empty() {
        integration.subscribe_events(types(&first)).await?;
    }
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let arrived = Arc::new(tokio::sync::Notify::new());
    let record = Arc::clone(&seen);
    let announce = Arc::clone(&arrived);
    let later = Arc::clone(&api);
    tokio::spawn(async move {
        let mut then = Some(then).filter(|t| !t.is_empty());
        while let Some(e) = events.recv().await {
            let line = format!("{} {}", e.seq, describe(&e.event));
            println!("recorded {line}");
            record.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            announce.notify_waiters();
            if let Some(names) = then.take() {
                let api = Arc::clone(&later);
                tokio::spawn(async move { println!("then {}", subscribe(&api, &names).await) });
            }
        }
    });
    loop {
        tokio::select! {
            shutdown = integration.shutdown_requested() => {
                println!("shutdown {}", shutdown.map(|s| s.reason).unwrap_or_default());
                return Ok(());
            }
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                let call: ModuleCall = inv.params()?;
                if call.method == "report" {
                    let text = seen.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
                    inv.respond(&ModuleCallResult { result: text.into_bytes() })?;
                } else if call.method == "subscribe" {
                    let names = String::from_utf8_lossy(&call.params).into_owned();
                    let api = Arc::clone(&api);
                    tokio::spawn(async move {
                        let answer = subscribe(&api, &names).await;
                        let _ = inv.respond(&ModuleCallResult { result: answer.into_bytes() });
                    });
                } else if call.method == "wait" {
                    // Answers once an event whose line contains the params
                    // has been seen: a test waits on this, not on a timer.
                    let needle = String::from_utf8_lossy(&call.params).into_owned();
                    let (seen, arrived) = (Arc::clone(&seen), Arc::clone(&arrived));
                    tokio::spawn(async move {
                        loop {
                            let notified = arrived.notified();
                            let found = seen
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .iter()
                                .find(|l| l.contains(&needle))
                                .cloned();
                            if let Some(line) = found {
                                let _ = inv.respond(&ModuleCallResult { result: line.into_bytes() });
                                return;
                            }
                            notified.await;
                        }
                    });
                } else {
                    let error = RemoteError::method_not_found(&call.method);
                    inv.reject(error);
                }
            }
        }
    }
}
