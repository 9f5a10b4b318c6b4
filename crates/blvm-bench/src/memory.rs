//! Host memory per idle module (`memory`): the node's resident memory
//! with no module and with 16 idle modules connected (`bench-module` in
//! `events` mode: handshaken, subscribed to `NewBlock`, waiting), in
//! rounds; each round's figure is the difference over 16. The modules'
//! own resident memory is shown beside it: it is theirs, not the host's.
//!
//! The node's RSS counts pages its allocator keeps after the modules are
//! gone, so a round after the first can reuse them and show less; the
//! median over rounds is the figure, the first round its upper end.

use crate::rounds::Rounds;
use crate::{Bench, Error};

/// Idle modules per round.
const MODULES: usize = 16;

/// Resident memory of process `pid` (`VmRSS` of `/proc/<pid>/status`),
/// KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `rounds` rounds.
pub(crate) fn run(bench: &Bench, rounds: usize) -> Result<Rounds, Error> {
    let mut r = Rounds::new();
    let own = std::process::id();
    for _ in 0..rounds {
        let before = rss_kib(own).ok_or("no VmRSS for this process")?;
        let mut children = Vec::new();
        for _ in 0..MODULES {
            let (_, mut child) = bench.spawn_gated_with_id("events", 100)?;
            child.expect("READY")?;
            children.push(child);
        }
        let after = rss_kib(own).ok_or("no VmRSS for this process")?;
        let modules: u64 = children.iter().filter_map(|c| rss_kib(c.pid())).sum();
        for child in children {
            child.kill()?;
        }
        r.record("node RSS, no module", "KiB", before as f64);
        r.record(&format!("node RSS, {MODULES} idle modules"), "KiB", after as f64);
        r.record(
            "host memory per idle module",
            "KiB",
            after.saturating_sub(before) as f64 / MODULES as f64,
        );
        r.record("each module's own RSS", "KiB", modules as f64 / MODULES as f64);
    }
    Ok(r)
}
