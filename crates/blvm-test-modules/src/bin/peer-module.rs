//! A module that talks to other modules, for the inter-module tests:
//! discovery, its own API, calls to others' APIs, publishing and
//! receiving events.
//!
//! Config (from `config.toml`): `api` = comma-separated methods to
//! register at start (`echo`, `hold`, `crash`); `subscribe` =
//! comma-separated event names to subscribe to at start. It prints
//! `READY` once both are done, and `EVENT <name> <origin or -> <detail>`
//! for every event it receives.
//!
//! Its API (calls from other modules, `module_call` with the caller's
//! name): `echo` answers `caller=<caller> params=<params>`; `hold` prints
//! `HOLDING <params>` and answers `released <params>` only once the test
//! sends `release <params>`; `crash` exits at once, unanswered.
//!
//! Commands from the test (`module_call` with caller `test`; params and
//! answers are text, `ERROR <code> <capability or -> <message>` on
//! failure): `call <module> <method> <params> [timeout_ms]`;
//! `call-spoofing <module> <method> <params>` (the same with an extra
//! `caller: "mallory"` field in the request); `discover`;
//! `register <m1,m2>`; `publish <event> <n>` (a payment event carries
//! payment id `p<n>`, a custom event the map `{n: <n>}`);
//! `subscribe <names>`; `release <params>`; `ping`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use blvm_sdk::protocol::events::{Event, PaymentSettled};
use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult};
use blvm_sdk::protocol::{Hash32, RemoteError};
use blvm_sdk::{Invocation, ModuleIntegration, NodeApiIpc, SdkError};
use blvm_test_modules::error_line as error;
use tokio::sync::oneshot;

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Calls held by `hold`, by their params, until `release`.
type Held = Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>;

#[derive(serde::Serialize)]
struct Spoofed<'a> {
    module: &'a str,
    method: &'a str,
    #[serde(with = "serde_bytes_compat")]
    params: &'a [u8],
    caller: &'a str,
}

mod serde_bytes_compat {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
}

#[derive(serde::Serialize)]
struct Counter {
    n: u64,
}

async fn command(api: &NodeApiIpc, held: &Held, method: &str, params: &str) -> String {
    let words: Vec<&str> = params.split_whitespace().collect();
    match (method, words.as_slice()) {
        ("call", [module, m, p, rest @ ..]) => {
            let timeout = rest
                .first()
                .and_then(|t| t.parse().ok())
                .map(std::time::Duration::from_millis);
            match api.call_module(module, m, p.as_bytes().to_vec(), timeout).await {
                Ok(r) => format!("OK {}", String::from_utf8_lossy(&r)),
                Err(e) => error(e),
            }
        }
        ("call-spoofing", [module, m, p]) => {
            let req = Spoofed {
                module,
                method: m,
                params: p.as_bytes(),
                caller: "mallory",
            };
            match api
                .client()
                .request::<_, blvm_sdk::protocol::methods::modules::CallModuleResult>("call_module", &req)
                .await
            {
                Ok(r) => format!("OK {}", String::from_utf8_lossy(&r.result)),
                Err(e) => error(e),
            }
        }
        ("discover", _) => match api.discover_modules().await {
            Ok(modules) => modules
                .iter()
                .map(|m| {
                    let methods: Vec<&str> = m.methods.iter().map(|x| x.name.as_str()).collect();
                    format!("{} {} {}", m.name, m.version, methods.join(","))
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => error(e),
        },
        ("register", [names]) => {
            let methods: Vec<(&str, &str)> = names.split(',').map(|n| (n, "a test method")).collect();
            match api.register_module_api(&methods).await {
                Ok(api) => format!("OK {}", api.len()),
                Err(e) => error(e),
            }
        }
        ("publish", [event, n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let result = if event.contains('.') {
                match rmp_serde::to_vec_named(&Counter { n }) {
                    Ok(payload) => api.publish_event(event, payload).await,
                    Err(e) => return format!("ERROR local - {e}"),
                }
            } else if *event == "PaymentSettled" {
                api.publish(&Event::from(PaymentSettled {
                    payment_id: format!("p{n}"),
                    txid: Hash32([7; 32]),
                    confirmations: 1,
                }))
                .await
            } else {
                // Any other name: published with an empty map, for the
                // node to refuse (a node event, an undeclared one).
                api.publish_event(event, vec![0x80]).await
            };
            match result {
                Ok(delivered) => format!("OK {delivered}"),
                Err(e) => error(e),
            }
        }
        ("subscribe", [names]) => {
            let names: Vec<&str> = names.split(',').collect();
            match api.subscribe_event_names(&names).await {
                Ok(now) => format!("OK {}", now.join(",")),
                Err(e) => error(e),
            }
        }
        ("release", [key]) => match held.lock().unwrap_or_else(|p| p.into_inner()).remove(*key) {
            Some(tx) => {
                let _ = tx.send(());
                "OK".to_owned()
            }
            None => format!("ERROR local - nothing held as {key}"),
        },
        ("ping", _) => match api.ping().await {
            Ok(()) => "PONG".to_owned(),
            Err(e) => error(e),
        },
        _ => format!("ERROR local - bad command `{method} {params}`"),
    }
}

/// Serves one invocation on its own task, so that a held call or a slow
/// command never holds up the next invocation.
fn serve(inv: Invocation, api: Arc<NodeApiIpc>, held: Held) {
    tokio::spawn(async move {
        let call: ModuleCall = match inv.params() {
            Ok(c) => c,
            Err(_) => return,
        };
        let params = String::from_utf8_lossy(&call.params).into_owned();
        let answer = if call.caller == "test" {
            command(&api, &held, &call.method, &params).await
        } else {
            match call.method.as_str() {
                "echo" => format!("caller={} params={params}", call.caller),
                "hold" => {
                    let (tx, rx) = oneshot::channel();
                    held.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(params.clone(), tx);
                    say(&format!("HOLDING {params}"));
                    let _ = rx.await;
                    format!("released {params}")
                }
                "crash" => std::process::exit(7),
                other => {
                    inv.reject(RemoteError::method_not_found(other));
                    return;
                }
            }
        };
        let _ = inv.respond(&ModuleCallResult {
            result: answer.into_bytes(),
        });
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let mut integration = ModuleIntegration::from_env().await?;
    let mut invocations = integration.invocation_receiver()?;
    let api = integration.node_api();
    let config = integration.welcome().config.clone();
    if let Some(names) = config.get("api") {
        let methods: Vec<(&str, &str)> = names.split(',').map(|n| (n, "a test method")).collect();
        api.register_module_api(&methods).await?;
    }
    let mut events = None;
    if let Some(names) = config.get("subscribe") {
        let names: Vec<&str> = names.split(',').collect();
        api.subscribe_event_names(&names).await?;
        events = Some(integration.event_receiver()?);
    }
    say("READY");
    let held: Held = Arc::default();
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => return Ok(()),
            received = async { events.as_mut()?.recv().await }, if events.is_some() => {
                let Some(received) = received else { return Ok(()) };
                let detail = match &received.event {
                    Event::PaymentSettled(p) => p.payment_id.clone(),
                    Event::Unknown { payload, .. } => format!("{} bytes", payload.len()),
                    other => other.name().to_owned(),
                };
                say(&format!(
                    "EVENT {} {} {detail}",
                    received.event.name(),
                    received.origin.as_deref().unwrap_or("-")
                ));
            }
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                serve(inv, Arc::clone(&api), Arc::clone(&held));
            }
        }
    }
}
