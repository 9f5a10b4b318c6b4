//! The kernel sandbox of a module process (DESIGN.md "Sandbox").
//!
//! Everything is prepared in the node, before `fork`: limits are written
//! into the module's cgroup v2 group or into new cgroup v1 groups (whose
//! `cgroup.procs` are opened), per controller, see `groups`; rlimits
//! computed; the Landlock ruleset built (its fd open); the seccomp BPF
//! program compiled. Between fork and exec the child then makes only system
//! calls on what was prepared (`Prepared::apply_in_child`), in this order,
//! each step needing the one before or being undone by the one after:
//!
//! 1. join the cgroups (the v2 group, teardown unit and holder of v2
//!    limits: `process::spawner`; v1 limit groups here): needs root's
//!    right to migrate, so before the uid drop;
//!    first so every later instruction is accounted and limited;
//! 2. rlimits: lowering needs nothing, but a hard limit can only be raised
//!    by a privileged process, so before the uid drop;
//! 3. `unshare(CLONE_NEWNET)` unless `network_access`: needs
//!    `CAP_SYS_ADMIN`, which the uid drop takes away;
//! 4. uid/gid drop (when configured): changing credentials clears
//!    `PR_SET_PDEATHSIG`, so it comes before it;
//! 5. `PR_SET_NO_NEW_PRIVS`: Landlock and seccomp need it once
//!    `CAP_SYS_ADMIN` is gone, and a setuid binary exec'd later gains
//!    nothing;
//! 6. `PR_SET_PDEATHSIG(SIGKILL)`, then a check that the node did not die
//!    before it was set;
//! 7. Landlock;
//! 8. seccomp last: its filter would refuse system calls the earlier steps
//!    make (it is the narrowest, and applies to `execve` itself only as
//!    "allowed").
//!
//! [`SandboxMode::Strict`] (the default) refuses to spawn when a layer the
//! spec asks for cannot be prepared; [`SandboxMode::Permissive`] spawns
//! without it and reports it in [`SandboxReport::missing`]. A layer that
//! was prepared and then fails in the child always fails the spawn, with
//! the layer's name: a layer is listed as active only if it was applied.

mod cgroup_v1;
mod cgroup_v2;
mod groups;
mod landlock;
mod limits;
mod netns;
mod privileges;
mod seccomp;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

pub use cgroup_v2::{delegate_controllers, Delegation, NODE_LEAF};
pub(crate) use groups::read_cpu_weight;
pub use groups::{CgroupVersion, CONTROLLERS};
pub use limits::{CpuWeight, ResourceLimits, DEFAULT_CPU_PERCENT};
pub use privileges::RunAs;

/// What to do when a layer cannot be applied on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Refuse to start the module, naming the layer.
    #[default]
    Strict,
    /// Start it without the layer, and report the layer as missing.
    Permissive,
}

/// One layer of the sandbox, as named in status output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// Memory limit of the module's cgroup.
    CgroupMemory,
    /// Process (task) count limit of the module's cgroup.
    CgroupPids,
    /// CPU quota and scheduling weight of the module's cgroup.
    CgroupCpu,
    /// `RLIMIT_DATA`, `RLIMIT_NOFILE`, `RLIMIT_CORE`=0.
    Rlimits,
    /// Its own, empty network namespace.
    NetNamespace,
    /// Runs under an unprivileged uid/gid.
    UidDrop,
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs,
    /// `PR_SET_PDEATHSIG(SIGKILL)`: dies with the node.
    DeathSignal,
    /// Landlock filesystem rules.
    Landlock,
    /// The seccomp filter.
    Seccomp,
}

