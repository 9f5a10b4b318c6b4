//! The free-space warning of a real node (issue 8, item 4, node side):
//! with the threshold above the free space of the test's file system, the
//! node's watch logs a warning, a module subscribed to `DiskSpaceLow` gets
//! it once for the crossing, and `getblockchaininfo` lists it in
//! `warnings`.

mod harness;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use blvm_module_protocol::events::{self as ev};
use blvm_node::cli::RpcClient;
use blvm_node::config::{DiskSettings, NodeConfig, Settings};
use blvm_node::node::{register_methods, Node, NodeBackendImpl};
use blvm_node::rpc::{MethodTable, RpcAuth, RpcServer};
use serde_json::json;

/// Everything logged through `tracing` in this test binary.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    static INSTALL: OnceLock<()> = OnceLock::new();
    struct Capture;
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LOGS.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    INSTALL.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(|| Capture)
            .try_init();
    });
    &LOGS
}

/// The test's directory, removed at the end.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The recorder module's binary, built once.
fn recorder_bin() -> PathBuf {
    harness::bins().join("recorder-module")
}

/// Asks the recorder for `method` with text `arg`; its text answer.
async fn recorder(node: &Node, method: &str, arg: &str) -> String {
    harness::module_call(node, "recorder", method, arg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_space_below_the_threshold_is_logged_published_once_to_a_subscribed_module_and_in_status() {
    let logs = logs();
    let dir = TempDir(std::env::temp_dir().join(format!("blvm-node-disk-{}", std::process::id())));
    let datadir = dir.0.join("data");
    let modules = datadir.join("modules").join("recorder");
    std::fs::create_dir_all(&modules).expect("module dir");
    std::fs::copy(recorder_bin(), modules.join("recorder")).expect("binary");
    std::fs::write(
        modules.join("module.toml"),
        "name = \"recorder\"\nversion = \"1.0.0\"\nentry_point = \"recorder\"\ncapabilities = [\"subscribe_events\"]\n",
    )
    .expect("manifest");
    std::fs::write(modules.join("config.toml"), "events = \"DiskSpaceLow,HealthCheck\"\n").expect("config");

    // Every file system has less than 100% free: the threshold is above
    // the free space, whatever the machine.
    let settings = Settings {
        network: Some("regtest".into()),
        datadir: Some(datadir.clone()),
        rpcport: Some(0),
        block_interval: Some(0),
        disk: DiskSettings {
            check_interval_secs: Some(1),
            warn_free_percent: Some(100.0),
            warn_free_mb: None,
        },
        ..Settings::default()
    };
    let node = Node::open(NodeConfig::resolve(settings).expect("config")).expect("node opens");
    node.manager
        .start(datadir.join("sockets/node.sock"), Arc::new(NodeBackendImpl::new(&node)))
        .await
        .expect("manager");
    let report = node.manager.auto_load_modules().await.expect("loads");
    assert_eq!(report.loaded, ["recorder"], "{report:?}");

    // The recorder serves calls only once its subscription is answered:
    // an answer means `DiskSpaceLow` reaches it from now on.
    assert_eq!(recorder(&node, "report", "").await, "", "nothing seen yet");
    // The watch, as the node's main command starts it.
    let watch = node.spawn_disk_watch();
    let line = recorder(&node, "wait", "DiskSpaceLow").await;
    assert!(line.contains(" DiskSpaceLow "), "{line}");
    // Logged before it was published.
    let text = String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let warning = text
        .lines()
        .find(|l| l.contains("WARN") && l.contains("disk space low"))
        .unwrap_or_else(|| panic!("no warning logged:\n{text}"));
    assert!(
        warning.contains(&datadir.join("chain").display().to_string()),
        "{warning}"
    );

    // More readings of the same low file system publish nothing more: a
    // marker published after them is the next event the module sees.
    for _ in 0..3 {
        let n = Arc::clone(&node);
        tokio::task::spawn_blocking(move || n.check_disk_space())
            .await
            .expect("check");
    }
    node.publish(ev::HealthCheck {
        check_type: "marker".into(),
        node_healthy: true,
        health_report: None,
    });
    recorder(&node, "wait", "HealthCheck").await;
    let seen = recorder(&node, "report", "").await;
    assert_eq!(seen.matches("DiskSpaceLow").count(), 1, "once per crossing:\n{seen}");
    let text = String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert_eq!(
        text.lines().filter(|l| l.contains("disk space low")).count(),
        1,
        "logged once per crossing:\n{text}"
    );

    // The node's status says so.
    let table = MethodTable::new();
    register_methods(&table, &node);
    let auth = RpcAuth {
        user_pass: Some(("u".into(), "p".into())),
        cookie: None,
    };
    let rpc = RpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), auth, Arc::new(table)).expect("rpc");
    let client = RpcClient::new(rpc.local_addr(), "u", "p");
    let info = tokio::task::spawn_blocking(move || client.call("getblockchaininfo", json!([])))
        .await
        .expect("rpc thread")
        .expect("getblockchaininfo");
    let warnings = info["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.starts_with("disk space low"))),
        "{info}"
    );

    watch.abort();
    rpc.shutdown().await;
    node.manager.shutdown().await;
}
