//! Module timers as the operator and the chain see them: the `[modules]`
//! timer cap and fire deadline of the node's config in `getmodulestatus`,
//! and a height timer fired by blocks the node mines.

mod harness;

use blvm_node::chain::ChainOptions;
use blvm_node::config::{NodeConfig, Settings};
use harness::{bins, settings, temp_dir, Running};
use serde_json::json;

fn install(modules: &std::path::Path, name: &str) {
    let dir = modules.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::write(
        dir.join("module.toml"),
        format!(
            "name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [\"manage_timers\"]\n"
        ),
    )
    .expect("manifest");
    std::fs::copy(bins().join("timer-module"), dir.join(name)).expect("binary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_timer_limits_show_in_status_and_mined_blocks_fire_a_height_timer() {
    let dir = temp_dir("module-timers");
    let modules = dir.join("modules");
    install(&modules, "ticker");
    install(&modules, "other");
    let file: Settings = toml::from_str(
        "[modules]\nmax_timers = 5\ntimer_fire_timeout_ms = 2000\n\n\
         [modules.ticker]\nmax_timers = 2\ntimer_fire_timeout_ms = 750\n",
    )
    .expect("config file");
    let mut cfg = NodeConfig::resolve(settings(&dir, "regtest").or(file)).expect("config");
    cfg.modules_dir = modules;
    let node = Running::start(cfg, ChainOptions::default()).await;
    let report = node.node.manager.auto_load_modules().await.expect("modules");
    assert_eq!(report.loaded.len(), 2, "{report:?}");

    let tip = node.call("getblockcount", json!([])).await.expect("count");
    let tip = tip.as_u64().expect("a height");
    assert_eq!(
        node.module_call("ticker", "schedule", &format!("height {}", tip + 2))
            .await,
        "OK 1 1 2"
    );
    let status = node.call("getmodulestatus", json!(["ticker"])).await.expect("status");
    assert_eq!(
        (
            &status["timers"],
            &status["max_timers"],
            &status["timer_fire_timeout_ms"]
        ),
        (&json!(1), &json!(2), &json!(750)),
        "{status}"
    );
    let other = node.call("getmodulestatus", json!(["other"])).await.expect("status");
    assert_eq!(
        (&other["timers"], &other["max_timers"], &other["timer_fire_timeout_ms"]),
        (&json!(0), &json!(5), &json!(2000)),
        "{other}"
    );

    // One block: not yet its height. Two: it fires, at the new tip.
    let op_true = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
    let payee = bitcoin::Address::p2wsh(&op_true, bitcoin::Network::Regtest).to_string();
    node.call("generatetoaddress", json!([1, payee])).await.expect("mined");
    assert_eq!(
        node.module_call("ticker", "list", "").await,
        format!("OK 2 1:height:{}:0", tip + 2)
    );
    node.call("generatetoaddress", json!([1, payee])).await.expect("mined");
    let fired = node.module_call("ticker", "wait", "1 1").await;
    assert!(fired.ends_with(&format!(" HEIGHTS {}", tip + 2)), "{fired}");
    assert_eq!(node.module_call("ticker", "list", "").await, "OK 2");
    node.stop().await;
}
