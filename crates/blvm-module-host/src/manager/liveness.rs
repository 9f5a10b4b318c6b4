//! Whether a running module is alive: its main process is not stopped, and
//! it answers the node's health check in time.
//!
//! A module can stop serving without exiting: frozen by `SIGSTOP` (another
//! process of the same uid, an operator, a debugger) or hung (a deadlock, a
//! blocked runtime). Its socket stays open and its process exists, so
//! neither the waiter thread nor the connection notices. Two checks do:
//!
//! - **state**: on every sample of the supervisor (each second), the main
//!   process's state in `/proc/<pid>/stat`; `T` or `t` is stopped
//!   ([`crate::process::Stopped`]). Seen at once, whatever the module does.
//! - **health check**: every [`ManagerConfig::health_check_interval`], a
//!   `health_check` invocation; *any* answer counts (a result, or the
//!   `method_not_found` every v1 module gives an invocation it does not
//!   know). The SDK answers it from its reader task, so a module that never
//!   looks at its invocations is still alive as long as its runtime runs.
//!
//! Either way, the module is [`ModuleState::Unresponsive`] (status never
//! says `running` for it) and, unless it recovers first, killed after
//! [`ManagerConfig::health_check_timeout`] and restarted as a crash:
//!
//! | at | stopped by `SIGSTOP` | hung |
//! |---|---|---|
//! | 0 | | a health check is sent |
//! | next sample (≤ 1 s) | `unresponsive`, `ModuleHealthChanged` | |
//! | + timeout | killed: `ModuleCrashed`, restart with backoff | killed, the same |
//!
//! A stopped process is judged by its state alone: the health checks it
//! cannot answer while stopped do not also count against it, so a `SIGCONT`
//! within the deadline makes it `running` again, and the reason given is
//! always the stop.
//!
//! [`ManagerConfig::health_check_interval`]: super::ManagerConfig::health_check_interval
//! [`ManagerConfig::health_check_timeout`]: super::ManagerConfig::health_check_timeout

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use blvm_module_protocol::methods::invocation::HEALTH_CHECK;
use blvm_module_protocol::{Empty, ErrorCode, RemoteError};
use bytes::Bytes;
use tokio::time::Instant;

use super::ModuleState;
use crate::ipc::ModuleConnectionHandle;
use crate::process::{ModuleProcess, Stopped};

type Answer = Pin<Box<dyn Future<Output = Result<Bytes, RemoteError>> + Send>>;

/// A health check in flight.
struct Probe {
    deadline: Instant,
    answer: Answer,
}

/// What [`Liveness::next`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A health check was answered.
    Answered,
    /// The module must be killed, for this reason.
    Dead(String),
}

/// A change of the main process's state seen by [`Liveness::sample`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StateChange {
    /// It is stopped now, for this reason.
    Stopped(String),
    /// It runs again.
    Resumed,
}

/// The liveness checks of one spawn, driven by its supervisor.
pub(super) struct Liveness {
    interval: Option<Duration>,
    timeout: Duration,
    conn: Option<ModuleConnectionHandle>,
    next_probe: Instant,
    probe: Option<Probe>,
    /// Since when, and why, the main process is stopped.
    stopped: Option<(Instant, Stopped)>,
}

impl Liveness {
    /// Checks for a module that has just completed its handshake on
    /// `conn` (`None`: it is already gone, and only its state is checked).
    pub(super) fn new(interval: Option<Duration>, timeout: Duration, conn: Option<ModuleConnectionHandle>) -> Liveness {
        Liveness {
            next_probe: Instant::now() + interval.unwrap_or(Duration::ZERO),
            interval,
            timeout,
            conn,
            probe: None,
            stopped: None,
        }
    }

