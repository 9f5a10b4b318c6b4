//! [`ModuleTest`]: one module under test, a real process, and the node
//! side of it: a real module manager (verification, sandbox, IPC server,
//! services) over [`TestChain`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use blvm_module_host::registry::ModuleManifest;
use blvm_module_host::sandbox::SandboxMode;
use blvm_module_host::services::rpc_endpoints::EndpointError;
use blvm_module_host::{BackendError, NodeBackend};
use blvm_module_host::{ConnectionEvent, ManagerConfig, ModuleManager, ModuleStatus};
use blvm_module_protocol::events::{
    BlockDisconnected, ChainReorg, Event, MempoolTransactionAdded, NewBlock, NewTransaction,
};
use blvm_module_protocol::frame::decode_body;
use blvm_module_protocol::methods::invocation::{ModuleCall, ModuleCallResult, MODULE_CALL};
use blvm_module_protocol::Hash32;
use blvm_module_protocol::{ErrorCode, RemoteError};
use blvm_testkit::MemoryChain;
use tokio::sync::broadcast::error::RecvError;

use crate::chain::TestChain;
use crate::cursors::MemoryCursors;
use crate::logs::{ModuleLogLine, ModuleLogs};
use crate::requests::{RequestLog, SentRequest};
use crate::rpc::RpcMethods;
use blvm_module_host::services::rpc_endpoints::Endpoint;

/// How long any wait of the harness lasts before the test fails: long,
/// for loaded CI machines; a passing test never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Why the harness could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file of the test (the manifest, the binary, the temp dir).
    #[error("{what} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The module's manifest does not parse.
    #[error("the module's manifest: {0}")]
    Manifest(String),
    /// The node would not start or load the module.
    #[error("the node: {0}")]
    Node(String),
}

/// A change the test makes to the node's module settings.
type Configure = Box<dyn FnOnce(&mut ManagerConfig)>;

/// How to start a [`ModuleTest`]; from [`ModuleTest::builder`].
pub struct ModuleTestBuilder {
    binary: PathBuf,
    manifest: PathBuf,
    config: String,
    height: u64,
    extra: Vec<(String, Vec<u8>)>,
    configure: Option<Configure>,
}

impl ModuleTestBuilder {
    /// The module's own `config.toml` (default: none).
    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config = toml.into();
        self
    }

    /// The chain's tip when the module starts (default 400): mainnet
    /// block `height`, so blocks up to 438 are left to connect.
    pub fn tip(mut self, height: u64) -> Self {
        self.height = height;
        self
    }

    /// Another file in the module's folder (`name` relative to it).
    pub fn file(mut self, name: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        self.extra.push((name.into(), contents.into()));
        self
    }

    /// Changes the node's module settings before it starts (policies,
    /// limits, sandbox).
    pub fn configure(mut self, f: impl FnOnce(&mut ManagerConfig) + 'static) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// Starts the node side, installs the module (manifest, binary named
    /// by its `entry_point`, config) and loads it: verified, sandboxed,
    /// spawned, handshake done.
    pub async fn start(self) -> Result<ModuleTest, HarnessError> {
        let manifest = ModuleManifest::from_file(&self.manifest).map_err(|e| HarnessError::Manifest(e.to_string()))?;
        let name = manifest.name().as_str().to_owned();
        let name_guard = hold_name(&name).await;
        let root = temp_root(&name)?;
        let modules_dir = root.join("modules");
        let folder = modules_dir.join(&name);
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| HarnessError::Io { what, path, source }
        };
        std::fs::create_dir_all(&folder).map_err(io("creating", &folder))?;
        let target = folder.join("module.toml");
        std::fs::copy(&self.manifest, &target).map_err(io("copying the manifest to", &target))?;
        let target = folder.join(manifest.entry_point());
        std::fs::copy(&self.binary, &target).map_err(io("copying the binary to", &target))?;
        let target = folder.join("config.toml");
        std::fs::write(&target, &self.config).map_err(io("writing", &target))?;
        for (file, contents) in &self.extra {
            let target = folder.join(file);
            std::fs::write(&target, contents).map_err(io("writing", &target))?;
        }

        let mut config = ManagerConfig::new(&modules_dir, root.join("data"), root.join("sock"));
        config.handshake_timeout = DEADLINE;
        config.shutdown_grace = Duration::from_secs(5);
        // Each spawn gets a data dir file system of its own: small ones.
        config.sandbox.default_limits.disk_bytes = Some(32 << 20);
        if !rustix::process::geteuid().is_root() {
            // Not root: no cgroups, namespaces or uid drop; the layers this
            // user can apply (Landlock, seccomp, rlimits) still are.
            config.sandbox.mode = SandboxMode::Permissive;
        }
        if let Some(configure) = self.configure {
            configure(&mut config);
        }
        let manager = ModuleManager::with_config(config);
        let requests = RequestLog::new();
        manager.set_request_tap(requests.clone());
        manager.set_cursor_store(Arc::new(MemoryCursors::default()));
        let logs = ModuleLogs::get();
        let logs_from = logs.mark();
        let chain = Arc::new(TestChain::at(self.height));
        let rpc = Arc::new(RpcMethods::default());
        manager.rpc_endpoints().set_sink(rpc.clone());
        manager
            .start(root.join("sock").join("node.sock"), chain.clone())
            .await
            .map_err(|e| HarnessError::Node(e.to_string()))?;
        let violations = Arc::new(Mutex::new(Vec::new()));
        watch_violations(&manager, &violations)?;
        let test = ModuleTest {
            manager,
            chain,
            requests,
            logs,
            logs_from,
            rpc,
            violations,
            name,
            root,
            finished: false,
            _name: name_guard,
        };
        let report = test
            .manager
            .auto_load_modules()
            .await
            .map_err(|e| HarnessError::Node(e.to_string()))?;
        if let Some((module, why)) = report.failed.iter().next() {
            return Err(HarnessError::Node(format!("`{module}` did not load: {why}")));
        }
        timers_at_tip(&test.manager, &test.chain);
        Ok(test)
    }
}

