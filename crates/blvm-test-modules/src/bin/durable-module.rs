//! A module on the durable path: subscribes to chain events durably and
//! prints each one it receives on stdout (the node logs module stdout), so
//! a test sees exactly what reached it across crashes and restarts:
//!
//! - `durable <dseq> <event> <height> <hash>` for each event, `acked
//!   <dseq>` after the node stored its acknowledgement;
//! - `subscribed <cursor seq> <cursor height|none>` at start, or
//!   `refused <error>` when the node refuses the subscription, then `ack
//!   refused <error>` for an ack without one.
//!
//! Config: `events` (comma-separated, default all three chain events),
//! `start_height` (first height for a module without a cursor), and
//! `crash_before_ack_at` (a height): the first time it receives that
//! block's `NewBlock` it prints it, leaves a mark in its data dir and
//! aborts before acknowledging (later spawns find the mark and go on);
//! `hold_acks_after` (a height): every event past that height's
//! `NewBlock` is printed and never acknowledged (`held <dseq>`), so the
//! node's durable lag and unacknowledged count grow.

use blvm_sdk::protocol::{Event, EventType};
use blvm_sdk::{ModuleIntegration, SdkError};

fn describe(event: &Event) -> (String, u64, String) {
    match event {
        Event::NewBlock(b) => ("NewBlock".into(), b.height, b.block_hash.to_string()),
        Event::BlockDisconnected(b) => ("BlockDisconnected".into(), b.height, b.block_hash.to_string()),
        Event::ChainReorg(r) => (
            format!(
                "ChainReorg(fork={},-{},+{})",
                r.fork_height, r.disconnected, r.connected
            ),
            r.new_height,
            r.new_tip.to_string(),
        ),
        other => (other.name().to_owned(), 0, String::new()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let mut integration = ModuleIntegration::from_env().await?;
    let config = integration.welcome().config.clone();
    let mark = std::path::Path::new(&integration.welcome().data_dir).join("crashed-once");
    let types: Vec<EventType> = config
        .get("events")
        .map(String::as_str)
        .unwrap_or("NewBlock,BlockDisconnected,ChainReorg")
        .split(',')
        .filter_map(|n| EventType::from_name(n.trim()))
        .collect();
    let start_height = config.get("start_height").and_then(|h| h.parse().ok());
    let crash_at: Option<u64> = config.get("crash_before_ack_at").and_then(|h| h.parse().ok());
    let hold_after: Option<u64> = config.get("hold_acks_after").and_then(|h| h.parse().ok());
    let mut holding = false;
    let mut events = integration.event_receiver()?;
    let api = integration.node_api();
    let subscribed = match api.subscribe_durable(&types, start_height).await {
        Ok(subscribed) => subscribed,
        Err(e) => {
            // Refused: say why, show that an ack without a subscription is
            // refused too, and stay connected until the node says stop.
            println!("refused {e}");
            if let Err(e) = api.ack_events(1).await {
                println!("ack refused {e}");
            }
            let _ = integration.shutdown_requested().await;
            return Ok(());
        }
    };
    let at = subscribed.cursor.at.map_or("none".to_owned(), |p| p.height.to_string());
    println!("subscribed {} {at}", subscribed.cursor.seq);
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => return Ok(()),
            e = events.recv() => {
                let Some(e) = e else { return Ok(()) };
                let Some(durable) = e.durable else { continue };
                let (name, height, hash) = describe(&e.event);
                println!("durable {} {name} {height} {hash}", durable.seq);
                if name == "NewBlock" && Some(height) == crash_at && !mark.exists() {
                    std::fs::write(&mark, b"1").map_err(SdkError::Io)?;
                    // Received, not acknowledged: the node must send it again.
                    std::process::abort();
                }
                holding |= name == "NewBlock" && hold_after.is_some_and(|h| height > h);
                if holding {
                    println!("held {}", durable.seq);
                    continue;
                }
                let cursor = api.ack_events(durable.seq).await?;
                println!("acked {}", cursor.seq);
            }
        }
    }
}
