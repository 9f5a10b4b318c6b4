//! One module's supervisor: spawn, handshake, run, and on a crash restart
//! with backoff until the crash-loop cap. Each crash is recorded in the
//! module's status with the backoff chosen and, once the next process is
//! spawned, how long after the crash that was (`ModuleStatus::crashes`):
//! the restart policy can be checked from what the node measured.
//!
//! # Steps of one run, in order
//!
//! 1. re-hash the staged binary (it must still be the bytes that were
//!    verified; if not, the module is failed, not run); register the spawn
//!    with the IPC server (fresh id, fresh token, a socket of its own that
//!    only the module's uid can connect to) and subscribe to connection
//!    events *before* spawning, so the handshake cannot be missed;
//! 2. spawn; bind the child's pid to the id at once; the previous spawn is
//!    retired on the event bus (its counters stay readable, bounded;
//!    status shows the current spawn's);
//! 3. wait for whichever comes first: the handshake, the process's exit,
//!    the deadline (kill), or a stop request;
//! 4. run until the process exits, its connection is lost (kill it: a
//!    module without its connection is broken), or a stop is requested
//!    (`Shutdown`, grace period, kill); meanwhile, every second, compare
//!    its memory, tasks, open files and CPU with its limits and publish
//!    `ResourceLimitWarning` when one reaches 80% (once per crossing), and
//!    read its main process's state; a death by the memory cgroup's OOM
//!    killer is reported as such. Its liveness is checked throughout
//!    (`liveness`): a stopped process, or a health check unanswered, makes
//!    it `unresponsive`, and past the deadline the run ends as a crash;
//! 5. kill what is left of its process tree, forget the spawn's token (its
//!    socket is closed and removed) and drop the process (and with it its
//!    cgroup): a failed module keeps no
//!    process state until it is unloaded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use blvm_module_protocol::events::{ModuleCrashed, ModuleHealthChanged, ModuleStateChanged, ResourceLimitWarning};
use tokio::sync::{broadcast, oneshot, Notify};

use super::liveness::{self, Liveness, StateChange, Verdict};
use super::{CrashRecord, Inner, ModuleState, CRASH_RECORDS};
use crate::ipc::{ConnectionEvent, ModuleSpec};
use crate::process::{ExitInfo, ModuleProcess, SpawnRequest};
use crate::sandbox::Gauge;

/// How long a module whose connection closed may take to exit before it is
/// killed as broken.
const LINK_LOSS_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How one run ended.
enum RunEnd {
    /// Stopped on request.
    Stopped,
    /// Never got to running.
    StartFailed(String),
    /// Exited before its handshake completed; how it exited is known.
    ExitedBeforeHandshake(String, Option<ExitInfo>),
    /// Must not be started again (its staged binary changed): failed at
    /// once, no restart.
    Refused(String),
    /// Was running, then died or lost its connection.
    Crashed { reason: String, exit: Option<ExitInfo> },
}

