//! Module processes: spawning, watching, and tearing down the whole tree.
//!
//! The [`ModuleProcessSpawner`] starts a module binary with a cleared
//! environment plus the documented `BLVM_MODULE_*` variables, stdin from
//! `/dev/null`, stdout and stderr drained into the log by their own threads,
//! in its own process group and (where possible) its own cgroup. The
//! returned [`ModuleProcess`] says the instant the process exits (a
//! [`tokio::sync::watch`] fed by a thread blocked in `waitid`), samples its
//! resource usage from `/proc`, and kills everything the module started.
//!
//! The node never connects to its own socket on a module's behalf
//! (pitfalls #2) and teardown never touches the node's socket (pitfalls #9):
//! this layer only deals in processes.
//!
//! # Layout
//!
//! - `spawner`: [`SpawnRequest`], [`SpawnerConfig`], [`ModuleProcessSpawner`].
//! - `monitor`: [`ModuleProcess`], [`ExitInfo`], [`ResourceUsage`], the
//!   waiter thread, and why signalling a pid is safe from reuse.
//! - `output`: the stdout/stderr reader threads, and the line cap and
//!   escaping of all module text (log frames included).
//! - `cgroup`: one cgroup v2 per spawn, by plain file writes.
//! - `tree`: `/proc` parsing and the process-group teardown.
//!
//! # Teardown: cgroup, else process group
//!
//! With a writable cgroup v2 ([`TeardownKind::Cgroup`]), each spawn gets
//! `<parent>/<module id>-<node pid>-<n>`; the child joins it between fork
//! and exec, so every process the module ever forks is inside, `setsid` or
//! not. [`ModuleProcess::kill_tree`] writes `cgroup.kill` and waits for
//! `populated 0`; drop removes the group. The default parent is the node's
//! own v2 cgroup plus `blvm-modules`. A module that can write to an
//! ancestor's `cgroup.procs` (root) could still move itself out; dropping
//! root is the sandbox's job.
//!
//! Without one ([`TeardownKind::ProcessGroup`]), teardown freezes with
//! SIGSTOP, then SIGKILLs: the main process and its descendants by parent
//! pid, its process group, and any process whose environment holds the
//! spawn's `BLVM_MODULE_TOKEN`, repeating until a pass finds nothing. Its
//! limits: a descendant that left the process group (`setsid`), was
//! re-parented to init because its parent died *before* teardown, *and*
//! cleared or rewrote its environment cannot be found. Such a process also
//! keeps the pipe readers' threads alive. The node does not make itself a
//! child subreaper (which would keep orphans findable) because reaping them
//! needs `waitpid(-1)`, which steals exit statuses from every other child of
//! the node; see [`ModuleProcessSpawner::new`].
//!
//! # What is not here
//!
//! The kernel sandbox (limits, network namespace, no_new_privs, Landlock,
//! seccomp) is [`crate::sandbox`]; the spawner applies it after the cgroup
//! join in the same `pre_exec`, and forks on one long-lived thread.
//! `PR_SET_PDEATHSIG` is not set yet (see `docs/security.md`).

mod cgroup;
mod monitor;
mod output;
mod spawner;
mod tree;

#[cfg(test)]
mod tests;

pub use cgroup::{detect_parent as detect_cgroup_parent, MODULES_GROUP};
pub(crate) use cgroup::{remove_stale as remove_stale_cgroups, unique_name as unique_cgroup_name};
pub use monitor::{ExitInfo, ModuleProcess, ResourceUsage, Stopped, TeardownKind, KILL_TIMEOUT};
pub(crate) use output::{escape_into, LineBudget};
pub use output::{MAX_LINE, TRUNCATED_MARKER};
pub use spawner::{
    ModuleProcessSpawner, SpawnError, SpawnErrorKind, SpawnRequest, SpawnerConfig, ENV_DATA_DIR, ENV_MODULE_ID,
    ENV_MODULE_NAME, ENV_MODULE_VERSION, ENV_SOCKET, ENV_TOKEN, MODULE_PATH, PASSED_THROUGH,
};
