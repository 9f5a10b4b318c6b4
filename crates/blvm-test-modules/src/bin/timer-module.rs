//! A module that schedules timers when the test says so, through the
//! SDK's typed calls (`timer_schedule`, `timer_cancel`, `timer_list`), and
//! records every `timer_fired` it receives: in which order, which fire of
//! its timer it was, and how many fires of the same timer it had in hand
//! at once.
//!
//! `module_call` methods (params and answers are text):
//!
//! - `schedule once|repeat <ms>` or `schedule height <h>`: answers `OK
//!   <timer_id> <timers> <max_timers>` or `ERROR <code> <capability or ->
//!   <message>`;
//! - `cancel <id>`: `OK true|false` or `ERROR …`;
//! - `list`: `OK <max_timers>` then ` <id>:<kind>:<ms or height>:<fires>`
//!   per timer, or `ERROR …`;
//! - `wait <id> <n>`: waits until timer `<id>` has been fired `<n>` times,
//!   then answers its record (as `record`);
//! - `record <id>`: `FIRES <count> MAX_IN_FLIGHT <m> ORDER <fire>,<fire>,…
//!   HEIGHTS <h>,…`;
//! - `sequence`: every fire received, in the order they arrived:
//!   `<id>.<fire> …`;
//! - `ping`: answers `PONG` after a node round trip.
//!
//! With config `answer_ms` it holds each fire that long before answering
//! it (a slow module); `answer_ms = "never"` never answers (the node's
//! fire deadline must pass). It prints `fired <id> <fire>` on stdout for
//! each fire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blvm_sdk::protocol::methods::invocation::{ModuleCall, ModuleCallResult, TimerFired};
use blvm_sdk::protocol::methods::timers::ScheduleTimer;
use blvm_sdk::protocol::{Empty, RemoteError};
use blvm_sdk::{Invocation, ModuleIntegration, NodeApiIpc, SdkError};
use blvm_test_modules::error_line as error;
use tokio::sync::Notify;

/// How the module answers fires.
#[derive(Clone, Copy)]
enum Answer {
    After(Duration),
    Never,
}

#[derive(Default)]
struct Record {
    fires: u64,
    in_flight: u64,
    max_in_flight: u64,
    order: Vec<u64>,
    heights: Vec<u64>,
}

