//! Events (`events`): `NewBlock` events published by the node as fast as
//! the publisher can and delivered to 1 and to 8 module processes, against
//! the floor of pushing event-sized frames down a raw blocking Unix
//! socket to one reader and against the plain stack's event push to 1
//! and 8 subscribers (see `plain`), in interleaved rounds (floor, plain
//! 1, 1 module, plain 8, 8 modules, floor …).
//!
//! The floor writes frames of exactly the wire size of a framed `NewBlock`
//! event (143-byte payload), 64 KiB per `write`, to a child of this binary
//! (`raw-sink`) that reads 64 KiB at a time until EOF: what the socket
//! carries with no codec, queue or wake-up per event. The system is the
//! node's `EventManager` publishing to `bench-module`s (`events` mode,
//! queue of 1024) that count events until an end marker. Delivered events
//! per second is the sum of each module's count over its own span (first
//! event to the marker); events the node dropped because a queue was full
//! are counted, not delivered.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blvm_module_protocol::events::{Event, NewBlock};
use blvm_module_protocol::frame::encode;
use blvm_module_protocol::Hash32;
use bytes::Bytes;

use crate::gate::Gated;
use crate::plain::Publisher;
use crate::procstat::ProcStat;
use crate::rounds::Rounds;
use crate::rtt::hold;
use crate::{numbers, Bench, Error, Sdk};

/// The floor's write and read size.
const CHUNK: usize = 64 * 1024;

