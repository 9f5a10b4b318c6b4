//! The node's configuration: a TOML file whose every key is also a
//! command-line flag (the flag wins), over built-in defaults.
//!
//! ```toml
//! network = "regtest"          # --network
//! datadir = ".blvm/regtest"    # --datadir
//! rpcbind = "127.0.0.1"        # --rpcbind; also addr:port, [v6]:port, as Core's
//! rpcport = 18443              # --rpcport
//! rpcuser = "alice"            # --rpcuser  (else the cookie file)
//! rpcpassword = "secret"       # --rpcpassword
//! modules_dir = "modules"      # --modules-dir (default <datadir>/modules)
//! block_interval = 10          # --block-interval, seconds; 0 = no timer
//! mining_address = "bcrt1..."  # --mining-address (default: P2WSH(OP_TRUE))
//! minrelaytxfee = 1.0          # --minrelaytxfee, in sat/vB (Core's -minrelaytxfee is in BTC/kvB)
//! log = "info"                 # --log
//! metrics_bind = "127.0.0.1:9332"  # --metrics-bind: Prometheus /metrics (off unless set)
//!
//! [modules]                    # every module: capability allow-list, event queue
//! capabilities = ["subscribe_events", "read_blockchain"]
//!
//! [modules.block-stats]        # one module: the same two keys, and its config
//! verbose = "true"             # (merged over the module's config.toml): see `modules`
//!
//! [sandbox]                    # limits, mode, uid of modules: see `sandbox`
//! memory_mb = 1024
//!
//! [trust.keys]                 # whose module signatures count: see `trust`
//! alice = "02c6047f…"
//!
//! [supervision]                # module health checks, restarts: see `supervision`
//! health_check_interval = 10
//!
//! [disk]                       # when free space counts as low: see `disk`
//! warn_free_percent = 10
//!
//! [maintenance]                # the node's periodic events: see `maintenance`
//! health_interval = 60
//!
//! [storage]                    # module storage quotas: see `storage`
//! max_mb = 64
//!
//! [registry]                   # where `module install` fetches from: see `registry`
//! url = "http://127.0.0.1:8420"
//! root = "registry-root.json"
//! ```

mod disk;
mod maintenance;
pub mod modules;
mod registry;
mod sandbox;
mod storage;
mod supervision;
mod trust;

pub use disk::{DiskSettings, DiskWatchConfig};
pub use maintenance::{Maintenance, MaintenanceSettings};
pub use modules::ModulesConfig;
pub use registry::{RegistryConfig, RegistryLocation, RegistrySettings};
pub use sandbox::{CpuPercent, LimitSettings, SandboxSettings};
pub use storage::{QuotaSettings, StorageSettings};
pub use supervision::{Supervision, SupervisionSettings};
pub use trust::TrustSettings;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use bitcoin::Network;
use serde::Deserialize;

/// Keys shared by the file and the flags; `None` = not given here.
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Chain: `regtest` (default), `main` (for importing real blocks), `test` or `signet`.
    #[arg(long, global = true)]
    pub network: Option<String>,
    /// Data directory.
    #[arg(long, global = true)]
    pub datadir: Option<PathBuf>,
    /// Address the JSON-RPC server binds: `addr` or `addr:port` (IPv6 as
    /// `[addr]:port`), as Bitcoin Core's `-rpcbind`; a port here wins over
    /// `rpcport`.
    #[arg(long, global = true)]
    pub rpcbind: Option<String>,
    /// Port of the JSON-RPC server.
    #[arg(long, global = true)]
    pub rpcport: Option<u16>,
    /// JSON-RPC user (with `rpcpassword`); without it the cookie file is used.
    #[arg(long, global = true)]
    pub rpcuser: Option<String>,
    /// JSON-RPC password.
    #[arg(long, global = true)]
    pub rpcpassword: Option<String>,
    /// Where modules are discovered.
    #[arg(long, global = true)]
    pub modules_dir: Option<PathBuf>,
    /// Seconds between blocks produced by the regtest timer; 0 disables it.
    #[arg(long, global = true)]
    pub block_interval: Option<u64>,
    /// Address the timer's blocks pay to.
    #[arg(long, global = true)]
    pub mining_address: Option<String>,
    /// Log filter (`info`, `debug`, `blvm_node=debug,warn` …).
    #[arg(long, global = true)]
    pub log: Option<String>,
    /// Minimum relay fee rate, sat/vB.
    #[arg(long, global = true)]
    pub minrelaytxfee: Option<f64>,
    /// Address (`ip:port`) of the Prometheus metrics exposition
    /// (`GET /metrics`); off unless set.
    #[arg(long, global = true)]
    pub metrics_bind: Option<SocketAddr>,
    /// `[modules]`: defaults for every module, and `[modules.<name>]`
    /// sections (file only); see [`modules`].
    #[arg(skip)]
    #[serde(default)]
    pub modules: toml::Table,
    /// The modules' sandbox, `[sandbox]` (file only).
    #[arg(skip)]
    #[serde(default)]
    pub sandbox: SandboxSettings,
    /// Trusted maintainer keys, `[trust]` (file only).
    #[arg(skip)]
    #[serde(default)]
    pub trust: TrustSettings,
    /// Module health checks and restarts, `[supervision]` (file only).
    #[arg(skip)]
    #[serde(default)]
    pub supervision: SupervisionSettings,
    /// The free-space warning, `[disk]` (file only).
    #[arg(skip)]
    #[serde(default)]
    pub disk: DiskSettings,
    /// The node's periodic events, `[maintenance]` (file only).
    #[arg(skip)]
    #[serde(default)]
    pub maintenance: MaintenanceSettings,
    /// Module storage quotas, `[storage]` (file only).
    #[arg(skip)]
    #[serde(default)]
    pub storage: StorageSettings,
    /// The module registry, `[registry]` (file only).
    #[serde(default)]
    #[arg(skip)]
    pub registry: RegistrySettings,
}

