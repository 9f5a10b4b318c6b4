//! Isolation *between* modules and towards the host (issue 8), attacked by
//! real modules under the default strict sandbox as root: each module has
//! its own uid and gid, pid, IPC and mount namespaces (a root holding only
//! what it needs) and a data dir that is a file system of its own. Every
//! attack must fail, and the victim, a bystander and the node keep working.
//! Requires root (CI's machine); without it each test says so and passes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use blvm_module_host::manager::{ModuleManager, ModuleState};
use blvm_module_host::sandbox::{Identity, RunAs};

use crate::support::{install_attacker as install, is_root, module_bin, temp_dir, TestNode as Node};

/// What a module that reads and writes its own data dir declares.
const OWN_DATA_DIR: &str = "\"subscribe_events\", \"read_filesystem\", \"write_filesystem\"";

async fn attack(manager: &ModuleManager, name: &str, method: &str, arg: &str) -> String {
    crate::support::module_call_text(manager, name, method, arg).await
}

#[track_caller]
fn blocked(answer: &str, what: &str) {
    assert!(answer.starts_with("BLOCKED"), "{what}: {answer}");
}

/// Loads every installed module; all must load.
async fn load_all(node: &Node, count: usize) {
    let report = node.manager.auto_load_modules().await.expect("loaded");
    assert_eq!(report.loaded.len(), count, "{report:?}");
}

fn pid(manager: &ModuleManager, name: &str) -> u32 {
    manager.module_status(name).and_then(|s| s.pid).expect("pid")
}

fn ids(manager: &ModuleManager, name: &str) -> RunAs {
    manager.module_status(name).and_then(|s| s.run_as).expect("own ids")
}

/// Field `n` (1-based, as proc(5) counts) of `/proc/<pid>/stat`.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(n - 3)
        .map(str::to_owned)
}

