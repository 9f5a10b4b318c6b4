//! Tests with real processes: `/bin/sh` scripts stand in for modules.
//!
//! Each test works in its own directory. Exits are awaited on the watch
//! with a generous timeout, never by sleeping and checking. Teardown tests
//! run once per teardown kind available (cgroup mode is skipped, with the
//! reason printed, only on a host without a writable cgroup v2).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::tree;
use super::*;

/// Long enough for a loaded CI machine; a hang fails instead of blocking.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let path = std::env::temp_dir().join(format!("blvm-process-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir is writable");
        TestDir(path)
    }

    /// Writes an executable `#!/bin/sh` script.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
        path
    }

    fn request(&self, name: &str, binary: PathBuf) -> SpawnRequest {
        SpawnRequest {
            module_id: format!("{name}-id"),
            name: name.to_owned(),
            version: "1.2.3".to_owned(),
            binary,
            working_dir: self.0.join("work"),
            socket_path: self.0.join("node.sock"),
            token: format!("token-{name}-{}", std::process::id()),
            data_dir: self.0.clone(),
            extra_env: Vec::new(),
            sandbox: None,
            disk_images: None,
        }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One spawner per teardown kind this host supports.
fn spawners() -> Vec<ModuleProcessSpawner> {
    let mut all = vec![ModuleProcessSpawner::new(SpawnerConfig::without_cgroup())];
    let config = SpawnerConfig::default();
    let detected = config.cgroup_parent.clone();
    let cgroup = ModuleProcessSpawner::new(config);
    if cgroup.teardown_kind() == TeardownKind::Cgroup {
        all.push(cgroup);
    } else {
        eprintln!("skipping cgroup teardown: no writable cgroup v2 (detected parent: {detected:?})");
    }
    all
}

/// Spawns, or fails the test. (A script written just before may still be
/// open for writing in a child another test thread forked: the spawner
/// itself waits that out, see `start_retrying_busy_text`.)
fn spawn(spawner: &ModuleProcessSpawner, req: &SpawnRequest) -> ModuleProcess {
    spawner.spawn(req).unwrap_or_else(|e| panic!("spawn failed: {e}"))
}

async fn wait_exit(p: &ModuleProcess, timeout: Duration) -> ExitInfo {
    let mut rx = p.exit_watch();
    let info = tokio::time::timeout(timeout, rx.wait_for(Option::is_some))
        .await
        .unwrap_or_else(|_| panic!("module pid {} did not exit within {timeout:?}", p.pid()))
        .expect("the waiter thread keeps the sender until it publishes");
    info.expect("wait_for returned a Some")
}

/// Polls until `f` returns `Some` (for state a script sets up in the
/// background, which has no event to wait on), or panics after 20 s.
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_pid(path: &Path) -> i32 {
    poll("pid file", || {
        std::fs::read_to_string(path)
            .ok()?
            .strip_suffix('\n')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn exit_status_is_noticed() {
    for spawner in spawners() {
        let dir = TestDir::new(&format!("exit-{:?}", spawner.teardown_kind()));
        let p = spawn(&spawner, &dir.request("exit3", dir.script("m", "exit 3")));
        let info = wait_exit(&p, EXIT_TIMEOUT).await;
        assert_eq!(
            info,
            ExitInfo {
                code: Some(3),
                signal: None
            }
        );
        assert!(!info.is_clean());
        assert_eq!(info.describe(), "exit status 3");
        assert_eq!(p.exit_info(), Some(info));

        let p = spawn(&spawner, &dir.request("exit0", dir.script("ok", "exit 0")));
        assert!(wait_exit(&p, EXIT_TIMEOUT).await.is_clean());
    }
}

#[tokio::test]
async fn death_by_signal_is_noticed() {
    let dir = TestDir::new("signal");
    let spawner = ModuleProcessSpawner::new(SpawnerConfig::default());
    let p = spawn(&spawner, &dir.request("kill9", dir.script("m", "kill -9 $$")));
    let info = wait_exit(&p, EXIT_TIMEOUT).await;
    assert_eq!(
        info,
        ExitInfo {
            code: None,
            signal: Some(9)
        }
    );
    assert_eq!(info.describe(), "killed by signal 9 (SIGKILL)");

    let p = spawn(&spawner, &dir.request("term", dir.script("t", "exec sleep 600")));
    assert_eq!(p.exit_info(), None);
    p.signal(Signal::TERM).expect("process is alive");
    assert_eq!(wait_exit(&p, EXIT_TIMEOUT).await.signal, Some(15));
    // Reaped: its pid may be someone else's now, so nothing is sent.
    let err = p.signal(Signal::TERM).expect_err("process was reaped");
    assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::SRCH.raw_os_error()));
}

#[tokio::test]
async fn environment_is_exactly_the_documented_set() {
    let dir = TestDir::new("env");
    let spawner = ModuleProcessSpawner::new(SpawnerConfig::without_cgroup());
    let mut req = dir.request("envcheck", dir.script("m", "sleep 600"));
    req.extra_env = vec![("EXTRA".into(), "x y".into()), (ENV_TOKEN.into(), "forged".into())];
    let p = spawn(&spawner, &req);
    // The shell's own environment block is exactly what exec was given
    // (`env` in a script would also show the PWD dash adds).
    let raw = std::fs::read(format!("/proc/{}/environ", p.pid())).expect("environ of own child");
    let got: BTreeMap<String, String> = raw
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('=').expect("NAME=value");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let mut want = BTreeMap::from([
        ("PATH".to_owned(), MODULE_PATH.to_owned()),
        (ENV_SOCKET.to_owned(), req.socket_path.display().to_string()),
        (ENV_MODULE_ID.to_owned(), req.module_id.clone()),
        (ENV_MODULE_NAME.to_owned(), req.name.clone()),
        (ENV_MODULE_VERSION.to_owned(), req.version.clone()),
        (ENV_TOKEN.to_owned(), req.token.clone()),
        (ENV_DATA_DIR.to_owned(), req.data_dir.display().to_string()),
        ("EXTRA".to_owned(), "x y".to_owned()),
    ]);
    for var in PASSED_THROUGH {
        if let Ok(v) = std::env::var(var) {
            want.insert(var.to_owned(), v);
        }
    }
    assert_eq!(got, want);
    // Its current directory is the (created) working dir.
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", p.pid())).expect("cwd of own child");
    assert_eq!(cwd, req.working_dir.canonicalize().expect("working dir exists"));
    // stdin is /dev/null.
    let stdin = std::fs::read_link(format!("/proc/{}/fd/0", p.pid())).expect("fd 0 of own child");
    assert_eq!(stdin, Path::new("/dev/null"));
    // Its own process group.
    let stat = tree::read_stat(p.pid() as i32).expect("stat of own child");
    assert_eq!(stat.pgrp, p.pid() as i32);
}

#[tokio::test]
async fn node_descriptors_without_cloexec_do_not_reach_the_module() {
    for spawner in spawners() {
        let dir = TestDir::new(&format!("fds-{:?}", spawner.teardown_kind()));
        let script = dir.script("m", "exec sleep 600");
        // A descriptor the node holds open without close-on-exec, as a
        // careless library might leave one.
        let leaked = std::fs::File::open(&script).expect("open a file");
        rustix::io::fcntl_setfd(&leaked, rustix::io::FdFlags::empty()).expect("clear FD_CLOEXEC");
        let p = spawn(&spawner, &dir.request("fds", script));
        // `sleep` has what `exec` let through: wait until it is running.
        poll("exec of sleep", || {
            let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.pid())).ok()?;
            cmdline.starts_with(b"sleep").then_some(())
        });
        let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{}/fd", p.pid()))
            .expect("fds of own child")
            .map(|e| {
                let name = e.expect("fd entry").file_name();
                name.to_str().and_then(|n| n.parse().ok()).expect("numeric fd")
            })
            .collect();
        fds.sort_unstable();
        assert_eq!(fds, [0, 1, 2], "inherited fds (the node's open file is {leaked:?})");
        drop(leaked);
    }
}

