//! The kernel sandbox, attacked by a real module (`attacker-module`): each
//! attack must fail, and the node and another module must keep answering.
//! Requires root on Linux with Landlock, seccomp, network namespaces and
//! cgroup v1 memory/pids/cpu controllers (CI's machine).

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use blvm_module_host::manager::{ManagerConfig, ModuleManager, ModuleState};
use blvm_module_host::sandbox::ResourceLimits;
use blvm_module_protocol::frame::decode_body;
use blvm_module_protocol::methods::invocation::{ModuleCall, ModuleCallResult, MODULE_CALL};
use blvm_testkit::MemoryChain;

use crate::support::{module_bin, temp_dir, DEADLINE};

struct Node {
    manager: ModuleManager,
    modules_dir: PathBuf,
    data_dir: PathBuf,
}

async fn node(tag: &str, memory: Option<u64>) -> Node {
    let root = temp_dir(tag);
    let modules_dir = root.join("modules");
    let data_dir = root.join("data");
    std::fs::create_dir_all(&modules_dir).expect("modules dir");
    let mut config = ManagerConfig::new(&modules_dir, &data_dir, root.join("sock"));
    config.handshake_timeout = Duration::from_secs(30);
    config.shutdown_grace = Duration::from_secs(3);
    config.restart.max_crashes = 1;
    let limits = ResourceLimits {
        memory_bytes: memory,
        max_processes: Some(64),
        cpu_percent: Some(50),
        max_open_files: Some(256),
    };
    config.sandbox.limits.insert("attacker".into(), limits);
    let manager = ModuleManager::with_config(config);
    manager
        .start(
            root.join("sock").join("node.sock"),
            Arc::new(MemoryChain::mainnet_0_438()),
        )
        .await
        .expect("start");
    Node {
        manager,
        modules_dir,
        data_dir,
    }
}

fn install(node: &Node, name: &str, caps: &str) {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin("attacker-module"), dir.join(name)).expect("copy binary");
    let manifest =
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{caps}]\n");
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
}

async fn attack(node: &Node, name: &str, method: &str, arg: &str) -> String {
    let id = node
        .manager
        .module_status(name)
        .and_then(|s| s.module_id)
        .expect("module id");
    let conn = node
        .manager
        .ipc_server()
        .and_then(|s| s.connection(&id))
        .expect("connected");
    let params = ModuleCall {
        caller: "test".into(),
        method: method.into(),
        params: arg.as_bytes().to_vec(),
    };
    let raw = tokio::time::timeout(DEADLINE, conn.invoke(MODULE_CALL, &params))
        .await
        .expect("answered in time")
        .expect("answered");
    let result = decode_body::<ModuleCallResult>("result", &raw).expect("decodes").result;
    String::from_utf8(result).expect("utf8")
}

fn blocked(answer: &str, what: &str) {
    assert!(answer.starts_with("BLOCKED"), "{what}: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_on_files_network_fds_and_privileges_fail_and_the_node_keeps_answering() {
    let node = node("sandbox", Some(256 << 20)).await;
    install(&node, "attacker", "\"subscribe_events\"");
    install(&node, "bystander", "\"subscribe_events\"");
    install(&node, "networked", "\"network_access\"");
    let report = node.manager.auto_load_modules().await.expect("loaded");
    assert_eq!(report.loaded.len(), 3, "{report:?}");
    let status = node.manager.module_status("attacker").expect("status");
    for layer in [
        "cgroup-memory",
        "cgroup-pids",
        "cgroup-cpu",
        "rlimits",
        "netns",
        "no-new-privs",
        "landlock",
        "seccomp",
    ] {
        assert!(
            status.sandbox_layers.iter().any(|l| l == layer),
            "{layer} in {:?}",
            status.sandbox_layers
        );
    }
    let networked = node.manager.module_status("networked").expect("status");
    assert!(
        !networked.sandbox_layers.iter().any(|l| l == "netns"),
        "{:?}",
        networked.sandbox_layers
    );

    let other_data = node.data_dir.join("bystander");
    std::fs::create_dir_all(&other_data).expect("data dir");
    std::fs::write(other_data.join("secret"), b"s").expect("secret");
    std::fs::write(node.data_dir.join("cookie"), b"c").expect("cookie");

    blocked(
        &attack(&node, "attacker", "read", "/etc/shadow").await,
        "read /etc/shadow",
    );
    blocked(
        &attack(&node, "attacker", "read", other_data.join("secret").to_str().unwrap()).await,
        "read another module's data",
    );
    blocked(
        &attack(
            &node,
            "attacker",
            "read",
            node.data_dir.join("cookie").to_str().unwrap(),
        )
        .await,
        "read the node's cookie",
    );
    blocked(
        &attack(&node, "attacker", "write", "/tmp/blvm-pwned").await,
        "write outside the data dir",
    );
    let own = node.data_dir.join("attacker").join("mine");
    assert!(
        attack(&node, "attacker", "write", own.to_str().unwrap())
            .await
            .starts_with("ALLOWED"),
        "its own data dir is writable"
    );

    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let addr = listener.local_addr().expect("addr").to_string();
    blocked(
        &attack(&node, "attacker", "tcp", &addr).await,
        "tcp without network_access",
    );
    blocked(
        &attack(&node, "attacker", "udp", "").await,
        "udp without network_access",
    );
    let answer = attack(&node, "networked", "tcp", &addr).await;
    assert!(answer.starts_with("ALLOWED"), "tcp with network_access: {answer}");

    let answer = attack(&node, "attacker", "nofile", "").await;
    assert!(answer.starts_with("BLOCKED after 2"), "RLIMIT_NOFILE=256: {answer}");
    // Read from outside: the module itself cannot read /proc (Landlock).
    let pid = node.manager.module_status("attacker").and_then(|s| s.pid).expect("pid");
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        proc_status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    assert_eq!(field("NoNewPrivs:").as_deref(), Some("1"), "no_new_privs");
    assert_eq!(field("Seccomp:").as_deref(), Some("2"), "seccomp filter mode");
    blocked(
        &attack(&node, "attacker", "status", "NoNewPrivs")
            .await
            .replace("absent", "BLOCKED"),
        "read /proc",
    );

    // The node and another module keep answering.
    assert!(attack(&node, "bystander", "read", "/etc/shadow")
        .await
        .starts_with("BLOCKED"));

    // Allocating past the 256 MiB memory limit ends the module: a crash.
    let id = node
        .manager
        .module_status("attacker")
        .and_then(|s| s.module_id)
        .expect("id");
    let conn = node
        .manager
        .ipc_server()
        .and_then(|s| s.connection(&id))
        .expect("connected");
    let params = ModuleCall {
        caller: "test".into(),
        method: "alloc".into(),
        params: b"1024".to_vec(),
    };
    let answer = tokio::time::timeout(DEADLINE, conn.invoke(MODULE_CALL, &params))
        .await
        .expect("in time");
    assert!(
        answer.is_err(),
        "allocating 1 GiB under a 256 MiB limit must not succeed"
    );
    let status = node
        .manager
        .wait_for("attacker", DEADLINE, |s| {
            s.restarts > 0 || s.state == ModuleState::Failed
        })
        .await;
    assert!(status.is_some(), "the crash is in the status");
    assert!(attack(&node, "bystander", "read", "/etc/shadow")
        .await
        .starts_with("BLOCKED"));
}