pub(super) async fn supervise(
    inner: Arc<Inner>,
    name: String,
    stop: Arc<Notify>,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    let mut crashes: VecDeque<Instant> = VecDeque::new();
    loop {
        let end = run_once(&inner, &name, &stop, &mut ready).await;
        let (reason, exit) = match end {
            RunEnd::Stopped => {
                set_state(&inner, &name, ModuleState::Stopped, None);
                return;
            }
            RunEnd::Refused(reason) => {
                tracing::error!(module = %name, "not starting the module: {reason}");
                set_state(&inner, &name, ModuleState::Failed, Some(reason.clone()));
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Err(reason));
                }
                return;
            }
            RunEnd::StartFailed(reason) | RunEnd::ExitedBeforeHandshake(reason, _) if ready.is_some() => {
                // The first start: the caller of load_module gets the
                // reason; no restart loop for a module that never ran.
                set_state(&inner, &name, ModuleState::Failed, Some(reason.clone()));
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Err(reason));
                }
                return;
            }
            RunEnd::ExitedBeforeHandshake(reason, exit) => (reason, exit),
            RunEnd::StartFailed(reason) => (reason, None),
            RunEnd::Crashed { reason, exit } => (reason, exit),
        };
        let policy = &inner.config.restart;
        let now = Instant::now();
        crashes.push_back(now);
        while crashes.front().is_some_and(|t| now.duration_since(*t) > policy.window) {
            crashes.pop_front();
        }
        let will_restart = (crashes.len() as u32) < policy.max_crashes;
        // The restart count and the state change in one step: a status
        // read in between must never show `running` for a dead spawn.
        let (state, why) = if will_restart {
            (ModuleState::Restarting, reason.clone())
        } else {
            (
                ModuleState::Failed,
                format!(
                    "crashed {} times within {:?}; last: {reason}",
                    crashes.len(),
                    policy.window
                ),
            )
        };
        let exp = (crashes.len() as u32).saturating_sub(1).min(16);
        let backoff = policy.initial_backoff.saturating_mul(1 << exp).min(policy.max_backoff);
        record_crash(&inner, &name, will_restart.then_some(backoff));
        let Some((version, restarts)) = transition(&inner, &name, state, Some(why), will_restart) else {
            return;
        };
        tracing::warn!(module = %name, restarts, will_restart, "module crashed: {reason}");
        inner.publish(ModuleCrashed {
            module_name: name.clone(),
            version,
            error: reason.clone(),
            exit_code: exit.and_then(|e| e.code),
            signal: exit.and_then(|e| e.signal),
            restarts,
            will_restart,
        });
        if !will_restart {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.notified() => {
                set_state(&inner, &name, ModuleState::Stopped, None);
                return;
            }
        }
        if inner.lock().get(&name).is_none_or(|e| e.stop_requested) {
            set_state(&inner, &name, ModuleState::Stopped, None);
            return;
        }
    }
}

/// Adds a crash, seen now, to the module's status with the backoff chosen
/// (`None`: no restart), keeping the newest [`CRASH_RECORDS`].
fn record_crash(inner: &Inner, name: &str, backoff: Option<std::time::Duration>) {
    if let Some(e) = inner.lock().get_mut(name) {
        if e.crashes.len() == CRASH_RECORDS {
            e.crashes.pop_front();
        }
        e.crashes.push_back(CrashRecord {
            at: std::time::SystemTime::now(),
            backoff,
            restarted_after: None,
        });
        e.crash_seen = backoff.map(|_| Instant::now());
    }
}

fn set_state(inner: &Inner, name: &str, state: ModuleState, error: Option<String>) {
    transition(inner, name, state, error, false);
}

/// Moves a module to `state` (recording `error`, and counting a restart
/// when `restart`), publishes `ModuleStateChanged`, and returns its
/// version and restart count; `None` when the module is gone.
fn transition(
    inner: &Inner,
    name: &str,
    state: ModuleState,
    error: Option<String>,
    restart: bool,
) -> Option<(String, u32)> {
    let (old, version, restarts) = {
        let mut modules = inner.lock();
        let e = modules.get_mut(name)?;
        let old = e.state;
        e.state = state;
        if restart {
            e.restarts += 1;
        }
        if error.is_some() {
            e.last_error = error;
        }
        if state != ModuleState::Unresponsive {
            e.unresponsive = None;
        }
        // Unresponsive is still the spawn that completed its handshake.
        if !matches!(state, ModuleState::Running | ModuleState::Unresponsive) {
            e.running_since = None;
        }
        (old, e.manifest.version().to_string(), e.restarts)
    };
    if old != state {
        inner.publish(ModuleStateChanged {
            module_name: name.to_owned(),
            old_state: old.as_str().to_owned(),
            new_state: state.as_str().to_owned(),
        });
    }
    inner.changed();
    Some((version, restarts))
}

