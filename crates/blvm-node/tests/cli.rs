//! Command-line flags that are not plain config keys, run as the real
//! binary.

use std::process::Command;

#[test]
fn sandbox_mode_flag_sets_the_config_files_sandbox_mode_and_is_checked() {
    let dir = std::env::temp_dir().join(format!("blvm-node-cli-{}", std::process::id()));
    let datadir = dir.to_str().expect("utf8");
    let run = |mode: &str| {
        Command::new(env!("CARGO_BIN_EXE_blvm-node"))
            .args([
                "--datadir",
                datadir,
                "--sandbox-mode",
                mode,
                "module",
                "verify",
                "/nonexistent/module.toml",
            ])
            .output()
            .expect("blvm-node runs")
    };
    // A bad mode is refused before anything else is looked at.
    let bad = run("lax");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("[sandbox] mode: expected strict or permissive, got `lax`"),
        "{err}"
    );
    // A good one passes configuration; the (missing) manifest is what fails.
    let good = run("permissive");
    let err = String::from_utf8_lossy(&good.stderr);
    assert!(!good.status.success());
    assert!(err.contains("/nonexistent/module.toml"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