impl Settings {
    /// `self` where given, else `other`.
    pub fn or(self, other: Settings) -> Settings {
        Settings {
            network: self.network.or(other.network),
            datadir: self.datadir.or(other.datadir),
            rpcbind: self.rpcbind.or(other.rpcbind),
            rpcport: self.rpcport.or(other.rpcport),
            rpcuser: self.rpcuser.or(other.rpcuser),
            rpcpassword: self.rpcpassword.or(other.rpcpassword),
            modules_dir: self.modules_dir.or(other.modules_dir),
            block_interval: self.block_interval.or(other.block_interval),
            mining_address: self.mining_address.or(other.mining_address),
            log: self.log.or(other.log),
            minrelaytxfee: self.minrelaytxfee.or(other.minrelaytxfee),
            metrics_bind: self.metrics_bind.or(other.metrics_bind),
            modules: if self.modules.is_empty() {
                other.modules
            } else {
                self.modules
            },
            sandbox: if self.sandbox == SandboxSettings::default() {
                other.sandbox
            } else {
                self.sandbox
            },
            trust: if self.trust == TrustSettings::default() {
                other.trust
            } else {
                self.trust
            },
            supervision: if self.supervision == SupervisionSettings::default() {
                other.supervision
            } else {
                self.supervision
            },
            disk: if self.disk == DiskSettings::default() {
                other.disk
            } else {
                self.disk
            },
            maintenance: if self.maintenance == MaintenanceSettings::default() {
                other.maintenance
            } else {
                self.maintenance
            },
            storage: if self.storage == StorageSettings::default() {
                other.storage
            } else {
                self.storage
            },
            registry: if self.registry == RegistrySettings::default() {
                other.registry
            } else {
                self.registry
            },
        }
    }

    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: one_line_toml_error(&text, &e),
        })
    }
}

/// `line L, column C: <message>`: toml's own rendering quotes the line
/// over several lines, and every error of the node is one line.
fn one_line_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return message;
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    format!("line {line}, column {column}: {message}")
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and key.
        message: String,
    },
    /// A value is out of range.
    #[error("`{key}`: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The chain.
    pub network: Network,
    /// Data directory (created).
    pub datadir: PathBuf,
    /// JSON-RPC address.
    pub rpc_addr: SocketAddr,
    /// JSON-RPC user and password, if set.
    pub rpc_user_pass: Option<(String, String)>,
    /// Modules directory.
    pub modules_dir: PathBuf,
    /// Seconds between timer blocks; 0 = none.
    pub block_interval: u64,
    /// Coinbase address of timer blocks, if set.
    pub mining_address: Option<String>,
    /// Log filter.
    pub log: String,
    /// Minimum relay fee rate, sat/vB.
    pub min_relay_fee: f64,
    /// Where the Prometheus exposition listens; `None`: nowhere.
    pub metrics_bind: Option<SocketAddr>,
    /// `[modules]`: capability allow-lists, event queues, and each
    /// module's configuration (flattened to dotted keys).
    pub modules: ModulesConfig,
    /// The modules' sandbox.
    pub sandbox: blvm_module_host::sandbox::SandboxConfig,
    /// Whose module signatures count.
    pub signatures: blvm_module_host::security::SignaturePolicy,
    /// Every module's IPC request rate.
    pub request_rate: blvm_module_host::ipc::RequestRate,
    /// How modules' liveness is checked, and how crashed ones restart.
    pub supervision: Supervision,
    /// When free space on the node's file systems counts as low.
    pub disk: DiskWatchConfig,
    /// How often the node's periodic events come.
    pub maintenance: Maintenance,
    /// Module storage quotas.
    pub storage: blvm_module_host::services::storage::StorageConfig,
    /// The module registry, if `[registry]` names one.
    pub registry: Option<RegistryConfig>,
}

