//! The module manager with real module folders and real processes:
//! dependency order, crash containment, handshake deadline, unload of a
//! whole process tree, chatty modules, reload with verification.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use blvm_module_host::api::events::Outbound;
use blvm_module_host::manager::{ManagerConfig, ManagerError, ModuleManager, ModuleState, RestartPolicy};
use blvm_module_protocol::events::{Event, EventType};
use blvm_module_protocol::ErrorCode;
use blvm_testkit::MemoryChain;
use sha2::{Digest, Sha256};

use crate::support::{module_bin, temp_dir, TestNode as Node, DEADLINE};

async fn node(tag: &str) -> Node {
    // Generous: several tests spawn modules at once on a 2-core machine.
    node_with(tag, Duration::from_secs(30)).await
}

/// A manager over a fresh modules dir, with quick restarts.
async fn node_with(tag: &str, handshake_timeout: Duration) -> Node {
    Node::start(tag, |config| {
        config.restart = RestartPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            max_crashes: 3,
            window: Duration::from_secs(120),
        };
        config.handshake_timeout = handshake_timeout;
    })
    .await
}

/// A manager whose crashed modules restart after `backoff_ms` (doubling,
/// up to `max_ms`), failed at the `max_crashes`th crash.
async fn node_with_policy(tag: &str, backoff_ms: u64, max_ms: u64, max_crashes: u32) -> Node {
    Node::start(tag, |config| {
        config.restart = RestartPolicy {
            initial_backoff: Duration::from_millis(backoff_ms),
            max_backoff: Duration::from_millis(max_ms),
            max_crashes,
            window: Duration::from_secs(120),
        };
    })
    .await
}

/// The crashes the node recorded in `name`'s status, as (backoff chosen,
/// measured from crash to respawn), and checks what the policy promises:
/// the backoffs are `expected` (ms; `None`: failed, no restart) and each
/// restart came no sooner than its backoff. Timed by the node, with its
/// monotonic clock: a restart with no backoff at all would come within the
/// few ms a spawn takes, well under the first one.
#[track_caller]
fn assert_backoffs(node: &Node, name: &str, expected: &[Option<u64>]) {
    let status = node.manager.module_status(name).expect("status");
    let chosen: Vec<Option<u64>> = status
        .crashes
        .iter()
        .map(|c| c.backoff.map(|b| b.as_millis() as u64))
        .collect();
    assert_eq!(chosen, expected, "{:?}", status.crashes);
    for (crash, want) in status.crashes.iter().zip(expected) {
        match (want, crash.restarted_after) {
            (Some(ms), Some(after)) => assert!(
                after >= Duration::from_millis(*ms),
                "restarted {after:?} after a crash whose backoff is {ms} ms: {:?}",
                status.crashes
            ),
            (None, None) => {}
            (want, after) => panic!("backoff {want:?} but restarted after {after:?}: {:?}", status.crashes),
        }
    }
}

fn kill_module(pid: u32) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
}

/// Installs a module folder: manifest, a copy of a test binary, config.
fn install(node: &Node, name: &str, version: &str, bin: &str, deps: &str, config: &str) -> PathBuf {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin(bin), dir.join(name)).expect("copy binary");
    let manifest = format!(
        "name = \"{name}\"\nversion = \"{version}\"\nentry_point = \"{name}\"\n\
         capabilities = [\"read_chain_state\", \"subscribe_events\"]\n\n[dependencies]\n{deps}\n"
    );
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
    std::fs::write(dir.join("config.toml"), config).expect("config");
    dir
}

/// A bus subscriber inside the test, for lifecycle events.
fn observe(manager: &ModuleManager, types: &[EventType]) -> Receiver<Outbound> {
    let (_tx, rx) = manager.events().register("observer", "observer", "0.0.0", 10_000);
    manager.events().subscribe("observer", types);
    rx
}

/// The next observed event of type `ty`.
#[track_caller]
fn next_event(rx: &Receiver<Outbound>, ty: EventType) -> Event {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Outbound::Event(q)) if q.event.name == ty.name() => {
                return Event::decode(&q.event.name, &q.event.payload).expect("decodes")
            }
            Ok(_) => {}
            Err(e) => panic!("no {ty} event: {e}"),
        }
    }
}

