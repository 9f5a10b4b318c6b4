//! Every event the node publishes itself, received by a real module
//! process: startup (also when the module subscribes after it), health
//! checks, maintenance, shutdown, import progress; and what the node
//! reports about itself and its modules (`is_synced`, the operator's
//! capability allow-list, queue and restart settings).
//!
//! Tests that need the node's own main loop (timers, signals, shutdown)
//! run the `blvm-node` binary and read what the recorder module printed
//! from the node's log; the others run the node in the test's runtime and
//! ask the recorder with `module_call`.

mod harness;

use std::time::Instant;

use blvm_module_host::NodeBackend;
use blvm_node::chain::ChainOptions;
use blvm_node::config::{NodeConfig, Settings};
use harness::{install_recorder, settings, temp_dir, NodeProcess, Running};
use serde_json::json;

fn node_config(dir: &std::path::Path, network: &str, file: &str) -> NodeConfig {
    let file: Settings = toml::from_str(file).expect("config file");
    let mut cfg = NodeConfig::resolve(settings(dir, network).or(file)).expect("config");
    cfg.modules_dir = dir.join("modules");
    cfg
}

/// A module loaded at start that subscribes only once it is ready (it
/// opened its database first), after the node announced its startup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_events_reach_a_module_whose_first_subscription_comes_after_the_node_announced_them() {
    let dir = temp_dir("late-first");
    install_recorder(&dir.join("modules"), "recorder", "\"subscribe_events\"", "");
    let node = Running::start(node_config(&dir, "regtest", ""), ChainOptions::default()).await;
    let started = Instant::now();
    let report = node.node.manager.auto_load_modules().await.expect("modules");
    assert_eq!(report.loaded, vec!["recorder".to_string()], "{report:?}");
    // What blvm-node does once the modules found at start are loaded.
    node.node.announce_startup(started);
    let answer = node
        .module_call("recorder", "subscribe", "ConfigLoaded,NodeStartupCompleted")
        .await;
    assert!(answer.starts_with("SUBSCRIBED"), "{answer}");
    node.wait_recorded("recorder", " NodeStartupCompleted ").await;
    let seen = node.recorded("recorder").await;
    assert_eq!(
        seen.iter()
            .map(|l| l.split(' ').next().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["ConfigLoaded", "NodeStartupCompleted"],
        "{seen:#?}"
    );
    assert_eq!(seen[0], "ConfigLoaded reload=false network,rpc,modules,mining");
    assert!(seen[1].ends_with(" chain,mempool,miner,rpc,modules"), "{seen:#?}");
    node.stop().await;
}

/// The same with `blvm-node` itself and a second subscription: the
/// recorder subscribes to `NewBlock` first, and to the startup events once
/// the first timer block (which comes after the startup) has reached it.
/// Each arrives once; `blvm-node module status` shows what it asked for
/// and what it got.
#[test]
fn startup_events_reach_a_module_of_blvm_node_that_subscribes_to_them_after_its_first_block() {
    let dir = temp_dir("late-second");
    install_recorder(
        &dir.join("modules"),
        "recorder",
        "\"subscribe_events\", \"read_blockchain\", \"read_mempool\"",
        "events = \"NewBlock\"\nthen = \"ConfigLoaded,NodeStartupCompleted\"\n",
    );
    let conf = "block_interval = 1\n[modules]\ncapabilities = [\"subscribe_events\", \"read_blockchain\"]\n\
                [sandbox]\ndisk_mb = 8\n";
    let mut node = NodeProcess::start(&dir, conf);
    for event in ["ConfigLoaded", "NodeStartupCompleted"] {
        node.wait_line(&format!("recorded … {event}"), |l| {
            l.contains("recorded ") && l.contains(&format!(" {event} "))
        });
    }
    let port = node.rpc_addr().port().to_string();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_blvm-node"))
        .arg("--datadir")
        .arg(&*dir)
        .arg("--conf")
        .arg(dir.join("blvm.toml"))
        .args(["--rpcport", &port, "module", "status", "recorder"])
        .output()
        .expect("blvm-node module status");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    node.stop();
    let recorded = node.module_said("recorder", "recorded ");
    assert!(recorded[0].contains(" NewBlock "), "{recorded:#?}");
    for event in ["ConfigLoaded", "NodeStartupCompleted"] {
        let n = recorded.iter().filter(|l| l.contains(&format!(" {event} "))).count();
        assert_eq!(n, 1, "{event} received {n} times: {recorded:#?}");
    }
    assert_eq!(
        (&status["requested_capabilities"], &status["capabilities"]),
        (
            &json!(["read_blockchain", "subscribe_events", "read_mempool"]),
            &json!(["read_blockchain", "subscribe_events"])
        ),
        "{status}"
    );
}