/// The victim is unchanged and answers: same pid, running, state `S` or
/// `R` (not stopped), nice 0, its own open-files limit.
async fn victim_is_untouched(manager: &ModuleManager, name: &str, victim: u32) {
    let status = manager.module_status(name).expect("status");
    assert_eq!(status.state, ModuleState::Running, "{status:?}");
    assert_eq!(status.pid, Some(victim), "{name} was never restarted");
    let state = stat_field(victim, 3).expect("state");
    assert!(state == "S" || state == "R", "{name} state {state}");
    assert_eq!(stat_field(victim, 19).as_deref(), Some("0"), "{name} nice");
    let limits = std::fs::read_to_string(format!("/proc/{victim}/limits")).expect("limits");
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("nofile");
    assert!(!nofile.contains(" 3 "), "{name} open files: {nofile}");
    blocked(&attack(manager, name, "read", "/etc/shadow").await, "victim answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_have_their_own_ids_and_pid_namespace_and_cannot_signal_freeze_renice_or_limit_each_other() {
    if !is_root() {
        eprintln!("not root: no uid to drop, no namespaces; nothing to test");
        return;
    }
    let node = Node::start("neighbours-signal", |_| {}).await;
    install(&node, "attacker", "\"subscribe_events\"");
    install(&node, "victim", "\"subscribe_events\"");
    load_all(&node, 2).await;
    let status = node.manager.module_status("attacker").expect("status");
    for layer in ["uid-drop", "pidns", "ipcns", "mountns", "disk-quota"] {
        assert!(
            status.sandbox_layers.iter().any(|l| l == layer),
            "{layer} in {:?}",
            status.sandbox_layers
        );
    }
    let (a, v) = (ids(&node.manager, "attacker"), ids(&node.manager, "victim"));
    assert_ne!(a.uid, v.uid, "one uid per module");
    assert_ne!(a.gid, v.gid, "one gid per module");
    for id in [a, v] {
        assert!(id.uid >= Identity::DEFAULT_FIRST_UID && id.uid != 65534, "{id:?}");
    }
    // Inside, the module is process 1 and sees no other process.
    assert_eq!(attack(&node.manager, "attacker", "getpid", "").await, "PID 1");
    let victim = pid(&node.manager, "victim");
    // Both the victim's host pid and every small pid name nothing the
    // attacker can reach.
    for target in [victim.to_string(), "2".to_owned()] {
        for method in ["kill", "stop", "renice", "sched-idle", "ioprio", "prlimit"] {
            let answer = attack(&node.manager, "attacker", method, &target).await;
            blocked(&answer, &format!("{method} {target}"));
        }
    }
    victim_is_untouched(&node.manager, "victim", victim).await;
    // The same ids survive a restart, and a new node on the same data dir.
    node.manager.reload_module("victim").await.expect("reloaded");
    assert_eq!(ids(&node.manager, "victim"), v, "stable per name");
    node.manager.shutdown().await;
    let table = std::fs::read_to_string(node.data_dir.join(".identities")).expect("identities");
    assert!(table.contains(&format!("{} victim", v.uid)), "{table}");
}

/// Runs `attacker-module --direct <method> <arg>` as `uid`:`gid`, outside
/// any sandbox, as a local user would; its answer.
fn from_outside(uid: u32, gid: u32, method: &str, arg: &str) -> String {
    use std::os::unix::process::CommandExt;
    let out = Command::new(module_bin("attacker-module"))
        .args(["--direct", method, arg])
        .uid(uid)
        .gid(gid)
        .output()
        .expect("runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_user_cannot_signal_a_module_nor_take_its_token_or_socket_even_with_its_uid() {
    if !is_root() {
        eprintln!("not root: nothing to test");
        return;
    }
    let node = Node::start("neighbours-outside", |_| {}).await;
    install(&node, "victim", "\"subscribe_events\"");
    load_all(&node, 1).await;
    let victim = pid(&node.manager, "victim");
    let own = ids(&node.manager, "victim");
    // `nobody`, which all modules once shared: another user now.
    blocked(&from_outside(65534, 65534, "kill", &victim.to_string()), "nobody kills");
    blocked(&from_outside(65534, 65534, "stop", &victim.to_string()), "nobody stops");
    blocked(
        &from_outside(65534, 65534, "read", &format!("/proc/{victim}/environ")),
        "nobody reads the token",
    );
    // Even a process of the module's own uid (the range is the node's; no
    // account has it) cannot look inside: the module is non-dumpable.
    for (method, arg) in [
        ("read", format!("/proc/{victim}/environ")),
        ("ptrace-seize", victim.to_string()),
        ("pidfd-getfd", format!("{victim} 3")),
    ] {
        blocked(
            &from_outside(own.uid, own.gid, method, &arg),
            &format!("own uid {method}"),
        );
    }
    victim_is_untouched(&node.manager, "victim", victim).await;
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_modules_files_and_the_nodes_directories_cannot_be_changed_watched_or_seen() {
    if !is_root() {
        eprintln!("not root: nothing to test");
        return;
    }
    let node = Node::start("neighbours-files", |_| {}).await;
    install(&node, "attacker", "\"subscribe_events\"");
    install(&node, "victim", OWN_DATA_DIR);
    load_all(&node, 2).await;
    let victim_dir = node.data_dir.join("victim");
    let secret = victim_dir.join("secret");
    let answer = attack(&node.manager, "victim", "write", secret.to_str().expect("utf8")).await;
    assert!(answer.starts_with("ALLOWED"), "own data dir: {answer}");
    let secret_s = secret.to_str().expect("utf8");
    for method in ["chmod", "setxattr", "utime", "stat", "read", "write", "inotify"] {
        blocked(&attack(&node.manager, "attacker", method, secret_s).await, method);
    }
    // Nothing of the node's, another module's or the host's is there to
    // stat or watch (the directories above its own paths are empty ones
    // of its own root).
    let victim = pid(&node.manager, "victim");
    let victim_binary = std::fs::read_link(format!("/proc/{victim}/exe")).expect("victim exe");
    let identities = node.data_dir.join(".identities");
    let images = node.data_dir.join(".images");
    for path in [
        victim_dir.as_path(),
        victim_binary.as_path(),
        identities.as_path(),
        images.as_path(),
        node.modules_dir.as_path(),
        Path::new("/etc/passwd"),
        Path::new("/run"),
        Path::new("/home"),
    ] {
        let path = path.to_str().expect("utf8");
        blocked(&attack(&node.manager, "attacker", "stat", path).await, path);
        blocked(&attack(&node.manager, "attacker", "inotify", path).await, path);
    }
    // The secret is as the victim left it (seen through its own root).
    let seen = Path::new(&format!("/proc/{victim}/root")).join(secret.strip_prefix("/").expect("absolute"));
    let meta = std::fs::metadata(&seen).expect("secret");
    assert_eq!(meta.uid(), ids(&node.manager, "victim").uid);
    assert_ne!(meta.permissions().mode() & 0o777, 0o777);
    assert_ne!(meta.mtime(), 0);
    victim_is_untouched(&node.manager, "victim", victim).await;
    node.manager.shutdown().await;
}

/// Whether the host's IPC namespace has a SysV object of `key` in
/// `/proc/sysvipc/<kind>`.
fn host_has_ipc_key(kind: &str, key: i32) -> bool {
    std::fs::read_to_string(format!("/proc/sysvipc/{kind}"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().next().and_then(|k| k.parse::<i32>().ok()) == Some(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysv_ipc_of_a_module_is_invisible_to_others_and_gone_when_it_is_unloaded() {
    if !is_root() {
        eprintln!("not root: nothing to test");
        return;
    }
    let node = Node::start("neighbours-ipc", |_| {}).await;
    install(&node, "attacker", "\"subscribe_events\"");
    install(&node, "victim", "\"subscribe_events\"");
    load_all(&node, 2).await;
    let key = 0x5eed_i32 + std::process::id() as i32 % 1000;
    let key_s = key.to_string();
    let made = attack(&node.manager, "victim", "shm-create", &key_s).await;
    assert!(made.starts_with("CREATED"), "shm: {made}");
    let made = attack(&node.manager, "victim", "msgq-create", &key_s).await;
    assert!(made.starts_with("ALLOWED CREATED"), "msgq: {made}");
    // The victim itself finds them again; the attacker and the host do not.
    assert!(attack(&node.manager, "victim", "shm-open", &key_s)
        .await
        .starts_with("ALLOWED"));
    blocked(
        &attack(&node.manager, "attacker", "shm-open", &key_s).await,
        "shm of another module",
    );
    blocked(
        &attack(&node.manager, "attacker", "msgq-open", &key_s).await,
        "queue of another module",
    );
    assert!(
        !host_has_ipc_key("shm", key),
        "the segment is not in the host's namespace"
    );
    assert!(
        !host_has_ipc_key("msg", key),
        "the queue is not in the host's namespace"
    );
    // Unloaded and loaded again: a fresh namespace, nothing left over.
    node.manager.unload_module("victim").await.expect("unloaded");
    let report = node.manager.auto_load_modules().await.expect("loaded again");
    assert_eq!(report.loaded, vec!["victim".to_owned()], "{report:?}");
    blocked(
        &attack(&node.manager, "victim", "shm-open", &key_s).await,
        "segment after unload",
    );
    blocked(
        &attack(&node.manager, "victim", "msgq-open", &key_s).await,
        "queue after unload",
    );
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_unix_sockets_and_another_modules_socket_are_unreachable_even_with_network_access() {
    if !is_root() {
        eprintln!("not root: nothing to test");
        return;
    }
    // A host daemon's world-connectable socket (as under /run).
    let host_dir = temp_dir("neighbours-host-socket");
    let host_socket = host_dir.join("daemon.sock");
    let _daemon = std::os::unix::net::UnixListener::bind(&host_socket).expect("bind");
    std::fs::set_permissions(&host_socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    std::fs::set_permissions(&host_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let node = Node::start("neighbours-sockets", |_| {}).await;
    install(&node, "attacker", "\"subscribe_events\"");
    install(&node, "networked", "\"network_access\"");
    install(&node, "victim", OWN_DATA_DIR);
    load_all(&node, 3).await;
    let host_s = host_socket.to_str().expect("utf8");
    for who in ["attacker", "networked"] {
        blocked(&attack(&node.manager, who, "unix-connect", host_s).await, who);
    }
    let victim_socket = node.data_dir.join("victim").join("api.sock");
    let victim_s = victim_socket.to_str().expect("utf8");
    let listening = attack(&node.manager, "victim", "unix-listen", victim_s).await;
    assert!(
        listening.starts_with("ALLOWED"),
        "victim listens in its data dir: {listening}"
    );
    for who in ["attacker", "networked"] {
        blocked(&attack(&node.manager, who, "unix-connect", victim_s).await, who);
    }
    victim_is_untouched(&node.manager, "victim", pid(&node.manager, "victim")).await;
    node.manager.shutdown().await;
    let _ = std::fs::remove_dir_all(&host_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_filling_its_data_dir_stops_at_its_quota_and_keeps_its_data_across_restarts() {
    if !is_root() {
        eprintln!("not root: nothing to test");
        return;
    }
    let node = Node::start("neighbours-disk", |_| {}).await;
    install(&node, "attacker", OWN_DATA_DIR);
    install(&node, "bystander", OWN_DATA_DIR);
    load_all(&node, 2).await;
    let quota: u64 = 16 << 20;
    let own = node.data_dir.join("attacker");
    let keep = own.join("keep");
    let kept = attack(&node.manager, "attacker", "write", keep.to_str().expect("utf8")).await;
    assert!(kept.starts_with("ALLOWED"), "{kept}");
    let answer = attack(&node.manager, "attacker", "fill-disk", own.to_str().expect("utf8")).await;
    assert!(
        answer.starts_with("BLOCKED") && answer.contains("No space left on device"),
        "fill: {answer}"
    );
    let written: u64 = answer
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .expect("bytes written");
    assert!(written <= quota, "wrote {written} bytes past a {quota}-byte quota");
    eprintln!("the module wrote {written} bytes before ENOSPC (quota {quota})");
    // The image is as big as the quota, allocated up front: the host file
    // system lost nothing to the fill.
    let image = node.data_dir.join(".images").join("attacker.ext4");
    let meta = std::fs::metadata(&image).expect("image");
    assert_eq!(meta.len(), quota);
    assert!(
        meta.blocks() * 512 <= quota + (1 << 20),
        "{} bytes on disk",
        meta.blocks() * 512
    );
    let disk = node
        .manager
        .module_status("attacker")
        .and_then(|s| s.disk)
        .expect("disk in status");
    assert!(disk.used > disk.size / 2, "{disk:?}");
    // Another module's data dir still takes writes.
    let other = node.data_dir.join("bystander").join("fine");
    let fine = attack(&node.manager, "bystander", "write", other.to_str().expect("utf8")).await;
    assert!(fine.starts_with("ALLOWED"), "bystander: {fine}");
    // Data survives a restart of the module (same file system).
    node.manager.reload_module("attacker").await.expect("reloaded");
    let read = attack(&node.manager, "attacker", "read", keep.to_str().expect("utf8")).await;
    assert!(read.starts_with("ALLOWED 5 bytes"), "after restart: {read}");
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_a_plain_data_dir_are_copied_into_the_new_image_and_given_to_the_module() {
    if !is_root() {
        eprintln!("not root: nothing to test");
        return;
    }
    let node = Node::start("neighbours-migrate", |_| {}).await;
    install(&node, "attacker", OWN_DATA_DIR);
    // What an earlier node (modules as `nobody`, no quota) left there.
    let own = node.data_dir.join("attacker");
    std::fs::create_dir_all(own.join("db")).expect("data dir");
    let old = own.join("db").join("old");
    std::fs::write(&old, b"hello").expect("old file");
    for path in [own.as_path(), own.join("db").as_path(), old.as_path()] {
        rustix::fs::chown(
            path,
            Some(rustix::fs::Uid::from_raw(65534)),
            Some(rustix::fs::Gid::from_raw(65534)),
        )
        .expect("chown");
    }
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    load_all(&node, 1).await;
    let old_s = old.to_str().expect("utf8");
    let read = attack(&node.manager, "attacker", "read", old_s).await;
    assert_eq!(read, "ALLOWED 5 bytes", "the old file is in the image");
    let write = attack(&node.manager, "attacker", "write", old_s).await;
    assert!(write.starts_with("ALLOWED"), "and the module's to write: {write}");
    let status = node.manager.module_status("attacker").expect("status");
    assert!(status.sandbox_layers.iter().any(|l| l == "disk-quota"), "{status:?}");
    node.manager.shutdown().await;
}

/// Set (to the attacker binary) when this test binary is re-executed as
/// an ordinary user for
/// [`permissive_mode_under_an_ordinary_user_lists_each_namespace_and_the_disk_quota_as_missing`].
const ORDINARY_USER_ENV: &str = "BLVM_IT_NEIGHBOURS_ORDINARY_USER";

/// The node of the permissive-mode test, when this binary is re-executed
/// with [`ORDINARY_USER_ENV`] set (as `nobody`): loads the attacker in
/// permissive mode and prints `LAYERS <layer> …`. Does nothing otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_user_node_for_the_permissive_mode_test() {
    let Some(binary) = std::env::var_os(ORDINARY_USER_ENV) else {
        return;
    };
    let node = Node::start("neighbours-ordinary", |c| {
        c.sandbox.mode = blvm_module_host::sandbox::SandboxMode::Permissive;
    })
    .await;
    let dir = node.modules_dir.join("attacker");
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(binary, dir.join("attacker")).expect("copy binary");
    std::fs::write(
        dir.join("module.toml"),
        "name = \"attacker\"\nversion = \"1.0.0\"\nentry_point = \"attacker\"\ncapabilities = []\n",
    )
    .expect("manifest");
    load_all(&node, 1).await;
    let layers = node.manager.module_status("attacker").expect("status").sandbox_layers;
    println!("LAYERS {}", layers.join(" "));
    node.manager.shutdown().await;
}

#[test]
fn permissive_mode_under_an_ordinary_user_lists_each_namespace_and_the_disk_quota_as_missing() {
    if std::env::var_os(ORDINARY_USER_ENV).is_some() || !is_root() {
        eprintln!("not root: cannot become an ordinary user; nothing to test");
        return;
    }
    use std::os::unix::process::CommandExt;
    // The binary must be the ordinary user's to read: a copy in /tmp.
    let dir = temp_dir("neighbours-ordinary-bin");
    let binary = dir.join("attacker-module");
    std::fs::copy(module_bin("attacker-module"), &binary).expect("copy");
    for path in [dir.as_path(), binary.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "neighbours::ordinary_user_node_for_the_permissive_mode_test",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ORDINARY_USER_ENV, &binary)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("ordinary user's node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let layers = stdout
        .lines()
        .find_map(|l| l.split_once("LAYERS ").map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("no layers printed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let layers: Vec<&str> = layers.split_whitespace().collect();
    for missing in ["pidns", "ipcns", "mountns", "disk-quota", "netns"] {
        assert!(
            layers.contains(&format!("missing:{missing}").as_str()),
            "{missing} listed missing: {layers:?}"
        );
    }
    for active in ["rlimits", "no-new-privs", "landlock", "seccomp"] {
        assert!(layers.contains(&active), "{active} still applied: {layers:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