/// Runs `rounds` interleaved rounds; each side delivers `n` events in all.
pub(crate) fn run(bench: &Bench, dir: &Path, rounds: usize, n: u64) -> Result<Rounds, Error> {
    let events: Vec<Event> = (0..439).map(|h| block(bench, h)).collect();
    let frame_len = frame_len(&events[1]);
    let plain = (0..439)
        .map(|h| {
            let (hash, header) = (bench.chain.hash_at(h % 439), bench.chain.header_bytes(h % 439));
            Publisher::event(&hash.0, h, &header)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (mut r, mut warm_up) = (Rounds::new(), Rounds::new());
    // Round 0 is an uncounted warm-up.
    for round in 0..=rounds {
        let r = if round == 0 { &mut warm_up } else { &mut r };
        raw_push(dir, round, n, frame_len, r)?;
        for modules in [1usize, 8] {
            plain_push(bench, &plain, modules, n / modules as u64, r)?;
            deliver(bench, &events, modules, n / modules as u64, r)?;
        }
    }
    r.ratio(
        "1 module / raw push floor",
        "1 module: delivered",
        "raw push floor: delivered",
    );
    r.ratio(
        "8 modules / raw push floor",
        "8 modules: delivered",
        "raw push floor: delivered",
    );
    r.ratio(
        "1 module / plain, 1 subscriber",
        "1 module: delivered",
        "plain, 1 subscriber: delivered",
    );
    r.ratio(
        "8 modules / plain, 8 subscribers",
        "8 modules: delivered",
        "plain, 8 subscribers: delivered",
    );
    r.ratio(
        "1 module CPU / plain CPU, node side",
        "1 module: node CPU/op",
        "plain, 1 subscriber: node CPU/op",
    );
    r.ratio(
        "1 module CPU / floor CPU, node side",
        "1 module: node CPU/op",
        "raw push floor: node CPU/op",
    );
    Ok(r)
}

/// The `NewBlock` event of height `h` (its block from mainnet 0..438).
pub(crate) fn block(bench: &Bench, h: u64) -> Event {
    Event::from(NewBlock {
        block_hash: bench.chain.hash_at(h % 439),
        height: h,
        header: bench.chain.header_bytes(h % 439),
    })
}

/// The wire size of `event` framed as the node frames it for a module.
fn frame_len(event: &Event) -> usize {
    let mut payload = Vec::new();
    let _ = event.encode_payload(&mut payload);
    let mut wire = Vec::new();
    encode::event_raw(&mut wire, 1, "NewBlock", &payload);
    wire.len()
}

/// One side of the system: `n` events published to `modules` modules of
/// the Rust SDK.
fn deliver(bench: &Bench, events: &[Event], modules: usize, n: u64, r: &mut Rounds) -> Result<(), Error> {
    let what = if modules == 1 {
        "1 module".to_string()
    } else {
        format!("{modules} modules")
    };
    deliver_to(bench, Sdk::Rust, &what, events, modules, n, r)
}

/// `n` events published to `modules` bench modules of `sdk`, recorded as
/// `what`: delivered events per second (summed over the modules), the
/// share dropped at the node, and both sides' cost per event.
pub(crate) fn deliver_to(
    bench: &Bench,
    sdk: Sdk,
    what: &str,
    events: &[Event],
    modules: usize,
    n: u64,
    r: &mut Rounds,
) -> Result<(), Error> {
    let mut children = Vec::new();
    for _ in 0..modules {
        let (id, mut child) = bench.spawn_sdk_gated(sdk, "events", 1024)?;
        child.expect("READY")?;
        children.push((id, child));
    }
    let node0 = ProcStat::own();
    let peers0: Vec<ProcStat> = children
        .iter()
        .map(|(_, c)| ProcStat::of(c.pid()).unwrap_or_default())
        .collect();
    for i in 0..n {
        bench.events.publish(&events[(i % 439) as usize]);
    }
    // The end marker must reach every module, and a full queue drops
    // it: repeat it until every module has reported.
    let marker = Event::from(NewBlock {
        block_hash: Hash32([0; 32]),
        height: u64::MAX,
        header: vec![0; 80],
    });
    let mut results: Vec<Option<Vec<u64>>> = vec![None; modules];
    while results.iter().any(Option::is_none) {
        bench.events.publish(&marker);
        for (slot, (_, child)) in results.iter_mut().zip(&mut children) {
            if slot.is_none() {
                *slot = child.line_within(Duration::from_millis(1))?.map(|l| numbers(&l));
            }
        }
    }
    for (_, child) in &mut children {
        child.expect("DONE")?;
    }
    let node = ProcStat::own().since(&node0);
    let mut peer = ProcStat::default();
    let (mut rate, mut received, mut dropped) = (0.0, 0u64, 0u64);
    for (((id, child), before), result) in children.iter().zip(&peers0).zip(results.iter().flatten()) {
        add(&mut peer, &ProcStat::of(child.pid()).unwrap_or_default().since(before));
        let (count, elapsed) = (result.get(1).copied().unwrap_or(0), result.get(3).copied().unwrap_or(0));
        rate += count as f64 / elapsed.max(1) as f64 * 1e9;
        received += count;
        dropped += bench.events.get_delivery_stats(id).map_or(0, |s| s.dropped_full);
    }
    for (_, mut child) in children {
        child.release()?;
        child.finish()?;
    }
    r.record(&format!("{what}: delivered"), "k events/s", rate / 1e3);
    r.record(
        &format!("{what}: dropped at the node"),
        "% of published",
        dropped as f64 * 100.0 / (n * modules as u64).max(1) as f64,
    );
    node.record_per_op(r, what, "node", received);
    peer.record_per_op(r, what, "modules", received);
    Ok(())
}

/// One side of the plain stack: `n` events published to `subscribers`
/// `plain-client`s.
fn plain_push(bench: &Bench, events: &[Bytes], subscribers: usize, n: u64, r: &mut Rounds) -> Result<(), Error> {
    let mut children = Vec::new();
    let publisher = bench.plain.subscribers("plain-events", subscribers, |path| {
        let socket = path.display().to_string();
        for _ in 0..subscribers {
            children.push(Gated::own(&["plain-client", &socket, "events"])?);
        }
        Ok(())
    })?;
    for child in &mut children {
        child.expect("READY")?;
    }
    let node0 = ProcStat::own();
    let peers0: Vec<ProcStat> = children
        .iter()
        .map(|c| ProcStat::of(c.pid()).unwrap_or_default())
        .collect();
    for i in 0..n {
        publisher.publish(&events[(i % 439) as usize]);
    }
    let marker = Publisher::event(&[0; 32], u64::MAX, &[0; 80])?;
    let mut results: Vec<Option<Vec<u64>>> = vec![None; subscribers];
    while results.iter().any(Option::is_none) {
        publisher.publish(&marker);
        for (slot, child) in results.iter_mut().zip(&mut children) {
            if slot.is_none() {
                *slot = child.line_within(Duration::from_millis(1))?.map(|l| numbers(&l));
            }
        }
    }
    for child in &mut children {
        child.expect("DONE")?;
    }
    let node = ProcStat::own().since(&node0);
    let mut peer = ProcStat::default();
    let (mut rate, mut received) = (0.0, 0u64);
    for ((child, before), result) in children.iter().zip(&peers0).zip(results.iter().flatten()) {
        add(&mut peer, &ProcStat::of(child.pid()).unwrap_or_default().since(before));
        let (count, elapsed) = (
            result.first().copied().unwrap_or(0),
            result.get(1).copied().unwrap_or(0),
        );
        rate += count as f64 / elapsed.max(1) as f64 * 1e9;
        received += count;
    }
    let dropped = publisher.dropped();
    drop(publisher);
    for mut child in children {
        child.release()?;
        child.finish()?;
    }
    let what = if subscribers == 1 {
        "plain, 1 subscriber".to_string()
    } else {
        format!("plain, {subscribers} subscribers")
    };
    r.record(&format!("{what}: delivered"), "k events/s", rate / 1e3);
    r.record(
        &format!("{what}: dropped at the node"),
        "% of published",
        dropped as f64 * 100.0 / (n * subscribers as u64).max(1) as f64,
    );
    node.record_per_op(r, &what, "node", received);
    peer.record_per_op(r, &what, "clients", received);
    Ok(())
}

/// Adds `spent` into `total` (the modules' counters summed).
fn add(total: &mut ProcStat, spent: &ProcStat) {
    total.run_ns += spent.run_ns;
    total.switches += spent.switches;
    total.syscr = Some(total.syscr.unwrap_or(0) + spent.syscr.unwrap_or(0));
    total.syscw = Some(total.syscw.unwrap_or(0) + spent.syscw.unwrap_or(0));
    total.syscalls = spent.syscalls.map(|s| total.syscalls.unwrap_or(0) + s);
}

/// One side of the floor: this process writes `n` frames of `frame_len`
/// bytes, 64 KiB per write, to a `raw-sink` child.
fn raw_push(dir: &Path, round: usize, n: u64, frame_len: usize, r: &mut Rounds) -> Result<(), Error> {
    let path = dir.join(format!("push-{round}.sock"));
    let listener = UnixListener::bind(&path)?;
    let child = Command::new(std::env::current_exe()?)
        .args(["raw-sink", &path.display().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut child = Gated::new(child)?;
    let (mut stream, _) = listener.accept()?;
    child.expect("READY")?;
    let per_chunk = (CHUNK / frame_len).max(1);
    let chunk = vec![0x5au8; per_chunk * frame_len];
    let (node0, peer0) = (ProcStat::own(), ProcStat::of(child.pid()).unwrap_or_default());
    let mut left = n as usize;
    while left > 0 {
        let frames = left.min(per_chunk);
        stream.write_all(&chunk[..frames * frame_len])?;
        left -= frames;
    }
    drop(stream);
    let result = numbers(&child.line()?);
    child.expect("DONE")?;
    let (node, peer) = (
        ProcStat::own().since(&node0),
        ProcStat::of(child.pid()).unwrap_or_default().since(&peer0),
    );
    child.release()?;
    child.finish()?;
    let _ = std::fs::remove_file(&path);
    let [bytes, elapsed] = result[..] else {
        return Err(format!("raw-sink answered {result:?}").into());
    };
    let frames = bytes / frame_len.max(1) as u64;
    r.record(
        "raw push floor: delivered",
        "k events/s",
        frames as f64 / elapsed.max(1) as f64 * 1e6,
    );
    node.record_per_op(r, "raw push floor", "node", frames);
    peer.record_per_op(r, "raw push floor", "reader", frames);
    Ok(())
}

/// The floor's reading side (`blvm-bench raw-sink <socket>`): `READY`,
/// then reads until EOF; prints the bytes and the ns from the first byte
/// to EOF, then `DONE` and waits for a line on stdin.
pub(crate) fn raw_sink(path: &Path) -> Result<(), Error> {
    let mut stream = UnixStream::connect(path)?;
    println!("READY");
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = stream.read(&mut buf)? as u64;
    let start = Instant::now();
    loop {
        match stream.read(&mut buf)? {
            0 => break,
            k => bytes += k as u64,
        }
    }
    println!("{bytes} {}", start.elapsed().as_nanos());
    hold("DONE")
}