impl NodeConfig {
    /// Resolves settings over the defaults.
    pub fn resolve(s: Settings) -> Result<NodeConfig, ConfigError> {
        let network = match s.network.as_deref().unwrap_or("regtest") {
            "regtest" => Network::Regtest,
            "main" | "mainnet" | "bitcoin" => Network::Bitcoin,
            "test" | "testnet" => Network::Testnet,
            "signet" => Network::Signet,
            other => {
                return Err(ConfigError::Invalid {
                    key: "network",
                    message: format!("expected regtest, main, test or signet, got `{other}`"),
                })
            }
        };
        let datadir = s
            .datadir
            .unwrap_or_else(|| PathBuf::from(".blvm").join(core_name(network)));
        let default_port = match network {
            Network::Bitcoin => 8332,
            Network::Testnet => 18332,
            Network::Signet => 38332,
            _ => 18443,
        };
        let rpc_user_pass = match (s.rpcuser, s.rpcpassword) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "rpcuser",
                    message: "rpcuser and rpcpassword go together".into(),
                })
            }
        };
        let modules = modules::resolve(&s.modules)?;
        let sandbox = s.sandbox.resolve()?;
        let signatures = s.trust.resolve()?;
        let request_rate = s.sandbox.request_rate()?;
        let supervision = s.supervision.resolve()?;
        let disk = s.disk.resolve()?;
        let maintenance = s.maintenance.resolve()?;
        let storage = s.storage.resolve()?;
        let registry = s.registry.resolve(&datadir)?;
        Ok(NodeConfig {
            storage,
            registry,
            disk,
            sandbox,
            signatures,
            request_rate,
            supervision,
            maintenance,
            network,
            metrics_bind: s.metrics_bind,
            modules_dir: s.modules_dir.unwrap_or_else(|| datadir.join("modules")),
            datadir,
            rpc_addr: rpc_addr(s.rpcbind.as_deref(), s.rpcport.unwrap_or(default_port))?,
            rpc_user_pass,
            block_interval: s
                .block_interval
                .unwrap_or(if network == Network::Regtest { 10 } else { 0 }),
            mining_address: match s.mining_address {
                Some(a) => {
                    let valid = a
                        .parse::<bitcoin::Address<_>>()
                        .ok()
                        .is_some_and(|addr| addr.is_valid_for_network(network));
                    if !valid {
                        return Err(ConfigError::Invalid {
                            key: "mining_address",
                            message: format!("`{a}` is not a valid {} address", core_name(network)),
                        });
                    }
                    Some(a)
                }
                None => None,
            },
            log: s.log.unwrap_or_else(|| "info".into()),
            min_relay_fee: match s.minrelaytxfee {
                Some(f) if !(f >= 0.0 && f.is_finite()) => {
                    return Err(ConfigError::Invalid {
                        key: "minrelaytxfee",
                        message: format!("expected a fee rate in sat/vB, at least 0, got {f}"),
                    })
                }
                Some(f) => f,
                None => 1.0,
            },
            modules,
        })
    }
}

/// The RPC server's address from `rpcbind` (`addr`, `addr:port`,
/// `[v6addr]:port` or a bare IPv6 address, as Core's `-rpcbind`) and the
/// port to use when it names none (`rpcport` or the network's default).
fn rpc_addr(rpcbind: Option<&str>, port: u16) -> Result<SocketAddr, ConfigError> {
    let Some(text) = rpcbind else {
        return Ok(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port));
    };
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| ConfigError::Invalid {
            key: "rpcbind",
            message: format!(
                "expected an IP address, optionally with a port (127.0.0.1, 127.0.0.1:18443, [::1]:18443), got `{text}`"
            ),
        })
}

