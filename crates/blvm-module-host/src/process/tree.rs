//! Reading `/proc`: process stats, the descendant tree of a pid, and the
//! process-group teardown used when no writable cgroup v2 exists.
//!
//! Everything here is best-effort by nature: a process can exit between the
//! moment `/proc` lists it and the moment we read its files, so a read that
//! fails means "gone", never an error.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::monitor::ReapGuard;

/// The fields of `/proc/<pid>/stat` this module needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) pid: i32,
    pub(crate) ppid: i32,
    pub(crate) pgrp: i32,
    /// The state letter: `R`, `S`, `Z` (zombie), `X` (dead), ...
    pub(crate) state: u8,
    /// User plus system CPU time, in clock ticks.
    pub(crate) cpu_ticks: u64,
}

impl ProcStat {
    /// A zombie has exited; only its parent's `wait` remains. It cannot run,
    /// fork or hold memory, so teardown treats it as gone.
    pub(crate) fn is_dead(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parses one `/proc/<pid>/stat` line.
///
/// The command name (field 2) is in parentheses and may itself contain
/// spaces and `)`, so the fixed fields are counted from the *last* `)`.
pub(crate) fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let pid = line[..open].trim().parse().ok()?;
    let close = line.rfind(')')?;
    let mut rest = line.get(close + 1..)?.split_ascii_whitespace();
    // Fields after the name, 0-based: 0 state, 1 ppid, 2 pgrp, ..., 11 utime, 12 stime.
    let state = *rest.next()?.as_bytes().first()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    let mut rest = rest.skip(8);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        ppid,
        pgrp,
        state,
        cpu_ticks: utime.saturating_add(stime),
    })
}

/// Reads the stat of one process; `None` when it is gone.
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Resident set size of one process, in bytes (`/proc/<pid>/statm` field 2
/// times the page size); `None` when it is gone.
pub(crate) fn rss_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(rustix::param::page_size() as u64))
}

/// How many file descriptors a process has open (entries of
/// `/proc/<pid>/fd`); `None` when it is gone or cannot be read.
pub(crate) fn open_files(pid: i32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.count() as u64)
}

/// True when the process no longer exists or is a zombie.
pub(crate) fn is_gone(pid: i32) -> bool {
    read_stat(pid).is_none_or(|s| s.is_dead())
}

/// Every process visible in `/proc` right now.
pub(crate) fn snapshot() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_stat)
        .collect()
}

/// The roots plus all their descendants (by parent pid) in `snap`. Roots not
/// present in the snapshot are left out.
pub(crate) fn descendants(snap: &[ProcStat], roots: &[i32]) -> BTreeSet<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in snap {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let present: BTreeSet<i32> = snap.iter().map(|p| p.pid).collect();
    let mut out = BTreeSet::new();
    let mut stack: Vec<i32> = roots.iter().copied().filter(|r| present.contains(r)).collect();
    while let Some(pid) = stack.pop() {
        if out.insert(pid) {
            stack.extend(children.get(&pid).into_iter().flatten().copied());
        }
    }
    out
}

/// True when `/proc/<pid>/environ` holds exactly the entry `needle`
/// (`NAME=value`). Unreadable (gone, or another user's) counts as no.
fn environ_contains(pid: i32, needle: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == needle))
}

/// What identifies the processes of one module in process-group mode.
pub(crate) struct TreeId<'a> {
    /// The module's main pid, also its process group id.
    pub(crate) pid: i32,
    /// `BLVM_MODULE_TOKEN=<token>`: the spawn's unique token, inherited by
    /// every descendant that did not clear its environment. Finds orphans
    /// that `setsid` and lost their parent, which no ppid walk can reach.
    /// Empty disables the scan.
    pub(crate) token_env: &'a [u8],
}

