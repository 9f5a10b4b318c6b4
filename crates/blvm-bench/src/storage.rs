//! Module storage round trips: a real module process puts 100 bytes,
//! gets them back and pings, interleaved, `n` times per round; each round
//! is a fresh process with a store of its own. A put is a durable redb
//! commit (fsync), so it measures the disk as much as the IPC; a get is a
//! read transaction; the ping beside them is the IPC floor of the same
//! round, and the ratios to it are taken inside each round (see
//! `rounds`).

use crate::rounds::Rounds;
use crate::{Bench, Error};

/// Inter-module call round trips: a caller module calls a callee module's
/// `echo` (32 bytes) and pings, interleaved, `n` times per round; each
/// round is a fresh pair of processes. A call crosses the node twice
/// (caller → node → callee → node → caller); the ping beside it is the
/// IPC floor of the same round, and the ratio is taken inside each round.
pub(crate) fn run_calls(bench: &Bench, rounds: usize, n: usize) -> Result<Rounds, Error> {
    let mut r = Rounds::new();
    for _ in 0..rounds {
        let (callee, mut child) = bench.spawn_ready("callee")?;
        let result = bench.run_module(&format!("caller {callee} {n}"));
        let _ = child.kill();
        let _ = child.wait();
        let result = result?;
        let [_, call, ping] = result[..] else {
            return Err(format!("caller module answered {result:?}").into());
        };
        r.record("call_module p50", "us", call as f64 / 1e3);
        r.record("ping p50", "us", ping as f64 / 1e3);
    }
    r.ratio("call / ping", "call_module p50", "ping p50");
    Ok(r)
}

/// Runs `rounds` rounds of `n` storage round trips each.
pub(crate) fn run(bench: &Bench, rounds: usize, n: usize) -> Result<Rounds, Error> {
    let mut r = Rounds::new();
    for _ in 0..rounds {
        let result = bench.run_module(&format!("storage {n}"))?;
        let [_, put, get, ping] = result[..] else {
            return Err(format!("storage module answered {result:?}").into());
        };
        r.record("storage_put p50", "us", put as f64 / 1e3);
        r.record("storage_get p50", "us", get as f64 / 1e3);
        r.record("ping p50", "us", ping as f64 / 1e3);
    }
    r.ratio("get / ping", "storage_get p50", "ping p50");
    r.ratio("put / ping", "storage_put p50", "ping p50");
    Ok(r)
}
