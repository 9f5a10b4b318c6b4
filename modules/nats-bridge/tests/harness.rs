//! nats-bridge under the module test harness, with a real NATS server
//! (Debian's `nats-server -js`, installed by `.ci/run`) and a JetStream
//! consumer on the NATS maintainers' client: connected mainnet blocks
//! and a reorg reach the stream once each, in the durable path's order
//! (`ChainReorg`, `BlockDisconnected`, then the new branch), each with
//! its idempotency key as `Nats-Msg-Id`; the reconnected block, whose key
//! JetStream has already stored, is dropped by JetStream as a duplicate.

use std::process::{Child, Command, Stdio};

use blvm_module_testkit::{free_port, ModuleTest, DEADLINE};
use futures_util::StreamExt;
use serde_json::Value;

const INSTALL: &str = "apt-get install nats-server";

/// `nats-server -js` on the loopback, killed on drop.
struct NatsServer(Child);

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server; `None` (the test skipped) where it is not
/// installed, outside CI; in CI its absence fails the test.
fn nats_server(port: u16, store: &std::path::Path) -> Option<NatsServer> {
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "nats-server is missing ({e}): `{INSTALL}`"
            );
            eprintln!("skipping: nats-server is missing; `{INSTALL}`");
            return None;
        }
    };
    let stderr = child.stderr.take().expect("piped stderr");
    let server = NatsServer(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        // Read to the end, so the server never blocks on a full pipe.
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Server is ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(DEADLINE).expect("nats-server is ready in time");
    Some(server)
}

/// Every message of `stream`: `(subject, Nats-Msg-Id, body)`.
async fn consume(url: &str, stream: &str) -> Vec<(String, String, Value)> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.expect("the consumer connects"));
    let mut stream = js.get_stream(stream).await.expect("the stream exists");
    let stored = stream.info().await.expect("stream info").state.messages;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("a consumer");
    let mut messages = consumer
        .fetch()
        .max_messages(stored as usize)
        .expires(DEADLINE)
        .messages()
        .await
        .expect("fetch");
    let mut out = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.expect("a message");
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push((
            message.subject.to_string(),
            id,
            serde_json::from_slice(&message.payload).expect("a JSON body"),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_a_reorg_reach_jetstream_once_each_in_order_with_their_keys() {
    let store = std::env::temp_dir().join(format!("blvm-nats-harness-{}", std::process::id()));
    let port = free_port();
    let Some(_server) = nats_server(port, &store) else {
        return;
    };
    let url = format!("nats://127.0.0.1:{port}");
    let test = ModuleTest::builder(
        env!("CARGO_BIN_EXE_nats-bridge"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/module.toml"),
    )
    .tip(400)
    .config(format!(
        "url = \"{url}\"\nstream = \"HARNESS\"\nsubject_prefix = \"blvm\"\n"
    ))
    .start()
    .await
    .expect("nats-bridge loads");
    test.wait_for_log(|l| l.message.contains("resuming after durable event"))
        .await;

    let first = test.connect_block();
    let second = test.connect_block();
    test.wait_for_log(|l| {
        l.message
            .starts_with(&format!("published main:NewBlock:{}:", second.height))
    })
    .await;
    test.reorg(1).await;
    // The block reconnected carries the key JetStream stored already.
    let again = test
        .wait_for_log(|l| {
            l.message
                .starts_with(&format!("published main:NewBlock:{}:", second.height))
                && l.message.ends_with("duplicate=true")
        })
        .await;
    assert!(
        again.message.contains(&second.block_hash.to_string()),
        "{}",
        again.message
    );
    // Acknowledged to the node only after JetStream's answer: nothing is
    // left outstanding.
    let status = test.status();
    let feed = test
        .manager()
        .events()
        .durable(status.module_id.as_deref().expect("running"))
        .expect("a durable subscription");
    test.wait_for_requests(4, |r| r.method == "ack_events").await;
    assert_eq!(feed.status().sent.map(|p| p.height), Some(second.height));

    let stored = consume(&url, "HARNESS").await;
    let summary: Vec<(&str, &str)> = stored.iter().map(|(s, id, _)| (s.as_str(), id.as_str())).collect();
    let key = |event: &str, height: u64, hash: blvm_sdk::Hash32| format!("main:{event}:{height}:{hash}");
    assert_eq!(stored.len(), 4, "{summary:?}");
    assert_eq!(
        summary[0],
        (
            "blvm.NewBlock",
            key("NewBlock", first.height, first.block_hash).as_str()
        )
    );
    assert_eq!(
        summary[1],
        (
            "blvm.NewBlock",
            key("NewBlock", second.height, second.block_hash).as_str()
        )
    );
    assert_eq!(summary[2].0, "blvm.ChainReorg");
    assert_eq!(
        summary[3],
        (
            "blvm.BlockDisconnected",
            key("BlockDisconnected", second.height, second.block_hash).as_str()
        )
    );
    assert_eq!(stored[1].2["height"], second.height);
    assert_eq!(stored[1].2["hash"], second.block_hash.to_string());
    test.finish().await;
    let _ = std::fs::remove_dir_all(&store);
}
