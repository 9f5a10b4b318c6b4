//! [`ModuleManager`]: orchestrates every module's life.
//!
//! # A module's life
//!
//! 1. **discover** (`modules/` via [`ModuleManager::auto_load_modules`]) or
//!    **install** manually ([`ModuleManager::load_module`]);
//! 2. **verify**: compatibility with this node, maintainer signatures
//!    against the operator's keyring (`crate::security`), dependencies
//!    loaded and in range, the read-only paths its manifest asks for
//!    allowed by the operator, binary hash — the checked bytes are staged,
//!    in a node-owned copy of the module's folder, and those run;
//! 3. **spawn** with a one-time token, and wait for the **handshake** within
//!    a deadline (else kill, and the load fails with that reason);
//! 4. **run**, supervised: an exit is seen at once by a waiter thread;
//! 5. **crash**: invocations in flight fail with `module_crashed`,
//!    `ModuleCrashed` is published, and the module is restarted with
//!    exponential backoff until it crashes too often within a window; then
//!    it is `failed` and stays stopped, with the reason in its status;
//! 6. **unload**: dependents first; `Shutdown`, a grace period, then the
//!    whole process tree is killed and its own socket removed. The node's
//!    socket is never touched.
//!
//! One module failing never stops the others: every step reports per
//! module and carries on.
//!
//! # Ownership
//!
//! The manager's map of modules is the one piece of state; each module has
//! one supervisor task that drives its process. Locks are short and never
//! held across an `.await`.

mod liveness;
mod status;
mod supervisor;
mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use blvm_module_protocol::events::{Event, ModuleDiscovered, ModuleReloaded, ModuleStateChanged, ModuleUnloaded};
use blvm_module_protocol::PermissionSet;
use semver::Version;
use tokio::sync::{oneshot, watch, Notify};

pub use status::{CrashRecord, ModuleState, ModuleStatus, CRASH_RECORDS, UNLOADED};
pub use verify::{VerifiedBinary, VerifyError};

use crate::api::backend::NodeBackend;
use crate::api::durable::CursorStore;
use crate::api::events::{EventManager, DEFAULT_QUEUE_CAPACITY};
use crate::api::hub::{ModuleApiHub, RequestTap};
use crate::ipc::{IpcServerConfig, ModuleIpcServer, RequestRate};
use crate::process::{ModuleProcess, ModuleProcessSpawner, SpawnerConfig};
use crate::registry::{self, check_compatibility, ModuleManifest, NodeVersions};
use crate::sandbox::{DiskImages, Identity, IdentityAllocator, SandboxConfig};
use crate::security::{self, SignatureError, SignaturePolicy};
use crate::services::filesystem::FilesystemService;
use crate::services::metrics::{module_families, MetricsLimits, MetricsService};
use crate::services::modules::{InterModuleLimits, InterModuleService};
use crate::services::rpc_endpoints::{RpcEndpointLimits, RpcEndpointService};
use crate::services::storage::{StorageConfig, StorageService};
use crate::services::timers::{TimerLimits, TimerService};

/// When and how often a crashed module is restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Wait before the first restart; doubles with each crash in the window.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// Crashes within `window` after which the module is marked failed.
    pub max_crashes: u32,
    /// The window crashes are counted in.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_crashes: 5,
            window: Duration::from_secs(300),
        }
    }
}

/// Settings of the module manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Where modules are discovered: one folder per module.
    pub modules_dir: PathBuf,
    /// Each module's data dir is `<data_dir>/<name>`; verified binaries are
    /// staged in `<data_dir>/.staged`.
    pub data_dir: PathBuf,
    /// Where the node's module socket lives (`node.sock`).
    pub socket_dir: PathBuf,
    /// The versions modules are checked against.
    pub node_versions: NodeVersions,
    /// How long a spawned module has to complete its handshake.
    pub handshake_timeout: Duration,
    /// How long a module has to exit after `Shutdown`.
    pub shutdown_grace: Duration,
    /// Crash restarts.
    pub restart: RestartPolicy,
    /// Capabilities the operator allows every module (intersected with
    /// what each manifest asks for).
    pub default_policy: PermissionSet,
    /// Per-module overrides of `default_policy`.
    pub policies: BTreeMap<String, PermissionSet>,
    /// The node's `[modules.<name>]` sections, flattened; merged over each
    /// module's own `config.toml`.
    pub module_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Event queue capacity of every module.
    pub event_queue_capacity: usize,
    /// Per-module event queue capacities.
    pub event_queue_capacities: BTreeMap<String, usize>,
    /// Process spawning.
    pub spawner: SpawnerConfig,
    /// The kernel sandbox of every module: mode, resource limits (default
    /// and per module), the uid to run as.
    pub sandbox: SandboxConfig,
    /// Whose signatures count and how many every module needs (default:
    /// an empty keyring, none required: unsigned modules load; a signed
    /// one must still meet its own threshold with trusted keys).
    pub signatures: SignaturePolicy,
    /// Every module's request rate (default 20 000/s, bursts of 5 000);
    /// beyond it requests are answered `rate_limited`. `None`: no limit.
    pub request_rate: Option<RequestRate>,
    /// Per-module request rates, replacing `request_rate` for that module.
    pub request_rates: BTreeMap<String, Option<RequestRate>>,
    /// How often each running module is sent a `health_check` invocation
    /// (default 10 s); `None`: never (its process state is still watched).
    pub health_check_interval: Option<Duration>,
    /// How long a module has to answer a health check, and how long its
    /// main process may stay stopped, before it is killed and restarted as
    /// a crash (default 5 s).
    pub health_check_timeout: Duration,
    /// The IPC server.
    pub ipc: IpcServerConfig,
    /// Module storage: where, and every module's quota cap.
    pub storage: StorageConfig,
    /// Caps on metric series, default and per module.
    pub metrics: MetricsLimits,
    /// Inter-module limits (call deadline, API size, publishing rate),
    /// default and per module.
    pub inter_module: InterModuleLimits,
    /// Caps on JSON-RPC endpoints (how many, how long a call may wait),
    /// default and per module.
    pub rpc_endpoints: RpcEndpointLimits,
    /// Timers: the cap per module and the fire deadline, default and per
    /// module.
    pub timers: TimerLimits,
}

