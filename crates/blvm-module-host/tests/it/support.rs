//! The harness: a real IPC server over a real chain, and real module
//! processes whose stdout lines the tests wait on (never on sleeps).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use blvm_module_host::{EventManager, IpcServerConfig, ModuleApiHub, ModuleIpcServer, ModuleSpec};
use blvm_module_protocol::{Permission, PermissionSet};
use blvm_testkit::MemoryChain;

/// Generous: CI machines are slow and loaded; a pass never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Builds the test module binaries once and returns the path of one.
pub fn module_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "blvm-test-modules", "--bins"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the test modules failed");
        // target/debug/deps/it-<hash> → target/debug
        let exe = std::env::current_exe().expect("test binary path");
        exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
    });
    dir.join(name)
}

/// Removes the directories earlier test runs left behind (a test that
/// panics, or sets up its own root, does not clean up; module binaries are
/// copied into them, so they add up). Only directories of processes that
/// no longer exist are touched.
fn sweep_leftovers() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("blvm-it-")) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}

/// A fresh directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    sweep_leftovers();
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "blvm-it-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A node-side host: server, hub, bus, real chain.
pub struct Host {
    pub server: ModuleIpcServer,
    pub events: Arc<EventManager>,
    pub chain: Arc<MemoryChain>,
    pub dir: PathBuf,
}

impl Drop for Host {
    /// Removes the test's directory: module binaries are copied into it.
    fn drop(&mut self) {
        self.server.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Host {
    pub fn start(tag: &str) -> Host {
        Self::start_with(tag, IpcServerConfig::default())
    }

    pub fn start_with(tag: &str, config: IpcServerConfig) -> Host {
        let dir = temp_dir(tag);
        let chain = Arc::new(MemoryChain::mainnet_0_438());
        let events = Arc::new(EventManager::new());
        let hub = Arc::new(ModuleApiHub::new(chain.clone(), events.clone()));
        let server = ModuleIpcServer::bind(dir.join("node.sock"), hub, config).expect("bind");
        Host {
            server,
            events,
            chain,
            dir,
        }
    }

    /// Registers a module and spawns the test module binary for it, bound
    /// to the child's pid as the module manager does.
    pub fn spawn(&self, spec: ModuleSpec, mode: &str, env: &[(&str, &str)]) -> ModuleProc {
        let ticket = self.server.expect_module(spec.clone()).expect("ticket");
        let proc = self.spawn_unbound(&spec, &ticket.token, mode, env);
        self.server.bind_pid(&spec.module_id, proc.child.id());
        proc
    }

    /// Spawns the test module with `token` without binding its pid.
    pub fn spawn_unbound(&self, spec: &ModuleSpec, token: &str, mode: &str, env: &[(&str, &str)]) -> ModuleProc {
        let mut cmd = Command::new(module_bin("test-module"));
        cmd.env("BLVM_MODULE_SOCKET", self.server.socket_path())
            .env("BLVM_MODULE_ID", &spec.module_id)
            .env("BLVM_MODULE_NAME", &spec.name)
            .env("BLVM_MODULE_VERSION", &spec.version)
            .env("BLVM_MODULE_TOKEN", token)
            .env("BLVM_MODULE_DATA_DIR", &self.dir)
            .env("BLVM_TEST_MODE", mode);
        for (k, v) in env {
            cmd.env(k, v);
        }
        ModuleProc::spawn(cmd, &spec.name)
    }

    /// Registers a module whose process is this test process.
    pub fn expect_self(&self, spec: ModuleSpec) -> String {
        let ticket = self.server.expect_module(spec.clone()).expect("ticket");
        self.server.bind_pid(&spec.module_id, std::process::id());
        ticket.token
    }
}

/// Waits for a connection event matching `pred`.
pub async fn wait_for(
    rx: &mut tokio::sync::broadcast::Receiver<blvm_module_host::ConnectionEvent>,
    pred: impl Fn(&blvm_module_host::ConnectionEvent) -> bool,
) -> blvm_module_host::ConnectionEvent {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) => {}
                Err(e) => panic!("connection events ended: {e}"),
            }
        }
    })
    .await
    .expect("connection event in time")
}

