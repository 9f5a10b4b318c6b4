//! Resource limits: rlimits, and cgroup v1 groups with memory, pids and
//! cpu limits.
//!
//! Why v1: on the machines this runs on, the cgroup v2 hierarchy is mounted
//! with no controller enabled (only its core: `cgroup.kill`,
//! `cgroup.procs`), and the memory, pids and cpu controllers live in v1
//! hierarchies. The v2 group (`process::cgroup`) stays the teardown unit;
//! the module also joins one group per v1 controller, created under the
//! node's own group in that hierarchy, `<node's path>/blvm-modules/<id>`.
//! Limits are written before the fork; the child only writes `0` to each
//! group's `cgroup.procs`, opened before the fork. Groups are removed
//! when the module's process tree is dead.
//!
//! `RLIMIT_NPROC` is not used: it counts every process of the *uid*, so
//! it would count the node's own when modules share its uid. The pids
//! controller counts the module's group only.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::process::{Resource, Rlimit};

use super::{child_error, Layer};

/// The v1 controllers used, with the layer each enforces.
pub const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The resource limits of one module. `None` is "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Memory of the module's cgroup (`memory.limit_in_bytes`); also its
    /// `RLIMIT_DATA`, per process: twice this when the memory cgroup
    /// enforces the limit (see [`rlimits`]), exactly this when it does not
    /// (permissive mode without the cgroup).
    pub memory_bytes: Option<u64>,
    /// Processes and threads in the module's cgroup (`pids.max`).
    pub max_processes: Option<u64>,
    /// CPU, in percent of one core (`cpu.cfs_quota_us` per 100 ms period).
    pub cpu_percent: Option<u32>,
    /// Open files per process (`RLIMIT_NOFILE`).
    pub max_open_files: Option<u64>,
}

impl Default for ResourceLimits {
    /// 2 GiB, 512 tasks, no CPU quota, 1024 files: loose enough for any
    /// well-behaved module, tight enough that a runaway one cannot take
    /// the node's host down.
    fn default() -> ResourceLimits {
        ResourceLimits {
            memory_bytes: Some(2 << 30),
            max_processes: Some(512),
            cpu_percent: None,
            max_open_files: Some(1024),
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

/// Counter that keeps group names unique within one node.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The v1 groups of one spawn.
#[derive(Debug, Default)]
pub(crate) struct LimitGroups {
    groups: Vec<Group>,
}

#[derive(Debug)]
struct Group {
    layer: Layer,
    dir: PathBuf,
    /// `cgroup.procs`, open for writing until the spawn is done.
    procs: Option<File>,
}

impl LimitGroups {
    /// Creates the group of `layer`'s controller and writes its limit.
    ///
    /// `mount` overrides where the controller's hierarchy is mounted (the
    /// operator's `SandboxConfig::cgroup_v1_mounts`); `None` finds it in
    /// `/proc/self/mountinfo`.
    pub(super) fn add(
        &mut self,
        layer: Layer,
        limits: &ResourceLimits,
        module_id: &str,
        mount: Option<&Path>,
    ) -> io::Result<()> {
        let controller = controller_of(layer);
        let parent = v1_parent(controller, mount)?;
        std::fs::create_dir_all(&parent)?;
        // Groups of a node killed without teardown (SIGKILL, OOM) are
        // left behind; the next node to use the hierarchy removes them.
        crate::process::remove_stale_cgroups(&parent);
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
        let dir = parent.join(format!(
            "{safe}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir)?;
        let group = Group {
            layer,
            dir: dir.clone(),
            procs: None,
        };
        // Pushed first, so a failure below still removes the directory.
        self.groups.push(group);
        let write = |file: &str, value: String| {
            std::fs::write(dir.join(file), value.as_bytes())
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(file).display())))
        };
        match layer {
            Layer::CgroupMemory => {
                let bytes = limits.memory_bytes.unwrap_or(u64::MAX);
                write("memory.limit_in_bytes", bytes.to_string())?;
                // Swap would let the module exceed the limit: forbid it where
                // the kernel accounts swap (the file is absent otherwise).
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    write("memory.memsw.limit_in_bytes", bytes.to_string())?;
                }
            }
            Layer::CgroupPids => write("pids.max", limits.max_processes.unwrap_or(u64::MAX).to_string())?,
            _ => {
                let percent = u64::from(limits.cpu_percent.unwrap_or(100).max(1));
                write("cpu.cfs_period_us", "100000".into())?;
                write("cpu.cfs_quota_us", (percent * 1000).to_string())?;
            }
        }
        let procs = OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
        if let Some(g) = self.groups.last_mut() {
            g.procs = Some(procs);
        }
        Ok(())
    }

    /// Joins every group. Child side: one `write` per group, on an fd
    /// opened before the fork, from a static buffer ("0": the writer).
    pub(super) fn join_in_child(&self) -> io::Result<()> {
        for g in &self.groups {
            if let Some(procs) = &g.procs {
                rustix::io::write(procs, b"0").map_err(|e| child_error(g.layer, e.raw_os_error()))?;
            }
        }
        Ok(())
    }

    /// Closes the `cgroup.procs` fds (the spawn is done) and keeps the
    /// directories for removal.
    pub(super) fn into_kept(mut self) -> LimitGroups {
        for g in &mut self.groups {
            g.procs = None;
        }
        self
    }

    pub(super) fn dirs(&self) -> Vec<PathBuf> {
        self.groups.iter().map(|g| g.dir.clone()).collect()
    }

    /// The group enforcing `layer`, if one was created.
    pub(super) fn dir_of(&self, layer: Layer) -> Option<&Path> {
        self.groups.iter().find(|g| g.layer == layer).map(|g| g.dir.as_path())
    }
}

impl Drop for LimitGroups {
    /// Removes the groups. By then the module's processes are dead (the
    /// v2 group was killed and emptied first); a v1 group with members
    /// left cannot be removed and is logged.
    fn drop(&mut self) {
        for g in self.groups.drain(..) {
            drop(g.procs);
            if let Err(e) = std::fs::remove_dir(&g.dir) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(cgroup = %g.dir.display(), error = %e, "cannot remove module cgroup");
                }
            }
        }
    }
}