/// Bitcoin Core's name for a network (`main`, `test`, `signet`, `regtest`).
pub fn core_name(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "main",
        Network::Testnet => "test",
        Network::Signet => "signet",
        _ => "regtest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_regtest_on_18443_with_a_timer() {
        let c = NodeConfig::resolve(Settings::default()).expect("defaults resolve");
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.rpc_addr.to_string(), "127.0.0.1:18443");
        assert_eq!(c.block_interval, 10);
        assert_eq!(c.modules_dir, c.datadir.join("modules"));
    }

    #[test]
    fn flags_win_over_the_file_and_module_sections_flatten() {
        let file: Settings =
            toml::from_str("rpcport = 1000\nblock_interval = 3\n[modules.block-stats]\nlimits = { depth = 5 }\n")
                .expect("parses");
        let flags = Settings {
            rpcport: Some(2000),
            ..Settings::default()
        };
        let c = NodeConfig::resolve(flags.or(file)).expect("resolves");
        assert_eq!((c.rpc_addr.port(), c.block_interval), (2000, 3));
        assert_eq!(c.modules.module_configs["block-stats"]["limits.depth"], "5");
    }

    #[test]
    fn the_operator_guides_complete_file_resolves_to_what_it_says() {
        const GUIDE: &str = include_str!("../../../../docs/operator-guide.md");
        let start = GUIDE.find("A complete file:\n\n```toml\n").expect("the example") + 26;
        let text = &GUIDE[start..start + GUIDE[start..].find("```").expect("its end")];
        let file: Settings = toml::from_str(text).expect("the example parses");
        let c = NodeConfig::resolve(file).expect("the example resolves");
        let names = |set: &blvm_module_protocol::PermissionSet| set.iter().map(|p| p.as_str()).collect::<Vec<_>>();
        assert_eq!(
            names(&c.modules.capabilities["fee-watcher"]),
            ["subscribe_events", "read_mempool"]
        );
        assert_eq!(c.modules.event_queue_capacities["fee-watcher"], 1000);
        assert_eq!(
            (
                c.modules.max_metric_series,
                c.modules.max_metric_series_per_module["fee-watcher"]
            ),
            (Some(1000), 50)
        );
        assert_eq!(c.metrics_bind, Some("127.0.0.1:9332".parse().expect("an address")));
        assert_eq!(c.modules.module_configs["fee-watcher"]["report.every_blocks"], "6");
        assert!(!c.modules.module_configs["fee-watcher"].contains_key("capabilities"));
        assert_eq!(c.supervision.restart.max_crashes, 5);
        assert_eq!(c.maintenance.health_interval, Some(std::time::Duration::from_secs(60)));
        let registry = c.registry.expect("the example's registry");
        assert_eq!(
            registry.location,
            RegistryLocation::Http("http://127.0.0.1:8420".into())
        );
        assert_eq!(registry.root, Path::new("/srv/blvm/regtest/registry-root.json"));
        assert!(registry.pins["block-stats"].matches(&semver::Version::new(0, 1, 9)));
        assert_eq!(registry.tiers["untiered"], 1);
        assert_eq!(registry.allow_young[0].0, "block-stats");
    }

    #[test]
    fn rpcbind_takes_an_address_or_address_and_port_as_cores_does() {
        let resolve = |bind: &str, port: Option<u16>| {
            NodeConfig::resolve(Settings {
                rpcbind: Some(bind.into()),
                rpcport: port,
                ..Settings::default()
            })
            .map(|c| c.rpc_addr.to_string())
        };
        assert_eq!(resolve("10.0.0.1", None).expect("address"), "10.0.0.1:18443");
        assert_eq!(resolve("10.0.0.1", Some(9)).expect("address"), "10.0.0.1:9");
        // The port in rpcbind wins over rpcport, as in Core.
        assert_eq!(resolve("10.0.0.1:8000", Some(9)).expect("with port"), "10.0.0.1:8000");
        assert_eq!(resolve("[::1]:8000", None).expect("v6 with port"), "[::1]:8000");
        assert_eq!(resolve("::1", None).expect("bare v6"), "[::1]:18443");
        assert_eq!(resolve("[::1]", None).expect("bracketed v6"), "[::1]:18443");
        let bad = resolve("localhost:80:1", None).expect_err("refused");
        assert!(
            bad.to_string().starts_with("`rpcbind`: expected an IP address"),
            "{bad}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Settings>("rpcprot = 1\n").is_err());
        let bad = Settings {
            network: Some("moon".into()),
            ..Settings::default()
        };
        assert!(NodeConfig::resolve(bad).unwrap_err().to_string().contains("network"));
        // A mainnet address cannot receive regtest coinbases.
        let wrong_net = Settings {
            mining_address: Some("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa".into()),
            ..Settings::default()
        };
        assert!(NodeConfig::resolve(wrong_net)
            .unwrap_err()
            .to_string()
            .contains("mining_address"));
    }
}
