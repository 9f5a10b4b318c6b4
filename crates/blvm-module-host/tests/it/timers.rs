//! The timer service with real module processes: `timer_schedule`,
//! `timer_cancel` and `timer_list` behind `manage_timers`; repeating
//! timers that fire in order and never overlap themselves; the fire
//! deadline; cancel; the cap; timers ending with the connection; height
//! timers. Every wait is on the module's own record of the fires it
//! received (`wait <id> <n>` answers once it has), never on a clock.

use std::time::Duration;

use blvm_module_host::manager::{ModuleManager, ModuleState};

use crate::support::{module_bin, module_call_text, wait_for_log, TestNode, DEADLINE};

/// Installs the timer module as `name` with capability list `caps` (TOML)
/// and `config` as its `config.toml`.
fn install(node: &TestNode, name: &str, caps: &str, config: &str) {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin("timer-module"), dir.join(name)).expect("copy binary");
    let manifest =
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{caps}]\n");
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
    std::fs::write(dir.join("config.toml"), config).expect("config");
}

async fn load_all(node: &TestNode, count: usize) {
    let report = node.manager.auto_load_modules().await.expect("loaded");
    assert_eq!(report.loaded.len(), count, "{report:?}");
}

async fn call(manager: &ModuleManager, name: &str, method: &str, arg: &str) -> String {
    module_call_text(manager, name, method, arg).await
}