/// A spec with the given capabilities.
pub fn spec(id: &str, caps: &[Permission]) -> ModuleSpec {
    let mut s = ModuleSpec::new(id, id, "1.0.0");
    s.capabilities = caps.iter().copied().collect::<PermissionSet>();
    s
}

/// A running module process and the lines it prints.
pub struct ModuleProc {
    pub child: Child,
    pub name: String,
    lines: Receiver<String>,
}

impl ModuleProc {
    fn spawn(mut cmd: Command, name: &str) -> ModuleProc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn test module");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ModuleProc {
            child,
            name: name.to_owned(),
            lines,
        }
    }

    /// The next line, or a failure naming what was awaited.
    #[track_caller]
    pub fn next_line(&self, what: &str) -> String {
        match self.lines.recv_timeout(DEADLINE) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no line within {DEADLINE:?} while waiting for {what}", self.name)
            }
            Err(RecvTimeoutError::Disconnected) => panic!("{}: exited while waiting for {what}", self.name),
        }
    }

    /// Skips lines until one starts with `prefix`; returns it.
    #[track_caller]
    pub fn expect(&self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(_) => panic!("{}: no line starting with `{prefix}` within {DEADLINE:?}", self.name),
            }
        }
    }
}

impl Drop for ModuleProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the host logged through `tracing` in this test binary, as
/// formatted text. Installs the capturing subscriber on first use.
pub fn captured_logs() -> String {
    let (logs, _) = capture();
    String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// The capture buffer, and a condvar notified on every write to it.
fn capture() -> (&'static std::sync::Mutex<Vec<u8>>, &'static std::sync::Condvar) {
    use std::sync::{Condvar, Mutex};
    static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    static WRITTEN: Condvar = Condvar::new();
    static INSTALL: OnceLock<()> = OnceLock::new();
    struct Capture;
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LOGS.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
            WRITTEN.notify_all();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    INSTALL.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(|| Capture)
            .try_init();
    });
    (&LOGS, &WRITTEN)
}

/// Waits until `times` captured log lines satisfy `pred` (the capture
/// holds every spawn's lines: a restarted module's first line is the
/// second of its kind).
#[track_caller]
pub fn wait_for_log_times(what: &str, times: usize, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    let (logs, written) = capture();
    let mut guard = logs.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let text = String::from_utf8_lossy(&guard).into_owned();
        if text.lines().filter(|l| pred(l)).count() >= times {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not {times} log lines {what} within {DEADLINE:?}; captured:\n{text}"
        );
        guard = written.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0;
    }
}

/// Waits until a captured log line satisfies `pred` and returns it. For
/// lines logged by a thread the test cannot join (a module's stdout
/// reader): woken by every write to the capture, until the deadline.
#[track_caller]
pub fn wait_for_log(what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    let (logs, written) = capture();
    let mut guard = logs.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let text = String::from_utf8_lossy(&guard).into_owned();
        if let Some(line) = text.lines().find(|l| pred(l)) {
            return line.to_owned();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no log line {what} within {DEADLINE:?}; captured:\n{text}"
        );
        guard = written.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0;
    }
}

/// Sends the running module `name` a `module_call` invocation of `method`
/// with `params`, and returns its raw result (or its error answer).
pub async fn module_call(
    manager: &blvm_module_host::manager::ModuleManager,
    name: &str,
    method: &str,
    params: &[u8],
) -> Result<Vec<u8>, blvm_module_protocol::RemoteError> {
    use blvm_module_protocol::frame::decode_body;
    use blvm_module_protocol::methods::invocation::{ModuleCall, ModuleCallResult, MODULE_CALL};
    let id = manager
        .module_status(name)
        .and_then(|s| s.module_id)
        .expect("module id");
    let conn = manager
        .ipc_server()
        .and_then(|s| s.connection(&id))
        .unwrap_or_else(|| panic!("{name} ({id}) is not connected: {:?}", manager.module_status(name)));
    let call = ModuleCall {
        caller: "test".into(),
        method: method.into(),
        params: params.to_vec(),
    };
    let raw = tokio::time::timeout(DEADLINE, conn.invoke(MODULE_CALL, &call))
        .await
        .expect("answered in time")?;
    Ok(decode_body::<ModuleCallResult>("result", &raw).expect("decodes").result)
}

