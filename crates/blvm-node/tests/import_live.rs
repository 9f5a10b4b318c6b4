//! Importing into a running node (`importblocks`, `blvm-node import
//! --rpc`): a real module sees the import block by block, as it happens;
//! `blvm-node import` on a running node's data dir says, in one line,
//! what to do instead.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use blvm_node::cli::RpcClient;
use blvm_node::config::{NodeConfig, Settings};
use blvm_node::node::{register_methods, Node, NodeBackendImpl};
use blvm_node::rpc::{MethodTable, RpcAuth, RpcServer};
use serde_json::{json, Value};

mod harness;

use harness::{data, temp_dir};

/// The recorder module's binary, built once.
fn recorder_bin() -> PathBuf {
    harness::bins().join("recorder-module")
}

/// The frames of a `blk*.dat` file, each with its magic and length.
fn frames(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("read");
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        out.push(bytes[at..at + 8 + len].to_vec());
        at += 8 + len;
    }
    out
}

/// A mainnet node in `dir` with the recorder module subscribed to `events`,
/// its RPC on a free port (user `u`, password `p`).
async fn start(dir: &Path, events: &str) -> (Arc<Node>, RpcServer) {
    let modules = dir.join("modules");
    let folder = modules.join("recorder");
    std::fs::create_dir_all(&folder).expect("module dir");
    std::fs::write(
        folder.join("module.toml"),
        "name = \"recorder\"\nversion = \"1.0.0\"\nentry_point = \"recorder\"\n\
         capabilities = [\"subscribe_events\", \"read_blockchain\", \"read_chain_state\"]\n",
    )
    .expect("manifest");
    std::fs::write(folder.join("config.toml"), format!("events = \"{events}\"\n")).expect("config");
    std::fs::copy(recorder_bin(), folder.join("recorder")).expect("binary");
    let mut config = NodeConfig::resolve(Settings {
        network: Some("main".into()),
        datadir: Some(dir.join("data")),
        rpcuser: Some("u".into()),
        rpcpassword: Some("p".into()),
        block_interval: Some(0),
        ..Settings::default()
    })
    .expect("config");
    config.modules_dir = modules;
    let datadir = config.datadir.clone();
    let node = Node::open(config).expect("node opens");
    node.manager
        .start(datadir.join("sockets/node.sock"), Arc::new(NodeBackendImpl::new(&node)))
        .await
        .expect("manager");
    let report = node.manager.auto_load_modules().await.expect("modules");
    assert_eq!(report.loaded, vec!["recorder".to_string()], "{report:?}");
    let table = MethodTable::new();
    register_methods(&table, &node);
    let auth = RpcAuth {
        user_pass: Some(("u".into(), "p".into())),
        cookie: None,
    };
    let rpc = RpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), auth, Arc::new(table)).expect("rpc");
    // A load returns at the handshake; the recorder subscribes after it,
    // and answers invocations only once it has: its first answer says
    // events published from now on reach it.
    recorder(&node, "report", "").await;
    (node, rpc)
}

