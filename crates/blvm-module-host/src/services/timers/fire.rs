//! The tasks that fire timers: sleep, send `timer_fired`, wait for the
//! answer or the deadline, and (for a repeating timer) only then start
//! the next interval.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blvm_module_protocol::methods::invocation::{TimerFired, TIMER_FIRED};
use blvm_module_protocol::ErrorCode;

use super::{lock, State};
use crate::ipc::ModuleConnectionHandle;

/// One timer's fires: where they go, and how long each may take.
pub(super) struct Fire {
    /// The service's state; weak, so a task never keeps a dropped service
    /// alive.
    pub(super) state: Weak<Mutex<State>>,
    pub(super) conn: ModuleConnectionHandle,
    pub(super) timer_id: u64,
    /// How long a fire waits for the module's answer.
    pub(super) deadline: Duration,
}

/// Whether the timer may go on firing.
enum Outcome {
    Answered,
    TimedOut,
    ConnectionGone,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Fire {
    /// Runs `f` on the timer's entry if it is still this connection's;
    /// `None` if it is gone (cancelled, or the connection closed).
    fn with_timer<R>(&self, f: impl FnOnce(&mut super::ModuleTimers) -> Option<R>) -> Option<R> {
        let state = self.state.upgrade()?;
        let mut state = lock(&state);
        let module = state
            .modules
            .get_mut(self.conn.module_id())
            .filter(|m| Arc::ptr_eq(&m.conn.conn, &self.conn.conn))?;
        f(module)
    }

    /// A one-shot timer: fires once, `delay` from now, leaving the
    /// module's timers as it does.
    pub(super) async fn once_after(self, delay: Duration) {
        tokio::time::sleep(delay).await;
        let id = self.timer_id;
        if self.with_timer(|m| m.timers.remove(&id)).is_some() {
            self.fire(1, None).await;
        }
    }

    /// A height timer that is due: fires once, now; `height` is the tip.
    pub(super) async fn once_now(self, height: u64) {
        self.fire(1, Some(height)).await;
    }

    /// A repeating timer: an interval, a fire, its answer (or deadline),
    /// and again, until it is cancelled or its connection ends.
    pub(super) async fn repeat(self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            let id = self.timer_id;
            let Some(n) = self.with_timer(|m| {
                let t = m.timers.get_mut(&id)?;
                t.fires += 1;
                Some(t.fires)
            }) else {
                return;
            };
            if let Outcome::ConnectionGone = self.fire(n, None).await {
                return;
            }
        }
    }

    /// Sends one `timer_fired` and waits for its answer, at most the
    /// deadline.
    async fn fire(&self, fire: u64, height: Option<u64>) -> Outcome {
        let params = TimerFired {
            timer_id: self.timer_id,
            fired_at_ms: now_ms(),
            fire,
            height,
        };
        let module = self.conn.module_name();
        match tokio::time::timeout(self.deadline, self.conn.invoke(TIMER_FIRED, &params)).await {
            Ok(Ok(_)) => {
                tracing::trace!(module, timer_id = self.timer_id, fire, "timer fired");
                Outcome::Answered
            }
            Ok(Err(e)) if matches!(e.code, ErrorCode::ModuleCrashed | ErrorCode::ConnectionClosed) => {
                Outcome::ConnectionGone
            }
            Ok(Err(e)) => {
                tracing::debug!(module, timer_id = self.timer_id, fire, code = %e.code, "timer fire answered with an error: {}", e.message);
                Outcome::Answered
            }
            Err(_) => {
                tracing::warn!(
                    module,
                    timer_id = self.timer_id,
                    fire,
                    "timer fire not answered within {:?}; the timer goes on without the answer",
                    self.deadline
                );
                Outcome::TimedOut
            }
        }
    }
}