/// `[maintenance] health_interval`: a `HealthCheck` at start, then every
/// interval; the second one proves the interval is the configured second,
/// not the default minute.
#[test]
fn health_check_events_reach_a_subscribed_module_every_configured_interval() {
    let dir = temp_dir("health");
    install_recorder(
        &dir.join("modules"),
        "recorder",
        "\"subscribe_events\"",
        "events = \"HealthCheck\"\n",
    );
    let mut node = NodeProcess::start(&dir, "[maintenance]\nhealth_interval = 1\n[sandbox]\ndisk_mb = 8\n");
    node.wait_line("a first HealthCheck recorded", |l| {
        l.contains("recorded ") && l.contains(" HealthCheck ")
    });
    node.wait_line("a second HealthCheck recorded", |l| {
        l.contains("recorded ") && l.contains(" HealthCheck ") && !l.contains("recorded 1 ")
    });
    node.stop();
    let checks = node.module_said("recorder", "recorded ");
    assert!(checks.len() >= 2, "{checks:#?}");
    assert!(
        checks.iter().all(|l| l.ends_with("HealthCheck periodic true")),
        "{checks:#?}"
    );
}

/// `[maintenance] utxo_audit_interval`: the audit runs at start, then every
/// interval, each between `MaintenanceStarted` and `MaintenanceCompleted`.
#[test]
fn utxo_audit_reaches_a_subscribed_module_as_maintenance_started_then_completed() {
    let dir = temp_dir("audit");
    install_recorder(
        &dir.join("modules"),
        "recorder",
        "\"subscribe_events\"",
        "events = \"MaintenanceStarted,MaintenanceCompleted\"\n",
    );
    let mut node = NodeProcess::start(
        &dir,
        "[maintenance]\nutxo_audit_interval = 1\nhealth_interval = 0\n[sandbox]\ndisk_mb = 8\n",
    );
    // Two audits: the second comes from the interval (the first may have
    // run before the module subscribed).
    let completed = |l: &str| l.contains("recorded ") && l.contains(" MaintenanceCompleted utxo_audit true");
    node.wait_line("an audit completed", completed);
    node.wait_line("a second audit completed", move |l| {
        completed(l) && !l.contains("recorded 2 ")
    });
    node.stop();
    let said = node.module_said("recorder", "recorded ");
    let kinds: Vec<&str> = said.iter().filter_map(|l| l.split(' ').nth(2)).collect();
    let first = kinds.iter().position(|k| *k == "MaintenanceStarted").expect("started");
    for pair in kinds[first..].chunks(2) {
        if pair.len() == 2 {
            assert_eq!(pair, ["MaintenanceStarted", "MaintenanceCompleted"], "{said:#?}");
        }
    }
}

