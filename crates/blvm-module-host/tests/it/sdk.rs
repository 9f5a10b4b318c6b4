//! The SDK's end of the connection, seen from a real node: receivers that
//! end when the node cuts the connection, log lines that survive an exit.

use blvm_module_host::ConnectionEvent;
use blvm_module_protocol::Permission::SubscribeEvents;
use blvm_sdk::ModuleIntegration;

use crate::support::{captured_logs, spec, wait_for, Host, DEADLINE};

#[test]
fn event_receiver_ends_when_the_node_cuts_the_connection() {
    let host = Host::start("sdk-cut");
    let module = host.spawn(
        spec("cut-off", &[SubscribeEvents]),
        "events",
        &[("BLVM_TEST_EVENTS", "ModuleLoaded")],
    );
    module.expect("SUBSCRIBED");
    assert_eq!(module.expect("EVENT"), "EVENT 1 ModuleLoaded cut-off 1.0.0");
    // Before the fix the receiver's sender lived as long as the client,
    // so `recv()` waited forever on a dead connection.
    host.server.forget_module("cut-off");
    assert_eq!(module.next_line("the end of the event stream"), "CLOSED");
}

#[tokio::test(flavor = "current_thread")]
async fn invocation_receiver_ends_when_the_node_cuts_the_connection() {
    let host = Host::start("sdk-cut-inv");
    let token = host.expect_self(spec("cut-inv", &[]));
    let integration =
        ModuleIntegration::connect_with_token(host.server.socket_path(), "cut-inv", "cut-inv", "1.0.0", &token)
            .await
            .expect("connected");
    let mut invocations = integration.invocation_receiver().expect("receiver");
    host.server.forget_module("cut-inv");
    let next = tokio::time::timeout(DEADLINE, invocations.recv())
        .await
        .expect("recv ends once the connection is closed");
    assert!(next.is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn log_line_sent_right_before_exit_reaches_the_node_after_flush() {
    captured_logs();
    let host = Host::start("sdk-log-exit");
    let mut connections = host.server.subscribe_connection_events();
    let module = host.spawn(spec("last-words", &[]), "log-exit", &[]);
    // The node's reader handles every frame of a connection before it
    // reports the connection closed.
    wait_for(
        &mut connections,
        |e| matches!(e, ConnectionEvent::Closed { module_id, .. } if module_id == "last-words"),
    )
    .await;
    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("last words before exit"))
        .unwrap_or_else(|| panic!("the module's last log line was lost; captured:\n{logs}"));
    assert!(line.contains("last-words"), "{line}");
    drop(module);
}