#[derive(Default)]
struct Fires {
    by_timer: Mutex<HashMap<u64, Record>>,
    sequence: Mutex<Vec<String>>,
    changed: Notify,
    /// Fires never answered (`answer_ms = "never"`): kept, since a dropped
    /// invocation is answered with an error.
    held: Mutex<Vec<Invocation>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn joined(values: &[u64]) -> String {
    values.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

impl Fires {
    /// Records a fire as it arrives, in wire order.
    fn arrived(&self, fired: &TimerFired) {
        lock(&self.sequence).push(format!("{}.{}", fired.timer_id, fired.fire));
        let mut by_timer = lock(&self.by_timer);
        let r = by_timer.entry(fired.timer_id).or_default();
        r.fires += 1;
        r.in_flight += 1;
        r.max_in_flight = r.max_in_flight.max(r.in_flight);
        r.order.push(fired.fire);
        if let Some(h) = fired.height {
            r.heights.push(h);
        }
        drop(by_timer);
        println!("fired {} {}", fired.timer_id, fired.fire);
        self.changed.notify_waiters();
    }

    fn answered(&self, timer_id: u64) {
        if let Some(r) = lock(&self.by_timer).get_mut(&timer_id) {
            r.in_flight -= 1;
        }
    }

    fn record(&self, timer_id: u64) -> String {
        let by_timer = lock(&self.by_timer);
        let empty = Record::default();
        let r = by_timer.get(&timer_id).unwrap_or(&empty);
        format!(
            "FIRES {} MAX_IN_FLIGHT {} ORDER {} HEIGHTS {}",
            r.fires,
            r.max_in_flight,
            joined(&r.order),
            joined(&r.heights)
        )
    }

    async fn wait(&self, timer_id: u64, n: u64) -> String {
        loop {
            let changed = self.changed.notified();
            if lock(&self.by_timer).get(&timer_id).is_some_and(|r| r.fires >= n) {
                return self.record(timer_id);
            }
            changed.await;
        }
    }
}

async fn schedule(api: &NodeApiIpc, params: &str) -> String {
    let mut words = params.split_whitespace();
    let value = words.nth(1).and_then(|v| v.parse::<u64>().ok());
    let timer = match (params.split_whitespace().next(), value) {
        (Some("once"), Some(ms)) => ScheduleTimer::once(ms),
        (Some("repeat"), Some(ms)) => ScheduleTimer::repeat(ms),
        (Some("height"), Some(h)) => ScheduleTimer::at_height(h),
        _ => return format!("ERROR local - cannot parse `{params}`"),
    };
    match api.timer_schedule(&timer).await {
        Ok(s) => format!("OK {} {} {}", s.timer_id, s.timers, s.max_timers),
        Err(e) => error(e),
    }
}

async fn list(api: &NodeApiIpc) -> String {
    match api.timer_list().await {
        Ok(l) => {
            let mut out = format!("OK {}", l.max_timers);
            for t in l.timers {
                let what = t.ms.or(t.height).unwrap_or(0);
                out.push_str(&format!(" {}:{}:{what}:{}", t.timer_id, t.kind.as_str(), t.fires));
            }
            out
        }
        Err(e) => error(e),
    }
}

async fn call(api: &NodeApiIpc, fires: &Fires, method: &str, params: &str) -> Option<String> {
    let arg = |i: usize| params.split_whitespace().nth(i).and_then(|v| v.parse::<u64>().ok());
    Some(match method {
        "schedule" => schedule(api, params).await,
        "cancel" => match arg(0) {
            Some(id) => match api.timer_cancel(id).await {
                Ok(c) => format!("OK {c}"),
                Err(e) => error(e),
            },
            None => "ERROR local - cancel <id>".into(),
        },
        "list" => list(api).await,
        "wait" => fires.wait(arg(0)?, arg(1)?).await,
        "record" => fires.record(arg(0)?),
        "sequence" => lock(&fires.sequence).join(" "),
        "ping" => match api.ping().await {
            Ok(()) => "PONG".to_owned(),
            Err(e) => error(e),
        },
        _ => return None,
    })
}

/// Answers one invocation: a fire (after the configured hold) or a call.
async fn handle(api: Arc<NodeApiIpc>, fires: Arc<Fires>, answer: Answer, inv: Invocation) {
    if let Some(fired) = inv.timer_fired() {
        match answer {
            Answer::Never => lock(&fires.held).push(inv),
            Answer::After(hold) => {
                tokio::time::sleep(hold).await;
                fires.answered(fired.timer_id);
                let _ = inv.respond(&Empty {});
            }
        }
        return;
    }
    let Ok(call_params) = inv.params::<ModuleCall>() else {
        let method = inv.method().to_owned();
        inv.reject(RemoteError::method_not_found(&method));
        return;
    };
    let params = String::from_utf8_lossy(&call_params.params).into_owned();
    match call(&api, &fires, &call_params.method, &params).await {
        Some(text) => {
            let _ = inv.respond(&ModuleCallResult {
                result: text.into_bytes(),
            });
        }
        None => inv.reject(RemoteError::method_not_found(&call_params.method)),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    let integration = ModuleIntegration::from_env().await?;
    let mut invocations = integration.invocation_receiver()?;
    let api = integration.node_api();
    let answer = match integration.welcome().config.get("answer_ms").map(String::as_str) {
        Some("never") => Answer::Never,
        Some(ms) => Answer::After(Duration::from_millis(ms.parse().unwrap_or(0))),
        None => Answer::After(Duration::ZERO),
    };
    let fires = Arc::new(Fires::default());
    loop {
        tokio::select! {
            _ = integration.shutdown_requested() => return Ok(()),
            inv = invocations.recv() => {
                let Some(inv) = inv else { return Ok(()) };
                // Recorded here, in the order they came off the socket;
                // answered on a task of their own, so a slow fire never
                // holds up the test's calls.
                if let Some(fired) = inv.timer_fired() {
                    fires.arrived(&fired);
                }
                tokio::spawn(handle(Arc::clone(&api), Arc::clone(&fires), answer, inv));
            }
        }
    }
}