async fn run_once(
    inner: &Arc<Inner>,
    name: &str,
    stop: &Notify,
    ready: &mut Option<oneshot::Sender<Result<(), String>>>,
) -> RunEnd {
    let Ok(server) = inner.server() else {
        return RunEnd::StartFailed("the module manager is not started".into());
    };
    let n = inner.spawns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let module_id = format!("{name}-{n}");
    let (spec, request) = {
        let modules = inner.lock();
        let Some(e) = modules.get(name) else {
            return RunEnd::Stopped;
        };
        if e.stop_requested {
            return RunEnd::Stopped;
        }
        // The staged copy is what runs; a file that changed since it was
        // verified (disk corruption, someone with the node's rights) is not
        // run, on the first start or any restart.
        if let Err(e) = e.staged.recheck() {
            return RunEnd::Refused(e.to_string());
        }
        let data_dir = inner.config.data_dir.join(name);
        let resources = e.manifest.resources();
        inner.storage.set_request(
            name,
            crate::services::storage::StorageRequest {
                max_bytes: resources.storage_bytes,
                max_keys: resources.storage_keys,
            },
        );
        // Its own uid, stable per name; only a root node drops to it.
        let ids = match inner.config.sandbox.identity {
            crate::sandbox::Identity::PerModule { .. }
                if inner.config.sandbox.enabled && rustix::process::geteuid().is_root() =>
            {
                match inner.identities.identity_of(name) {
                    Ok(ids) => Some(ids),
                    Err(e) => return RunEnd::StartFailed(e.to_string()),
                }
            }
            _ => None,
        };
        let spec = ModuleSpec {
            module_id: module_id.clone(),
            name: name.to_owned(),
            version: e.manifest.version().to_string(),
            capabilities: e.capabilities,
            config: e.config.clone(),
            data_dir: data_dir.clone(),
            event_queue_capacity: inner
                .config
                .event_queue_capacities
                .get(name)
                .copied()
                .unwrap_or(inner.config.event_queue_capacity),
            request_rate: inner
                .config
                .request_rates
                .get(name)
                .copied()
                .unwrap_or(inner.config.request_rate),
            publishes: e.manifest.publishes().to_vec(),
        };
        let request = SpawnRequest {
            module_id: module_id.clone(),
            name: name.to_owned(),
            version: spec.version.clone(),
            binary: e.staged.path.clone(),
            working_dir: data_dir.clone(),
            // Both filled in below, once the server has them.
            socket_path: std::path::PathBuf::new(),
            token: String::new(),
            data_dir,
            extra_env: Vec::new(),
            // Network access and the data dir's rights follow the granted
            // capabilities; limits are the stricter of the operator's and
            // the manifest's `[resources]`.
            sandbox: inner.config.sandbox.spec_for(
                name,
                &e.manifest.resources(),
                e.capabilities,
                ids,
                Some(&e.staged.dir),
            ),
            disk_images: Some(Arc::clone(&inner.disk_images)),
        };
        (spec, request)
    };
    let mut connections = server.subscribe_connection_events();
    let ticket = match server.expect_module(spec) {
        Ok(t) => t,
        Err(e) => return RunEnd::StartFailed(format!("cannot create its token: {e}")),
    };
    // Its own socket, given to the uid:gid it will run as when the node
    // drops privileges (as root), so no other user, and no other module,
    // can connect to it or hold its handshake slots.
    let owner = request
        .sandbox
        .as_ref()
        .and_then(|s| s.run_as)
        .filter(|_| rustix::process::geteuid().is_root())
        .map(|ids| (ids.uid, ids.gid));
    let socket_path = match server.listen_for(&module_id, owner) {
        Ok(path) => path,
        Err(e) => {
            server.forget_module(&module_id);
            return RunEnd::StartFailed(format!("cannot create its socket: {e}"));
        }
    };
    let request = SpawnRequest {
        token: ticket.token,
        socket_path,
        ..request
    };
    let process = match inner.spawner.spawn(&request) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            server.forget_module(&module_id);
            return RunEnd::StartFailed(e.to_string());
        }
    };
    // Its data dir for `manage_filesystem`, before `bind_pid`: the
    // handshake waits for the pid, so no request of this spawn comes first.
    if let Err(e) = inner.filesystem.attach(
        &module_id,
        &request.data_dir,
        process.sandbox.disk_image(),
        process.run_as(),
    ) {
        tracing::warn!(module = name, "its data dir cannot be managed this run: {e}");
    }
    server.bind_pid(&module_id, process.pid());
    {
        let mut modules = inner.lock();
        if let Some(e) = modules.get_mut(name) {
            // Status reports the current spawn's delivery; the previous
            // spawn's counters stay readable among the retired ones.
            if let Some(old) = e.module_id.replace(module_id.clone()) {
                inner.events.retire(&old);
            }
            e.health_checks = 0;
            e.process = Some(Arc::clone(&process));
            // A restart: how long after its crash it came, as the node saw.
            if let Some(seen) = e.crash_seen.take() {
                if let Some(last) = e.crashes.back_mut() {
                    last.restarted_after = Some(seen.elapsed());
                }
            }
        }
    }
    set_state(inner, name, ModuleState::Loading, None);
    let end = drive(inner, name, &module_id, &process, &mut connections, stop, ready).await;
    if let Err(e) = process.kill_tree() {
        tracing::warn!(module = name, "killing what is left of its processes: {e}");
    }
    server.forget_module(&module_id);
    inner.filesystem.detach(&module_id);
    // The run is over: drop the process (and its cgroup) now rather than
    // when the module is unloaded, which for a failed one may be never.
    if let Some(e) = inner.lock().get_mut(name) {
        if e.process.as_ref().is_some_and(|p| Arc::ptr_eq(p, &process)) {
            e.process = None;
        }
    }
    end
}

