//! A module that records the events it receives and reports them when the
//! node asks (`module_call` method `report`), so a test can see exactly
//! what a subscribed module saw, in order. Which events it subscribes to
//! comes from its config key `events` (comma-separated names).

use std::sync::{Arc, Mutex};

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult};
use blvm_sdk::protocol::{Event, EventType, RemoteError};
use blvm_sdk::{ModuleIntegration, SdkError};

fn describe(event: &Event) -> String {
    match event {
        Event::NewBlock(b) => format!("NewBlock {} {}", b.height, b.block_hash),
        Event::BlockDisconnected(b) => format!("BlockDisconnected {} {}", b.height, b.block_hash),
        Event::ChainReorg(r) => format!("ChainReorg {} {}", r.old_tip, r.new_tip),
        other => other.name().to_owned(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let mut integration = ModuleIntegration::from_env().await?;
    let mut invocations = integration.invocation_receiver()?;
    let names = integration.welcome().config.get("events").cloned().unwrap_or_default();
    let types: Vec<EventType> = names.split(',').filter_map(EventType::from_name).collect();
    integration.subscribe_events(types).await?;
    let mut events = integration.event_receiver()?;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let arrived = Arc::new(tokio::sync::Notify::new());
    let record = Arc::clone(&seen);
    let announce = Arc::clone(&arrived);
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let line = format!("{} {}", e.seq, describe(&e.event));
            record.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            announce.notify_waiters();
        }
    });
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => return Ok(()),
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                let call: ModuleCall = inv.params()?;
                if call.method == "report" {
                    let text = seen.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
                    inv.respond(&ModuleCallResult { result: text.into_bytes() })?;
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
