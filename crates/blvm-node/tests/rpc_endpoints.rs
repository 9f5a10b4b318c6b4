//! Modules' JSON-RPC methods (`register_rpc_endpoint`) on the node's real
//! JSON-RPC server, called by python-bitcoinrpc's `AuthServiceProxy`
//! exactly as it calls Bitcoin Core, with real module processes
//! (`rpc-module` of blvm-test-modules): help, errors the module chooses, the
//! deadline, unload, a crash and restart, shadowing and the capability.

mod harness;

use std::path::Path;
use std::process::Command;

use blvm_module_host::ipc::ConnectionEvent;
use blvm_module_protocol::methods::invocation::{ModuleCall, MODULE_CALL};
use blvm_node::chain::ChainOptions;
use blvm_node::cli::ClientError;
use blvm_node::config::{NodeConfig, Settings};
use harness::{bins, settings, temp_dir, Running, DEADLINE};
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// What `.ci/run` installs python-bitcoinrpc with.
const INSTALL: &str = "python3 -m pip install python-bitcoinrpc==1.0";

/// Installs the rpc module as `name`, with `caps` (TOML list items) and
/// `register` (its config: the methods it registers at its first start).
fn install(modules: &Path, name: &str, caps: &str, register: &str) {
    let dir = modules.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::write(
        dir.join("module.toml"),
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{caps}]\n"),
    )
    .expect("manifest");
    std::fs::write(dir.join("config.toml"), format!("register = \"{register}\"\n")).expect("config");
    std::fs::copy(bins().join("rpc-module"), dir.join(name)).expect("binary");
}

const CAPS: &str = "\"register_rpc_endpoint\", \"read_filesystem\", \"write_filesystem\"";

async fn node_with(dir: &Path, file: &str) -> Running {
    let file: Settings = toml::from_str(file).expect("config file");
    let mut cfg = NodeConfig::resolve(settings(dir, "regtest").or(file)).expect("config");
    cfg.modules_dir = dir.join("modules");
    let node = Running::start(cfg, ChainOptions::default()).await;
    node.node.manager.auto_load_modules().await.expect("modules load");
    node
}

/// The JSON-RPC error of a call that must fail.
async fn rpc_error(node: &Running, method: &str, params: Value) -> (i64, String) {
    match node.call(method, params).await {
        Err(ClientError::Rpc { code, message }) => (code, message),
        other => panic!("`{method}` answered {other:?}, expected a JSON-RPC error"),
    }
}

/// The calls python-bitcoinrpc makes; exits non-zero naming what differed.
const PYTHON: &str = r#"
import sys
from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException

rpc = AuthServiceProxy(sys.argv[1], timeout=60)

def error_of(call):
    try:
        result = call()
    except JSONRPCException as e:
        return e.error
    raise SystemExit("expected a JSON-RPC error, got %r" % (result,))

got = rpc.echoer_echo(1, "two")
assert got == {"method": "echoer_echo", "params": [1, "two"]}, got
assert rpc.getblockcount() == 0
listed = rpc.help().split("\n")
assert "echoer_echo" in listed and "getblockcount" in listed, listed
text = rpc.help("echoer_echo")
assert text.startswith("echoer_echo\n\nAnswers as the test module's `echoer_echo` does."), text
e = error_of(lambda: rpc.echoer_fail())
assert e == {"code": -8, "message": "echoer_fail refuses"}, e
e = error_of(lambda: rpc.echoer_hang())
assert e["code"] == -32002 and "module `echoer` did not answer `echoer_hang` within 300 ms" in e["message"], e
print("python-bitcoinrpc: every call answered as expected")
"#;

