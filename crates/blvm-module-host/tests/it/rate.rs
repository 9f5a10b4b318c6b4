//! A module flooding the node with requests is held to its request rate:
//! the excess is answered `rate_limited` and counted in its status, while
//! another module's requests are all served.

use std::time::Instant;

use blvm_module_host::ipc::RequestRate;
use blvm_module_host::manager::ModuleState;

use crate::support::{module_bin, module_call_text, TestNode};

fn install(modules_dir: &std::path::Path, name: &str) {
    let dir = modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin("test-module"), dir.join(name)).expect("copy binary");
    std::fs::write(
        dir.join("module.toml"),
        format!("name = \"{name}\"\nversion = \"1.0.0\"\ncapabilities = []\n"),
    )
    .expect("manifest");
    std::fs::write(dir.join("config.toml"), "mode = \"serve\"\n").expect("config");
}

/// `OK <n> LIMITED <n> OTHER <n>` → the three counts.
fn counts(answer: &str) -> (u64, u64, u64) {
    let n: Vec<u64> = answer.split(' ').filter_map(|w| w.parse().ok()).collect();
    assert_eq!(n.len(), 3, "{answer}");
    (n[0], n[1], n[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_over_its_request_rate_is_answered_rate_limited_and_its_neighbour_is_served() {
    // Low enough that 3000 requests cannot all be served unless the flood
    // took half a minute: some are refused however loaded the machine is.
    let rate = RequestRate {
        per_second: 100,
        burst: 50,
    };
    let node = TestNode::start("rate", |config| {
        config.request_rates.insert("flooder".into(), Some(rate));
    })
    .await;
    install(&node.modules_dir, "flooder");
    install(&node.modules_dir, "neighbour");
    let manager = &node.manager;
    let report = manager.auto_load_modules().await.expect("loaded");
    assert_eq!(report.loaded.len(), 2, "{report:?}");

    let started = Instant::now();
    let answer = module_call_text(manager, "flooder", "request-flood", "3000").await;
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("flood of 3000 at {rate}: {answer} in {elapsed:.3}s");
    let (ok, limited, other) = counts(&answer);
    assert_eq!(ok + limited, 3000, "every request got an answer: {answer}");
    assert_eq!(other, 0, "{answer}");
    assert!(ok >= u64::from(rate.burst), "the burst is served: {answer}");
    // The bucket's bound over the whole span the flood took.
    let bound = f64::from(rate.burst) + f64::from(rate.per_second) * elapsed + 1.0;
    assert!(
        (ok as f64) <= bound,
        "{ok} served in {elapsed:.3}s, more than the limit allows ({bound:.0}): {answer}"
    );
    assert!(limited > 0, "{answer}");
    let status = manager.module_status("flooder").expect("status");
    assert_eq!((status.state, status.rate_limited), (ModuleState::Running, limited));

    // The neighbour has its own (default) rate: all served.
    let answer = module_call_text(manager, "neighbour", "request-flood", "2000").await;
    assert_eq!(counts(&answer), (2000, 0, 0), "{answer}");
    assert_eq!(manager.module_status("neighbour").expect("status").rate_limited, 0);
    manager.shutdown().await;
}
