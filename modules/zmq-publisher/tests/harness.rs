//! zmq-publisher under the module test harness, with a real ZeroMQ
//! subscriber (the `zeromq` crate's SUB socket): a connected mainnet
//! block as `sequence` `C`, `hashblock` and `rawblock`, byte for byte as
//! Bitcoin Core sends them, each topic's counter going up by one; a reorg
//! as `D` then the block again; and every block acknowledged on the
//! durable path.

use std::time::Duration;

use blvm_module_testkit::{free_port, ModuleTest, DEADLINE};
use zeromq::{Socket, SocketRecv, SubSocket};

/// One ZMQ notification: topic, body, the topic's counter.
#[derive(Debug, PartialEq)]
struct Note {
    topic: String,
    body: Vec<u8>,
    seq: u32,
}

async fn next(socket: &mut SubSocket, within: Duration) -> Option<Note> {
    let msg = tokio::time::timeout(within, socket.recv())
        .await
        .ok()?
        .expect("a ZMQ message");
    let parts = msg.into_vec();
    assert_eq!(parts.len(), 3, "topic, body, sequence: {parts:?}");
    Some(Note {
        topic: String::from_utf8(parts[0].to_vec()).expect("a topic"),
        body: parts[1].to_vec(),
        seq: u32::from_le_bytes(parts[2][..].try_into().expect("4 bytes")),
    })
}

/// A block hash as Core's ZMQ bodies carry it: display order.
fn display_order(hash: blvm_sdk::Hash32) -> Vec<u8> {
    hash.0.iter().rev().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_block_and_a_reorg_reach_a_zmq_subscriber_as_bitcoin_core_sends_them() {
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let test = ModuleTest::builder(
        env!("CARGO_BIN_EXE_zmq-publisher"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/module.toml"),
    )
    .tip(400)
    .config(format!(
        "pubhashblock = \"{endpoint}\"\npubrawblock = \"{endpoint}\"\npubsequence = \"{endpoint}\"\n"
    ))
    .start()
    .await
    .expect("zmq-publisher loads");
    test.wait_for_request(|r| r.method == "subscribe_durable").await;
    test.wait_for_log(|l| l.message.contains("publishing hashblock on"))
        .await;

    let mut socket = SubSocket::new();
    socket.connect(&endpoint).await.expect("the subscriber connects");
    socket.subscribe("").await.expect("subscribed");
    // A PUB socket drops what it sends before the subscription reaches it
    // (ZeroMQ's slow joiner): connect blocks until one is heard; from then
    // on nothing may be missing.
    let mut first = None;
    while first.is_none() {
        assert!(
            test.chain().tip_height() < 430,
            "the subscriber heard nothing of 30 blocks"
        );
        test.connect_block();
        first = next(&mut socket, Duration::from_millis(500)).await;
    }
    // Drain the rest of that block's notifications.
    while next(&mut socket, Duration::from_millis(200)).await.is_some() {}

    let block = test.connect_block();
    let raw = test.chain().block_bytes(block.height);
    let hash = display_order(block.block_hash);
    let mut notes = Vec::new();
    for _ in 0..3 {
        notes.push(next(&mut socket, DEADLINE).await.expect("a notification of the block"));
    }
    let topics: Vec<&str> = notes.iter().map(|n| n.topic.as_str()).collect();
    assert_eq!(topics, ["sequence", "hashblock", "rawblock"]);
    assert_eq!(notes[0].body, [hash.clone(), b"C".to_vec()].concat());
    assert_eq!(notes[1].body, hash);
    assert_eq!(notes[2].body, raw, "rawblock is the block's consensus bytes");

    // A reorg of that block: `D`, then it is connected again; each
    // topic's counter goes up by one per message.
    test.reorg(1).await;
    let mut after = Vec::new();
    for _ in 0..4 {
        after.push(next(&mut socket, DEADLINE).await.expect("a notification of the reorg"));
    }
    let topics: Vec<&str> = after.iter().map(|n| n.topic.as_str()).collect();
    assert_eq!(topics, ["sequence", "sequence", "hashblock", "rawblock"]);
    assert_eq!(after[0].body, [hash.clone(), b"D".to_vec()].concat());
    assert_eq!(after[1].body, [hash.clone(), b"C".to_vec()].concat());
    assert_eq!(after[0].seq, notes[0].seq + 1);
    assert_eq!(after[1].seq, notes[0].seq + 2);
    assert_eq!(after[2].seq, notes[1].seq + 1);
    assert_eq!(after[3].body, raw);

    // Each block is acknowledged once its messages are sent.
    test.wait_for_request(|r| r.method == "ack_events").await;
    test.finish().await;
}