async fn call(node: &Node, name: &str, method: &str) -> Result<Vec<u8>, blvm_module_protocol::RemoteError> {
    crate::support::module_call(&node.manager, name, method, &[]).await
}

fn process_exists(pid: u32) -> bool {
    // A zombie has exited; only a live process counts.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_load_in_dependency_order_and_each_failure_is_reported_by_name() {
    let node = node("deps").await;
    let observer = observe(
        &node.manager,
        &[EventType::ModuleDiscovered, EventType::ModuleStateChanged],
    );
    install(&node, "base", "1.2.0", "test-module", "", "mode = \"serve\"\n");
    install(
        &node,
        "app",
        "1.0.0",
        "test-module",
        "base = \"^1.0\"",
        "mode = \"serve\"\n",
    );
    install(
        &node,
        "cyc-a",
        "1.0.0",
        "test-module",
        "cyc-b = \"*\"",
        "mode = \"serve\"\n",
    );
    install(
        &node,
        "cyc-b",
        "1.0.0",
        "test-module",
        "cyc-a = \"*\"",
        "mode = \"serve\"\n",
    );
    install(
        &node,
        "orphan",
        "1.0.0",
        "test-module",
        "ghost = \">=1.0.0\"",
        "mode = \"serve\"\n",
    );
    install(
        &node,
        "picky",
        "1.0.0",
        "test-module",
        "base = \">=2.0.0, <3.0.0\"",
        "mode = \"serve\"\n",
    );
    install(&node, "loner", "0.1.0", "test-module", "", "mode = \"serve\"\n");
    // A broken manifest in its own folder.
    let broken = node.modules_dir.join("broken");
    std::fs::create_dir_all(&broken).expect("dir");
    std::fs::write(broken.join("module.toml"), "name = \"broken\"\nversion = \"1.2\"\n").expect("manifest");

    let report = node.manager.auto_load_modules().await.expect("started");
    let pos = |n: &str| report.loaded.iter().position(|l| l == n);
    assert!(
        pos("base").expect("base loaded") < pos("app").expect("app loaded"),
        "{report:?}"
    );
    assert!(pos("loner").is_some(), "{report:?}");
    let reason = |n: &str| {
        report
            .failed
            .iter()
            .find(|(k, _)| k.contains(n))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(
        reason("cyc-a").contains("cyc-b") && reason("cyc-a").contains("cycle"),
        "{}",
        reason("cyc-a")
    );
    assert!(reason("cyc-b").contains("cyc-a"), "{}", reason("cyc-b"));
    assert!(reason("orphan").contains("ghost"), "{}", reason("orphan"));
    assert!(
        reason("picky").contains(">=2.0.0") && reason("picky").contains("1.2.0"),
        "{}",
        reason("picky")
    );
    assert!(reason("broken").contains("`version`"), "{}", reason("broken"));
    for name in ["base", "app", "loner"] {
        assert_eq!(
            node.manager.module_status(name).expect("status").state,
            ModuleState::Running
        );
    }
    // Every valid folder was announced as discovered, at the moment it happened.
    let mut discovered = Vec::new();
    for _ in 0..7 {
        if let Event::ModuleDiscovered(d) = next_event(&observer, EventType::ModuleDiscovered) {
            assert_eq!(d.source, "filesystem");
            discovered.push(d.module_name);
        }
    }
    discovered.sort();
    assert_eq!(
        discovered,
        ["app", "base", "cyc-a", "cyc-b", "loner", "orphan", "picky"]
    );
    // Each load starts with `unloaded` → `loading`, in load order.
    let mut loading = Vec::new();
    while loading.len() < report.loaded.len() {
        if let Event::ModuleStateChanged(c) = next_event(&observer, EventType::ModuleStateChanged) {
            if c.old_state == "unloaded" && c.new_state == "loading" {
                loading.push(c.module_name);
            }
        }
    }
    assert_eq!(loading, report.loaded);
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_config_section_is_merged_over_the_modules_own_config() {
    let node = Node::start("config", |config| {
        // The module's config.toml says crash; the operator's section wins.
        config.module_configs.insert(
            "tuned".into(),
            BTreeMap::from([("mode".to_string(), "serve".to_string())]),
        );
    })
    .await;
    install(
        &node,
        "tuned",
        "1.0.0",
        "test-module",
        "",
        "mode = \"crash\"\nextra = \"kept\"\n",
    );
    node.manager.auto_load_modules().await.expect("started");
    assert_eq!(
        call(&node, "tuned", "flood").await.expect("serving, not crashing"),
        b"flooded"
    );
    let status = node.manager.module_status("tuned").expect("status");
    assert_eq!((status.state, status.restarts), (ModuleState::Running, 0));
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_module_is_restarted_with_backoff_and_its_pending_request_fails_typed() {
    // 300 ms, doubling, capped at 800 ms; failed at the fourth crash.
    let node = node_with_policy("sigkill", 300, 800, 4).await;
    let observer = observe(&node.manager, &[EventType::ModuleCrashed]);
    install(&node, "victim", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    let report = node.manager.auto_load_modules().await.expect("started");
    assert_eq!(report.loaded, vec!["victim".to_string()], "{report:?}");
    let before = node.manager.module_status("victim").expect("status");
    let pid = before.pid.expect("pid");
    assert!(before.usage.expect("usage").rss_bytes > 0);
    // A request the module holds without answering...
    let pending = {
        let node_ref = &node;
        async move { call(node_ref, "victim", "hold").await }
    };
    let kill = async {
        // ...is in flight when the module is killed.
        tokio::task::yield_now().await;
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).expect("pid"),
            rustix::process::Signal::KILL,
        )
        .expect("kill");
    };
    let (answer, ()) = tokio::join!(pending, kill);
    assert_eq!(answer.expect_err("no answer").code, ErrorCode::ModuleCrashed);
    let Event::ModuleCrashed(crash) = next_event(&observer, EventType::ModuleCrashed) else {
        unreachable!()
    };
    assert_eq!(
        (crash.module_name.as_str(), crash.signal, crash.will_restart),
        ("victim", Some(9), true)
    );
    let after = node
        .manager
        .wait_for("victim", DEADLINE, |s| {
            s.state == ModuleState::Running && s.restarts == 1
        })
        .await
        .expect("restarted");
    assert_ne!(after.pid, Some(pid));
    assert_eq!(call(&node, "victim", "flood").await.expect("serves again"), b"flooded");
    // Two more kills: each restart waits twice as long, up to the cap.
    for restarts in 2..=3 {
        kill_module(node.manager.module_status("victim").and_then(|s| s.pid).expect("pid"));
        node.manager
            .wait_for("victim", DEADLINE, |s| {
                s.state == ModuleState::Running && s.restarts == restarts
            })
            .await
            .expect("restarted");
    }
    assert_backoffs(&node, "victim", &[Some(300), Some(600), Some(800)]);
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_crashing_at_every_start_ends_up_failed_after_the_configured_count() {
    // 400 ms, then 800 ms; the third crash leaves it failed.
    let node = node_with_policy("crashloop", 400, 10_000, 3).await;
    let observer = observe(&node.manager, &[EventType::ModuleCrashed]);
    install(&node, "steady", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    install(&node, "doomed", "1.0.0", "test-module", "", "mode = \"crash\"\n");
    node.manager.auto_load_modules().await.expect("started");
    let steady_pid = node.manager.module_status("steady").and_then(|s| s.pid);
    let status = node
        .manager
        .wait_for("doomed", DEADLINE, |s| s.state == ModuleState::Failed)
        .await
        .expect("marked failed");
    assert_eq!(status.restarts, 2, "{status:?}");
    assert!(
        status.last_error.as_deref().unwrap_or("").contains("crashed 3 times"),
        "{status:?}"
    );
    assert_eq!(status.pid, None);
    let mut crashes = Vec::new();
    for _ in 0..3 {
        let Event::ModuleCrashed(c) = next_event(&observer, EventType::ModuleCrashed) else {
            unreachable!()
        };
        crashes.push((c.exit_code, c.will_restart));
    }
    assert_eq!(crashes, vec![(Some(3), true), (Some(3), true), (Some(3), false)]);
    assert_backoffs(&node, "doomed", &[Some(400), Some(800), None]);
    // The crash loop never touched its neighbour.
    let steady = node.manager.module_status("steady").expect("status");
    assert_eq!(
        (steady.state, steady.restarts, steady.pid),
        (ModuleState::Running, 0, steady_pid)
    );
    assert_eq!(call(&node, "steady", "flood").await.expect("still serving"), b"flooded");
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_that_never_completes_its_handshake_is_killed_after_the_deadline() {
    let node = node_with("silent", Duration::from_secs(2)).await;
    let dir = install(&node, "mute", "1.0.0", "silent-module", "", "");
    let manifest = blvm_module_host::registry::ModuleManifest::from_file(&dir.join("module.toml")).expect("manifest");
    let err = node
        .manager
        .load_module("mute", dir.join("mute"), manifest, BTreeMap::new())
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ManagerError::StartFailed { reason, .. } if reason.contains("no handshake within")),
        "{err}"
    );
    let status = node.manager.module_status("mute").expect("status");
    assert_eq!(status.state, ModuleState::Failed);
    // No process runs the staged binary any more.
    assert!(
        !any_process_runs(&node.data_dir.join(".staged")),
        "silent module still running"
    );
    node.manager.shutdown().await;
}

fn any_process_runs(dir: &Path) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path().join("exe")).ok().map(|exe| (e, exe)))
        .any(|(e, exe)| {
            exe.starts_with(dir)
                && e.file_name()
                    .to_str()
                    .and_then(|p| p.parse().ok())
                    .is_some_and(process_exists)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unload_leaves_no_process_behind_even_a_setsid_grandchild() {
    let node = node("setsid").await;
    let observer = observe(&node.manager, &[EventType::ModuleUnloaded]);
    install(
        &node,
        "escaper",
        "1.0.0",
        "test-module",
        "",
        "mode = \"serve\"\nignore_shutdown = \"yes\"\n",
    );
    node.manager.auto_load_modules().await.expect("started");
    let pid = node.manager.module_status("escaper").and_then(|s| s.pid).expect("pid");
    let in_namespace: u32 = String::from_utf8(call(&node, "escaper", "grandchild").await.expect("answer"))
        .expect("utf8")
        .parse()
        .expect("pid");
    // The module reports the pid it sees, in its own pid namespace.
    let grandchild = crate::support::host_pid_of(pid, in_namespace).expect("the grandchild's host pid");
    assert!(process_exists(grandchild));
    // It left the module's session and process group: it leads its own.
    let session_of = |pid: u32| -> u32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after = stat.rsplit(')').next().expect("fields");
        after
            .split_whitespace()
            .nth(3)
            .and_then(|s| s.parse().ok())
            .expect("session")
    };
    assert_eq!(session_of(grandchild), grandchild);
    assert_ne!(session_of(grandchild), session_of(pid));
    let socket = node.manager.ipc_server().expect("server").socket_path().to_path_buf();
    node.manager.unload_module("escaper").await.expect("unloaded");
    assert!(!process_exists(pid), "module {pid} survived");
    assert!(!process_exists(grandchild), "setsid grandchild {grandchild} survived");
    assert!(
        matches!(next_event(&observer, EventType::ModuleUnloaded), Event::ModuleUnloaded(u) if u.module_name == "escaper")
    );
    assert!(node.manager.module_status("escaper").is_none());
    // The node's socket is untouched: a new module still connects.
    assert!(socket.exists());
    std::fs::remove_dir_all(node.modules_dir.join("escaper")).expect("uninstall");
    install(&node, "next", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    let report = node.manager.auto_load_modules().await.expect("started");
    assert_eq!(report.loaded, vec!["next".to_string()]);
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_writing_megabytes_to_stdout_and_stderr_never_blocks() {
    let node = node("flood").await;
    install(&node, "chatty", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    node.manager.auto_load_modules().await.expect("started");
    // 8 MiB to each pipe per call, far beyond any pipe buffer.
    for _ in 0..3 {
        assert_eq!(call(&node, "chatty", "flood").await.expect("answer"), b"flooded");
    }
    node.manager.shutdown().await;
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read");
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn pin_hash(dir: &Path) {
    let name = dir.file_name().and_then(|n| n.to_str()).expect("name");
    let manifest_path = dir.join("module.toml");
    let text = std::fs::read_to_string(&manifest_path).expect("manifest");
    let text = text.split("\n[binary]").next().unwrap_or(&text).to_owned();
    let hash = sha256_hex(&dir.join(name));
    std::fs::write(&manifest_path, format!("{text}\n[binary]\nhash = \"sha256:{hash}\"\n")).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_picks_up_a_changed_binary_and_refuses_one_whose_hash_no_longer_matches() {
    let node = node("reload").await;
    let observer = observe(&node.manager, &[EventType::ModuleReloaded]);
    let dir = install(&node, "evolving", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    pin_hash(&dir);
    node.manager.auto_load_modules().await.expect("started");
    let first = node.manager.module_status("evolving").expect("status");
    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    let first_exe = exe(first.pid.expect("pid"));

    // A new build: different bytes (a trailing marker an ELF loader
    // ignores), manifest updated to its hash, version bumped.
    let binary = dir.join("evolving");
    let mut bytes = std::fs::read(&binary).expect("read");
    bytes.extend_from_slice(b"build 2");
    std::fs::remove_file(&binary).expect("remove");
    std::fs::write(&binary, &bytes).expect("write");
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let manifest = std::fs::read_to_string(dir.join("module.toml")).expect("manifest");
    std::fs::write(dir.join("module.toml"), manifest.replace("1.0.0", "1.1.0")).expect("bump");
    pin_hash(&dir);
    node.manager.reload_module("evolving").await.expect("reloaded");
    let second = node.manager.module_status("evolving").expect("status");
    assert_eq!((second.version.as_str(), second.state), ("1.1.0", ModuleState::Running));
    let second_exe = exe(second.pid.expect("pid"));
    assert_ne!(first_exe, second_exe);
    // The new build's bytes, in a staged folder of its own.
    assert_eq!(sha256_hex(&second_exe), sha256_hex(&binary), "{second_exe:?}");
    assert_ne!(first_exe.parent(), second_exe.parent());
    let Event::ModuleReloaded(u) = next_event(&observer, EventType::ModuleReloaded) else {
        unreachable!()
    };
    assert_eq!((u.old_version.as_str(), u.new_version.as_str()), ("1.0.0", "1.1.0"));

    // Tampered: bytes change, manifest does not.
    let mut bytes = std::fs::read(&binary).expect("read");
    bytes.extend_from_slice(b"evil");
    std::fs::remove_file(&binary).expect("remove");
    std::fs::write(&binary, &bytes).expect("write");
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let err = node.manager.reload_module("evolving").await.expect_err("refused");
    assert!(err.to_string().contains("sha256"), "{err}");
    // The verified module keeps running, untouched.
    let third = node.manager.module_status("evolving").expect("status");
    assert_eq!((third.pid, third.state), (second.pid, ModuleState::Running));
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_whose_new_manifest_needs_a_missing_dependency_leaves_the_module_running() {
    let node = node("reload-deps").await;
    let dir = install(&node, "steadfast", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    node.manager.auto_load_modules().await.expect("started");
    let before = node.manager.module_status("steadfast").expect("status");
    let pid = before.pid.expect("pid");
    // The update needs a module that is not loaded. Before the fix only
    // the hash was checked before stopping; the dependency check came after
    // the old process was gone, and the module vanished.
    let manifest = std::fs::read_to_string(dir.join("module.toml")).expect("manifest");
    std::fs::write(
        dir.join("module.toml"),
        manifest.replace("[dependencies]\n", "[dependencies]\nghost = \">=1.0.0\"\n"),
    )
    .expect("manifest");
    let err = node.manager.reload_module("steadfast").await.expect_err("refused");
    assert!(
        matches!(&err, ManagerError::Dependency { dependency, .. } if dependency == "ghost"),
        "{err}"
    );
    let after = node.manager.module_status("steadfast").expect("still loaded");
    assert_eq!((after.state, after.pid), (ModuleState::Running, Some(pid)));
    assert!(process_exists(pid));
    assert_eq!(call(&node, "steadfast", "flood").await.expect("serving"), b"flooded");
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_staged_binary_is_not_restarted_and_a_reload_stages_it_again() {
    let node = node("staged").await;
    let dir = install(&node, "sealed", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    node.manager.auto_load_modules().await.expect("started");
    let pid = node.manager.module_status("sealed").and_then(|s| s.pid).expect("pid");
    let staged = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    assert!(staged.starts_with(node.data_dir.join(".staged")), "{staged:?}");
    // Someone with the node's rights replaces the staged copy (0500, but
    // the directory is ours): still an executable that would run.
    let mut bytes = std::fs::read(&staged).expect("read staged");
    bytes.extend_from_slice(b"tampered");
    std::fs::remove_file(&staged).expect("unlink staged");
    std::fs::write(&staged, &bytes).expect("write staged");
    std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o500)).expect("chmod");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    // The restart hashes the staged file again and refuses to run it.
    let failed = node
        .manager
        .wait_for("sealed", DEADLINE, |s| s.state == ModuleState::Failed)
        .await
        .expect("failed instead of restarted");
    let reason = failed.last_error.clone().unwrap_or_default();
    assert!(
        reason.contains("staged binary") && reason.contains("changed") && reason.contains(&*staged.to_string_lossy()),
        "{failed:?}"
    );
    assert_eq!(failed.pid, None);
    // A reload verifies the module's own binary again and replaces the
    // bad file under the staged name rather than reusing it.
    node.manager.reload_module("sealed").await.expect("reloaded");
    assert_eq!(sha256_hex(&staged), sha256_hex(&dir.join("sealed")));
    let status = node.manager.module_status("sealed").expect("status");
    assert_eq!(status.state, ModuleState::Running);
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_directories_are_made_absolute_and_modules_still_load() {
    let root = temp_dir("relative");
    // The same directories, spelled relative to the current directory.
    let up: PathBuf = std::env::current_dir()
        .expect("cwd")
        .components()
        .skip(1)
        .map(|_| "..")
        .collect();
    let relative = |p: &Path| up.join(p.strip_prefix("/").expect("temp dirs are absolute"));
    let (modules_dir, data_dir) = (root.join("modules"), root.join("data"));
    std::fs::create_dir_all(&modules_dir).expect("modules dir");
    let config = ManagerConfig::new(
        relative(&modules_dir),
        relative(&data_dir),
        relative(&root.join("sock")),
    );
    assert!(config.data_dir.is_relative());
    let manager = ModuleManager::with_config(config);
    assert!(manager.config().data_dir.is_absolute() && manager.config().modules_dir.is_absolute());
    manager
        .start(
            root.join("sock").join("node.sock"),
            Arc::new(MemoryChain::mainnet_0_438()),
        )
        .await
        .expect("start");
    let node = Node {
        manager,
        modules_dir,
        data_dir,
    };
    install(&node, "nomad", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    let report = node.manager.auto_load_modules().await.expect("started");
    assert_eq!(report.loaded, vec!["nomad".to_string()], "{report:?}");
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_previous_spawns_delivery_stats_and_status_shows_the_new_ones() {
    let node = node("stats").await;
    install(&node, "forgetful", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    node.manager.auto_load_modules().await.expect("started");
    let first = node.manager.module_status("forgetful").expect("status");
    let old_id = first.module_id.clone().expect("module id");
    assert!(node.manager.events().get_delivery_stats(&old_id).is_some());
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first.pid.expect("pid") as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    let second = node
        .manager
        .wait_for("forgetful", DEADLINE, |s| {
            s.state == ModuleState::Running && s.restarts == 1
        })
        .await
        .expect("restarted");
    let new_id = second.module_id.clone().expect("module id");
    assert_ne!(new_id, old_id);
    // The ended spawn's counters stay readable (retired, bounded); the
    // status shows the current spawn's.
    assert!(node.manager.events().get_delivery_stats(&old_id).is_some());
    assert_eq!(second.delivery.map(|d| d.module_id), Some(new_id));
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_module_keeps_no_cgroup_until_it_is_unloaded() {
    let node = node("cgroup-left").await;
    install(&node, "lone-crasher", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    node.manager.auto_load_modules().await.expect("started");
    let groups = || -> Vec<String> {
        let Some(parent) = &node.manager.config().spawner.cgroup_parent else {
            return Vec::new();
        };
        std::fs::read_dir(parent)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            // Group names are `<module id>-<node pid>-<n>`, with `-` in the
            // id written as `_`: only this node's (another test binary
            // running the same test has a `lone_crasher_2` group too).
            .filter(|n| {
                (n.starts_with("lone-crasher-") || n.starts_with("lone_crasher_"))
                    && n.contains(&format!("-{}-", std::process::id()))
            })
            .collect()
    };
    if groups().is_empty() {
        eprintln!("skipping: modules get no cgroup on this host (no writable cgroup v2)");
        node.manager.shutdown().await;
        return;
    }
    // Three crashes in the window: failed (the test policy's cap).
    for restarts in 1..=3 {
        let pid = node
            .manager
            .wait_for("lone-crasher", DEADLINE, |s| {
                s.state == ModuleState::Running && s.restarts == restarts - 1
            })
            .await
            .and_then(|s| s.pid)
            .expect("running");
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).expect("pid"),
            rustix::process::Signal::KILL,
        )
        .expect("kill");
    }
    node.manager
        .wait_for("lone-crasher", DEADLINE, |s| s.state == ModuleState::Failed)
        .await
        .expect("failed");
    assert_eq!(
        groups(),
        Vec::<String>::new(),
        "the failed module's cgroup is still there"
    );
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_frame_carries_why_the_module_is_stopped() {
    crate::support::captured_logs();
    let node = node("reasons").await;
    for name in ["why-reload", "why-unload", "why-node-down"] {
        install(&node, name, "1.0.0", "test-module", "", "mode = \"serve\"\n");
    }
    node.manager.auto_load_modules().await.expect("started");
    node.manager.reload_module("why-reload").await.expect("reloaded");
    node.manager.unload_module("why-unload").await.expect("unloaded");
    node.manager.shutdown().await;
    // The serve mode prints the reason it was given, which the node logs
    // as the module's stdout. Before the fix every reason was "unload".
    for (name, reason) in [
        ("why-reload", "reload"),
        ("why-unload", "unload"),
        ("why-node-down", "node_shutdown"),
    ] {
        let said = format!("SHUTDOWN Some(\"{reason}\")");
        crate::support::wait_for_log(&format!("`{said}` from {name}"), |l| {
            l.contains(name) && l.contains(&said)
        });
    }
}

/// The seed's paths: `blvm_node::module::{ModuleManager, ModuleMetadata}`
/// (the node re-exports this crate as `module`). A compile-time check.
#[test]
fn seed_type_paths_resolve_at_the_crate_root() {
    use blvm_module_host::{ManagerConfig, ModuleManager, ModuleMetadata, ModuleState, ModuleStatus};
    fn seed_signature(
        _: Option<&ModuleManager>,
        _: Option<&ModuleMetadata>,
        _: Option<&ManagerConfig>,
        _: Option<&ModuleStatus>,
        _: Option<ModuleState>,
    ) {
    }
    seed_signature(None, None, None, None, None);
    let manifest = "name = \"seed\"\nversion = \"1.0.0\"\nentry_point = \"seed\"\n";
    let dir = temp_dir("seed-paths");
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
    let metadata = ModuleMetadata::from_file(&dir.join("module.toml")).expect("parses");
    assert_eq!(metadata.name().as_str(), "seed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_whose_new_process_never_starts_reports_the_old_one_unloaded_and_stays_failed() {
    let node = node_with("reload-fails", Duration::from_secs(2)).await;
    let observer = observe(&node.manager, &[EventType::ModuleUnloaded]);
    let dir = install(&node, "fickle", "1.0.0", "test-module", "", "mode = \"serve\"\n");
    node.manager.auto_load_modules().await.expect("started");
    // The new build passes every check but never completes its handshake.
    std::fs::remove_file(dir.join("fickle")).expect("remove");
    std::fs::copy(module_bin("silent-module"), dir.join("fickle")).expect("copy");
    let err = node.manager.reload_module("fickle").await.expect_err("start fails");
    assert!(matches!(err, ManagerError::StartFailed { .. }), "{err}");
    assert!(
        matches!(next_event(&observer, EventType::ModuleUnloaded), Event::ModuleUnloaded(u) if u.module_name == "fickle" && u.version == "1.0.0")
    );
    let status = node.manager.module_status("fickle").expect("kept, not removed");
    assert_eq!((status.state, status.pid), (ModuleState::Failed, None));
    assert!(
        status.last_error.as_deref().unwrap_or("").contains("no handshake"),
        "{status:?}"
    );
    node.manager.shutdown().await;
}
