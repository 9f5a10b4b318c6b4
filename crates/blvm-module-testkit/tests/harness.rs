//! The harness's own checks, with a module that speaks the protocol by
//! hand (`raw-module` of blvm-test-modules): a well-formed module passes
//! and its requests and output are seen; a malformed frame or a request
//! whose params do not decode fails the test at `finish`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use blvm_module_testkit::ModuleTest;

/// Builds the test modules once; the path of `raw-module`.
fn raw_module() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "blvm-test-modules", "--bin", "raw-module"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building raw-module failed");
            // target/debug/deps/harness-<hash> → target/debug
            let exe = std::env::current_exe().expect("test binary path");
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .join("raw-module")
        })
        .clone()
}

/// A manifest for `raw-module` as module `name`.
fn manifest(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("blvm-testkit-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("manifest dir");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"raw-module\"\ncapabilities = [\"read_blockchain\"]\n"),
    )
    .expect("manifest");
    path
}

async fn start(name: &str, send: &str) -> ModuleTest {
    ModuleTest::builder(raw_module(), manifest(name))
        .config(format!("send = \"{send}\"\n"))
        .start()
        .await
        .expect("the module loads")
}

/// Runs `finish` and returns its panic message, if it panicked.
async fn finish_failure(test: ModuleTest) -> Option<String> {
    let err = tokio::spawn(test.finish()).await.err()?;
    let panic = err.try_into_panic().ok()?;
    Some(
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_formed_module_passes_and_its_requests_and_output_are_seen() {
    let test = start("raw-ping", "ping").await;
    let ping = test.wait_for_request(|r| r.method == "ping").await;
    assert_eq!(ping.error, None);
    let line = test.wait_for_log(|l| l.source == "stdout" && l.message == "PONG").await;
    assert_eq!(line.module, "raw-ping");
    assert!(test.problems().is_empty(), "{:?}", test.problems());
    assert_eq!(finish_failure(test).await, None, "a well-formed module passes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_sending_a_malformed_frame_fails_the_test() {
    let test = start("raw-malformed", "malformed").await;
    // The node closes the connection as a protocol violation; the module
    // then exits 1 and is restarted as a crash.
    test.manager()
        .wait_for("raw-malformed", blvm_module_testkit::DEADLINE, |s| {
            s.restarts > 0 || !s.crashes.is_empty()
        })
        .await
        .expect("the node ends the module's connection");
    let failure = finish_failure(test).await.expect("finish fails the test");
    assert!(failure.contains("broke the protocol"), "{failure}");
    assert!(failure.contains("raw-malformed"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_params_do_not_decode_fails_the_test() {
    let test = start("raw-bad-params", "bad-params").await;
    let sent = test.wait_for_request(|r| r.method == "get_block").await;
    assert_eq!(sent.error, Some(blvm_module_protocol::ErrorCode::InvalidParams));
    let failure = finish_failure(test).await.expect("finish fails the test");
    assert!(
        failure.contains("`get_block` with params its type does not accept"),
        "{failure}"
    );
}