/// Steps 3 and 4: handshake, then run.
async fn drive(
    inner: &Arc<Inner>,
    name: &str,
    module_id: &str,
    process: &Arc<ModuleProcess>,
    connections: &mut broadcast::Receiver<ConnectionEvent>,
    stop: &Notify,
    ready: &mut Option<oneshot::Sender<Result<(), String>>>,
) -> RunEnd {
    let mut exited = process.exit_watch();
    let deadline = inner.config.handshake_timeout;
    // Biased: a module that completes its handshake and exits at once has
    // both branches ready; it did start, so its exit is a crash of a
    // running module, with its exit status.
    tokio::select! {
        biased;
        connected = wait_connected(connections, module_id) => {
            if !connected {
                return RunEnd::StartFailed("the IPC server stopped".into());
            }
        }
        info = wait_exit(&mut exited) => {
            return RunEnd::ExitedBeforeHandshake(
                format!("exited before completing its handshake ({})", describe(info)),
                info,
            );
        }
        _ = tokio::time::sleep(deadline) => {
            return RunEnd::StartFailed(format!("no handshake within {deadline:?}; killed"));
        }
        _ = stop.notified() => return RunEnd::Stopped,
    }
    {
        let mut modules = inner.lock();
        if let Some(e) = modules.get_mut(name) {
            e.running_since = Some(Instant::now());
        }
    }
    set_state(inner, name, ModuleState::Running, None);
    if let Some(tx) = ready.take() {
        let _ = tx.send(Ok(()));
    }
    let mut sampler = tokio::time::interval(LIMIT_SAMPLE_PERIOD);
    sampler.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut alarms = LimitAlarms::default();
    let mut liveness = Liveness::new(
        inner.config.health_check_interval,
        inner.config.health_check_timeout,
        inner.server.get().and_then(|s| s.connection(module_id)),
    );
    // Every branch but the sampler's and an answered health check ends the
    // run; each one is cancel-safe (a watch, a broadcast receiver, a
    // `Notify` that keeps its permit, `Liveness::next`), so re-creating
    // them on every turn loses nothing.
    loop {
        tokio::select! {
            info = wait_exit(&mut exited) => {
                let reason = if info.is_some_and(|i| i.is_clean()) {
                    "exited with status 0 without being asked to stop".into()
                } else {
                    describe_crash(info, process)
                };
                return RunEnd::Crashed { reason, exit: info };
            }
            () = wait_closed(connections, module_id) => {
                // A dying process closes its socket first; give the waiter a
                // moment to report how it died before calling it a lost link.
                return match tokio::time::timeout(LINK_LOSS_GRACE, wait_exit(&mut exited)).await {
                    Ok(info) => RunEnd::Crashed { reason: describe_crash(info, process), exit: info },
                    Err(_) => RunEnd::Crashed {
                        reason: "lost its connection to the node; killed".into(),
                        exit: None,
                    },
                };
            }
            _ = stop.notified() => {
                shutdown(inner, name, module_id, process, &mut exited).await;
                return RunEnd::Stopped;
            }
            _ = sampler.tick() => {
                check_limits(inner, name, process, &mut alarms);
                match liveness.sample(process) {
                    Some(StateChange::Stopped(why)) => set_health(inner, name, module_id, Some(why)),
                    Some(StateChange::Resumed) => set_health(inner, name, module_id, None),
                    None => {}
                }
            }
            verdict = liveness.next() => match verdict {
                Verdict::Answered => health_check_answered(inner, name, module_id),
                Verdict::Dead(why) => {
                    // Status says why while the tree is killed; the crash
                    // then carries the same reason.
                    set_health(inner, name, module_id, Some(why.clone()));
                    return RunEnd::Crashed { reason: format!("unresponsive: {why}"), exit: None };
                }
            },
        }
    }
}

