//! The reference node end to end: the main command with the example
//! modules, a reorg seen by a subscribed module, a real mainnet spend in
//! the mempool, regtest mining, and Core's RPC errors on real methods.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use bitcoin::consensus::{deserialize, encode::serialize_hex};
use bitcoin::hashes::Hash;
use bitcoin::{Block, Transaction};
use blvm_module_protocol::frame::decode_body;
use blvm_module_protocol::methods::invocation::{ModuleCall, ModuleCallResult, MODULE_CALL};
use blvm_node::chain::ChainOptions;
use blvm_node::cli::{ClientError, RpcClient};
use blvm_node::config::{NodeConfig, Settings};
use blvm_node::node::{register_methods, Node, NodeBackendImpl};
use blvm_node::rpc::{MethodTable, RpcAuth, RpcServer};
use serde_json::{json, Value};

mod harness;

use harness::{bins, data, temp_dir, DEADLINE};

/// Installs a module folder: its manifest, the binary, a config.
fn install(modules: &Path, name: &str, manifest: &str, bin: &str, config: &str) {
    let dir = modules.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
    std::fs::write(dir.join("config.toml"), config).expect("config");
    std::fs::copy(bins().join(bin), dir.join(name)).expect("binary");
}

fn example_manifest(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../modules")
            .join(name)
            .join("module.toml"),
    )
    .expect("example manifest")
}

fn config(datadir: &Path, network: &str) -> NodeConfig {
    NodeConfig::resolve(settings(datadir, network)).expect("config")
}

fn settings(datadir: &Path, network: &str) -> Settings {
    Settings {
        network: Some(network.into()),
        datadir: Some(datadir.to_path_buf()),
        rpcport: Some(0),
        rpcuser: Some("u".into()),
        rpcpassword: Some("p".into()),
        block_interval: Some(0),
        ..Settings::default()
    }
}

/// A node with modules and RPC running inside the test's runtime.
struct Running {
    node: Arc<Node>,
    rpc: Option<RpcServer>,
    client: RpcClient,
}

async fn start(config: NodeConfig, options: ChainOptions) -> Running {
    let datadir = config.datadir.clone();
    let node = Node::open_with(config, options).expect("node opens");
    node.manager
        .start(datadir.join("sockets/node.sock"), Arc::new(NodeBackendImpl::new(&node)))
        .await
        .expect("manager");
    let table = MethodTable::new();
    register_methods(&table, &node);
    let auth = RpcAuth {
        user_pass: Some(("u".into(), "p".into())),
        cookie: None,
    };
    let rpc = RpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), auth, Arc::new(table)).expect("rpc");
    let client = RpcClient::new(rpc.local_addr(), "u", "p");
    Running {
        node,
        rpc: Some(rpc),
        client,
    }
}

impl Running {
    /// An RPC call from a blocking thread (the client is blocking).
    async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let client = self.client.clone();
        let method = method.to_owned();
        tokio::task::spawn_blocking(move || client.call(&method, params))
            .await
            .expect("rpc thread")
    }

    async fn stop(mut self) {
        if let Some(rpc) = self.rpc.take() {
            rpc.shutdown().await;
        }
        self.node.manager.shutdown().await;
    }
}

/// The first `n` frames of a `blk*.dat` file.
fn first_frames(path: &Path, n: usize) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read");
    let mut end = 0;
    for _ in 0..n {
        let len = u32::from_le_bytes(bytes[end + 4..end + 8].try_into().expect("4 bytes")) as usize;
        end += 8 + len;
    }
    bytes[..end].to_vec()
}