impl Layer {
    /// The name used in status output and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::CgroupMemory => "cgroup-memory",
            Layer::CgroupPids => "cgroup-pids",
            Layer::CgroupCpu => "cgroup-cpu",
            Layer::Rlimits => "rlimits",
            Layer::NetNamespace => "netns",
            Layer::UidDrop => "uid-drop",
            Layer::NoNewPrivs => "no-new-privs",
            Layer::DeathSignal => "pdeathsig",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
        }
    }

    /// The cgroup controller enforcing this layer, for the three cgroup
    /// limits.
    pub fn controller(self) -> Option<&'static str> {
        match self {
            Layer::CgroupMemory => Some("memory"),
            Layer::CgroupPids => Some("pids"),
            Layer::CgroupCpu => Some("cpu"),
            _ => None,
        }
    }

    /// Index used to tell the parent which layer failed in the child.
    fn code(self) -> i32 {
        self as i32 + 1
    }

    fn from_code(code: i32) -> Option<Layer> {
        const ALL: [Layer; 10] = [
            Layer::CgroupMemory,
            Layer::CgroupPids,
            Layer::CgroupCpu,
            Layer::Rlimits,
            Layer::NetNamespace,
            Layer::UidDrop,
            Layer::NoNewPrivs,
            Layer::DeathSignal,
            Layer::Landlock,
            Layer::Seccomp,
        ];
        ALL.get(usize::try_from(code.checked_sub(1)?).ok()?).copied()
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operator's sandbox settings (part of `ManagerConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// False turns the sandbox off entirely (modules run as before it
    /// existed); status then lists no layer.
    pub enabled: bool,
    /// Strict (default) or permissive.
    pub mode: SandboxMode,
    /// Limits of every module.
    pub default_limits: ResourceLimits,
    /// The scheduling weight of every module's cpu group (and of the
    /// group holding them), below the node's: see [`CpuWeight`].
    pub cpu_weight: CpuWeight,
    /// Per-module limits, combined with `default_limits` field by field:
    /// the stricter value wins.
    pub limits: BTreeMap<String, ResourceLimits>,
    /// The uid/gid modules run as when the node runs as root (euid 0):
    /// `nobody`/`nogroup` (65534/65534) by default; `None` keeps the
    /// node's. Ignored when the node is not root (nothing to drop).
    pub run_as: Option<RunAs>,
    /// Where a v1 controller's hierarchy is mounted (`"memory"` →
    /// `/sys/fs/cgroup/memory`), for hosts whose `/proc/self/mountinfo`
    /// does not show it (a container with a bind-mounted hierarchy). Empty
    /// (default): found in mountinfo. A path that is not a cgroup v1
    /// filesystem makes that controller's layer unavailable.
    pub cgroup_v1_mounts: BTreeMap<String, PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            enabled: true,
            mode: SandboxMode::Strict,
            default_limits: ResourceLimits::default(),
            cpu_weight: CpuWeight::default(),
            limits: BTreeMap::new(),
            run_as: Some(RunAs::default()),
            cgroup_v1_mounts: BTreeMap::new(),
        }
    }
}

impl SandboxConfig {
    /// The spec of one module: its limits — the stricter, field by field,
    /// of the operator's (default and per-module) and what its manifest's
    /// `[resources]` asks for, so a manifest can tighten its sandbox but
    /// never loosen the operator's — and whether it was granted
    /// `network_access`.
    pub fn spec_for(
        &self,
        name: &str,
        requested: &crate::registry::Resources,
        network_access: bool,
    ) -> Option<SandboxSpec> {
        if !self.enabled {
            return None;
        }
        let operator = match self.limits.get(name) {
            Some(own) => self.default_limits.stricter(own),
            None => self.default_limits,
        };
        let limits = operator.stricter(&ResourceLimits {
            memory_bytes: requested.memory_bytes,
            max_processes: requested.max_processes,
            cpu_percent: requested.cpu_percent,
            max_open_files: requested.max_open_files,
        });
        Some(SandboxSpec {
            mode: self.mode,
            limits,
            cpu_weight: self.cpu_weight,
            network_access,
            run_as: self.run_as,
            extra_read_only: Vec::new(),
            cgroup_v1_mounts: self.cgroup_v1_mounts.clone(),
        })
    }
}

