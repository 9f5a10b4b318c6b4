//! The cgroups that hold a module's memory, process and CPU limits.
//!
//! Per limit, cgroup v2 when the module's v2 group has the controller
//! (limits are written into that group, which is also its teardown group),
//! else a group in the v1 hierarchy holding the controller. Either way the
//! limits are written before the fork, and the child joins before it runs
//! a single instruction of the module: the v2 group by the spawner's first
//! step, each v1 group by one `write` of `0` to its `cgroup.procs`, opened
//! before the fork. v1 groups are removed when the module's tree is dead;
//! the v2 group is the teardown group, removed by `process`.
//!
//! The cpu group also carries the modules' scheduling weight
//! ([`CpuWeight`]), written into the module's group and into the group
//! holding every module (`blvm-modules`): that one is what competes with
//! the node for the CPU (v2: with the node's leaf `blvm-node` beside it;
//! v1: with the node's threads, in the node's own group), the module's
//! own weight only splits the modules' part among them.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::limits::{CpuWeight, ResourceLimits};
use super::{cgroup_v1, cgroup_v2, child_error, Layer};

/// The controllers that enforce limits, in the order they are set up.
pub const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// Which cgroup hierarchy enforces a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// A v1 hierarchy with the controller.
    V1,
    /// The unified (v2) hierarchy.
    V2,
}

impl CgroupVersion {
    /// `"v1"` or `"v2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

/// The limit groups of one spawn.
#[derive(Debug, Default)]
pub(crate) struct LimitGroups {
    groups: Vec<Group>,
}

#[derive(Debug)]
struct Group {
    layer: Layer,
    version: CgroupVersion,
    dir: PathBuf,
    /// v1: `cgroup.procs`, open for writing until the spawn is done.
    procs: Option<File>,
}

impl LimitGroups {
    /// Puts `layer`'s limit in place: into `v2_group` when it has the
    /// controller, else into a new group of the v1 hierarchy holding it.
    ///
    /// `v1_mount` overrides where that hierarchy is mounted (the operator's
    /// `SandboxConfig::cgroup_v1_mounts`); `None` finds it in
    /// `/proc/self/mountinfo`.
    ///
    /// `weight` is written with the cpu limit (into the module's group and
    /// its parent); other layers ignore it.
    pub(super) fn add(
        &mut self,
        layer: Layer,
        limits: &ResourceLimits,
        weight: CpuWeight,
        module_id: &str,
        v2_group: Option<&Path>,
        v1_mount: Option<&Path>,
    ) -> io::Result<CgroupVersion> {
        let controller = cgroup_controller(layer)?;
        if let Some(group) = v2_group.filter(|g| cgroup_v2::has_controller(g, controller)) {
            cgroup_v2::write_limit(group, layer, limits)?;
            if layer == Layer::CgroupCpu {
                cgroup_v2::write_weight(group, weight)?;
            }
            self.groups.push(Group {
                layer,
                version: CgroupVersion::V2,
                dir: group.to_path_buf(),
                procs: None,
            });
            return Ok(CgroupVersion::V2);
        }
        self.add_v1(layer, limits, weight, module_id, v1_mount).map_err(|e| {
            let v2 = match v2_group {
                Some(g) => format!("cgroup v2 does not enable {controller} for {}", g.display()),
                None => "the module has no cgroup v2 group (the node could not create one)".to_owned(),
            };
            io::Error::new(e.kind(), format!("{v2}, and {e}"))
        })?;
        Ok(CgroupVersion::V1)
    }