/// Records every refused handshake and protocol violation of the node's
/// connections, for [`ModuleTest::finish`].
fn watch_violations(manager: &ModuleManager, into: &Arc<Mutex<Vec<String>>>) -> Result<(), HarnessError> {
    let server = manager
        .ipc_server()
        .ok_or_else(|| HarnessError::Node("the IPC server did not start".into()))?;
    let mut events = server.subscribe_connection_events();
    let into = Arc::clone(into);
    tokio::spawn(async move {
        loop {
            let found = match events.recv().await {
                Ok(ConnectionEvent::Closed {
                    module_id,
                    reason,
                    protocol_violation: true,
                }) => format!("module `{module_id}` broke the protocol: {reason}"),
                Ok(ConnectionEvent::Refused {
                    module_id,
                    code,
                    reason,
                }) => format!(
                    "a handshake for `{}` was refused ({code}): {reason}",
                    module_id.unwrap_or_default()
                ),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    format!("{n} connection events were missed: some may have been violations")
                }
                Err(RecvError::Closed) => return,
            };
            into.lock().unwrap_or_else(|p| p.into_inner()).push(found);
        }
    });
    Ok(())
}

fn timers_at_tip(manager: &ModuleManager, chain: &TestChain) {
    manager.timers().on_tip(chain.tip_height());
}

/// Holds module name `name` for one harness of this process: the node
/// logs a module's lines by name, so two harnesses running modules of one
/// name at once (two tests of one module) would read each other's lines.
/// A second harness of the name waits until the first has finished.
async fn hold_name(name: &str) -> tokio::sync::OwnedMutexGuard<()> {
    static NAMES: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let lock = {
        let mut names = NAMES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(names.entry(name.to_owned()).or_default())
    };
    lock.lock_owned().await
}

/// A directory of its own for one harness, under the system temp dir.
fn temp_root(name: &str) -> Result<PathBuf, HarnessError> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "blvm-module-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|source| HarnessError::Io {
        what: "creating",
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// One module under test: its binary running as a real, sandboxed process
/// against a node-side host over real mainnet blocks.
///
/// The test moves the chain ([`ModuleTest::connect_block`],
/// [`ModuleTest::reorg`]) and publishes any other event
/// ([`ModuleTest::publish`]); it calls the module's RPC methods and API
/// ([`ModuleTest::rpc`], [`ModuleTest::module_call`]); it waits on and
/// asserts on what the module sent ([`ModuleTest::wait_for_request`]) and
/// logged ([`ModuleTest::wait_for_log`]). [`ModuleTest::finish`] unloads
/// the module and fails the test if any frame it sent broke the protocol
/// (a malformed frame, a bad handshake, a request whose params the
/// method's type does not accept) or it crashed. A test must end with
/// `finish`; dropping the harness without it fails the test.
pub struct ModuleTest {
    manager: ModuleManager,
    chain: Arc<TestChain>,
    requests: Arc<RequestLog>,
    logs: Arc<ModuleLogs>,
    /// Where this harness's lines begin in the process's log capture.
    logs_from: usize,
    rpc: Arc<RpcMethods>,
    violations: Arc<Mutex<Vec<String>>>,
    name: String,
    root: PathBuf,
    finished: bool,
    /// The module's name, held for this harness's life (see `hold_name`).
    _name: tokio::sync::OwnedMutexGuard<()>,
}

