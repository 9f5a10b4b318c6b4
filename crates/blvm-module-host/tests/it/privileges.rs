//! Process privileges of a sandboxed module (issue 5, "Process"), with
//! real processes: under a root node a module runs as its own uid and gid
//! (never `nobody`, never another module's), cannot signal or trace the
//! node, gains nothing from a setuid binary, and dies with the node
//! (`PR_SET_PDEATHSIG`) — while the node keeps answering.
//! The uid tests need root (CI runs as root); without it they say so and
//! pass, as there is no uid to drop.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use blvm_module_host::manager::{ManagerConfig, ModuleManager, ModuleState};

use crate::support::{is_root, module_bin, temp_dir, DEADLINE};

/// `nobody`/`nogroup`: what modules ran as before each had its own ids.
const NOBODY: u32 = 65534;

/// Set (to a directory holding `modules/`) when this test binary is
/// re-executed as the node of [`module_dies_when_its_node_is_killed`].
const NODE_PROCESS_ENV: &str = "BLVM_IT_PRIVILEGES_NODE_ROOT";

/// Installs the attacker module under `modules_dir/<name>`, allowed to
/// read and write its data dir.
fn install(modules_dir: &Path, name: &str) {
    let dir = modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin("attacker-module"), dir.join(name)).expect("copy binary");
    let manifest = format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [\"subscribe_events\", \"read_filesystem\", \"write_filesystem\"]\n"
    );
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
}

/// A manager with the default sandbox (so the default `run_as`) over the
/// modules in `root/modules`, started and with every module loaded.
async fn start_node(root: &Path) -> (ModuleManager, PathBuf) {
    let data_dir = root.join("data");
    let mut config = ManagerConfig::new(root.join("modules"), &data_dir, root.join("sock"));
    config.handshake_timeout = Duration::from_secs(30);
    config.shutdown_grace = Duration::from_secs(3);
    let manager = crate::support::start_manager(root, config).await;
    let report = manager.auto_load_modules().await.expect("loaded");
    assert!(report.failed.is_empty(), "{report:?}");
    (manager, data_dir)
}

/// Asks module `name` to run `method` on `arg`; its answer.
async fn call(manager: &ModuleManager, name: &str, method: &str, arg: &str) -> String {
    crate::support::module_call_text(manager, name, method, arg).await
}

/// The node still serves another module: a request to the bystander is
/// answered (its `read` of `/etc/shadow` is refused, as always).
async fn node_answers(manager: &ModuleManager) {
    let answer = call(manager, "bystander", "read", "/etc/shadow").await;
    assert!(answer.starts_with("BLOCKED"), "bystander: {answer}");
}

