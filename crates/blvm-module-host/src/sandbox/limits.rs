//! Resource limits: what an operator and a manifest ask for, and the
//! rlimits that enforce part of it per process. The cgroup side (memory,
//! processes, CPU for the module's whole tree) is in [`super::groups`].
//!
//! `RLIMIT_NPROC` is not used: it counts every process of the *uid*, so
//! it would count the node's own when modules share its uid. The pids
//! controller counts the module's group only.
//!
//! `RLIMIT_CPU` is not used either: it bounds a process's CPU time over
//! its whole life and then kills it (`SIGXCPU`, then `SIGKILL`), so a
//! long-lived module would be killed for having run long, and a spinning
//! one not slowed until then. CPU is shared instead, by the cgroup's quota
//! (a rate, per 100 ms period) and its weight ([`CpuWeight`]).

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

/// The default CPU quota of a module, in percent of one core.
///
/// Half a core: more than a module that reacts to blocks and requests
/// needs, and a bound on what one that spins on every core takes from the
/// node (with `N` modules, `N` halves at most, less whenever the node
/// wants the CPU, see [`CpuWeight`]). Before this default a spinning
/// module slowed block generation 21–37×; what remains is the figure
/// "block processing with a spinning module" of `blvm-bench`.
pub const DEFAULT_CPU_PERCENT: u32 = 50;

impl Default for ResourceLimits {
    /// 2 GiB, 512 tasks, half a core ([`DEFAULT_CPU_PERCENT`]), 1024
    /// files, a 256 MiB data dir ([`DEFAULT_DISK_BYTES`]): loose enough for any well-behaved module, tight enough that
    /// a runaway one cannot take the node's host down.
    fn default() -> ResourceLimits {
        ResourceLimits {
            memory_bytes: Some(2 << 30),
            max_processes: Some(512),
            cpu_percent: Some(DEFAULT_CPU_PERCENT),
            max_open_files: Some(1024),
            disk_bytes: Some(DEFAULT_DISK_BYTES),
        }
    }
}

/// The scheduling weight of modules' cpu groups, in cgroup v2
/// `cpu.weight` units (1 to 10000; every group, the node's included, has
/// 100 unless told otherwise). v1 hierarchies get it as `cpu.shares`,
/// scaled so that 100 is v1's default of 1024 ([`CpuWeight::v1_shares`]).
///
/// The weight says how the CPU is split when it is contended, where the
/// quota says how much a module may take even from an idle machine: the
/// group holding the modules (`blvm-modules`) and each module's own group
/// get it, so that when the node and its modules all want to run, the
/// node (weight 100) is given ten times what all modules together are at
/// the default weight of 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuWeight(u32);

impl CpuWeight {
    /// The weight the kernel gives a group nobody configured: the node's.
    pub const NODE: CpuWeight = CpuWeight(100);
    /// Every module's weight unless the operator says otherwise
    /// (`[sandbox] cpu_weight`).
    pub const MODULE_DEFAULT: CpuWeight = CpuWeight(10);
    /// The range `cpu.weight` accepts.
    pub const RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;

    /// `weight` if it is in [`CpuWeight::RANGE`].
    pub fn new(weight: u32) -> Option<CpuWeight> {
        Self::RANGE.contains(&weight).then_some(CpuWeight(weight))
    }

    /// The value in `cpu.weight` units.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The same weight as v1 `cpu.shares` (default 1024 for weight 100;
    /// at least 2, the kernel's minimum).
    pub fn v1_shares(self) -> u64 {
        (u64::from(self.0) * 1024 / 100).max(2)
    }

    /// The weight a v1 `cpu.shares` value stands for, rounded to the
    /// nearest (so `from_v1_shares(w.v1_shares()) == w` for every `w`).
    pub fn from_v1_shares(shares: u64) -> CpuWeight {
        let w = (shares.saturating_mul(100) + 512) / 1024;
        CpuWeight(
            u32::try_from(w)
                .unwrap_or(u32::MAX)
                .clamp(*Self::RANGE.start(), *Self::RANGE.end()),
        )
    }
}

impl Default for CpuWeight {
    fn default() -> CpuWeight {
        CpuWeight::MODULE_DEFAULT
    }
}

impl std::fmt::Display for CpuWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_a_module_has_half_a_core_and_a_tenth_of_the_nodes_weight() {
        assert_eq!(ResourceLimits::default().cpu_percent, Some(50));
        assert!(CpuWeight::default() < CpuWeight::NODE);
        assert_eq!(CpuWeight::default().get(), 10);
        assert_eq!(CpuWeight::default().v1_shares(), 102);
        assert_eq!(CpuWeight::NODE.v1_shares(), 1024, "v1's default for 100");
    }

    #[test]
    fn weights_convert_to_v1_shares_and_back_exactly_and_out_of_range_is_refused() {
        for w in CpuWeight::RANGE {
            let weight = CpuWeight::new(w).expect("in range");
            assert_eq!(CpuWeight::from_v1_shares(weight.v1_shares()), weight, "{w}");
        }
        assert_eq!(CpuWeight::new(0), None);
        assert_eq!(CpuWeight::new(10_001), None);
        assert_eq!(CpuWeight::from_v1_shares(262_144).get(), 10_000, "clamped");
    }
}
