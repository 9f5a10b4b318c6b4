//! `python`: the Python SDK (`sdk/python`, the `blvm-module` package)
//! beside the Rust SDK (`blvm-sdk`), by one method. Both bench modules
//! (`bench-module` and `python/bench_module.py`) speak the same modes and
//! print the same lines; each round runs, alternately, a Rust and a Python
//! module process against the same node-side IPC server:
//!
//! - `rtt`: `n` sequential `ping` round trips after a tenth as many
//!   uncounted, latencies measured inside the module; p50 and p99, and
//!   both processes' CPU time, wake-ups and syscalls per round trip over
//!   the measured span (see `gate`);
//! - `events`: `n` `NewBlock` events published to one module (a queue of
//!   1024), delivered per second from the first to the last, the share
//!   dropped at the node when the module reads too slowly, and the cost
//!   per event of each side.
//!
//! The ratios (Python / Rust) are taken inside each round. Needs `python3`
//! with `msgpack` (the SDK's one dependency).

use crate::events::{block, deliver_to};
use crate::procstat::ProcStat;
use crate::rounds::Rounds;
use crate::{numbers, Bench, Error, Sdk};

/// One SDK's `rtt` in one round.
struct Rtt {
    p50_ns: u64,
    p99_ns: u64,
    node: ProcStat,
    module: ProcStat,
}

fn rtt(bench: &Bench, sdk: Sdk, n: usize) -> Result<Rtt, Error> {
    let (_, child) = bench.spawn_sdk_gated(sdk, &format!("rtt {n}"), 100)?;
    let (line, node, module) = child.measure()?;
    let result = numbers(&line);
    let [_, p50_ns, p99_ns, _mean] = result[..] else {
        return Err(format!("the {sdk:?} bench module answered {line:?}").into());
    };
    Ok(Rtt {
        p50_ns,
        p99_ns,
        node,
        module,
    })
}

/// Runs `rounds` interleaved rounds (after an uncounted one): `rtt_n` round
/// trips and `events_n` events per SDK and round.
pub(crate) fn run(bench: &Bench, rounds: usize, rtt_n: usize, events_n: u64) -> Result<Rounds, Error> {
    let events: Vec<_> = (0..439).map(|h| block(bench, h)).collect();
    let (mut r, mut warm_up) = (Rounds::new(), Rounds::new());
    for round in 0..=rounds {
        let r = if round == 0 { &mut warm_up } else { &mut r };
        for (sdk, name) in [(Sdk::Rust, "rust"), (Sdk::Python, "python")] {
            let side = rtt(bench, sdk, rtt_n)?;
            r.record(&format!("{name} ping p50"), "us", side.p50_ns as f64 / 1e3);
            r.record(&format!("{name} ping p99"), "us", side.p99_ns as f64 / 1e3);
            side.node
                .record_per_op(r, &format!("{name} ping"), "node", rtt_n as u64);
            side.module
                .record_per_op(r, &format!("{name} ping"), "module", rtt_n as u64);
        }
        for (sdk, name) in [(Sdk::Rust, "rust events"), (Sdk::Python, "python events")] {
            deliver_to(bench, sdk, name, &events, 1, events_n, r)?;
        }
    }
    r.ratio("python ping p50 / rust ping p50", "python ping p50", "rust ping p50");
    r.ratio("python ping p99 / rust ping p99", "python ping p99", "rust ping p99");
    r.ratio(
        "python module CPU / rust module CPU, per ping",
        "python ping: module CPU/op",
        "rust ping: module CPU/op",
    );
    r.ratio(
        "python events/s / rust events/s",
        "python events: delivered",
        "rust events: delivered",
    );
    r.ratio(
        "python module CPU / rust module CPU, per event",
        "python events: modules CPU/op",
        "rust events: modules CPU/op",
    );
    Ok(r)
}
