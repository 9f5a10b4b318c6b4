//! The Python SDK's own tests (`sdk/python/tests`, pytest) against this
//! build's `blvm-node`: every request, events in order with their
//! sequence numbers, invocations, a permission denial, version
//! negotiation, shutdown, the frame validator, and the `fee-histogram`
//! example module under the sandbox answering python-bitcoinrpc. They run
//! from the checkout's SDK source (`PYTHONPATH`), installed or not; they
//! need pytest, msgpack and python-bitcoinrpc, which `.ci/run` installs.

use std::path::Path;
use std::process::Command;

const INSTALL: &str = "python3 -m pip install msgpack pytest python-bitcoinrpc==1.0";

/// Whether the Python side has what the tests import; outside CI their
/// absence skips the test, in CI it fails it.
fn have_python_deps() -> bool {
    let present = Command::new("python3")
        .args(["-c", "import msgpack, pytest, bitcoinrpc.authproxy"])
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Python SDK's test dependencies are missing: run .ci/run's install step, `{INSTALL}`"
        );
        eprintln!("skipping the Python SDK's tests: `{INSTALL}`");
    }
    present
}

#[test]
fn the_python_sdk_passes_its_pytest_suite_against_this_node() {
    if !have_python_deps() {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sdk = repo.join("sdk/python");
    let output = Command::new("python3")
        // The plugin from the checkout's source, not an installed copy.
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:blvm_module",
            "-p",
            "blvm_module.testing.plugin",
            "-p",
            "no:cacheprovider",
        ])
        .arg(sdk.join("tests"))
        .env("PYTHONPATH", sdk.join("src"))
        .env("BLVM_NODE_BIN", env!("CARGO_BIN_EXE_blvm-node"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&repo)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains(" passed") && !summary.contains("failed") && !summary.contains("error"),
        "{summary}"
    );
    eprintln!("{summary}");
}