impl ModuleTest {
    /// A harness for the module built as `binary` (in an integration test
    /// of the module's crate: `env!("CARGO_BIN_EXE_<name>")`) whose
    /// manifest is `manifest` (its `module.toml`).
    pub fn builder(binary: impl Into<PathBuf>, manifest: impl Into<PathBuf>) -> ModuleTestBuilder {
        ModuleTestBuilder {
            binary: binary.into(),
            manifest: manifest.into(),
            config: String::new(),
            height: 400,
            extra: Vec::new(),
            configure: None,
        }
    }

    /// The module's name (its manifest's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The module manager serving it (status, services, the IPC server).
    pub fn manager(&self) -> &ModuleManager {
        &self.manager
    }

    /// The module's status now.
    pub fn status(&self) -> ModuleStatus {
        self.manager
            .module_status(&self.name)
            .unwrap_or_else(|| panic!("module `{}` is not known to the harness's node", self.name))
    }

    /// The chain as it stands now.
    pub fn chain(&self) -> Arc<MemoryChain> {
        self.chain.now()
    }

    /// Connects the next real mainnet block and publishes its `NewBlock`.
    ///
    /// # Panics
    ///
    /// When the embedded blocks are all connected (the tip is 438).
    pub fn connect_block(&self) -> NewBlock {
        assert!(self.chain.can_connect(), "the embedded mainnet blocks end at 438");
        let chain = self.chain.set_tip(self.chain.tip_height() + 1);
        let event = new_block(&chain, chain.tip_height());
        self.publish(event.clone());
        self.manager.timers().on_tip(chain.tip_height());
        event
    }

    /// A reorg of `depth` blocks as the node publishes one:
    /// `BlockDisconnected` for each block from the tip down to the fork
    /// point, `NewBlock` for each block of the new branch, then
    /// `ChainReorg`. The embedded mainnet chain has one branch, so the new
    /// branch is made of the same real blocks, reconnected: the chain
    /// behind the module's requests goes back to `tip - depth` and forward
    /// again. A module on the durable path (`subscribe_durable`) reads the
    /// chain itself: the chain stays at the fork point until its feed has
    /// walked back there (its `ChainReorg` and `BlockDisconnected`s made),
    /// then its `NewBlock`s follow.
    ///
    /// # Panics
    ///
    /// If `depth` is 0 or reaches below genesis, or a durable feed does
    /// not walk back within [`DEADLINE`].
    pub async fn reorg(&self, depth: u64) -> ChainReorg {
        let tip = self.chain.tip_height();
        assert!(depth > 0 && depth <= tip, "a reorg of {depth} blocks from height {tip}");
        let old = self.chain.now();
        let fork_height = tip - depth;
        self.chain.set_tip(fork_height);
        for height in (fork_height + 1..=tip).rev() {
            self.publish(BlockDisconnected {
                block_hash: old.hash_at(height),
                height,
                header: old.header_bytes(height),
            });
        }
        self.durable_walked_back(fork_height).await;
        let new = self.chain.set_tip(tip);
        for height in fork_height + 1..=tip {
            self.publish(new_block(&new, height));
        }
        let reorg = ChainReorg {
            old_tip: old.hash_at(tip),
            old_height: tip,
            new_tip: new.hash_at(tip),
            new_height: tip,
            fork_point: new.hash_at(fork_height),
            fork_height,
            disconnected: depth as u32,
            connected: depth as u32,
        };
        self.publish(reorg.clone());
        reorg
    }

