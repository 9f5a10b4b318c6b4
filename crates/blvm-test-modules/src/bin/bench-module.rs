//! The module side of the benchmarks. `BLVM_BENCH_MODE` (or, loaded by
//! a node's module manager, `mode` in its `config.toml`) picks what to
//! measure; results are printed as one `key value...` line each, with
//! times measured inside this process.
//!
//! - `rtt <n>`: `n` sequential `ping` round trips; prints every latency's
//!   p50/p99/mean in nanoseconds.
//! - `inflight <tasks> <per_task>`: `tasks` concurrent loops of `ping`;
//!   prints requests and elapsed nanoseconds.
//!
//! With `BLVM_BENCH_GATE` set, `rtt` and `inflight` print `WARM` before
//! their measured span, and `rtt`, `inflight` and `events` print `DONE`
//! after their result, each time waiting for a line on stdin, so that the
//! bench can read this process's CPU and syscall counters around the span.
//! - `events <n>`: subscribes to `NewBlock` and counts events until one
//!   with height `u64::MAX`; prints the count, the last sequence number and
//!   the nanoseconds from the first event to the last.
//! - `storage <n>`: `n` rounds of a `storage_put` of 100 bytes, a
//!   `storage_get` of it and a `ping`, interleaved; prints each one's p50
//!   in nanoseconds.
//! - `callee`: registers the API method `echo`, prints `READY`, and
//!   answers every `module_call` with its params until the connection
//!   closes.
//! - `caller <callee> <n>`: `n` rounds of a `call_module` of the callee's
//!   `echo` with 32 bytes and a `ping`, interleaved; prints each one's p50
//!   in nanoseconds.

use std::io::Write;
use std::time::Instant;

use blvm_sdk::protocol::Event;
use blvm_sdk::{EventType, ModuleIntegration, SdkError};

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// When the bench gates this module (`BLVM_BENCH_GATE` set), prints `tag`
/// and waits for a line on stdin: the bench reads this process's procfs
/// counters while it waits, so that they cover the measured span only.
fn hold(tag: &str) {
    if std::env::var_os("BLVM_BENCH_GATE").is_some() {
        say(tag.into());
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}

fn arg(args: &[&str], i: usize) -> u64 {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(1000)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let mut integration = ModuleIntegration::from_env().await?;
    // Spawned by the bench directly: the mode is in the environment;
    // loaded by a node's module manager: in its `config.toml` (`mode`).
    let mode = match std::env::var("BLVM_BENCH_MODE") {
        Ok(m) if !m.is_empty() => m,
        _ => integration.welcome().config.get("mode").cloned().unwrap_or_default(),
    };
    let args: Vec<&str> = mode.split(' ').collect();
    let api = integration.node_api();
    match args[0] {
        "rtt" => {
            let n = arg(&args, 1) as usize;
            // In a spawned task, as a module's request loop usually is; the
            // runtime then runs it straight from its queue when the answer
            // arrives instead of re-polling the driver for `block_on`'s
            // future.
            let task = tokio::spawn(async move {
                for _ in 0..n / 10 {
                    api.ping().await?;
                }
                hold("WARM");
                let mut lat = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    api.ping().await?;
                    lat.push(t.elapsed().as_nanos() as u64);
                }
                Ok::<_, SdkError>(lat)
            });
            let mut lat = task.await.map_err(|e| SdkError::Io(std::io::Error::other(e)))??;
            lat.sort_unstable();
            let mean = lat.iter().sum::<u64>() / n as u64;
            say(format!("RTT {} {} {}", lat[n / 2], lat[n * 99 / 100], mean));
            hold("DONE");
        }
        "inflight" => {
            let tasks = arg(&args, 1);
            let per_task = arg(&args, 2);
            hold("WARM");
            let start = Instant::now();
            let mut handles = Vec::new();
            for _ in 0..tasks {
                let api = api.clone();
                handles.push(tokio::spawn(async move {
                    for _ in 0..per_task {
                        api.ping().await?;
                    }
                    Ok::<_, SdkError>(())
                }));
            }
            for h in handles {
                h.await.map_err(|e| SdkError::Io(std::io::Error::other(e)))??;
            }
            say(format!("INFLIGHT {} {}", tasks * per_task, start.elapsed().as_nanos()));
            hold("DONE");
        }
        "events" => {
            integration.subscribe_events(vec![EventType::NewBlock]).await?;
            let mut rx = integration.event_receiver()?;
            say("READY".into());
            let mut count = 0u64;
            let mut last_seq = 0;
            let mut first: Option<Instant> = None;
            let mut batch = Vec::with_capacity(1024);
            'recv: while rx.recv_many(&mut batch, 1024).await > 0 {
                first.get_or_insert_with(Instant::now);
                for e in batch.drain(..) {
                    count += 1;
                    last_seq = e.seq;
                    if matches!(&e.event, Event::NewBlock(b) if b.height == u64::MAX) {
                        break 'recv;
                    }
                }
            }
            let elapsed = first.map_or(0, |f| f.elapsed().as_nanos());
            say(format!(
                "EVENTS {count} {last_seq} {elapsed} {}",
                integration.ipc().dropped_events()
            ));
            hold("DONE");
        }
        "storage" => {
            let n = arg(&args, 1) as usize;
            let value = [7u8; 100];
            let (mut put, mut get, mut ping) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..n + n / 10 {
                let key = format!("k{}", i % 100);
                let t = Instant::now();
                api.storage_put("bench", key.as_bytes(), &value).await?;
                let p = t.elapsed().as_nanos() as u64;
                let t = Instant::now();
                api.storage_get("bench", key.as_bytes()).await?;
                let g = t.elapsed().as_nanos() as u64;
                let t = Instant::now();
                api.ping().await?;
                let q = t.elapsed().as_nanos() as u64;
                // The first tenth warms up (the store is created on the
                // first put).
                if i >= n / 10 {
                    put.push(p);
                    get.push(g);
                    ping.push(q);
                }
            }
            for v in [&mut put, &mut get, &mut ping] {
                v.sort_unstable();
            }
            say(format!("STORAGE {} {} {}", put[n / 2], get[n / 2], ping[n / 2]));
        }
        "callee" => {
            use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult};
            let mut invocations = integration.invocation_receiver()?;
            api.register_module_api(&[("echo", "answers its params")]).await?;
            say("READY".into());
            while let Some(inv) = invocations.recv().await {
                let call: ModuleCall = inv.params()?;
                inv.respond(&ModuleCallResult { result: call.params })?;
            }
        }
        "caller" => {
            let callee = args.get(1).copied().unwrap_or_default();
            let n = arg(&args, 2) as usize;
            let (mut call, mut ping) = (Vec::new(), Vec::new());
            for i in 0..n + n / 10 {
                let t = Instant::now();
                api.call_module(callee, "echo", vec![7u8; 32], None).await?;
                let c = t.elapsed().as_nanos() as u64;
                let t = Instant::now();
                api.ping().await?;
                let q = t.elapsed().as_nanos() as u64;
                if i >= n / 10 {
                    call.push(c);
                    ping.push(q);
                }
            }
            call.sort_unstable();
            ping.sort_unstable();
            say(format!("CALLS {} {}", call[n / 2], ping[n / 2]));
        }
        other => say(format!("ERROR unknown mode {other}")),
    }
    Ok(())
}
