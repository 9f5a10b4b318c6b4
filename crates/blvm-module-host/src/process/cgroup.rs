//! One cgroup v2 per spawned module: the only teardown group a module cannot
//! leave by `setsid` or double-fork.
//!
//! Cgroups are driven by plain file writes (no crate): `mkdir` to create,
//! `cgroup.procs` to join, `cgroup.kill` to kill every member at once,
//! `cgroup.events` to learn when the last one is gone, `rmdir` to remove.
//! No controller is enabled here, so the "no internal processes" rule of
//! cgroup v2 never bites; resource limits are the sandbox's business.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// Name of the directory, under the node's own cgroup, that holds one child
/// cgroup per module spawn.
pub const MODULES_GROUP: &str = "blvm-modules";

/// Finds where modules' cgroups should go: the node's own cgroup v2 (the
/// `0::<path>` line of `/proc/self/cgroup`) under the v2 mount point, plus
/// [`MODULES_GROUP`]. Returns `None` when this host has no cgroup v2.
///
/// Nothing is created here; `ModuleProcessSpawner::new` creates the
/// directory and falls back to process groups if it cannot.
pub fn detect_parent() -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim().to_owned();
    let (mount, mount_root) = v2_mount()?;
    // Inside a cgroup namespace or a bind mount, the mount shows the
    // hierarchy from `mount_root` down; our path is relative to the same root.
    let rel = own.strip_prefix(mount_root.as_str()).unwrap_or(&own);
    let rel = rel.trim_start_matches('/');
    // A path like "/foo (deleted)" means our own cgroup was removed.
    if rel.ends_with(" (deleted)") {
        return None;
    }
    // A node that moved itself into its leaf to delegate controllers
    // (`sandbox::delegate_controllers`) keeps its modules beside the leaf.
    let rel = rel
        .strip_suffix(crate::sandbox::NODE_LEAF)
        .filter(|r| r.is_empty() || r.ends_with('/'))
        .unwrap_or(rel)
        .trim_end_matches('/');
    Some(mount.join(rel).join(MODULES_GROUP))
}

/// The cgroup2 mount point and the hierarchy path mounted there, from
/// `/proc/self/mountinfo`; falls back to the usual places (`/sys/fs/cgroup`
/// on unified hosts, `/sys/fs/cgroup/unified` on hybrid ones).
fn v2_mount() -> Option<(PathBuf, String)> {
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in info.lines() {
            // "id parent major:minor root mountpoint opts... - fstype source superopts"
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            if right.split_ascii_whitespace().next() != Some("cgroup2") {
                continue;
            }
            let mut f = left.split_ascii_whitespace();
            let (Some(root), Some(point)) = (f.nth(3), f.next()) else {
                continue;
            };
            // mountinfo escapes spaces as \040; cgroup mounts never have any.
            if Path::new(point).join("cgroup.controllers").exists() {
                return Some((PathBuf::from(point), root.to_owned()));
            }
        }
    }
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
        .map(|p| (p, "/".to_owned()))
}

/// Makes sure `parent` exists and is a cgroup v2 directory we can create
/// groups in. A plain directory (wrong path, no cgroupfs) is refused: moving
/// a process "into" it would silently do nothing.
pub(crate) fn prepare_parent(parent: &Path) -> io::Result<()> {
    std::fs::create_dir_all(parent)?;
    for file in ["cgroup.procs", "cgroup.events"] {
        if !parent.join(file).exists() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{} is not a cgroup v2 directory (no {file})", parent.display()),
            ));
        }
    }
    // Writability of the hierarchy is what matters: create and remove a probe.
    let probe = parent.join(format!(
        "probe-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&probe)?;
    std::fs::remove_dir(&probe)?;
    remove_stale(parent);
    Ok(())
}

/// Removes empty groups left by a node that died without tearing down
/// (named `<id>-<node pid>-<n>`, that pid no longer running). Populated ones
/// cannot be removed (`EBUSY`) and are reported: they hold a dead node's
/// modules. Works on v1 hierarchies too, where the limit groups follow the
/// same naming.
pub(crate) fn remove_stale(parent: &Path) {
    let Ok(dir) = std::fs::read_dir(parent) else { return };
    let me = std::process::id();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(node_pid) = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if node_pid == me || Path::new(&format!("/proc/{node_pid}")).exists() {
            continue;
        }
        if let Err(e) = std::fs::remove_dir(entry.path()) {
            if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) {
                tracing::warn!(cgroup = %entry.path().display(), "stale module cgroup still has processes");
            }
        }
    }
}