#[test]
fn variable_names_match_the_sdk() {
    use blvm_sdk::env;
    assert_eq!(
        [
            ENV_SOCKET,
            ENV_MODULE_ID,
            ENV_MODULE_NAME,
            ENV_MODULE_VERSION,
            ENV_TOKEN,
            ENV_DATA_DIR
        ],
        [
            env::SOCKET,
            env::MODULE_ID,
            env::MODULE_NAME,
            env::MODULE_VERSION,
            env::TOKEN,
            env::DATA_DIR
        ]
    );
}

/// Waits until `pid` leads its own process group, i.e. `setsid` ran.
fn wait_setsid(pid: i32) {
    poll("setsid in the grandchild", || {
        (tree::read_stat(pid)?.pgrp == pid).then_some(())
    });
}

#[tokio::test]
async fn kill_tree_reaches_a_setsid_grandchild() {
    for spawner in spawners() {
        let kind = spawner.teardown_kind();
        let dir = TestDir::new(&format!("setsid-{kind:?}"));
        let body = r#"setsid sh -c "sleep 600" & echo $! > "$BLVM_MODULE_DATA_DIR/gc.pid"; sleep 600"#;
        let p = spawn(&spawner, &dir.request("setsid", dir.script("m", body)));
        let grandchild = read_pid(&dir.0.join("gc.pid"));
        wait_setsid(grandchild);
        assert_eq!(p.teardown_kind(), kind);

        p.kill_tree().expect("kill_tree");
        assert!(
            tree::is_gone(grandchild),
            "{kind:?}: setsid grandchild {grandchild} survived"
        );
        assert!(tree::is_gone(p.pid() as i32));
        assert_eq!(wait_exit(&p, EXIT_TIMEOUT).await.signal, Some(9));
        // Idempotent, also once everything is dead and reaped.
        p.kill_tree().expect("second kill_tree");
        p.kill_tree().expect("third kill_tree");
    }
}

