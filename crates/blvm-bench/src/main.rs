//! `blvm-bench`: measures the module IPC against the floor of this machine,
//! in one run, and prints figures and ratios (never asserts them).
//!
//! ```text
//! cargo run --release -p blvm-bench            # all benchmarks
//! cargo run --release -p blvm-bench -- quick   # fewer iterations
//! cargo run --release -p blvm-bench -- events  # one part: codec, rtt, inflight, events,
//!                                               # import, bigblocks, storage, calls or spinning
//! ```
//!
//! 1. Floor: a raw blocking Unix-socket ping-pong of 64 bytes between this
//!    process and a child process.
//! 2. Round trip: `ping` from a real module process (the SDK over the
//!    node's IPC server), sequentially; p50, p99 and the ratio to the floor.
//! 3. Throughput: 64 requests in flight on one module connection.
//! 4. Events: events per second delivered to 1 and to 8 module processes.
//! 5. Spawn → ready: a module load to its handshake, sandbox off and on,
//!    against `/bin/true` (`spawn`).
//! 6. Module storage (`storage`): a `storage_put` and a `storage_get`
//!    round trip from a real module process, p50, interleaved with `ping`
//!    in each round (see `storage`).
//! 7. Block processing with a spinning module (`spinning`, as root): the
//!    node importing mainnet 0..438 with no module and with one module
//!    spinning on every core under the default sandbox, in interleaved
//!    rounds; wall and CPU time per block, and their ratio (see
//!    `spinner`); then, on the same node, the JSON-RPC round trip of
//!    `getblockcount` and `getblock`, p50 and p99 and their ratio (see
//!    `rpc`).
//!
//! The node side answers from real mainnet blocks held in memory
//! (`blvm-testkit`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use blvm_module_host::{EventManager, IpcServerConfig, ModuleApiHub, ModuleIpcServer, ModuleSpec};
use blvm_module_protocol::events::{Event, NewBlock};
use blvm_module_protocol::{Hash32, Permission, PermissionSet};
use blvm_testkit::MemoryChain;

mod rpc;
mod spawn;
mod spinner;
mod storage;

type Error = Box<dyn std::error::Error>;

