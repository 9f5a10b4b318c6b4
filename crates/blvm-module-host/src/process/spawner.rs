//! Starting a module process.
//!
//! Every spawn gets: a cleared environment holding only the documented
//! variables (the node's own environment may hold secrets), stdin from
//! `/dev/null`, stdout and stderr drained by their own threads, its own
//! process group, and, when a writable cgroup v2 exists, its own cgroup,
//! joined between fork and exec so not one instruction of the module runs
//! outside it. After the join, every descriptor above stderr is marked
//! close-on-exec, so nothing the node has open (a database, a socket, a
//! file some library opened without `O_CLOEXEC`) reaches the module.

use std::fs::File;
#[cfg(test)]
use std::fs::OpenOptions;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rustix::process::{Pid, Signal, WaitOptions};
use tokio::sync::watch;

use super::cgroup::{self, Cgroup};
use super::monitor::{self, ModuleProcess, ReapGuard, TeardownKind, KILL_TIMEOUT};
use super::output::{self, Stream};
use crate::sandbox::{self, Applied, Delegation, DiskImages, Layer, Prepared, SandboxError, SandboxSpec, Target};

/// `BLVM_MODULE_SOCKET`: path of the socket this spawn connects to (its own; names as in
/// `blvm-sdk`'s `env` module, which documents them for module authors).
pub const ENV_SOCKET: &str = "BLVM_MODULE_SOCKET";
/// `BLVM_MODULE_ID`: the id of this spawn, sent back in `hello`.
pub const ENV_MODULE_ID: &str = "BLVM_MODULE_ID";
/// `BLVM_MODULE_NAME`: the manifest name.
pub const ENV_MODULE_NAME: &str = "BLVM_MODULE_NAME";
/// `BLVM_MODULE_VERSION`: the manifest version.
pub const ENV_MODULE_VERSION: &str = "BLVM_MODULE_VERSION";
/// `BLVM_MODULE_TOKEN`: the one-time handshake token.
pub const ENV_TOKEN: &str = "BLVM_MODULE_TOKEN";
/// `BLVM_MODULE_DATA_DIR`: the module's own data directory.
pub const ENV_DATA_DIR: &str = "BLVM_MODULE_DATA_DIR";

/// `PATH` given to every module: system binaries only, never the node's.
pub const MODULE_PATH: &str = "/usr/bin:/bin";

/// Node variables passed through when set: they change diagnostics only,
/// and an operator debugging a module expects them to reach it.
pub const PASSED_THROUGH: [&str; 2] = ["RUST_BACKTRACE", "RUST_LOG"];

/// What to start, and what to tell it.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    /// The spawn's module id (`BLVM_MODULE_ID`), also names the cgroup.
    pub module_id: String,
    /// The manifest name (`BLVM_MODULE_NAME`), tags the module's log lines.
    pub name: String,
    /// The manifest version (`BLVM_MODULE_VERSION`).
    pub version: String,
    /// Absolute path of the executable.
    pub binary: PathBuf,
    /// The process's current directory, created if missing.
    pub working_dir: PathBuf,
    /// The socket this spawn connects to, its own (`BLVM_MODULE_SOCKET`).
    pub socket_path: PathBuf,
    /// The one-time handshake token (`BLVM_MODULE_TOKEN`).
    pub token: String,
    /// The module's data directory (`BLVM_MODULE_DATA_DIR`).
    pub data_dir: PathBuf,
    /// More variables. They cannot override the `BLVM_MODULE_*` set (such
    /// entries are ignored with a warning) but can override `PATH`.
    pub extra_env: Vec<(String, String)>,
    /// The kernel sandbox to apply between fork and exec (limits, network,
    /// privileges, Landlock, seccomp); `None` runs the module unconfined.
    pub sandbox: Option<SandboxSpec>,
    /// Where the module's data dir image lives while the node runs, for a
    /// sandbox with a disk quota (the manager's; one per node, so a
    /// restart mounts the same file system).
    pub disk_images: Option<Arc<DiskImages>>,
}

