//! A scriptable module for the integration tests.
//!
//! `BLVM_TEST_MODE` picks a behaviour; every observation is one line on
//! stdout (`EVENT <seq> <name> ...`, `RESULT ...`, `DENIED ...`), which the
//! test reads. Lines are flushed at once so the test never waits on a
//! buffer.

use std::io::Write;

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult, MODULE_CALL};
use blvm_sdk::protocol::{ErrorCode, Event, EventType, LogLevel, LogRecord, RemoteError};
use blvm_sdk::{ModuleIntegration, SdkError};

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn event_types() -> Vec<EventType> {
    std::env::var("BLVM_TEST_EVENTS")
        .unwrap_or_else(|_| "NewBlock".into())
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|n| EventType::from_name(n).unwrap_or_else(|| panic!("unknown event type {n}")))
        .collect()
}

fn describe(event: &Event) -> String {
    match event {
        Event::NewBlock(b) => format!("{} {}", b.height, b.block_hash),
        Event::ModuleLoaded(m) => format!("{} {}", m.module_name, m.version),
        Event::Unknown { name, .. } => format!("unknown {name}"),
        other => format!("{other:?}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut integration = match ModuleIntegration::from_env().await {
        Ok(i) => i,
        Err(SdkError::Refused { code, reason }) => {
            say(format!("REFUSED {code} {reason}"));
            return;
        }
        Err(e) => {
            say(format!("ERROR {e}"));
            std::process::exit(2);
        }
    };
    let caps: Vec<_> = integration.welcome().capabilities.iter().map(|p| p.as_str()).collect();
    say(format!("WELCOME {}", caps.join(",")));
    // The mode comes from the environment when a test spawns the module
    // itself, and from the module's config (`config.toml`, delivered in
    // `welcome`) when the module manager does.
    let mode = std::env::var("BLVM_TEST_MODE")
        .ok()
        .or_else(|| integration.welcome().config.get("mode").cloned())
        .unwrap_or_else(|| "events".into());
    let result = match mode.as_str() {
        "events" => events(&mut integration).await,
        "concurrent" => concurrent(&mut integration).await,
        "denied" => denied(&integration).await,
        "stall" => stall(&mut integration).await,
        "invoke" => invoke(&integration).await,
        "log" => log(&integration).await,
        "log-exit" => log_exit(&integration).await,
        "crash" => std::process::exit(3),
        "serve" => serve(&integration).await,
        other => {
            say(format!("ERROR unknown mode {other}"));
            Ok(())
        }
    };
    if let Err(e) = result {
        say(format!("ERROR {e}"));
        std::process::exit(1);
    }
}

/// Subscribes and reports every event until the connection closes.
async fn events(integration: &mut ModuleIntegration) -> Result<(), SdkError> {
    let subscribed = integration.subscribe_events(event_types()).await?;
    say(format!("SUBSCRIBED {}", subscribed.join(",")));
    let mut rx = integration.event_receiver()?;
    while let Some(received) = rx.recv().await {
        say(format!(
            "EVENT {} {} {}",
            received.seq,
            received.event.name(),
            describe(&received.event)
        ));
    }
    say("CLOSED");
    Ok(())
}

/// 64 requests in flight at once while events stream in; reports each
/// answer, then the count of events seen meanwhile.
async fn concurrent(integration: &mut ModuleIntegration) -> Result<(), SdkError> {
    integration.subscribe_events(vec![EventType::NewBlock]).await?;
    let mut rx = integration.event_receiver()?;
    say("READY");
    let api = integration.node_api();
    let mut tasks = Vec::new();
    for height in 0..64u64 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let hash = api.get_block_hash(height).await?;
            let block = api.get_block_by_height(height).await?;
            Ok::<_, SdkError>((height, hash, block.map(|b| b.len())))
        }));
    }
    let counter = tokio::spawn(async move {
        let mut n = 0u64;
        let mut last = 0;
        while let Some(e) = rx.recv().await {
            n += 1;
            last = e.seq;
            if let Event::NewBlock(b) = &e.event {
                if b.height == u64::MAX {
                    break;
                }
            }
        }
        (n, last)
    });
    for t in tasks {
        let (height, hash, len) = t.await.map_err(|e| SdkError::Io(std::io::Error::other(e)))??;
        let hash = hash.map(|h| h.to_string()).unwrap_or_else(|| "none".into());
        say(format!("RESULT {height} {hash} {}", len.unwrap_or(0)));
    }
    say("REQUESTS DONE");
    let (n, last) = counter.await.map_err(|e| SdkError::Io(std::io::Error::other(e)))?;
    say(format!("EVENTS {n} {last}"));
    Ok(())
}

/// A denied request, then ordinary ones on the same connection.
async fn denied(integration: &ModuleIntegration) -> Result<(), SdkError> {
    let api = integration.node_api();
    match api.get_utxo(blvm_sdk::Hash32([0; 32]), 0).await {
        Err(SdkError::Remote(RemoteError { code, capability, .. })) => {
            say(format!("DENIED {code} {}", capability.unwrap_or_default()));
        }
        other => say(format!("UNEXPECTED {other:?}")),
    }
    api.ping().await?;
    say("PING OK");
    say(format!("HEIGHT {}", api.get_block_height().await?));
    Ok(())
}

