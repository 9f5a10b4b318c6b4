//! Module: the node's chain events into a NATS JetStream stream.
//!
//! It subscribes to `NewBlock`, `BlockDisconnected` and `ChainReorg` on
//! the node's durable path and, for each event in order, publishes one
//! JetStream message on `<subject_prefix>.<event>` with the event's
//! idempotency key (`<network>:<event>:<height>:<hash>`) as `Nats-Msg-Id`,
//! waits for JetStream's acknowledgement that the stream stored it, and
//! only then acknowledges the event to the node. So:
//!
//! - the bridge killed, or the node, between the two acknowledgements:
//!   the node sends the event again, JetStream recognises its id within
//!   its deduplication window and stores it once;
//! - the NATS server down or restarting: the bridge retries the same
//!   event (nothing after it is sent meanwhile; the node keeps the rest,
//!   however many blocks), then goes on in order.
//!
//! The message body is JSON: `event`, `network`, `height`, `hash` (display
//! hex), `header` (hex, for blocks) or the reorg's fields, and `key`.
//! Configuration: see `config.toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use blvm_sdk::protocol::{DurableMark, Event, LogLevel, LogRecord};
use blvm_sdk::{EventType, ModuleIntegration, NodeApiIpc, SdkError};
use serde_json::{json, Value};

/// The longest wait between two attempts to reach NATS.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the bridge is configured with.
struct Config {
    url: String,
    stream: String,
    prefix: String,
    events: Vec<EventType>,
    start_height: Option<u64>,
    duplicate_window: Duration,
    options: Credentials,
    /// For tests of the redelivery path: exit abruptly once JetStream
    /// stored this height's `NewBlock` for the first time (not a
    /// duplicate), before acknowledging it to the node.
    exit_after_publish_at: Option<u64>,
}

/// How the bridge authenticates to NATS.
enum Credentials {
    None,
    UserPassword(String, String),
    Token(String),
}

impl Config {
    fn from(c: &BTreeMap<String, String>) -> Result<Config, String> {
        let get = |k: &str| c.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let events = get("events").unwrap_or_else(|| "NewBlock,BlockDisconnected,ChainReorg".into());
        let events = events
            .split(',')
            .map(str::trim)
            .map(|n| EventType::from_name(n).ok_or_else(|| format!("config `events`: unknown event `{n}`")))
            .collect::<Result<Vec<_>, _>>()?;
        let number = |k: &str| -> Result<Option<u64>, String> {
            get(k)
                .map(|v| v.parse().map_err(|_| format!("config `{k}`: `{v}` is not a number")))
                .transpose()
        };
        let options = match (get("user"), get("password"), get("token")) {
            (Some(u), Some(p), None) => Credentials::UserPassword(u, p),
            (None, None, Some(t)) => Credentials::Token(t),
            (None, None, None) => Credentials::None,
            _ => return Err("config: give user and password, or token, or neither".into()),
        };
        Ok(Config {
            url: get("url").unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            stream: get("stream").unwrap_or_else(|| "BLVM".into()),
            prefix: get("subject_prefix").unwrap_or_else(|| "blvm".into()),
            events,
            start_height: number("start_height")?,
            duplicate_window: Duration::from_secs(number("duplicate_window_secs")?.unwrap_or(120)),
            options,
            exit_after_publish_at: number("exit_after_publish_at")?,
        })
    }
}

/// A JetStream context with its stream ready.
async fn connect(config: &Config) -> Result<jetstream::Context, String> {
    let options = match &config.options {
        Credentials::None => async_nats::ConnectOptions::new(),
        Credentials::UserPassword(u, p) => async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone()),
        Credentials::Token(t) => async_nats::ConnectOptions::with_token(t.clone()),
    };
    let client = options
        .name("blvm nats-bridge")
        .connect(&config.url)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", config.url))?;
    let js = jetstream::new(client);
    js.get_or_create_stream(stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.prefix)],
        storage: stream::StorageType::File,
        duplicate_window: config.duplicate_window,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("stream {}: {e}", config.stream))?;
    Ok(js)
}

