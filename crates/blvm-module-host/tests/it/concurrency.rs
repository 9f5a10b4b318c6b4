//! Many requests in flight on one connection, and node→module invocations
//! concurrent with module→node requests.

use std::time::Duration;

use blvm_module_protocol::events::{Event, NewBlock};
use blvm_module_protocol::frame::decode_body;
use blvm_module_protocol::methods::invocation::{ModuleCall, ModuleCallResult, MODULE_CALL};
use blvm_module_protocol::Permission::{ReadBlockchain, ReadChainState, SubscribeEvents};
use blvm_module_protocol::{ErrorCode, Hash32};

use crate::support::{spec, Host, DEADLINE};

#[test]
fn sixty_four_concurrent_requests_are_all_answered_while_events_flow() {
    let host = Host::start("concurrent");
    let mut busy = spec("busy", &[ReadBlockchain, SubscribeEvents]);
    // Room for every event, so the end marker cannot be dropped.
    busy.event_queue_capacity = 20 * 439 + 10;
    let module = host.spawn(busy, "concurrent", &[]);
    module.expect("READY");
    // Publish events from another thread for the whole time the requests
    // are in flight, then the end marker.
    let events = host.events.clone();
    let chain = host.chain.clone();
    let publisher = std::thread::spawn(move || {
        let mut published = 0u64;
        for _round in 0..20 {
            for height in 0..=438u64 {
                events.publish(&Event::from(NewBlock {
                    block_hash: chain.hash_at(height),
                    height,
                    header: chain.header_bytes(height),
                }));
                published += 1;
            }
        }
        published
    });
    let mut answered = 0;
    loop {
        let line = module.next_line("results");
        if line == "REQUESTS DONE" {
            break;
        }
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[0], "RESULT", "{line}");
        let height: u64 = parts[1].parse().expect("height");
        assert_eq!(parts[2], host.chain.hash_at(height).to_string(), "hash at {height}");
        assert_eq!(
            parts[3].parse::<usize>().expect("len"),
            host.chain.block_bytes(height).len()
        );
        answered += 1;
    }
    assert_eq!(answered, 64);
    publisher.join().expect("publisher");
    host.events.publish(&Event::from(NewBlock {
        block_hash: Hash32([0; 32]),
        height: u64::MAX,
        header: vec![0; 80],
    }));
    let line = module.expect("EVENTS");
    let received: u64 = line.split(' ').nth(1).and_then(|n| n.parse().ok()).expect("count");
    assert_eq!(received, 20 * 439 + 1, "{line}");
}

#[tokio::test(flavor = "current_thread")]
async fn node_invocation_and_module_request_are_in_flight_together() {
    let host = Host::start("invoke");
    let module = host.spawn(spec("callee", &[ReadChainState]), "invoke", &[]);
    module.expect("READY");
    let conn = host.server.connection("callee").expect("connected");
    for i in 0..3 {
        let call = ModuleCall {
            caller: "tester".into(),
            method: format!("height{i}"),
            params: vec![],
        };
        // The module asks the node for its height before it answers: the
        // invocation waits on a module→node request on the same socket.
        let raw = tokio::time::timeout(DEADLINE, conn.invoke(MODULE_CALL, &call))
            .await
            .expect("answer in time")
            .expect("module answered");
        let result: ModuleCallResult = decode_body("result", &raw).expect("decodes");
        assert_eq!(result.result, 438u64.to_be_bytes().to_vec());
        assert_eq!(module.expect("CALLED"), format!("CALLED tester height{i}"));
    }
    // An invocation method the module does not serve is an error answer.
    let err = conn
        .invoke("timer_fired", &blvm_module_protocol::Empty {})
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::MethodNotFound);
    // A module that dies fails what waits on it with a typed error.
    drop(module);
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        conn.invoke(
            MODULE_CALL,
            &ModuleCall {
                caller: "tester".into(),
                method: "late".into(),
                params: vec![],
            },
        ),
    )
    .await
    .expect("no hang");
    let code = err.unwrap_err().code;
    assert!(
        code == ErrorCode::ModuleCrashed || code == ErrorCode::ConnectionClosed,
        "{code}: a call made after the node saw the connection close is refused as closed"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_larger_than_the_socket_buffer_is_written_in_full() {
    use blvm_module_protocol::Permission::SendTransactions;
    let host = Host::start("large-request");
    let token = host.expect_self(spec("submitter", &[SendTransactions, ReadChainState]));
    let module = blvm_sdk::ModuleIntegration::connect_with_token(
        host.server.socket_path(),
        "submitter",
        "submitter",
        "1.0.0",
        &token,
    )
    .await
    .expect("connected");
    // A real 1.38 MB mainnet block: far more than a socket buffer holds,
    // so the SDK must wait for write space part-way through the frame.
    let (block, _) = blvm_testkit::block_702861();
    let err = tokio::time::timeout(DEADLINE, module.node_api().submit_block(block.to_vec()))
        .await
        .expect("answered in time")
        .expect_err("the in-memory chain has no miner");
    assert_eq!(
        err.remote().map(|e| e.code.clone()),
        Some(ErrorCode::Unavailable),
        "{err}"
    );
    // The connection is intact after it.
    assert_eq!(module.node_api().get_block_height().await.expect("height"), 438);
}
