//! "block processing with a spinning module": how much one module that
//! spins on every core slows the node's block processing, under the
//! default sandbox (its CPU quota and its scheduling weight below the
//! node's). A figure, never an assertion.
//!
//! Each round imports real mainnet blocks 0..438 into a fresh node (every
//! check on, one durable commit per block, `NewBlock` published to the
//! modules) twice: with no module, then with one module (`attacker-module`
//! asked to `spin` one thread per core) loaded under the default sandbox.
//! Rounds are interleaved so that drift in the machine's load hits both
//! sides alike, and the ratio is taken inside each round. The node's CPU
//! time (this process: the chain and the module host) is shown per block
//! beside the wall time, so a slowdown can be told apart from more work.
//! After each import the same node, spinner still spinning, serves
//! JSON-RPC calls for the RPC figure (see `rpc`).
//!
//! The sandbox's cgroups and uid drop need root: without it the figure is
//! skipped, saying so.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blvm_module_protocol::frame::decode_body;
use blvm_module_protocol::methods::invocation::{ModuleCall, ModuleCallResult, MODULE_CALL};
use blvm_node::config::{NodeConfig, Settings};
use blvm_node::node::{Node, NodeBackendImpl};

use crate::{rpc, Error};

/// The module's name in the node.
const SPINNER: &str = "spinner";

/// One import.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    /// CPU time of this process (the node) during the import.
    cpu: Duration,
    blocks: u64,
    /// The RPC calls served after the import.
    rpc: [rpc::Calls; 2],
}

/// What the spinner was given and took during one import, from its
/// status.
#[derive(Debug, Default, Clone)]
struct SpinnerInfo {
    threads: usize,
    quota_percent: Option<u32>,
    weight: Option<u32>,
    /// Its CPU time during the import, in percent of one core over the
    /// import's wall time.
    core_percent: f64,
    cpu_group: String,
}

