//! What the manager reports about each module.

use std::time::{Duration, SystemTime};

use blvm_module_protocol::PermissionSet;

use crate::api::events::DeliveryStats;
use crate::process::ResourceUsage;

/// `ModuleStateChanged.old_state` of a module's first transition, into
/// `loading` when it is loaded: it had no state before.
pub const UNLOADED: &str = "unloaded";

/// How many [`CrashRecord`]s a status keeps, the newest.
pub const CRASH_RECORDS: usize = 16;

/// Where a module is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModuleState {
    /// Verified and spawned, waiting for its handshake.
    Loading,
    /// Handshake done; serving.
    Running,
    /// Handshake done, but not serving: its main process is stopped
    /// (`SIGSTOP`, a tracer) or it did not answer a health check in time.
    /// [`ModuleStatus::unresponsive`] says which. Unless it recovers (a
    /// `SIGCONT`) within the health-check deadline, it is killed and
    /// restarted as a crash.
    Unresponsive,
    /// Crashed; waiting out its backoff before the next start.
    Restarting,
    /// Stopped on request.
    Stopped,
    /// Crashed too often, could not start, or its staged binary changed;
    /// left stopped.
    Failed,
}

impl ModuleState {
    /// The lower-case name used in status output and RPC.
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleState::Loading => "loading",
            ModuleState::Running => "running",
            ModuleState::Unresponsive => "unresponsive",
            ModuleState::Restarting => "restarting",
            ModuleState::Stopped => "stopped",
            ModuleState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for ModuleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One module's status, as `getmodulestatus` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleStatus {
    /// The manifest name.
    pub name: String,
    /// The manifest version.
    pub version: String,
    /// Lifecycle state.
    pub state: ModuleState,
    /// The id of the current (or last) spawn.
    pub module_id: Option<String>,
    /// The running process, if any.
    pub pid: Option<u32>,
    /// Time since the current process completed its handshake.
    pub uptime: Option<Duration>,
    /// Restarts after crashes since it was loaded.
    pub restarts: u32,
    /// The last error (crash, failed start), in words.
    pub last_error: Option<String>,
    /// Capabilities granted: those requested that the operator's policy
    /// allows.
    pub capabilities: PermissionSet,
    /// Capabilities its manifest requests.
    pub requested_capabilities: PermissionSet,
    /// Its latest crashes (at most [`CRASH_RECORDS`], oldest first) since it
    /// was loaded, each with the backoff chosen and the time the restart
    /// actually took.
    pub crashes: Vec<CrashRecord>,
    /// The operator's keyring names of the maintainers whose signatures
    /// verified when it was loaded; empty for an unsigned module.
    pub signed_by: Vec<String>,
    /// Its manifest's `[governance] tier`, if it declares one.
    pub tier: Option<String>,
    /// CPU time and memory of its processes, sampled now.
    pub usage: Option<ResourceUsage>,
    /// The sandbox layers of the running process, in the order applied
    /// (`cgroup-memory`, ..., `seccomp`), then `missing:<layer>` for each
    /// layer permissive mode started it without. Empty when not running.
    pub sandbox_layers: Vec<String>,
    /// Where each cgroup limit is enforced: `<controller> <v1|v2> <group
    /// directory>`, e.g. `pids v2 /sys/fs/cgroup/…/blvm-modules/x-812-0`.
    /// Empty when not running.
    pub limit_cgroups: Vec<String>,
    /// Its CPU quota, in percent of one core, when its cpu group enforces
    /// one (`None`: no cpu group, or the operator removed the quota).
    pub cpu_quota_percent: Option<u32>,
    /// The scheduling weight of its cpu group as the kernel has it, in
    /// cgroup v2 `cpu.weight` units (v1 `cpu.shares` converted: 1024 is
    /// 100, the node's); `None` without a cpu group.
    pub cpu_weight: Option<u32>,
    /// The latest resource limit warning of each resource (`memory`,
    /// `pids`), newest last, e.g. `memory at 83% of its limit (223… of
    /// 268435456 bytes)`: published as `ResourceLimitWarning` when usage
    /// reached 80% of the limit. Kept across restarts.
    pub resource_warnings: Vec<String>,
    /// Requests of the current connection answered `rate_limited`
    /// instead of served (its request rate was exceeded).
    pub rate_limited: u64,
    /// `log` frames of the current connection dropped, unlogged, because
    /// they came over its request rate (logs and requests share one
    /// budget).
    pub logs_dropped: u64,
    /// Why the module is [`ModuleState::Unresponsive`], while it is: `process
    /// stopped by SIGSTOP or another stop signal (state T)`, `no answer to
    /// health check within 5s`.
    pub unresponsive: Option<String>,
    /// Health checks the current spawn has answered.
    pub health_checks: u64,
    /// Event delivery counters of the current spawn.
    pub delivery: Option<DeliveryStats>,
    /// The current connection's durable subscription (`subscribe_durable`):
    /// its cursor, what is sent and unacknowledged, and its lag behind the
    /// tip.
    pub durable: Option<crate::api::durable::DurableStatus>,
    /// The uid and gid it runs as (its own), when the node dropped it.
    pub run_as: Option<crate::sandbox::RunAs>,
    /// Its data dir's own file system, when it has a disk quota: bytes
    /// used and the file system's size.
    pub disk: Option<crate::sandbox::DiskUsage>,
    /// Its module storage: bytes and keys stored, and its quotas (kept
    /// while unloaded; `None` if the store cannot be read).
    pub storage: Option<blvm_module_protocol::methods::storage::StorageUsage>,
    /// Metric series it has reported (its current spawn's).
    pub metric_series: usize,
    /// The most metric series it may report: the operator's cap.
    pub max_metric_series: usize,
    /// Its inter-module limits: call deadline, API size, publishing rate.
    pub inter_module: crate::services::modules::ModuleCallLimits,
    /// The API methods its current spawn registered, sorted.
    pub api_methods: Vec<String>,
    /// The events its manifest declares it publishes.
    pub publishes: Vec<String>,
    /// The JSON-RPC methods it registered, sorted (also while it restarts:
    /// they are reserved for it, and its calls answer that it is not
    /// running).
    pub rpc_endpoints: Vec<String>,
    /// The most JSON-RPC methods it may register: the operator's cap.
    pub max_rpc_endpoints: usize,
    /// How long a JSON-RPC call of one of its methods waits for its answer.
    pub rpc_timeout: Duration,
    /// Timers its connection has now (scheduled and not yet fired or
    /// cancelled).
    pub timers: usize,
    /// The most timers it may have at once: the operator's cap.
    pub max_timers: usize,
    /// How long the node waits for its answer to a `timer_fired`.
    pub timer_fire_timeout: Duration,
}

/// One crash of a module and the restart that followed it, as the node
/// timed them: the record that shows the restart policy at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashRecord {
    /// When the crash was seen (wall clock).
    pub at: SystemTime,
    /// The wait the restart policy chose before restarting it; `None` when
    /// this crash left the module `failed`.
    pub backoff: Option<Duration>,
    /// From the crash being seen to the next process being spawned, on the
    /// node's monotonic clock; `None` until that spawn (and for good when
    /// there is none: failed, or stopped during the backoff).
    pub restarted_after: Option<Duration>,
}
