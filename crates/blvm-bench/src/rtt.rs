//! Round trip (`rtt`): a module's `ping` through the SDK and the node's
//! IPC server against the floor of the machine, a raw blocking
//! Unix-socket ping-pong of 64 bytes between two processes, and against
//! the plain tokio + length-delimited + MessagePack stack (see `plain`),
//! measured in interleaved rounds (floor, plain, ping, floor, plain,
//! ping …) with the ratios taken inside each round.
//!
//! Each side of a round is a fresh child process doing `n` sequential
//! round trips after a tenth as many uncounted; the child measures the
//! latencies, the bench reads both processes' procfs counters around the
//! measured span (see `gate`). In the floor the bench process echoes (the
//! "node" side) and a child of its own binary (`raw-client`) measures; in
//! the system the bench process is the node (its IPC server) and the
//! child is `bench-module`.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Instant;

use crate::gate::Gated;
use crate::procstat::ProcStat;
use crate::rounds::Rounds;
use crate::{numbers, Bench, Error};

/// The floor's message size.
const RAW_MSG: usize = 64;

/// One side of one round.
struct Side {
    p50_ns: u64,
    p99_ns: u64,
    /// The bench process over the measured span.
    node: ProcStat,
    /// The measuring child over the measured span.
    peer: ProcStat,
}

/// Runs `rounds` interleaved rounds of `n` round trips per side.
pub(crate) fn run(bench: &Bench, dir: &Path, rounds: usize, n: usize) -> Result<Rounds, Error> {
    let (mut r, mut warm_up) = (Rounds::new(), Rounds::new());
    // Round 0 is an uncounted warm-up (page cache, allocator, CPU
    // frequency).
    for round in 0..=rounds {
        let r = if round == 0 { &mut warm_up } else { &mut r };
        let floor = raw_floor(dir, round, n)?;
        let plain = plain_ping(bench, n)?;
        let ping = module_ping(bench, n)?;
        for (name, side) in [("floor", &floor), ("plain", &plain), ("ping", &ping)] {
            r.record(&format!("{name} p50"), "us", side.p50_ns as f64 / 1e3);
            r.record(&format!("{name} p99"), "us", side.p99_ns as f64 / 1e3);
        }
        for (name, side, peer) in [
            ("floor", &floor, "client"),
            ("plain", &plain, "client"),
            ("ping", &ping, "module"),
        ] {
            side.node.record_per_op(r, name, "node", n as u64);
            side.peer.record_per_op(r, name, peer, n as u64);
            let both = (side.node.run_ns + side.peer.run_ns) as f64 / 1e3 / n.max(1) as f64;
            r.record(&format!("{name}: CPU/op, both processes"), "us", both);
        }
    }
    r.ratio("ping p50 / floor p50", "ping p50", "floor p50");
    r.ratio("ping p99 / floor p99", "ping p99", "floor p99");
    r.ratio("ping p50 / plain p50", "ping p50", "plain p50");
    r.ratio("plain p50 / floor p50", "plain p50", "floor p50");
    r.ratio(
        "ping CPU / floor CPU",
        "ping: CPU/op, both processes",
        "floor: CPU/op, both processes",
    );
    r.ratio(
        "ping CPU / plain CPU",
        "ping: CPU/op, both processes",
        "plain: CPU/op, both processes",
    );
    Ok(r)
}

/// One side of the system: `bench-module` in mode `rtt`.
fn module_ping(bench: &Bench, n: usize) -> Result<Side, Error> {
    let (line, node, peer) = bench.spawn_gated(&format!("rtt {n}"))?.measure()?;
    let result = numbers(&line);
    let [_, p50_ns, p99_ns, _mean] = result[..] else {
        return Err(format!("bench-module answered {result:?}").into());
    };
    Ok(Side {
        p50_ns,
        p99_ns,
        node,
        peer,
    })
}

/// One side of the plain stack: `plain-client rtt`.
fn plain_ping(bench: &Bench, n: usize) -> Result<Side, Error> {
    let path = bench.plain.rpc_path().display().to_string();
    let (line, node, peer) = Gated::own(&["plain-client", &path, "rtt", &n.to_string()])?.measure()?;
    let result = numbers(&line);
    let [p50_ns, p99_ns, _] = result[..] else {
        return Err(format!("plain-client answered {result:?}").into());
    };
    Ok(Side {
        p50_ns,
        p99_ns,
        node,
        peer,
    })
}

/// One side of the floor: this process echoes on a thread, a child
/// (`raw-client`) measures, one message per round trip.
fn raw_floor(dir: &Path, round: usize, n: usize) -> Result<Side, Error> {
    let (result, node, peer) = echo_floor(dir, &format!("raw-{round}"), n, 1)?;
    let [p50_ns, p99_ns, _] = result[..] else {
        return Err(format!("raw-client answered {result:?}").into());
    };
    Ok(Side {
        p50_ns,
        p99_ns,
        node,
        peer,
    })
}

/// A raw echo floor: this process echoes 64-byte messages on a thread, a
/// `raw-client` child does `n` round trips of `batch` messages; returns
/// the child's numbers and the spans' counters of this process and of the
/// child.
pub(crate) fn echo_floor(
    dir: &Path,
    name: &str,
    n: usize,
    batch: usize,
) -> Result<(Vec<u64>, ProcStat, ProcStat), Error> {
    let path = dir.join(format!("{name}.sock"));
    let listener = UnixListener::bind(&path)?;
    let socket = path.display().to_string();
    let child = Gated::own(&["raw-client", &socket, &n.to_string(), &batch.to_string()])?;
    let (mut stream, _) = listener.accept()?;
    // Echoes what one read returns: one message per read and write in
    // the sequential floor, a batch per read and write in the batched one.
    let echo = std::thread::spawn(move || {
        let mut buf = vec![0u8; RAW_MSG * 64];
        while let Ok(k @ 1..) = stream.read(&mut buf) {
            if stream.write_all(&buf[..k]).is_err() {
                break;
            }
        }
    });
    let (line, node, peer) = child.measure()?;
    let _ = echo.join();
    let _ = std::fs::remove_file(&path);
    Ok((numbers(&line), node, peer))
}

/// The floor's measuring side (`blvm-bench raw-client <socket> <n>
/// [batch]`): `n / 10` uncounted round trips, `WARM` and a line on stdin,
/// `n` measured round trips (each `batch` messages written, then as many
/// read back), their p50, p99 and total in ns, `DONE` and a line on stdin.
pub(crate) fn raw_client(path: &Path, n: usize, batch: usize) -> Result<(), Error> {
    let mut stream = UnixStream::connect(path)?;
    let batch = batch.max(1);
    let msg = vec![7u8; RAW_MSG * batch];
    let mut buf = vec![0u8; RAW_MSG * batch];
    for _ in 0..n / 10 {
        stream.write_all(&msg)?;
        stream.read_exact(&mut buf)?;
    }
    hold("WARM")?;
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        stream.write_all(&msg)?;
        stream.read_exact(&mut buf)?;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed().as_nanos();
    lat.sort_unstable();
    let at = |q: usize| lat.get(q).copied().unwrap_or(0);
    println!("{} {} {elapsed}", at(n / 2), at(n * 99 / 100));
    hold("DONE")
}

/// Prints `tag` and waits for a line on stdin (the bench reads this
/// process's counters meanwhile).
pub(crate) fn hold(tag: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{tag}")?;
    out.flush()?;
    drop(out);
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}