/// How the spawner groups processes for teardown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnerConfig {
    /// The cgroup v2 directory under which each spawn gets its own group;
    /// `None` disables cgroups (process-group teardown only).
    pub cgroup_parent: Option<PathBuf>,
    /// Enable the memory, pids and cpu controllers of cgroup v2 for the
    /// modules' groups where the hierarchy offers them (see
    /// [`crate::sandbox::delegate_controllers`]), so their limits are
    /// enforced there rather than in v1 hierarchies. This may move the
    /// node into its own leaf group. On by default; off when the sandbox
    /// is off.
    pub delegate_controllers: bool,
}

impl Default for SpawnerConfig {
    /// Auto-detects: the node's own cgroup v2 plus `blvm-modules`, or
    /// `None` when the host has no cgroup v2. Reads `/proc`, writes nothing.
    fn default() -> SpawnerConfig {
        SpawnerConfig {
            cgroup_parent: cgroup::detect_parent(),
            delegate_controllers: true,
        }
    }
}

impl SpawnerConfig {
    /// No cgroups: every module is torn down by process group.
    pub fn without_cgroup() -> SpawnerConfig {
        SpawnerConfig {
            cgroup_parent: None,
            delegate_controllers: false,
        }
    }
}

/// Why a module process could not be started. Names the module, the
/// binary and the cause.
#[derive(Debug, thiserror::Error)]
#[error("cannot spawn module {module_id} ({}): {kind}", binary.display())]
pub struct SpawnError {
    module_id: String,
    binary: PathBuf,
    kind: SpawnErrorKind,
}

impl SpawnError {
    /// The module id of the request.
    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    /// The binary of the request.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// What went wrong.
    pub fn kind(&self) -> &SpawnErrorKind {
        &self.kind
    }
}

/// The cause of a [`SpawnError`]. Causes are part of the message (no
/// `source()` chain), so the status line alone says everything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnErrorKind {
    /// The binary path is relative, so it would depend on the current directory.
    #[error("the binary path is not absolute")]
    RelativeBinary,
    /// The working directory could not be created.
    #[error("cannot create working directory {}: {error}", path.display())]
    WorkingDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        error: io::Error,
    },
    /// `fork`/`exec` (or joining the cgroup between them) failed.
    #[error("cannot start the process: {0}")]
    Exec(io::Error),
    /// A sandbox layer could not be prepared (strict mode).
    #[error("{0}")]
    Sandbox(SandboxError),
    /// Its program (a script's interpreter) could not be executed in its
    /// sandbox; found before the fork.
    #[error("{0}")]
    ExecRefused(crate::sandbox::ExecRefused),
    /// A sandbox layer failed between fork and exec; nothing of the module ran.
    #[error("sandbox layer {layer} failed in the child: {error}")]
    SandboxLayer {
        /// The layer.
        layer: Layer,
        /// The cause.
        error: io::Error,
    },
    /// A supervision thread (waiter or pipe reader) could not be started;
    /// the process was killed.
    #[error("cannot start a supervision thread: {0}")]
    Thread(io::Error),
}

/// Starts module processes. Cheap to share: `spawn` takes `&self`.
#[derive(Debug)]
pub struct ModuleProcessSpawner {
    /// A cgroup parent known to be usable, or `None` for process groups.
    cgroup_parent: Option<PathBuf>,
    /// Which v2 controllers the modules' groups have, and why not others.
    delegation: Delegation,
}