/// Shutdown: `NodeShutdown` (with the 5 s grace as `timeout_ms`) and
/// `DataMaintenance` reach the module before its `shutdown`;
/// `NodeShutdownCompleted` comes after every module is unloaded, so no
/// module receives it, and the node's last line gives its duration.
#[test]
fn shutdown_events_reach_a_module_before_its_shutdown_and_completion_comes_after_every_module_is_gone() {
    let dir = temp_dir("shutdown");
    install_recorder(
        &dir.join("modules"),
        "recorder",
        "\"subscribe_events\"",
        // ConfigLoaded comes to every subscription (it is replayed), so the
        // shutdown events are subscribed to before the test stops the node.
        "events = \"ConfigLoaded\"\nthen = \"NodeShutdown,DataMaintenance,NodeShutdownCompleted\"\n",
    );
    let mut node = NodeProcess::start(&dir, "[sandbox]\ndisk_mb = 8\n");
    node.wait_line("the recorder's second subscription", |l| l.contains("then SUBSCRIBED"));
    node.stop();
    let said = node.module_said("recorder", "");
    let events: Vec<String> = said
        .iter()
        .filter(|l| l.starts_with("recorded ") || l.starts_with("shutdown "))
        .map(|l| {
            // `recorded <seq> <event>` without its seq.
            l.strip_prefix("recorded ")
                .and_then(|r| r.split_once(' '))
                .map_or(l.clone(), |(_, e)| e.to_owned())
        })
        .collect();
    assert_eq!(
        events,
        [
            "ConfigLoaded reload=false network,rpc,modules,mining",
            "NodeShutdown requested 5000",
            "DataMaintenance flush high Some(5000)",
            "shutdown node_shutdown",
        ],
        "the node's log:\n{}",
        node.log.join("\n")
    );
    let last = node
        .log
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("a last line");
    assert!(last.contains("blvm-node stopped"), "{last}");
    let took: u64 = last
        .split("shutdown_ms=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no shutdown_ms in {last}"));
    // The duration covers the modules' unload: at least from the module
    // having received NodeShutdown to its stop, by the log's own clock.
    let at = |what: &str| {
        let line = node.log.iter().find(|l| l.contains(what)).expect(what);
        log_time(line)
    };
    let floor = (at("module stopped (exit status 0)") - at("recorded 2 NodeShutdown")) * 1000.0;
    assert!(
        took as f64 >= floor.floor(),
        "shutdown_ms={took}, but the module stopped {floor:.3} ms after it received NodeShutdown"
    );
}

/// Seconds since midnight of a log line's timestamp
/// (`2026-12-02T04:45:55.631153Z  INFO …`).
fn log_time(line: &str) -> f64 {
    let time = line
        .split_whitespace()
        .next()
        .and_then(|t| t.split_once('T'))
        .map(|(_, t)| t.trim_end_matches('Z'))
        .unwrap_or_else(|| panic!("no timestamp in {line}"));
    time.split(':')
        .map(|part| part.parse::<f64>().expect("a number"))
        .fold(0.0, |acc, v| acc * 60.0 + v)
}

/// An import publishes `BlockSyncStarted`, `BlockSyncProgress` and
/// `BlockSyncCompleted`, in that order, to a subscribed module.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_sync_events_of_an_import_reach_a_subscribed_module_in_order() {
    let dir = temp_dir("sync");
    install_recorder(
        &dir.join("modules"),
        "recorder",
        "\"subscribe_events\", \"read_chain_state\"",
        "",
    );
    // btcd's reorg test chain spends coinbases after one block.
    let options = ChainOptions {
        coinbase_maturity: 1,
        ..ChainOptions::default()
    };
    let node = Running::start(node_config(&dir, "main", ""), options).await;
    node.node.manager.auto_load_modules().await.expect("modules");
    let answer = node
        .module_call(
            "recorder",
            "subscribe",
            "BlockSyncStarted,BlockSyncProgress,BlockSyncCompleted",
        )
        .await;
    assert!(answer.starts_with("SUBSCRIBED"), "{answer}");
    let n = std::sync::Arc::clone(&node.node);
    tokio::task::spawn_blocking(move || n.import(&[harness::data("btcd-reorg/blk_0_to_4.dat")]).expect("import"))
        .await
        .expect("thread");
    node.wait_recorded("recorder", " BlockSyncCompleted ").await;
    let seen = node.recorded("recorder").await;
    let kinds: Vec<&str> = seen.iter().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(kinds.first(), Some(&"BlockSyncStarted"), "{seen:#?}");
    assert_eq!(kinds.last(), Some(&"BlockSyncCompleted"), "{seen:#?}");
    assert!(kinds.contains(&"BlockSyncProgress"), "{seen:#?}");
    assert_eq!(seen.last().map(String::as_str), Some("BlockSyncCompleted 4"));
    node.stop().await;
}