/// Subscribes, then stops reading its socket for good: the SDK's tasks
/// live on this thread's runtime, and this thread now blocks.
async fn stall(integration: &mut ModuleIntegration) -> Result<(), SdkError> {
    integration.subscribe_events(event_types()).await?;
    say("STALLED");
    loop {
        std::thread::park();
    }
}

/// Runs until the node says `shutdown`, answering `module_call`s:
/// `hold` is never answered (a pending request), `flood` writes megabytes
/// to stdout and stderr first, `grandchild` starts a process that leaves
/// the module's process group with `setsid` and answers its pid.
async fn serve(integration: &ModuleIntegration) -> Result<(), SdkError> {
    let mut invocations = integration.invocation_receiver()?;
    let mut held = Vec::new();
    loop {
        tokio::select! {
            shutdown = integration.shutdown_requested() => {
                say(format!("SHUTDOWN {:?}", shutdown.map(|s| s.reason)));
                if integration.welcome().config.contains_key("ignore_shutdown") {
                    loop {
                        std::thread::park();
                    }
                }
                return Ok(());
            }
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                let call: ModuleCall = inv.params()?;
                match call.method.as_str() {
                    "hold" => held.push(inv),
                    "flood" => {
                        let chunk = vec![b'x'; 64 * 1024];
                        for _ in 0..128 {
                            std::io::stdout().lock().write_all(&chunk).map_err(SdkError::Io)?;
                            std::io::stderr().lock().write_all(&chunk).map_err(SdkError::Io)?;
                        }
                        inv.respond(&ModuleCallResult { result: b"flooded".to_vec() })?;
                    }
                    "request-flood" => {
                        // N pings, 256 in flight: how many the node served
                        // and how many it answered `rate_limited`.
                        let n: usize = String::from_utf8_lossy(&call.params).trim().parse().unwrap_or(0);
                        let api = integration.node_api();
                        let (mut ok, mut limited, mut other) = (0u64, 0u64, 0u64);
                        let mut in_flight = tokio::task::JoinSet::new();
                        for i in 0..n {
                            let api = api.clone();
                            in_flight.spawn(async move { api.ping().await });
                            if in_flight.len() >= 256 || i + 1 == n {
                                while let Some(done) = in_flight.join_next().await {
                                    match done.map_err(|e| SdkError::Io(std::io::Error::other(e)))? {
                                        Ok(()) => ok += 1,
                                        Err(SdkError::Remote(e)) if e.code == ErrorCode::RateLimited => limited += 1,
                                        Err(_) => other += 1,
                                    }
                                }
                            }
                        }
                        let text = format!("OK {ok} LIMITED {limited} OTHER {other}");
                        inv.respond(&ModuleCallResult { result: text.into_bytes() })?;
                    }
                    "grandchild" => {
                        // The pid is printed by the program `setsid` runs, so
                        // the answer means the grandchild has left the
                        // module's session and process group.
                        let out = std::process::Command::new("/bin/sh")
                            .args(["-c", "setsid /bin/sh -c 'echo $$; exec sleep 600 >/dev/null 2>&1' &"])
                            .stdin(std::process::Stdio::null())
                            .output()
                            .map_err(SdkError::Io)?;
                        inv.respond(&ModuleCallResult { result: out.stdout.trim_ascii().to_vec() })?;
                    }
                    other => {
                        let error = RemoteError::method_not_found(other);
                        inv.reject(error);
                    }
                }
            }
        }
    }
}

/// Sends a log line, then a ping: the node handles frames in order, so
/// once the ping is answered the log line has been recorded.
async fn log(integration: &ModuleIntegration) -> Result<(), SdkError> {
    integration.ipc().log(&LogRecord {
        level: LogLevel::Warn,
        target: "test_module::log".into(),
        message: "hello from the module".into(),
        fields: [("answer".to_string(), "42".to_string())].into(),
    })?;
    integration.node_api().ping().await?;
    say("LOGGED");
    Ok(())
}

/// Sends a log line, flushes, and exits at once, with no request after it
/// and without dropping the runtime: only `flush` can get the line out.
async fn log_exit(integration: &ModuleIntegration) -> Result<(), SdkError> {
    integration.ipc().log(&LogRecord {
        level: LogLevel::Warn,
        target: "test_module::log_exit".into(),
        message: "last words before exit".into(),
        fields: Default::default(),
    })?;
    integration.flush().await?;
    std::process::exit(0);
}

/// Answers `module_call` invocations by asking the node for its height
/// first: an invocation and a module request in flight together.
async fn invoke(integration: &ModuleIntegration) -> Result<(), SdkError> {
    let mut invocations = integration.invocation_receiver()?;
    let api = integration.node_api();
    say("READY");
    while let Some(inv) = invocations.recv().await {
        if inv.method() != MODULE_CALL {
            let error = RemoteError::method_not_found(inv.method());
            inv.reject(error);
            continue;
        }
        let call: ModuleCall = inv.params()?;
        let height = api.get_block_height().await?;
        say(format!("CALLED {} {}", call.caller, call.method));
        inv.respond(&ModuleCallResult {
            result: height.to_be_bytes().to_vec(),
        })?;
    }
    Ok(())
}