impl ModuleProcessSpawner {
    /// Creates a spawner. A configured cgroup parent is created if missing
    /// and checked to be a writable cgroup v2 directory; if it is not, the
    /// spawner logs why and uses process groups.
    ///
    /// Deliberately not done: `PR_SET_CHILD_SUBREAPER` on the node. It would
    /// keep a dead module's orphans findable, but then someone has to reap
    /// them with `waitpid(-1)`, which would steal exit statuses from every
    /// other `Child` in the node (and from this module's own waiter).
    /// Cgroups make it unnecessary; see [`crate::process`] for what the
    /// process-group fallback does instead.
    pub fn new(config: SpawnerConfig) -> ModuleProcessSpawner {
        let cgroup_parent = config
            .cgroup_parent
            .and_then(|parent| match cgroup::prepare_parent(&parent) {
                Ok(()) => Some(parent),
                Err(e) => {
                    tracing::warn!(
                        cgroup = %parent.display(),
                        error = %e,
                        "cgroup v2 unusable; modules will be torn down by process group"
                    );
                    None
                }
            });
        let mut delegation = Delegation::default();
        if let (Some(parent), true) = (&cgroup_parent, config.delegate_controllers) {
            delegation = sandbox::delegate_controllers(parent, &sandbox::CONTROLLERS);
            tracing::info!(
                cgroup = %parent.display(),
                enabled = ?delegation.enabled,
                moved_node = delegation.moved_node,
                "cgroup v2 controllers for module limits"
            );
            for (controller, reason) in &delegation.unavailable {
                tracing::debug!(
                    controller,
                    reason,
                    "cgroup v2 controller not available; its limit uses cgroup v1"
                );
            }
        }
        ModuleProcessSpawner {
            cgroup_parent,
            delegation,
        }
    }

    /// The cgroup v2 controllers modules' groups have (their limits are
    /// enforced in v2), and why the others are not there.
    pub fn delegation(&self) -> &Delegation {
        &self.delegation
    }

    /// How this spawner's processes are torn down.
    pub fn teardown_kind(&self) -> TeardownKind {
        if self.cgroup_parent.is_some() {
            TeardownKind::Cgroup
        } else {
            TeardownKind::ProcessGroup
        }
    }

    /// The cgroup directory under which modules' groups are created.
    pub fn cgroup_parent(&self) -> Option<&Path> {
        self.cgroup_parent.as_deref()
    }

    /// Starts the module. Returns once the process exists (exec has
    /// succeeded); readiness is the handshake's business.
    ///
    /// If this spawn's cgroup cannot be created, the spawn goes ahead with
    /// process-group teardown and a warning;
    /// [`ModuleProcess::teardown_kind`] tells which one it got.
    ///
    /// # Errors
    ///
    /// A relative binary path, an uncreatable working directory, a failed
    /// exec (missing binary, no permission, or the cgroup join), or no
    /// thread for supervision. Nothing is left running after an error.
    pub fn spawn(&self, req: &SpawnRequest) -> Result<ModuleProcess, SpawnError> {
        let fail = |kind| SpawnError {
            module_id: req.module_id.clone(),
            binary: req.binary.clone(),
            kind,
        };
        if !req.binary.is_absolute() {
            return Err(fail(SpawnErrorKind::RelativeBinary));
        }
        std::fs::create_dir_all(&req.working_dir).map_err(|error| {
            fail(SpawnErrorKind::WorkingDir {
                path: req.working_dir.clone(),
                error,
            })
        })?;

        let (mut child, cgroup, sandbox) = self.start_retrying_busy_text(req).map_err(&fail)?;
        let pid = child.id();
        let module: Arc<str> = Arc::from(req.name.as_str());
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let guard = Arc::new(ReapGuard::default());
        // Before the waiter starts (and so before it can reap): the pid is
        // still this child's.
        let pidfd = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
        let (tx, exit_rx) = watch::channel(None);
        if let Err(e) = monitor::spawn_waiter(child, module.clone(), guard.clone(), tx) {
            // The Child went down with the closure, unreaped: finish it by pid.
            emergency_kill(pid, cgroup.as_ref());
            return Err(fail(SpawnErrorKind::Thread(e)));
        }
        // From here on, dropping `process` kills the tree and removes the cgroup.
        let process = ModuleProcess {
            pid,
            module: module.clone(),
            token_env: format!("{ENV_TOKEN}={}", req.token).into_bytes(),
            guard,
            exit_rx,
            cgroup,
            pidfd,
            sandbox,
        };
        // On error `process` drops here, killing what was started.
        if let Some(pipe) = stdout {
            output::spawn_reader(pipe, module.clone(), Stream::Stdout).map_err(|e| fail(SpawnErrorKind::Thread(e)))?;
        }
        if let Some(pipe) = stderr {
            output::spawn_reader(pipe, module.clone(), Stream::Stderr).map_err(|e| fail(SpawnErrorKind::Thread(e)))?;
        }
        tracing::info!(
            module = %module,
            pid,
            teardown = ?process.teardown_kind(),
            sandbox = ?process.sandbox().describe(),
            "module process started"
        );
        Ok(process)
    }

