//! The nats-bridge module against a real NATS server with JetStream
//! (Debian's `nats-server`, installed by `.ci/run`) and a JetStream
//! consumer on the NATS maintainers' client: every block reaches the
//! stream exactly once and in order, across a restart of the NATS server
//! while blocks are mined, a `kill -9` of the bridge during a burst of
//! blocks, and an exit of the bridge between JetStream's acknowledgement
//! and the node's (the redelivery JetStream drops by its `Nats-Msg-Id`).

mod harness;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use blvm_node::cli::RpcClient;
use futures_util::StreamExt;
use harness::{bins, free_port, mine_to, temp_dir, NodeProcess, DEADLINE, OP_TRUE_ADDRESS};
use serde_json::{json, Value};

const INSTALL: &str = "apt-get install nats-server";

/// A `nats-server -js` on the loopback, its store in a directory kept
/// across restarts.
struct NatsServer {
    child: Child,
}

impl NatsServer {
    /// Starts the server on `port` with its JetStream store in `store`;
    /// returns once it says it is ready.
    fn start(port: u16, store: &Path) -> NatsServer {
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server runs");
        let lines: Receiver<String> = harness::lines_of(child.stderr.take().expect("stderr"));
        loop {
            let line = lines
                .recv_timeout(DEADLINE)
                .unwrap_or_else(|_| panic!("nats-server not ready within {DEADLINE:?}"));
            if line.contains("Server is ready") {
                break;
            }
        }
        // Its later lines are read (and dropped) so it never blocks on a
        // full pipe.
        std::thread::spawn(move || for _ in lines {});
        NatsServer { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `nats-server` is here; outside CI its absence skips the test,
/// in CI it fails it.
fn have_nats_server() -> bool {
    let present = Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-server is missing: run .ci/run's install step, `{INSTALL}`"
        );
        eprintln!("skipping the NATS test: install nats-server with `{INSTALL}`");
    }
    present
}

fn mine(rpc: &RpcClient, n: u32) -> Vec<String> {
    mine_to(rpc, n, OP_TRUE_ADDRESS)
}

/// Waits until the bridge says it published block `height`'s `NewBlock`.
fn wait_published(node: &mut NodeProcess, height: u64) -> String {
    let needle = format!("published regtest:NewBlock:{height}:");
    node.wait_line(&format!("nats-bridge publishing block {height}"), |l| {
        l.contains(&needle)
    })
}

/// The height in the bridge's `resuming after durable event N (height H)`.
fn resumed_height(line: &str) -> u64 {
    line.split("(height ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("no height in {line:?}"))
}

/// Every message of `stream` on the server at `url`, through a pull
/// consumer from the first: `(subject, Nats-Msg-Id, body)`.
async fn consume(url: &str, stream: &str) -> Vec<(String, String, Value)> {
    let client = async_nats::connect(url).await.expect("the consumer connects");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(stream).await.expect("the stream exists");
    let stored = stream.get_info().await.expect("stream info").state.messages;
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
        let body: Value = serde_json::from_slice(&message.payload).expect("a JSON body");
        out.push((message.subject.to_string(), id, body));
        message.ack().await.expect("acked");
    }
    out
}

#[test]
fn a_jetstream_consumer_sees_every_block_once_in_order_across_a_nats_restart_and_a_kill_of_the_bridge() {
    if !have_nats_server() {
        return;
    }
    let dir = temp_dir("nats");
    let port = free_port();
    let store = dir.join("jetstream");
    let mut nats = NatsServer::start(port, &store);
    let url = format!("nats://127.0.0.1:{port}");

    let module = dir.join("modules/nats-bridge");
    std::fs::create_dir_all(&module).expect("module dir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules/nats-bridge");
    std::fs::copy(source.join("module.toml"), module.join("module.toml")).expect("manifest");
    std::fs::copy(bins().join("nats-bridge"), module.join("nats-bridge")).expect("binary");
    let conf = format!(
        "block_interval = 0\n[supervision]\nrestart_backoff_ms = 50\n\
         [modules.nats-bridge]\nurl = \"{url}\"\nstream = \"BLOCKS\"\nsubject_prefix = \"blvm\"\n\
         exit_after_publish_at = \"30\"\n\
         [sandbox]\ndisk_mb = 8\n"
    );
    let mut node = NodeProcess::start(&dir, &conf);
    let addr = node.rpc_addr();
    let rpc = RpcClient::from_cookie(addr, &dir.join(".cookie")).expect("cookie");
    node.wait_line("the bridge subscribing", |l| {
        l.contains("resuming after durable event 0")
    });

    let mut hashes = mine(&rpc, 3);
    wait_published(&mut node, 3);

    // The NATS server goes away while blocks are mined, and comes back.
    nats.kill();
    hashes.extend(mine(&rpc, 3));
    node.wait_line("the bridge failing to publish", |l| {
        l.contains("JetStream did not store") || l.contains("cannot connect")
    });
    let mut nats = NatsServer::start(port, &store);
    wait_published(&mut node, 6);

    // A burst of blocks, and the bridge killed while it publishes them.
    hashes.extend(mine(&rpc, 20));
    wait_published(&mut node, 8);
    let status = rpc.call("getmodulestatus", json!(["nats-bridge"])).expect("status");
    let pid = status["pid"].as_u64().expect("the bridge's pid");
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let resumed = node.wait_line("the bridge resuming", |l| {
        l.contains("resuming after durable event") && !l.contains("durable event 0 ")
    });
    // The bridge prints `published` after its ack to the node, so a kill
    // between the two leaves the last block acked with no line: the resume
    // point says it is in the stream already.
    if resumed_height(&resumed) < 26 {
        wait_published(&mut node, 26);
    }

    // More blocks; the bridge exits once JetStream stored block 30, before
    // the node's ack, and is restarted by the node.
    hashes.extend(mine(&rpc, 10));
    wait_published(&mut node, 36);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let messages =
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(60), consume(&url, "BLOCKS")).await });
    let messages = messages.expect("the consumer read the stream");
    let blocks: Vec<(u64, String)> = messages
        .iter()
        .map(|(subject, id, body)| {
            assert_eq!(subject, "blvm.NewBlock");
            let height = body["height"].as_u64().expect("height");
            let hash = body["hash"].as_str().expect("hash").to_owned();
            assert_eq!(id, &format!("regtest:NewBlock:{height}:{hash}"));
            (height, hash)
        })
        .collect();
    let want: Vec<(u64, String)> = (1..=36u64).zip(hashes.iter().cloned()).collect();
    assert_eq!(blocks, want, "every block once, in order, with the node's hashes");
    // Block 30 was stored, the bridge exited before the node's ack, and
    // its redelivery was recognised by its Nats-Msg-Id.
    let said = node.module_said("nats-bridge", "");
    assert!(
        said.iter().any(|l| l.starts_with("stored regtest:NewBlock:30:")),
        "{said:?}"
    );
    let again: Vec<&String> = said
        .iter()
        .filter(|l| l.starts_with("published regtest:NewBlock:30:"))
        .collect();
    assert_eq!(again.len(), 1, "{said:?}");
    assert!(again[0].ends_with("duplicate=true"), "{}", again[0]);
    let duplicates = said.iter().filter(|l| l.ends_with("duplicate=true")).count();
    eprintln!("redeliveries JetStream recognised as duplicates: {duplicates}");
    nats.kill();
    node.stop();
}