/// Collects the module's processes from one snapshot: the main process (only
/// while it is unreaped, so its pid cannot belong to a stranger), members of
/// its process group, processes carrying its token, and all their
/// descendants. Zombies are left out: they cannot run.
pub(crate) fn module_processes(id: &TreeId<'_>, main_alive: bool, snap: &[ProcStat]) -> BTreeSet<i32> {
    let me = rustix::process::getpid().as_raw_pid();
    let mut roots = Vec::new();
    if main_alive {
        roots.push(id.pid);
    }
    for p in snap {
        if p.pid == me || p.pid == 1 || p.is_dead() {
            continue;
        }
        if p.pgrp == id.pid || (!id.token_env.is_empty() && environ_contains(p.pid, id.token_env)) {
            roots.push(p.pid);
        }
    }
    let dead: BTreeSet<i32> = snap.iter().filter(|p| p.is_dead()).map(|p| p.pid).collect();
    let mut all = descendants(snap, &roots);
    // Never signal the node itself or init, whatever `/proc` claimed.
    all.retain(|pid| *pid != me && *pid != 1 && !dead.contains(pid));
    all
}

/// How many rounds of stop-and-rescan before giving up on a fixed point. A
/// stopped process cannot fork, so each round can only find children that
/// were forked before their parent stopped; a handful of rounds suffices.
const MAX_STOP_ROUNDS: usize = 64;

/// SIGKILLs every process of the module, in process-group mode.
///
/// Each pass freezes the tree with SIGSTOP until a rescan finds no new
/// process (a stopped process cannot fork, and killing a parent first would
/// re-parent its children to init, out of reach of the ppid walk), then
/// SIGKILLs the lot plus the process group, then waits for them to be gone.
/// Passes repeat until one finds nothing, or `timeout` passes.
///
/// The ppid walk from the main pid runs inside [`ReapGuard::with_live`], so
/// the pid cannot have been reaped and reused by a stranger meanwhile.
pub(crate) fn kill_process_tree(id: &TreeId<'_>, guard: &ReapGuard, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let victims = match guard.with_live(|| stop_and_kill(id, true)) {
            Some(v) => v,
            None => stop_and_kill(id, false),
        };
        if victims.is_empty() {
            return Ok(());
        }
        while !victims.iter().all(|pid| is_gone(*pid)) {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("processes of module pid {} still alive after SIGKILL", id.pid),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// One pass: stop to a fixed point, then kill. Returns the pids signalled.
fn stop_and_kill(id: &TreeId<'_>, main_alive: bool) -> BTreeSet<i32> {
    let mut victims = BTreeSet::new();
    for _ in 0..MAX_STOP_ROUNDS {
        let found = module_processes(id, main_alive, &snapshot());
        let new: Vec<i32> = found.difference(&victims).copied().collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            send(pid, Signal::STOP);
            victims.insert(pid);
        }
    }
    for pid in &victims {
        send(*pid, Signal::KILL);
    }
    // Group members that escaped the scans (none should) still die here.
    // After the main process is reaped the group id stays reserved for as
    // long as any member lives, so this cannot reach a stranger's group
    // unless the whole group is gone and the number was reused.
    if let Some(pgid) = Pid::from_raw(id.pid) {
        let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
    }
    victims
}

/// Sends a signal, ignoring "no such process": it may have exited since the
/// scan, which is what we want anyway.
fn send(pid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_stat_handles_parens_and_spaces_in_the_name() {
        let line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 100 1000 50";
        let s = parse_stat(line).expect("valid stat line");
        assert_eq!(
            s,
            ProcStat {
                pid: 1234,
                ppid: 1,
                pgrp: 1234,
                state: b'S',
                cpu_ticks: 12
            }
        );
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("12 (x) S 1").is_none());
    }

    #[test]
    fn descendants_follow_ppid_links() {
        let p = |pid, ppid| ProcStat {
            pid,
            ppid,
            pgrp: pid,
            state: b'S',
            cpu_ticks: 0,
        };
        let snap = [p(10, 1), p(11, 10), p(12, 11), p(13, 1), p(14, 12)];
        assert_eq!(descendants(&snap, &[10]), BTreeSet::from([10, 11, 12, 14]));
        assert_eq!(descendants(&snap, &[99]), BTreeSet::new());
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id() as i32;
        let s = read_stat(me).expect("own stat");
        assert_eq!(s.pid, me);
        assert!(rss_bytes(me).unwrap_or(0) > 0);
        assert!(!is_gone(me));
    }
}
