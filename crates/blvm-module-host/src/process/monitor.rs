//! Watching a spawned module: the [`ModuleProcess`] handle the manager
//! holds, its exit (noticed the instant it happens, by a thread blocked in
//! `waitid`, never by polling), its resource usage sampled from `/proc`, and
//! its teardown.
//!
//! # Pid reuse
//!
//! Once a process is reaped its pid can be given to a stranger, so signalling
//! a pid you merely remember is a bug. Here the waiter thread first waits
//! *without* reaping (`WNOWAIT`), then takes the [`ReapGuard`] lock to reap.
//! Everything that signals the main pid or walks its children does so under
//! the same lock after checking it was not reaped: while the lock is held the
//! process is at worst a zombie, whose pid the kernel does not reuse.

use std::io;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use tokio::sync::watch;

use super::cgroup::Cgroup;
use super::tree::{self, TreeId};

/// How long [`ModuleProcess::kill_tree`] waits for the last process to go.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// How a module process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit status, when it exited by itself.
    pub code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// Converts a status from `wait`.
    pub fn from_status(status: ExitStatus) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        ExitInfo {
            code: status.code(),
            signal: status.signal(),
        }
    }

    /// True for exit status 0 only. Whether a clean exit is a stop or a
    /// crash is the manager's call (a stop only after `Shutdown`).
    pub fn is_clean(&self) -> bool {
        self.code == Some(0)
    }

    /// A short description for logs and status: `exit status 3`,
    /// `killed by signal 9 (SIGKILL)`.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => match signal_name(sig) {
                Some(name) => format!("killed by signal {sig} ({name})"),
                None => format!("killed by signal {sig}"),
            },
            (None, None) => "exit status unknown".to_owned(),
        }
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The name of a Linux signal number, for the signals a crash shows.
fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// Resources used by every process of a module, sampled now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceUsage {
    /// User plus system CPU time, in milliseconds. In cgroup mode this
    /// includes processes of the module that have already exited.
    pub cpu_time_ms: u64,
    /// Sum of the resident set sizes, in bytes (shared pages count in each
    /// process that maps them).
    pub rss_bytes: u64,
    /// How many processes the module has.
    pub processes: u32,
    /// The most file descriptors any one of its processes has open (the
    /// open-files limit is per process).
    pub max_open_files: u64,
}

/// Why a module's main process cannot run although it has not exited:
/// what `/proc/<pid>/stat` says its state is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// State `T`: stopped by `SIGSTOP` (or `SIGTSTP`, `SIGTTIN`,
    /// `SIGTTOU`); it stays frozen until someone sends `SIGCONT`.
    BySignal,
    /// State `t`: held by a tracer (`ptrace`) at a stop.
    ByTracer,
}

impl Stopped {
    /// From a `/proc/<pid>/stat` state letter; `None` for any state in which
    /// the process can still run (`R`, `S`, `D`, …).
    pub(crate) fn from_state(state: u8) -> Option<Stopped> {
        match state {
            b'T' => Some(Stopped::BySignal),
            b't' => Some(Stopped::ByTracer),
            _ => None,
        }
    }

    /// In words, for status and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Stopped::BySignal => "process stopped by SIGSTOP or another stop signal (state T)",
            Stopped::ByTracer => "process stopped by a tracer (state t)",
        }
    }
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// Which group [`ModuleProcess::kill_tree`] tears down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeardownKind {
    /// One cgroup v2 per spawn, killed with `cgroup.kill`: nothing escapes.
    Cgroup,
    /// The module's process group plus a `/proc` walk; see the module docs
    /// of [`crate::process`] for what can escape.
    ProcessGroup,
}

/// Serialises reaping the main process against signalling it. See the
/// module docs ("Pid reuse").
#[derive(Debug, Default)]
pub(crate) struct ReapGuard {
    reaped: Mutex<bool>,
}