/// Records that the spawn `module_id` is unresponsive (`Some(reason)`) or
/// responsive again (`None`): its state, `ModuleStateChanged` and
/// `ModuleHealthChanged`. A spawn that is no longer the current one, or
/// not live (see [`liveness::health_transition`]), is left alone.
fn set_health(inner: &Inner, name: &str, module_id: &str, unresponsive: Option<String>) {
    let (old, new) = {
        let mut modules = inner.lock();
        let Some(e) = modules.get_mut(name) else { return };
        if e.module_id.as_deref() != Some(module_id) {
            return;
        }
        let Some(new) = liveness::health_transition(e.state, unresponsive.as_deref()) else {
            return;
        };
        let old = e.state;
        e.state = new;
        e.unresponsive = unresponsive.clone();
        (old, new)
    };
    match &unresponsive {
        Some(why) => tracing::warn!(module = %name, module_id, "module unresponsive: {why}"),
        None => tracing::info!(module = %name, module_id, "module responsive again"),
    }
    if old != new {
        inner.publish(ModuleStateChanged {
            module_name: name.to_owned(),
            old_state: old.as_str().to_owned(),
            new_state: new.as_str().to_owned(),
        });
        let health = |state: ModuleState| match state {
            ModuleState::Unresponsive => "unresponsive",
            _ => "healthy",
        };
        inner.publish(ModuleHealthChanged {
            module_name: name.to_owned(),
            old_health: health(old).to_owned(),
            new_health: health(new).to_owned(),
        });
    }
    inner.changed();
}

/// Counts an answered health check of the spawn `module_id` in its status.
fn health_check_answered(inner: &Inner, name: &str, module_id: &str) {
    if let Some(e) = inner.lock().get_mut(name) {
        if e.module_id.as_deref() == Some(module_id) {
            e.health_checks += 1;
        }
    }
    inner.changed();
}

/// How often a running module's usage is compared with its limits.
const LIMIT_SAMPLE_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// A warning is published when usage reaches this percentage of a limit.
pub(super) const WARN_PERCENT: f64 = 80.0;

/// ... and only again once usage has fallen below this one: a module
/// hovering around 80% would otherwise publish a warning every second.
const REARM_PERCENT: f64 = 70.0;

/// Which limits have a warning outstanding (per spawn: a new process has
/// new groups and starts with none), and the last CPU reading.
#[derive(Default)]
struct LimitAlarms {
    memory: bool,
    pids: bool,
    files: bool,
    cpu: bool,
    /// CPU time (ms) and when it was read, for the next sample's rate.
    last_cpu: Option<(u64, Instant)>,
}