const RAW_MSG: usize = 64;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("raw-client") {
        return raw_client(Path::new(&args[2]), args[3].parse()?);
    }
    let quick = args.iter().any(|a| a == "quick");
    let parts: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| {
            [
                "codec",
                "rtt",
                "inflight",
                "events",
                "import",
                "bigblocks",
                "spawn",
                "storage",
                "calls",
                "spinning",
            ]
            .contains(a)
        })
        .collect();
    let wants = |part: &str| parts.is_empty() || parts.contains(&part);
    let scale = if quick { 10 } else { 1 };
    let module_bin = build_bench_module()?;
    let dir = std::env::temp_dir().join(format!("blvm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let idle = module_bin.with_file_name("idle-module");
    let bench = Bench::start(&dir, module_bin.clone())?;

    println!(
        "blvm-bench: {} cores, {}",
        cores(),
        if quick { "quick run" } else { "full run" }
    );
    let n = 200_000 / scale;
    if wants("spawn") {
        spawn::spawn_ready(&dir, &idle, 5, 30 / scale.min(3))?;
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
        storage::run(&bench, if quick { 3 } else { 5 }, 1000 / scale.min(5))?;
    }
    if wants("calls") {
        storage::run_calls(&bench, if quick { 3 } else { 5 }, 2000 / scale.min(5))?;
    }
    if wants("codec") {
        codec(&bench.chain, 1_000_000 / scale);
    }
    if wants("rtt") {
        rtt(&bench, &dir, n)?;
    }
    if wants("inflight") {
        let per_task = 40_000 / scale;
        let inflight = bench.run_module(&format!("inflight 64 {per_task}"))?;
        let (reqs, ns) = (inflight[1], inflight[2]);
        println!(
            "throughput 64 requests in flight on one connection:               {:>8.0} k requests/s",
            reqs as f64 / ns as f64 * 1e6
        );
    }
    if wants("events") {
        for modules in [1usize, 8] {
            let events = 4_000_000 / scale as u64 / modules as u64;
            let (rate, received, dropped) = bench.events(modules, events)?;
            println!(
                "events     to {modules} module(s): {:>8.0} k events/s delivered in all ({received} received, {dropped} dropped at the node: queue full)",
                rate / 1e3,
            );
        }
    }
    drop(bench);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
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
        println!(
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
        println!(
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
    println!(
        "codec      NewBlock event ({} B payload): encode once {encode_ns:.0} ns, frame per module {frame_ns:.0} ns, decode {decode_ns:.0} ns",
        payload.len()
    );
}

fn rtt(bench: &Bench, dir: &Path, n: usize) -> Result<(), Error> {
    let floor = raw_floor(dir, n)?;
    println!(
        "floor      raw blocking unix-socket ping-pong (64 B, 2 processes): p50 {:>6.2} us  p99 {:>6.2} us",
        us(floor.0),
        us(floor.1)
    );
    let rtt = bench.run_module(&format!("rtt {n}"))?;
    let (p50, p99, mean) = (rtt[1], rtt[2], rtt[3]);
    println!(
        "round trip module ping over the node's IPC server:                p50 {:>6.2} us  p99 {:>6.2} us  mean {:>6.2} us",
        us(p50),
        us(p99),
        us(mean)
    );
    println!(
        "ratio      round trip / floor:                                    p50 {:>6.2}x    p99 {:>6.2}x",
        p50 as f64 / floor.0 as f64,
        p99 as f64 / floor.1 as f64
    );
    Ok(())
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
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

/// The floor: this process echoes, a child process measures.
fn raw_floor(dir: &Path, n: usize) -> Result<(u64, u64), Error> {
    let path = dir.join("raw.sock");
    let listener = UnixListener::bind(&path)?;
    let child = Command::new(std::env::current_exe()?)
        .args(["raw-client", &path.display().to_string(), &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let (mut stream, _) = listener.accept()?;
    let mut buf = [0u8; RAW_MSG];
    while stream.read_exact(&mut buf).is_ok() {
        stream.write_all(&buf)?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8(out.stdout)?;
    let mut it = text.split_whitespace().filter_map(|s| s.parse::<u64>().ok());
    Ok((it.next().ok_or("no p50")?, it.next().ok_or("no p99")?))
}

fn raw_client(path: &Path, n: usize) -> Result<(), Error> {
    let mut stream = UnixStream::connect(path)?;
    let msg = [7u8; RAW_MSG];
    let mut buf = [0u8; RAW_MSG];
    for _ in 0..n / 10 {
        stream.write_all(&msg)?;
        stream.read_exact(&mut buf)?;
    }
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        stream.write_all(&msg)?;
        stream.read_exact(&mut buf)?;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    println!("{} {}", lat[n / 2], lat[n * 99 / 100]);
    Ok(())
}

struct Bench {
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
            server,
            events,
            chain,
            module_bin,
            next: std::cell::Cell::new(0),
        })
    }

    fn spawn(&self, mode: &str, queue: usize) -> Result<(String, Child), Error> {
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
        let child = Command::new(&self.module_bin)
            .env("BLVM_MODULE_SOCKET", self.server.socket_path())
            .env("BLVM_MODULE_ID", &id)
            .env("BLVM_MODULE_NAME", &id)
            .env("BLVM_MODULE_VERSION", "1.0.0")
            .env("BLVM_MODULE_TOKEN", &ticket.token)
            .env("BLVM_BENCH_MODE", mode)
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

    /// Publishes `n` events to `modules` subscribers as fast as the
    /// publisher can; returns delivered events per second (all modules
    /// together), received and dropped counts.
    fn events(&self, modules: usize, n: u64) -> Result<(f64, u64, u64), Error> {
        let (results_tx, results) = std::sync::mpsc::channel();
        let mut children = Vec::new();
        for _ in 0..modules {
            let (id, mut child) = self.spawn("events", 1024)?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            match lines.next() {
                Some(Ok(l)) if l == "READY" => {}
                other => return Err(format!("module not ready: {other:?}").into()),
            }
            let tx = results_tx.clone();
            let reader_id = id.clone();
            std::thread::spawn(move || {
                if let Some(Ok(line)) = lines.next() {
                    let _ = tx.send((reader_id, line));
                }
            });
            children.push(child);
        }
        let block = |height: u64| {
            Event::from(NewBlock {
                block_hash: self.chain.hash_at(height % 439),
                height,
                header: self.chain.header_bytes(height % 439),
            })
        };
        let events: Vec<Event> = (0..439).map(block).collect();
        for i in 0..n {
            self.events.publish(&events[(i % 439) as usize]);
        }
        // The end marker must reach every module, and a full queue drops
        // it: repeat it until every module has reported.
        let marker = Event::from(NewBlock {
            block_hash: Hash32([0; 32]),
            height: u64::MAX,
            header: vec![0; 80],
        });
        let mut lines = Vec::new();
        while lines.len() < modules {
            self.events.publish(&marker);
            if let Ok(r) = results.recv_timeout(std::time::Duration::from_millis(1)) {
                lines.push(r);
            }
        }
        let mut total_rate = 0.0;
        let (mut received, mut dropped) = (0, 0);
        for (id, line) in lines {
            let v = numbers(&line);
            let (count, elapsed) = (v[1], v[3]);
            total_rate += count as f64 / elapsed.max(1) as f64 * 1e9;
            received += count;
            dropped += self.events.get_delivery_stats(&id).map_or(0, |s| s.dropped_full);
        }
        for mut child in children {
            let _ = child.wait();
        }
        Ok((total_rate, received, dropped))
    }
}

fn numbers(line: &str) -> Vec<u64> {
    line.split_whitespace().map(|s| s.parse().unwrap_or(0)).collect()
}