    /// [`start`](Self::start), tried again for up to a second while exec
    /// fails with `ETXTBSY`. The binary was staged just before: while its
    /// file was open for writing, a fork elsewhere in the process (another
    /// spawn) can have copied that descriptor into a child that has not
    /// exec'd yet, and until it does the kernel refuses to execute the file.
    /// The window is a fork's pre-exec steps long, so a few short waits
    /// always outlast it.
    fn start_retrying_busy_text(&self, req: &SpawnRequest) -> Result<(Child, Option<Cgroup>, Applied), SpawnErrorKind> {
        let busy = rustix::io::Errno::TXTBSY.raw_os_error();
        let mut attempts = 0;
        loop {
            match self.start(req) {
                Err(SpawnErrorKind::Exec(e)) if e.raw_os_error() == Some(busy) && attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other,
            }
        }
    }

    /// Forks and execs the module, in its own cgroup when possible, with
    /// its sandbox.
    ///
    /// If joining the cgroup fails in the child (say, a hierarchy where we
    /// may create groups but not move processes), the spawn is tried once
    /// more without: a module that can run should not be refused for want
    /// of a teardown group. Exec errors are returned as they are; a sandbox
    /// layer failing in the child fails the spawn, naming the layer.
    fn start(&self, req: &SpawnRequest) -> Result<(Child, Option<Cgroup>, Applied), SpawnErrorKind> {
        let Some(parent) = self.cgroup_parent.as_deref() else {
            return self.start_once(req, None).map(|(c, s)| (c, None, s));
        };
        let (cgroup, procs) = match cgroup_for(parent, &req.module_id) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(module = %req.name, error = %e, "cannot create the module's cgroup; using its process group");
                return self.start_once(req, None).map(|(c, s)| (c, None, s));
            }
        };
        match self.start_once(req, Some((cgroup.path(), procs))) {
            Ok((child, sandbox)) => Ok((child, Some(cgroup), sandbox)),
            Err(SpawnErrorKind::Exec(e)) => {
                let _ = cgroup.remove();
                let join_errno = e
                    .raw_os_error()
                    .and_then(|code| code.checked_sub(JOIN_ERRNO_BASE))
                    .filter(|n| *n > 0 && *n < 0x1000);
                let Some(errno) = join_errno else {
                    return Err(SpawnErrorKind::Exec(e));
                };
                tracing::warn!(
                    module = %req.name,
                    error = %io::Error::from_raw_os_error(errno),
                    "cannot join the module's cgroup; using its process group"
                );
                self.start_once(req, None).map(|(c, s)| (c, None, s))
            }
            Err(e) => {
                let _ = cgroup.remove();
                Err(e)
            }
        }
    }

    /// One fork and exec: prepares the sandbox (every fd, ruleset and BPF
    /// program, before the fork), then forks on the spawner thread. The
    /// child's steps, in order: join the v2 cgroup (`procs`), the sandbox
    /// layers (`sandbox` module docs give their order and why), then mark
    /// the node's descriptors close-on-exec.
    fn start_once(&self, req: &SpawnRequest, group: Option<(&Path, File)>) -> Result<(Child, Applied), SpawnErrorKind> {
        let (group_dir, procs) = match group {
            Some((dir, procs)) => (Some(dir), Some(procs)),
            None => (None, None),
        };
        let prepared = match &req.sandbox {
            Some(spec) => {
                let target = Target {
                    module_id: &req.module_id,
                    binary: &req.binary,
                    data_dir: &req.data_dir,
                    socket_path: &req.socket_path,
                    cgroup_v2: group_dir,
                    disk_images: req.disk_images.as_deref(),
                };
                let prepared = Prepared::prepare(spec, &target).map_err(SpawnErrorKind::Sandbox)?;
                prepared.check_exec(&req.binary).map_err(SpawnErrorKind::ExecRefused)?;
                Some(prepared)
            }
            None => None,
        };
        let mut cmd = command(req);
        if let Some(procs) = procs {
            // Order: the join first (the first sandbox step), then the rest.
            join_cgroup_before_exec(&mut cmd, procs);
        }
        // The sandbox closure owns the prepared layers; the parent keeps
        // what outlives the spawn (the limit groups) through `kept`.
        let kept = Arc::new(std::sync::Mutex::new(None::<Prepared>));
        let new_pid_namespace = prepared.as_ref().is_some_and(Prepared::pid_namespace);
        if let Some(prepared) = prepared {
            apply_sandbox_before_exec(&mut cmd, prepared, Arc::clone(&kept));
        }
        let cmd = without_inherited_fds(cmd);
        let spawned = spawn_on_spawner_thread(cmd, new_pid_namespace);
        // The command (and with it the closure's copy of the prepared
        // layers) is dropped by now: take them back for the process.
        let applied = kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(Prepared::into_applied)
            .unwrap_or_default();
        match spawned {
            Ok(child) => Ok((child, applied)),
            Err(e) => match sandbox::layer_of_child_error(&e) {
                Some((layer, error)) => Err(SpawnErrorKind::SandboxLayer { layer, error }),
                None => Err(SpawnErrorKind::Exec(e)),
            },
        }
    }
}