/// [`module_call`] for modules that answer text and always answer.
pub async fn module_call_text(
    manager: &blvm_module_host::manager::ModuleManager,
    name: &str,
    method: &str,
    arg: &str,
) -> String {
    let result = module_call(manager, name, method, arg.as_bytes())
        .await
        .expect("answered");
    String::from_utf8(result).expect("utf8")
}

/// Starts a module manager with `config` over real mainnet blocks 0..438,
/// its socket in `root/sock`.
pub async fn start_manager(
    root: &Path,
    config: blvm_module_host::manager::ManagerConfig,
) -> blvm_module_host::manager::ModuleManager {
    let manager = blvm_module_host::manager::ModuleManager::with_config(config);
    manager
        .start(
            root.join("sock").join("node.sock"),
            Arc::new(MemoryChain::mainnet_0_438()),
        )
        .await
        .expect("start");
    manager
}

/// A module manager under test, in a directory of its own
/// (`<temp>/modules`, `<temp>/data`, `<temp>/sock`), removed on drop:
/// module binaries are copied into it, tens of MB each. Tests shut the
/// manager down before it drops.
pub struct TestNode {
    /// The manager, started over real mainnet blocks 0..438.
    pub manager: blvm_module_host::manager::ModuleManager,
    /// Where modules are discovered (created).
    pub modules_dir: PathBuf,
    /// The modules' data directories.
    pub data_dir: PathBuf,
}

impl TestNode {
    /// A manager whose config `configure` adjusts first; handshakes get
    /// 30 s, shutdowns 3 s and data dirs 16 MiB unless it says otherwise.
    pub async fn start(tag: &str, configure: impl FnOnce(&mut blvm_module_host::manager::ManagerConfig)) -> TestNode {
        let root = temp_dir(tag);
        let modules_dir = root.join("modules");
        let data_dir = root.join("data");
        std::fs::create_dir_all(&modules_dir).expect("modules dir");
        let mut config = blvm_module_host::manager::ManagerConfig::new(&modules_dir, &data_dir, root.join("sock"));
        config.handshake_timeout = Duration::from_secs(30);
        config.shutdown_grace = Duration::from_secs(3);
        // Small data dir file systems: each module of each test gets one.
        config.sandbox.default_limits.disk_bytes = Some(16 << 20);
        configure(&mut config);
        let manager = start_manager(&root, config).await;
        TestNode {
            manager,
            modules_dir,
            data_dir,
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(root) = self.modules_dir.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

/// The host pid of the process that module `module_pid` (a host pid) sees
/// as `ns_pid` in its own pid namespace: a module is process 1 of a
/// namespace of its own, so the pids it reports mean nothing to the host.
pub fn host_pid_of(module_pid: u32, ns_pid: u32) -> Option<u32> {
    let ns = std::fs::read_link(format!("/proc/{module_pid}/ns/pid")).ok()?;
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        if std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()? != ns {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let inner = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))?
            .split_ascii_whitespace()
            .last()?
            .parse::<u32>()
            .ok()?;
        (inner == ns_pid).then_some(pid)
    })
}

/// Whether the tests run as root (CI does): the sandbox's uid drop,
/// namespaces and disk images need it.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Installs the attacker module (`attacker-module`) as `name` in `node`'s
/// modules dir; `caps` is its capability list as TOML (`"\"network_access\""`).
pub fn install_attacker(node: &TestNode, name: &str, caps: &str) {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin("attacker-module"), dir.join(name)).expect("copy binary");
    let manifest =
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{caps}]\n");
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
}

/// Installs test binary `bin` as module `name` (no capabilities) with
/// `config` as its `config.toml`.
pub fn install_module(node: &TestNode, name: &str, bin: &str, config: &str) {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin(bin), dir.join(name)).expect("copy binary");
    std::fs::write(
        dir.join("module.toml"),
        format!("name = \"{name}\"\nversion = \"1.0.0\"\ncapabilities = []\n"),
    )
    .expect("manifest");
    std::fs::write(dir.join("config.toml"), config).expect("config");
}