/// The sandbox of one spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Strict or permissive.
    pub mode: SandboxMode,
    /// Resource limits.
    pub limits: ResourceLimits,
    /// Scheduling weight of its cpu group.
    pub cpu_weight: CpuWeight,
    /// Granted `network_access`: no network namespace, and `socket()` of
    /// any family is allowed.
    pub network_access: bool,
    /// Drop to this uid/gid when the node runs as root.
    pub run_as: Option<RunAs>,
    /// More paths the module may read (and execute), besides its binary
    /// and the system libraries.
    pub extra_read_only: Vec<PathBuf>,
    /// Overrides of where v1 controllers are mounted (see
    /// [`SandboxConfig::cgroup_v1_mounts`]).
    pub cgroup_v1_mounts: BTreeMap<String, PathBuf>,
}

/// Which layers a spawn has, and which were asked for but missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxReport {
    /// Layers applied, in the order they were applied.
    pub active: Vec<Layer>,
    /// Layers that could not be applied (permissive mode only), with why.
    pub missing: Vec<(Layer, String)>,
}

impl SandboxReport {
    /// Active layer names, then `missing:<layer>` for each missing one.
    pub fn describe(&self) -> Vec<String> {
        self.active
            .iter()
            .map(|l| l.as_str().to_owned())
            .chain(self.missing.iter().map(|(l, _)| format!("missing:{l}")))
            .collect()
    }
}

/// A layer the spec asks for could not be applied (strict mode).
#[derive(Debug, thiserror::Error)]
#[error("sandbox layer {layer} cannot be applied: {reason}")]
pub struct SandboxError {
    /// The layer.
    pub layer: Layer,
    /// Why.
    pub reason: String,
}

/// Errors from the child are passed back as
/// `CHILD_ERRNO_BASE + code × 0x1000 + errno` (errnos are below 4096), so
/// the parent can name the layer; std hands the child's raw code back as is.
const CHILD_ERRNO_BASE: i32 = 0x20000;

fn child_error(layer: Layer, errno: i32) -> io::Error {
    io::Error::from_raw_os_error(CHILD_ERRNO_BASE + layer.code() * 0x1000 + errno.clamp(0, 0xfff))
}

/// If `e` came from a sandbox step in the child, the layer and its errno.
pub(crate) fn layer_of_child_error(e: &io::Error) -> Option<(Layer, io::Error)> {
    let code = e.raw_os_error()?.checked_sub(CHILD_ERRNO_BASE)?;
    if code < 0x1000 {
        return None;
    }
    Some((
        Layer::from_code(code / 0x1000)?,
        io::Error::from_raw_os_error(code % 0x1000),
    ))
}

/// What the spawn needs to know of the request to prepare its sandbox.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    pub module_id: &'a str,
    pub binary: &'a std::path::Path,
    pub data_dir: &'a std::path::Path,
    pub socket_path: &'a std::path::Path,
    /// The module's cgroup v2 group (its teardown group), if it has one:
    /// limits whose controller it has are written there.
    pub cgroup_v2: Option<&'a std::path::Path>,
}

/// A sandbox prepared in the parent, applied in the child.
pub(crate) struct Prepared {
    groups: groups::LimitGroups,
    open_files_limit: Option<u64>,
    cpu_quota_percent: Option<u32>,
    rlimits: Vec<(rustix::process::Resource, rustix::process::Rlimit)>,
    netns: bool,
    run_as: Option<RunAs>,
    no_new_privs: bool,
    death_signal: bool,
    node_pid: Option<rustix::process::Pid>,
    landlock: Option<::landlock::RulesetCreated>,
    seccomp: Option<seccompiler::BpfProgram>,
    report: SandboxReport,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("report", &self.report).finish()
    }
}

