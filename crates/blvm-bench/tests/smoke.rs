//! Smoke check of the bench binary: a `--quick --json` run of the cheap
//! `rtt` part (2 rounds) prints one JSON object with every figure's and ratio's
//! median, min and max. No figure's value is asserted: they are the
//! machine's, not the code's.

use std::process::Command;

#[test]
fn quick_json_rtt_run_reports_each_figure_and_ratio_with_median_min_max() {
    let out = Command::new(env!("CARGO_BIN_EXE_blvm-bench"))
        .args(["--quick", "--json", "--rounds", "2", "rtt"])
        .output()
        .expect("run blvm-bench");
    assert!(
        out.status.success(),
        "blvm-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert!(report["load_start"]["loadavg"].is_string());
    assert!(report["load_end"]["loadavg"].is_string());
    let rtt = &report["parts"]["rtt"];
    assert_eq!(rtt["rounds"], 2);
    let spread = |entry: &serde_json::Value, name: &str| {
        for stat in ["median", "min", "max"] {
            assert!(entry[stat].is_number(), "{name} has no {stat}: {entry}");
        }
        assert_eq!(
            entry["rounds"].as_array().map(Vec::len),
            Some(2),
            "{name}: one value per round"
        );
    };
    for figure in [
        "floor p50",
        "floor p99",
        "ping p50",
        "ping p99",
        "floor: node CPU/op",
        "floor: client CPU/op",
        "ping: node CPU/op",
        "ping: module CPU/op",
        "ping: module wake-ups/op",
        "ping: CPU/op, both processes",
    ] {
        spread(&rtt["figures"][figure], figure);
    }
    for ratio in ["ping p50 / floor p50", "ping p99 / floor p99", "ping CPU / floor CPU"] {
        spread(&rtt["ratios"][ratio], ratio);
    }
}
