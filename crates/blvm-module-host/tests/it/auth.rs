//! Handshake authentication: token, pid, replay, liveness.

use blvm_module_host::ConnectionEvent;
use blvm_module_protocol::Permission::ReadChainState;
use blvm_sdk::{ModuleIntegration, SdkError};

use crate::support::{spec, wait_for, Host};

#[test]
fn wrong_token_is_refused() {
    let host = Host::start("bad-token");
    let module = host.spawn(spec("intruder", &[]), "events", &[("BLVM_MODULE_TOKEN", "00")]);
    let line = module.expect("REFUSED");
    assert!(line.starts_with("REFUSED bad_token"), "{line}");
    assert!(host.server.connection("intruder").is_none());
}

#[test]
fn correct_token_from_another_process_is_refused() {
    let host = Host::start("pid");
    let s = spec("victim", &[ReadChainState]);
    let ticket = host.server.expect_module(s.clone()).expect("ticket");
    // The node spawned "victim" as this decoy process...
    let mut decoy = std::process::Command::new("sleep").arg("60").spawn().expect("sleep");
    host.server.bind_pid("victim", decoy.id());
    // ...and another process that learned the token tries to use it.
    let thief = host.spawn_unbound(&s, &ticket.token, "denied", &[]);
    let line = thief.expect("REFUSED");
    assert!(line.starts_with("REFUSED pid_mismatch"), "{line}");
    let _ = decoy.kill();
    let _ = decoy.wait();
}

#[tokio::test(flavor = "current_thread")]
async fn second_connection_for_a_live_module_and_a_replayed_token_are_refused() {
    let host = Host::start("replay");
    let mut events = host.server.subscribe_connection_events();
    let token = host.expect_self(spec("solo", &[ReadChainState]));
    let sock = host.server.socket_path().to_path_buf();
    let first = ModuleIntegration::connect_with_token(&sock, "solo", "solo", "1.0.0", &token)
        .await
        .expect("first connection accepted");
    assert_eq!(first.node_api().get_block_height().await.expect("height"), 438);
    let second = ModuleIntegration::connect_with_token(&sock, "solo", "solo", "1.0.0", &token).await;
    assert!(
        matches!(second, Err(SdkError::Refused { ref code, .. }) if code == "already_connected"),
        "{second:?}"
    );
    // The live connection is unaffected.
    assert_eq!(first.node_api().get_block_height().await.expect("height"), 438);
    first.ipc().close();
    drop(first);
    wait_for(
        &mut events,
        |e| matches!(e, ConnectionEvent::Closed { module_id, .. } if module_id == "solo"),
    )
    .await;
    let replay = ModuleIntegration::connect_with_token(&sock, "solo", "solo", "1.0.0", &token).await;
    assert!(
        matches!(replay, Err(SdkError::Refused { ref code, .. }) if code == "token_replayed"),
        "{replay:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_peer_trickling_its_hello_is_cut_at_the_handshake_deadline() {
    use std::io::Write;
    let config = blvm_module_host::IpcServerConfig {
        handshake_timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let host = Host::start_with("trickle", config);
    let mut events = host.server.subscribe_connection_events();
    let mut stream = std::os::unix::net::UnixStream::connect(host.server.socket_path()).expect("connect");
    // A length prefix announcing a 200-byte hello, then one byte of it
    // at a time, each sent after waiting up to 100 ms for the node's
    // refusal: every read succeeds well within 500 ms, so only the overall
    // deadline can end it.
    stream.write_all(&[0, 0, 0, 200]).expect("prefix");
    let (refused_tx, refused_rx) = std::sync::mpsc::channel::<()>();
    let trickler = std::thread::spawn(move || {
        use std::sync::mpsc::RecvTimeoutError;
        for _ in 0..300 {
            if stream.write_all(&[0]).is_err() {
                return true;
            }
            match refused_rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Err(RecvTimeoutError::Timeout) => {}
                // Refused: the node has shut the socket, so this write fails.
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return stream.write_all(&[0]).is_err(),
            }
        }
        false
    });
    let refused = wait_for(&mut events, |e| matches!(e, ConnectionEvent::Refused { .. })).await;
    let _ = refused_tx.send(());
    assert!(
        matches!(&refused, ConnectionEvent::Refused { code, reason, .. } if code == "bad_handshake" && reason.contains("deadline")),
        "{refused:?}"
    );
    assert!(trickler.join().expect("trickler"), "the node closed the connection");
}

#[tokio::test(flavor = "current_thread")]
async fn connections_that_never_handshake_are_capped_per_process_and_modules_still_connect() {
    use blvm_module_protocol::Permission::SubscribeEvents;
    let host = Host::start("pending");
    let path = host.server.socket_path().to_path_buf();
    let mut events = host.server.subscribe_connection_events();
    let per_process = blvm_module_host::IpcServerConfig::default().max_pending_per_process;
    // This process holds its whole share of connections that never say hello.
    let mut idle: Vec<_> = (0..per_process)
        .map(|_| std::os::unix::net::UnixStream::connect(&path).expect("connect"))
        .collect();
    let over = ModuleIntegration::connect_with_token(&path, "late", "late", "1.0.0", "00").await;
    assert!(
        matches!(over, Err(SdkError::Refused { ref code, .. }) if code == "too_many_connections"),
        "{over:?}"
    );
    // A module (another process) is not held up by them.
    let module = host.spawn(
        spec("bystander", &[SubscribeEvents]),
        "events",
        &[("BLVM_TEST_EVENTS", "ModuleLoaded")],
    );
    assert!(module.expect("SUBSCRIBED").starts_with("SUBSCRIBED"));
    // Once the node has seen one of the idle connections go, this process
    // may try again (and is refused for its token, not for the count).
    drop(idle.pop());
    wait_for(
        &mut events,
        |e| matches!(e, ConnectionEvent::Refused { code, .. } if code == "bad_handshake"),
    )
    .await;
    let again = ModuleIntegration::connect_with_token(&path, "late", "late", "1.0.0", "00").await;
    assert!(
        matches!(again, Err(SdkError::Refused { ref code, .. }) if code == "bad_token"),
        "{again:?}"
    );
}
