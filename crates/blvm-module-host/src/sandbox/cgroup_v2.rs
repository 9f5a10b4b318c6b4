//! cgroup v2: which controllers the node can hand to its modules' groups,
//! and the limit files written into a module's group.
//!
//! A module's v2 group is its teardown group (`process::cgroup`), a child
//! of `<node's cgroup>/blvm-modules`. A controller works in it only when it
//! is enabled in `cgroup.subtree_control` of every ancestor, from the root
//! of the hierarchy down to `blvm-modules`. Below the root the kernel
//! refuses to enable a controller in a group that holds processes (the
//! "no internal processes" rule), and the node's own group holds the node:
//! the node then moves itself into a leaf, `<node's cgroup>/blvm-node`, as
//! a delegated service does (systemd `Delegate=yes`). If other processes
//! share the node's group, that is not enough, and the controller is
//! reported unavailable with the reason.
//!
//! Where the v2 hierarchy does not offer a controller (hybrid hosts bind
//! memory, pids and cpu to v1 hierarchies), [`super::cgroup_v1`] is used.

use std::io;
use std::path::{Path, PathBuf};

use super::limits::{CpuWeight, ResourceLimits};
use super::Layer;

/// The leaf group the node moves itself into when its own group must
/// enable controllers for its children.
pub const NODE_LEAF: &str = "blvm-node";

/// Period of `cpu.max`, in microseconds (100 ms, the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// What [`delegate_controllers`] achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delegation {
    /// Controllers now enabled for groups created under the parent.
    pub enabled: Vec<String>,
    /// Controllers that are not, each with the reason.
    pub unavailable: Vec<(String, String)>,
    /// True when the node moved itself into its [`NODE_LEAF`] to make room.
    pub moved_node: bool,
}

/// Enables each of `wanted` for groups created under `parent` (a v2 group,
/// normally `<node's cgroup>/blvm-modules`, which must exist): in
/// `cgroup.subtree_control` of every ancestor from the hierarchy's root
/// down to `parent` itself, moving the node into its leaf when its own
/// group refuses for holding it. Never fails: what could not be enabled is
/// listed with the reason.
pub fn delegate_controllers(parent: &Path, wanted: &[&str]) -> Delegation {
    let mut out = Delegation::default();
    let chain = ancestry(parent);
    let Some(root) = chain.first() else {
        for c in wanted {
            out.unavailable.push((
                (*c).to_owned(),
                format!("{} is not in a cgroup v2 hierarchy", parent.display()),
            ));
        }
        return out;
    };
    let offered = read_list(&root.join("cgroup.controllers"));
    'controllers: for controller in wanted {
        if !offered.iter().any(|c| c == controller) {
            out.unavailable.push((
                (*controller).to_owned(),
                format!(
                    "cgroup v2 at {} does not offer it (bound to a v1 hierarchy, or disabled)",
                    root.display()
                ),
            ));
            continue;
        }
        for level in &chain {
            if let Err(reason) = enable_at(level, controller, &mut out.moved_node) {
                out.unavailable.push(((*controller).to_owned(), reason));
                continue 'controllers;
            }
        }
        out.enabled.push((*controller).to_owned());
    }
    out
}

/// `+controller` into `level`'s `cgroup.subtree_control`, unless already
/// there. On `EBUSY` in the group that holds the node, moves the node into
/// its leaf and tries once more.
fn enable_at(level: &Path, controller: &str, moved_node: &mut bool) -> Result<(), String> {
    let control = level.join("cgroup.subtree_control");
    if read_list(&control).iter().any(|c| c == controller) {
        return Ok(());
    }
    let enable = || std::fs::write(&control, format!("+{controller}"));
    match enable() {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) && holds_node(level) => {}
        Err(e) => return Err(format!("enabling it in {}: {e}", control.display())),
    }
    move_node_into_leaf(level).map_err(|e| {
        format!(
            "{} holds the node, which could not move into its leaf {NODE_LEAF}: {e}",
            level.display()
        )
    })?;
    *moved_node = true;
    enable().map_err(|e| {
        format!(
            "enabling it in {}: {e} (other processes share the node's cgroup; run the node in a \
             cgroup of its own, e.g. a systemd service with Delegate=yes)",
            control.display()
        )
    })
}

/// True when the node's process is a member of `level`.
fn holds_node(level: &Path) -> bool {
    let me = std::process::id().to_string();
    std::fs::read_to_string(level.join("cgroup.procs")).is_ok_and(|t| t.lines().any(|l| l.trim() == me))
}

/// Moves the whole node process (every thread) into `<level>/blvm-node`.
fn move_node_into_leaf(level: &Path) -> io::Result<()> {
    let leaf = level.join(NODE_LEAF);
    match std::fs::create_dir(&leaf) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    std::fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())
}

/// `path` and its ancestors that are v2 groups, from the hierarchy's root
/// (the topmost one we can see) down to `path`. Empty if `path` is none.
fn ancestry(path: &Path) -> Vec<PathBuf> {
    let mut chain: Vec<PathBuf> = path
        .ancestors()
        .take_while(|p| p.join("cgroup.controllers").is_file())
        .map(Path::to_path_buf)
        .collect();
    chain.reverse();
    chain
}

