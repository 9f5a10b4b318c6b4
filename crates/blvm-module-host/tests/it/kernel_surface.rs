//! The kernel surface a module can reach (issue 8, "Kernel surface"),
//! attacked by a real sandboxed module (`attacker-module`, attacks in
//! `attacker/kernel.rs`): every call of the seccomp deny-list is refused
//! with its errno, the x32 and i386 ABIs kill the module, the node's
//! keyring is out of reach, and Landlock scoping keeps signals and
//! abstract Unix sockets inside the module's domain. In each test the
//! attacker (when it survives) and another module keep answering.
//! Requires root on Linux with Landlock and seccomp (CI's machine).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::os::unix::process::CommandExt;

use blvm_module_host::manager::ModuleState;
use blvm_module_host::sandbox::{SeccompAnswer, SeccompRefused, DENIED_CALLS};

use crate::support::{install_attacker as install, TestNode as Node, DEADLINE};

async fn node(tag: &str) -> Node {
    Node::start(tag, |config| config.restart.max_crashes = 1).await
}

async fn load_all(node: &Node, count: usize) {
    let report = node.manager.auto_load_modules().await.expect("loaded");
    assert_eq!(report.loaded.len(), count, "{report:?}");
}

async fn attack(node: &Node, name: &str, method: &str, arg: &str) -> String {
    crate::support::module_call_text(&node.manager, name, method, arg).await
}

fn layers(node: &Node, name: &str) -> Vec<String> {
    node.manager.module_status(name).expect("status").sandbox_layers
}

/// Another module still gets an answer from the node.
async fn bystander_answers(node: &Node) {
    let answer = attack(node, "bystander", "read", "/etc/shadow").await;
    assert!(answer.starts_with("BLOCKED"), "bystander: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_denied_system_call_is_refused_with_its_errno_and_the_module_keeps_answering() {
    let node = node("kernel-calls").await;
    install(&node, "attacker", "");
    install(&node, "bystander", "");
    load_all(&node, 2).await;
    let before = node.manager.module_status("attacker").expect("status");
    for layer in ["seccomp", "session-keyring"] {
        assert!(before.sandbox_layers.iter().any(|l| l == layer), "{layer}: {before:?}");
    }

    for call in DENIED_CALLS {
        let errno = match call.answer {
            SeccompAnswer::Eperm => "EPERM",
            SeccompAnswer::Enosys => "ENOSYS",
        };
        let answer = attack(&node, "attacker", "syscall", call.name).await;
        assert!(
            answer.starts_with(&format!("BLOCKED {errno}:")),
            "{} ({}) must be refused with {errno}: {answer}",
            call.name,
            call.reason
        );
    }
    // The namespace calls the issue saw succeed, named: each asked for
    // CLONE_NEWUSER (clone3 also NEWNS and NEWPID).
    assert!(DENIED_CALLS
        .iter()
        .any(|c| c.name == "clone" && c.refused == SeccompRefused::WithNamespaceFlag));
    // Threads and child processes still start: glibc's clone3 falls back
    // to clone on ENOSYS, and plain clones pass.
    let answer = attack(&node, "attacker", "spawn", "").await;
    assert_eq!(answer, "ALLOWED a thread and a child ran");

    let after = node.manager.module_status("attacker").expect("status");
    assert_eq!(
        (after.state, after.restarts, after.pid),
        (ModuleState::Running, 0, before.pid),
        "{after:?}"
    );
    bystander_answers(&node).await;
    node.manager.shutdown().await;
}

/// Whether this kernel runs x32 system calls: an x32 `getpid` returns
/// the pid rather than `ENOSYS`.
#[allow(unsafe_code)]
fn kernel_has_x32() -> bool {
    // SAFETY: getpid through the x32 ABI reads and writes no memory.
    let r = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
    r == i64::from(std::process::id())
}

/// Whether this kernel runs i386 system calls (`int 0x80`): tried in a
/// forked child, since without ia32 emulation the instruction is a
/// SIGSEGV.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn kernel_has_i386() -> bool {
    // SAFETY: the child executes one `int 0x80` (i386 getpid, touching no
    // memory) and `_exit`; nothing of this multi-threaded process (locks,
    // allocator) is used in it. The parent only waits for it.
    unsafe {
        let child = libc::fork();
        if child == 0 {
            let mut r: i64 = 20;
            std::arch::asm!(
                "int 0x80",
                inout("rax") r,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                options(nostack)
            );
            libc::_exit(if r > 0 { 0 } else { 1 });
        }
        let mut status = 0;
        libc::waitpid(child, &mut status, 0) == child && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
    }
}

/// Calls `method` on module `name`, which must die of it: no answer, and
/// its status shows the SIGSYS crash.
async fn killed_by_sigsys(node: &Node, name: &str, method: &str, arg: &str) {
    let answer = crate::support::module_call(&node.manager, name, method, arg.as_bytes()).await;
    assert!(
        answer.is_err(),
        "{name}: {method} {arg} answered {:?}",
        answer.map(|a| String::from_utf8_lossy(&a).into_owned())
    );
    let status = node
        .manager
        .wait_for(name, DEADLINE, |s| {
            s.last_error.as_deref().is_some_and(|e| e.contains("SIGSYS"))
        })
        .await;
    assert!(
        status.is_some(),
        "{name}: no SIGSYS crash in {:?}",
        node.manager.module_status(name)
    );
}