/// `get_chain_info.is_synced` (and `getblockchaininfo.initialblockdownload`)
/// tell the truth: a fresh regtest node's tip is the 2011 genesis block, so
/// it is not synced until a block is mined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_info_is_synced_only_once_the_tip_is_recent_and_rpc_agrees() {
    let dir = temp_dir("synced");
    let node = Running::start(node_config(&dir, "regtest", ""), ChainOptions::default()).await;
    let backend = blvm_node::node::NodeBackendImpl::new(&node.node);
    let ibd =
        || async { node.call("getblockchaininfo", json!([])).await.expect("info")["initialblockdownload"].clone() };
    assert!(!backend.get_chain_info().expect("info").is_synced);
    assert_eq!(ibd().await, json!(true));
    let op_true = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
    let payee = bitcoin::Address::p2wsh(&op_true, bitcoin::Network::Regtest).to_string();
    node.call("generatetoaddress", json!([1, payee])).await.expect("mined");
    assert!(backend.get_chain_info().expect("info").is_synced);
    assert_eq!(ibd().await, json!(false));
    assert!(!node.node.is_importing());
    node.stop().await;
}

/// The operator's `[modules]` allow-list (default and per module), event
/// queue capacities and `[supervision]` restart policy reach the module
/// manager; status shows requested and granted capabilities, and the
/// module is refused what it was not granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_capability_allow_list_queue_and_restart_settings_reach_the_modules() {
    let dir = temp_dir("operator");
    for name in ["recorder", "other"] {
        install_recorder(
            &dir.join("modules"),
            name,
            "\"subscribe_events\", \"read_blockchain\"",
            "",
        );
    }
    let file = "[modules]\ncapabilities = [\"subscribe_events\", \"read_blockchain\", \"read_chain_state\"]\n\
                event_queue_capacity = 64\n\
                [modules.recorder]\ncapabilities = [\"subscribe_events\"]\nevent_queue_capacity = 7\n\
                [supervision]\nrestart_backoff_ms = 250\nmax_restart_backoff_ms = 1000\nmax_crashes = 2\ncrash_window = 30\n";
    let node = Running::start(node_config(&dir, "regtest", file), ChainOptions::default()).await;
    let restart = &node.node.manager.config().restart;
    assert_eq!(
        (
            restart.initial_backoff.as_millis(),
            restart.max_backoff.as_millis(),
            restart.max_crashes,
            restart.window.as_secs()
        ),
        (250, 1000, 2, 30)
    );
    let report = node.node.manager.auto_load_modules().await.expect("modules");
    assert_eq!(report.loaded.len(), 2, "{report:?}");
    let status = |name: &'static str| {
        let node = &node;
        async move { node.call("getmodulestatus", json!([name])).await.expect("status") }
    };
    let recorder = status("recorder").await;
    assert_eq!(
        recorder["requested_capabilities"],
        json!(["read_blockchain", "subscribe_events"])
    );
    assert_eq!(recorder["capabilities"], json!(["subscribe_events"]), "{recorder}");
    assert_eq!(recorder["delivery"]["queue_capacity"], json!(7), "{recorder}");
    let other = status("other").await;
    assert_eq!(
        other["capabilities"],
        json!(["read_blockchain", "subscribe_events"]),
        "{other}"
    );
    assert_eq!(other["delivery"]["queue_capacity"], json!(64), "{other}");
    // What the operator withheld is refused, naming it.
    let refused = node.module_call("recorder", "subscribe", "NewBlock").await;
    assert!(
        refused.starts_with("ERROR") && refused.contains("read_blockchain"),
        "{refused}"
    );
    assert!(node
        .module_call("other", "subscribe", "NewBlock")
        .await
        .starts_with("SUBSCRIBED"));
    node.stop().await;
}
