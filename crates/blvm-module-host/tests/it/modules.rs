//! The inter-module service with real module processes (`peer-module`):
//! discovery, module APIs, calls with the caller set by the node and a
//! deadline, typed errors for absent, crashed and silent targets, calls
//! that never hold up the caller, and events modules publish.

use blvm_module_host::manager::ModuleManager;
use blvm_module_host::services::modules::ModuleCallLimits;

use crate::support::{module_bin, module_call_text, wait_for_log_times, TestNode};

/// Installs `peer-module` as `name` with capability list `caps` (TOML
/// strings), `publishes` (TOML strings) and config `api`/`subscribe`.
fn install(node: &TestNode, name: &str, caps: &str, publishes: &str, config: &str) {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin("peer-module"), dir.join(name)).expect("copy binary");
    let manifest = format!(
        "name = \"{name}\"\nversion = \"1.2.3\"\nentry_point = \"{name}\"\ncapabilities = [{caps}]\npublishes = [{publishes}]\n"
    );
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
    std::fs::write(dir.join("config.toml"), config).expect("config");
}

/// Loads every installed module and waits for each to say `READY`.
async fn load(node: &TestNode, names: &[&str]) {
    // Capture from before the modules start, or their first lines are lost.
    crate::support::captured_logs();
    let report = node.manager.auto_load_modules().await.expect("loaded");
    assert_eq!(report.loaded.len(), names.len(), "{report:?}");
    for name in names {
        wait_until_said(name, "READY").await;
    }
}

/// Waits for module `name` to print a line containing `text`.
async fn wait_until_said(name: &str, text: &str) {
    wait_until_said_times(name, text, 1).await;
}

/// Waits until module `name` has printed `times` lines containing `text`
/// (the capture holds every spawn's lines: a restarted module's `READY` is
/// its second).
async fn wait_until_said_times(name: &str, text: &str, times: usize) {
    let (name, text) = (name.to_owned(), text.to_owned());
    tokio::task::spawn_blocking(move || {
        wait_for_log_times(&format!("`{text}` from {name}"), times, |l| {
            l.contains(&format!("module=\"{name}\"")) && l.contains(&text)
        })
    })
    .await
    .expect("waited");
}

async fn cmd(m: &ModuleManager, name: &str, command: &str, arg: &str) -> String {
    module_call_text(m, name, command, arg).await
}

