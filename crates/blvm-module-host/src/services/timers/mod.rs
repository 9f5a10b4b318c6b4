//! The timer service: a module schedules timers (`timer_schedule`),
//! cancels them (`timer_cancel`) and lists them (`timer_list`); the node
//! sends it `timer_fired` when one fires and waits for the answer.
//!
//! # What it owns
//!
//! Every live connection's timers, keyed by module id and tagged with the
//! connection that made them, and the operator's limits
//! ([`TimerLimits`]): how many timers a module may have at once (one more
//! answers `quota_exceeded`) and how long the node waits for the answer to
//! a fire.
//!
//! # When a timer fires
//!
//! - `once`: `ms` after it was scheduled. It leaves the module's timers as
//!   it fires (it no longer counts against the cap, `timer_cancel` of it
//!   answers false).
//! - `repeat`: every `ms`, each interval counted from the end of the
//!   previous fire: the module's answer, or the fire deadline passing
//!   without one. One task fires it, one fire after another, so a
//!   repeating timer is never in flight twice however slowly the module
//!   answers (a module that never answers gets one fire per interval plus
//!   deadline, never a pile of them).
//! - `height`: once, when the node reports a tip at or above its height
//!   ([`TimerService::on_tip`]), or at once if the chain is already there
//!   when it is scheduled.
//!
//! # When timers go
//!
//! With the connection: when it closes (unload, reload, crash, restart)
//! [`TimerService::connection_closed`] aborts its tasks and forgets its
//! timers, so no fire ever reaches a later spawn of the module (which
//! schedules its own again). A late close of an older connection never
//! touches a newer one's timers.

mod fire;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blvm_module_protocol::methods::timers::{
    Cancelled, ScheduleTimer, Scheduled, TimerInfo, TimerKind, TimerList, MAX_DELAY_MS, MIN_INTERVAL_MS,
};
use blvm_module_protocol::{ErrorCode, RemoteError};
use tokio::task::AbortHandle;

use crate::ipc::ModuleConnectionHandle;

/// The timers a module may have at once when the operator sets no cap.
pub const DEFAULT_MAX_TIMERS: usize = 64;

/// How long the node waits for the answer to a fire when the operator
/// sets nothing.
pub const DEFAULT_FIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The operator's timer limits: a default and per-module overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerLimits {
    /// Timers every module may have at once (default
    /// [`DEFAULT_MAX_TIMERS`]; 0: none).
    pub max_timers: usize,
    /// Per-module caps, replacing `max_timers` for that module.
    pub max_timers_per_module: BTreeMap<String, usize>,
    /// How long a fire waits for the module's answer before the timer
    /// goes on without it (default [`DEFAULT_FIRE_TIMEOUT`]).
    pub fire_timeout: Duration,
    /// Per-module fire deadlines, replacing `fire_timeout` for that module.
    pub fire_timeout_per_module: BTreeMap<String, Duration>,
}

impl Default for TimerLimits {
    fn default() -> Self {
        TimerLimits {
            max_timers: DEFAULT_MAX_TIMERS,
            max_timers_per_module: BTreeMap::new(),
            fire_timeout: DEFAULT_FIRE_TIMEOUT,
            fire_timeout_per_module: BTreeMap::new(),
        }
    }
}

impl TimerLimits {
    /// The cap of module `name`.
    pub fn max_timers_of(&self, name: &str) -> usize {
        self.max_timers_per_module.get(name).copied().unwrap_or(self.max_timers)
    }

    /// The fire deadline of module `name`.
    pub fn fire_timeout_of(&self, name: &str) -> Duration {
        self.fire_timeout_per_module
            .get(name)
            .copied()
            .unwrap_or(self.fire_timeout)
    }
}

/// One timer of one connection.
struct Timer {
    kind: TimerKind,
    ms: Option<u64>,
    height: Option<u64>,
    /// Fires started so far.
    fires: u64,
    /// The task that sleeps and fires it; `None` for a height timer that
    /// waits for the tip.
    task: Option<AbortHandle>,
}

impl Timer {
    fn info(&self, timer_id: u64) -> TimerInfo {
        TimerInfo {
            timer_id,
            kind: self.kind,
            ms: self.ms,
            height: self.height,
            fires: self.fires,
        }
    }
}

