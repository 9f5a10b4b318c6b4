//! The metrics service with real module processes: `report_metrics` and
//! `read_metrics` behind their capabilities, the series cap, and a
//! module's series leaving the exposition when it unloads or crashes.

use blvm_module_host::manager::{ModuleManager, ModuleState};

use crate::support::{module_bin, module_call_text, TestNode, DEADLINE};

/// Installs the metrics module as `name` with capability list `caps`
/// (TOML, e.g. `"\"report_metrics\""`).
fn install(node: &TestNode, name: &str, caps: &str) {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin("metrics-module"), dir.join(name)).expect("copy binary");
    let manifest =
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{caps}]\n");
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
}

async fn load_all(node: &TestNode, count: usize) {
    let report = node.manager.auto_load_modules().await.expect("loaded");
    assert_eq!(report.loaded.len(), count, "{report:?}");
}

async fn call(manager: &ModuleManager, name: &str, method: &str, arg: &str) -> String {
    module_call_text(manager, name, method, arg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_and_read_metrics_are_denied_without_their_capabilities_and_the_connection_stays() {
    let node = TestNode::start("metrics-denied", |_| {}).await;
    install(&node, "mnone", "");
    load_all(&node, 1).await;
    let m = &node.manager;
    let denied = call(m, "mnone", "report", "gauge depth 1").await;
    assert!(
        denied.starts_with("ERROR permission_denied report_metrics ") && denied.contains("`report_metrics`"),
        "{denied}"
    );
    let denied = call(m, "mnone", "read", "*").await;
    assert!(denied.starts_with("ERROR permission_denied read_metrics "), "{denied}");
    assert_eq!(call(m, "mnone", "ping", "").await, "PONG");
    assert!(!m.metrics().render().contains("module_mnone_"));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modules_series_appear_in_the_exposition_and_vanish_when_it_unloads() {
    let node = TestNode::start("metrics-unload", |_| {}).await;
    install(&node, "mx", "\"report_metrics\"");
    load_all(&node, 1).await;
    let m = &node.manager;
    let ok = call(
        m,
        "mx",
        "report",
        "counter blocks_seen_total 2 kind=full;gauge Queue.Depth 7;histogram fetch_seconds 0.2,3",
    )
    .await;
    assert_eq!(ok, "OK 3 1000");
    assert_eq!(
        call(m, "mx", "report", "counter blocks_seen 1 kind=full").await,
        "OK 3 1000"
    );
    let text = m.metrics().render();
    for line in [
        "# TYPE module_mx_blocks_seen_total counter",
        "module_mx_blocks_seen_total{kind=\"full\"} 3.0",
        "module_mx_queue_depth 7.0",
        "module_mx_fetch_seconds_bucket{le=\"0.25\"} 1",
        "module_mx_fetch_seconds_bucket{le=\"+Inf\"} 2",
        "module_mx_fetch_seconds_count 2",
        "blvm_module_up{module=\"mx\"} 1.0",
        "blvm_module_metric_series{module=\"mx\"} 3.0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    let status = m.module_status("mx").expect("status");
    assert_eq!((status.metric_series, status.max_metric_series), (3, 1000));
    m.unload_module("mx").await.expect("unloads");
    let text = m.metrics().render();
    assert!(!text.contains("module_mx_"), "series left after unload:\n{text}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_past_the_series_cap_is_refused_whole_and_records_nothing() {
    let node = TestNode::start("metrics-cap", |c| {
        c.metrics.max_series = 100;
        c.metrics.max_series_per_module.insert("mcap".into(), 3);
    })
    .await;
    install(&node, "mcap", "\"report_metrics\"");
    load_all(&node, 1).await;
    let m = &node.manager;
    assert_eq!(call(m, "mcap", "report", "gauge a 1;gauge b 1").await, "OK 2 3");
    // Two new series would make 4: refused, and the update of `a` in the
    // same report is not applied either.
    let refused = call(m, "mcap", "report", "gauge a 5;gauge c 1;gauge d 1").await;
    assert!(refused.starts_with("ERROR quota_exceeded - "), "{refused}");
    assert!(
        refused.contains("cap") && refused.contains("nothing was recorded"),
        "{refused}"
    );
    let text = m.metrics().render();
    assert!(text.lines().any(|l| l == "module_mcap_a 1.0"), "{text}");
    assert!(!text.contains("module_mcap_c"), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "blvm_module_metric_series_max{module=\"mcap\"} 3.0"),
        "{text}"
    );
    // At the cap, existing series still update and one more fits.
    assert_eq!(call(m, "mcap", "report", "gauge a 5;gauge c 1").await, "OK 3 3");
    let status = m.module_status("mcap").expect("status");
    assert_eq!((status.metric_series, status.max_metric_series), (3, 3));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_metrics_returns_another_modules_values_and_the_nodes() {
    let node = TestNode::start("metrics-read", |_| {}).await;
    install(&node, "mwriter", "\"report_metrics\"");
    install(&node, "mreader", "\"read_metrics\"");
    load_all(&node, 2).await;
    let m = &node.manager;
    assert_eq!(
        call(m, "mwriter", "report", "gauge depth 7 pool=main;histogram lag 1,2").await,
        "OK 2 1000"
    );
    let read = call(m, "mreader", "read", "mwriter").await;
    let lines: Vec<&str> = read.lines().collect();
    assert!(lines.contains(&"mwriter module_mwriter_depth pool=main 7"), "{read}");
    assert!(lines.contains(&"mwriter module_mwriter_lag  3 2"), "{read}");
    assert!(!read.contains("blvm_module_up"), "only the module asked for: {read}");
    let node_up = call(m, "mreader", "read", "node blvm_module_up").await;
    for line in [
        "node blvm_module_up module=mreader 1",
        "node blvm_module_up module=mwriter 1",
    ] {
        assert!(node_up.lines().any(|l| l == line), "no `{line}` in:\n{node_up}");
    }
    // The reader's own request counter counts its requests.
    let requests = call(m, "mreader", "read", "node blvm_module_requests").await;
    assert!(
        requests
            .lines()
            .any(|l| l.starts_with("node blvm_module_requests module=mreader ")),
        "{requests}"
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_modules_series_are_removed_and_the_restarted_one_reports_afresh() {
    let node = TestNode::start("metrics-crash", |c| {
        c.restart.initial_backoff = std::time::Duration::from_millis(10);
    })
    .await;
    install(&node, "mcrash", "\"report_metrics\"");
    load_all(&node, 1).await;
    let m = &node.manager;
    assert_eq!(call(m, "mcrash", "report", "counter done 5").await, "OK 1 1000");
    let pid = m.module_status("mcrash").and_then(|s| s.pid).expect("pid");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    m.wait_for("mcrash", DEADLINE, |s| {
        s.restarts == 1 && s.state == ModuleState::Running
    })
    .await
    .expect("restarted");
    let text = m.metrics().render();
    assert!(
        !text.contains("module_mcrash_"),
        "series of the crashed spawn left:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "blvm_module_restarts_total{module=\"mcrash\"} 1.0"),
        "{text}"
    );
    assert_eq!(call(m, "mcrash", "report", "counter done 1").await, "OK 1 1000");
    assert!(m
        .metrics()
        .render()
        .lines()
        .any(|l| l == "module_mcrash_done_total 1.0"));
    m.shutdown().await;
}