impl ManagerConfig {
    /// Defaults for the three directories the seed's constructor takes.
    pub fn new(modules_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>, socket_dir: impl Into<PathBuf>) -> Self {
        let node = Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or_else(|_| Version::new(0, 1, 0));
        ManagerConfig {
            modules_dir: modules_dir.into(),
            data_dir: data_dir.into(),
            socket_dir: socket_dir.into(),
            node_versions: NodeVersions::new(node.clone(), node),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            restart: RestartPolicy::default(),
            default_policy: PermissionSet::all(),
            policies: BTreeMap::new(),
            module_configs: BTreeMap::new(),
            event_queue_capacity: DEFAULT_QUEUE_CAPACITY,
            event_queue_capacities: BTreeMap::new(),
            spawner: SpawnerConfig::default(),
            sandbox: SandboxConfig::default(),
            signatures: SignaturePolicy::default(),
            request_rate: Some(RequestRate::default()),
            request_rates: BTreeMap::new(),
            health_check_interval: Some(Duration::from_secs(10)),
            health_check_timeout: Duration::from_secs(5),
            ipc: IpcServerConfig::default(),
            storage: StorageConfig::default(),
            metrics: MetricsLimits::default(),
            inter_module: InterModuleLimits::default(),
            rpc_endpoints: RpcEndpointLimits::default(),
            timers: TimerLimits::default(),
        }
    }
}

/// Why a manager operation failed; always names the module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// `start` has not been called.
    #[error("the module manager is not started")]
    NotStarted,
    /// The IPC server could not bind.
    #[error("cannot start the module IPC server at {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A module of that name is already loaded.
    #[error("module `{0}` is already loaded")]
    AlreadyLoaded(String),
    /// No module of that name is loaded.
    #[error("module `{0}` is not loaded")]
    NotLoaded(String),
    /// The name given differs from the manifest's.
    #[error("module `{given}`: the manifest names it `{manifest}`")]
    NameMismatch {
        /// The name the caller gave.
        given: String,
        /// The manifest's name.
        manifest: String,
    },
    /// The manifest or module folder is invalid.
    #[error("module `{module}`: {reason}")]
    Invalid {
        /// The module.
        module: String,
        /// Why, in words (file and field included).
        reason: String,
    },
    /// Incompatible with this node.
    #[error("module `{module}`: {reason}")]
    Incompatible {
        /// The module.
        module: String,
        /// Both versions, in words.
        reason: String,
    },
    /// A dependency is not running or out of range.
    #[error("module `{module}` depends on `{dependency}` {range}: {reason}")]
    Dependency {
        /// The module.
        module: String,
        /// The dependency.
        dependency: String,
        /// The range asked for.
        range: String,
        /// What is wrong.
        reason: String,
    },
    /// Its maintainer signatures do not satisfy the operator's policy.
    #[error("module `{module}`: signatures: {source}")]
    Signatures {
        /// The module.
        module: String,
        /// Why.
        #[source]
        source: SignatureError,
    },
    /// Its manifest asks to read a path (`[resources] read_only`) the
    /// operator has not allowed it.
    #[error(
        "module `{module}` asks to read {} (`[resources] read_only` of its manifest), which the operator does not \
         allow: add it, or a directory above it, to the sandbox's read-only paths (blvm-node: `[sandbox] read_only`, \
         or `[sandbox.read_only_by_module] {module}`)",
        path.display()
    )]
    ReadOnlyNotAllowed {
        /// The module.
        module: String,
        /// The path.
        path: PathBuf,
    },
    /// The binary failed verification.
    #[error("module `{module}`: {source}")]
    Verify {
        /// The module.
        module: String,
        /// Why.
        #[source]
        source: VerifyError,
    },
    /// The module did not start (spawn failed, exited before or never
    /// completed its handshake).
    #[error("module `{module}` failed to start: {reason}")]
    StartFailed {
        /// The module.
        module: String,
        /// Why.
        reason: String,
    },
}

