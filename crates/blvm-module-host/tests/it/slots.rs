//! Who may connect, and who may hold the handshake slots (issue 8, "the
//! socket and the handshake"), with real processes as root: each module
//! has a socket of its own that only its uid can connect to and whose
//! accept admits only its pid, and `node.sock` is the node's uid's only.
//! So neither a local user nor a module can keep another module from
//! loading or restarting. Without root there are no other uids to try;
//! those tests say so and pass.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use blvm_module_host::manager::{ManagerError, ModuleState};
use blvm_module_host::{ConnectionEvent, IpcServerConfig};
use blvm_module_protocol::Permission::SubscribeEvents;
use blvm_module_protocol::{Frame, FrameDecoder};
use bytes::BytesMut;
use tokio::sync::broadcast;

use crate::support::{install_attacker, is_root, module_bin, module_call_text, spec, Host, TestNode, DEADLINE};

/// The uid and gid of the "local user": an account that is neither the
/// node's (root) nor, as each test checks, a module's (outside the node's
/// default per-module range).
const LOCAL_USER: u32 = 1_400_000_001;

/// Set when this test binary is re-executed as the local user
/// ([`local_user_process_for_the_slots_tests`]).
const LOCAL_USER_ENV: &str = "BLVM_IT_SLOTS_LOCAL_USER";

/// `EACCES`: what `connect` and `opendir` answer without permission.
const EACCES: i32 = 13;

/// Installs the attacker module as `name`.
fn install(node: &TestNode, name: &str) {
    install_attacker(node, name, "\"subscribe_events\"");
}

/// Loads the installed module `name` (as `loadmodule` would).
async fn load(node: &TestNode, name: &str) -> Result<(), ManagerError> {
    let module = blvm_module_host::registry::read_module_folder(&node.modules_dir.join(name)).expect("module folder");
    node.manager.load_discovered(&module).await
}

/// The running module's pid, id and own socket.
fn running(node: &TestNode, name: &str) -> (u32, String, PathBuf) {
    let status = node.manager.module_status(name).expect("status");
    assert_eq!(status.state, ModuleState::Running, "{status:?}");
    let id = status.module_id.expect("module id");
    let socket = node
        .manager
        .ipc_server()
        .and_then(|s| s.module_socket(&id))
        .expect("a running module has its own socket");
    (status.pid.expect("pid"), id, socket)
}

/// Real uid and gid of a process (`/proc/<pid>/status`).
fn ids_of(pid: u32) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let first = |field: &str| -> u32 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("id")
    };
    (first("Uid:"), first("Gid:"))
}

/// A variable of a process's environment (`/proc/<pid>/environ`).
fn env_of(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    environ.split(|b| *b == 0).find_map(|kv| {
        let kv = std::str::from_utf8(kv).ok()?;
        kv.strip_prefix(name)?.strip_prefix('=').map(str::to_owned)
    })
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").mode() & 0o7777
}

/// The local user's process: this test binary re-executed under
/// [`LOCAL_USER`], taking commands on stdin and answering one `SLOTS ...`
/// line each.
struct LocalUser {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
}

