//! Lifecycle events as a real module process receives them: every state
//! change of another module, its load into `loading` included, and the
//! module's own `ModuleLoaded` whichever subscription asks for it.

use std::time::Duration;

use blvm_module_host::manager::{ModuleState, UNLOADED};
use blvm_module_host::registry;

use crate::support::{module_bin, module_call_text, TestNode, DEADLINE};

fn install(node: &TestNode, name: &str, bin: &str, capabilities: &str, config: &str) -> std::path::PathBuf {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin(bin), dir.join(name)).expect("copy binary");
    std::fs::write(
        dir.join("module.toml"),
        format!("name = \"{name}\"\nversion = \"1.0.0\"\ncapabilities = [{capabilities}]\n"),
    )
    .expect("manifest");
    std::fs::write(dir.join("config.toml"), config).expect("config");
    dir
}

/// Waits until the recorder has seen a line containing `needle`.
async fn wait_recorded(node: &TestNode, needle: &str) -> String {
    module_call_text(&node.manager, "recorder", "wait", needle).await
}

/// The recorder's lines (without sequence numbers) that mention `name`.
async fn recorded_about(node: &TestNode, name: &str) -> Vec<String> {
    module_call_text(&node.manager, "recorder", "report", "")
        .await
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.to_owned()))
        .filter(|l| l.split(' ').nth(1) == Some(name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_state_changes_reach_a_subscribed_module_from_the_load_into_loading_through_a_restart() {
    let node = TestNode::start("state-changes", |config| {
        config.restart.initial_backoff = Duration::from_millis(50);
    })
    .await;
    install(
        &node,
        "recorder",
        "recorder-module",
        "\"subscribe_events\"",
        "events = \"ModuleStateChanged\"\n",
    );
    node.manager.auto_load_modules().await.expect("recorder loads");
    let dir = install(&node, "watched", "test-module", "", "mode = \"serve\"\n");
    let module = registry::read_module_folder(&dir).expect("module folder");
    node.manager.load_discovered(&module).await.expect("watched loads");
    wait_recorded(&node, "watched loading running").await;
    // A crash: running → restarting → loading → running.
    let pid = node.manager.module_status("watched").and_then(|s| s.pid).expect("pid");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    node.manager
        .wait_for("watched", DEADLINE, |s| {
            s.state == ModuleState::Running && s.restarts == 1
        })
        .await
        .expect("restarted");
    // A reload: running → stopped, then the new entry's stopped → loading.
    node.manager.reload_module("watched").await.expect("reloaded");
    // Events arrive in order: once the last is recorded, all are.
    wait_recorded(&node, "watched stopped loading").await;
    let seen = recorded_about(&node, "watched").await;
    let expected: Vec<String> = [
        (UNLOADED, "loading"),
        ("loading", "running"),
        ("running", "restarting"),
        ("restarting", "loading"),
        ("loading", "running"),
        ("running", "stopped"),
        ("stopped", "loading"),
    ]
    .iter()
    .map(|(old, new)| format!("ModuleStateChanged watched {old} {new}"))
    .collect();
    // The reload's `loading → running` may or may not be recorded yet.
    assert!(
        seen.starts_with(&expected),
        "expected {expected:#?}\nthe module saw {seen:#?}"
    );
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_subscribing_to_module_loaded_after_its_first_subscription_is_told_of_itself() {
    let node = TestNode::start("own-loaded", |_| {}).await;
    // Its first subscription is to something else: that announces it.
    install(
        &node,
        "recorder",
        "recorder-module",
        "\"subscribe_events\"",
        "events = \"ConfigLoaded\"\n",
    );
    node.manager.auto_load_modules().await.expect("recorder loads");
    let answer = module_call_text(&node.manager, "recorder", "subscribe", "ModuleLoaded").await;
    assert!(answer.starts_with("SUBSCRIBED"), "{answer}");
    // Told of itself, as a first subscription to ModuleLoaded would have.
    wait_recorded(&node, "ModuleLoaded recorder 1.0.0").await;
    node.manager.shutdown().await;
}