/// A new group name for a spawn of `module_id`: `<id>-<node pid>-<n>`,
/// the id cut to 64 characters, each but letters, digits, `_` and `.`
/// written `_`. The node pid keeps two nodes sharing a parent apart (and
/// tells [`remove_stale`] whose group it is); the counter keeps respawns
/// and limit groups apart. Used for teardown and v1 limit groups alike.
pub(crate) fn unique_name(module_id: &str) -> String {
    let safe: String = module_id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{safe}-{}-{n}", std::process::id())
}

/// Per-process counter that makes group names unique within one node.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How often the teardown re-reads `cgroup.events` while waiting.
const POLL: Duration = Duration::from_millis(5);

/// One module spawn's cgroup.
#[derive(Debug)]
pub(crate) struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Creates `<parent>/<`[`unique_name`]`>`.
    pub(crate) fn create(parent: &Path, module_id: &str) -> io::Result<Cgroup> {
        loop {
            let path = parent.join(unique_name(module_id));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Cgroup { path }),
                // Left over from an earlier node with our pid: take the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The group's directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `cgroup.procs` for writing, in the parent, so the child only
    /// has to `write` to it between fork and exec. The fd is close-on-exec
    /// (std opens every file that way), so the module never sees it.
    pub(crate) fn open_procs(&self) -> io::Result<File> {
        OpenOptions::new().write(true).open(self.path.join("cgroup.procs"))
    }

    /// The pids of every process in the group.
    pub(crate) fn pids(&self) -> io::Result<Vec<i32>> {
        let text = std::fs::read_to_string(self.path.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Total CPU time of every process that ever ran in the group, dead ones
    /// included (`usage_usec` of `cpu.stat`, present without any controller).
    pub(crate) fn cpu_usage_usec(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.path.join("cpu.stat")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
    }

    /// True while any process (zombies excepted) is in the group.
    pub(crate) fn is_populated(&self) -> io::Result<bool> {
        let text = std::fs::read_to_string(self.path.join("cgroup.events"))?;
        Ok(text.lines().any(|l| l.trim() == "populated 1"))
    }

    /// SIGKILLs every process in the group, then waits up to `timeout` for
    /// `populated 0`. A group already removed counts as empty.
    ///
    /// `cgroup.kill` (Linux 5.14) kills atomically, forks in flight included.
    /// On older kernels the members are killed one by one until none is
    /// left, which can race with a fork but converges because every child of
    /// a member is born in the group.
    pub(crate) fn kill_all(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        match std::fs::write(self.path.join("cgroup.kill"), b"1") {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.path.exists() => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.kill_members()?,
            Err(e) => return Err(e),
        }
        loop {
            match self.is_populated() {
                Ok(false) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
                Ok(true) => {}
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("cgroup {} still populated after SIGKILL", self.path.display()),
                ));
            }
            // Without cgroup.kill, members forked after the last pass need a signal too.
            if !self.path.join("cgroup.kill").exists() {
                self.kill_members()?;
            }
            std::thread::sleep(POLL);
        }
    }

    fn kill_members(&self) -> io::Result<()> {
        for pid in self.pids()? {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
        Ok(())
    }

    /// Removes the (empty) group. Already gone is fine.
    pub(crate) fn remove(&self) -> io::Result<()> {
        match std::fs::remove_dir(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}