/// What `auto_load_modules` did, module by module.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Modules loaded, in load order.
    pub loaded: Vec<String>,
    /// Modules (or folders) that did not load, with the reason.
    pub failed: BTreeMap<String, String>,
}

/// Where a loaded module came from, so that reload can read it again.
#[derive(Debug, Clone)]
struct ModuleSource {
    /// The binary as installed (not the staged copy).
    binary_path: PathBuf,
    /// The module's folder, when it was discovered there.
    dir: Option<PathBuf>,
}

/// One loaded module.
/// What [`ModuleManager::check`] established about a module about to start.
struct Checked {
    staged: VerifiedBinary,
    signed_by: Vec<String>,
}

struct Entry {
    manifest: ModuleManifest,
    source: ModuleSource,
    config: BTreeMap<String, String>,
    staged: VerifiedBinary,
    /// The keyring names of the maintainers whose signatures verified.
    signed_by: Vec<String>,
    capabilities: PermissionSet,
    state: ModuleState,
    module_id: Option<String>,
    process: Option<Arc<ModuleProcess>>,
    running_since: Option<std::time::Instant>,
    restarts: u32,
    last_error: Option<String>,
    /// The latest resource limit warning per resource, newest last; kept
    /// across restarts so a crash's warning stays visible.
    resource_warnings: Vec<String>,
    /// Why it is `unresponsive`, while it is.
    unresponsive: Option<String>,
    /// Health checks the current spawn answered.
    health_checks: u64,
    /// The latest crashes, oldest first, at most [`CRASH_RECORDS`].
    crashes: std::collections::VecDeque<CrashRecord>,
    /// When the crash awaiting its restart was seen, to time the restart.
    crash_seen: Option<std::time::Instant>,
    stop: Arc<Notify>,
    stop_requested: bool,
    /// Why the stop was requested, sent in `Shutdown`: `unload`, `reload`
    /// or `node_shutdown`.
    stop_reason: &'static str,
    supervisor: Option<tokio::task::JoinHandle<()>>,
}

struct Inner {
    config: ManagerConfig,
    events: Arc<EventManager>,
    server: OnceLock<ModuleIpcServer>,
    spawner: ModuleProcessSpawner,
    modules: Mutex<BTreeMap<String, Entry>>,
    /// Bumped on every state change, so callers can wait for one.
    changes: watch::Sender<u64>,
    spawns: AtomicU64,
    /// Per-module uids, kept in `<data_dir>/.identities`.
    identities: IdentityAllocator,
    /// The data dirs' file systems (disk quotas), attached for the node's
    /// run.
    disk_images: Arc<DiskImages>,
    /// Every module's key-value store.
    storage: Arc<StorageService>,
    /// Every module's metric series, and the node's exposition.
    metrics: Arc<MetricsService>,
    inter_module: Arc<InterModuleService>,
    /// Every spawn's data dir, for `manage_filesystem`.
    filesystem: Arc<FilesystemService>,
    /// Every module's JSON-RPC endpoints.
    rpc_endpoints: Arc<RpcEndpointService>,
    /// Every connection's timers.
    timers: Arc<TimerService>,
    /// Where durable subscriptions keep their cursors (the node's store),
    /// once the node has set it.
    cursors: OnceLock<Arc<dyn CursorStore>>,
    /// Told of every module request, once set.
    tap: OnceLock<Arc<dyn RequestTap>>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // Every update of the map is a field store or an insert/remove; a
        // panic elsewhere cannot leave an entry half-written.
        self.modules.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn server(&self) -> Result<&ModuleIpcServer, ManagerError> {
        self.server.get().ok_or(ManagerError::NotStarted)
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    fn publish(&self, event: impl Into<Event>) {
        self.events.publish(&event.into());
    }
}

/// Orchestrates all modules: discovery, verification, spawning,
/// supervision, unload and reload. Cheap to clone; clones share the
/// modules.
#[derive(Clone)]
pub struct ModuleManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ModuleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleManager")
            .field("modules", &self.inner.lock().keys().cloned().collect::<Vec<_>>())
            .finish()
    }
}

impl ModuleManager {
    /// A manager over the three directories, with default settings.
    pub fn new(modules_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>, socket_dir: impl Into<PathBuf>) -> Self {
        Self::with_config(ManagerConfig::new(modules_dir, data_dir, socket_dir))
    }

