//! The harness of the node's event tests: a node in the test's runtime
//! ([`Running`]) or the `blvm-node` binary itself ([`NodeProcess`]), with
//! real module processes installed in a directory of the test's own, and
//! waits on what the modules received (never on sleeps).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use blvm_module_protocol::frame::decode_body;
use blvm_module_protocol::methods::invocation::{ModuleCall, ModuleCallResult, MODULE_CALL};
use blvm_node::chain::ChainOptions;
use blvm_node::cli::{ClientError, RpcClient};
use blvm_node::config::{NodeConfig, Settings};
use blvm_node::node::{register_methods, serve_module_endpoints, Node, NodeBackendImpl};
use blvm_node::rpc::{MethodTable, RpcAuth, RpcServer};
use serde_json::{json, Value};

/// Generous: a pass never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// P2WSH(OP_TRUE) on regtest: the coinbase address of blocks the tests
/// mine over RPC (spendable with the script alone).
pub const OP_TRUE_ADDRESS: &str = "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85";

/// Mines `n` regtest blocks paying `address` with `generatetoaddress`;
/// their hashes, in display hex.
pub fn mine_to(rpc: &RpcClient, n: u32, address: &str) -> Vec<String> {
    let mined = rpc.call("generatetoaddress", json!([n, address])).expect("mined");
    mined
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| h.as_str().expect("hash").to_owned())
        .collect()
}

/// Test data of this crate.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A test's own directory, removed when the test ends (modules copy their
/// binaries in).
pub struct TempDir(pub PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback TCP port, for a module or a peer that binds it next.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A fresh directory named after the test.
pub fn temp_dir(tag: &str) -> TempDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "blvm-node-ev-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

/// Builds the test module binaries, the example modules (the
/// zmq-publisher, stratum-v2 and nats-bridge too) and the registry's binaries
/// (`blvm-registry`, `blvm-module`) once; returns the target dir.
pub fn bins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "blvm-test-modules",
                "-p",
                "block-stats",
                "-p",
                "fee-watcher",
                "-p",
                "blvm-registry",
                "-p",
                "zmq-publisher",
                "-p",
                "stratum-v2",
                "-p",
                "nats-bridge",
                "--bins",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building module binaries failed");
        let exe = std::env::current_exe().expect("test exe");
        exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
    })
}

/// Installs the recorder module as `name`, requesting `capabilities`
/// (TOML list items), with its `config.toml`.
pub fn install_recorder(modules: &Path, name: &str, capabilities: &str, config: &str) {
    let dir = modules.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::write(
        dir.join("module.toml"),
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{capabilities}]\n"),
    )
    .expect("manifest");
    std::fs::write(dir.join("config.toml"), config).expect("config");
    std::fs::copy(bins().join("recorder-module"), dir.join(name)).expect("binary");
}

/// Settings of a test node in `datadir`: RPC on a free port with a
/// password, no block timer, small module data dirs.
pub fn settings(datadir: &Path, network: &str) -> Settings {
    let file: Settings = toml::from_str("[sandbox]\ndisk_mb = 8\n").expect("settings");
    Settings {
        network: Some(network.into()),
        datadir: Some(datadir.to_path_buf()),
        rpcport: Some(0),
        rpcuser: Some("u".into()),
        rpcpassword: Some("p".into()),
        block_interval: Some(0),
        ..Settings::default()
    }
    .or(file)
}

/// The lines `stdout` (a child's pipe) prints, read on a thread of their
/// own, so a test waits on them with a deadline.
pub fn lines_of(stdout: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A node with modules and RPC running inside the test's runtime.
pub struct Running {
    pub node: Arc<Node>,
    pub rpc: Option<RpcServer>,
    pub client: RpcClient,
}

impl Running {
    /// Opens the node of `config` and starts its module host and RPC (no
    /// module is loaded yet).
    pub async fn start(config: NodeConfig, options: ChainOptions) -> Running {
        let datadir = config.datadir.clone();
        let node = Node::open_with(config, options).expect("node opens");
        node.manager
            .start(datadir.join("sockets/node.sock"), Arc::new(NodeBackendImpl::new(&node)))
            .await
            .expect("manager");
        let table = Arc::new(MethodTable::new());
        register_methods(&table, &node);
        serve_module_endpoints(&node, &table);
        let auth = RpcAuth {
            user_pass: Some(("u".into(), "p".into())),
            cookie: None,
        };
        let rpc = RpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), auth, table).expect("rpc");
        let client = RpcClient::new(rpc.local_addr(), "u", "p");
        Running {
            node,
            rpc: Some(rpc),
            client,
        }
    }

    /// An RPC call from a blocking thread (the client is blocking).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let client = self.client.clone();
        let method = method.to_owned();
        tokio::task::spawn_blocking(move || client.call(&method, params))
            .await
            .expect("rpc thread")
    }

    /// The node's own shutdown (`Node::shut_down`), as `blvm-node` runs it.
    pub async fn stop(mut self) {
        let rpc = self.rpc.take();
        self.node.shut_down("requested", rpc).await;
    }

    /// Sends module `name` a `module_call` of `method` and returns its
    /// answer as text.
    pub async fn module_call(&self, name: &str, method: &str, params: &str) -> String {
        module_call(&self.node, name, method, params).await
    }

    /// Waits until the recorder `name` has seen an event whose line
    /// contains `needle`; returns that line.
    pub async fn wait_recorded(&self, name: &str, needle: &str) -> String {
        self.module_call(name, "wait", needle).await
    }

    /// What the recorder `name` has seen so far, without sequence numbers.
    pub async fn recorded(&self, name: &str) -> Vec<String> {
        self.module_call(name, "report", "")
            .await
            .lines()
            .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_owned())
            .collect()
    }
}