/// Adds the sandbox to the child's `pre_exec` steps. `kept` receives the
/// prepared layers back when the command is dropped, so the parent keeps
/// the limit groups (to remove them at teardown).
#[allow(unsafe_code)]
fn apply_sandbox_before_exec(cmd: &mut Command, prepared: Prepared, kept: Arc<std::sync::Mutex<Option<Prepared>>>) {
    /// Hands the prepared layers back to the parent on drop (in the parent:
    /// the child execs or exits without running destructors).
    struct GiveBack {
        prepared: Option<Prepared>,
        kept: Arc<std::sync::Mutex<Option<Prepared>>>,
    }
    impl Drop for GiveBack {
        fn drop(&mut self) {
            *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = self.prepared.take();
        }
    }
    let mut give_back = GiveBack {
        prepared: Some(prepared),
        kept,
    };
    // SAFETY: runs in the forked child, where only async-signal-safe
    // operations are allowed (another node thread may have held the
    // allocator's lock at fork). `apply_in_child` makes only system calls
    // on fds, rlimit values and a BPF program prepared before the fork,
    // through rustix, libc's thin wrappers (`prctl`, `syscall`) and the
    // landlock crate's `restrict_self` (a `prctl` and a system call on the
    // ruleset fd, which it then closes); errors are integers inside
    // `io::Error`, which does not allocate for raw OS errors. The mutex in
    // `GiveBack` is only touched by its `Drop`, which never runs in the
    // child (it execs or `_exit`s).
    unsafe {
        cmd.pre_exec(move || match give_back.prepared.as_mut() {
            Some(prepared) => prepared.apply_in_child(),
            None => Ok(()),
        });
    }
}

/// A fork request for the spawner thread: the command, whether its child
/// is process 1 of a new pid namespace, and where to answer.
type Job = (Command, bool, std::sync::mpsc::SyncSender<io::Result<Child>>);