impl ReapGuard {
    /// Runs `f` while the main process is guaranteed unreaped (its pid still
    /// its own), or returns `None` if it has been reaped.
    pub(crate) fn with_live<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        // A panic elsewhere while holding the lock leaves a valid bool.
        let reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if *reaped {
            None
        } else {
            Some(f())
        }
    }
}

/// Starts the thread that waits for `child` to exit, reaps it and publishes
/// its [`ExitInfo`] on `tx`.
pub(crate) fn spawn_waiter(
    mut child: Child,
    module: Arc<str>,
    guard: Arc<ReapGuard>,
    tx: watch::Sender<Option<ExitInfo>>,
) -> io::Result<()> {
    let pid = Pid::from_child(&child);
    let name: String = format!("mwait-{module}").chars().filter(|c| *c != '\0').collect();
    std::thread::Builder::new().name(name).spawn(move || {
        // Block until it exits, leaving it a zombie so its pid stays reserved.
        let peeked = loop {
            match rustix::process::waitid(WaitId::Pid(pid), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other,
            }
        };
        if let Err(e) = peeked {
            // Cannot happen for our own child; reap without the guard rather
            // than hold the lock across a blocking wait.
            tracing::error!(module = %module, pid = pid.as_raw_pid(), error = %e, "waitid failed");
        }
        let reap = |child: &mut Child| match child.wait() {
            Ok(status) => ExitInfo::from_status(status),
            Err(e) => {
                // ECHILD: something else in the node reaped it (SIGCHLD
                // ignored, or a stray `waitpid(-1)`); the status is lost.
                tracing::error!(module = %module, error = %e, "cannot reap module process");
                ExitInfo {
                    code: None,
                    signal: None,
                }
            }
        };
        let lock = || guard.reaped.lock().unwrap_or_else(|e| e.into_inner());
        let info = if peeked.is_ok() {
            // Reap under the guard: no signal can be in flight to this pid.
            let mut reaped = lock();
            let info = reap(&mut child);
            *reaped = true;
            tx.send_replace(Some(info));
            info
        } else {
            let info = reap(&mut child);
            *lock() = true;
            tx.send_replace(Some(info));
            info
        };
        tracing::info!(module = %module, pid = pid.as_raw_pid(), status = %info, "module process exited");
    })?;
    Ok(())
}

/// A running (or exited) module process and everything it started.
///
/// Dropping it kills the whole tree and removes its cgroup: a last defence,
/// not the way to stop a module (send `Shutdown`, wait, then
/// [`kill_tree`](ModuleProcess::kill_tree)). Drop blocks for as long as
/// `kill_tree` does, normally well under a millisecond, at most
/// [`KILL_TIMEOUT`].
pub struct ModuleProcess {
    pub(crate) pid: u32,
    pub(crate) module: Arc<str>,
    /// `BLVM_MODULE_TOKEN=<token>`, to find descendants in process-group mode.
    pub(crate) token_env: Vec<u8>,
    pub(crate) guard: Arc<ReapGuard>,
    pub(crate) exit_rx: watch::Receiver<Option<ExitInfo>>,
    pub(crate) cgroup: Option<Cgroup>,
    /// A pidfd of the main process, opened before its waiter could reap it:
    /// readable once it has exited.
    pub(crate) pidfd: Option<std::os::fd::OwnedFd>,
    /// The sandbox (its cgroup v1 limit groups are removed when this drops,
    /// after `Drop::drop` has killed the tree).
    pub(crate) sandbox: crate::sandbox::Applied,
}

impl std::fmt::Debug for ModuleProcess {
    // By hand: the token must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleProcess")
            .field("module", &self.module)
            .field("pid", &self.pid)
            .field("teardown", &self.teardown_kind())
            .field("exit", &self.exit_info())
            .finish()
    }
}