    fn add_v1(
        &mut self,
        layer: Layer,
        limits: &ResourceLimits,
        weight: CpuWeight,
        module_id: &str,
        mount: Option<&Path>,
    ) -> io::Result<()> {
        let controller = cgroup_controller(layer)?;
        let parent = cgroup_v1::parent(controller, mount)?;
        std::fs::create_dir_all(&parent).map_err(|e| at(&parent, e))?;
        // Groups of a node killed without teardown (SIGKILL, OOM) are
        // left behind; the next node to use the hierarchy removes them.
        crate::process::remove_stale_cgroups(&parent);
        let dir = parent.join(crate::process::unique_cgroup_name(module_id));
        std::fs::create_dir(&dir).map_err(|e| at(&dir, e))?;
        // Pushed first, so a failure below still removes the directory.
        self.groups.push(Group {
            layer,
            version: CgroupVersion::V1,
            dir: dir.clone(),
            procs: None,
        });
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
                write("cpu.cfs_period_us", "100000".into())?;
                // -1: no quota (the operator removed it); the weight stays.
                let quota = limits
                    .cpu_percent
                    .map_or_else(|| "-1".to_owned(), |p| (u64::from(p.max(1)) * 1000).to_string());
                write("cpu.cfs_quota_us", quota)?;
                write("cpu.shares", weight.v1_shares().to_string())?;
                // The group that competes with the node's threads.
                let shares = parent.join("cpu.shares");
                std::fs::write(&shares, weight.v1_shares().to_string()).map_err(|e| at(&shares, e))?;
            }
        }
        let procs = OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
        if let Some(g) = self.groups.last_mut() {
            g.procs = Some(procs);
        }
        Ok(())
    }

    /// Joins every v1 group. Child side: one `write` per group, on an fd
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

    /// Each limit's layer, hierarchy version and group directory.
    pub(super) fn describe(&self) -> Vec<(Layer, CgroupVersion, PathBuf)> {
        self.groups
            .iter()
            .map(|g| (g.layer, g.version, g.dir.clone()))
            .collect()
    }

    /// The group enforcing `layer`, if one was set up.
    fn group_of(&self, layer: Layer) -> Option<&Group> {
        self.groups.iter().find(|g| g.layer == layer)
    }

    /// `layer`'s use against its limit now, from its group's files.
    pub(super) fn gauge(&self, layer: Layer) -> Option<(u64, u64)> {
        let g = self.group_of(layer)?;
        let (current, limit) = match (layer, g.version) {
            (Layer::CgroupMemory, CgroupVersion::V1) => ("memory.usage_in_bytes", "memory.limit_in_bytes"),
            (Layer::CgroupMemory, CgroupVersion::V2) => ("memory.current", "memory.max"),
            (Layer::CgroupPids, _) => ("pids.current", "pids.max"),
            _ => return None,
        };
        // `max` (no limit) does not parse: no gauge.
        Some((read_number(&g.dir, current)?, read_number(&g.dir, limit)?))
    }

    /// Processes of the module the OOM killer has killed: the `oom_kill`
    /// line of v1 `memory.oom_control` (Linux 4.13+) or v2 `memory.events`.
    pub(super) fn oom_kills(&self) -> Option<u64> {
        let g = self.group_of(Layer::CgroupMemory)?;
        let file = match g.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        let text = std::fs::read_to_string(g.dir.join(file)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
    }
}

impl Drop for LimitGroups {
    /// Removes the v1 groups. By then the module's processes are dead (the
    /// teardown group was killed and emptied first); a group with members
    /// left cannot be removed and is logged. The v2 group is the teardown
    /// group, not ours to remove.
    fn drop(&mut self) {
        for g in self.groups.drain(..) {
            if g.version == CgroupVersion::V2 {
                continue;
            }
            drop(g.procs);
            if let Err(e) = std::fs::remove_dir(&g.dir) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(cgroup = %g.dir.display(), error = %e, "cannot remove module cgroup");
                }
            }
        }
    }
}

/// The controller of a cgroup layer; an error for any other layer.
fn cgroup_controller(layer: Layer) -> io::Result<&'static str> {
    layer
        .controller()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{layer} is not a cgroup limit")))
}

/// `e`, naming `path`.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The weight of the cpu group `dir` of hierarchy `version`, from its
/// `cpu.weight` (v2) or `cpu.shares` (v1).
pub(crate) fn read_cpu_weight(version: CgroupVersion, dir: &Path) -> Option<CpuWeight> {
    match version {
        CgroupVersion::V2 => CpuWeight::new(u32::try_from(read_number(dir, "cpu.weight")?).ok()?),
        CgroupVersion::V1 => Some(CpuWeight::from_v1_shares(read_number(dir, "cpu.shares")?)),
    }
}

/// Reads a cgroup file holding one number; `None` for `max` (no limit),
/// a missing file or anything unparsable.
fn read_number(dir: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_left_by_a_dead_node_are_removed_by_the_next_spawn() {
        let Ok(parent) = cgroup_v1::parent("pids", None) else {
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
        let version = groups
            .add(Layer::CgroupPids, &limits, CpuWeight::default(), "sweeper", None, None)
            .expect("pids group");
        assert_eq!(version, CgroupVersion::V1);
        assert!(!stale.exists(), "{} survived", stale.display());
        let mine: Vec<PathBuf> = groups.describe().into_iter().map(|(_, _, d)| d).collect();
        drop(groups);
        assert!(mine.iter().all(|d| !d.exists()), "own group removed on drop");
    }
}
