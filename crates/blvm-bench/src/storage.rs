//! Module storage round trips: a real module process puts 100 bytes,
//! gets them back and pings, interleaved, `n` times per round; each round
//! is a fresh process with a store of its own. The run prints the median of the
//! rounds' p50s with their min–max. A put is a durable redb commit
//! (fsync), so it measures the disk as much as the IPC; a get is a read
//! transaction; the ping beside them is the IPC floor of the same round.

use crate::{Bench, Error};

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Inter-module call round trips: a caller module calls a callee module's
/// `echo` (32 bytes) and pings, interleaved, `n` times per round; each
/// round is a fresh pair of processes. A call crosses the node twice
/// (caller → node → callee → node → caller); the ping beside it is the
/// IPC floor of the same round, and the ratio is taken inside each round.
pub(crate) fn run_calls(bench: &Bench, rounds: usize, n: usize) -> Result<(), Error> {
    let (mut call, mut ping, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (callee, mut child) = bench.spawn_ready("callee")?;
        let r = bench.run_module(&format!("caller {callee} {n}"))?;
        let _ = child.kill();
        let _ = child.wait();
        let [_, c, q] = r[..] else {
            return Err(format!("caller module answered {r:?}").into());
        };
        call.push(c);
        ping.push(q);
        ratio.push(c * 1000 / q.max(1));
    }
    let spread = |v: &[u64]| {
        (
            v.iter().min().copied().unwrap_or(0),
            v.iter().max().copied().unwrap_or(0),
        )
    };
    let (clo, chi) = spread(&call);
    let (plo, phi) = spread(&ping);
    let (rlo, rhi) = spread(&ratio);
    let (c, p, r) = (median(&mut call), median(&mut ping), median(&mut ratio));
    say!(
        "call_module round trip p50 ({rounds} rounds of {n}):                 {:>8.1} µs (rounds {:.1}–{:.1}); ping {:.1} µs ({:.1}–{:.1}); call/ping {:.2}× ({:.2}–{:.2})",
        c as f64 / 1e3,
        clo as f64 / 1e3,
        chi as f64 / 1e3,
        p as f64 / 1e3,
        plo as f64 / 1e3,
        phi as f64 / 1e3,
        r as f64 / 1e3,
        rlo as f64 / 1e3,
        rhi as f64 / 1e3,
    );
    Ok(())
}

/// Runs `rounds` rounds of `n` and prints the figures.
pub(crate) fn run(bench: &Bench, rounds: usize, n: usize) -> Result<(), Error> {
    let (mut put, mut get, mut ping) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let r = bench.run_module(&format!("storage {n}"))?;
        let [_, p, g, q] = r[..] else {
            return Err(format!("storage module answered {r:?}").into());
        };
        put.push(p);
        get.push(g);
        ping.push(q);
    }
    let show = |name: &str, v: &mut Vec<u64>| {
        let (lo, hi) = (
            v.iter().min().copied().unwrap_or(0),
            v.iter().max().copied().unwrap_or(0),
        );
        let m = median(v);
        say!(
            "storage {name:<4} round trip p50 ({rounds} rounds of {n}):                {:>8.1} µs (rounds {:.1}–{:.1})",
            m as f64 / 1e3,
            lo as f64 / 1e3,
            hi as f64 / 1e3
        );
    };
    show("put", &mut put);
    show("get", &mut get);
    show("ping", &mut ping);
    Ok(())
}