/// One sample: publishes `ResourceLimitWarning` for each limit that has
/// just crossed [`WARN_PERCENT`] and records it in the module's status.
///
/// Memory and tasks come from the cgroup; open files are the most any one
/// process has open against `RLIMIT_NOFILE` (a per-process limit); CPU is
/// the share of a core used since the last sample against the cgroup's
/// quota (in ms of CPU per second: a quota is never exceeded, only
/// reached, so this warns of a module held at its quota).
fn check_limits(inner: &Inner, name: &str, process: &ModuleProcess, alarms: &mut LimitAlarms) {
    let limits = process.limit_usage();
    let usage = process.usage();
    let files = process.open_files_limit().map(|limit| Gauge {
        current: usage.max_open_files,
        limit,
    });
    let now = Instant::now();
    let cpu = match (
        alarms.last_cpu.replace((usage.cpu_time_ms, now)),
        process.cpu_quota_percent(),
    ) {
        (Some((before, then)), Some(quota)) => {
            let wall_ms = now.duration_since(then).as_millis().max(1) as u64;
            Some(Gauge {
                current: usage.cpu_time_ms.saturating_sub(before).saturating_mul(1000) / wall_ms,
                limit: u64::from(quota) * 10,
            })
        }
        _ => None,
    };
    for (resource, gauge, raised, unit) in [
        ("memory", limits.memory, &mut alarms.memory, "bytes"),
        ("pids", limits.pids, &mut alarms.pids, "tasks"),
        ("files", files, &mut alarms.files, "open files in one process"),
        ("cpu", cpu, &mut alarms.cpu, "ms of CPU per second"),
    ] {
        let Some(gauge) = gauge else { continue };
        let percent = gauge.percent();
        if *raised {
            if percent < REARM_PERCENT {
                *raised = false;
            }
            continue;
        }
        if percent < WARN_PERCENT {
            continue;
        }
        *raised = true;
        let text = format!(
            "{resource} at {percent:.0}% of its limit ({} of {} {unit})",
            gauge.current, gauge.limit
        );
        tracing::warn!(module = %name, "resource limit warning: {text}");
        if let Some(e) = inner.lock().get_mut(name) {
            // The latest warning per resource, newest last.
            e.resource_warnings.retain(|w| !w.starts_with(resource));
            e.resource_warnings.push(text);
        }
        inner.publish(ResourceLimitWarning {
            module_name: Some(name.to_owned()),
            resource_type: resource.to_owned(),
            usage_percent: percent,
            current_usage: gauge.current,
            limit: gauge.limit,
            threshold_percent: WARN_PERCENT,
        });
        inner.changed();
    }
}

/// How a running module died, naming the memory limit when the memory
/// cgroup's OOM killer took one of its processes: a bare `SIGKILL` would
/// not tell the operator why.
fn describe_crash(info: Option<ExitInfo>, process: &ModuleProcess) -> String {
    let usage = process.limit_usage();
    match (usage.oom_kills, usage.memory) {
        (Some(kills), Some(memory)) if kills > 0 => format!(
            "{}: killed by its memory limit ({} bytes; the cgroup's OOM killer killed {kills} of its processes)",
            describe(info),
            memory.limit
        ),
        _ => describe(info),
    }
}

/// `Shutdown` with the reason the stop was requested for (`unload`,
/// `reload`, `node_shutdown`), a grace period, then the caller kills the
/// tree.
async fn shutdown(
    inner: &Inner,
    name: &str,
    module_id: &str,
    process: &ModuleProcess,
    exited: &mut tokio::sync::watch::Receiver<Option<ExitInfo>>,
) {
    let grace = inner.config.shutdown_grace;
    let reason = inner.lock().get(name).map_or("unload", |e| e.stop_reason);
    if let Some(conn) = inner.server.get().and_then(|s| s.connection(module_id)) {
        conn.send_shutdown(reason, grace);
    }
    match tokio::time::timeout(grace, wait_exit(exited)).await {
        Ok(info) => tracing::info!(module_id, "module stopped ({})", describe(info)),
        Err(_) => tracing::warn!(
            module_id,
            pid = process.pid(),
            "module ignored shutdown for {grace:?}; killing it"
        ),
    }
}

async fn wait_exit(rx: &mut tokio::sync::watch::Receiver<Option<ExitInfo>>) -> Option<ExitInfo> {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => *v,
        // The waiter thread is gone without a status: treat as exited.
        Err(_) => None,
    }
}

fn describe(info: Option<ExitInfo>) -> String {
    info.map_or_else(|| "exit status unknown".to_owned(), |i| i.describe())
}

async fn wait_connected(rx: &mut broadcast::Receiver<ConnectionEvent>, module_id: &str) -> bool {
    loop {
        match rx.recv().await {
            Ok(ConnectionEvent::Connected { module_id: id, .. }) if id == module_id => return true,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return false,
        }
    }
}

async fn wait_closed(rx: &mut broadcast::Receiver<ConnectionEvent>, module_id: &str) {
    loop {
        match rx.recv().await {
            Ok(ConnectionEvent::Closed { module_id: id, .. }) if id == module_id => return,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}
