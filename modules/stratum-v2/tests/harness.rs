//! stratum-v2 under the module test harness: it listens where its config
//! says, serves `stratumv2_status` (with help) over the node's JSON-RPC,
//! and a TCP peer that breaks the Noise transport
//! after the handshake is refused, counted and logged while the module
//! goes on serving. (Templates and mined blocks need a node with a miner:
//! `crates/blvm-node/tests/stratum_v2.rs` runs them against the Stratum V2
//! reference crates on the real node.)

use blvm_module_testkit::{free_port, ModuleTest};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_listens_serves_its_status_and_refuses_a_peer_that_breaks_the_noise_transport() {
    let listen = format!("127.0.0.1:{}", free_port());
    let test = ModuleTest::builder(
        env!("CARGO_BIN_EXE_stratum-v2"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/module.toml"),
    )
    .config(format!("listen = \"{listen}\"\n"))
    .start()
    .await
    .expect("stratum-v2 loads");
    let endpoint = test.rpc_endpoint("stratumv2_status").await;
    assert!(endpoint.help.starts_with("stratumv2_status\n\n"), "{}", endpoint.help);
    test.wait_for_request(|r| r.method == "subscribe_events").await;
    let before: Value = test.rpc("stratumv2_status", json!([])).await.expect("status");
    assert_eq!(before["listening"], json!(listen), "{before:#}");
    assert_eq!(before["network_access"], json!(true));
    assert_eq!(before["clients_refused"], json!(0));

    // A peer: a Noise NX first message (64 bytes: any 64 bytes are an
    // ElligatorSwift key), the provider's answer, then bytes that are no
    // encrypted frame.
    let mut peer = tokio::net::TcpStream::connect(&listen).await.expect("it listens");
    peer.write_all(&[7u8; 64]).await.expect("handshake sent");
    let mut answer = [0u8; 1];
    peer.read_exact(&mut answer)
        .await
        .expect("the provider answers the handshake");
    peer.write_all(&[0xff; 200]).await.expect("garbage sent");
    let mut rest = Vec::new();
    let _ = peer.read_to_end(&mut rest).await;
    let line = test.wait_for_log(|l| l.message == "client closed").await;
    assert!(line.fields.contains("reason="), "{line:?}");
    let after = test.rpc("stratumv2_status", json!([])).await.expect("status");
    assert_eq!(after["clients_refused"], json!(1), "{after:#}");
    assert_eq!(after["clients"], json!([]));
    test.finish().await;
}