/// The fire numbers of a `record`/`wait` answer's `ORDER`.
fn order(record: &str) -> Vec<u64> {
    let list = record
        .split(" ORDER ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("");
    list.split(',').filter_map(|n| n.parse().ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_need_manage_timers_and_without_it_are_denied_while_the_connection_stays() {
    let node = TestNode::start("timers-denied", |_| {}).await;
    install(&node, "tnone", "", "");
    install(&node, "tyes", "\"manage_timers\"", "");
    load_all(&node, 2).await;
    let m = &node.manager;
    let denied = call(m, "tnone", "schedule", "once 0").await;
    assert!(
        denied.starts_with("ERROR permission_denied manage_timers ") && denied.contains("`timer_schedule`"),
        "{denied}"
    );
    for (method, arg) in [("cancel", "1"), ("list", "")] {
        let denied = call(m, "tnone", method, arg).await;
        assert!(denied.starts_with("ERROR permission_denied manage_timers "), "{denied}");
    }
    assert_eq!(call(m, "tnone", "ping", "").await, "PONG");
    assert_eq!(m.timers().count("tnone"), 0);

    assert_eq!(call(m, "tyes", "schedule", "once 0").await, "OK 1 1 64");
    let fired = call(m, "tyes", "wait", "1 1").await;
    assert_eq!(order(&fired), [1], "{fired}");
    // A one-shot timer leaves the list as it fires.
    assert_eq!(call(m, "tyes", "list", "").await, "OK 64");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeating_timer_fires_again_and_again_each_fire_numbered_in_order() {
    let node = TestNode::start("timers-repeat", |_| {}).await;
    install(&node, "trep", "\"manage_timers\"", "");
    load_all(&node, 1).await;
    let m = &node.manager;
    assert_eq!(call(m, "trep", "schedule", "repeat 20").await, "OK 1 1 64");
    let fired = call(m, "trep", "wait", "1 4").await;
    let fires = order(&fired);
    assert!(fires.len() >= 4, "{fired}");
    assert_eq!(fires, (1..=fires.len() as u64).collect::<Vec<_>>(), "{fired}");
    // Still scheduled, and the node counts its fires too.
    let list = call(m, "trep", "list", "").await;
    let (_, entry) = list.split_once(' ').and_then(|(_, r)| r.split_once(' ')).expect(&list);
    let parts: Vec<&str> = entry.split(':').collect();
    assert_eq!(&parts[..3], ["1", "repeat", "20"], "{list}");
    assert!(parts[3].parse::<u64>().expect("fires") >= 4, "{list}");
    let status = m.module_status("trep").expect("status");
    assert_eq!((status.timers, status.max_timers), (1, 64));
    assert_eq!(status.timer_fire_timeout, Duration::from_secs(30));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeating_timer_never_overlaps_itself_when_the_module_answers_slowly() {
    let node = TestNode::start("timers-slow", |_| {}).await;
    // Each answer takes 15 intervals: a timer that fired on the clock
    // would have many fires in the module's hands at once.
    install(&node, "tslow", "\"manage_timers\"", "answer_ms = \"150\"\n");
    load_all(&node, 1).await;
    let m = &node.manager;
    assert_eq!(call(m, "tslow", "schedule", "repeat 10").await, "OK 1 1 64");
    let fired = call(m, "tslow", "wait", "1 4").await;
    assert!(fired.contains(" MAX_IN_FLIGHT 1 "), "{fired}");
    assert_eq!(&order(&fired)[..4], [1, 2, 3, 4], "{fired}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_the_module_never_answers_times_out_and_the_timer_fires_again() {
    let node = TestNode::start("timers-deadline", |c| {
        c.timers
            .fire_timeout_per_module
            .insert("tdeaf".into(), Duration::from_millis(100));
    })
    .await;
    install(&node, "tdeaf", "\"manage_timers\"", "answer_ms = \"never\"\n");
    load_all(&node, 1).await;
    let m = &node.manager;
    assert_eq!(
        m.module_status("tdeaf").expect("status").timer_fire_timeout,
        Duration::from_millis(100)
    );
    assert_eq!(call(m, "tdeaf", "schedule", "repeat 10").await, "OK 1 1 64");
    let fired = call(m, "tdeaf", "wait", "1 3").await;
    assert_eq!(&order(&fired)[..3], [1, 2, 3], "{fired}");
    wait_for_log("of the fire deadline", |l| {
        l.contains("module=\"tdeaf\"") && l.contains("timer fire not answered within 100ms")
    });
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_timer_fires_no_more() {
    let node = TestNode::start("timers-cancel", |_| {}).await;
    install(&node, "tcan", "\"manage_timers\"", "");
    load_all(&node, 1).await;
    let m = &node.manager;
    assert_eq!(call(m, "tcan", "schedule", "repeat 20").await, "OK 1 1 64");
    call(m, "tcan", "wait", "1 2").await;
    assert_eq!(call(m, "tcan", "cancel", "1").await, "OK true");
    assert_eq!(call(m, "tcan", "cancel", "1").await, "OK false");
    assert_eq!(call(m, "tcan", "list", "").await, "OK 64");
    // A second timer of the same interval, scheduled after the cancel:
    // its fires travel behind any fire of the first that was already on
    // its way, so none of the first may come after the second's first.
    assert_eq!(call(m, "tcan", "schedule", "repeat 20").await, "OK 2 1 64");
    call(m, "tcan", "wait", "2 3").await;
    let sequence = call(m, "tcan", "sequence", "").await;
    let after: Vec<&str> = sequence
        .split_whitespace()
        .skip_while(|f| !f.starts_with("2."))
        .collect();
    assert!(after.len() >= 3, "{sequence}");
    assert!(
        after.iter().all(|f| f.starts_with("2.")),
        "timer 1 fired after its cancel: {sequence}"
    );
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_timer_past_the_cap_answers_quota_exceeded_and_schedules_nothing() {
    let node = TestNode::start("timers-cap", |c| {
        c.timers.max_timers = 10;
        c.timers.max_timers_per_module.insert("tcap".into(), 2);
    })
    .await;
    install(&node, "tcap", "\"manage_timers\"", "");
    load_all(&node, 1).await;
    let m = &node.manager;
    assert_eq!(call(m, "tcap", "schedule", "height 1000000").await, "OK 1 1 2");
    assert_eq!(call(m, "tcap", "schedule", "repeat 60000").await, "OK 2 2 2");
    let refused = call(m, "tcap", "schedule", "once 0").await;
    assert!(
        refused.starts_with("ERROR quota_exceeded - ") && refused.contains("the cap is 2"),
        "{refused}"
    );
    assert_eq!(
        call(m, "tcap", "list", "").await,
        "OK 2 1:height:1000000:0 2:repeat:60000:0"
    );
    let status = m.module_status("tcap").expect("status");
    assert_eq!((status.timers, status.max_timers), (2, 2));
    // A cancel makes room again.
    assert_eq!(call(m, "tcap", "cancel", "2").await, "OK true");
    assert_eq!(call(m, "tcap", "schedule", "height 1000001").await, "OK 3 2 2");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_die_with_the_connection_and_the_restarted_module_starts_with_none() {
    let node = TestNode::start("timers-crash", |c| {
        c.restart.initial_backoff = Duration::from_millis(10);
    })
    .await;
    install(&node, "tdie", "\"manage_timers\"", "");
    load_all(&node, 1).await;
    let m = &node.manager;
    assert_eq!(call(m, "tdie", "schedule", "repeat 20").await, "OK 1 1 64");
    assert_eq!(call(m, "tdie", "schedule", "height 1000000").await, "OK 2 2 64");
    call(m, "tdie", "wait", "1 1").await;
    let pid = m.module_status("tdie").and_then(|s| s.pid).expect("pid");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    m.wait_for("tdie", DEADLINE, |s| s.restarts == 1 && s.state == ModuleState::Running)
        .await
        .expect("restarted");
    assert_eq!(m.timers().count("tdie"), 0);
    assert_eq!(m.module_status("tdie").expect("status").timers, 0);
    // The new spawn has none, schedules its own, and ids start again.
    assert_eq!(call(m, "tdie", "list", "").await, "OK 64");
    assert_eq!(
        call(m, "tdie", "record", "1").await,
        "FIRES 0 MAX_IN_FLIGHT 0 ORDER  HEIGHTS "
    );
    assert_eq!(call(m, "tdie", "schedule", "repeat 60000").await, "OK 1 1 64");
    // An unload ends them too.
    m.unload_module("tdie").await.expect("unloads");
    assert_eq!(m.timers().count("tdie"), 0);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_height_timer_fires_when_the_tip_reaches_its_height_and_at_once_if_it_already_has() {
    let node = TestNode::start("timers-height", |_| {}).await;
    install(&node, "theight", "\"manage_timers\"", "");
    load_all(&node, 1).await;
    let m = &node.manager;
    // The chain is mainnet's first 439 blocks: its tip is at 438.
    assert_eq!(call(m, "theight", "schedule", "height 440").await, "OK 1 1 64");
    let at_once = call(m, "theight", "schedule", "height 100").await;
    assert_eq!(at_once, "OK 2 1 64", "a height already reached is not kept");
    let fired = call(m, "theight", "wait", "2 1").await;
    assert!(fired.ends_with(" HEIGHTS 438"), "{fired}");
    // The node's tip moves: 439 is not yet the timer's height.
    m.timers().on_tip(439);
    assert_eq!(call(m, "theight", "list", "").await, "OK 64 1:height:440:0");
    m.timers().on_tip(440);
    let fired = call(m, "theight", "wait", "1 1").await;
    assert!(
        fired.starts_with("FIRES 1 ") && fired.ends_with(" HEIGHTS 440"),
        "{fired}"
    );
    assert_eq!(call(m, "theight", "list", "").await, "OK 64");
    m.shutdown().await;
}