/// Runs [`PYTHON`] against `url`: `false` when python-bitcoinrpc is missing
/// outside CI (the test then skips the Python part); fails in CI without it.
fn python_bitcoinrpc(url: &str) -> bool {
    let present = Command::new("python3")
        .args(["-c", "import bitcoinrpc.authproxy"])
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "python-bitcoinrpc is missing: run .ci/run's install step, `{INSTALL}`"
        );
        eprintln!("skipping the python-bitcoinrpc calls: install it with `{INSTALL}`");
        return false;
    }
    let out = Command::new("python3")
        .args(["-c", PYTHON, url])
        .output()
        .expect("python3 runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python-bitcoinrpc: {said}");
    println!("{said}");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_bitcoinrpc_calls_a_module_method_as_it_calls_core_and_the_method_vanishes_on_unload() {
    let dir = temp_dir("rpc-endpoints");
    install(
        &dir.join("modules"),
        "echoer",
        CAPS,
        "echoer_echo,echoer_fail,echoer_hang",
    );
    let node = node_with(&dir, "[modules.echoer]\nrpc_timeout_ms = 300\n").await;
    // It registers before it serves anything: the answer means registered.
    assert_eq!(node.module_call("echoer", "ping", "").await, "PONG");

    let addr = node.rpc.as_ref().expect("rpc").local_addr();
    let ran = python_bitcoinrpc(&format!("http://u:p@{addr}"));
    // The same calls from Rust (also when the Python part was skipped).
    let echoed = node.call("echoer_echo", json!({"verbose": true})).await.expect("echo");
    assert_eq!(echoed, json!({"method": "echoer_echo", "params": {"verbose": true}}));
    assert_eq!(
        rpc_error(&node, "echoer_fail", json!([])).await,
        (-8, "echoer_fail refuses".to_owned())
    );
    let (code, message) = rpc_error(&node, "echoer_hang", json!([])).await;
    assert_eq!(code, -32002, "{message}");
    assert!(message.contains("within 300 ms"), "{message}");

    let status = node.call("getmodulestatus", json!(["echoer"])).await.expect("status");
    assert_eq!(
        (
            &status["rpc_endpoints"],
            &status["max_rpc_endpoints"],
            &status["rpc_timeout_ms"]
        ),
        (
            &json!(["echoer_echo", "echoer_fail", "echoer_hang"]),
            &json!(32),
            &json!(300)
        ),
        "{status}"
    );

    node.call("unloadmodule", json!(["echoer"])).await.expect("unloaded");
    assert_eq!(
        rpc_error(&node, "echoer_echo", json!([])).await,
        (-32601, "Method not found".to_owned())
    );
    let help = node.call("help", json!([])).await.expect("help");
    assert!(!help.as_str().expect("text").contains("echoer_"), "{help}");
    println!("python part ran: {ran}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_modules_method_errors_clearly_while_it_restarts_and_works_once_registered_again() {
    let dir = temp_dir("rpc-endpoints-crash");
    install(&dir.join("modules"), "phoenix", CAPS, "phoenix_echo");
    let node = node_with(&dir, "").await;
    assert_eq!(node.module_call("phoenix", "ping", "").await, "PONG");
    assert_eq!(
        node.call("phoenix_echo", json!([7])).await.expect("echo"),
        json!({"method": "phoenix_echo", "params": [7]})
    );
    let first = node.node.manager.module_status("phoenix").expect("status");

    // The module exits before it answers; the call fails with the
    // connection, and the server announces the end once the services
    // (the endpoints among them) have let go of it.
    let server = node.node.manager.ipc_server().expect("server");
    let mut connections = server.subscribe_connection_events();
    let first_id = first.module_id.clone().expect("id");
    let conn = server.connection(&first_id).expect("connected");
    let crash = ModuleCall {
        caller: "test".into(),
        method: "crash".into(),
        params: Vec::new(),
    };
    let answer = tokio::time::timeout(DEADLINE, conn.invoke(MODULE_CALL, &crash))
        .await
        .expect("the connection ends in time");
    assert!(answer.is_err(), "{answer:?}");
    tokio::time::timeout(DEADLINE, async {
        loop {
            match connections.recv().await {
                Ok(ConnectionEvent::Closed { module_id, .. }) if module_id == first_id => break,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("connection events: {e}"),
            }
        }
    })
    .await
    .expect("the end of the connection is announced in time");
    let (code, message) = rpc_error(&node, "phoenix_echo", json!([])).await;
    assert_eq!(code, -32001, "{message}");
    assert!(message.contains("module `phoenix`"), "{message}");
    let help = node.call("help", json!([])).await.expect("help");
    assert!(!help.as_str().expect("text").contains("phoenix_echo"), "{help}");

    // Back, but its methods are its to register again (this module waits
    // for the test): until then the call still says why.
    node.node
        .manager
        .wait_for("phoenix", DEADLINE, |s| {
            s.restarts >= 1 && s.module_id != first.module_id && s.state.as_str() == "running"
        })
        .await
        .expect("restarted");
    let (code, message) = rpc_error(&node, "phoenix_echo", json!([])).await;
    assert_eq!(code, -32001, "{message}");
    assert!(
        message.contains("has restarted and has not registered it again"),
        "{message}"
    );

    assert!(
        node.module_call("phoenix", "register", "phoenix_echo")
            .await
            .starts_with("OK 1 "),
        "registered again"
    );
    assert_eq!(
        node.call("phoenix_echo", json!([8])).await.expect("echo"),
        json!({"method": "phoenix_echo", "params": [8]})
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_cannot_shadow_a_node_or_another_modules_method_and_needs_the_capability() {
    let dir = temp_dir("rpc-endpoints-shadow");
    let modules = dir.join("modules");
    install(&modules, "first", CAPS, "first_echo");
    install(&modules, "second", CAPS, "");
    install(&modules, "nocap", "\"read_filesystem\", \"write_filesystem\"", "");
    let node = node_with(&dir, "").await;
    assert_eq!(node.module_call("first", "ping", "").await, "PONG");

    assert_eq!(
        node.module_call("second", "register", "getblockcount").await,
        "ERROR already_registered - `getblockcount` is a method of the node; a module cannot replace it"
    );
    assert_eq!(
        node.module_call("second", "register", "first_echo").await,
        "ERROR already_registered - `first_echo` is already registered by module `first`"
    );
    assert!(node
        .module_call("second", "register", "Second-Echo")
        .await
        .starts_with("ERROR invalid_params - invalid params for `register_rpc_endpoint`: method name"));
    assert_eq!(node.module_call("second", "unregister", "first_echo").await, "OK false");
    // Both still the original's.
    assert_eq!(node.call("getblockcount", json!([])).await.expect("height"), json!(0));
    assert_eq!(
        node.call("first_echo", json!([])).await.expect("echo"),
        json!({"method": "first_echo", "params": []})
    );

    // Without the capability: refused, naming it, and the connection stays.
    let refused = node.module_call("nocap", "register", "nocap_echo").await;
    assert!(
        refused.starts_with("ERROR permission_denied register_rpc_endpoint "),
        "{refused}"
    );
    assert!(node
        .module_call("nocap", "unregister", "nocap_echo")
        .await
        .starts_with("ERROR permission_denied register_rpc_endpoint "));
    assert_eq!(node.module_call("nocap", "ping", "").await, "PONG");
    assert_eq!(rpc_error(&node, "nocap_echo", json!([])).await.0, -32601);
    node.stop().await;
}