    /// Reads the main process's state now; says whether it changed.
    pub(super) fn sample(&mut self, process: &ModuleProcess) -> Option<StateChange> {
        match (process.stopped(), &self.stopped) {
            (Some(now), None) => {
                self.stopped = Some((Instant::now(), now));
                Some(StateChange::Stopped(now.describe().to_owned()))
            }
            (None, Some(_)) => {
                self.stopped = None;
                // The checks it could not answer while stopped are not held
                // against it: the next one gets its full deadline.
                self.probe = None;
                self.next_probe = Instant::now();
                Some(StateChange::Resumed)
            }
            _ => None,
        }
    }

    /// Waits for the next verdict: a health check answered, or the module
    /// dead (stopped, or a check unanswered, past the deadline). Sends the
    /// checks as they fall due meanwhile.
    ///
    /// Cancel-safe: the check in flight lives in `self`, so a `select!`
    /// that drops this future and calls it again loses nothing.
    pub(super) async fn next(&mut self) -> Verdict {
        loop {
            let now = Instant::now();
            if let Some((since, why)) = self.stopped {
                if now >= since + self.timeout {
                    return Verdict::Dead(format!("{why} for {:?}; killed", self.timeout));
                }
            } else if self.probe.as_ref().is_some_and(|p| now >= p.deadline) {
                return Verdict::Dead(format!("no answer to health check within {:?}; killed", self.timeout));
            }
            if self.probe.is_none() && self.interval.is_some() && now >= self.next_probe {
                self.probe = self.conn.clone().map(|conn| Probe {
                    deadline: now + self.timeout,
                    answer: Box::pin(async move { conn.invoke(HEALTH_CHECK, &Empty {}).await }),
                });
                if self.probe.is_none() {
                    // No connection to check: only the state is watched.
                    self.interval = None;
                }
            }
            let wake = match (&self.stopped, &self.probe) {
                (Some((since, _)), _) => Some(*since + self.timeout),
                (None, Some(p)) => Some(p.deadline),
                (None, None) => self.interval.map(|_| self.next_probe),
            };
            let answer = self.probe.as_mut().map(|p| p.answer.as_mut());
            let answered = tokio::select! {
                Some(result) = async move {
                    match answer {
                        Some(answer) => Some(answer.await),
                        None => None,
                    }
                } => Some(result),
                () = sleep_until(wake) => None,
            };
            let Some(result) = answered else { continue };
            self.probe = None;
            self.next_probe = Instant::now() + self.interval.unwrap_or(Duration::ZERO);
            match result {
                // Made up by this side when the connection ended: no answer.
                // The supervisor sees the connection close and ends the run.
                Err(e) if matches!(e.code, ErrorCode::ConnectionClosed | ErrorCode::ModuleCrashed) => {
                    self.interval = None;
                }
                // A result, or any error the module sent: it is alive.
                _ => return Verdict::Answered,
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The state a live spawn is in when its liveness changes to
/// `unresponsive` (with the reason) or back (`None`), given the state it
/// is in: only `running` and `unresponsive` move, so a verdict that comes
/// after the run ended (the module already `restarting`, `stopped`) changes
/// nothing.
pub(super) fn health_transition(current: ModuleState, unresponsive: Option<&str>) -> Option<ModuleState> {
    match (current, unresponsive) {
        (ModuleState::Running | ModuleState::Unresponsive, Some(_)) => Some(ModuleState::Unresponsive),
        (ModuleState::Unresponsive, None) => Some(ModuleState::Running),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_spawn_changes_health() {
        use ModuleState::*;
        assert_eq!(health_transition(Running, Some("stopped")), Some(Unresponsive));
        assert_eq!(health_transition(Unresponsive, Some("still")), Some(Unresponsive));
        assert_eq!(health_transition(Unresponsive, None), Some(Running));
        assert_eq!(health_transition(Running, None), None);
        for late in [Loading, Restarting, Stopped, Failed] {
            assert_eq!(health_transition(late, Some("too late")), None, "{late}");
            assert_eq!(health_transition(late, None), None, "{late}");
        }
    }
}