/// The `blvm-node` binary, running, and every line of its log (stdout).
pub struct NodeProcess {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    pub log: Vec<String>,
    datadir: PathBuf,
}

impl NodeProcess {
    /// Starts `blvm-node` on regtest in `datadir` with the config file
    /// `conf` (written there as `blvm.toml`), RPC on a free port, and no
    /// block timer unless `conf` says otherwise. Modules go in
    /// `<datadir>/modules`.
    pub fn start(datadir: &Path, conf: &str) -> NodeProcess {
        std::fs::create_dir_all(datadir).expect("datadir");
        let conf_path = datadir.join("blvm.toml");
        std::fs::write(&conf_path, format!("rpcport = 0\n{conf}")).expect("config file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_blvm-node"))
            .arg("--datadir")
            .arg(datadir)
            .arg("--conf")
            .arg(&conf_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("blvm-node starts");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        NodeProcess {
            child,
            lines,
            log: Vec::new(),
            datadir: datadir.to_path_buf(),
        }
    }

    /// Waits for a log line satisfying `pred` (among those already read,
    /// or the next ones) and returns it; fails at the deadline with the
    /// log so far.
    #[track_caller]
    pub fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.log.iter().find(|l| pred(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no log line {what} within {DEADLINE:?}; the log:\n{}",
                        self.log.join("\n")
                    );
                }
            }
        }
    }

    /// The lines module `name` printed on stdout that start with `prefix`,
    /// in order, as read so far (`recorded <seq> <event>`, `shutdown …`).
    pub fn module_said(&self, name: &str, prefix: &str) -> Vec<String> {
        // `… INFO blvm_module_host::process::output: <line> module="<name>" stream="stdout"`
        let fields = format!(" module=\"{name}\" stream=\"stdout\"");
        self.log
            .iter()
            .filter_map(|l| {
                let (_, said) = l.split_once("process::output: ")?;
                let said = said.strip_suffix(&fields)?;
                said.starts_with(prefix).then(|| said.to_owned())
            })
            .collect()
    }

    /// The RPC address from the `blvm-node started` line.
    #[track_caller]
    pub fn rpc_addr(&mut self) -> SocketAddr {
        let started = self.wait_line("`blvm-node started`", |l| l.contains("blvm-node started"));
        addr_field(&started, "rpc=").expect("rpc address in the start line")
    }

    /// The metrics address from the `metrics exposition listening` line
    /// (a node started with `metrics_bind`).
    #[track_caller]
    pub fn metrics_addr(&mut self) -> SocketAddr {
        let listening = self.wait_line("`metrics exposition listening`", |l| {
            l.contains("metrics exposition listening")
        });
        addr_field(&listening, "addr=").expect("the metrics address in the log line")
    }

    /// Kills the node with SIGKILL: no shutdown, no flush, whatever it
    /// was doing. The log read so far stays in `log`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the node with the `stop` RPC, waits for its exit (status 0)
    /// and reads the rest of its log.
    #[track_caller]
    pub fn stop(&mut self) {
        let addr = self.rpc_addr();
        let client = RpcClient::from_cookie(addr, &self.datadir.join(".cookie")).expect("cookie");
        assert_eq!(
            client.call("stop", json!([])).expect("stop"),
            json!("blvm-node stopping")
        );
        let status = self.child.wait().expect("exits");
        self.log.extend(self.lines.iter());
        assert!(status.success(), "{status}; the log:\n{}", self.log.join("\n"));
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends module `name` of `node` a `module_call` of `method` with text
/// `params` and returns its answer as text.
pub async fn module_call(node: &Node, name: &str, method: &str, params: &str) -> String {
    let id = node.manager.module_status(name).and_then(|s| s.module_id).expect("id");
    let conn = node
        .manager
        .ipc_server()
        .and_then(|s| s.connection(&id))
        .expect("connected");
    let call = ModuleCall {
        caller: "test".into(),
        method: method.into(),
        params: params.as_bytes().to_vec(),
    };
    let raw = tokio::time::timeout(DEADLINE, conn.invoke(MODULE_CALL, &call))
        .await
        .expect("in time")
        .expect("answer");
    let result = decode_body::<ModuleCallResult>("result", &raw).expect("decodes").result;
    String::from_utf8(result).expect("utf8")
}

/// The socket address after `key` in a log line (`rpc=127.0.0.1:18443 …`).
fn addr_field(line: &str, key: &str) -> Option<SocketAddr> {
    line.split(key).nth(1)?.split_whitespace().next()?.parse().ok()
}
