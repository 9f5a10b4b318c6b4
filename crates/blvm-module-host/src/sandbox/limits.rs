//! Resource limits: what an operator and a manifest ask for, and the
//! rlimits that enforce part of it per process. The cgroup side (memory,
//! processes, CPU for the module's whole tree) is in [`super::groups`].
//!
//! `RLIMIT_NPROC` is not used: it counts every process of the *uid*, so
//! it would count the node's own when modules share its uid. The pids
//! controller counts the module's group only.

use rustix::process::{Resource, Rlimit};

/// The resource limits of one module. `None` is "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Memory of the module's cgroup (`memory.max`, v1 `memory.limit_in_bytes`); also its
    /// `RLIMIT_DATA`, per process: twice this when the memory cgroup
    /// enforces the limit (see `rlimits`), exactly this when it does not
    /// (permissive mode without the cgroup).
    pub memory_bytes: Option<u64>,
    /// Processes and threads in the module's cgroup (`pids.max`).
    pub max_processes: Option<u64>,
    /// CPU, in percent of one core (`cpu.max`, v1 `cpu.cfs_quota_us`, per 100 ms period).
    pub cpu_percent: Option<u32>,
    /// Open files per process (`RLIMIT_NOFILE`).
    pub max_open_files: Option<u64>,
    /// Size of the module's data dir, enforced by the kernel: the data dir
    /// is its own file system of this size (see `sandbox::disk`); also
    /// `RLIMIT_FSIZE`, the largest file it may write anywhere (its private
    /// `/tmp` included).
    pub disk_bytes: Option<u64>,
}

/// The default disk quota of a module's data dir: 256 MiB, enough for an
/// index of a few hundred thousand entries, small enough to preallocate
/// for a dozen modules.
pub const DEFAULT_DISK_BYTES: u64 = 256 << 20;

impl Default for ResourceLimits {
    /// 2 GiB, 512 tasks, no CPU quota, 1024 files, a 256 MiB data dir: loose enough for any
    /// well-behaved module, tight enough that a runaway one cannot take
    /// the node's host down.
    fn default() -> ResourceLimits {
        ResourceLimits {
            memory_bytes: Some(2 << 30),
            max_processes: Some(512),
            cpu_percent: None,
            max_open_files: Some(1024),
            disk_bytes: Some(DEFAULT_DISK_BYTES),
        }
    }
}

impl ResourceLimits {
    /// Field by field, the stricter of the two (a limit beats none).
    pub fn stricter(&self, other: &ResourceLimits) -> ResourceLimits {
        fn min<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        ResourceLimits {
            memory_bytes: min(self.memory_bytes, other.memory_bytes),
            max_processes: min(self.max_processes, other.max_processes),
            cpu_percent: min(self.cpu_percent, other.cpu_percent),
            max_open_files: min(self.max_open_files, other.max_open_files),
            disk_bytes: min(self.disk_bytes, other.disk_bytes),
        }
    }
}

/// The rlimits to set, computed before the fork.
///
/// `memory_cgroup`: the memory cgroup enforces `memory_bytes`. Then
/// `RLIMIT_DATA` is only a backstop at twice the limit: it counts address
/// space reserved (thread stacks, untouched allocations), not memory used,
/// so at the same value it would abort a module (`SIGABRT` on a failed
/// allocation) before the cgroup, whose OOM kill the supervisor can name
/// as "killed by its memory limit". Without the cgroup it is the limit.
pub(super) fn rlimits(limits: &ResourceLimits, memory_cgroup: bool) -> Vec<(Resource, Rlimit)> {
    let both = |n: u64| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    // No core dumps: a module's memory may hold what it read from the node.
    let mut out = vec![(Resource::Core, both(0))];
    if let Some(n) = limits.max_open_files {
        out.push((Resource::Nofile, both(n)));
    }
    if let Some(n) = limits.disk_bytes {
        out.push((Resource::Fsize, both(n)));
    }
    if let Some(n) = limits.memory_bytes {
        let data = if memory_cgroup { n.saturating_mul(2) } else { n };
        out.push((Resource::Data, both(data)));
    }
    out
}

/// Sets the rlimits. Child side: `setrlimit` calls only.
pub(super) fn apply_rlimits(list: &[(Resource, Rlimit)]) -> Result<(), rustix::io::Errno> {
    for (resource, limit) in list {
        rustix::process::setrlimit(*resource, *limit)?;
    }
    Ok(())
}