impl ModuleProcess {
    /// The main process's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A receiver whose value becomes `Some` the instant the main process
    /// exits (and has been reaped). Await `wait_for(Option::is_some)`: the
    /// sender is dropped right after it publishes, so `changed()` alone can
    /// report "closed" once the value is already there.
    pub fn exit_watch(&self) -> watch::Receiver<Option<ExitInfo>> {
        self.exit_rx.clone()
    }

    /// How the main process ended, or `None` while it runs.
    pub fn exit_info(&self) -> Option<ExitInfo> {
        *self.exit_rx.borrow()
    }

    /// Sends `sig` to the main process only (not its descendants).
    ///
    /// # Errors
    ///
    /// `ESRCH` once the process has exited and been reaped (its pid may
    /// already belong to another process, so nothing is sent).
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        let pid = self.raw_pid()?;
        self.guard
            .with_live(|| rustix::process::kill_process(pid, sig))
            .unwrap_or(Err(rustix::io::Errno::SRCH))
            .map_err(io::Error::from)
    }

    /// SIGKILLs every process of the module, descendants that called
    /// `setsid` included, then waits until none remains (at most
    /// [`KILL_TIMEOUT`]). Idempotent: on a dead module it returns at once.
    /// It blocks (normally for well under a millisecond); from async code
    /// with a tight latency budget, call it in `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// `TimedOut` if processes remain after the deadline (another user's
    /// process, or one stuck in the kernel), or an I/O error on the cgroup.
    pub fn kill_tree(&self) -> io::Result<()> {
        match &self.cgroup {
            Some(cgroup) => cgroup.kill_all(KILL_TIMEOUT)?,
            None => {
                let id = TreeId {
                    pid: self.raw_pid()?.as_raw_pid(),
                    token_env: &self.token_env,
                };
                tree::kill_process_tree(&id, &self.guard, KILL_TIMEOUT)?
            }
        }
        // An empty cgroup is not yet a dead main process: the first process
        // of a pid namespace leaves its cgroup, then waits in the kernel for
        // the rest of its namespace to be reaped before it is a zombie.
        // Teardown is over when it has exited.
        if let Some(pidfd) = &self.pidfd {
            let mut fds = [rustix::event::PollFd::new(pidfd, rustix::event::PollFlags::IN)];
            let timeout = rustix::time::Timespec {
                tv_sec: KILL_TIMEOUT.as_secs() as i64,
                tv_nsec: 0,
            };
            loop {
                match rustix::event::poll(&mut fds, Some(&timeout)) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the module's main process did not exit",
                        ))
                    }
                    Ok(_) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// CPU time, resident memory and process count of every process of the
    /// module, read from `/proc` (and `cpu.stat` in cgroup mode) now.
    pub fn usage(&self) -> ResourceUsage {
        let (pids, cpu_usec) = match &self.cgroup {
            Some(cgroup) => (cgroup.pids().unwrap_or_default(), cgroup.cpu_usage_usec()),
            None => {
                // No environment scan here: it reads every process's
                // environ, fine for a teardown, too much for a status poll.
                let id = TreeId {
                    pid: self.pid as i32,
                    token_env: &[],
                };
                let pids = self
                    .guard
                    .with_live(|| tree::module_processes(&id, true, &tree::snapshot()))
                    .unwrap_or_else(|| tree::module_processes(&id, false, &tree::snapshot()));
                (pids.into_iter().collect(), None)
            }
        };
        let mut usage = ResourceUsage::default();
        let mut ticks = 0u64;
        for pid in pids {
            let Some(stat) = tree::read_stat(pid) else { continue };
            ticks = ticks.saturating_add(stat.cpu_ticks);
            usage.rss_bytes = usage.rss_bytes.saturating_add(tree::rss_bytes(pid).unwrap_or(0));
            usage.processes = usage.processes.saturating_add(1);
            usage.max_open_files = usage.max_open_files.max(tree::open_files(pid).unwrap_or(0));
        }
        usage.cpu_time_ms = match cpu_usec {
            Some(usec) => usec / 1000,
            None => ticks.saturating_mul(1000) / clock_ticks_per_second(),
        };
        usage
    }

    /// Whether the main process is stopped (frozen by `SIGSTOP`, or held by
    /// a tracer), read from `/proc/<pid>/stat` now. `None` while it can
    /// run, and once it has exited. A stopped process keeps its socket and
    /// its pid but answers nothing; only its state shows it at once.
    pub fn stopped(&self) -> Option<Stopped> {
        let pid = self.raw_pid().ok()?.as_raw_pid();
        // Under the guard: an unreaped pid is still this process's.
        self.guard
            .with_live(|| tree::read_stat(pid))
            .flatten()
            .and_then(|stat| Stopped::from_state(stat.state))
    }

    /// Which group [`kill_tree`](ModuleProcess::kill_tree) tears down for
    /// this process (a spawn falls back to the process group when its
    /// cgroup could not be created).
    pub fn teardown_kind(&self) -> TeardownKind {
        if self.cgroup.is_some() {
            TeardownKind::Cgroup
        } else {
            TeardownKind::ProcessGroup
        }
    }

    /// The directory of this process's cgroup, in cgroup mode.
    pub fn cgroup_path(&self) -> Option<&std::path::Path> {
        self.cgroup.as_ref().map(Cgroup::path)
    }

    fn raw_pid(&self) -> io::Result<Pid> {
        i32::try_from(self.pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| io::Error::from(rustix::io::Errno::SRCH))
    }
}

