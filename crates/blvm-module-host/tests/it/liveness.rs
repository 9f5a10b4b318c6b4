//! A frozen or hung module is noticed and restarted: one stopped with
//! `SIGSTOP` leaves `running` at once with the reason, one that stops
//! answering the node's health check is killed at the deadline, and both
//! come back as new processes through the crash-restart policy. A healthy
//! module that never reads its invocations is left alone: the SDK answers
//! the health check from its reader.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use blvm_module_host::api::events::Outbound;
use blvm_module_host::manager::{ManagerConfig, ModuleState, ModuleStatus};
use blvm_module_protocol::events::{Event, EventType};
use blvm_module_protocol::frame::decode_body;
use blvm_module_protocol::methods::invocation::{HEALTH_CHECK, TIMER_FIRED};
use blvm_module_protocol::{Empty, ErrorCode, RemoteError};
use blvm_sdk::ModuleIntegration;

use crate::support::{install_module as install, spec, Host, TestNode, DEADLINE};

/// Quick restarts, and health checks every `interval` answered within
/// `timeout`.
fn checks(config: &mut ManagerConfig, interval: Duration, timeout: Duration) {
    config.restart.initial_backoff = Duration::from_millis(50);
    config.health_check_interval = Some(interval);
    config.health_check_timeout = timeout;
}

#[track_caller]
fn status(node: &TestNode, name: &str) -> ModuleStatus {
    node.manager.module_status(name).expect("loaded")
}

async fn wait_until(node: &TestNode, name: &str, what: &str, pred: impl Fn(&ModuleStatus) -> bool) -> ModuleStatus {
    match node.manager.wait_for(name, DEADLINE, pred).await {
        Some(s) => s,
        None => panic!(
            "{name}: not {what} within {DEADLINE:?}: {:?}",
            node.manager.module_status(name)
        ),
    }
}

/// A bus subscriber inside the test, for lifecycle events.
fn observe(node: &TestNode, id: &str, types: &[EventType]) -> Receiver<Outbound> {
    let (_tx, rx) = node.manager.events().register(id, id, "0.0.0", 10_000);
    node.manager.events().subscribe(id, types);
    rx
}