/// Runs `rounds` interleaved rounds, with `calls` RPC calls per method
/// and side in each, and prints the figures.
pub(crate) fn run(dir: &Path, attacker: &Path, rounds: usize, calls: usize) -> Result<(), Error> {
    const TITLE: &str = "spinning   block processing with a spinning module";
    if !rustix::process::geteuid().is_root() {
        say!("{TITLE}: skipped: the default sandbox (cgroups, uid drop) needs root; run blvm-bench as root");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let threads = crate::cores();
    // Warm-up, not counted: page cache, allocator, lazily built tables.
    one(&rt, dir, "warmup", None, threads, calls)?;
    let (mut base, mut spin, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut info = SpinnerInfo::default();
    let mut shares = Vec::new();
    for round in 0..rounds {
        let (b, _) = one(&rt, dir, &format!("base-{round}"), None, threads, calls)?;
        let (s, i) = match one(&rt, dir, &format!("spin-{round}"), Some(attacker), threads, calls) {
            Ok(r) => r,
            Err(e) => {
                say!("{TITLE}: skipped: the spinning module could not run under the default sandbox: {e}");
                return Ok(());
            }
        };
        ratios.push(s.wall.as_secs_f64() / b.wall.as_secs_f64().max(1e-9));
        base.push(b);
        spin.push(s);
        info = i.unwrap_or_default();
        shares.push(info.core_percent);
    }
    let blocks = base.first().map_or(0, |s| s.blocks);
    say!("{TITLE}: mainnet 0..438 ({blocks} blocks) imported by a node, {rounds} interleaved rounds, median [min-max]");
    print_side("no module", &base);
    print_side(
        &format!(
            "1 module spinning {} threads (quota {}, weight {} vs the node's 100)",
            info.threads,
            info.quota_percent
                .map_or("none".to_owned(), |q| format!("{q}% of a core")),
            info.weight.map_or("none".to_owned(), |w| w.to_string()),
        ),
        &spin,
    );
    let (m, lo, hi) = stats(&ratios);
    say!("             ratio with / without, per round:   {m:.2}x [{lo:.2}-{hi:.2}]");
    let (m, lo, hi) = stats(&shares);
    say!(
        "             the spinner's CPU during each import:  {m:.0}% of a core [{lo:.0}-{hi:.0}] (its group: {})",
        info.cpu_group,
    );
    let rpc_of = |s: &[Sample]| s.iter().map(|s| s.rpc).collect::<Vec<_>>();
    rpc::print(calls, &rpc_of(&base), &rpc_of(&spin));
    Ok(())
}

fn print_side(what: &str, samples: &[Sample]) {
    let walls: Vec<f64> = samples.iter().map(|s| s.wall.as_secs_f64() * 1e3).collect();
    let per_block = |d: Duration, s: &Sample| d.as_secs_f64() * 1e3 / s.blocks.max(1) as f64;
    let wall_pb: Vec<f64> = samples.iter().map(|s| per_block(s.wall, s)).collect();
    let cpu_pb: Vec<f64> = samples.iter().map(|s| per_block(s.cpu, s)).collect();
    let (w, wl, wh) = stats(&walls);
    let (pb, _, _) = stats(&wall_pb);
    let (c, cl, ch) = stats(&cpu_pb);
    say!("             {what}:");
    say!(
        "               wall {w:.0} ms [{wl:.0}-{wh:.0}] = {pb:.2} ms/block; node CPU {c:.2} ms/block [{cl:.2}-{ch:.2}]"
    );
}

/// Median, min and max.
pub(crate) fn stats(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (median, v[0], v[v.len() - 1])
}

/// CPU time of this process so far.
pub(crate) fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// One import into a fresh node in `dir/<tag>`, with the spinner loaded
/// and spinning when `attacker` is given.
fn one(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    tag: &str,
    attacker: Option<&Path>,
    threads: usize,
    calls: usize,
) -> Result<(Sample, Option<SpinnerInfo>), Error> {
    let datadir = dir.join(format!("spinning-{tag}"));
    let _ = std::fs::remove_dir_all(&datadir);
    std::fs::create_dir_all(&datadir)?;
    let settings = Settings {
        network: Some("main".into()),
        datadir: Some(datadir.clone()),
        rpcport: Some(0),
        block_interval: Some(0),
        ..Settings::default()
    };
    let config = NodeConfig::resolve(settings)?;
    let modules_dir = config.modules_dir.clone();
    let node = Node::open(config)?;
    let result = (|| {
        rt.block_on(node.manager.start(
            datadir.join("sockets").join("node.sock"),
            Arc::new(NodeBackendImpl::new(&node)),
        ))?;
        if let Some(bin) = attacker {
            install(&modules_dir, bin)?;
            let report = rt.block_on(node.manager.auto_load_modules())?;
            if let Some((_, why)) = report.failed.iter().next() {
                return Err(format!("not loaded: {why}").into());
            }
            let answer = rt.block_on(spin(&node, threads))?;
            if !answer.starts_with("SPINNING") {
                return Err(format!("spin answered `{answer}`").into());
            }
        }
        let module_cpu = || {
            node.manager
                .module_status(SPINNER)
                .and_then(|s| s.usage)
                .map_or(0, |u| u.cpu_time_ms)
        };
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../blvm-node/tests/data/blocks-000000-000438.dat");
        let (cpu0, module0, t) = (process_cpu(), module_cpu(), Instant::now());
        let stats = node.import(&[file])?;
        let (wall, cpu, module1) = (t.elapsed(), process_cpu().saturating_sub(cpu0), module_cpu());
        let info = attacker.and_then(|_| {
            let status = node.manager.module_status(SPINNER)?;
            Some(SpinnerInfo {
                threads,
                quota_percent: status.cpu_quota_percent,
                weight: status.cpu_weight,
                core_percent: module1.saturating_sub(module0) as f64 * 0.1 / wall.as_secs_f64().max(1e-9),
                cpu_group: status
                    .limit_cgroups
                    .iter()
                    .find(|l| l.starts_with("cpu "))
                    .cloned()
                    .unwrap_or_default(),
            })
        });
        let rpc = rpc::measure(rt, &node, calls)?;
        Ok((
            Sample {
                wall,
                cpu,
                blocks: stats.blocks,
                rpc,
            },
            info,
        ))
    })();
    rt.block_on(node.manager.shutdown());
    drop(node);
    let _ = std::fs::remove_dir_all(&datadir);
    result
}

/// The attacker module as `spinner`, no capabilities.
fn install(modules_dir: &Path, bin: &Path) -> Result<(), Error> {
    let dir = modules_dir.join(SPINNER);
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(bin, dir.join(SPINNER))?;
    std::fs::write(
        dir.join("module.toml"),
        format!("name = \"{SPINNER}\"\nversion = \"1.0.0\"\nentry_point = \"{SPINNER}\"\ncapabilities = []\n"),
    )?;
    Ok(())
}

/// Asks the spinner to spin `threads` threads; its answer.
async fn spin(node: &Node, threads: usize) -> Result<String, Error> {
    let id = node
        .manager
        .module_status(SPINNER)
        .and_then(|s| s.module_id)
        .ok_or("the spinner has no module id")?;
    let conn = node
        .manager
        .ipc_server()
        .and_then(|s| s.connection(&id))
        .ok_or("the spinner is not connected")?;
    let call = ModuleCall {
        caller: "bench".into(),
        method: "spin".into(),
        params: threads.to_string().into_bytes(),
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), conn.invoke(MODULE_CALL, &call)).await??;
    let result: ModuleCallResult = decode_body("result", &raw)?;
    Ok(String::from_utf8_lossy(&result.result).into_owned())
}