    /// Waits until the module's durable feed, if it has one, has sent its
    /// view back to `height` or below. The feed reads the chain when its
    /// writer wakes (the published events wake it): there is no event to
    /// wait on, so its status is looked at every few milliseconds.
    async fn durable_walked_back(&self, height: u64) {
        let Some(id) = self.status().module_id else {
            return;
        };
        let Some(feed) = self.manager.events().durable(&id) else {
            return;
        };
        let waited = tokio::time::timeout(DEADLINE, async {
            while feed.status().sent.is_some_and(|at| at.height > height) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "`{}`'s durable feed did not walk back to height {height} within {DEADLINE:?}: {:?}",
            self.name,
            feed.status()
        );
    }

    /// Submits the transaction `raw` (consensus bytes) to the mempool as a
    /// peer would: checked against the chain (inputs unspent, scripts
    /// and amounts), then `MempoolTransactionAdded` (its fee, vsize and
    /// rate) and `NewTransaction` are published, as the node publishes
    /// them. A real transaction of the block after the tip is a valid
    /// one ([`MemoryChain::raw_tx`]).
    pub fn submit_transaction(&self, raw: &[u8]) -> Result<MempoolTransactionAdded, BackendError> {
        let chain = self.chain.now();
        let txid = chain.submit_transaction(raw)?;
        let tx: bitcoin::Transaction = bitcoin::consensus::deserialize(raw)
            .map_err(|e| BackendError::InvalidParams(format!("an accepted transaction does not parse: {e}")))?;
        let fee_sats = chain.get_mempool_transaction(&txid)?.fee.unwrap_or(0);
        let vsize = tx.vsize() as u64;
        let added = MempoolTransactionAdded {
            txid,
            wtxid: Hash32(bitcoin::hashes::Hash::to_byte_array(tx.compute_wtxid())),
            fee_sats,
            vsize,
            fee_rate: fee_sats as f64 / vsize.max(1) as f64,
            mempool_size: chain.get_mempool_size()?.count,
        };
        self.publish(added.clone());
        self.publish(NewTransaction {
            txid,
            wtxid: added.wtxid,
            tx: raw.to_vec(),
        });
        Ok(added)
    }

    /// Publishes the custom event `name` (MessagePack `payload`) as if
    /// module `origin` had published it: delivered to the modules
    /// subscribed to `name`, with `origin` as its origin.
    pub fn publish_from(&self, origin: &str, name: &str, payload: impl Into<bytes::Bytes>) {
        self.manager
            .events()
            .publish_from_module(None, name, payload.into(), origin);
    }

    /// Publishes `event` to every subscribed module, as the node does.
    pub fn publish(&self, event: impl Into<Event>) {
        self.manager.events().publish(&event.into());
    }

    /// Calls the JSON-RPC method `method` the module registered, with
    /// `params` (a JSON array or object), as the node's JSON-RPC server
    /// does; the module's result, or the error it or the node answered.
    pub async fn rpc(&self, method: &str, params: serde_json::Value) -> Result<serde_json::Value, EndpointError> {
        // The module may register its methods just after its handshake.
        self.rpc_endpoint(method).await;
        let endpoints = Arc::clone(self.manager.rpc_endpoints());
        let method = method.to_owned();
        let text = tokio::task::spawn_blocking(move || endpoints.call(&method, params.to_string()))
            .await
            .expect("the RPC call's thread")?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    /// The JSON-RPC method `method` as served once the module has
    /// registered it (its help included); fails the test if it is not
    /// registered within [`DEADLINE`].
    pub async fn rpc_endpoint(&self, method: &str) -> Endpoint {
        match self.rpc.wait_for(method, DEADLINE).await {
            Some(endpoint) => endpoint,
            None => panic!(
                "`{}` did not register the RPC method `{method}` within {DEADLINE:?}; its requests: {:?}",
                self.name,
                self.requests()
                    .iter()
                    .map(|r| (&r.method, &r.error))
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// Calls the module's API method `method` with raw `params`, as another
    /// module's `call_module` does (the caller named `test`).
    pub async fn module_call(&self, method: &str, params: &[u8]) -> Result<Vec<u8>, RemoteError> {
        let id = self
            .status()
            .module_id
            .ok_or_else(|| RemoteError::new(ErrorCode::Unavailable, "the module is not running"))?;
        let conn = self
            .manager
            .ipc_server()
            .and_then(|s| s.connection(&id))
            .ok_or_else(|| RemoteError::new(ErrorCode::Unavailable, "the module is not connected"))?;
        let call = ModuleCall {
            caller: "test".into(),
            method: method.into(),
            params: params.to_vec(),
        };
        let raw = tokio::time::timeout(DEADLINE, conn.invoke(MODULE_CALL, &call))
            .await
            .map_err(|_| RemoteError::new(ErrorCode::Timeout, "the module did not answer in time"))??;
        decode_body::<ModuleCallResult>("result", &raw)
            .map(|r| r.result)
            .map_err(|e| RemoteError::new(ErrorCode::InvalidParams, e.to_string()))
    }

    /// Every request the module has sent so far.
    pub fn requests(&self) -> Vec<SentRequest> {
        self.requests.of(&self.name)
    }

    /// Waits until the module has sent a request for which `pred` holds;
    /// returns the first such. Fails the test after [`DEADLINE`].
    #[track_caller]
    pub fn wait_for_request<'a>(
        &'a self,
        pred: impl Fn(&SentRequest) -> bool + 'a,
    ) -> impl std::future::Future<Output = SentRequest> + 'a {
        let waiting = self.wait_for_requests(1, pred);
        async move { waiting.await.remove(0) }
    }

    /// Waits until the module has sent `count` requests for which `pred`
    /// holds; returns the first `count`, in the order sent. Fails the
    /// test after [`DEADLINE`].
    #[track_caller]
    pub fn wait_for_requests<'a>(
        &'a self,
        count: usize,
        pred: impl Fn(&SentRequest) -> bool + 'a,
    ) -> impl std::future::Future<Output = Vec<SentRequest>> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            match self.requests.wait_for(&self.name, count, DEADLINE, pred).await {
                Some(found) => found,
                None => {
                    panic!(
                    "{caller}: `{}` sent no {count} such requests within {DEADLINE:?}; it sent (method, error): {:?}",
                    self.name,
                    self.requests().iter().map(|r| (&r.method, &r.error)).collect::<Vec<_>>()
                )
                }
            }
        }
    }

