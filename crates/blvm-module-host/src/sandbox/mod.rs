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
//! 2. `unshare(CLONE_NEWNET)` unless `network_access`, then
//!    `unshare(CLONE_NEWIPC)` and the mount namespace with the module's
//!    minimal root (`namespaces`; the pid namespace was made at the fork
//!    itself, by the spawner thread): all need `CAP_SYS_ADMIN`, which the
//!    uid drop takes away;
//! 3. rlimits: lowering needs nothing, but a hard limit can only be raised
//!    by a privileged process, so before the uid drop; after the mount
//!    setup, which opens descriptors while the child still holds all of
//!    the node's (close-on-exec, closed only at exec): under a lower
//!    `RLIMIT_NOFILE` than the node's count it could open none;
//! 4. uid/gid drop to the module's own ids (when the node is root):
//!    changing credentials clears `PR_SET_PDEATHSIG`, so it comes before it;
//!    then a fresh session keyring (`keyring`): after the drop, so it is
//!    the module's uid's;
//! 5. `PR_SET_NO_NEW_PRIVS`: Landlock and seccomp need it once
//!    `CAP_SYS_ADMIN` is gone, and a setuid binary exec'd later gains
//!    nothing;
//! 6. `PR_SET_PDEATHSIG(SIGKILL)`, then a check that the node did not die
//!    before it was set;
//! 7. Landlock, with signal and abstract-socket scoping where the kernel
//!    has it (one ruleset, one `landlock_restrict_self`);
//! 8. seccomp last: its filter would refuse system calls the earlier steps
//!    make (it is the narrowest, and applies to `execve` itself only as
//!    "allowed").
//!
//! [`SandboxMode::Strict`] (the default) refuses to spawn when a layer the
//! spec asks for cannot be prepared; [`SandboxMode::Permissive`] spawns
//! without it and reports it in [`SandboxReport::missing`]. A layer that
//! was prepared and then fails in the child always fails the spawn, with
//! the layer's name: a layer is listed as active only if it was applied.
//!
//! An *optional* layer ([`Layer::is_optional`]: Landlock scoping, which
//! needs Linux 6.12) is applied where the kernel has it and listed as
//! missing where it has not, in both modes: strict mode never refuses a
//! module for it, and status still says it is absent.

mod cgroup_v1;
mod cgroup_v2;
mod disk;
mod exec_check;
mod groups;
mod identity;
mod keyring;
mod landlock;
mod limits;
mod namespaces;
mod netns;
mod privileges;
mod seccomp;

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