const CALLER: &str = "\"call_module\", \"discover_modules\"";
const SERVER: &str = "\"register_module_api\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_reaches_the_target_with_the_true_caller_whatever_the_caller_claims() {
    let node = TestNode::start("im-caller", |_| {}).await;
    install(&node, "ica", CALLER, "", "");
    install(&node, "icb", SERVER, "", "api = \"echo\"\n");
    load(&node, &["ica", "icb"]).await;
    let m = &node.manager;
    assert_eq!(cmd(m, "ica", "call", "icb echo hi").await, "OK caller=ica params=hi");
    // A `caller` field in the request is not a field of `call_module`: the
    // node sets the invocation's caller from the connection.
    assert_eq!(
        cmd(m, "ica", "call-spoofing", "icb echo hi").await,
        "OK caller=ica params=hi"
    );
    // Discovery lists both, with versions and the API.
    let found = cmd(m, "ica", "discover", "").await;
    assert_eq!(found, "ica 1.2.3 \nicb 1.2.3 echo", "{found}");
    // The operator sees the same API in status.
    let status = m.module_status("icb").expect("status");
    assert_eq!(status.api_methods, ["echo"]);
    assert_eq!(status.inter_module, ModuleCallLimits::default());
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inter_module_methods_are_denied_without_their_capabilities_and_the_connection_stays() {
    let node = TestNode::start("im-denied", |_| {}).await;
    install(&node, "idn", "", "", "");
    install(&node, "idb", SERVER, "", "api = \"echo\"\n");
    load(&node, &["idn", "idb"]).await;
    let m = &node.manager;
    for (command, arg, capability) in [
        ("call", "idb echo x", "call_module"),
        ("discover", "", "discover_modules"),
        ("register", "mine", "register_module_api"),
        ("publish", "idn.thing 1", "publish_events"),
    ] {
        let denied = cmd(m, "idn", command, arg).await;
        assert!(
            denied.starts_with(&format!("ERROR permission_denied {capability} ")),
            "{command}: {denied}"
        );
    }
    assert_eq!(cmd(m, "idn", "ping", "").await, "PONG");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_holds_up_neither_the_callers_other_requests_nor_other_calls() {
    let node = TestNode::start("im-wait", |_| {}).await;
    install(&node, "iwa", CALLER, "", "");
    install(&node, "iwb", SERVER, "", "api = \"echo,hold\"\n");
    load(&node, &["iwa", "iwb"]).await;
    let m = node.manager.clone();
    // The first call waits until the test releases it.
    let held = tokio::spawn({
        let m = m.clone();
        async move { cmd(&m, "iwa", "call", "iwb hold k1").await }
    });
    wait_until_said("iwb", "HOLDING k1").await;
    // Meanwhile the caller's own requests are answered, a second call to
    // the same target completes, and the held one is still waiting.
    assert_eq!(cmd(&m, "iwa", "ping", "").await, "PONG");
    assert_eq!(
        cmd(&m, "iwa", "call", "iwb echo second").await,
        "OK caller=iwa params=second"
    );
    assert!(!held.is_finished());
    assert_eq!(cmd(&m, "iwb", "release", "k1").await, "OK");
    assert_eq!(held.await.expect("joined"), "OK released k1");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_absent_unregistered_silent_and_crashing_targets_get_typed_errors() {
    let node = TestNode::start("im-errors", |c| {
        c.inter_module.defaults = ModuleCallLimits {
            call_timeout: std::time::Duration::from_secs(20),
            ..ModuleCallLimits::default()
        };
    })
    .await;
    install(&node, "iea", CALLER, "", "");
    install(&node, "ieb", SERVER, "", "api = \"echo,hold,crash\"\n");
    load(&node, &["iea", "ieb"]).await;
    let m = &node.manager;
    let absent = cmd(m, "iea", "call", "nosuch echo x").await;
    assert!(absent.starts_with("ERROR module_not_running - "), "{absent}");
    let unregistered = cmd(m, "iea", "call", "ieb launch x").await;
    assert!(
        unregistered.starts_with("ERROR method_not_found - ") && unregistered.contains("launch"),
        "{unregistered}"
    );
    // A target that does not answer costs the caller its deadline (asked
    // for: 300 ms), then a `timeout`; the target is still there.
    let silent = cmd(m, "iea", "call", "ieb hold never 300").await;
    assert!(silent.starts_with("ERROR timeout - "), "{silent}");
    assert_eq!(
        cmd(m, "iea", "call", "ieb echo after").await,
        "OK caller=iea params=after"
    );
    // A target that dies before it answers.
    let crashed = cmd(m, "iea", "call", "ieb crash x").await;
    assert!(crashed.starts_with("ERROR module_crashed - "), "{crashed}");
    let itself = cmd(m, "iea", "call", "iea echo x").await;
    assert!(itself.starts_with("ERROR invalid_params - "), "{itself}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_api_is_gone_with_its_connection_and_back_with_the_restarted_module() {
    let node = TestNode::start("im-restart", |_| {}).await;
    install(&node, "ira", CALLER, "", "");
    install(&node, "irb", SERVER, "", "api = \"echo\"\n");
    load(&node, &["ira", "irb"]).await;
    let m = &node.manager;
    m.unload_module("irb").await.expect("unloaded");
    let gone = cmd(m, "ira", "call", "irb echo x").await;
    assert!(gone.starts_with("ERROR module_not_running - "), "{gone}");
    assert_eq!(cmd(m, "ira", "discover", "").await, "ira 1.2.3 ");
    let again = m.auto_load_modules().await.expect("loaded again");
    assert_eq!(again.loaded, vec!["irb".to_owned()], "{again:?}");
    wait_until_said_times("irb", "READY", 2).await;
    assert_eq!(
        cmd(m, "ira", "call", "irb echo back").await,
        "OK caller=ira params=back"
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_carry_their_origin_and_reach_only_subscribers_with_the_categorys_capability() {
    let node = TestNode::start("im-publish", |_| {}).await;
    install(
        &node,
        "ipp",
        "\"publish_events\"",
        "\"PaymentSettled\", \"ipp.summary\"",
        "",
    );
    install(
        &node,
        "ips",
        "\"subscribe_events\", \"read_payment\"",
        "",
        "subscribe = \"PaymentSettled,ipp.summary\"\n",
    );
    install(&node, "ipn", "\"subscribe_events\"", "", "");
    load(&node, &["ipp", "ips", "ipn"]).await;
    let m = &node.manager;
    // Without `read_payment` a module cannot subscribe to payment events;
    // a module's own events need only `subscribe_events`.
    let denied = cmd(m, "ipn", "subscribe", "PaymentSettled").await;
    assert!(denied.starts_with("ERROR permission_denied read_payment "), "{denied}");
    assert_eq!(cmd(m, "ipn", "subscribe", "ipp.summary").await, "OK ipp.summary");
    assert_eq!(cmd(m, "ipp", "publish", "PaymentSettled 1").await, "OK 1");
    wait_until_said("ips", "EVENT PaymentSettled ipp p1").await;
    assert_eq!(cmd(m, "ipp", "publish", "ipp.summary 5").await, "OK 2");
    wait_until_said("ips", "EVENT ipp.summary ipp").await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_cannot_publish_a_node_event_an_undeclared_one_or_past_its_rate() {
    let node = TestNode::start("im-refuse", |c| {
        c.inter_module.per_module.insert(
            "irp".into(),
            ModuleCallLimits {
                publish_rate: blvm_module_host::ipc::RequestRate {
                    per_second: 1,
                    burst: 2,
                },
                ..ModuleCallLimits::default()
            },
        );
    })
    .await;
    install(&node, "irp", "\"publish_events\"", "\"irp.tick\"", "");
    load(&node, &["irp"]).await;
    let m = &node.manager;
    let node_event = cmd(m, "irp", "publish", "NewBlock 1").await;
    assert!(
        node_event.starts_with("ERROR permission_denied - ") && node_event.contains("node event"),
        "{node_event}"
    );
    let undeclared = cmd(m, "irp", "publish", "PaymentFailed 1").await;
    assert!(
        undeclared.starts_with("ERROR permission_denied - ") && undeclared.contains("publishes"),
        "{undeclared}"
    );
    let foreign = cmd(m, "irp", "publish", "other.tick 1").await;
    assert!(foreign.starts_with("ERROR permission_denied - "), "{foreign}");
    // Refusals took no token: the burst of two is still there.
    assert_eq!(cmd(m, "irp", "publish", "irp.tick 1").await, "OK 0");
    assert_eq!(cmd(m, "irp", "publish", "irp.tick 2").await, "OK 0");
    let limited = cmd(m, "irp", "publish", "irp.tick 3").await;
    assert!(limited.starts_with("ERROR rate_limited - "), "{limited}");
    assert_eq!(cmd(m, "irp", "ping", "").await, "PONG");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_declaring_a_node_event_is_not_loaded() {
    let node = TestNode::start("im-manifest", |_| {}).await;
    install(&node, "imx", "\"publish_events\"", "\"NewBlock\"", "");
    let report = node.manager.auto_load_modules().await.expect("report");
    assert!(report.loaded.is_empty(), "{report:?}");
    let text = format!("{report:?}");
    assert!(text.contains("publishes[0]"), "{text}");
    node.manager.shutdown().await;
}