/// Every block of a framed file.
fn blocks(path: &Path) -> Vec<Block> {
    let bytes = std::fs::read(path).expect("read");
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        out.push(deserialize(&bytes[at + 8..at + 8 + len]).expect("block"));
        at += 8 + len;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_chain_makes_the_subscribed_module_see_disconnects_then_new_blocks_in_order() {
    let dir = temp_dir("reorg");
    let modules = dir.join("modules");
    install(
        &modules,
        "recorder",
        "name = \"recorder\"\nversion = \"1.0.0\"\nentry_point = \"recorder\"\ncapabilities = [\"subscribe_events\", \"read_blockchain\"]\n",
        "recorder-module",
        // Subscribed below, once loaded: a subscription made at start
        // could come after the reorg (the handshake ends the load).
        "",
    );
    let mut cfg = config(&dir, "main");
    cfg.modules_dir = modules;
    // btcd's reorg test chain spends coinbases after one block.
    let options = ChainOptions {
        coinbase_maturity: 1,
        ..ChainOptions::default()
    };
    let node = start(cfg, options).await;
    let n = Arc::clone(&node.node);
    tokio::task::spawn_blocking(move || n.import(&[data("btcd-reorg/blk_0_to_4.dat")]).expect("import"))
        .await
        .expect("thread");
    let report = node.node.manager.auto_load_modules().await.expect("modules");
    assert_eq!(report.loaded, vec!["recorder".to_string()], "{report:?}");
    subscribe(&node, "recorder", "NewBlock,BlockDisconnected,ChainReorg").await;
    let old: Vec<Block> = blocks(&data("btcd-reorg/blk_0_to_4.dat"));
    let new: Vec<Block> = ["blk_3A.dat", "blk_4A.dat", "blk_5A.dat"]
        .iter()
        .flat_map(|f| blocks(&data(&format!("btcd-reorg/{f}"))))
        .collect();
    for block in &new {
        let hex = serialize_hex(block);
        let answer = node.call("submitblock", json!([hex])).await.expect("submitblock");
        assert!(answer.is_null() || answer == json!("inconclusive"), "{answer}");
    }
    assert_eq!(node.call("getblockcount", json!([])).await.expect("count"), json!(5));
    assert_eq!(
        node.call("getbestblockhash", json!([])).await.expect("tip"),
        json!(new[2].block_hash().to_string())
    );
    // What did the module see? Events arrive in order, so once it has
    // recorded the reorg (published last) it has recorded everything before.
    wait_recorded(&node, "recorder", " ChainReorg ").await;
    let seen = recorded(&node, "recorder").await;
    let report = seen.join("\n");
    let expected = [
        format!("BlockDisconnected 4 {}", old[4].block_hash()),
        format!("BlockDisconnected 3 {}", old[3].block_hash()),
        format!("NewBlock 3 {}", new[0].block_hash()),
        format!("NewBlock 4 {}", new[1].block_hash()),
        format!("NewBlock 5 {}", new[2].block_hash()),
        format!("ChainReorg {} {}", old[4].block_hash(), new[2].block_hash()),
    ];
    // Submitting 3A and 4A may not reorg yet (equal work); the first reorg
    // happens when the branch gets more work. Find the disconnects.
    let start = seen
        .iter()
        .position(|l| l.starts_with("BlockDisconnected"))
        .expect("a disconnect");
    assert_eq!(&seen[start..], &expected[..], "module saw:\n{report}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_of_a_real_mainnet_coinbase_enters_the_mempool_and_its_block_confirms_it() {
    let dir = temp_dir("mainnet-spend");
    // Transactions of 2009 paid no fee; Core would need -minrelaytxfee=0 too.
    let mut cfg = config(&dir, "main");
    cfg.min_relay_fee = 0.0;
    let node = start(cfg, ChainOptions::default()).await;
    // Mainnet 0..169: block 170 holds the first ever spend (Satoshi → Hal
    // Finney), of block 9's coinbase.
    let chain170 = dir.join("first-170.dat");
    std::fs::write(&chain170, first_frames(&data("blocks-000000-000438.dat"), 170)).expect("write");
    let n = Arc::clone(&node.node);
    let stats = tokio::task::spawn_blocking(move || n.import(&[chain170]).expect("import"))
        .await
        .expect("thread");
    assert_eq!(stats.blocks, 169);
    let all = blocks(&data("blocks-000000-000438.dat"));
    let block170 = &all[170];
    let spend: &Transaction = &block170.txdata[1];
    let txid = spend.compute_txid().to_string();
    assert_eq!(txid, "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16");
    let answer = node
        .call("sendrawtransaction", json!([serialize_hex(spend)]))
        .await
        .expect("accepted");
    assert_eq!(answer, json!(txid));
    assert_eq!(
        node.call("getrawmempool", json!([])).await.expect("mempool"),
        json!([txid])
    );
    // A double spend of the same coin is refused with Core's reason.
    let mut double = spend.clone();
    double.output[0].value = bitcoin::Amount::from_sat(double.output[0].value.to_sat() - 1);
    match node.call("sendrawtransaction", json!([serialize_hex(&double)])).await {
        Err(ClientError::Rpc { code, message }) => {
            assert_eq!(code, -26);
            assert!(message.starts_with("txn-mempool-conflict"), "{message}");
        }
        other => panic!("double spend not refused: {other:?}"),
    }
    // The block that really confirmed it connects; the mempool empties.
    assert_eq!(
        node.call("submitblock", json!([serialize_hex(block170)]))
            .await
            .expect("submit"),
        Value::Null
    );
    assert_eq!(node.call("getrawmempool", json!([])).await.expect("mempool"), json!([]));
    let tx = node
        .call("getrawtransaction", json!([txid, true]))
        .await
        .expect("confirmed");
    assert_eq!(tx["blockhash"], json!(block170.block_hash().to_string()));
    assert_eq!(tx["confirmations"], json!(1));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regtest_spend_is_mined_by_generatetoaddress() {
    let dir = temp_dir("regtest-mine");
    let node = start(config(&dir, "regtest"), ChainOptions::default()).await;
    // The default payee is P2WSH(OP_TRUE): spendable with the script alone.
    let (payee, spend) = mature_spend(&node, 10_000).await;
    let txid = node
        .call("sendrawtransaction", json!([serialize_hex(&spend)]))
        .await
        .expect("accepted");
    let entry = node.call("getmempoolentry", json!([txid])).await.expect("entry");
    assert_eq!(entry["fees"]["base"], json!(0.0001));
    let mined = node.call("generatetoaddress", json!([1, payee])).await.expect("mined");
    let block = node.call("getblock", json!([mined[0], 1])).await.expect("block");
    assert!(block["tx"].as_array().expect("txs").contains(&txid), "{block}");
    assert_eq!(node.call("getrawmempool", json!([])).await.expect("mempool"), json!([]));
    let estimate = node.call("estimatesmartfee", json!([2])).await.expect("estimate");
    assert!(
        estimate["feerate"].as_f64().is_some(),
        "an observed fee rate: {estimate}"
    );
    node.stop().await;
}

/// Sends module `name` a `module_call` of `method` and returns its answer.
async fn module_call(node: &Running, name: &str, method: &str, params: &[u8]) -> Vec<u8> {
    let id = node
        .node
        .manager
        .module_status(name)
        .and_then(|s| s.module_id)
        .expect("id");
    let conn = node
        .node
        .manager
        .ipc_server()
        .and_then(|s| s.connection(&id))
        .expect("connected");
    let call = ModuleCall {
        caller: "test".into(),
        method: method.into(),
        params: params.to_vec(),
    };
    let raw = tokio::time::timeout(DEADLINE, conn.invoke(MODULE_CALL, &call))
        .await
        .expect("in time")
        .expect("answer");
    decode_body::<ModuleCallResult>("result", &raw).expect("decodes").result
}

/// Waits until the recorder module has seen an event whose line contains
/// `needle` (it answers `wait` only then): events reach the module's event
/// task on their own schedule, so an invocation that follows a publish can
/// be served before the events published ahead of it were recorded.
async fn wait_recorded(node: &Running, name: &str, needle: &str) -> String {
    String::from_utf8(module_call(node, name, "wait", needle.as_bytes()).await).expect("utf8")
}

/// Has the recorder module subscribe to `names` and waits until the node
/// answered it: events published after this reach it.
async fn subscribe(node: &Running, name: &str, names: &str) {
    let answer = String::from_utf8(module_call(node, name, "subscribe", names.as_bytes()).await).expect("utf8");
    assert!(answer.starts_with("SUBSCRIBED "), "{answer}");
}

/// Asks the recorder module what it has seen so far (without sequence
/// numbers); [`wait_recorded`] first for the last event expected.
async fn recorded(node: &Running, name: &str) -> Vec<String> {
    String::from_utf8(module_call(node, name, "report", &[]).await)
        .expect("utf8")
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_events_reach_a_subscribed_module_from_where_they_happen() {
    let dir = temp_dir("events");
    let modules = dir.join("modules");
    let wanted = [
        "NewBlock",
        "NewTransaction",
        "MempoolTransactionAdded",
        "MempoolTransactionRemoved",
        "FeeRateChanged",
        "BlockMined",
        "BlockTemplateUpdated",
        "BlockValidationStarted",
        "BlockValidationCompleted",
        "ScriptVerificationStarted",
        "ScriptVerificationCompleted",
        "UTXOValidationStarted",
        "UTXOValidationCompleted",
        "ConsensusRuleViolation",
        "BlockDisconnected",
        "ChainReorg",
    ];
    install(
        &modules,
        "recorder",
        "name = \"recorder\"\nversion = \"1.0.0\"\nentry_point = \"recorder\"\n\
         capabilities = [\"subscribe_events\", \"read_blockchain\", \"read_mempool\", \"read_chain_state\"]\n",
        "recorder-module",
        "",
    );
    let mut cfg = config(&dir, "regtest");
    cfg.modules_dir = modules;
    let node = start(cfg, ChainOptions::default()).await;
    let report = node.node.manager.auto_load_modules().await.expect("modules");
    assert_eq!(report.loaded, vec!["recorder".to_string()], "{report:?}");
    subscribe(&node, "recorder", &wanted.join(",")).await;
    let (payee, spend) = mature_spend(&node, 5_000).await;
    node.call("sendrawtransaction", json!([serialize_hex(&spend)]))
        .await
        .expect("accepted");
    let mined = node.call("generatetoaddress", json!([1, payee])).await.expect("mined");
    // A block that breaks a rule: the last one again with its merkle root
    // broken.
    let bad_hex = node.call("getblock", json!([mined[0], 0])).await.expect("block");
    let mut bad: Block = deserialize(&hex_bytes(bad_hex.as_str().expect("hex"))).expect("block");
    bad.header.merkle_root = bitcoin::TxMerkleNode::from_byte_array([7; 32]);
    let _ = node.call("submitblock", json!([serialize_hex(&bad)])).await;
    // invalidateblock disconnects the tip and puts its transaction back.
    node.call("invalidateblock", json!([mined[0]]))
        .await
        .expect("invalidated");
    // Each type is awaited in turn (one that never comes fails the test at
    // the deadline): none is assumed to be recorded by the time the RPC
    // that published it returns.
    for name in wanted {
        // Lines are `<seq> <type> ...`: the space anchors the type name.
        wait_recorded(&node, "recorder", &format!(" {name}")).await;
    }
    let seen = recorded(&node, "recorder").await;
    for name in wanted {
        assert!(
            seen.iter().any(|l| l.starts_with(name)),
            "the module never saw {name}; it saw:\n{}",
            seen.join("\n")
        );
    }
    node.stop().await;
}

/// Mines 101 regtest blocks to P2WSH(OP_TRUE) and returns that address
/// and a transaction spending the (now mature) first coinbase, paying
/// `fee` sat: it needs no signature, only the script as witness.
async fn mature_spend(node: &Running, fee: u64) -> (String, Transaction) {
    let op_true = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
    let payee = bitcoin::Address::p2wsh(&op_true, bitcoin::Network::Regtest).to_string();
    let hashes = node
        .call("generatetoaddress", json!([101, payee]))
        .await
        .expect("mined");
    assert_eq!(hashes.as_array().map(Vec::len), Some(101));
    let first: Block = {
        let hex = node.call("getblock", json!([hashes[0], 0])).await.expect("block");
        deserialize(&hex_bytes(hex.as_str().expect("hex"))).expect("block")
    };
    let coinbase = &first.txdata[0];
    let spend = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn {
            previous_output: bitcoin::OutPoint {
                txid: coinbase.compute_txid(),
                vout: 0,
            },
            script_sig: bitcoin::ScriptBuf::new(),
            sequence: bitcoin::Sequence::MAX,
            witness: bitcoin::Witness::from_slice(&[op_true.as_bytes()]),
        }],
        output: vec![bitcoin::TxOut {
            value: coinbase.output[0].value - bitcoin::Amount::from_sat(fee),
            script_pubkey: coinbase.output[0].script_pubkey.clone(),
        }],
    };
    (payee, spend)
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_methods_answer_core_error_codes_for_bad_parameters() {
    let dir = temp_dir("rpc-errors");
    let node = start(config(&dir, "regtest"), ChainOptions::default()).await;
    let code = |r: Result<Value, ClientError>| match r {
        Err(ClientError::Rpc { code, .. }) => code,
        other => panic!("expected an RPC error, got {other:?}"),
    };
    assert_eq!(code(node.call("getblockhash", json!([5])).await), -8);
    assert_eq!(code(node.call("getblock", json!(["00"])).await), -8);
    assert_eq!(code(node.call("getblock", json!(["11".repeat(32)])).await), -5);
    assert_eq!(code(node.call("getblockhash", json!(["one"])).await), -3);
    assert_eq!(code(node.call("sendrawtransaction", json!(["zz"])).await), -22);
    assert_eq!(code(node.call("getmempoolentry", json!(["22".repeat(32)])).await), -5);
    assert_eq!(code(node.call("nosuchmethod", json!([])).await), -32601);
    assert_eq!(
        code(node.call("generatetoaddress", json!([1, "not-an-address"])).await),
        -5
    );
    let info = node.call("getblockchaininfo", json!([])).await.expect("info");
    assert_eq!(
        (info["chain"].clone(), info["blocks"].clone()),
        (json!("regtest"), json!(0))
    );
    assert_eq!(node.call("getpeerinfo", json!([])).await.expect("peers"), json!([]));
    node.stop().await;
}

#[test]
fn main_command_loads_the_example_modules_produces_blocks_and_a_module_reacts() {
    let dir = temp_dir("main");
    let datadir = dir.join("data");
    let modules = datadir.join("modules");
    // The Template Provider on a port of its own choosing (its default,
    // 8442, may be taken by another test).
    for (name, config) in [
        ("block-stats", ""),
        ("fee-watcher", ""),
        ("stratum-v2", "listen = \"127.0.0.1:0\"\n"),
    ] {
        install(&modules, name, &example_manifest(name), name, config);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_blvm-node"))
        .args([
            "--datadir",
            &datadir.display().to_string(),
            "--block-interval",
            "1",
            "--rpcport",
            "0",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("blvm-node starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let mut seen = BTreeMap::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    while seen.len() < 5 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("node log so far:\n{}\nstderr:\n{err}\nseen: {seen:?}", log.join("\n"));
        };
        for (key, needle) in [
            ("started", "blvm-node started"),
            ("loaded", "module loaded"),
            ("produced", "block produced"),
            ("reacted", "block 1 "),
            ("listening", "stratum-v2 listening on 127.0.0.1:"),
        ] {
            if line.contains(needle) && (key != "reacted" || line.contains("block-stats")) {
                seen.insert(key, line.clone());
            }
        }
        log.push(line);
    }
    assert!(seen["reacted"].contains("txs"), "{}", seen["reacted"]);
    // `stop` over RPC, authenticated with the cookie file, shuts it down
    // cleanly: exit status 0, cookie removed, no module left running.
    let rpc: SocketAddr = seen["started"]
        .split("rpc=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("rpc address in the start line");
    let cookie = datadir.join(".cookie");
    let client = RpcClient::from_cookie(rpc, &cookie).expect("cookie");
    assert_eq!(
        client.call("stop", json!([])).expect("stop"),
        json!("blvm-node stopping")
    );
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status}");
    assert!(!cookie.exists(), "cookie removed at shutdown");
    let module_pids: Vec<String> = log
        .iter()
        .chain(std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<_>>().iter())
        .filter(|l| l.contains("module connected"))
        .filter_map(|l| {
            let digits: String = l
                .split("pid=")
                .nth(1)?
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == ' ')
                .collect();
            digits.split_whitespace().next().map(str::to_owned)
        })
        .collect();
    assert_eq!(module_pids.len(), 3, "the example modules connected: {module_pids:?}");
    for pid in module_pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(&pid),
            "module {pid} outlived the node"
        );
    }
}

fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_attacker_does_not_stop_the_node_answering_rpc_or_other_modules_getting_events() {
    let dir = temp_dir("attacker");
    let modules = dir.join("modules");
    install(
        &modules,
        "attacker",
        // It writes (fills) its data dir: `write_filesystem`.
        "name = \"attacker\"\nversion = \"1.0.0\"\nentry_point = \"attacker\"\ncapabilities = [\"write_filesystem\"]\n\n\
         [resources]\nmax_processes = 64\n",
        "attacker-module",
        "",
    );
    install(
        &modules,
        "recorder",
        "name = \"recorder\"\nversion = \"1.0.0\"\nentry_point = \"recorder\"\ncapabilities = [\"subscribe_events\", \"read_blockchain\"]\n",
        "recorder-module",
        "",
    );
    // The operator's file is stricter than the manifest's 64 tasks.
    let file: Settings =
        toml::from_str("[sandbox.limits.attacker]\nmax_processes = 48\ndisk_mb = 16\n").expect("config file");
    let mut cfg = NodeConfig::resolve(settings(&dir, "regtest").or(file)).expect("config");
    cfg.modules_dir = modules;
    let node = start(cfg, ChainOptions::default()).await;
    let report = node.node.manager.auto_load_modules().await.expect("modules");
    assert_eq!(report.loaded.len(), 2, "{report:?}");
    subscribe(&node, "recorder", "NewBlock").await;
    let attack = |method: &'static str, arg: &'static str| {
        let node = &node;
        async move { String::from_utf8(module_call(node, "attacker", method, arg.as_bytes()).await).expect("utf8") }
    };
    // The host's secrets are out of the module's reach (Landlock).
    let read = attack("read", "/etc/shadow").await;
    assert!(read.starts_with("BLOCKED"), "{read}");
    // A fork bomb stops at the operator's 48 tasks.
    let bomb = attack("fork-bomb", "").await;
    assert!(bomb.starts_with("BLOCKED after"), "{bomb}");
    // It fills its data dir: the kernel stops it at its own file system's
    // 16 MiB, and the node's chain store, on the host's, is untouched.
    let fill = attack("fill-disk", "").await;
    assert!(fill.contains("No space left on device"), "{fill}");
    // Meanwhile the node answers RPC, mines, and the other module hears of it.
    assert_eq!(node.call("getblockcount", json!([])).await.expect("count"), json!(0));
    let op_true = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
    let payee = bitcoin::Address::p2wsh(&op_true, bitcoin::Network::Regtest).to_string();
    let mined = node.call("generatetoaddress", json!([1, payee])).await.expect("mined");
    let hash = mined[0].as_str().expect("hash");
    let line = wait_recorded(&node, "recorder", hash).await;
    assert!(line.contains(" NewBlock "), "the recorder saw: {line}");
    let status = node.call("getmodulestatus", json!(["attacker"])).await.expect("status");
    assert_eq!(status["state"], json!("running"), "{status}");
    let layers = status["sandbox_layers"].as_array().expect("layers");
    assert!(status["disk_used_bytes"].as_u64() > Some(8 << 20), "{status}");
    for layer in [
        "cgroup-pids",
        "landlock",
        "seccomp",
        "netns",
        "no-new-privs",
        "disk-quota",
        "mountns",
        "pidns",
    ] {
        assert!(layers.contains(&json!(layer)), "{layer} missing from {status}");
    }
    // `pids <v1|v2> <group>`: the group the kernel enforces 48 in.
    let pids_group = status["limit_cgroups"]
        .as_array()
        .expect("limit_cgroups")
        .iter()
        .filter_map(|g| g.as_str()?.strip_prefix("pids "))
        .find_map(|g| g.split_once(' ').map(|(_, dir)| std::path::PathBuf::from(dir)))
        .unwrap_or_else(|| panic!("no pids group in {status}"));
    let max = std::fs::read_to_string(pids_group.join("pids.max")).expect("pids.max");
    assert_eq!(max.trim(), "48", "{status}");
    node.stop().await;
}