pub use cgroup_v2::{delegate_controllers, Delegation, NODE_LEAF};
pub use disk::{AttachedImage, DiskImages, DiskUsage, MIN_QUOTA_BYTES};
pub use exec_check::ExecRefused;
pub(crate) use groups::read_cpu_weight;
pub use groups::{CgroupVersion, CONTROLLERS};
pub use identity::{Identity, IdentityAllocator, IdentityError};
pub use landlock::DataDirAccess;
pub use limits::{CpuWeight, ResourceLimits, DEFAULT_CPU_PERCENT, DEFAULT_DISK_BYTES};
pub(crate) use namespaces::fork_in_new_pid_namespace;
pub use privileges::RunAs;
pub use seccomp::{
    Answer as SeccompAnswer, DeniedCall, Refused as SeccompRefused, CLONE_NAMESPACE_FLAGS, DENIED_CALLS,
    NEWEST_KNOWN_SYSCALL,
};

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
    /// Its own pid namespace: it is process 1 and sees no other process.
    PidNamespace,
    /// Its own IPC namespace (SysV and POSIX message queues).
    IpcNamespace,
    /// Its own mount namespace, whose root holds only what it needs.
    MountNamespace,
    /// Its data dir is a file system of its own, of the quota's size.
    DiskQuota,
    /// Landlock scoping (ABI 6): no signal to, and no abstract Unix socket
    /// of, a process outside the module's Landlock domain. Optional.
    LandlockScope,
    /// A fresh session keyring: the module possesses none of the node's
    /// keys. Not listed where the kernel (or a filter of the node's own)
    /// offers no keyrings, as there is none to share.
    SessionKeyring,
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
            Layer::PidNamespace => "pidns",
            Layer::IpcNamespace => "ipcns",
            Layer::MountNamespace => "mountns",
            Layer::DiskQuota => "disk-quota",
            Layer::LandlockScope => "landlock-scope",
            Layer::SessionKeyring => "session-keyring",
        }
    }

    /// An optional layer is applied where the kernel has it and listed as
    /// missing where it has not, in strict mode too: never a reason to
    /// refuse a module.
    pub fn is_optional(self) -> bool {
        matches!(self, Layer::LandlockScope)
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
        const ALL: [Layer; 16] = [
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
            Layer::PidNamespace,
            Layer::IpcNamespace,
            Layer::MountNamespace,
            Layer::DiskQuota,
            Layer::LandlockScope,
            Layer::SessionKeyring,
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
    /// Who modules run as when the node runs as root (euid 0): by
    /// default each module its own uid/gid from a range
    /// ([`Identity::PerModule`]). Ignored when the node is not root
    /// (nothing to drop).
    pub identity: Identity,
    /// Where a v1 controller's hierarchy is mounted (`"memory"` →
    /// `/sys/fs/cgroup/memory`), for hosts whose `/proc/self/mountinfo`
    /// does not show it (a container with a bind-mounted hierarchy). Empty
    /// (default): found in mountinfo. A path that is not a cgroup v1
    /// filesystem makes that controller's layer unavailable.
    pub cgroup_v1_mounts: BTreeMap<String, PathBuf>,
    /// More paths every module may read and execute, besides its own
    /// folder and the system directories: an interpreter under `/opt`, a
    /// shared virtual environment. Empty by default.
    pub read_only: Vec<PathBuf>,
    /// More paths one module may read and execute (by name), added to
    /// `read_only`. A manifest's `[resources] read_only` can only ask for
    /// paths covered by these two lists.
    pub module_read_only: BTreeMap<String, Vec<PathBuf>>,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            enabled: true,
            mode: SandboxMode::Strict,
            default_limits: ResourceLimits::default(),
            cpu_weight: CpuWeight::default(),
            limits: BTreeMap::new(),
            identity: Identity::default(),
            cgroup_v1_mounts: BTreeMap::new(),
            read_only: Vec::new(),
            module_read_only: BTreeMap::new(),
        }
    }
}

impl SandboxConfig {
    /// The paths the operator lets module `name` read besides its own
    /// folder and the system's: [`SandboxConfig::read_only`], then its own
    /// entry of [`SandboxConfig::module_read_only`].
    pub fn read_only_for(&self, name: &str) -> Vec<PathBuf> {
        let mut paths = self.read_only.clone();
        paths.extend(self.module_read_only.get(name).into_iter().flatten().cloned());
        paths
    }