/// One connection's timers.
struct ModuleTimers {
    /// The connection that made them, and that their fires go to.
    conn: ModuleConnectionHandle,
    /// Where their tasks run (the hub's runtime).
    runtime: tokio::runtime::Handle,
    /// The next timer id; ids are never reused within a connection.
    next_id: u64,
    timers: BTreeMap<u64, Timer>,
}

impl ModuleTimers {
    fn abort_all(&self) {
        for task in self.timers.values().filter_map(|t| t.task.as_ref()) {
            task.abort();
        }
    }
}

/// What the service's lock guards.
#[derive(Default)]
struct State {
    /// The latest tip height the node reported ([`TimerService::on_tip`]).
    tip: Option<u64>,
    /// By module id.
    modules: HashMap<String, ModuleTimers>,
}

/// Every live connection's timers.
pub struct TimerService {
    limits: TimerLimits,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for TimerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerService").field("limits", &self.limits).finish()
    }
}

impl Default for TimerService {
    fn default() -> Self {
        TimerService::new(TimerLimits::default())
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Every critical section is a handful of map operations and spawns;
    // none leaves the maps half-updated.
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn invalid(message: String) -> RemoteError {
    RemoteError::new(ErrorCode::InvalidParams, message)
}

/// Checks a schedule request; answers the delay or interval it asks for.
fn check(p: &ScheduleTimer) -> Result<Option<Duration>, RemoteError> {
    match (p.kind, p.ms, p.height) {
        (TimerKind::Once, Some(ms @ 0..=MAX_DELAY_MS), None) => Ok(Some(Duration::from_millis(ms))),
        (TimerKind::Repeat, Some(ms @ MIN_INTERVAL_MS..=MAX_DELAY_MS), None) => Ok(Some(Duration::from_millis(ms))),
        (TimerKind::Height, None, Some(_)) => Ok(None),
        (TimerKind::Once, Some(ms), None) => Err(invalid(format!(
            "a one-shot timer's delay is 0 to {MAX_DELAY_MS} ms, not {ms}"
        ))),
        (TimerKind::Repeat, Some(ms), None) => Err(invalid(format!(
            "a repeating timer's interval is {MIN_INTERVAL_MS} to {MAX_DELAY_MS} ms, not {ms}"
        ))),
        (TimerKind::Height, _, _) => Err(invalid("a height timer takes `height` and no `ms`".into())),
        (kind, _, _) => Err(invalid(format!(
            "a `{}` timer takes `ms` and no `height`",
            kind.as_str()
        ))),
    }
}

impl TimerService {
    /// A service with `limits` and no timers.
    pub fn new(limits: TimerLimits) -> Self {
        TimerService {
            limits,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &TimerLimits {
        &self.limits
    }

    /// How many timers the live connection of module `name` has.
    pub fn count(&self, name: &str) -> usize {
        lock(&self.state)
            .modules
            .values()
            .filter(|m| m.conn.module_name() == name)
            .map(|m| m.timers.len())
            .sum()
    }

    /// `timer_schedule` for the module on `conn`. `tip` is the active
    /// chain's height as the backend has it now (`None` if it could not
    /// say); a height timer at or below it fires at once.
    pub fn schedule(
        &self,
        runtime: &tokio::runtime::Handle,
        conn: &ModuleConnectionHandle,
        tip: Option<u64>,
        p: &ScheduleTimer,
    ) -> Result<Scheduled, RemoteError> {
        let every = check(p)?;
        let name = conn.module_name();
        let cap = self.limits.max_timers_of(name);
        let mut state = lock(&self.state);
        // The tip is read again under the lock: `on_tip` runs under it
        // too, so a block that arrives while this runs is seen either here
        // or by `on_tip`, never by neither.
        let tip = tip.max(state.tip);
        let module = state
            .modules
            .entry(conn.module_id().to_owned())
            .or_insert_with(|| ModuleTimers {
                conn: conn.clone(),
                runtime: runtime.clone(),
                next_id: 1,
                timers: BTreeMap::new(),
            });
        if !Arc::ptr_eq(&module.conn.conn, &conn.conn) {
            // An older connection of this id whose close has not been
            // handled yet: its timers go now.
            module.abort_all();
            *module = ModuleTimers {
                conn: conn.clone(),
                runtime: runtime.clone(),
                next_id: 1,
                timers: BTreeMap::new(),
            };
        }
        if module.timers.len() >= cap {
            return Err(RemoteError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "quota exceeded: the module has {} timers; the cap is {cap}; nothing was scheduled",
                    module.timers.len()
                ),
            ));
        }
        let timer_id = module.next_id;
        module.next_id += 1;
        let fire = fire::Fire {
            state: Arc::downgrade(&self.state),
            conn: conn.clone(),
            timer_id,
            deadline: self.limits.fire_timeout_of(name),
        };
        let task = match (p.kind, every, p.height) {
            (TimerKind::Height, _, Some(height)) if tip.is_some_and(|t| t >= height) => {
                // Due already: fires at once and is never listed.
                module.runtime.spawn(fire.once_now(tip.unwrap_or(height)));
                return Ok(Scheduled {
                    timer_id,
                    timers: module.timers.len() as u64,
                    max_timers: cap as u64,
                });
            }
            (TimerKind::Height, _, _) => None,
            (TimerKind::Once, Some(delay), _) => Some(module.runtime.spawn(fire.once_after(delay)).abort_handle()),
            (_, Some(interval), _) => Some(module.runtime.spawn(fire.repeat(interval)).abort_handle()),
            (_, None, _) => return Err(invalid("a timer without `ms`".into())),
        };
        module.timers.insert(
            timer_id,
            Timer {
                kind: p.kind,
                ms: p.ms,
                height: p.height,
                fires: 0,
                task,
            },
        );
        Ok(Scheduled {
            timer_id,
            timers: module.timers.len() as u64,
            max_timers: cap as u64,
        })
    }

    /// `timer_cancel`: true if the module on `conn` had the timer.
    pub fn cancel(&self, conn: &ModuleConnectionHandle, timer_id: u64) -> Cancelled {
        let mut state = lock(&self.state);
        let removed = state
            .modules
            .get_mut(conn.module_id())
            .filter(|m| Arc::ptr_eq(&m.conn.conn, &conn.conn))
            .and_then(|m| m.timers.remove(&timer_id));
        if let Some(task) = removed.as_ref().and_then(|t| t.task.as_ref()) {
            // A fire in flight is dropped with its task: the module's late
            // answer finds nobody waiting and is ignored.
            task.abort();
        }
        Cancelled {
            cancelled: removed.is_some(),
        }
    }

    /// `timer_list` for the module on `conn`.
    pub fn list(&self, conn: &ModuleConnectionHandle) -> TimerList {
        let state = lock(&self.state);
        let timers = state
            .modules
            .get(conn.module_id())
            .filter(|m| Arc::ptr_eq(&m.conn.conn, &conn.conn))
            .map(|m| m.timers.iter().map(|(id, t)| t.info(*id)).collect())
            .unwrap_or_default();
        TimerList {
            timers,
            max_timers: self.limits.max_timers_of(conn.module_name()) as u64,
        }
    }

    /// The node's active chain now has its tip at `height`: every height
    /// timer at or below it fires. The node calls this each time its tip
    /// moves (blocks connected or disconnected).
    pub fn on_tip(&self, height: u64) {
        let mut state = lock(&self.state);
        state.tip = Some(height);
        for module in state.modules.values_mut() {
            let due: Vec<u64> = module
                .timers
                .iter()
                .filter(|(_, t)| t.kind == TimerKind::Height && t.height.is_some_and(|h| h <= height))
                .map(|(id, _)| *id)
                .collect();
            for timer_id in due {
                module.timers.remove(&timer_id);
                let fire = fire::Fire {
                    state: Arc::downgrade(&self.state),
                    conn: module.conn.clone(),
                    timer_id,
                    deadline: self.limits.fire_timeout_of(module.conn.module_name()),
                };
                module.runtime.spawn(fire.once_now(height));
            }
        }
    }

    /// The connection `handle` ended: its timers end with it. Called once
    /// by the hub.
    pub(crate) fn connection_closed(&self, handle: &ModuleConnectionHandle) {
        let mut state = lock(&self.state);
        let same = state
            .modules
            .get(handle.module_id())
            .is_some_and(|m| Arc::ptr_eq(&m.conn.conn, &handle.conn));
        if same {
            if let Some(module) = state.modules.remove(handle.module_id()) {
                module.abort_all();
            }
        }
    }
}

#[cfg(test)]
mod tests;