impl Prepared {
    /// Prepares every layer `spec` asks for. In strict mode the first layer
    /// that cannot be prepared is an error (and what was created is
    /// removed); in permissive mode it is recorded as missing.
    pub(crate) fn prepare(spec: &SandboxSpec, target: &Target<'_>) -> Result<Prepared, SandboxError> {
        let mut report = SandboxReport::default();
        let need = |layer: Layer, result: Result<(), String>, report: &mut SandboxReport| match result {
            Ok(()) => {
                report.active.push(layer);
                Ok(true)
            }
            Err(reason) if spec.mode == SandboxMode::Permissive => {
                tracing::warn!(layer = %layer, %reason, "sandbox layer missing (permissive mode)");
                report.missing.push((layer, reason));
                Ok(false)
            }
            Err(reason) => Err(SandboxError { layer, reason }),
        };

        // 1. cgroup limits, v2 where the module's group has the
        //    controller, else v1. The cpu group is always wanted: without
        //    a quota it still carries the weight.
        let mut groups = groups::LimitGroups::default();
        for (layer, wanted) in [
            (Layer::CgroupMemory, spec.limits.memory_bytes.is_some()),
            (Layer::CgroupPids, spec.limits.max_processes.is_some()),
            (Layer::CgroupCpu, true),
        ] {
            if !wanted {
                continue;
            }
            let mount = layer.controller().and_then(|c| spec.cgroup_v1_mounts.get(c));
            let result = groups
                .add(
                    layer,
                    &spec.limits,
                    spec.cpu_weight,
                    target.module_id,
                    target.cgroup_v2,
                    mount.map(PathBuf::as_path),
                )
                .map(|_| ())
                .map_err(|e| e.to_string());
            need(layer, result, &mut report)?;
        }
        // 2. rlimits.
        let rlimits = limits::rlimits(&spec.limits, report.active.contains(&Layer::CgroupMemory));
        need(Layer::Rlimits, Ok(()), &mut report)?;
        // 3. network namespace.
        let netns = !spec.network_access && need(Layer::NetNamespace, netns::available(), &mut report)?;
        // 4. uid drop, only when the node is root (else there is nothing to drop).
        let run_as = match spec.run_as {
            Some(ids) if rustix::process::geteuid().is_root() => {
                let ok = need(
                    Layer::UidDrop,
                    privileges::prepare_run_as(ids, target).map_err(|e| e.to_string()),
                    &mut report,
                )?;
                ok.then_some(ids)
            }
            _ => None,
        };
        // 5, 6.
        need(Layer::NoNewPrivs, Ok(()), &mut report)?;
        // PR_SET_PDEATHSIG fires when the *thread* that forked the module
        // exits, not the node: every fork therefore happens on one
        // process-wide thread that never exits (`process::spawner`), never on
        // a tokio worker or blocking-pool thread (those end when idle, which
        // is what once killed modules of a live node).
        need(Layer::DeathSignal, Ok(()), &mut report)?;
        // 7. Landlock.
        let landlock = match landlock::ruleset(target, &spec.extra_read_only) {
            Ok(r) => {
                need(Layer::Landlock, Ok(()), &mut report)?;
                Some(r)
            }
            Err(reason) => {
                need(Layer::Landlock, Err(reason), &mut report)?;
                None
            }
        };
        // 8. seccomp.
        let seccomp = match seccomp::program(spec.network_access) {
            Ok(p) => {
                need(Layer::Seccomp, Ok(()), &mut report)?;
                Some(p)
            }
            Err(reason) => {
                need(Layer::Seccomp, Err(reason), &mut report)?;
                None
            }
        };
        let cpu_quota_percent = spec
            .limits
            .cpu_percent
            .filter(|_| report.active.contains(&Layer::CgroupCpu));
        Ok(Prepared {
            groups,
            open_files_limit: spec.limits.max_open_files,
            cpu_quota_percent,
            rlimits,
            netns,
            run_as,
            no_new_privs: true,
            death_signal: true,
            node_pid: Some(rustix::process::getpid()),
            landlock,
            seccomp,
            report,
        })
    }

