//! A module's `log` frames cannot flood, bloat or forge the node's log:
//! they take tokens of the module's one request budget (the excess is
//! dropped, counted in status and reported once per period), each is cut
//! at the stdout line cap, and every control character in them, or in a
//! stdout line, is escaped so one module line is one log line. Another
//! module is served all along.

use std::time::Instant;

use blvm_module_host::ipc::RequestRate;
use blvm_module_host::manager::ModuleState;
use blvm_module_host::process::{MAX_LINE, TRUNCATED_MARKER};

use crate::support::{captured_logs, install_module as install, module_call_text, wait_for_log, TestNode};

/// A word no other test logs.
fn tag(what: &str) -> String {
    format!("{what}{}", std::process::id())
}

/// The captured log lines containing `needle`.
fn lines_with(needle: &str) -> Vec<String> {
    captured_logs()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_flooding_log_frames_is_held_to_its_request_budget_while_its_neighbour_is_served() {
    // Low enough that 3000 lines cannot all pass unless the flood took half
    // a minute: some are dropped however loaded the machine is.
    let rate = RequestRate {
        per_second: 100,
        burst: 50,
    };
    captured_logs();
    let node = TestNode::start("logs-flood", |config| {
        config.request_rates.insert("log-flooder".into(), Some(rate));
    })
    .await;
    install(&node, "log-flooder", "logger-module", "");
    install(&node, "log-neighbour", "test-module", "mode = \"serve\"\n");
    let manager = &node.manager;
    let report = manager.auto_load_modules().await.expect("loaded");
    assert_eq!(report.loaded.len(), 2, "{report:?}");

    let tag = tag("flood");
    let flood = format!("3000 {tag}");
    let started = Instant::now();
    let (flooded, served) = tokio::join!(
        module_call_text(manager, "log-flooder", "flood", &flood),
        module_call_text(manager, "log-neighbour", "request-flood", "2000"),
    );
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(flooded, "SENT 3000");
    // The answer comes after the node handled every frame sent before it.
    let logged = lines_with(&format!("flood {tag} ")).len() as u64;
    let status = manager.module_status("log-flooder").expect("status");
    eprintln!(
        "3000 log frames at {rate}: {logged} logged, {} dropped in {elapsed:.3}s",
        status.logs_dropped
    );
    assert_eq!(
        logged + status.logs_dropped,
        3000,
        "each frame logged or counted: {status:?}"
    );
    assert!(logged >= u64::from(rate.burst), "the burst is logged: {logged}");
    // The bucket's bound over the whole span the flood took (the ping after
    // it takes a token too).
    let bound = f64::from(rate.burst) + f64::from(rate.per_second) * elapsed + 1.0;
    assert!(
        (logged as f64) <= bound,
        "{logged} logged in {elapsed:.3}s, more than the budget allows ({bound:.0})"
    );
    assert_eq!(status.state, ModuleState::Running);
    // The operator is told, once per period rather than once per line.
    let warnings = lines_with("its log lines are dropped")
        .into_iter()
        .filter(|l| l.contains("log-flooder"))
        .count();
    assert!(
        warnings >= 1 && (warnings as f64) <= 1.0 + elapsed / 10.0,
        "{warnings} warnings in {elapsed:.3}s"
    );

    // The neighbour, with its own budget, was served throughout.
    assert_eq!(served, "OK 2000 LIMITED 0 OTHER 0");
    let neighbour = manager.module_status("log-neighbour").expect("status");
    assert_eq!((neighbour.rate_limited, neighbour.logs_dropped), (0, 0));
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_log_frame_is_cut_at_the_line_cap_and_marked() {
    captured_logs();
    let node = TestNode::start("logs-big", |_| {}).await;
    install(&node, "log-big", "logger-module", "");
    node.manager.auto_load_modules().await.expect("loaded");
    let tag = tag("oversize");
    assert_eq!(
        module_call_text(&node.manager, "log-big", "oversize", &tag).await,
        "SENT 1"
    );
    let lines = lines_with(&format!("oversize {tag} "));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    // MAX_LINE bytes of the module's text, then the marker: not 4 MiB.
    let prefix = format!("oversize {tag} ");
    let kept = MAX_LINE - prefix.len();
    let start = line.find(&prefix).expect("the message") + prefix.len();
    let xs = line[start..].bytes().take_while(|b| *b == b'x').count();
    assert_eq!(xs, kept, "{} bytes in the line", line.len());
    assert!(
        line[start + xs..].starts_with(TRUNCATED_MARKER),
        "{}",
        &line[start + xs..]
    );
    assert!(line.len() < 2 * MAX_LINE, "{} bytes", line.len());
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newlines_and_escape_sequences_from_a_module_make_one_escaped_log_line() {
    captured_logs();
    let node = TestNode::start("logs-inject", |_| {}).await;
    install(&node, "log-forger", "logger-module", "");
    node.manager.auto_load_modules().await.expect("loaded");
    let tag = tag("inject");
    assert_eq!(
        module_call_text(&node.manager, "log-forger", "inject", &tag).await,
        "SENT 1"
    );

    // The log frame: message, target and fields, one line, escaped. (Its
    // newline made two before, the second a forged node line.)
    let lines: Vec<String> = lines_with(&tag)
        .into_iter()
        .filter(|l| !l.contains("stdout-inject"))
        .collect();
    assert_eq!(lines.len(), 1, "the frame made {} lines: {lines:#?}", lines.len());
    let line = &lines[0];
    assert!(
        line.contains(&format!(
            "inject {tag} first\\nINFO blvm_node::node: forged by {tag}\\r\\x1b[2K\\x1b[31mred\\x1b[0m"
        )),
        "{line}"
    );
    assert!(line.contains("module_target=logger\\x1b[8m"), "{line}");
    assert!(line.contains("fields={bell=\\x07, key\\n=value\\r\\nINFO}"), "{line}");
    assert!(line.contains("module=\"log-forger\""), "{line}");

    // Its stdout: the same escaping, by the same function.
    let stdout = wait_for_log(&format!("stdout-inject {tag}"), |l| {
        l.contains(&format!("stdout-inject {tag}"))
    });
    assert!(stdout.contains("a\\rb\\x1b[31mc\\u{202e}d"), "{stdout}");

    // Nothing of it reached the log raw.
    for l in lines_with(&tag) {
        assert!(!l.contains(|c: char| c.is_control()), "a raw control character: {l:?}");
    }
    assert!(
        !captured_logs()
            .lines()
            .any(|l| l.trim_start().starts_with("INFO blvm_node::node: forged")),
        "a forged line"
    );
    node.manager.shutdown().await;
}
