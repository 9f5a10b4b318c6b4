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

/// Runs the real binary with `args`, backtraces asked for in every way.
fn blvm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_blvm-node"))
        .args(args)
        .env("RUST_BACKTRACE", "full")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .expect("blvm-node runs")
}

/// `output` failed with exactly one line on stderr, which starts with
/// `Error: <prefix>` and shows no backtrace.
#[track_caller]
fn assert_one_line_error(output: &std::process::Output, prefix: &str) {
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "one line, got:\n{err}");
    assert!(
        err.starts_with(&format!("Error: {prefix}")),
        "expected `Error: {prefix}…`, got:\n{err}"
    );
    assert!(!err.contains("backtrace") && !err.contains("panicked"), "{err}");
}

#[test]
fn every_error_is_one_line_without_a_backtrace_whatever_rust_backtrace_says() {
    let dir = std::env::temp_dir().join(format!("blvm-node-cli-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let datadir = dir.join("data");
    let datadir = datadir.to_str().expect("utf8");
    let bad_conf = dir.join("bad.toml");
    std::fs::write(&bad_conf, "network = \"regtest\"\nrpcprot = 1\n").expect("write");
    let bad_conf = bad_conf.to_str().expect("utf8");
    for (args, prefix) in [
        (vec!["--bogus"], "unexpected argument '--bogus' found".to_owned()),
        (vec!["module"], "a subcommand is missing".to_owned()),
        (
            vec!["--datadir", datadir, "--rpcbind", "localhost:80:1", "module", "list"],
            "`rpcbind`: expected an IP address, optionally with a port".to_owned(),
        ),
        (
            vec!["--datadir", datadir, "--network", "moon"],
            "`network`: expected regtest".to_owned(),
        ),
        (
            vec!["--conf", bad_conf],
            format!("{bad_conf}: line 2, column 1: unknown field `rpcprot`"),
        ),
        (
            vec!["--datadir", datadir, "import", "/nonexistent/blocks.dat"],
            "/nonexistent/blocks.dat: No such file or directory (os error 2)".to_owned(),
        ),
        (
            vec!["--datadir", datadir, "module", "list"],
            "no rpcuser/rpcpassword, and no cookie file (is the node running with this --datadir?)".to_owned(),
        ),
    ] {
        assert_one_line_error(&blvm(&args), &prefix);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rpcbind_address_and_port_is_where_the_node_listens_and_a_second_node_on_its_datadir_says_so_in_one_line() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("blvm-node-cli-rpcbind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let datadir = dir.to_str().expect("utf8").to_owned();
    // `rpcport` names a port the test holds: only rpcbind's own port (0, a
    // free one) lets the node start, as Core's port in -rpcbind wins.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let busy_port = busy.local_addr().expect("addr").port().to_string();
    let mut node = Command::new(env!("CARGO_BIN_EXE_blvm-node"))
        .args(["--datadir", &datadir, "--block-interval", "0", "--rpcport", &busy_port])
        .args(["--rpcbind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("blvm-node starts");
    let stdout = node.stdout.take().expect("stdout");
    let started = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("blvm-node started"));
    let Some(started) = started else {
        let _ = node.kill();
        let out = node.wait_with_output().expect("exits");
        panic!("no start line; stderr: {}", String::from_utf8_lossy(&out.stderr));
    };
    let rpc: std::net::SocketAddr = started
        .split("rpc=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("rpc address in the start line");
    assert_eq!(rpc.ip().to_string(), "127.0.0.1");
    assert_ne!(rpc.port().to_string(), busy_port);
    assert_ne!(rpc.port(), 0);
    let second = blvm(&["--datadir", &datadir, "--rpcbind", "127.0.0.1:0"]);
    assert_one_line_error(
        &second,
        &format!("a node is already running on {datadir} (its chain store is locked)"),
    );
    let client = blvm_node::cli::RpcClient::from_cookie(rpc, &dir.join(".cookie")).expect("cookie");
    assert_eq!(
        client.call("stop", serde_json::json!([])).expect("stop"),
        serde_json::json!("blvm-node stopping")
    );
    assert!(node.wait().expect("exits").success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_node_script_refuses_up_front_a_datadir_below_an_unsearchable_directory_without_mount_namespaces() {
    use std::os::unix::fs::PermissionsExt;
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: the script drops no uid then, so it checks nothing");
        return;
    }
    let dir = std::env::temp_dir().join(format!("blvm-node-cli-runnode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A host without mount namespaces (`unshare --mount` fails), and a
    // cargo that says it ran: the script must stop before building.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    for (name, body) in [("unshare", "exit 1"), ("cargo", "echo cargo-ran; exit 3")] {
        std::fs::write(bin.join(name), format!("#!/bin/sh\n{body}\n")).expect("fake");
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let private = dir.join("private");
    std::fs::create_dir(&private).expect("private");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/run-node.sh");
    let run = || {
        Command::new("bash")
            .arg(&script)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
            )
            .env("BLVM_DATADIR", private.join("node"))
            .output()
            .expect("bash runs")
    };
    let refused = run();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "run-node.sh: {} is not searchable by other users (mode 700), and without mount namespaces the modules' \
             own uids must pass through it: chmod o+x {}, or set BLVM_DATADIR to a directory under searchable ones",
            private.display(),
            private.display()
        )
    );
    assert!(!String::from_utf8_lossy(&refused.stdout).contains("cargo-ran"));
    // Searchable: the check passes and the script goes on to build.
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let passed = run();
    assert!(
        String::from_utf8_lossy(&passed.stdout).contains("cargo-ran"),
        "{passed:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