impl LocalUser {
    fn start() -> LocalUser {
        let exe = std::env::current_exe().expect("test binary");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "slots::local_user_process_for_the_slots_tests",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(LOCAL_USER_ENV, "1")
            // std clears the supplementary groups when root changes uid.
            .uid(LOCAL_USER)
            .gid(LOCAL_USER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("local user process");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest prints `test <name> ... ` before the test's own
                // output, on the same line.
                if let Some((_, answer)) = line.split_once("SLOTS ") {
                    if tx.send(answer.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        LocalUser { child, stdin, answers }
    }

    /// Sends one command, returns its answer.
    #[track_caller]
    fn ask(&mut self, command: &str, path: &Path) -> String {
        writeln!(self.stdin, "{command} {}", path.display()).expect("command sent");
        self.stdin.flush().expect("flush");
        self.answers
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|e| panic!("local user: no answer to `{command}` within {DEADLINE:?}: {e}"))
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local user of [`a_local_user_can_reach_neither_the_node_socket_nor_a_modules_and_modules_still_load_and_restart`],
/// when this binary is re-executed with [`LOCAL_USER_ENV`] set: for each
/// line `connect <path>` it connects to `path` up to 64 times, keeping
/// every connection it gets for good (holding slots), and answers
/// `SLOTS connect ok <n>` or `SLOTS connect err <errno>`; for `list <dir>`
/// it answers `SLOTS list ok <entries>` or `SLOTS list err <errno>`.
/// Without the variable (every ordinary run) it does nothing.
#[test]
fn local_user_process_for_the_slots_tests() {
    if std::env::var_os(LOCAL_USER_ENV).is_none() {
        return;
    }
    let mut held = Vec::new();
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(-1);
    for line in std::io::stdin().lines().map_while(Result::ok) {
        let Some((command, path)) = line.split_once(' ') else {
            continue;
        };
        let answer = match command {
            "connect" => {
                let mut got = Ok(0);
                for n in 1..=64 {
                    match UnixStream::connect(path) {
                        Ok(stream) => {
                            held.push(stream);
                            got = Ok(n);
                        }
                        Err(e) => {
                            if n == 1 {
                                got = Err(errno(e));
                            }
                            break;
                        }
                    }
                }
                match got {
                    Ok(n) => format!("connect ok {n}"),
                    Err(e) => format!("connect err {e}"),
                }
            }
            "list" => match std::fs::read_dir(path) {
                Ok(entries) => format!("list ok {}", entries.count()),
                Err(e) => format!("list err {}", errno(e)),
            },
            other => format!("unknown {other}"),
        };
        println!("SLOTS {answer}");
        let _ = std::io::stdout().flush();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_user_can_reach_neither_the_node_socket_nor_a_modules_and_modules_still_load_and_restart() {
    if !is_root() {
        eprintln!("not root: there is no other uid to connect as; nothing to test");
        return;
    }
    let node = TestNode::start("slots-user", |_| {}).await;
    install(&node, "victim");
    install(&node, "second");
    load(&node, "victim").await.expect("victim loads");
    let (pid, _, socket) = running(&node, "victim");
    assert_ne!(ids_of(pid).0, LOCAL_USER, "the local user must not be the module's uid");
    let node_socket = node.manager.ipc_server().expect("server").socket_path().to_path_buf();

    let mut user = LocalUser::start();
    assert_eq!(
        user.ask("connect", &node_socket),
        format!("connect err {EACCES}"),
        "node.sock"
    );
    assert_eq!(
        user.ask("connect", &socket),
        format!("connect err {EACCES}"),
        "the module's socket"
    );
    let dir = socket.parent().expect("socket dir");
    assert_eq!(
        user.ask("list", dir),
        format!("list err {EACCES}"),
        "list module sockets"
    );

    // Meanwhile another module loads...
    load(&node, "second").await.expect("another module loads");
    assert_eq!(
        node.manager.module_status("second").map(|s| s.state),
        Some(ModuleState::Running)
    );
    // ...and the victim, killed, is restarted: a fresh socket, which the
    // local user cannot reach either.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill the victim");
    node.manager
        .wait_for("victim", DEADLINE, |s| {
            s.state == ModuleState::Running && s.restarts == 1
        })
        .await
        .expect("restarted");
    let (new_pid, _, new_socket) = running(&node, "victim");
    assert_ne!(new_pid, pid);
    assert_ne!(new_socket, socket, "a restart gets a fresh socket");
    assert!(!socket.exists(), "the dead spawn's socket is removed");
    assert_eq!(
        user.ask("connect", &new_socket),
        format!("connect err {EACCES}"),
        "after the restart"
    );
    let answer = module_call_text(&node.manager, "victim", "read", "/etc/shadow").await;
    assert!(answer.starts_with("BLOCKED"), "the restarted victim serves: {answer}");
    drop(user);
    node.manager.shutdown().await;
}

/// Waits for a refusal with `code` on module `id`'s socket. Refusals may
/// come by the thousand: a receiver that lagged skips ahead and goes on.
async fn wait_refused(rx: &mut broadcast::Receiver<ConnectionEvent>, id: &str, code: &str) {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match rx.recv().await {
                Ok(ConnectionEvent::Refused {
                    module_id: Some(m),
                    code: c,
                    ..
                }) if m == id && c == code => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("connection events ended: {e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `{code}` refusal on {id}'s socket within {DEADLINE:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_holding_connections_to_its_own_socket_does_not_stop_another_module_loading() {
    if !is_root() {
        eprintln!("not root: the module runs as the node's uid; nothing to test");
        return;
    }
    let node = TestNode::start("slots-module", |_| {}).await;
    install(&node, "hog");
    install(&node, "bystander");
    load(&node, "hog").await.expect("hog loads");
    let (_, hog_id, _) = running(&node, "hog");
    let server = node.manager.ipc_server().expect("server");
    let mut events = server.subscribe_connection_events();

    // The node socket is the node's uid's only, and not even in the
    // module's root (its mount namespace shows its own socket alone).
    let node_socket = server.socket_path().display().to_string();
    let answer = module_call_text(&node.manager, "hog", "hold-slots", &node_socket).await;
    assert!(
        answer.starts_with("BLOCKED")
            && (answer.contains("Permission denied") || answer.contains("No such file or directory")),
        "hold node.sock: {answer}"
    );
    // Its own socket: 64 connections from itself and 4 from each of 15
    // children, reopened as the node closes them.
    let answer = module_call_text(&node.manager, "hog", "hold-slots", "").await;
    assert!(answer.starts_with("HOLDING"), "hold its own socket: {answer}");
    // The children are refused at accept (not the module's pid), the
    // module beyond its own cap.
    wait_refused(&mut events, &hog_id, "pid_mismatch").await;
    wait_refused(&mut events, &hog_id, "too_many_connections").await;

    load(&node, "bystander").await.expect("another module loads meanwhile");
    let answer = module_call_text(&node.manager, "bystander", "read", "/etc/shadow").await;
    assert!(answer.starts_with("BLOCKED"), "the bystander serves: {answer}");
    node.manager.shutdown().await;
}

/// Reads the one frame the node sends a connection it refuses at accept.
fn refusal(mut stream: UnixStream) -> (String, String) {
    stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(frame) = FrameDecoder::default().next_frame(&mut buf).expect("frame") {
            let Frame::Refused(r) = frame else {
                panic!("expected `refused`, got {frame:?}")
            };
            return (r.code, r.reason);
        }
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "closed without a refusal");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn another_process_connecting_to_a_modules_socket_is_refused_pid_mismatch_at_accept_and_the_module_still_connects(
) {
    // A deadline no test waits out: a refusal that arrives was made at
    // accept, not when the handshake timed out.
    let config = IpcServerConfig {
        handshake_timeout: Duration::from_secs(3600),
        ..Default::default()
    };
    let cap = config.max_pending_per_module;
    let host = Host::start_with("slots-pid", config);
    let mut events = host.server.subscribe_connection_events();
    let s = spec("target", &[SubscribeEvents]);
    let ticket = host.server.expect_module(s.clone()).expect("ticket");
    let socket = host.server.listen_for("target", None).expect("its socket");
    // The module's process, held before it execs the module (the pid
    // stays the same across `exec`) until this test has tried to connect.
    let mut module = Command::new("/bin/sh")
        .arg("-c")
        .arg("read go && exec \"$0\"")
        .arg(module_bin("test-module"))
        .env("BLVM_MODULE_SOCKET", &socket)
        .env("BLVM_MODULE_ID", &s.module_id)
        .env("BLVM_MODULE_NAME", &s.name)
        .env("BLVM_MODULE_VERSION", &s.version)
        .env("BLVM_MODULE_TOKEN", &ticket.token)
        .env("BLVM_MODULE_DATA_DIR", &host.dir)
        .env("BLVM_TEST_MODE", "events")
        .env("BLVM_TEST_EVENTS", "ModuleLoaded")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("module process");
    host.server.bind_pid("target", module.id());

    // This process (root: the file's mode does not stop it) connects more
    // times than the socket has slots, never saying hello: each is refused
    // at once for its pid, and none takes a slot.
    for _ in 0..cap * 4 {
        let stream = UnixStream::connect(&socket).expect("root can connect");
        let (code, reason) = refusal(stream);
        assert_eq!(code, "pid_mismatch", "{reason}");
        assert!(reason.contains(&format!("pid {}", std::process::id())), "{reason}");
    }
    let mut stdin = module.stdin.take().expect("stdin");
    writeln!(stdin, "go").expect("release the module");
    crate::support::wait_for(
        &mut events,
        |e| matches!(e, ConnectionEvent::Connected { module_id, .. } if module_id == "target"),
    )
    .await;
    assert!(host.server.connection("target").is_some());
    host.server.forget_module("target");
    assert!(!socket.exists(), "a forgotten module's socket is removed");
    let _ = module.kill();
    let _ = module.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modules_socket_is_its_uids_mode_0600_in_a_0711_directory_and_is_removed_at_unload() {
    if !is_root() {
        eprintln!("not root: the module runs as the node's uid; nothing to test");
        return;
    }
    let node = TestNode::start("slots-file", |_| {}).await;
    install(&node, "owner");
    load(&node, "owner").await.expect("loads");
    let (pid, _, socket) = running(&node, "owner");
    let node_socket = node.manager.ipc_server().expect("server").socket_path().to_path_buf();

    // It is what the module was told to connect to.
    assert_eq!(
        env_of(pid, "BLVM_MODULE_SOCKET").as_deref(),
        socket.to_str(),
        "BLVM_MODULE_SOCKET"
    );
    let meta = std::fs::metadata(&socket).expect("socket file");
    assert!(meta.file_type().is_socket(), "{}", socket.display());
    assert_eq!(mode(&socket), 0o600, "{}", socket.display());
    assert_eq!((meta.uid(), meta.gid()), ids_of(pid), "owned by the module's uid:gid");
    let dir = socket.parent().expect("dir");
    assert_eq!(mode(dir), 0o711, "{}", dir.display());
    assert_eq!(std::fs::metadata(dir).expect("dir").uid(), 0, "the node's");
    assert_eq!(mode(&node_socket), 0o600, "{}", node_socket.display());
    assert_eq!(std::fs::metadata(&node_socket).expect("node.sock").uid(), 0);

    node.manager.unload_module("owner").await.expect("unloads");
    assert!(!socket.exists(), "removed at unload");
    assert_eq!(std::fs::read_dir(dir).expect("dir").count(), 0, "no socket left");
    node.manager.shutdown().await;
    assert!(!dir.exists() && !node_socket.exists(), "removed at shutdown");
}
