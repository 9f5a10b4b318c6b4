//! A stalled module's cost to the publisher (`stall`): the node
//! publishes `NewBlock` events to 8 subscribed modules, with none stalled
//! and with one of the 8 stalled (its process stopped with `SIGSTOP`
//! after it subscribed, so it reads nothing, its socket and then its queue
//! fill, and the node drops its events), in interleaved rounds (none,
//! one, none …). The figure is the publisher's own cost per published
//! event: wall time and CPU time of the publishing thread, and the whole
//! node's CPU (publisher and per-module writers) per published event. The
//! ratio one stalled / none, taken inside each round, is how much a stalled
//! module slows the publisher (the target: ≤ 1.1×).

use std::time::{Duration, Instant};

use blvm_module_protocol::events::{Event, NewBlock};
use blvm_module_protocol::Hash32;
use rustix::process::{kill_process, Pid, Signal};

use crate::procstat::ProcStat;
use crate::rounds::Rounds;
use crate::{Bench, Error};

/// Subscribers per side.
const MODULES: usize = 8;

/// CPU time of the calling thread so far, ns.
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec.max(0) as u64 * 1_000_000_000 + t.tv_nsec.max(0) as u64
}

/// Sends `signal` to process `pid`.
fn signal(pid: u32, signal: Signal) -> Result<(), Error> {
    let pid = Pid::from_raw(i32::try_from(pid)?).ok_or("pid 0")?;
    kill_process(pid, signal)?;
    Ok(())
}

/// Runs `rounds` interleaved rounds of `n` events published per side.
pub(crate) fn run(bench: &Bench, rounds: usize, n: u64) -> Result<Rounds, Error> {
    let events: Vec<Event> = (0..439u64)
        .map(|h| {
            Event::from(NewBlock {
                block_hash: bench.chain.hash_at(h),
                height: h,
                header: bench.chain.header_bytes(h),
            })
        })
        .collect();
    let (mut r, mut warm_up) = (Rounds::new(), Rounds::new());
    // Round 0 is an uncounted warm-up.
    for round in 0..=rounds {
        let r = if round == 0 { &mut warm_up } else { &mut r };
        side(bench, &events, false, n, r)?;
        side(bench, &events, true, n, r)?;
    }
    r.ratio(
        "publish wall: one stalled / none",
        "one stalled: publish wall/event",
        "none stalled: publish wall/event",
    );
    r.ratio(
        "publisher CPU: one stalled / none",
        "one stalled: publisher CPU/event",
        "none stalled: publisher CPU/event",
    );
    r.ratio(
        "node CPU: one stalled / none",
        "one stalled: node CPU/event",
        "none stalled: node CPU/event",
    );
    Ok(r)
}

/// One side: `n` events published to 8 modules, the first stopped when
/// `stalled`.
fn side(bench: &Bench, events: &[Event], stalled: bool, n: u64, r: &mut Rounds) -> Result<(), Error> {
    let mut children = Vec::new();
    for _ in 0..MODULES {
        let (_, mut child) = bench.spawn_gated_with_id("events", 100)?;
        child.expect("READY")?;
        children.push(child);
    }
    if stalled {
        signal(children[0].pid(), Signal::STOP)?;
    }
    let (node0, cpu0, start) = (ProcStat::own(), thread_cpu_ns(), Instant::now());
    for i in 0..n {
        bench.events.publish(&events[(i % 439) as usize]);
    }
    let (wall, cpu) = (start.elapsed(), thread_cpu_ns().saturating_sub(cpu0));
    // The node's writers may still be draining: the node's CPU is taken
    // once every running module has its end marker.
    let marker = Event::from(NewBlock {
        block_hash: Hash32([0; 32]),
        height: u64::MAX,
        header: vec![0; 80],
    });
    let running = usize::from(stalled);
    let mut reported = [false; MODULES];
    while reported[running..].iter().any(|d| !d) {
        bench.events.publish(&marker);
        for (done, child) in reported.iter_mut().zip(&mut children).skip(running) {
            if !*done {
                *done = child.line_within(Duration::from_millis(1))?.is_some();
            }
        }
    }
    let node = ProcStat::own().since(&node0);
    if stalled {
        signal(children[0].pid(), Signal::CONT)?;
    }
    for child in children {
        child.kill()?;
    }
    let what = if stalled { "one stalled" } else { "none stalled" };
    let per = |ns: f64| ns / n.max(1) as f64;
    r.record(
        &format!("{what}: publish wall/event"),
        "ns",
        per(wall.as_nanos() as f64),
    );
    r.record(&format!("{what}: publisher CPU/event"), "ns", per(cpu as f64));
    r.record(&format!("{what}: node CPU/event"), "ns", per(node.run_ns as f64));
    Ok(())
}