/// The JSON body of one event's message.
fn body(event: &Event, mark: &DurableMark, key: &str) -> Value {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut v = json!({
        "event": event.name(),
        "network": mark.network,
        "height": mark.height,
        "hash": mark.hash.to_string(),
        "key": key,
    });
    match event {
        Event::NewBlock(b) => v["header"] = json!(hex(&b.header)),
        Event::BlockDisconnected(b) => v["header"] = json!(hex(&b.header)),
        Event::ChainReorg(r) => {
            v["old_tip"] = json!(r.old_tip.to_string());
            v["old_height"] = json!(r.old_height);
            v["fork_point"] = json!(r.fork_point.to_string());
            v["fork_height"] = json!(r.fork_height);
            v["disconnected"] = json!(r.disconnected);
            v["connected"] = json!(r.connected);
        }
        _ => {}
    }
    v
}

/// Publishes one message until JetStream has stored it; returns its stream
/// sequence and whether it was a duplicate, or `None` when the node asked
/// the module to shut down meanwhile. Reconnects as needed.
async fn publish(
    integration: &ModuleIntegration,
    config: &Config,
    js: &mut Option<jetstream::Context>,
    subject: String,
    key: &str,
    payload: Vec<u8>,
) -> Option<(u64, bool)> {
    let mut backoff = Duration::from_millis(100);
    loop {
        if js.is_none() {
            match connect(config).await {
                Ok(context) => {
                    log(
                        integration,
                        LogLevel::Info,
                        format!("connected to {}, stream {}", config.url, config.stream),
                    );
                    *js = Some(context);
                }
                Err(e) => {
                    log(integration, LogLevel::Warn, format!("{e}; retrying in {backoff:?}"));
                    if !wait(integration, backoff).await {
                        return None;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        let Some(context) = js.as_ref() else { continue };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, key);
        let stored = match context
            .publish_with_headers(subject.clone(), headers, payload.clone().into())
            .await
        {
            Ok(ack) => ack.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(ack) => return Some((ack.sequence, ack.duplicate)),
            Err(e) => {
                log(
                    integration,
                    LogLevel::Warn,
                    format!("JetStream did not store {key}: {e}; retrying in {backoff:?}"),
                );
                if !wait(integration, backoff).await {
                    return None;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                // The client reconnects by itself; a new context also
                // recreates the stream if the server lost it.
                *js = None;
            }
        }
    }
}

/// Waits `pause`; `false` when the node asked for shutdown meanwhile.
async fn wait(integration: &ModuleIntegration, pause: Duration) -> bool {
    tokio::select! {
        _ = integration.shutdown_requested() => false,
        _ = tokio::time::sleep(pause) => true,
    }
}

fn log(integration: &ModuleIntegration, level: LogLevel, message: String) {
    let _ = integration.ipc().log(&LogRecord {
        level,
        target: "nats_bridge".into(),
        message,
        fields: BTreeMap::new(),
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    run().await
}

async fn run() -> Result<(), String> {
    let mut integration = ModuleIntegration::from_env().await.map_err(|e| e.to_string())?;
    let config = Config::from(&integration.welcome().config)?;
    let api: std::sync::Arc<NodeApiIpc> = integration.node_api();
    let mut events = integration.event_receiver().map_err(|e| e.to_string())?;
    let sdk = |e: SdkError| e.to_string();
    let subscribed = api
        .subscribe_durable(&config.events, config.start_height)
        .await
        .map_err(sdk)?;
    println!(
        "resuming after durable event {} ({})",
        subscribed.cursor.seq,
        subscribed
            .cursor
            .at
            .map_or("before genesis".to_owned(), |p| format!("height {}", p.height))
    );
    let mut js = None;
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => {
                return integration.flush().await.map_err(sdk);
            }
            received = events.recv() => {
                let Some(received) = received else { return Err("the node closed the connection".into()) };
                let Some(mark) = received.durable.clone() else { continue };
                let name = received.event.name().to_owned();
                let key = mark.key(&name);
                let payload = body(&received.event, &mark, &key).to_string().into_bytes();
                let subject = format!("{}.{name}", config.prefix);
                let Some((sequence, duplicate)) = publish(&integration, &config, &mut js, subject, &key, payload).await else {
                    // Not stored, not acknowledged: the node sends it again
                    // to the next run.
                    return integration.flush().await.map_err(sdk);
                };
                if !duplicate && name == "NewBlock" && config.exit_after_publish_at == Some(mark.height) {
                    println!("stored {key} stream_seq={sequence}; exiting before the node's ack");
                    std::process::abort();
                }
                api.ack_events(mark.seq).await.map_err(sdk)?;
                // On stdout (the node logs it): what a test and an operator
                // follow.
                println!("published {key} stream_seq={sequence} duplicate={duplicate}");
            }
        }
    }
}