    /// A manager with explicit settings.
    ///
    /// The three directories are made absolute against the current
    /// directory now: the spawner refuses relative binary paths (a module's
    /// meaning must not depend on where the node happens to run), and the
    /// staged binaries live under `data_dir`.
    pub fn with_config(mut config: ManagerConfig) -> Self {
        for dir in [&mut config.modules_dir, &mut config.data_dir, &mut config.socket_dir] {
            match std::path::absolute(&*dir) {
                Ok(abs) => *dir = abs,
                Err(e) => tracing::warn!(dir = %dir.display(), "cannot make the directory absolute: {e}"),
            }
        }
        let mut spawner_config = config.spawner.clone();
        spawner_config.delegate_controllers &= config.sandbox.enabled;
        let spawner = ModuleProcessSpawner::new(spawner_config);
        let identities = match config.sandbox.identity {
            Identity::PerModule { first, count } => IdentityAllocator::new(&config.data_dir, first, count),
            // Never consulted.
            _ => IdentityAllocator::new(&config.data_dir, 0, 0),
        };
        let events = Arc::new(EventManager::new());
        let storage = Arc::new(StorageService::new(
            config
                .storage
                .dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join(".storage")),
            config.storage.clone(),
            Some(Arc::clone(&events)),
        ));
        let metrics = Arc::new(MetricsService::new(config.metrics.clone()));
        let inter_module = Arc::new(InterModuleService::new(config.inter_module.clone()));
        let rpc_endpoints = Arc::new(RpcEndpointService::new(config.rpc_endpoints.clone()));
        let timers = Arc::new(TimerService::new(config.timers.clone()));
        let manager = ModuleManager {
            inner: Arc::new(Inner {
                metrics: Arc::clone(&metrics),
                inter_module,
                rpc_endpoints,
                timers,
                cursors: OnceLock::new(),
                tap: OnceLock::new(),
                config,
                events,
                storage,
                server: OnceLock::new(),
                spawner,
                modules: Mutex::new(BTreeMap::new()),
                changes: watch::channel(0).0,
                spawns: AtomicU64::new(0),
                identities,
                disk_images: Arc::new(DiskImages::default()),
                filesystem: Arc::new(FilesystemService::default()),
            }),
        };
        // The per-module metrics come from the manager's status; a weak
        // reference, so the service does not keep the manager alive.
        let weak = Arc::downgrade(&manager.inner);
        metrics.set_module_source(move || match weak.upgrade() {
            Some(inner) => {
                let manager = ModuleManager { inner };
                module_families(&manager.status(), manager.metrics())
            }
            None => Vec::new(),
        });
        manager
    }

    /// The event bus: the node publishes its events here.
    pub fn events(&self) -> &Arc<EventManager> {
        &self.inner.events
    }

    /// Module storage: usage, quotas, and the operator's removal of a
    /// module's data.
    pub fn storage(&self) -> &Arc<StorageService> {
        &self.inner.storage
    }

    /// Deletes all of `name`'s stored data (the operator's
    /// `module storage-remove`); refused while the module is loaded, so no
    /// running module loses its data under it. False if it had none.
    pub fn remove_storage(&self, name: &str) -> Result<bool, ManagerError> {
        if self.inner.lock().contains_key(name) {
            return Err(ManagerError::Invalid {
                module: name.to_owned(),
                reason: "unload it before removing its storage".into(),
            });
        }
        self.inner.storage.remove(name).map_err(|e| ManagerError::Invalid {
            module: name.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The metrics service: every module's series and the node's
    /// Prometheus exposition ([`MetricsService::render`]).
    pub fn metrics(&self) -> &Arc<MetricsService> {
        &self.inner.metrics
    }

    /// The JSON-RPC endpoints the modules registered; the node installs
    /// its JSON-RPC server here ([`RpcEndpointService::set_sink`]).
    pub fn rpc_endpoints(&self) -> &Arc<RpcEndpointService> {
        &self.inner.rpc_endpoints
    }

    /// The timer service: the node tells it of each new tip
    /// ([`TimerService::on_tip`]) so height timers fire.
    pub fn timers(&self) -> &Arc<TimerService> {
        &self.inner.timers
    }

    /// The settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// The IPC server, once started.
    pub fn ipc_server(&self) -> Option<&ModuleIpcServer> {
        self.inner.server.get()
    }

    /// Keeps durable subscriptions' cursors in `store` (the node's own
    /// store); set before [`ModuleManager::start`], once. Without it
    /// `subscribe_durable` answers `unavailable`.
    pub fn set_cursor_store(&self, store: Arc<dyn CursorStore>) {
        if self.inner.cursors.set(store).is_err() {
            tracing::warn!("the module manager's cursor store was set twice; the second was ignored");
        }
    }

    /// Tells `tap` of every request any module sends (an audit trail, a
    /// test harness); set before [`ModuleManager::start`], once.
    pub fn set_request_tap(&self, tap: Arc<dyn RequestTap>) {
        if self.inner.tap.set(tap).is_err() {
            tracing::warn!("the module manager's request tap was set twice; the second was ignored");
        }
    }

    /// Starts the IPC server on `socket_path`, answering modules from
    /// `node_api`.
    pub async fn start(
        &self,
        socket_path: impl AsRef<Path>,
        node_api: Arc<dyn NodeBackend>,
    ) -> Result<(), ManagerError> {
        let path = socket_path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ManagerError::Bind {
                path: path.clone(),
                source,
            })?;
        }
        let mut hub = ModuleApiHub::new(node_api, Arc::clone(&self.inner.events))
            .with_storage(Arc::clone(&self.inner.storage))
            .with_metrics(Arc::clone(&self.inner.metrics))
            .with_inter_module(Arc::clone(&self.inner.inter_module))
            .with_filesystem(Arc::clone(&self.inner.filesystem))
            .with_rpc_endpoints(Arc::clone(&self.inner.rpc_endpoints))
            .with_timers(Arc::clone(&self.inner.timers));
        if let Some(store) = self.inner.cursors.get() {
            hub = hub.with_cursor_store(Arc::clone(store));
        }
        if let Some(tap) = self.inner.tap.get() {
            hub = hub.with_request_tap(Arc::clone(tap));
        }
        let hub = Arc::new(hub);
        let server = ModuleIpcServer::bind(&path, hub, self.inner.config.ipc.clone())
            .map_err(|source| ManagerError::Bind { path, source })?;
        if self.inner.server.set(server).is_err() {
            tracing::warn!("module manager started twice; the second server was dropped");
        }
        Ok(())
    }

    /// Loads one module: verify, spawn, wait for its handshake.
    ///
    /// `name` must be the manifest's name; `config` is the module's own
    /// configuration, over which the node's `[modules.<name>]` is merged.
    pub async fn load_module(
        &self,
        name: &str,
        binary_path: impl AsRef<Path>,
        metadata: ModuleManifest,
        config: BTreeMap<String, String>,
    ) -> Result<(), ManagerError> {
        let source = ModuleSource {
            binary_path: binary_path.as_ref().to_path_buf(),
            dir: None,
        };
        self.load(name, source, metadata, config).await
    }

    /// Loads a module read from its folder ([`registry::discover`] or
    /// [`registry::read_module_folder`]); unlike [`Self::load_module`], a
    /// later reload reads that folder again (manifest, config, binary).
    pub async fn load_discovered(&self, module: &registry::DiscoveredModule) -> Result<(), ManagerError> {
        let source = ModuleSource {
            binary_path: module.binary_path.clone(),
            dir: Some(module.dir.clone()),
        };
        self.load(module.name(), source, module.manifest.clone(), module.config.clone())
            .await
    }

    async fn load(
        &self,
        name: &str,
        source: ModuleSource,
        manifest: ModuleManifest,
        config: BTreeMap<String, String>,
    ) -> Result<(), ManagerError> {
        let inner = &self.inner;
        inner.server()?;
        if manifest.name().as_str() != name {
            return Err(ManagerError::NameMismatch {
                given: name.to_owned(),
                manifest: manifest.name().as_str().to_owned(),
            });
        }
        let checked = self.check(&manifest, &source)?;
        self.start_checked(name, source, manifest, config, checked, false).await
    }

    /// Inserts a checked module's entry and starts its supervisor; waits
    /// for the handshake. `replace` overwrites an existing entry (reload),
    /// else an existing one is [`ManagerError::AlreadyLoaded`].
    async fn start_checked(
        &self,
        name: &str,
        source: ModuleSource,
        manifest: ModuleManifest,
        config: BTreeMap<String, String>,
        checked: Checked,
        replace: bool,
    ) -> Result<(), ManagerError> {
        let inner = &self.inner;
        let capabilities = manifest
            .capabilities()
            .intersection(inner.config.policies.get(name).unwrap_or(&inner.config.default_policy));
        let mut merged = config;
        if let Some(node_side) = inner.config.module_configs.get(name) {
            merged.extend(node_side.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let stop = Arc::new(Notify::new());
        let old_state;
        {
            let mut modules = inner.lock();
            if !replace && modules.contains_key(name) {
                return Err(ManagerError::AlreadyLoaded(name.to_owned()));
            }
            let old = modules.insert(
                name.to_owned(),
                Entry {
                    manifest,
                    source,
                    config: merged,
                    staged: checked.staged,
                    signed_by: checked.signed_by,
                    capabilities,
                    state: ModuleState::Loading,
                    module_id: None,
                    process: None,
                    running_since: None,
                    restarts: 0,
                    last_error: None,
                    resource_warnings: Vec::new(),
                    unresponsive: None,
                    health_checks: 0,
                    crashes: std::collections::VecDeque::new(),
                    crash_seen: None,
                    stop: Arc::clone(&stop),
                    stop_requested: false,
                    stop_reason: "unload",
                    supervisor: None,
                },
            );
            old_state = old.as_ref().map_or(UNLOADED, |e| e.state.as_str());
            // The replaced spawn ended: its counters stay, retired.
            if let Some(id) = old.and_then(|e| e.module_id) {
                inner.events.retire(&id);
            }
        }
        // Its first state (a reload: from its old entry's, `stopped`).
        inner.publish(ModuleStateChanged {
            module_name: name.to_owned(),
            old_state: old_state.to_owned(),
            new_state: ModuleState::Loading.as_str().to_owned(),
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(supervisor::supervise(
            Arc::clone(inner),
            name.to_owned(),
            stop,
            ready_tx,
        ));
        if let Some(e) = inner.lock().get_mut(name) {
            e.supervisor = Some(task);
        }
        inner.changed();
        match ready_rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(ManagerError::StartFailed {
                module: name.to_owned(),
                reason,
            }),
            Err(_) => Err(ManagerError::StartFailed {
                module: name.to_owned(),
                reason: "its supervisor ended before the handshake".into(),
            }),
        }
    }

    /// Compatibility, signatures, dependencies, the paths it asks to read,
    /// binary: everything checked before a spawn, on every load and reload.
    fn check(&self, manifest: &ModuleManifest, source: &ModuleSource) -> Result<Checked, ManagerError> {
        let inner = &self.inner;
        let name = manifest.name().as_str().to_owned();
        check_compatibility(manifest, &inner.config.node_versions).map_err(|e| ManagerError::Incompatible {
            module: name.clone(),
            reason: e.to_string(),
        })?;
        let signatures =
            security::verify(manifest, &inner.config.signatures).map_err(|source| ManagerError::Signatures {
                module: name.clone(),
                source,
            })?;
        {
            let modules = inner.lock();
            for dep in manifest.module_dependencies() {
                let range = dep.raw.clone();
                let Some(entry) = modules.get(dep.name.as_str()) else {
                    return Err(ManagerError::Dependency {
                        module: name,
                        dependency: dep.name.to_string(),
                        range,
                        reason: "it is not loaded".into(),
                    });
                };
                if !dep.req.matches(entry.manifest.version()) {
                    return Err(ManagerError::Dependency {
                        module: name,
                        dependency: dep.name.to_string(),
                        range,
                        reason: format!("version {} is loaded", entry.manifest.version()),
                    });
                }
                if entry.state != ModuleState::Running {
                    return Err(ManagerError::Dependency {
                        module: name,
                        dependency: dep.name.to_string(),
                        range,
                        reason: format!("it is {}", entry.state),
                    });
                }
            }
        }
        if let Some(path) = inner.config.sandbox.refused_read_only(&name, manifest.read_only()) {
            return Err(ManagerError::ReadOnlyNotAllowed {
                module: name,
                path: path.clone(),
            });
        }
        let staged = verify::verify_and_stage(
            manifest,
            &source.binary_path,
            source.dir.as_deref(),
            &inner.config.data_dir.join(".staged"),
        )
        .map_err(|source| ManagerError::Verify { module: name, source })?;
        Ok(Checked {
            staged,
            signed_by: signatures.signed_by,
        })
    }

    /// Discovers every module in `modules/` and loads them in dependency
    /// order. A module that fails is reported and skipped, with its
    /// dependents; the rest load.
    pub async fn auto_load_modules(&self) -> Result<LoadReport, ManagerError> {
        self.inner.server()?;
        let discovery = registry::discover(&self.inner.config.modules_dir);
        let mut report = LoadReport::default();
        for error in &discovery.errors {
            tracing::warn!("module discovery: {error}");
            report
                .failed
                .insert(error.path.display().to_string(), error.to_string());
        }
        for module in &discovery.modules {
            self.inner.publish(ModuleDiscovered {
                module_name: module.name().to_owned(),
                version: module.manifest.version().to_string(),
                source: "filesystem".into(),
            });
        }
        let excluded: BTreeMap<String, String> = discovery.failed_names();
        let resolution = registry::resolve_with_failures(discovery.manifests(), &excluded);
        for (name, error) in &resolution.failed {
            tracing::warn!("{error}");
            report.failed.insert(name.clone(), error.to_string());
        }
        for name in &resolution.order {
            let Some(module) = discovery.modules.iter().find(|m| m.name() == name) else {
                continue;
            };
            if self.inner.lock().contains_key(name.as_str()) {
                // Already loaded (an earlier auto-load or a manual install).
                continue;
            }
            if let Some(dep) = module
                .manifest
                .module_dependencies()
                .find(|d| report.failed.contains_key(d.name.as_str()))
            {
                let reason = format!("depends on `{}`, which failed to load", dep.name);
                tracing::warn!(module = %name, "{reason}");
                report.failed.insert(name.clone(), reason);
                continue;
            }
            let source = ModuleSource {
                binary_path: module.binary_path.clone(),
                dir: Some(module.dir.clone()),
            };
            match self
                .load(name, source, module.manifest.clone(), module.config.clone())
                .await
            {
                Ok(()) => report.loaded.push(name.clone()),
                Err(e) => {
                    tracing::warn!("{e}");
                    report.failed.insert(name.clone(), e.to_string());
                }
            }
        }
        Ok(report)
    }

    /// Stops a module and forgets it: its dependents are unloaded first,
    /// then it gets `Shutdown`, a grace period, and its process tree is
    /// killed.
    pub async fn unload_module(&self, name: &str) -> Result<(), ManagerError> {
        self.unload(name, "unload").await
    }

    /// [`ModuleManager::unload_module`] with the reason sent in `Shutdown`.
    async fn unload(&self, name: &str, reason: &'static str) -> Result<(), ManagerError> {
        let dependents: Vec<String> = self
            .inner
            .lock()
            .iter()
            .filter(|(_, e)| e.manifest.module_dependencies().any(|d| d.name.as_str() == name))
            .map(|(n, _)| n.clone())
            .collect();
        for dependent in dependents {
            // Box the recursion: a dependent may have dependents.
            Box::pin(self.unload(&dependent, reason)).await?;
        }
        self.stop(name, reason).await?;
        let removed = self.inner.lock().remove(name);
        if let Some(entry) = removed {
            let version = entry.manifest.version().to_string();
            if let Some(id) = &entry.module_id {
                if let Ok(server) = self.inner.server() {
                    server.forget_module(id);
                }
                self.inner.events.retire(id);
            }
            self.inner.rpc_endpoints.forget_module(name);
            // Unloading stops the module; it stays installed (the registry
            // client's `remove` publishes `ModuleRemoved`).
            self.inner.publish(ModuleUnloaded {
                module_name: name.to_owned(),
                version,
            });
            self.inner.changed();
        }
        Ok(())
    }

    /// Stops a module's process and supervisor, telling it `reason` in
    /// `Shutdown`; keeps its entry.
    async fn stop(&self, name: &str, reason: &'static str) -> Result<(), ManagerError> {
        let (stop, task) = {
            let mut modules = self.inner.lock();
            let entry = modules
                .get_mut(name)
                .ok_or_else(|| ManagerError::NotLoaded(name.to_owned()))?;
            entry.stop_requested = true;
            entry.stop_reason = reason;
            (Arc::clone(&entry.stop), entry.supervisor.take())
        };
        stop.notify_one();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(module = name, "supervisor task failed: {e}");
            }
        }
        Ok(())
    }

    /// Restarts a module from disk: its folder (or binary) is read and
    /// checked again (compatibility, dependencies, binary) before anything
    /// is stopped; a module that no longer passes keeps running, untouched,
    /// and the reload is refused.
    ///
    /// If the new process then fails to start (spawn or handshake), the old
    /// one is already gone: `ModuleUnloaded` is published for it and the
    /// module stays loaded in state `failed` with the reason.
    pub async fn reload_module(&self, name: &str) -> Result<(), ManagerError> {
        let (source, old_manifest, old_config) = {
            let modules = self.inner.lock();
            let e = modules
                .get(name)
                .ok_or_else(|| ManagerError::NotLoaded(name.to_owned()))?;
            (e.source.clone(), e.manifest.clone(), e.config.clone())
        };
        let (manifest, source, config) = match &source.dir {
            Some(dir) => {
                let module = registry::read_module_folder(dir).map_err(|e| ManagerError::Invalid {
                    module: name.to_owned(),
                    reason: e.to_string(),
                })?;
                let source = ModuleSource {
                    binary_path: module.binary_path.clone(),
                    dir: Some(module.dir.clone()),
                };
                (module.manifest, source, module.config)
            }
            None => (old_manifest.clone(), source, old_config),
        };
        if manifest.name().as_str() != name {
            return Err(ManagerError::NameMismatch {
                given: name.to_owned(),
                manifest: manifest.name().as_str().to_owned(),
            });
        }
        // Every check before stopping anything: a bad update leaves the
        // running module alone.
        let checked = self.check(&manifest, &source)?;
        self.stop(name, "reload").await?;
        let old_id = self.inner.lock().get(name).and_then(|e| e.module_id.clone());
        if let (Some(id), Ok(server)) = (old_id, self.inner.server()) {
            server.forget_module(&id);
        }
        if let Err(e) = self
            .start_checked(name, source, manifest.clone(), config, checked, true)
            .await
        {
            // The entry stays, `failed` with the reason (set by its
            // supervisor); the old version is gone for good.
            self.inner.publish(ModuleUnloaded {
                module_name: name.to_owned(),
                version: old_manifest.version().to_string(),
            });
            return Err(e);
        }
        // What runs changed; what is installed changed earlier, where the
        // registry client published `ModuleUpdated`.
        self.inner.publish(ModuleReloaded {
            module_name: name.to_owned(),
            old_version: old_manifest.version().to_string(),
            new_version: manifest.version().to_string(),
        });
        Ok(())
    }

    /// Every module's status, by name.
    pub fn status(&self) -> Vec<ModuleStatus> {
        let modules = self.inner.lock();
        modules.iter().map(|(name, e)| self.status_of(name, e)).collect()
    }

    /// One module's status.
    pub fn module_status(&self, name: &str) -> Option<ModuleStatus> {
        let modules = self.inner.lock();
        modules.get(name).map(|e| self.status_of(name, e))
    }

    fn status_of(&self, name: &str, e: &Entry) -> ModuleStatus {
        let live = e.process.as_ref().filter(|p| p.exit_info().is_none());
        let connection = e
            .module_id
            .as_ref()
            .and_then(|id| self.inner.server.get()?.connection(id));
        ModuleStatus {
            name: name.to_owned(),
            version: e.manifest.version().to_string(),
            state: e.state,
            module_id: e.module_id.clone(),
            pid: live.map(|p| p.pid()),
            uptime: e.running_since.map(|t| t.elapsed()),
            restarts: e.restarts,
            last_error: e.last_error.clone(),
            capabilities: e.capabilities,
            requested_capabilities: e.manifest.capabilities(),
            crashes: e.crashes.iter().copied().collect(),
            usage: live.map(|p| p.usage()),
            sandbox_layers: live.map(|p| p.sandbox().describe()).unwrap_or_default(),
            signed_by: e.signed_by.clone(),
            tier: e.manifest.governance().and_then(|g| g.tier.clone()),
            rate_limited: connection.as_ref().map_or(0, |c| c.rate_limited_requests()),
            logs_dropped: connection.as_ref().map_or(0, |c| c.dropped_logs()),
            unresponsive: e.unresponsive.clone(),
            health_checks: e.health_checks,
            durable: connection.as_ref().and_then(|c| c.durable()).map(|f| f.status()),
            limit_cgroups: live
                .map(|p| {
                    p.limit_cgroups()
                        .into_iter()
                        .map(|(layer, version, dir)| {
                            format!(
                                "{} {} {}",
                                layer.controller().unwrap_or("?"),
                                version.as_str(),
                                dir.display()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            cpu_quota_percent: live.and_then(|p| p.cpu_quota_percent()),
            cpu_weight: live.and_then(|p| cpu_weight_of(p)),
            resource_warnings: e.resource_warnings.clone(),
            run_as: live.and_then(|p| p.run_as()),
            disk: live.and_then(|p| p.disk_usage()),
            storage: self.inner.storage.usage(name).ok(),
            delivery: e
                .module_id
                .as_ref()
                .and_then(|id| self.inner.events.get_delivery_stats(id)),
            metric_series: self.inner.metrics.series(name),
            max_metric_series: self.inner.config.metrics.max_series_of(name),
            inter_module: self.inner.inter_module.limits_of(name),
            api_methods: e
                .module_id
                .as_ref()
                .map(|id| self.inner.inter_module.api_of(id).into_iter().map(|m| m.name).collect())
                .unwrap_or_default(),
            publishes: e.manifest.publishes().to_vec(),
            rpc_endpoints: self.inner.rpc_endpoints.endpoints_of(name),
            max_rpc_endpoints: self.inner.config.rpc_endpoints.max_endpoints_of(name),
            rpc_timeout: self.inner.config.rpc_endpoints.timeout_of(name),
            timers: self.inner.timers.count(name),
            max_timers: self.inner.config.timers.max_timers_of(name),
            timer_fire_timeout: self.inner.config.timers.fire_timeout_of(name),
        }
    }

    /// A receiver that changes whenever any module's state changes.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Waits until `pred` holds for the status of `name` (or `timeout`).
    pub async fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&ModuleStatus) -> bool,
    ) -> Option<ModuleStatus> {
        let mut rx = self.watch_changes();
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(s) = self.module_status(name) {
                    if pred(&s) {
                        return Some(s);
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Unloads every module (dependents first) and stops the IPC server.
    pub async fn shutdown(&self) {
        loop {
            let next = {
                let modules = self.inner.lock();
                // A module no other loaded module depends on.
                modules
                    .keys()
                    .find(|name| {
                        !modules.values().any(|e| {
                            e.manifest
                                .module_dependencies()
                                .any(|d| d.name.as_str() == name.as_str())
                        })
                    })
                    .or_else(|| modules.keys().next())
                    .cloned()
            };
            let Some(name) = next else { break };
            if let Err(e) = self.unload(&name, "node_shutdown").await {
                tracing::warn!("unloading `{name}` at shutdown: {e}");
                self.inner.lock().remove(&name);
            }
        }
        if let Some(server) = self.inner.server.get() {
            server.shutdown();
        }
        // Every module is gone: close the databases, so that a node
        // started next (in this process or another) can open them.
        self.inner.storage.close_all();
    }
}

/// The weight of `process`'s cpu group, read from the group.
fn cpu_weight_of(process: &ModuleProcess) -> Option<u32> {
    let (_, version, dir) = process
        .limit_cgroups()
        .into_iter()
        .find(|(layer, _, _)| *layer == crate::sandbox::Layer::CgroupCpu)?;
    crate::sandbox::read_cpu_weight(version, &dir).map(crate::sandbox::CpuWeight::get)
}
