//! Module storage with real module processes (`storage-module`, driven by
//! `module_call`): capabilities, quotas, atomic batches under SIGKILL,
//! isolation between modules, paging, and data that outlives reloads,
//! unloads and the node.

use std::time::Duration;

use blvm_module_host::api::events::Outbound;
use blvm_module_host::manager::{ManagerConfig, ModuleState, RestartPolicy};
use blvm_module_host::services::storage::StorageQuota;
use blvm_module_protocol::events::{Event, EventType};

use crate::support::{module_bin, module_call_text, start_manager, TestNode, DEADLINE};

/// Installs `storage-module` as `name` with the capabilities `caps` (TOML
/// strings) and `resources` (lines of a `[resources]` section).
fn install(node: &TestNode, name: &str, caps: &str, resources: &str) {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin("storage-module"), dir.join(name)).expect("copy binary");
    let manifest = format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{caps}]\n\n\
         [resources]\n{resources}\n"
    );
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
}

const ALL: &str = "\"read_storage\", \"write_storage\", \"manage_storage\"";

async fn node(tag: &str, configure: impl FnOnce(&mut ManagerConfig)) -> TestNode {
    TestNode::start(tag, |config| {
        config.restart = RestartPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            max_crashes: 5,
            window: Duration::from_secs(120),
        };
        configure(config);
    })
    .await
}