    /// The first path of `asked` (a manifest's `[resources] read_only`)
    /// that the operator's lists do not cover (the path itself or a
    /// directory above it), if any.
    pub fn refused_read_only<'a>(&self, name: &str, asked: &'a [PathBuf]) -> Option<&'a PathBuf> {
        let allowed = self.read_only_for(name);
        asked.iter().find(|p| !allowed.iter().any(|a| p.starts_with(a)))
    }

    /// The spec of one module: its limits — the stricter, field by field,
    /// of the operator's (default and per-module) and what its manifest's
    /// `[resources]` asks for, so a manifest can tighten its sandbox but
    /// never loosen the operator's — what its `granted` capabilities let
    /// it do (`network_access`; `read_filesystem` and `write_filesystem`
    /// on its data dir, [`DataDirAccess`]), the ids it runs as (`ids`: its own, from the
    /// node's [`IdentityAllocator`], when [`Identity::PerModule`]), and the
    /// paths it may read: `module_files` (its staged folder) and what the
    /// operator allows it ([`SandboxConfig::read_only_for`]).
    pub fn spec_for(
        &self,
        name: &str,
        requested: &crate::registry::Resources,
        granted: blvm_module_protocol::PermissionSet,
        ids: Option<RunAs>,
        module_files: Option<&std::path::Path>,
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
            disk_bytes: requested.disk_bytes,
        });
        Some(SandboxSpec {
            mode: self.mode,
            limits,
            cpu_weight: self.cpu_weight,
            network_access: granted.contains(blvm_module_protocol::Permission::NetworkAccess),
            data_dir_access: DataDirAccess::granted(granted),
            run_as: match self.identity {
                Identity::PerModule { .. } => ids,
                Identity::Shared(ids) => Some(ids),
                Identity::Node => None,
            },
            extra_read_only: module_files
                .map(std::path::Path::to_path_buf)
                .into_iter()
                .chain(self.read_only_for(name))
                .collect(),
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
    /// What the module may do with its data dir (`read_filesystem`,
    /// `write_filesystem`): the Landlock rights beneath it.
    pub data_dir_access: DataDirAccess,
    /// Drop to this uid/gid when the node runs as root (the module's own,
    /// see [`Identity`]).
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
    /// Layers that could not be applied, with why: in permissive mode any,
    /// in strict mode only optional ones ([`Layer::is_optional`]).
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
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub module_id: &'a str,
    pub binary: &'a std::path::Path,
    pub data_dir: &'a std::path::Path,
    pub socket_path: &'a std::path::Path,
    /// The module's cgroup v2 group (its teardown group), if it has one:
    /// limits whose controller it has are written there.
    pub cgroup_v2: Option<&'a std::path::Path>,
    /// The node's disk images, for a data dir with a quota.
    pub disk_images: Option<&'a DiskImages>,
}

/// A sandbox prepared in the parent, applied in the child.
pub(crate) struct Prepared {
    groups: groups::LimitGroups,
    open_files_limit: Option<u64>,
    cpu_quota_percent: Option<u32>,
    rlimits: Vec<(rustix::process::Resource, rustix::process::Rlimit)>,
    netns: bool,
    ipcns: bool,
    pidns: bool,
    mounts: Option<namespaces::MountPlan>,
    disk: Option<std::sync::Arc<AttachedImage>>,
    run_as: Option<RunAs>,
    session_keyring: bool,
    no_new_privs: bool,
    death_signal: bool,
    node_pidfd: Option<std::os::fd::OwnedFd>,
    landlock: Option<::landlock::RulesetCreated>,
    seccomp: Option<seccompiler::BpfProgram>,
    /// What the module will see, for [`Prepared::check_exec`] (parent only).
    exec_view: exec_check::View,
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
        // An optional layer is reported, never required (module doc).
        let optional = |layer: Layer, result: Result<(), String>, report: &mut SandboxReport| {
            debug_assert!(layer.is_optional(), "{layer} is a required layer");
            match result {
                Ok(()) => report.active.push(layer),
                Err(reason) => {
                    tracing::warn!(layer = %layer, %reason, "optional sandbox layer missing");
                    report.missing.push((layer, reason));
                }
            }
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
        // rlimits (applied in the child after the mount setup, step 3).
        let rlimits = limits::rlimits(&spec.limits, report.active.contains(&Layer::CgroupMemory));
        need(Layer::Rlimits, Ok(()), &mut report)?;
        // 3. network, IPC and pid namespaces (the last is made by the
        //    spawner thread at the fork).
        let netns = !spec.network_access && need(Layer::NetNamespace, netns::available(), &mut report)?;
        let ipcns = need(Layer::IpcNamespace, namespaces::available("ipc"), &mut report)?;
        let pidns = need(Layer::PidNamespace, namespaces::available("pid"), &mut report)?;
        let root = rustix::process::geteuid().is_root();
        let ids = spec.run_as.filter(|_| root);
        //    The data dir's own file system (its quota), then the mount
        //    namespace that shows it at the data dir's path.
        let disk = match spec.limits.disk_bytes {
            None => None,
            Some(bytes) => {
                let attached = match target.disk_images {
                    Some(images) => attach_disk(images, target, bytes, ids),
                    None => Err("the spawn was given no disk image store (a manager provides one)".to_owned()),
                };
                match attached {
                    Ok(pair) => {
                        need(Layer::DiskQuota, Ok(()), &mut report)?;
                        Some(pair)
                    }
                    Err(reason) => {
                        need(Layer::DiskQuota, Err(reason), &mut report)?;
                        None
                    }
                }
            }
        };
        let landlock_data_dir = disk
            .as_ref()
            .map(|(image, _)| PathBuf::from(format!("/proc/self/fd/{}", image.root_fd().as_raw_fd())));
        let (disk, data_mount) = match disk {
            Some((image, mount)) => (Some(image), Some(mount)),
            None => (None, None),
        };
        let mut visible: Vec<&std::path::Path> = vec![target.binary];
        visible.extend(landlock::SYSTEM_READ_ONLY.iter().map(std::path::Path::new));
        visible.extend(spec.extra_read_only.iter().map(PathBuf::as_path));
        let plan = namespaces::available("mnt").and_then(|()| {
            namespaces::MountPlan::new(namespaces::RootContents {
                read_only: outermost(&visible),
                devices: &landlock::DEVICES,
                data_dir: target.data_dir,
                data_mount,
                socket: target.socket_path,
                workdir: target.data_dir,
            })
        });
        let mounts = match plan {
            Ok(plan) => {
                need(Layer::MountNamespace, Ok(()), &mut report)?;
                Some(plan)
            }
            Err(reason) => {
                need(Layer::MountNamespace, Err(reason), &mut report)?;
                None
            }
        };
        // 4. uid drop, only when the node is root (else there is nothing to drop).
        let run_as = match ids {
            Some(ids) => {
                let how = privileges::Reach {
                    own_root: mounts.is_some(),
                    own_file_system: disk.is_some(),
                };
                let ok = need(
                    Layer::UidDrop,
                    privileges::prepare_run_as(ids, target, how).map_err(|e| e.to_string()),
                    &mut report,
                )?;
                ok.then_some(ids)
            }
            None => None,
        };
        // 4a. A fresh session keyring, where there are keyrings at all.
        let session_keyring = keyring::available();
        if session_keyring {
            need(Layer::SessionKeyring, Ok(()), &mut report)?;
        }
        // 5, 6.
        need(Layer::NoNewPrivs, Ok(()), &mut report)?;
        // PR_SET_PDEATHSIG fires when the *thread* that forked the module
        // exits, not the node: every fork therefore happens on one
        // process-wide thread that never exits (`process::spawner`), never on
        // a tokio worker or blocking-pool thread (those end when idle, which
        // is what once killed modules of a live node).
        need(Layer::DeathSignal, Ok(()), &mut report)?;
        // 7. Landlock, and its scoping (optional) in the same ruleset. With a
        //    disk quota the data dir is the image's root, reached through the
        //    node's own mount of it.
        let landlock_target = Target {
            data_dir: landlock_data_dir.as_deref().unwrap_or(target.data_dir),
            ..*target
        };
        let landlock = match landlock::ruleset(
            &landlock_target,
            &spec.extra_read_only,
            spec.network_access,
            spec.data_dir_access,
        ) {
            Ok(built) => {
                need(Layer::Landlock, Ok(()), &mut report)?;
                optional(Layer::LandlockScope, built.scoped, &mut report);
                Some(built.ruleset)
            }
            Err(reason) => {
                need(Layer::Landlock, Err(reason), &mut report)?;
                optional(
                    Layer::LandlockScope,
                    Err("no Landlock ruleset to scope".into()),
                    &mut report,
                );
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
        let exec_view = exec_check::View {
            read_only: visible.iter().map(|p| p.to_path_buf()).collect(),
            // The root recreates these links (`/bin -> usr/bin`), so
            // `#!/bin/sh` means there what it means on the host.
            links: namespaces::MERGED_USR_LINKS
                .iter()
                .map(std::path::Path::new)
                .filter(|p| p.is_symlink())
                .map(std::path::Path::to_path_buf)
                .collect(),
            data_dir: target.data_dir.to_path_buf(),
            own_root: mounts.is_some(),
            landlock: landlock.is_some(),
            run_as,
        };
        Ok(Prepared {
            groups,
            open_files_limit: spec.limits.max_open_files,
            cpu_quota_percent,
            rlimits,
            netns,
            ipcns,
            pidns,
            mounts,
            disk,
            run_as,
            session_keyring,
            no_new_privs: true,
            death_signal: true,
            node_pidfd: privileges::node_pidfd(),
            landlock,
            seccomp,
            exec_view,
            report,
        })
    }

    /// Checks, in the parent, that the module's program can be executed in
    /// this sandbox: the interpreter of a script (`#!`), and its own, must
    /// be visible to it and executable by its uid. A refusal names the
    /// path and the layer that would refuse it at exec, where the kernel
    /// would only say `ENOENT` or `EACCES`.
    pub(crate) fn check_exec(&self, binary: &std::path::Path) -> Result<(), ExecRefused> {
        exec_check::check(binary, &self.exec_view)
    }

    /// Applies every prepared layer, in the documented order. Runs in the
    /// forked child: only system calls on what was prepared; no allocation
    /// (an error is a plain integer inside `io::Error`).
    pub(crate) fn apply_in_child(&mut self) -> io::Result<()> {
        self.groups.join_in_child()?;
        if self.netns {
            netns::unshare_in_child().map_err(|e| child_error(Layer::NetNamespace, e.raw_os_error()))?;
        }
        if self.ipcns {
            namespaces::unshare_ipc_in_child().map_err(|e| child_error(Layer::IpcNamespace, e.raw_os_error()))?;
        }
        if let Some(plan) = self.mounts.as_mut() {
            plan.enter_in_child()
                .map_err(|e| child_error(Layer::MountNamespace, e.raw_os_error()))?;
        }
        // After the mount setup, which opens descriptors: until exec the
        // child still holds every descriptor of the node (close-on-exec),
        // and a node holding more than the module's `RLIMIT_NOFILE` would
        // leave that setup none to open.
        limits::apply_rlimits(&self.rlimits).map_err(|e| child_error(Layer::Rlimits, e.raw_os_error()))?;
        if let Some(ids) = self.run_as {
            privileges::drop_to(ids).map_err(|e| child_error(Layer::UidDrop, e.raw_os_error()))?;
        }
        if self.session_keyring {
            keyring::join_fresh_in_child().map_err(|errno| child_error(Layer::SessionKeyring, errno))?;
        }
        if self.no_new_privs {
            privileges::no_new_privs().map_err(|e| child_error(Layer::NoNewPrivs, e.raw_os_error()))?;
        }
        if self.death_signal {
            privileges::die_with_parent(self.node_pidfd.as_ref())
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

    /// Whether the spawner must fork the module as process 1 of a new pid
    /// namespace.
    pub(crate) fn pid_namespace(&self) -> bool {
        self.pidns
    }

    /// After a successful spawn: what the process keeps (the limit groups,
    /// removed at teardown; the report).
    pub(crate) fn into_applied(self) -> Applied {
        Applied {
            groups: self.groups.into_kept(),
            disk: self.disk,
            run_as: self.run_as,
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
    disk: Option<std::sync::Arc<AttachedImage>>,
    run_as: Option<RunAs>,
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

    /// Its data dir's own file system, if it has a disk quota: used and
    /// size, bytes.
    pub(crate) fn disk_usage(&self) -> Option<DiskUsage> {
        self.disk.as_ref().and_then(|d| d.usage().ok())
    }

    /// Its data dir's own file system, if it has a disk quota.
    pub(crate) fn disk_image(&self) -> Option<&AttachedImage> {
        self.disk.as_deref()
    }

    /// The ids it was dropped to.
    pub(crate) fn run_as(&self) -> Option<RunAs> {
        self.run_as
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

/// `paths` without those under another directory of the list: a
/// directory shown read-only already shows what is under it, and a file
/// mounted inside a read-only directory has no place to be created (its
/// staged folder holds the binary; the operator may name a directory
/// inside `/usr`).
fn outermost<'a>(paths: &[&'a std::path::Path]) -> Vec<&'a std::path::Path> {
    let is_dir = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let covered = |i: usize| {
        let p = paths[i];
        // Under another directory of the list, or the same path listed earlier.
        (0..paths.len())
            .any(|j| (p == paths[j] && j < i) || (p != paths[j] && p.starts_with(paths[j]) && is_dir(paths[j])))
    };
    (0..paths.len()).filter(|i| !covered(*i)).map(|i| paths[i]).collect()
}

/// The image of the module whose data dir `target` names, and a fresh
/// detached mount of it for this spawn.
fn attach_disk(
    images: &DiskImages,
    target: &Target<'_>,
    bytes: u64,
    ids: Option<RunAs>,
) -> Result<(std::sync::Arc<AttachedImage>, std::os::fd::OwnedFd), String> {
    let (Some(parent), Some(name)) = (target.data_dir.parent(), target.data_dir.file_name()) else {
        return Err(format!("{} is not a module data dir", target.data_dir.display()));
    };
    let image = images.attach(
        &parent.join(".images"),
        &name.to_string_lossy(),
        target.data_dir,
        bytes,
        ids,
    )?;
    let mount = image
        .mount_for_spawn()
        .map_err(|e| format!("cannot mount {}: {e}", image.image().display()))?;
    Ok((image, mount))
}

#[cfg(test)]
mod read_only_tests {
    use super::*;

    #[test]
    fn a_manifest_may_ask_only_for_what_the_operator_allows_and_gets_the_operators_paths() {
        let mut config = SandboxConfig {
            read_only: vec![PathBuf::from("/opt/python3.12")],
            ..SandboxConfig::default()
        };
        config
            .module_read_only
            .insert("py".into(), vec![PathBuf::from("/srv/venvs")]);
        let asked = [PathBuf::from("/srv/venvs/py"), PathBuf::from("/opt/python3.12/lib")];
        assert_eq!(config.refused_read_only("py", &asked), None);
        // Another module has no /srv/venvs.
        assert_eq!(config.refused_read_only("other", &asked), Some(&asked[0]));
        // A prefix of the text is not a directory above it.
        let sibling = [PathBuf::from("/opt/python3.12-evil")];
        assert_eq!(config.refused_read_only("py", &sibling), Some(&sibling[0]));
        // The spec: its staged folder first, then every path the operator
        // allows it, whether the manifest asked or not.
        let spec = config
            .spec_for(
                "py",
                &Default::default(),
                blvm_module_protocol::PermissionSet::empty(),
                None,
                Some(std::path::Path::new("/d/.staged/py-1")),
            )
            .expect("enabled");
        assert_eq!(
            spec.extra_read_only,
            vec![
                PathBuf::from("/d/.staged/py-1"),
                PathBuf::from("/opt/python3.12"),
                PathBuf::from("/srv/venvs")
            ]
        );
    }

    #[test]
    fn read_only_paths_under_a_shown_directory_are_left_to_it() {
        let dir = std::env::temp_dir().join(format!("blvm-outermost-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        std::fs::write(dir.join("sub/file"), b"x").expect("file");
        let file = dir.join("sub/file");
        let sub = dir.join("sub");
        let paths = [
            file.as_path(),
            dir.as_path(),
            sub.as_path(),
            dir.as_path(),
            std::path::Path::new("/usr"),
        ];
        assert_eq!(outermost(&paths), vec![dir.as_path(), std::path::Path::new("/usr")]);
        // A file listed twice is mounted once.
        assert_eq!(outermost(&[file.as_path(), file.as_path()]), vec![file.as_path()]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
