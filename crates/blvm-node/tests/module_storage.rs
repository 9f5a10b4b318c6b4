//! Module storage as the operator sees it: the `[storage]` quotas of the
//! node's config, the storage fields of `getmodulestatus`, the removal
//! command, and a store file that a module (even a hostile one) cannot
//! reach through the filesystem.

mod harness;

use blvm_node::chain::ChainOptions;
use blvm_node::config::{NodeConfig, Settings};
use harness::{bins, settings, temp_dir, Running};
use serde_json::json;

fn install(modules: &std::path::Path, name: &str, bin: &str, caps: &str) {
    let dir = modules.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::write(
        dir.join("module.toml"),
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{caps}]\n"),
    )
    .expect("manifest");
    std::fs::copy(bins().join(bin), dir.join(name)).expect("binary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_storage_quota_shows_in_status_and_storage_remove_deletes_the_data() {
    let dir = temp_dir("module-storage");
    let modules = dir.join("modules");
    install(
        &modules,
        "keeper",
        "storage-module",
        "\"read_storage\", \"write_storage\", \"manage_storage\"",
    );
    install(&modules, "attacker", "attacker-module", "");
    let file: Settings = toml::from_str(
        "[sandbox]\ndisk_mb = 8\n\n[storage]\nmax_mb = 1\nmax_keys = 1000\n\n[storage.modules.keeper]\nmax_keys = 3\n",
    )
    .expect("config file");
    let mut cfg = NodeConfig::resolve(settings(&dir, "regtest").or(file)).expect("config");
    cfg.modules_dir = modules;
    let node = Running::start(cfg, ChainOptions::default()).await;
    let report = node.node.manager.auto_load_modules().await.expect("modules");
    assert_eq!(report.loaded.len(), 2, "{report:?}");

    assert_eq!(
        node.module_call("keeper", "fill", "t 4 10").await,
        "ERR quota_exceeded AT 3"
    );
    let status = node.call("getmodulestatus", json!(["keeper"])).await.expect("status");
    assert_eq!(status["storage_keys"], json!(3), "{status}");
    assert_eq!(status["storage_bytes"], json!(3 * 16), "{status}");
    assert_eq!(status["storage_max_keys"], json!(3), "{status}");
    assert_eq!(status["storage_max_bytes"], json!(1 << 20), "{status}");

    // The store is the node's file; the module's sandbox does not show it.
    let store = dir.join("module-data/.storage/keeper.redb");
    assert!(store.is_file(), "{}", store.display());
    let read = node.module_call("attacker", "read", &store.display().to_string()).await;
    assert!(read.starts_with("BLOCKED"), "{read}");
    let write = node
        .module_call("attacker", "write", &store.display().to_string())
        .await;
    assert!(write.starts_with("BLOCKED"), "{write}");

    // Removal: refused while loaded, kept across an unload, then gone.
    let refused = node.call("removemodulestorage", json!(["keeper"])).await;
    assert!(refused.is_err(), "{refused:?}");
    node.call("unloadmodule", json!(["keeper"])).await.expect("unloaded");
    assert!(store.is_file());
    let removed = node
        .call("removemodulestorage", json!(["keeper"]))
        .await
        .expect("removed");
    assert_eq!(removed, json!({"removed": true}));
    assert!(!store.exists());
    node.stop().await;
}
