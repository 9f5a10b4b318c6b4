//! `blvm-bench`: measures the module IPC against the floor of this machine,
//! in one run, and prints figures and ratios (never asserts them).
//!
//! ```text
//! cargo run --release -p blvm-bench                     # all benchmarks
//! cargo run --release -p blvm-bench -- --quick          # fewer rounds and iterations
//! cargo run --release -p blvm-bench -- --json rtt       # one JSON object on stdout
//! cargo run --release -p blvm-bench -- rtt events       # some parts: codec, rtt, inflight,
//!                                                       # events, import, bigblocks, spawn,
//!                                                       # storage, calls, spinning or python
//! ```
//!
//! The parts `rtt`, `inflight` and `events` (and `stall`: none stalled,
//! one stalled) run in interleaved rounds
//! (floor, plain stack, system, floor …; see `rounds`; the plain stack is
//! tokio + length-delimited MessagePack, see `plain`) and print each figure's
//! median and min–max over the rounds, each ratio taken inside its round,
//! and beside each figure the CPU time, wake-ups and syscalls
//! per operation of the node side and of the module side (see
//! `procstat`):
//!
//! 1. `rtt`: a raw blocking Unix-socket ping-pong of 64 bytes between two
//!    processes (the floor) against a module's `ping` through the SDK and
//!    the node's IPC server, sequentially; p50, p99 and their ratios.
//! 2. `inflight`: 64 requests in flight on one module connection.
//! 3. `events`: events per second delivered to 1 and to 8 module
//!    processes against raw pushing of event-sized frames to one reader.
//! 4. `stall`: the publisher's cost per event to 8 modules with one of
//!    them stopped against none (see `stall`); `import8`: a node's
//!    import of mainnet 0..438 with 8 subscribed modules against none
//!    (see `subscribers`).
//!
//! The other parts run rounds of their own (`spawn`, `memory`, `storage`
//! and `calls` are in the JSON report too):
//!
//! 5. Spawn → ready: a module load to its handshake, sandbox off and on,
//!    against `/bin/true` (`spawn`); host memory per idle module
//!    (`memory`).
//! 6. Module storage (`storage`): a `storage_put` and a `storage_get`
//!    round trip from a real module process, p50, interleaved with `ping`
//!    in each round (see `storage`); inter-module calls (`calls`).
//! 7. Block processing with a spinning module (`spinning`, as root): see
//!    `spinner` and `rpc`.
//! 8. `import`, `bigblocks`, `codec`: the node's own import and
//!    validation speed and the event codec's in-process cost.
//! 9. `python`: the Python SDK (`sdk/python`) beside the Rust SDK by the
//!    same method, in interleaved rounds: the `ping` round trip and the
//!    events delivered per second to one module (see `python`).
//!
//! With `--json` the text goes to stderr and stdout carries one JSON
//! object: the machine's load at start and end, and for each interleaved
//! part every figure's and ratio's median, min, max and rounds.
//!
//! The node side answers from real mainnet blocks held in memory
//! (`blvm-testkit`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use blvm_module_host::{EventManager, IpcServerConfig, ModuleApiHub, ModuleIpcServer, ModuleSpec};
use blvm_module_protocol::events::{Event, NewBlock};
use blvm_module_protocol::{Permission, PermissionSet};
use blvm_testkit::MemoryChain;
use clap::Parser;

/// Whether stdout is reserved for the JSON report (`--json`).
static JSON: AtomicBool = AtomicBool::new(false);

/// Prints a line of the text report: on stdout, or on stderr when stdout
/// carries the JSON report.
macro_rules! say {
    ($($t:tt)*) => {
        if $crate::JSON.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($t)*)
        } else {
            println!($($t)*)
        }
    };
}

mod events;
mod gate;
mod inflight;
mod memory;
mod plain;
mod procstat;
mod python;
mod rounds;
mod rpc;
mod rtt;
mod spawn;
mod spinner;
mod stall;
mod storage;
mod subscribers;
mod syscalls;