    /// Applies every prepared layer, in the documented order. Runs in the
    /// forked child: only system calls on what was prepared; no allocation
    /// (an error is a plain integer inside `io::Error`).
    pub(crate) fn apply_in_child(&mut self) -> io::Result<()> {
        self.groups.join_in_child()?;
        limits::apply_rlimits(&self.rlimits).map_err(|e| child_error(Layer::Rlimits, e.raw_os_error()))?;
        if self.netns {
            netns::unshare_in_child().map_err(|e| child_error(Layer::NetNamespace, e.raw_os_error()))?;
        }
        if let Some(ids) = self.run_as {
            privileges::drop_to(ids).map_err(|e| child_error(Layer::UidDrop, e.raw_os_error()))?;
        }
        if self.no_new_privs {
            privileges::no_new_privs().map_err(|e| child_error(Layer::NoNewPrivs, e.raw_os_error()))?;
        }
        if self.death_signal {
            privileges::die_with_parent(self.node_pid)
                .map_err(|e| child_error(Layer::DeathSignal, e.raw_os_error()))?;
        }
        if let Some(ruleset) = self.landlock.take() {
            landlock::restrict_self(ruleset).map_err(|errno| child_error(Layer::Landlock, errno))?;
        }
        if let Some(program) = &self.seccomp {
            seccomp::install(program).map_err(|errno| child_error(Layer::Seccomp, errno))?;
        }
        Ok(())
    }

    /// After a successful spawn: what the process keeps (the limit groups,
    /// removed at teardown; the report).
    pub(crate) fn into_applied(self) -> Applied {
        Applied {
            groups: self.groups.into_kept(),
            open_files_limit: self.open_files_limit,
            cpu_quota_percent: self.cpu_quota_percent,
            report: self.report,
        }
    }
}

/// The sandbox of a running module: removed (its cgroup v1 groups) when
/// dropped, which `ModuleProcess` does after its tree is dead.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    groups: groups::LimitGroups,
    open_files_limit: Option<u64>,
    cpu_quota_percent: Option<u32>,
    /// What is active.
    pub(crate) report: SandboxReport,
}

impl Applied {
    /// Each cgroup limit: its layer, the hierarchy enforcing it and the
    /// group's directory, for status and tests.
    pub(crate) fn limit_groups(&self) -> Vec<(Layer, CgroupVersion, PathBuf)> {
        self.groups.describe()
    }

    /// `RLIMIT_NOFILE` of its processes, if set.
    pub(crate) fn open_files_limit(&self) -> Option<u64> {
        self.open_files_limit
    }

    /// Its cgroup CPU quota, percent of one core, if enforced.
    pub(crate) fn cpu_quota_percent(&self) -> Option<u32> {
        self.cpu_quota_percent
    }

    /// Reads the module's usage against its cgroup limits now.
    pub(crate) fn limit_usage(&self) -> LimitUsage {
        let gauge = |layer| {
            self.groups
                .gauge(layer)
                .map(|(current, limit)| Gauge { current, limit })
        };
        LimitUsage {
            memory: gauge(Layer::CgroupMemory),
            pids: gauge(Layer::CgroupPids),
            oom_kills: self.groups.oom_kills(),
        }
    }
}

/// One resource's use against its limit, in the limit's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge {
    /// Used now.
    pub current: u64,
    /// The limit.
    pub limit: u64,
}

impl Gauge {
    /// `current` in percent of `limit` (0 for a zero limit).
    pub fn percent(&self) -> f64 {
        if self.limit == 0 {
            return 0.0;
        }
        // Precision loss above 2^53 is irrelevant for a percentage.
        self.current as f64 * 100.0 / self.limit as f64
    }
}

/// A module's usage of its cgroup limits, read from its groups. A field
/// is `None` when that limit is not applied (or its group is gone).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LimitUsage {
    /// `memory.current` against `memory.max` (v1: `memory.usage_in_bytes`
    /// against `memory.limit_in_bytes`).
    pub memory: Option<Gauge>,
    /// `pids.current` against `pids.max`.
    pub pids: Option<Gauge>,
    /// Processes of the module the cgroup's OOM killer has killed
    /// (`oom_kill` of `memory.events`, v1 `memory.oom_control`).
    pub oom_kills: Option<u64>,
}