async fn call(node: &TestNode, name: &str, command: &str, args: &str) -> String {
    module_call_text(&node.manager, name, command, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_storage_capability_guards_its_methods_and_a_denial_keeps_the_connection() {
    let node = node("storage-caps", |_| {}).await;
    install(&node, "keeper", ALL, "");
    install(&node, "bare", "", "");
    install(&node, "reader", "\"read_storage\"", "");
    node.manager.auto_load_modules().await.expect("started");

    // With each capability, its methods work.
    assert_eq!(
        call(&node, "keeper", "put", "t a 1").await.split(' ').next(),
        Some("OK")
    );
    assert!(call(&node, "keeper", "get", "t a").await.starts_with("VALUE 1 "));
    assert_eq!(call(&node, "keeper", "trees", "").await, "TREES t");
    assert!(call(&node, "keeper", "usage", "").await.starts_with("USAGE 2 1 "));

    // Without, `permission_denied` naming the capability, and the
    // connection keeps serving the next request.
    assert_eq!(
        call(&node, "bare", "get", "t a").await,
        "ERR permission_denied read_storage"
    );
    assert_eq!(
        call(&node, "bare", "scan", "t 10").await,
        "ERR permission_denied read_storage"
    );
    assert_eq!(
        call(&node, "bare", "put", "t a 1").await,
        "ERR permission_denied write_storage"
    );
    assert_eq!(
        call(&node, "bare", "batch", "t 2 1").await,
        "ERR permission_denied write_storage"
    );
    assert_eq!(
        call(&node, "bare", "create", "t").await,
        "ERR permission_denied manage_storage"
    );
    assert_eq!(
        call(&node, "bare", "usage", "").await,
        "ERR permission_denied manage_storage"
    );
    // Reading alone does not allow writing or managing.
    assert_eq!(call(&node, "reader", "get", "t a").await, "NONE");
    assert_eq!(
        call(&node, "reader", "delete", "t a").await,
        "ERR permission_denied write_storage"
    );
    assert_eq!(
        call(&node, "reader", "trees", "").await,
        "ERR permission_denied manage_storage"
    );
    assert_eq!(call(&node, "reader", "get", "t a").await, "NONE");
    for name in ["bare", "reader"] {
        let status = node.manager.module_status(name).expect("status");
        assert_eq!(status.state, ModuleState::Running, "{name} still connected");
        assert_eq!(status.restarts, 0);
    }
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_data_survives_reload_unload_and_a_node_restart_until_the_operator_removes_it() {
    let node = node("storage-restart", |_| {}).await;
    install(&node, "keeper", ALL, "");
    node.manager.auto_load_modules().await.expect("started");
    assert_eq!(call(&node, "keeper", "put", "t a kept").await, "OK 1");

    node.manager.reload_module("keeper").await.expect("reloaded");
    assert_eq!(call(&node, "keeper", "get", "t a").await, "VALUE kept 1");

    // Unloaded, the data stays; the node shuts down and closes it.
    node.manager.unload_module("keeper").await.expect("unloaded");
    assert_eq!(node.manager.storage().usage("keeper").expect("usage").keys, 1);
    node.manager.shutdown().await;

    // A new node over the same data dir.
    let root = node.modules_dir.parent().expect("root").to_path_buf();
    let mut config = ManagerConfig::new(&node.modules_dir, &node.data_dir, root.join("sock2"));
    config.handshake_timeout = DEADLINE;
    config.sandbox.default_limits.disk_bytes = Some(16 << 20);
    let restarted = start_manager(&root.join("second"), config).await;
    restarted.auto_load_modules().await.expect("started again");
    let id = restarted.module_status("keeper").and_then(|s| s.module_id);
    assert!(id.is_some());
    assert_eq!(
        module_call_text(&restarted, "keeper", "get", "t a").await,
        "VALUE kept 1"
    );
    // Its generation continues where it was: never reused.
    assert_eq!(module_call_text(&restarted, "keeper", "put", "t a again").await, "OK 2");
    let status = restarted.module_status("keeper").expect("status");
    let usage = status.storage.expect("status shows storage");
    assert_eq!((usage.bytes, usage.keys), (6, 1));

    // The operator's removal: refused while loaded, then everything goes.
    assert!(restarted.remove_storage("keeper").is_err());
    restarted.unload_module("keeper").await.expect("unloaded");
    assert!(restarted.remove_storage("keeper").expect("removed"));
    assert_eq!(restarted.storage().usage("keeper").expect("usage").keys, 0);
    assert!(!restarted.remove_storage("keeper").expect("nothing left"));
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_past_the_quota_answers_quota_exceeded_and_writes_nothing() {
    let node = node("storage-quota", |config| {
        config.storage.default_quota = StorageQuota {
            max_bytes: 10_000,
            max_keys: 1_000,
        };
    })
    .await;
    // The manifest asks for fewer keys than the operator allows.
    install(&node, "keeper", ALL, "storage_keys = 5");
    let (_tx, observer) = node.manager.events().register("observer", "observer", "0.0.0", 10_000);
    node.manager.events().subscribe("observer", &[EventType::StorageWrite]);
    node.manager.auto_load_modules().await.expect("started");

    assert_eq!(
        call(&node, "keeper", "fill", "t 10 10").await,
        "ERR quota_exceeded AT 5"
    );
    assert_eq!(call(&node, "keeper", "usage", "").await, "USAGE 80 5 10000 5");
    // A batch that would pass it writes none of its keys.
    assert_eq!(call(&node, "keeper", "batch", "u 3 1").await, "ERR quota_exceeded ");
    assert_eq!(call(&node, "keeper", "scan", "u 10").await, "PAGES 1 KEYS ");
    // Nor does a value past the byte quota; overwriting stays allowed.
    assert_eq!(
        call(&node, "keeper", "fill", "t 1 12000").await,
        "ERR quota_exceeded AT 0"
    );
    assert_eq!(call(&node, "keeper", "get", "t k00000").await, "VALUE vvvvvvvvvv 1");
    assert_eq!(call(&node, "keeper", "fill", "t 1 100").await, "OK 1");
    assert_eq!(call(&node, "keeper", "usage", "").await, "USAGE 170 5 10000 5");
    let status = node.manager.module_status("keeper").expect("status");
    let usage = status.storage.expect("status shows storage");
    assert_eq!((usage.max_bytes, usage.max_keys), (10_000, 5));

    // The writes that happened were announced as StorageWrite.
    let deadline = std::time::Instant::now() + DEADLINE;
    let event = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match observer.recv_timeout(left).expect("a StorageWrite event") {
            Outbound::Event(q) if q.event.name == "StorageWrite" => {
                break Event::decode(&q.event.name, &q.event.payload).expect("decodes")
            }
            _ => {}
        }
    };
    let Event::StorageWrite(w) = event else {
        panic!("{event:?}")
    };
    assert_eq!((w.operation.as_str(), w.bytes_written), ("insert", 16));
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_all_or_nothing_when_the_module_is_killed_mid_batch() {
    let node = node("storage-kill", |_| {}).await;
    install(&node, "keeper", ALL, "");
    node.manager.auto_load_modules().await.expect("started");
    let first = node.manager.module_status("keeper").and_then(|s| s.module_id);

    // 4000 puts of 500 bytes: a frame of 2 MB, still being written when
    // the module SIGKILLs itself. The invocation gets no answer.
    let _ = crate::support::module_call(&node.manager, "keeper", "batch-die", b"t 4000 500").await;
    let restarted = node
        .manager
        .wait_for("keeper", DEADLINE, |s| {
            s.state == ModuleState::Running && s.module_id != first && s.restarts == 1
        })
        .await
        .expect("restarted after its SIGKILL");
    let keys = node.manager.storage().usage("keeper").expect("usage").keys;
    assert!(
        keys == 0 || keys == 4000,
        "a torn batch: {keys} of 4000 keys ({restarted:?})"
    );
    eprintln!("the killed batch left {keys} of 4000 keys");

    // The same batch, answered: all of it.
    assert_eq!(call(&node, "keeper", "batch", "t 4000 500").await, "APPLIED");
    let usage = node.manager.storage().usage("keeper").expect("usage");
    assert_eq!((usage.keys, usage.bytes), (4000, 4000 * 506));
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_modules_never_see_each_others_trees_and_compare_and_swap_checks_generations() {
    let node = node("storage-isolation", |_| {}).await;
    install(&node, "alice", ALL, "");
    install(&node, "bob", ALL, "");
    node.manager.auto_load_modules().await.expect("started");

    assert_eq!(call(&node, "alice", "put", "secrets key alice").await, "OK 1");
    assert_eq!(call(&node, "bob", "get", "secrets key").await, "NONE");
    assert_eq!(call(&node, "bob", "trees", "").await, "TREES ");
    assert_eq!(call(&node, "bob", "put", "secrets key bob").await, "OK 1");
    assert_eq!(call(&node, "alice", "get", "secrets key").await, "VALUE alice 1");
    assert_eq!(call(&node, "bob", "drop", "secrets").await, "OK true");
    assert_eq!(call(&node, "alice", "get", "secrets key").await, "VALUE alice 1");

    // Compare-and-swap: 0 means "absent"; a stale generation writes nothing.
    assert_eq!(call(&node, "alice", "cas", "t k 0 first").await, "APPLIED 2");
    assert_eq!(call(&node, "alice", "cas", "t k 0 again").await, "CONFLICT [0]");
    assert_eq!(call(&node, "alice", "cas", "t k 1 stale").await, "CONFLICT [0]");
    assert_eq!(call(&node, "alice", "cas", "t k 2 second").await, "APPLIED 3");
    assert_eq!(call(&node, "alice", "get", "t k").await, "VALUE second 3");
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_with_a_limit_and_a_cursor_pages_through_every_key_once() {
    let node = node("storage-scan", |_| {}).await;
    install(&node, "keeper", ALL, "");
    node.manager.auto_load_modules().await.expect("started");
    assert_eq!(call(&node, "keeper", "fill", "t 25 3").await, "OK 25");
    assert_eq!(call(&node, "keeper", "put", "t a-first x").await, "OK 26");
    assert_eq!(call(&node, "keeper", "put", "t z-last x").await, "OK 27");

    let every: Vec<String> = (0..25).map(|i| format!("k{i:05}")).collect();
    // By prefix: 10 + 10 + 5, in order, each once.
    assert_eq!(
        call(&node, "keeper", "scan", "t 10 k").await,
        format!("PAGES 3 KEYS {}", every.join(","))
    );
    // The whole tree, 7 at a time.
    let all = format!("a-first,{},z-last", every.join(","));
    assert_eq!(
        call(&node, "keeper", "scan", "t 7").await,
        format!("PAGES 4 KEYS {all}")
    );
    node.manager.shutdown().await;
}