    /// Every line the module has logged so far (`log` frames, stdout,
    /// stderr).
    pub fn logs(&self) -> Vec<ModuleLogLine> {
        self.logs.of(&self.name, self.logs_from)
    }

    /// Waits until the module logs a line for which `pred` holds; fails
    /// the test after [`DEADLINE`].
    #[track_caller]
    pub fn wait_for_log<'a>(
        &'a self,
        pred: impl Fn(&ModuleLogLine) -> bool + 'a,
    ) -> impl std::future::Future<Output = ModuleLogLine> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            assert!(
                self.logs.installed(),
                "{caller}: another global tracing subscriber was installed first: the harness sees no module logs"
            );
            match self.logs.wait_for(&self.name, self.logs_from, DEADLINE, pred).await {
                Some(found) => found,
                None => panic!(
                    "{caller}: `{}` logged no such line within {DEADLINE:?}; it logged: {:#?}",
                    self.name,
                    self.logs().iter().map(|l| &l.message).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// What made the module's traffic wrong so far: protocol violations,
    /// refused handshakes, requests whose params did not decode, crashes.
    pub fn problems(&self) -> Vec<String> {
        let mut found = self.violations.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for r in self.requests() {
            if r.error == Some(ErrorCode::InvalidParams) {
                found.push(format!(
                    "`{}` sent `{}` with params its type does not accept",
                    r.module, r.method
                ));
            }
        }
        if let Some(status) = self.manager.module_status(&self.name) {
            for crash in &status.crashes {
                found.push(format!("`{}` crashed: {crash:?}", self.name));
            }
        }
        found
    }

    /// Unloads the module (a `shutdown` it must obey within the grace
    /// period), stops the node side, and fails the test if the module sent
    /// anything the protocol forbids or crashed ([`ModuleTest::problems`]).
    pub async fn finish(mut self) {
        self.finished = true;
        let unloaded = self.manager.unload_module(&self.name).await;
        let problems = self.problems();
        self.manager.shutdown().await;
        if let Err(e) = unloaded {
            panic!("`{}` did not unload: {e}", self.name);
        }
        assert!(
            problems.is_empty(),
            "`{}` broke the protocol:\n  {}",
            self.name,
            problems.join("\n  ")
        );
    }
}

/// The `NewBlock` of `chain`'s block at `height`.
fn new_block(chain: &MemoryChain, height: u64) -> NewBlock {
    NewBlock {
        block_hash: chain.hash_at(height),
        height,
        header: chain.header_bytes(height),
    }
}

impl Drop for ModuleTest {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        if !self.finished && !std::thread::panicking() {
            panic!(
                "a ModuleTest of `{}` was dropped without finish(): its frames were never checked",
                self.name
            );
        }
    }
}