/// The whitespace-separated names in a cgroup list file; empty if unreadable.
fn read_list(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.split_ascii_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// True when `controller` is enabled for `group` (listed in its
/// `cgroup.controllers`): its limit files exist and are enforced.
pub(super) fn has_controller(group: &Path, controller: &str) -> bool {
    read_list(&group.join("cgroup.controllers"))
        .iter()
        .any(|c| c == controller)
}

/// Writes `layer`'s limit into the module's v2 group, before the fork.
pub(super) fn write_limit(group: &Path, layer: Layer, limits: &ResourceLimits) -> io::Result<()> {
    let write = |file: &str, value: String| {
        std::fs::write(group.join(file), value.as_bytes())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", group.join(file).display())))
    };
    let or_max = |n: Option<u64>| n.map_or_else(|| "max".to_owned(), |n| n.to_string());
    match layer {
        Layer::CgroupMemory => {
            write("memory.max", or_max(limits.memory_bytes))?;
            // Swap would let the module exceed the limit: none (the file
            // is absent on kernels without swap accounting).
            if group.join("memory.swap.max").exists() {
                write("memory.swap.max", "0".into())?;
            }
            // An OOM kill takes the whole module down at once rather than
            // leaving it half alive, as v1 could.
            if group.join("memory.oom.group").exists() {
                write("memory.oom.group", "1".into())?;
            }
            Ok(())
        }
        Layer::CgroupPids => write("pids.max", or_max(limits.max_processes)),
        _ => {
            let quota = limits.cpu_percent.map_or_else(
                || "max".to_owned(),
                |p| (u64::from(p.max(1)) * CPU_PERIOD_US / 100).to_string(),
            );
            write("cpu.max", format!("{quota} {CPU_PERIOD_US}"))
        }
    }
}

/// Writes the modules' scheduling weight into the module's v2 group and
/// into its parent (`blvm-modules`), which is what the node's leaf
/// [`NODE_LEAF`] (weight 100) competes with.
pub(super) fn write_weight(group: &Path, weight: CpuWeight) -> io::Result<()> {
    for dir in [Some(group), group.parent()].into_iter().flatten() {
        let file = dir.join("cpu.weight");
        std::fs::write(&file, weight.get().to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory laid out like a module's v2 group with the three
    /// controllers on, inside a directory standing for `blvm-modules`
    /// (plain files: what is checked is what is written where). Removed
    /// with [`remove`].
    fn fake_group(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("blvm-v2-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // The module's group, below the one holding every module.
        let dir = dir.join("module");
        std::fs::create_dir_all(&dir).expect("dir");
        for f in [
            "memory.max",
            "memory.swap.max",
            "memory.oom.group",
            "pids.max",
            "cpu.max",
            "cpu.weight",
        ] {
            std::fs::write(dir.join(f), "max\n").expect("file");
        }
        std::fs::write(dir.join("cgroup.controllers"), "cpu memory pids\n").expect("file");
        dir
    }

    fn remove(module_group: &Path) {
        if let Some(parent) = module_group.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }

    fn read(dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).expect("read")
    }

    #[test]
    fn limits_are_written_in_v2_units() {
        let dir = fake_group("units");
        let limits = ResourceLimits {
            memory_bytes: Some(64 << 20),
            max_processes: Some(16),
            cpu_percent: Some(25),
            max_open_files: Some(64),
            disk_bytes: None,
        };
        for layer in [Layer::CgroupMemory, Layer::CgroupPids, Layer::CgroupCpu] {
            write_limit(&dir, layer, &limits).expect("written");
        }
        assert_eq!(read(&dir, "memory.max"), (64u64 << 20).to_string());
        assert_eq!(read(&dir, "memory.swap.max"), "0");
        assert_eq!(read(&dir, "memory.oom.group"), "1");
        assert_eq!(read(&dir, "pids.max"), "16");
        assert_eq!(read(&dir, "cpu.max"), "25000 100000");
        write_weight(&dir, CpuWeight::new(7).expect("weight")).expect("written");
        assert_eq!(read(&dir, "cpu.weight"), "7");
        let parent = dir.parent().expect("parent");
        assert_eq!(read(parent, "cpu.weight"), "7", "the group holding every module");
        assert!(has_controller(&dir, "memory") && !has_controller(&dir, "hugetlb"));
        remove(&dir);
    }

    #[test]
    fn an_absent_limit_is_written_as_max() {
        let dir = fake_group("max");
        let none = ResourceLimits {
            memory_bytes: None,
            max_processes: None,
            cpu_percent: None,
            max_open_files: None,
            disk_bytes: None,
        };
        write_limit(&dir, Layer::CgroupPids, &none).expect("written");
        write_limit(&dir, Layer::CgroupCpu, &none).expect("written");
        assert_eq!(read(&dir, "pids.max"), "max");
        assert_eq!(read(&dir, "cpu.max"), "max 100000");
        remove(&dir);
    }

    #[test]
    fn a_path_outside_any_v2_hierarchy_delegates_nothing_and_says_why() {
        let d = delegate_controllers(Path::new("/nonexistent/blvm-modules"), &["memory"]);
        assert!(d.enabled.is_empty());
        assert_eq!(d.unavailable.len(), 1);
        assert!(d.unavailable[0].1.contains("not in a cgroup v2 hierarchy"), "{d:?}");
    }
}