#[cfg(target_arch = "x86_64")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x32_and_i386_system_calls_kill_the_module_with_sigsys() {
    let node = node("kernel-abis").await;
    install(&node, "x32", "");
    install(&node, "ia32", "");
    install(&node, "bystander", "");
    load_all(&node, 3).await;

    // The filter kills x32 calls before the kernel looks them up, so the
    // module dies either way; without the check the call would have run
    // (x32 kernel) or answered ENOSYS.
    if kernel_has_x32() {
        eprintln!("this kernel runs x32 system calls: an x32 unshare would bypass the x86_64 rules");
    } else {
        eprintln!("this kernel has no x32 ABI (ENOSYS): the filter's x32 check is still what kills the module");
    }
    killed_by_sigsys(&node, "x32", "x32", "unshare").await;
    bystander_answers(&node).await;

    if kernel_has_i386() {
        killed_by_sigsys(&node, "ia32", "i386", "").await;
    } else {
        eprintln!("this kernel runs no i386 system calls (no ia32 emulation): nothing to kill");
    }
    bystander_answers(&node).await;
    node.manager.shutdown().await;
}

/// A key of the node's session keyring, invalidated on drop.
struct NodeKey(i64);

impl NodeKey {
    #[allow(unsafe_code)]
    fn add(payload: &[u8]) -> NodeKey {
        // SAFETY: every pointer is to a NUL-terminated literal or to
        // `payload`, live for the call.
        let id = unsafe {
            libc::syscall(
                libc::SYS_add_key,
                c"user".as_ptr(),
                c"blvm-it-node-secret".as_ptr(),
                payload.as_ptr(),
                payload.len(),
                libc::KEY_SPEC_SESSION_KEYRING,
            )
        };
        assert!(id > 0, "add_key: {}", std::io::Error::last_os_error());
        NodeKey(id)
    }

    #[allow(unsafe_code)]
    fn read(&self) -> Vec<u8> {
        let mut buf = [0u8; 64];
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_READ, self.0, buf.as_mut_ptr(), buf.len()) };
        assert!(n >= 0, "keyctl read: {}", std::io::Error::last_os_error());
        buf[..(n as usize).min(buf.len())].to_vec()
    }
}

impl Drop for NodeKey {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: integers only.
        unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_INVALIDATE, self.0) };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_session_keyring_and_its_key_are_out_of_the_modules_reach() {
    // In the node's (this test's) session keyring before the module starts.
    let key = NodeKey::add(b"secret");
    let node = node("kernel-keyring").await;
    install(&node, "attacker", "");
    install(&node, "bystander", "");
    load_all(&node, 2).await;
    assert!(
        layers(&node, "attacker").iter().any(|l| l == "session-keyring"),
        "{:?}",
        layers(&node, "attacker")
    );

    let answer = attack(&node, "attacker", "keyring", &key.0.to_string()).await;
    assert_eq!(answer, "BLOCKED read EPERM, update EPERM, search EPERM");
    assert_eq!(key.read(), b"secret", "the key is unchanged");
    bystander_answers(&node).await;
    node.manager.shutdown().await;
}

/// The real uid and gid of process `pid`.
fn ids_of(pid: u32) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let first = |field: &str| -> u32 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{field} of {pid}"))
    };
    (first("Uid:"), first("Gid:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landlock_scope_refuses_signals_and_abstract_sockets_outside_the_modules_domain() {
    let node = node("kernel-scope").await;
    install(&node, "attacker", "\"network_access\"");
    install(&node, "bystander", "");
    load_all(&node, 2).await;
    let layers = layers(&node, "attacker");
    if layers.iter().any(|l| l == "missing:landlock-scope") {
        eprintln!("this kernel's Landlock has no scoping (ABI < 6): listed as missing, nothing more to test");
        node.manager.shutdown().await;
        return;
    }
    assert!(layers.iter().any(|l| l == "landlock-scope"), "{layers:?}");
    let attacker = node.manager.module_status("attacker").and_then(|s| s.pid).expect("pid");
    let victim = node.manager.module_status("bystander").expect("status");
    let victim_pid = victim.pid.expect("pid");

    // Another module.
    let answer = attack(&node, "attacker", "kill", &victim_pid.to_string()).await;
    assert!(
        answer.starts_with("BLOCKED EPERM") || answer.starts_with("BLOCKED ESRCH"),
        "SIGKILL to another module: {answer}"
    );
    let after = node.manager.module_status("bystander").expect("status");
    assert_eq!(
        (after.state, after.pid),
        (ModuleState::Running, victim.pid),
        "{after:?}"
    );
    bystander_answers(&node).await;

    // A host process of the module's own uid: outside the module's pid
    // namespace its pid names nothing (ESRCH); were it visible, only the
    // scope would stop this (EPERM).
    if rustix::process::geteuid().is_root() {
        let (uid, gid) = ids_of(attacker);
        let mut host = std::process::Command::new("/bin/sleep")
            .arg("600")
            .uid(uid)
            .gid(gid)
            .spawn()
            .expect("sleep as the module's uid");
        let answer = attack(&node, "attacker", "kill", &host.id().to_string()).await;
        let alive = host.try_wait().expect("try_wait").is_none();
        let _ = host.kill();
        let _ = host.wait();
        assert!(
            answer.starts_with("BLOCKED EPERM") || answer.starts_with("BLOCKED ESRCH"),
            "SIGKILL to a uid {uid} host process: {answer}"
        );
        assert!(alive, "the host process survived");
    }

    // An abstract Unix socket of the host (the module shares the host's
    // network namespace: it has network_access).
    let name = format!("blvm-it-{}-scope", std::process::id());
    let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name"))
        .expect("abstract listener");
    listener.set_nonblocking(true).expect("non-blocking");
    let answer = attack(&node, "attacker", "abstract-connect", &name).await;
    assert!(answer.starts_with("BLOCKED EPERM"), "abstract socket: {answer}");
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "nothing connected"
    );
    bystander_answers(&node).await;
    node.manager.shutdown().await;
}