/// The v1 controller that enforces `layer`.
pub(super) fn controller_of(layer: Layer) -> &'static str {
    match layer {
        Layer::CgroupMemory => "memory",
        Layer::CgroupPids => "pids",
        _ => "cpu",
    }
}

/// `<mount of controller><node's path in that hierarchy>/blvm-modules`.
fn v1_parent(controller: &str, mount_override: Option<&Path>) -> io::Result<PathBuf> {
    let (mount, root) = match mount_override {
        // An operator-given mount is taken to show the whole hierarchy.
        Some(path) => (path.to_path_buf(), "/".to_owned()),
        None => v1_mount(controller).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no cgroup v1 hierarchy with the {controller} controller is mounted"),
            )
        })?,
    };
    // Checked before anything is created: on a plain directory (a wrong
    // override, an unmounted hierarchy) `create_dir_all` and the limit
    // writes would all "succeed" and limit nothing.
    if !mount.join("cgroup.procs").is_file() || !is_cgroup_v1_fs(&mount) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{} is not a cgroup v1 hierarchy with the {controller} controller",
                mount.display()
            ),
        ));
    }
    let own = std::fs::read_to_string("/proc/self/cgroup")?;
    let path = own
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == controller).then(|| path.to_owned())
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the node is in no {controller} cgroup"),
            )
        })?;
    let rel = path
        .strip_prefix(root.as_str())
        .unwrap_or(&path)
        .trim_start_matches('/');
    Ok(mount.join(rel).join(crate::process::MODULES_GROUP))
}

/// True when `path` lies on a cgroup v1 filesystem (`CGROUP_SUPER_MAGIC`).
fn is_cgroup_v1_fs(path: &Path) -> bool {
    const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
    // `f_type`'s width and sign differ between architectures; the magic
    // fits in the low 32 bits everywhere.
    rustix::fs::statfs(path).is_ok_and(|s| (s.f_type as u64) & 0xffff_ffff == CGROUP_SUPER_MAGIC)
}

/// Reads a cgroup file holding one number; `None` for `max` (no limit),
/// a missing file or anything unparsable.
pub(super) fn read_number(dir: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

/// The `oom_kill <n>` line of a v1 `memory.oom_control` (Linux 4.13+):
/// how many processes of the group the OOM killer has killed.
pub(super) fn oom_kills(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.oom_control")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// Mount point and mounted root of the v1 hierarchy holding `controller`.
fn v1_mount(controller: &str) -> Option<(PathBuf, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_ascii_whitespace();
        if r.next()? != "cgroup" {
            return None;
        }
        let opts = r.nth(1)?;
        if !opts.split(',').any(|o| o == controller) {
            return None;
        }
        let mut f = left.split_ascii_whitespace();
        let root = f.nth(3)?;
        let point = f.next()?;
        Some((Path::new(point).to_path_buf(), root.to_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_left_by_a_dead_node_are_removed_by_the_next_spawn() {
        let Ok(parent) = v1_parent("pids", None) else {
            // Not a host with a v1 pids hierarchy: the integration suite
            // (tests/it/sandbox.rs) says so loudly; nothing to sweep here.
            return;
        };
        std::fs::create_dir_all(&parent).expect("parent");
        // A pid that is certainly dead: a child we reaped.
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let dead = child.id();
        child.wait().expect("reap");
        let stale = parent.join(format!("gone-{dead}-0"));
        std::fs::create_dir(&stale).expect("stale group");
        let mut groups = LimitGroups::default();
        let limits = ResourceLimits::default();
        groups
            .add(Layer::CgroupPids, &limits, "sweeper", None)
            .expect("pids group");
        assert!(!stale.exists(), "{} survived", stale.display());
        let mine = groups.dirs();
        drop(groups);
        assert!(mine.iter().all(|d| !d.exists()), "own group removed on drop");
    }
}