/// Forks on the node's spawner thread, which lives as long as the node:
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked exits, so
/// forking from a tokio worker (or any short-lived thread) would kill
/// modules when that thread ends. The command is dropped on that thread
/// once the fork is done, closing the parent's copies of prepared fds.
///
/// The same thread makes the pid namespace of a module that gets one: a
/// namespace is set for the *thread's* next child
/// ([`sandbox::fork_in_new_pid_namespace`]), so it must be the forking one.
fn spawn_on_spawner_thread(cmd: Command, new_pid_namespace: bool) -> io::Result<Child> {
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = std::sync::OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("blvm-module-spawner".into())
            .spawn(move || {
                for (mut cmd, new_pid_namespace, reply) in rx {
                    let result = if new_pid_namespace {
                        sandbox::fork_in_new_pid_namespace(|| cmd.spawn()).and_then(|r| r)
                    } else {
                        cmd.spawn()
                    };
                    drop(cmd);
                    let _ = reply.send(result);
                }
            });
        if let Err(e) = started {
            tracing::error!(error = %e, "cannot start the module spawner thread");
        }
        std::sync::Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = std::sync::mpsc::sync_channel(1);
    sender
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, new_pid_namespace, reply_tx))
        .map_err(|_| io::Error::other("the module spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the module spawner thread is gone"))?
}