#[tokio::test]
async fn kill_tree_reaches_an_orphaned_setsid_grandchild() {
    for spawner in spawners() {
        let kind = spawner.teardown_kind();
        let dir = TestDir::new(&format!("orphan-{kind:?}"));
        // The main process exits once the grandchild has its own session, so
        // the grandchild is re-parented away from the module's tree.
        let body = r#"setsid sh -c "sleep 600" & echo $! > "$BLVM_MODULE_DATA_DIR/gc.pid"
while [ "$(cut -d' ' -f5 /proc/$!/stat)" != "$!" ]; do :; done
exit 0"#;
        let p = spawn(&spawner, &dir.request("orphan", dir.script("m", body)));
        let grandchild = read_pid(&dir.0.join("gc.pid"));
        assert!(wait_exit(&p, EXIT_TIMEOUT).await.is_clean());
        assert!(!tree::is_gone(grandchild), "grandchild should outlive the main process");

        p.kill_tree().expect("kill_tree");
        assert!(
            tree::is_gone(grandchild),
            "{kind:?}: orphaned grandchild {grandchild} survived"
        );
    }
}

#[tokio::test]
async fn drop_kills_the_tree_and_removes_the_cgroup() {
    for spawner in spawners() {
        let kind = spawner.teardown_kind();
        let dir = TestDir::new(&format!("drop-{kind:?}"));
        let body = r#"sleep 600 & echo $! > "$BLVM_MODULE_DATA_DIR/c.pid"; sleep 600"#;
        let p = spawn(&spawner, &dir.request("drop", dir.script("m", body)));
        let child = read_pid(&dir.0.join("c.pid"));
        let pid = p.pid() as i32;
        let cgroup = p.cgroup_path().map(Path::to_owned);
        assert_eq!(cgroup.is_some(), kind == TeardownKind::Cgroup);
        if let Some(cgroup) = &cgroup {
            // The module joined its group (before exec, or exec would have failed).
            let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup of own child");
            let name = cgroup.file_name().and_then(|n| n.to_str()).expect("utf-8 group name");
            assert!(own.lines().any(|l| l.starts_with("0::") && l.ends_with(name)), "{own}");
            assert!(cgroup.exists());
        }
        drop(p);
        assert!(
            tree::is_gone(pid) && tree::is_gone(child),
            "{kind:?}: drop left processes"
        );
        if let Some(cgroup) = cgroup {
            assert!(!cgroup.exists(), "cgroup {} not removed", cgroup.display());
        }
    }
}

#[tokio::test]
async fn megabytes_on_stdout_and_stderr_never_block() {
    for spawner in spawners() {
        let dir = TestDir::new(&format!("flood-{:?}", spawner.teardown_kind()));
        // 20 MB without a newline on stdout, 20 MB of short lines on stderr,
        // both at once: far beyond the 64 KiB a pipe holds.
        // A closed pipe would also let the writers finish (with EPIPE), so
        // the script checks that every write succeeded.
        let body = r#"(head -c 20000000 /dev/zero | tr '\0' x) & out=$!
yes 0123456789abcdef | head -c 20000000 >&2 || exit 8
wait $out || exit 9
exit 5"#;
        let p = spawn(&spawner, &dir.request("flood", dir.script("m", body)));
        assert_eq!(wait_exit(&p, Duration::from_secs(120)).await.code, Some(5));
    }
}