/// The next observed event of type `ty`.
#[track_caller]
fn next_event(rx: &Receiver<Outbound>, ty: EventType) -> Event {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Outbound::Event(q)) if q.event.name == ty.name() => {
                return Event::decode(&q.event.name, &q.event.payload).expect("decodes")
            }
            Ok(_) => {}
            Err(e) => panic!("no {ty} event: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_frozen_by_sigstop_is_unresponsive_at_once_then_killed_and_restarted() {
    let node = TestNode::start("live-stop", |c| {
        checks(c, Duration::from_secs(1), Duration::from_secs(5))
    })
    .await;
    install(&node, "frozen", "test-module", "mode = \"serve\"\n");
    let observer = observe(
        &node,
        "live-stop-observer",
        &[EventType::ModuleHealthChanged, EventType::ModuleCrashed],
    );
    node.manager.auto_load_modules().await.expect("loaded");
    let first = status(&node, "frozen").pid.expect("running");

    let pid = rustix::process::Pid::from_raw(first as i32).expect("a pid is positive");
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).expect("SIGSTOP as root");
    // Before: `running` for as long as the process stayed frozen.
    let frozen = wait_until(&node, "frozen", "unresponsive", |s| {
        s.state == ModuleState::Unresponsive
    })
    .await;
    assert_eq!(frozen.pid, Some(first), "the same, frozen, process: {frozen:?}");
    let why = frozen.unresponsive.clone().unwrap_or_default();
    assert!(why.contains("stopped by SIGSTOP"), "{frozen:?}");
    let Event::ModuleHealthChanged(health) = next_event(&observer, EventType::ModuleHealthChanged) else {
        unreachable!("filtered by type")
    };
    assert_eq!(
        (
            health.module_name.as_str(),
            health.old_health.as_str(),
            health.new_health.as_str()
        ),
        ("frozen", "healthy", "unresponsive")
    );

    // After the deadline: killed, and restarted as a crash, with backoff.
    let back = wait_until(&node, "frozen", "restarted", |s| {
        s.state == ModuleState::Running && s.pid.is_some_and(|p| p != first)
    })
    .await;
    assert_eq!((back.restarts, back.unresponsive.as_deref()), (1, None), "{back:?}");
    let last = back.last_error.unwrap_or_default();
    assert!(last.starts_with("unresponsive: process stopped by SIGSTOP"), "{last}");
    let Event::ModuleCrashed(crash) = next_event(&observer, EventType::ModuleCrashed) else {
        unreachable!("filtered by type")
    };
    assert!(crash.will_restart && crash.error.contains("SIGSTOP"), "{crash:?}");
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_stops_answering_health_checks_is_killed_at_the_deadline_and_restarted() {
    let node = TestNode::start("live-deaf", |c| {
        checks(c, Duration::from_millis(500), Duration::from_secs(2))
    })
    .await;
    // It reads its socket, so it is not stopped and its connection stays
    // up; it just never answers: only the health check can tell.
    install(&node, "deaf", "deaf-module", "");
    node.manager.auto_load_modules().await.expect("loaded");
    let first = status(&node, "deaf").pid.expect("running");
    let back = wait_until(&node, "deaf", "restarted", |s| {
        s.restarts >= 1 && s.state == ModuleState::Running && s.pid.is_some_and(|p| p != first)
    })
    .await;
    let last = back.last_error.clone().unwrap_or_default();
    assert!(
        last.starts_with("unresponsive: no answer to health check within 2s"),
        "{last}"
    );
    assert_eq!(back.health_checks, 0, "{back:?}");
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_module_that_never_reads_its_invocations_is_not_restarted() {
    let node = TestNode::start("live-idle", |c| {
        checks(c, Duration::from_millis(200), Duration::from_secs(5))
    })
    .await;
    install(&node, "idle", "idle-module", "");
    node.manager.auto_load_modules().await.expect("loaded");
    let first = status(&node, "idle").pid.expect("running");
    // Several intervals, counted by the node's own answered checks.
    let later = wait_until(&node, "idle", "checked 5 times", |s| s.health_checks >= 5).await;
    assert_eq!(
        (later.state, later.restarts, later.pid, later.unresponsive.as_deref()),
        (ModuleState::Running, 0, Some(first), None),
        "{later:?}"
    );
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_sdk_answers_the_health_check_without_the_modules_code() {
    let host = Host::start("live-sdk");
    let token = host.expect_self(spec("answers", &[]));
    let integration =
        ModuleIntegration::connect_with_token(host.server.socket_path(), "answers", "answers", "1.0.0", &token)
            .await
            .expect("connected");
    let conn = host.server.connection("answers").expect("connected");
    // No invocation receiver has been taken: any other invocation would
    // wait in the queue for one.
    let answer = tokio::time::timeout(DEADLINE, conn.invoke(HEALTH_CHECK, &Empty {}))
        .await
        .expect("answered in time")
        .expect("a result");
    let _: Empty = decode_body("result", &answer).expect("`{}`");
    // Nor does it reach the module's code once the receiver is taken: the
    // first invocation the module sees is the one sent after the check.
    let mut invocations = integration.invocation_receiver().expect("receiver");
    tokio::time::timeout(DEADLINE, conn.invoke(HEALTH_CHECK, &Empty {}))
        .await
        .expect("answered in time")
        .expect("a result");
    let call = tokio::spawn(async move { conn.invoke(TIMER_FIRED, &Empty {}).await });
    let first = tokio::time::timeout(DEADLINE, invocations.recv())
        .await
        .expect("in time")
        .expect("an invocation");
    assert_eq!(first.method(), TIMER_FIRED, "a health check was queued for the module");
    first.reject(RemoteError::method_not_found(TIMER_FIRED));
    let answer = call.await.expect("the invoking task does not panic");
    assert_eq!(answer.map_err(|e| e.code), Err(ErrorCode::MethodNotFound));
}