/// The command line, environment and stdio of a spawn (no cgroup yet).
fn command(req: &SpawnRequest) -> Command {
    let mut cmd = Command::new(&req.binary);
    cmd.current_dir(&req.working_dir).env_clear().env("PATH", MODULE_PATH);
    for var in PASSED_THROUGH {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    let reserved = [
        ENV_SOCKET,
        ENV_MODULE_ID,
        ENV_MODULE_NAME,
        ENV_MODULE_VERSION,
        ENV_TOKEN,
        ENV_DATA_DIR,
    ];
    for (key, value) in &req.extra_env {
        if reserved.contains(&key.as_str()) {
            tracing::warn!(module = %req.name, variable = %key, "extra_env cannot override a BLVM_MODULE_* variable");
            continue;
        }
        cmd.env(key, value);
    }
    cmd.env(ENV_SOCKET, &req.socket_path)
        .env(ENV_MODULE_ID, &req.module_id)
        .env(ENV_MODULE_NAME, &req.name)
        .env(ENV_MODULE_VERSION, &req.version)
        .env(ENV_TOKEN, &req.token)
        .env(ENV_DATA_DIR, &req.data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: a terminal's Ctrl-C to the node's group does not
        // reach it, and the group is the fallback teardown unit.
        .process_group(0);
    cmd
}

/// Creates the spawn's cgroup and opens its `cgroup.procs`; removes the
/// group again if the open fails.
fn cgroup_for(parent: &Path, module_id: &str) -> io::Result<(Cgroup, File)> {
    let cgroup = Cgroup::create(parent, module_id)?;
    match cgroup.open_procs() {
        Ok(procs) => Ok((cgroup, procs)),
        Err(e) => {
            let _ = cgroup.remove();
            Err(e)
        }
    }
}

/// Makes the child move itself into the cgroup whose `cgroup.procs` is
/// `procs`, after fork and before exec. This is the first sandbox step
/// (DESIGN.md "Sandbox"): limits set on the group then cover the module
/// from its first instruction, and every process it ever forks is born
/// inside.
/// Added to the errno of a failed cgroup join, so the parent can tell it
/// from an exec error: std passes the child's raw error code back as is,
/// and real errnos are below 4096.
const JOIN_ERRNO_BASE: i32 = 0x10000;

#[allow(unsafe_code)]
fn join_cgroup_before_exec(cmd: &mut Command, procs: File) {
    // SAFETY: `pre_exec` closures run in the forked child, where only
    // async-signal-safe operations are allowed (another thread of the node
    // may have held the allocator's lock at fork). This one makes a single
    // `write(2)` system call on a descriptor opened before the fork, from a
    // static buffer ("0" means "the writing process"). rustix issues the
    // system call itself, with no allocation, lock or libc state;
    // `from_raw_os_error` stores a plain integer (the errno offset by
    // `JOIN_ERRNO_BASE`) without allocating. The fd is close-on-exec, so the
    // module never inherits it.
    unsafe {
        cmd.pre_exec(move || match rustix::io::write(&procs, b"0") {
            Ok(_) => Ok(()),
            Err(errno) => Err(io::Error::from_raw_os_error(JOIN_ERRNO_BASE + errno.raw_os_error())),
        });
    }
}

/// Upper bound of the descriptors to mark close-on-exec when the soft
/// `RLIMIT_NOFILE` is unlimited (Linux does not allow that, but the type
/// does): `fs.nr_open`'s default.
const FALLBACK_FD_LIMIT: u64 = 1 << 20;

/// Makes the child mark every descriptor from 3 up close-on-exec, after
/// any earlier `pre_exec` step (the cgroup join) and before exec: the
/// node's environment is cleared for the module, and its open files must
/// not leak in either. stdin, stdout and stderr (0–2) are the module's.
///
/// rustix has no `close_range`, so this is one `fcntl(F_SETFD)` per fd up
/// to the soft `RLIMIT_NOFILE`, which bounds every fd the node can have
/// open. The limit is read here, before the fork, so the child does only
/// system calls. Cost: one failing `fcntl` per unused fd (about 20 000 per
/// spawn with a typical limit: milliseconds).
#[allow(unsafe_code)]
fn without_inherited_fds(mut cmd: Command) -> Command {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(FALLBACK_FD_LIMIT)
        .min(i32::MAX as u64) as i32;
    // SAFETY: runs in the forked child, where only async-signal-safe
    // operations are allowed (another thread of the node may have held the
    // allocator's lock at fork). The closure captures one integer and makes
    // only `fcntl(2)` system calls through rustix (no allocation, lock or
    // libc state), ignoring their errors: most numbers are not open fds,
    // and `fcntl` on those just fails with EBADF, so borrowing a number that
    // may not be open is harmless here (no descriptor is read, closed or
    // dropped through the borrow). Setting `FD_CLOEXEC` also on the fds the
    // earlier step or std itself opened changes nothing: they are already
    // close-on-exec (std's exec-error pipe must be, and stays so).
    unsafe {
        cmd.pre_exec(move || {
            for raw in 3..limit {
                let fd = std::os::fd::BorrowedFd::borrow_raw(raw);
                let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
            }
            Ok(())
        });
    }
    cmd
}

/// Kills and reaps a child whose waiter thread could not start.
fn emergency_kill(pid: u32, cgroup: Option<&Cgroup>) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if let Some(cgroup) = cgroup {
        let _ = cgroup.kill_all(KILL_TIMEOUT);
    }
    // Unreaped, the pid is still ours: safe to signal its group.
    let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
    if let Some(cgroup) = cgroup {
        let _ = cgroup.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed join reaches the parent as `JOIN_ERRNO_BASE + errno`, and
    /// nothing of the binary runs.
    #[test]
    fn failed_join_is_told_apart_from_exec_errors() {
        // Writes to /dev/full fail with ENOSPC, like a refused migration would.
        let full = OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full exists on Linux");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "exit 0"]);
        join_cgroup_before_exec(&mut cmd, full);
        let err = cmd.spawn().expect_err("the join fails");
        assert_eq!(
            err.raw_os_error(),
            Some(JOIN_ERRNO_BASE + rustix::io::Errno::NOSPC.raw_os_error())
        );

        let err = Command::new("/nonexistent/binary").spawn().expect_err("no such binary");
        assert!(err.raw_os_error().is_some_and(|code| code < JOIN_ERRNO_BASE));
    }
}