#[tokio::test]
async fn usage_counts_every_process_of_the_module() {
    for spawner in spawners() {
        let kind = spawner.teardown_kind();
        let dir = TestDir::new(&format!("usage-{kind:?}"));
        let p = spawn(
            &spawner,
            &dir.request("usage", dir.script("m", "sleep 600 & sleep 600")),
        );
        let usage = poll("three processes", || Some(p.usage()).filter(|u| u.processes == 3));
        assert!(usage.rss_bytes > 0, "{kind:?}: {usage:?}");
        p.kill_tree().expect("kill_tree");
        wait_exit(&p, EXIT_TIMEOUT).await;
        assert_eq!(p.usage().processes, 0);
        assert_eq!(p.usage().rss_bytes, 0);
    }
}

#[test]
fn spawn_errors_name_module_binary_and_cause() {
    let dir = TestDir::new("errors");
    let spawner = ModuleProcessSpawner::new(SpawnerConfig::default());
    let missing = dir.0.join("no-such-binary");
    let err = spawner
        .spawn(&dir.request("ghost", missing.clone()))
        .expect_err("binary is missing");
    let msg = err.to_string();
    assert!(
        msg.contains("ghost-id") && msg.contains(&missing.display().to_string()),
        "{msg}"
    );
    assert!(
        matches!(err.kind(), SpawnErrorKind::Exec(e) if e.kind() == std::io::ErrorKind::NotFound),
        "{msg}"
    );
    // A failed spawn leaves no cgroup behind.
    if let Some(parent) = spawner.cgroup_parent() {
        let left = std::fs::read_dir(parent)
            .expect("cgroup parent")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("ghost-id-"));
        assert!(!left);
    }

    let err = spawner
        .spawn(&dir.request("rel", PathBuf::from("bin/m")))
        .expect_err("relative");
    assert!(matches!(err.kind(), SpawnErrorKind::RelativeBinary));
    assert_eq!(err.module_id(), "rel-id");
    assert_eq!(err.binary(), Path::new("bin/m"));
}

#[test]
fn exit_info_descriptions() {
    let sig = |s| ExitInfo {
        code: None,
        signal: Some(s),
    };
    assert_eq!(sig(11).describe(), "killed by signal 11 (SIGSEGV)");
    assert_eq!(sig(40).describe(), "killed by signal 40");
    assert_eq!(
        ExitInfo {
            code: Some(0),
            signal: None
        }
        .describe(),
        "exit status 0"
    );
    assert!(ExitInfo {
        code: Some(0),
        signal: None
    }
    .is_clean());
    assert!(!sig(9).is_clean());
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ModuleProcess>();
    check::<ModuleProcessSpawner>();
    check::<SpawnError>();
}

#[test]
fn a_stopped_module_process_is_seen_stopped_until_it_is_continued() {
    let dir = TestDir::new("stopped");
    let binary = dir.script("frozen", "exec sleep 600");
    let spawner = ModuleProcessSpawner::new(SpawnerConfig::without_cgroup());
    let process = spawn(&spawner, &dir.request("frozen", binary));
    let pid = rustix::process::Pid::from_raw(process.pid() as i32).expect("a spawned pid is positive");
    // The process is our child: waitid with WNOWAIT reports its stop and
    // its resumption as they happen, leaving both for the waiter thread.
    let wait = |options: rustix::process::WaitIdOptions| loop {
        match rustix::process::waitid(
            rustix::process::WaitId::Pid(pid),
            options | rustix::process::WaitIdOptions::NOWAIT,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other.expect("waitid on our own child"),
        }
    };
    assert_eq!(process.stopped(), None);
    process.signal(Signal::STOP).expect("SIGSTOP");
    wait(rustix::process::WaitIdOptions::STOPPED);
    assert_eq!(process.stopped(), Some(Stopped::BySignal));
    assert!(process.stopped().is_some_and(|s| s.describe().contains("SIGSTOP")));
    process.signal(Signal::CONT).expect("SIGCONT");
    wait(rustix::process::WaitIdOptions::CONTINUED);
    assert_eq!(process.stopped(), None);
    process.kill_tree().expect("killed");
}
