//! What a process spent, from procfs and the kernel's syscall tracepoint:
//! CPU run time, context switches and syscalls summed over its threads, so that a figure can be
//! shown beside the work it cost (per operation) and a slowdown told
//! apart from more work. And the machine's load (load average, CPU
//! pressure) so a run says how busy the machine was.
//!
//! Sources, per thread `/proc/<pid>/task/<tid>/`:
//! - `schedstat`, first field: nanoseconds the thread ran on a CPU;
//! - `status`, `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches`:
//!   every time the thread left the CPU, by sleeping (a wake-up follows)
//!   or by preemption;
//! - `io`, `syscr` / `syscw`: read-class and write-class syscalls (read,
//!   readv, recvmsg … / write, writev, sendmsg …), not every syscall;
//! - every syscall, from a perf counter per thread (`syscalls`), where
//!   the kernel lets us count them; then `io` is not used.
//!
//! Threads that exit between two samples take their counts with them, so
//! the measured processes keep their threads alive across a window.

use std::path::Path;

/// One process's counters at one instant, summed over its threads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ProcStat {
    /// CPU run time, ns.
    pub run_ns: u64,
    /// Context switches (voluntary + involuntary).
    pub switches: u64,
    /// Read-class syscalls; `None` when `io` is unreadable.
    pub syscr: Option<u64>,
    /// Write-class syscalls; `None` when `io` is unreadable.
    pub syscw: Option<u64>,
    /// Every syscall since each thread was first sampled; `None` when
    /// they cannot be counted (see `syscalls`).
    pub syscalls: Option<u64>,
}

impl ProcStat {
    /// The counters of process `pid` now; `None` when it is gone.
    pub fn of(pid: u32) -> Option<ProcStat> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let mut s = ProcStat {
            syscr: Some(0),
            syscw: Some(0),
            syscalls: crate::syscalls::available().then_some(0),
            ..ProcStat::default()
        };
        for task in tasks.flatten() {
            let dir = task.path();
            if let Some(total) = s.syscalls.as_mut() {
                let tid = task.file_name().to_str().and_then(|t| t.parse().ok());
                *total += tid.and_then(crate::syscalls::count).unwrap_or(0);
            }
            s.run_ns += run_ns(&dir).unwrap_or(0);
            s.switches += switches(&dir).unwrap_or(0);
            match syscalls(&dir) {
                Some((r, w)) => {
                    s.syscr = s.syscr.map(|x| x + r);
                    s.syscw = s.syscw.map(|x| x + w);
                }
                None => (s.syscr, s.syscw) = (None, None),
            }
        }
        Some(s)
    }

    /// The counters of this process now.
    pub fn own() -> ProcStat {
        ProcStat::of(std::process::id()).unwrap_or_default()
    }

    /// What was spent from `earlier` to `self`.
    pub fn since(&self, earlier: &ProcStat) -> ProcStat {
        let sub = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?));
        ProcStat {
            run_ns: self.run_ns.saturating_sub(earlier.run_ns),
            switches: self.switches.saturating_sub(earlier.switches),
            syscr: sub(self.syscr, earlier.syscr),
            syscw: sub(self.syscw, earlier.syscw),
            syscalls: sub(self.syscalls, earlier.syscalls),
        }
    }

    /// Records, into `rounds`, this span's cost per operation of `ops`
    /// operations under `side` ("node", "module" …) for figure `what`:
    /// CPU µs, wake-ups (context switches) and syscalls: all of them
    /// where they are counted, else procfs's read-class and write-class.
    pub fn record_per_op(&self, rounds: &mut crate::rounds::Rounds, what: &str, side: &str, ops: u64) {
        let n = ops.max(1) as f64;
        rounds.record(&format!("{what}: {side} CPU/op"), "us", self.run_ns as f64 / 1e3 / n);
        rounds.record(&format!("{what}: {side} wake-ups/op"), "", self.switches as f64 / n);
        if let Some(all) = self.syscalls {
            rounds.record(&format!("{what}: {side} syscalls/op"), "", all as f64 / n);
        } else if let (Some(r), Some(w)) = (self.syscr, self.syscw) {
            rounds.record(&format!("{what}: {side} read syscalls/op"), "", r as f64 / n);
            rounds.record(&format!("{what}: {side} write syscalls/op"), "", w as f64 / n);
        }
    }
}

/// A thread's run time, ns (`schedstat`'s first field).
fn run_ns(task: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(task.join("schedstat")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A thread's voluntary + involuntary context switches.
fn switches(task: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(task.join("status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

/// A thread's read-class and write-class syscalls.
fn syscalls(task: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(task.join("io")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((field("syscr:")?, field("syscw:")?))
}

/// How busy the machine is: the load average and, when the kernel has
/// PSI, the CPU pressure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Load {
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages.
    pub loadavg: String,
    /// `/proc/pressure/cpu`'s `some` line (`avg10=… avg60=… avg300=…
    /// total=…`), when present.
    pub cpu_pressure: Option<String>,
}

impl Load {
    /// The load now.
    pub fn now() -> Load {
        let loadavg = std::fs::read_to_string("/proc/loadavg")
            .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        let cpu_pressure = std::fs::read_to_string("/proc/pressure/cpu")
            .ok()
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("some ")).map(str::to_string));
        Load { loadavg, cpu_pressure }
    }

    /// One line for the text output.
    pub fn line(&self) -> String {
        format!(
            "load average {}; CPU pressure {}",
            self.loadavg,
            self.cpu_pressure.as_deref().unwrap_or("(no /proc/pressure/cpu)")
        )
    }

    /// The load as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "loadavg": self.loadavg, "cpu_pressure_some": self.cpu_pressure })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_run_time_and_counts_its_reads() {
        let before = ProcStat::own();
        assert!(before.run_ns > 0);
        let _ = std::fs::read_to_string("/proc/self/stat");
        let spent = ProcStat::own().since(&before);
        if let Some(r) = spent.syscr {
            assert!(r >= 1);
        }
    }

    #[test]
    fn a_gone_process_has_no_counters() {
        assert!(ProcStat::of(u32::MAX).is_none());
    }
}