type Error = Box<dyn std::error::Error>;

/// The parts, in the order they run.
const PARTS: [&str; 14] = [
    "spawn",
    "memory",
    "import",
    "bigblocks",
    "spinning",
    "storage",
    "calls",
    "codec",
    "rtt",
    "inflight",
    "events",
    "stall",
    "import8",
    "python",
];

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "blvm-bench",
    about = "Benchmarks the module IPC against the floor of this machine, in interleaved rounds"
)]
struct Args {
    /// Fewer rounds (3) and a tenth of the iterations.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object on stdout (the text report goes to stderr).
    #[arg(long)]
    json: bool,
    /// Rounds of each interleaved part (default 7, 3 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// The parts to run (all when none): codec, rtt, inflight, events,
    /// stall, import8, import, bigblocks, spawn, memory, storage, calls,
    /// spinning, python. `quick` is
    /// read as --quick.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(PARTS.iter().chain(&["quick"])))]
    parts: Vec<String>,
}

fn main() -> Result<(), Error> {
    let raw: Vec<String> = std::env::args().collect();
    // The floors' child processes: this binary again.
    match raw.get(1).map(String::as_str) {
        Some("raw-client") => {
            let (path, n) = (raw.get(2).ok_or("no socket")?, raw.get(3).ok_or("no count")?);
            let batch = raw.get(4).map_or(Ok(1), |b| b.parse())?;
            return rtt::raw_client(Path::new(path), n.parse()?, batch);
        }
        Some("plain-client") => {
            let (path, mode) = (raw.get(2).ok_or("no socket")?, raw.get(3).ok_or("no mode")?);
            let n = raw.get(4).map_or(Ok(0), |b| b.parse())?;
            let tasks = raw.get(5).map_or(Ok(1), |b| b.parse())?;
            return plain::client(Path::new(path), mode, n, tasks);
        }
        Some("raw-sink") => return events::raw_sink(Path::new(raw.get(2).ok_or("no socket")?)),
        _ => {}
    }
    let args = Args::parse();
    JSON.store(args.json, Ordering::Relaxed);
    let quick = args.quick || args.parts.iter().any(|p| p == "quick");
    let parts: Vec<&str> = args
        .parts
        .iter()
        .map(String::as_str)
        .filter(|p| *p != "quick")
        .collect();
    let wants = |part: &str| parts.is_empty() || parts.contains(&part);
    let scale = if quick { 10 } else { 1 };
    let rounds = args.rounds.unwrap_or(if quick { 3 } else { 7 }).max(1);
    let module_bin = build_bench_module()?;
    let dir = std::env::temp_dir().join(format!("blvm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let idle = module_bin.with_file_name("idle-module");
    let bench = Bench::start(&dir, module_bin.clone())?;

    let load_start = procstat::Load::now();
    say!(
        "blvm-bench: {} cores, {}, {rounds} rounds per interleaved part",
        cores(),
        if quick { "quick run" } else { "full run" }
    );
    say!("start: {}", load_start.line());
    let mut report = serde_json::Map::new();
    if wants("spawn") {
        let n = 30 / scale.min(3);
        let r = spawn::spawn_ready(&dir, &idle, 5, n)?;
        show(
            "spawn",
            &format!("spawn → handshake ready through ModuleManager, {n} loads per side and round (the median of a round is its figure)"),
            &r,
        );
        report.insert("spawn".into(), r.json());
    }
    if wants("memory") {
        let r = memory::run(&bench, rounds)?;
        show(
            "memory",
            "host memory per idle module: the node's RSS with none and with 16 idle modules (handshaken, subscribed)",
            &r,
        );
        report.insert("memory".into(), r.json());
    }
    if wants("import") {
        import(&dir)?;
    }
    if wants("bigblocks") {
        big_blocks()?;
    }
    if wants("spinning") {
        let attacker = module_bin.with_file_name("attacker-module");
        spinner::run(&dir, &attacker, if quick { 5 } else { 11 }, 2000 / scale.min(4))?;
    }
    if wants("storage") {
        let n = 1000 / scale.min(5);
        let r = storage::run(&bench, if quick { 3 } else { 5 }, n)?;
        show(
            "storage",
            &format!("module storage round trips from a module process, {n} of each per round, interleaved (put, get, ping); a put is a durable commit"),
            &r,
        );
        report.insert("storage".into(), r.json());
    }
    if wants("calls") {
        let n = 2000 / scale.min(5);
        let r = storage::run_calls(&bench, if quick { 3 } else { 5 }, n)?;
        show(
            "calls",
            &format!("inter-module call_module of a callee's echo (32 B) and ping, {n} of each per round, interleaved"),
            &r,
        );
        report.insert("calls".into(), r.json());
    }
    if wants("codec") {
        codec(&bench.chain, 1_000_000 / scale);
    }
    if wants("rtt") {
        let n = 100_000 / scale;
        let r = rtt::run(&bench, &dir, rounds, n)?;
        show(
            "rtt",
            &format!("round trip: {n} sequential round trips per side; floor = raw blocking unix-socket ping-pong of 64 B between 2 processes, plain = tokio + length-delimited MessagePack request/response, ping = a module's ping over the node's IPC server"),
            &r,
        );
        report.insert("rtt".into(), r.json());
    }
    if wants("inflight") {
        let per_task = 20_000 / scale;
        let r = inflight::run(&bench, &dir, rounds, 64, per_task)?;
        show(
            "inflight",
            &format!("throughput: 64 requests in flight on one connection, {} requests per side; floor = raw unix socket, 64 messages of 64 B written then 64 read, per batch; plain = 64 tokio tasks over one length-delimited MessagePack connection; module = 64 SDK tasks", 64 * per_task),
            &r,
        );
        report.insert("inflight".into(), r.json());
    }
    if wants("events") {
        let n = 2_000_000 / scale as u64;
        let r = events::run(&bench, &dir, rounds, n)?;
        show(
            "events",
            &format!("events: {n} NewBlock events (143 B payload) delivered in all per side; floor = raw push of event-sized frames, 64 KiB per write, to 1 reader; plain = tokio push of frames serialized once, a 1024-slot queue and a batching writer per subscriber; modules = the node's EventManager"),
            &r,
        );
        report.insert("events".into(), r.json());
    }
    if wants("stall") {
        let n = 400_000 / scale as u64;
        let r = stall::run(&bench, rounds, n)?;
        show(
            "stall",
            &format!("a stalled module's cost to the publisher: {n} NewBlock events published to 8 modules, none or one stopped (SIGSTOP)"),
            &r,
        );
        report.insert("stall".into(), r.json());
    }
    if wants("import8") {
        let r = subscribers::run(&dir, &module_bin, rounds)?;
        show(
            "import8",
            "a node importing mainnet 0..438 with no module and with 8 modules subscribed to NewBlock",
            &r,
        );
        report.insert("import8".into(), r.json());
    }
    if wants("python") {
        let (rtt_n, events_n) = (20_000 / scale, 200_000 / scale as u64);
        let r = python::run(&bench, rounds, rtt_n, events_n)?;
        show(
            "python",
            &format!("the Python SDK beside the Rust SDK, by one method: {rtt_n} sequential pings per SDK and round; {events_n} NewBlock events (143 B payload) to one module per SDK and round, a queue of 1024"),
            &r,
        );
        report.insert("python".into(), r.json());
    }
    let load_end = procstat::Load::now();
    say!("end:   {}", load_end.line());
    if args.json {
        let out = serde_json::json!({
            "cores": cores(),
            "quick": quick,
            "rounds": rounds,
            "load_start": load_start.json(),
            "load_end": load_end.json(),
            "parts": report,
        });
        println!("{out}");
    }
    drop(bench);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Prints one interleaved part: its title and every figure and ratio.
fn show(part: &str, title: &str, r: &rounds::Rounds) {
    say!("{part:<10} {title}; {} rounds, median [min – max]:", r.count());
    for line in r.lines() {
        say!("{line}");
    }
}

/// Import speed of the reference node's chain: real mainnet blocks
/// 0..438 from genesis, every check on, one durable commit per block.
fn import(dir: &Path) -> Result<(), Error> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../blvm-node/tests/data/blocks-000000-000438.dat");
    let mut best: Option<blvm_node::chain::ImportStats> = None;
    for round in 0..3 {
        let store = dir.join(format!("import-{round}"));
        let chain = blvm_node::chain::Chain::open(&store, bitcoin::Network::Bitcoin)?;
        let stats = chain.import_blk_file(&file)?;
        if best.is_none_or(|b| stats.elapsed < b.elapsed) {
            best = Some(stats);
        }
        drop(chain);
        let _ = std::fs::remove_dir_all(&store);
    }
    if let Some(s) = best {
        say!(
            "import     mainnet 0..438 (best of 3): {} blocks, {} txs in {:.2?}: {:.0} blocks/s, {:.0} tx/s",
            s.blocks,
            s.txs,
            s.elapsed,
            s.blocks_per_second(),
            s.txs_per_second()
        );
    }
    Ok(())
}

/// Validation of large real blocks whose parents are not available to
/// import: the block is decoded, its merkle root and witness commitment
/// checked, and every input's script verified with libbitcoinconsensus
/// against the outputs it spends (from the undo data), with the flags the
/// chain uses at that height. This is the CPU-bound part of importing them.
fn big_blocks() -> Result<(), Error> {
    use bitcoin::consensus::{deserialize, serialize, Decodable};
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    for (file, network, height) in [
        ("block-300025", bitcoin::Network::Bitcoin, 300_025u32),
        ("block-928849", bitcoin::Network::Testnet, 928_849u32),
    ] {
        let raw = std::fs::read(data.join(format!("{file}.raw")))?;
        let undo = std::fs::read(data.join(format!("{file}.undo")))?;
        let params = blvm_node::chain::ChainParams::new(network);
        let mut best = std::time::Duration::MAX;
        let (mut txs, mut inputs) = (0usize, 0usize);
        for _ in 0..3 {
            let t = Instant::now();
            let block: bitcoin::Block = deserialize(&raw)?;
            if !block.check_merkle_root() || !block.check_witness_commitment() {
                return Err(format!("{file}: bad merkle root or witness commitment").into());
            }
            let flags = params.script_flags_at(height, block.header.time);
            let mut spent = &undo[..];
            inputs = 0;
            for tx in block.txdata.iter().skip(1) {
                let bytes = serialize(tx);
                for (i, _) in tx.input.iter().enumerate() {
                    let prevout = bitcoin::TxOut::consensus_decode(&mut spent)?;
                    prevout
                        .script_pubkey
                        .verify_with_flags(i, prevout.value, &bytes, flags)
                        .map_err(|e| format!("{file}: input {i} of {}: {e:?}", tx.compute_txid()))?;
                    inputs += 1;
                }
            }
            txs = block.txdata.len();
            best = best.min(t.elapsed());
        }
        let secs = best.as_secs_f64();
        say!(
            "bigblock   {file} ({} kB, {txs} txs, {inputs} inputs, scripts verified): {:.1} ms: {:.0} tx/s, {:.0} inputs/s, {:.1} blocks/s",
            raw.len() / 1000,
            secs * 1e3,
            txs as f64 / secs,
            inputs as f64 / secs,
            1.0 / secs
        );
    }
    Ok(())
}

/// In-process cost of the event codec: encode once, frame per module,
/// decode on the module side.
fn codec(chain: &MemoryChain, n: usize) {
    use blvm_module_protocol::frame::encode;
    use blvm_module_protocol::{Frame, FrameDecoder};
    let event = Event::from(NewBlock {
        block_hash: chain.hash_at(1),
        height: 1,
        header: chain.header_bytes(1),
    });
    let t = Instant::now();
    let mut payload = Vec::new();
    for _ in 0..n {
        payload.clear();
        let _ = event.encode_payload(&mut payload);
    }
    let encode_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let mut wire = Vec::with_capacity(n * (payload.len() + 40));
    let t = Instant::now();
    for seq in 0..n as u64 {
        encode::event_raw(&mut wire, seq, "NewBlock", &payload);
    }
    let frame_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let mut buf = bytes::BytesMut::from(&wire[..]);
    let decoder = FrameDecoder::default();
    let t = Instant::now();
    let mut decoded = 0;
    while let Ok(Some(Frame::Event(e))) = decoder.next_frame(&mut buf) {
        if e.event().is_ok() {
            decoded += 1;
        }
    }
    let decode_ns = t.elapsed().as_nanos() as f64 / decoded.max(1) as f64;
    say!(
        "codec      NewBlock event ({} B payload): encode once {encode_ns:.0} ns, frame per module {frame_ns:.0} ns, decode {decode_ns:.0} ns",
        payload.len()
    );
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Builds the module binaries (`bench-module`, and `attacker-module` for
/// the spinning figure) with the same profile as this binary; returns the
/// path of `bench-module`.
fn build_bench_module() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("no exe dir")?.to_path_buf();
    let release = dir.ends_with("release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "blvm-test-modules",
        "--bin",
        "bench-module",
        "--bin",
        "idle-module",
        "--bin",
        "attacker-module",
    ])
    .arg("--manifest-path")
    .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"));
    if release {
        cmd.arg("--release");
    }
    if !cmd.status()?.success() {
        return Err("building bench-module failed".into());
    }
    Ok(dir.join("bench-module"))
}

struct Bench {
    /// The plain stack's server, the baseline of `rtt`, `inflight` and
    /// `events`.
    plain: plain::Server,
    server: ModuleIpcServer,
    events: Arc<EventManager>,
    chain: Arc<MemoryChain>,
    module_bin: PathBuf,
    next: std::cell::Cell<u32>,
}

impl Bench {
    fn start(dir: &Path, module_bin: PathBuf) -> Result<Bench, Error> {
        let chain = Arc::new(MemoryChain::mainnet_0_438());
        let events = Arc::new(EventManager::new());
        let storage = blvm_module_host::services::storage::StorageService::new(
            dir.join("storage"),
            blvm_module_host::services::storage::StorageConfig::default(),
            Some(events.clone()),
        );
        let hub = Arc::new(ModuleApiHub::new(chain.clone(), events.clone()).with_storage(Arc::new(storage)));
        let server = ModuleIpcServer::bind(dir.join("node.sock"), hub, IpcServerConfig::default())?;
        Ok(Bench {
            plain: plain::Server::start(dir)?,
            server,
            events,
            chain,
            module_bin,
            next: std::cell::Cell::new(0),
        })
    }

    fn spawn(&self, mode: &str, queue: usize) -> Result<(String, Child), Error> {
        self.spawn_with(Sdk::Rust, mode, queue, false)
    }

    /// Spawns a module process of `sdk` in `mode` with an event queue of
    /// `queue`; `gate` sets `BLVM_BENCH_GATE` (see `gate`).
    fn spawn_with(&self, sdk: Sdk, mode: &str, queue: usize, gate: bool) -> Result<(String, Child), Error> {
        let id = format!("bench-{}", self.next.get());
        self.next.set(self.next.get() + 1);
        let mut spec = ModuleSpec::new(&id, &id, "1.0.0");
        spec.capabilities = [
            Permission::SubscribeEvents,
            Permission::ReadBlockchain,
            Permission::ReadStorage,
            Permission::WriteStorage,
            Permission::CallModule,
            Permission::RegisterModuleApi,
        ]
        .into_iter()
        .collect::<PermissionSet>();
        spec.event_queue_capacity = queue;
        // The IPC path itself is measured, not the operator's rate policy.
        spec.request_rate = None;
        let ticket = self.server.expect_module(spec)?;
        let mut cmd = match sdk {
            Sdk::Rust => Command::new(&self.module_bin),
            Sdk::Python => {
                let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
                let mut cmd = Command::new("python3");
                cmd.arg(repo.join("crates/blvm-bench/python/bench_module.py"))
                    .env("PYTHONPATH", repo.join("sdk/python/src"));
                cmd
            }
        };
        if gate {
            cmd.env("BLVM_BENCH_GATE", "1");
        }
        let child = cmd
            .env("BLVM_MODULE_SOCKET", self.server.socket_path())
            .env("BLVM_MODULE_ID", &id)
            .env("BLVM_MODULE_NAME", &id)
            .env("BLVM_MODULE_VERSION", "1.0.0")
            .env("BLVM_MODULE_TOKEN", &ticket.token)
            .env("BLVM_BENCH_MODE", mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        self.server.bind_pid(&id, child.id());
        Ok((id, child))
    }

    /// Spawns a module in `mode` and waits for its `READY` line; returns
    /// its name and process.
    pub(crate) fn spawn_ready(&self, mode: &str) -> Result<(String, Child), Error> {
        let (id, mut child) = self.spawn(mode, 100)?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        match BufReader::new(stdout).lines().next() {
            Some(Ok(l)) if l == "READY" => Ok((id, child)),
            other => Err(format!("module not ready: {other:?}").into()),
        }
    }

    /// Runs a module in `mode` and returns its last line as numbers (the
    /// tag word reads as 0).
    pub(crate) fn run_module(&self, mode: &str) -> Result<Vec<u64>, Error> {
        let (_, child) = self.spawn(mode, 100)?;
        let out = child.wait_with_output()?;
        let text = String::from_utf8(out.stdout)?;
        let line = text.lines().last().ok_or("module printed nothing")?;
        Ok(numbers(line))
    }

    /// Spawns a gated module in `mode` (see `gate`; `BLVM_BENCH_GATE`
    /// set, stdin piped) with the default queue.
    pub(crate) fn spawn_gated(&self, mode: &str) -> Result<gate::Gated, Error> {
        Ok(self.spawn_gated_with_id(mode, 100)?.1)
    }

    /// Spawns a gated module in `mode` with an event queue of `queue`;
    /// returns its name and process.
    pub(crate) fn spawn_gated_with_id(&self, mode: &str, queue: usize) -> Result<(String, gate::Gated), Error> {
        self.spawn_sdk_gated(Sdk::Rust, mode, queue)
    }

    /// Spawns a gated module of `sdk` in `mode` with an event queue of
    /// `queue`; returns its name and process.
    pub(crate) fn spawn_sdk_gated(&self, sdk: Sdk, mode: &str, queue: usize) -> Result<(String, gate::Gated), Error> {
        let (id, child) = self.spawn_with(sdk, mode, queue, true)?;
        Ok((id, gate::Gated::new(child)?))
    }
}

/// Which SDK a bench module is written on: `bench-module` (Rust,
/// `blvm-sdk`) or `crates/blvm-bench/python/bench_module.py` (Python,
/// `sdk/python`), which speak the same modes and print the same lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sdk {
    /// `bench-module`.
    Rust,
    /// `bench_module.py`, run by `python3` with the SDK's source on its path.
    Python,
}

fn numbers(line: &str) -> Vec<u64> {
    line.split_whitespace().map(|s| s.parse().unwrap_or(0)).collect()
}
