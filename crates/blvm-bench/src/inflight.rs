//! Throughput (`inflight`): 64 requests in flight on one module
//! connection (`bench-module` in mode `inflight`: 64 tasks each awaiting
//! `ping` in a loop) against a raw floor of the same concurrency: a child
//! writes 64 messages of 64 bytes, reads the 64 echoes back, and again,
//! on a raw blocking Unix socket (this process echoes what each read
//! returns). And against the plain stack (see `plain`: 64 tasks over one
//! connection, a writer and a reader task). Interleaved rounds, floor,
//! plain, system; the ratios are taken inside each round.

use std::path::Path;

use crate::gate::Gated;
use crate::rounds::Rounds;
use crate::rtt::echo_floor;
use crate::{numbers, Bench, Error};

/// Runs `rounds` rounds of `tasks × per_task` requests per side.
pub(crate) fn run(bench: &Bench, dir: &Path, rounds: usize, tasks: usize, per_task: usize) -> Result<Rounds, Error> {
    let (mut r, mut warm_up) = (Rounds::new(), Rounds::new());
    let requests = (tasks * per_task) as u64;
    // Round 0 is an uncounted warm-up.
    for round in 0..=rounds {
        let r = if round == 0 { &mut warm_up } else { &mut r };
        let (floor, node, peer) = echo_floor(dir, &format!("batch-{round}"), per_task, tasks)?;
        let [_, _, elapsed] = floor[..] else {
            return Err(format!("raw-client answered {floor:?}").into());
        };
        r.record(
            "floor: requests",
            "k requests/s",
            requests as f64 / elapsed.max(1) as f64 * 1e6,
        );
        node.record_per_op(r, "floor", "node", requests);
        peer.record_per_op(r, "floor", "client", requests);

        let path = bench.plain.rpc_path().display().to_string();
        let args = [
            "plain-client",
            &path,
            "inflight",
            &per_task.to_string(),
            &tasks.to_string(),
        ];
        let (line, node, peer) = Gated::own(&args)?.measure()?;
        let result = numbers(&line);
        let [reqs, ns] = result[..] else {
            return Err(format!("plain-client answered {result:?}").into());
        };
        r.record("plain: requests", "k requests/s", reqs as f64 / ns.max(1) as f64 * 1e6);
        node.record_per_op(r, "plain", "node", reqs);
        peer.record_per_op(r, "plain", "client", reqs);

        let (line, node, peer) = bench.spawn_gated(&format!("inflight {tasks} {per_task}"))?.measure()?;
        let result = numbers(&line);
        let [_, reqs, ns] = result[..] else {
            return Err(format!("bench-module answered {result:?}").into());
        };
        r.record("module: requests", "k requests/s", reqs as f64 / ns.max(1) as f64 * 1e6);
        node.record_per_op(r, "module", "node", reqs);
        peer.record_per_op(r, "module", "module", reqs);
    }
    r.ratio("module / floor", "module: requests", "floor: requests");
    r.ratio("module / plain", "module: requests", "plain: requests");
    r.ratio(
        "module CPU / floor CPU, node side",
        "module: node CPU/op",
        "floor: node CPU/op",
    );
    Ok(r)
}