/// `sysconf(_SC_CLK_TCK)`, read once by rustix from the auxiliary vector;
/// 100 if it were ever missing.
fn clock_ticks_per_second() -> u64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100,
        n => n,
    }
}

impl ModuleProcess {
    /// What the sandbox of this process is: the layers active, and those
    /// missing (permissive mode).
    pub fn sandbox(&self) -> &crate::sandbox::SandboxReport {
        &self.sandbox.report
    }

    /// The cgroups holding this module's resource limits: each limit's
    /// layer, the hierarchy version enforcing it, and the group directory.
    pub fn limit_cgroups(&self) -> Vec<(crate::sandbox::Layer, crate::sandbox::CgroupVersion, std::path::PathBuf)> {
        self.sandbox.limit_groups()
    }

    /// Its memory and process counts against its cgroup limits, and how
    /// many of its processes the memory limit's OOM killer took, read now.
    /// The groups live as long as this handle, so this still answers right
    /// after the process died (which is how a crash is attributed to the
    /// memory limit).
    pub fn limit_usage(&self) -> crate::sandbox::LimitUsage {
        self.sandbox.limit_usage()
    }

    /// The open-files limit of each of its processes (`RLIMIT_NOFILE`),
    /// when the sandbox set one.
    pub fn open_files_limit(&self) -> Option<u64> {
        self.sandbox.open_files_limit()
    }

    /// Its CPU quota in percent of one core, when the cgroup enforces one.
    pub fn cpu_quota_percent(&self) -> Option<u32> {
        self.sandbox.cpu_quota_percent()
    }

    /// The uid and gid it runs as, when the sandbox dropped it to them.
    pub fn run_as(&self) -> Option<crate::sandbox::RunAs> {
        self.sandbox.run_as()
    }

    /// Its data dir's own file system (disk quota): used and size, bytes.
    pub fn disk_usage(&self) -> Option<crate::sandbox::DiskUsage> {
        self.sandbox.disk_usage()
    }
}

impl Drop for ModuleProcess {
    fn drop(&mut self) {
        if let Err(e) = self.kill_tree() {
            tracing::error!(module = %self.module, pid = self.pid, error = %e, "module process tree survived teardown");
        }
        if let Some(cgroup) = &self.cgroup {
            if let Err(e) = cgroup.remove() {
                tracing::warn!(module = %self.module, cgroup = %cgroup.path().display(), error = %e, "cannot remove module cgroup");
            }
        }
    }
}