/// A field of `/proc/<pid>/status`, trimmed.
fn proc_status(pid: u32, field: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_runs_as_its_own_uid_and_cannot_signal_trace_or_setuid_its_way_up() {
    if !is_root() {
        eprintln!("not root: the node has no uid to drop; nothing to test");
        return;
    }
    let root = temp_dir("privileges");
    install(&root.join("modules"), "attacker");
    install(&root.join("modules"), "bystander");
    let (manager, data_dir) = start_node(&root).await;

    let status = manager.module_status("attacker").expect("status");
    for layer in ["uid-drop", "no-new-privs", "pdeathsig"] {
        assert!(
            status.sandbox_layers.iter().any(|l| l == layer),
            "{layer} in {:?}",
            status.sandbox_layers
        );
    }
    let pid = status.pid.expect("pid");
    let ids = status.run_as.expect("dropped to its own ids");
    let bystander = manager
        .module_status("bystander")
        .and_then(|s| s.run_as)
        .expect("bystander ids");
    assert_ne!(ids.uid, NOBODY, "not nobody");
    assert_ne!(ids.uid, bystander.uid, "not another module's uid");
    assert_ne!(ids.gid, bystander.gid, "not another module's gid");
    assert!(
        ids.uid >= blvm_module_host::sandbox::Identity::DEFAULT_FIRST_UID,
        "from the node's range: {ids:?}"
    );
    let own_uid = format!("{0}\t{0}\t{0}\t{0}", ids.uid);
    let own_gid = format!("{0}\t{0}\t{0}\t{0}", ids.gid);
    assert_eq!(
        proc_status(pid, "Uid:").as_deref(),
        Some(own_uid.as_str()),
        "real, effective, saved, fs uid"
    );
    assert_eq!(
        proc_status(pid, "Gid:").as_deref(),
        Some(own_gid.as_str()),
        "real, effective, saved, fs gid"
    );
    assert_eq!(
        proc_status(pid, "Groups:").as_deref(),
        Some(""),
        "no supplementary groups"
    );
    // It reached everything it needs: handshake (socket), exec (staged
    // binary), its own data dir.
    let own = data_dir.join("attacker").join("mine");
    let answer = call(&manager, "attacker", "write", own.to_str().expect("utf8")).await;
    assert!(answer.starts_with("ALLOWED"), "own data dir: {answer}");
    // The staged binary is the node's, executable but neither readable
    // nor writable by the module (so the kernel made it non-dumpable).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    let meta = std::fs::metadata(&exe).expect("staged binary");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o511, "{}", exe.display());
    // Non-dumpable: the kernel gives its /proc files to root.
    let environ = std::fs::metadata(format!("/proc/{pid}/environ")).expect("environ");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&environ),
        0,
        "/proc/{pid}/environ belongs to root (non-dumpable)"
    );
    let answer = call(&manager, "attacker", "read", exe.to_str().expect("utf8")).await;
    assert!(answer.starts_with("BLOCKED"), "read its binary: {answer}");
    let answer = call(&manager, "attacker", "write", exe.to_str().expect("utf8")).await;
    assert!(answer.starts_with("BLOCKED"), "rewrite its binary: {answer}");

    // Signalling the node: kill(2) is not filtered by seccomp; the node is
    // outside the module's pid namespace, so its pid names nothing there
    // (ESRCH), and the uid would refuse it too (EPERM).
    let node = std::process::id().to_string();
    let answer = call(&manager, "attacker", "signal-node", &node).await;
    assert!(
        answer.starts_with("BLOCKED")
            && (answer.contains("No such process") || answer.contains("Operation not permitted")),
        "SIGTERM to the node: {answer}"
    );
    node_answers(&manager).await;

    // Tracing the node: seccomp refuses ptrace(2) first (EPERM); the uid
    // drop would refuse it too.
    let answer = call(&manager, "attacker", "ptrace-node", &node).await;
    assert!(
        answer.starts_with("BLOCKED") && answer.contains("Operation not permitted"),
        "PTRACE_ATTACH to the node: {answer}"
    );
    node_answers(&manager).await;

    // A setuid-root binary in its data dir (placed by someone with root's
    // rights, through the module's own root: its data dir is a file
    // system only its mount namespace shows): no_new_privs makes exec
    // ignore the setuid bit.
    let setuid_id = data_dir.join("attacker").join("id");
    let seen_by_host = Path::new(&format!("/proc/{pid}/root")).join(setuid_id.strip_prefix("/").expect("absolute"));
    std::fs::copy("/usr/bin/id", &seen_by_host).expect("copy id");
    let setuid_id = seen_by_host;
    rustix::fs::chown(&setuid_id, Some(rustix::fs::Uid::ROOT), Some(rustix::fs::Gid::ROOT)).expect("chown root");
    std::fs::set_permissions(&setuid_id, std::fs::Permissions::from_mode(0o4755)).expect("chmod 4755");
    let in_module = data_dir.join("attacker").join("id");
    let answer = call(&manager, "attacker", "exec", in_module.to_str().expect("utf8")).await;
    if let Some(ran) = answer.strip_prefix("RAN ") {
        assert!(ran.contains(&format!("uid={}", ids.uid)), "id ran: {ran}");
        assert!(!ran.contains("euid=0"), "the setuid bit gave root: {ran}");
        eprintln!("setuid binary ran without privilege (stopped by no-new-privs): {ran}");
    } else {
        assert!(answer.starts_with("BLOCKED"), "{answer}");
        eprintln!("setuid binary could not be executed (Landlock/exec): {answer}");
    }
    node_answers(&manager).await;

    let status = manager.module_status("attacker").expect("status");
    assert_eq!(status.state, ModuleState::Running, "{status:?}");
    assert_eq!(status.pid, Some(pid), "the attacker was never restarted");
    manager.shutdown().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// The node of [`module_dies_when_its_node_is_killed`], when this binary
/// is re-executed with [`NODE_PROCESS_ENV`] set: starts a manager over
/// the modules installed there, prints `MODULE_PID <pid>` and waits to be
/// killed. Without the variable (every ordinary run) it does nothing.
#[test]
fn node_process_for_the_death_signal_test() {
    let Some(root) = std::env::var_os(NODE_PROCESS_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (manager, _) = start_node(Path::new(&root)).await;
        let pid = manager.module_status("victim").and_then(|s| s.pid).expect("pid");
        println!("MODULE_PID {pid}");
        // Killed by the test; never returns.
        std::future::pending::<()>().await;
    });
}

/// A node killed with SIGKILL runs no teardown; the kernel's
/// `PR_SET_PDEATHSIG` must still take its module down.
#[test]
fn module_dies_when_its_node_is_killed() {
    if std::env::var_os(NODE_PROCESS_ENV).is_some() {
        return;
    }
    let root = temp_dir("pdeathsig");
    install(&root.join("modules"), "victim");
    let exe = std::env::current_exe().expect("test binary");
    let mut node = Command::new(exe)
        .args([
            "--exact",
            "privileges::node_process_for_the_death_signal_test",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NODE_PROCESS_ENV, &root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node process");
    let stdout = node.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints `test <name> ... ` before the test's own
            // output, on the same line.
            if let Some((_, pid)) = line.split_once("MODULE_PID ") {
                let _ = tx.send(pid.trim().parse::<u32>().expect("pid"));
            }
        }
    });
    let module = match rx.recv_timeout(DEADLINE) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = node.kill();
            let _ = node.wait();
            panic!("the node printed no module pid: {e}");
        }
    };
    // The module is not our child, so it cannot be waited for; a pidfd
    // can: it becomes readable when the process exits. Opened before the
    // kill, and checked to be the module (alive, the node's child) after
    // it is open, so it cannot refer to a later process reusing the pid.
    let raw = i32::try_from(module)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("pid");
    let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).expect("pidfd");
    assert_eq!(
        proc_status(module, "PPid:").as_deref(),
        Some(node.id().to_string().as_str()),
        "the module is the node's child"
    );

    node.kill().expect("SIGKILL the node");
    node.wait().expect("reap the node");
    let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
    let timeout = rustix::event::Timespec::try_from(DEADLINE).expect("timespec");
    let ready = rustix::event::poll(&mut fds, Some(&timeout)).expect("poll");
    assert_eq!(ready, 1, "module {module} outlived its node by {DEADLINE:?}");
    let _ = std::fs::remove_dir_all(&root);
}