/// Asks the recorder for `method` with text `arg`; its text answer.
async fn recorder(node: &Node, method: &str, arg: &str) -> String {
    harness::module_call(node, "recorder", method, arg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importblocks_into_a_running_node_reaches_a_module_block_by_block_as_it_goes() {
    let dir = temp_dir("live");
    let (node, rpc) = start(
        &dir.0,
        "BlockSyncStarted,BlockSyncProgress,BlockSyncCompleted,NewBlock,BlockValidationCompleted",
    )
    .await;
    // The blocks come through a pipe the test writes 25 at a time: the
    // import cannot end before the pipe closes, so each block a module
    // receives before that was published during the import, not after it.
    let pipe = dir.0.join("blocks.pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &pipe,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let client = RpcClient::new(rpc.local_addr(), "u", "p");
    let call = {
        let pipe = pipe.clone();
        tokio::task::spawn_blocking(move || client.call("importblocks", json!([[pipe]])))
    };
    let mut writer = {
        let pipe = pipe.clone();
        // Opening a pipe's write end waits for its reader: the node.
        tokio::task::spawn_blocking(move || std::fs::OpenOptions::new().write(true).open(pipe))
            .await
            .expect("thread")
            .expect("pipe opened by the node")
    };
    let frames = frames(&data("blocks-000000-000438.dat"));
    assert_eq!(frames.len(), 439, "genesis and blocks 1 to 438");
    // Batches of 25 blocks (about 75 events) never fill the recorder's
    // queue of 100, so no event is dropped.
    for (batch, chunk) in frames.chunks(25).enumerate() {
        for frame in chunk {
            writer.write_all(frame).expect("write to the pipe");
        }
        writer.flush().expect("flush");
        let last = (batch * 25 + chunk.len() - 1) as u64;
        if last == 0 {
            continue;
        }
        // A pipe's blocks are not counted beforehand: the target is the tip.
        let seen = recorder(&node, "wait", &format!(" BlockSyncProgress {last} ")).await;
        assert!(seen.ends_with(&format!("BlockSyncProgress {last} {last}")), "{seen}");
        assert!(!call.is_finished(), "the import ended before its input did");
    }
    drop(writer);
    let answer = call.await.expect("rpc thread").expect("importblocks");
    assert_eq!(answer["blocks"], json!(438), "{answer}");
    assert_eq!(answer["already_known"], json!(1), "the genesis block: {answer}");
    assert_eq!(answer["height"], json!(438), "{answer}");
    recorder(&node, "wait", " BlockSyncCompleted").await;
    // Everything it saw, with delivery sequence numbers: consecutive (none
    // dropped), and per block its NewBlock, the end of its validation and
    // the progress, in that order, between the start and the end.
    let report = recorder(&node, "report", "").await;
    let lines: Vec<(u64, String)> = report
        .lines()
        .map(|l| {
            let (seq, rest) = l.split_once(' ').expect("seq and event");
            (seq.parse().expect("seq"), rest.to_owned())
        })
        .collect();
    for (i, (seq, _)) in lines.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "a gap in the sequence: {report}");
    }
    let mut expected = vec!["BlockSyncStarted 0 0".to_owned()];
    for (height, frame) in frames.iter().enumerate().skip(1) {
        let block: bitcoin::Block = bitcoin::consensus::deserialize(&frame[8..]).expect("block");
        expected.push(format!("NewBlock {height} {}", block.block_hash()));
        expected.push("BlockValidationCompleted".to_owned());
        expected.push(format!("BlockSyncProgress {height} {height}"));
    }
    expected.push("BlockSyncCompleted 438".to_owned());
    let seen: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    if seen != expected {
        let first = seen
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(seen.len().min(expected.len()));
        panic!(
            "first difference at {first}: saw {:?}, expected {:?}",
            &seen[first.saturating_sub(2)..(first + 3).min(seen.len())],
            &expected[first.saturating_sub(2)..(first + 3).min(expected.len())]
        );
    }

    // `blvm-node import` on this data dir while the node runs: one line,
    // which says what to do; no backtrace, whatever RUST_BACKTRACE says.
    let datadir = dir.0.join("data");
    let blvm = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_blvm-node"))
            .args(["--network", "main", "--datadir"])
            .arg(&datadir)
            .args(args)
            .env("RUST_BACKTRACE", "full")
            .env("RUST_LIB_BACKTRACE", "1")
            .output()
            .expect("blvm-node runs")
    };
    let file = data("blocks-000000-000438.dat");
    let file = file.to_str().expect("utf8 path");
    let refused = blvm(&["import", file]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "Error: a node is running on {d} (its chain store is locked): import into it with \
             `blvm-node --network main --datadir {d} import --rpc {file}`, or stop it first",
            d = datadir.display()
        )
    );
    // What it says works: the same file, through the node (all known now),
    // the node's RPC named by `--rpcbind addr:port`.
    let bind = rpc.local_addr().to_string();
    let through = blvm(&[
        "--rpcbind",
        &bind,
        "--rpcuser",
        "u",
        "--rpcpassword",
        "p",
        "import",
        "--rpc",
        file,
    ]);
    let out = String::from_utf8_lossy(&through.stdout);
    assert!(
        through.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&through.stderr)
    );
    assert!(
        out.starts_with("imported 0 blocks (0 transactions)") && out.contains("at height 438 (439 already known"),
        "{out}"
    );
    rpc.shutdown().await;
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importblocks_refuses_a_relative_path_and_reports_a_missing_file() {
    let dir = temp_dir("errors");
    let (node, rpc) = start(&dir.0, "NewBlock").await;
    let client = RpcClient::new(rpc.local_addr(), "u", "p");
    let call = |params: Value| {
        let client = client.clone();
        tokio::task::spawn_blocking(move || client.call("importblocks", params))
    };
    let relative = call(json!(["blocks.dat"])).await.expect("thread");
    let message = format!("{relative:?}");
    assert!(
        message.contains("-8") && message.contains("blocks.dat is not an absolute path"),
        "{message}"
    );
    let missing = call(json!(["/nonexistent/blocks.dat"])).await.expect("thread");
    let message = format!("{missing:?}");
    assert!(message.contains("/nonexistent/blocks.dat"), "{message}");
    // The failed import is over: the next one runs.
    let ok = call(json!([data("blocks-000000-000438.dat")])).await.expect("thread");
    assert_eq!(ok.expect("imported")["height"], json!(438));
    rpc.shutdown().await;
    node.manager.shutdown().await;
}
