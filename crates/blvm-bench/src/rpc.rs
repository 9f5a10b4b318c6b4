//! "RPC with a spinning module": the round trip of the node's JSON-RPC,
//! measured inside each round of the `spinning` part on the node that has
//! just imported mainnet 0..438 (so with the spinner still spinning on the
//! spinner's side). A figure, never an assertion.
//!
//! The calls go over the node's real server (`RpcServer` with the node's
//! `MethodTable`) on 127.0.0.1, from the node's own blocking `RpcClient`,
//! one TCP connection per call as `blvm-node module …` and `bitcoin-cli`
//! make them, one call at a time. Two calls: `getblockcount` (the
//! server's own cost) and `getblock <hash of 170> 2` (a block read from
//! the store and every transaction decoded into JSON; block 170 spends
//! the first coin).
//!
//! The node's CPU per call is this process's CPU less the calling thread's:
//! the server, the chain and the module host run on the runtime's
//! threads, the client on this one. Loopback TCP charges part of one
//! side's kernel work to the other, so it is an estimate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blvm_node::cli::RpcClient;
use blvm_node::node::{register_methods, Node};
use blvm_node::rpc::{MethodTable, RpcAuth, RpcServer};
use serde_json::{json, Value};

use crate::spinner::{process_cpu, stats};
use crate::Error;

/// The measured calls, as printed and as sent, in the order of [`Calls`]
/// in a round.
const METHODS: [(&str, &str); 2] = [("getblockcount", "getblockcount"), ("getblock <170> 2", "getblock")];

/// One method's calls on one side of one round.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Calls {
    /// Round trip of one call, median, in µs.
    p50: f64,
    /// Round trip of one call, 99th percentile, in µs.
    p99: f64,
    /// Mean wall time per call, in µs.
    wall: f64,
    /// Mean CPU of the node's threads per call, in µs.
    cpu: f64,
}

/// Serves the node's RPC for the time of `calls` calls of each of
/// [`METHODS`] and returns their figures.
pub(crate) fn measure(rt: &tokio::runtime::Runtime, node: &Arc<Node>, calls: usize) -> Result<[Calls; 2], Error> {
    let table = MethodTable::new();
    register_methods(&table, node);
    let auth = RpcAuth {
        user_pass: Some(("bench".into(), "bench".into())),
        cookie: None,
    };
    let server = {
        let _runtime = rt.enter();
        RpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), auth, Arc::new(table))?
    };
    let client = RpcClient::new(server.local_addr(), "bench", "bench");
    let result = (|| {
        let hash = client.call("getblockhash", json!([170]))?;
        let [(_, count), (_, block)] = METHODS;
        Ok([
            timed(&client, count, &json!([]), calls)?,
            timed(&client, block, &json!([hash, 2]), calls)?,
        ])
    })();
    rt.block_on(server.shutdown());
    result
}

/// `calls` calls of `method`, one after the other, on this thread, after
/// a tenth as many uncounted.
fn timed(client: &RpcClient, method: &str, params: &Value, calls: usize) -> Result<Calls, Error> {
    for _ in 0..calls / 10 {
        client.call(method, params.clone())?;
    }
    let mut lat = Vec::with_capacity(calls);
    let (process0, thread0, start) = (process_cpu(), thread_cpu(), Instant::now());
    for _ in 0..calls {
        let t = Instant::now();
        client.call(method, params.clone())?;
        lat.push(t.elapsed());
    }
    let wall = start.elapsed();
    let node_cpu = process_cpu()
        .saturating_sub(process0)
        .saturating_sub(thread_cpu().saturating_sub(thread0));
    lat.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let n = calls.max(1) as f64;
    Ok(Calls {
        p50: lat.get(calls / 2).map_or(0.0, |d| us(*d)),
        p99: lat.get(calls * 99 / 100).map_or(0.0, |d| us(*d)),
        wall: us(wall) / n,
        cpu: us(node_cpu) / n,
    })
}

/// CPU time of the calling thread so far.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// Prints, per method, each side's figures across rounds and the ratios
/// taken inside each round; `base[i]` and `spin[i]` are round `i`.
pub(crate) fn print(calls: usize, base: &[[Calls; 2]], spin: &[[Calls; 2]]) {
    say!(
        "             RPC round trip over the node's server, {calls} calls per method and side, one connection per call:"
    );
    for (m, (method, _)) in METHODS.iter().enumerate() {
        let side = |what: &str, rounds: &[[Calls; 2]]| {
            let pick = |f: fn(&Calls) -> f64| stats(&rounds.iter().map(|r| f(&r[m])).collect::<Vec<_>>());
            let ((p50, p50l, p50h), (p99, p99l, p99h)) = (pick(|c| c.p50), pick(|c| c.p99));
            let ((w, _, _), (c, cl, ch)) = (pick(|c| c.wall), pick(|c| c.cpu));
            say!(
                "               {method:<16} {what:<9}  p50 {p50:>5.0} us [{p50l:.0}-{p50h:.0}]  p99 {p99:>5.0} us [{p99l:.0}-{p99h:.0}]  wall {w:.0} us/call, node CPU {c:.0} us/call [{cl:.0}-{ch:.0}]"
            );
        };
        side("no module", base);
        side("spinner", spin);
        let ratio = |f: fn(&Calls) -> f64| {
            let r: Vec<f64> = base
                .iter()
                .zip(spin)
                .map(|(b, s)| f(&s[m]) / f(&b[m]).max(1e-9))
                .collect();
            stats(&r)
        };
        let ((r50, r50l, r50h), (r99, r99l, r99h)) = (ratio(|c| c.p50), ratio(|c| c.p99));
        say!(
            "               {method:<16} ratio per round: p50 {r50:.2}x [{r50l:.2}-{r50h:.2}]  p99 {r99:.2}x [{r99l:.2}-{r99h:.2}]"
        );
    }
}
