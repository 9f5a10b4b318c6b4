//! The `[sandbox]` section: the operator's side of every module's kernel
//! sandbox (limits, mode, the uid modules run as).
//!
//! ```toml
//! [sandbox]
//! enabled = true            # false runs modules unconfined (testing only)
//! mode = "strict"           # or "permissive": start a module without a layer the host lacks
//! memory_mb = 2048          # per module, its whole process tree
//! max_processes = 512       # processes and threads
//! cpu_percent = 50          # of one core (the default); "none" = no quota
//! cpu_weight = 10           # scheduling weight of modules (cgroup v2 units, 1..10000;
//!                           # the node's is 100; v1 gets cpu.shares = weight × 1024 / 100)
//! max_open_files = 1024     # per process
//! disk_mb = 256             # its data dir: a file system of its own, this size
//! run_as = "per-module"     # under a root node: each module its own uid/gid from uid_range;
//!                           # "uid:gid" gives every module the same; "node" keeps the node's
//! uid_range = "1500000000-1500065535"   # where per-module uids come from
//! requests_per_second = 20000   # IPC requests per module (enforced by the node), and
//! request_burst = 5000          # how many may come at once; beyond: `rate_limited`
//!
//! [sandbox.limits.block-stats]   # one module: the stricter of this and the above
//! memory_mb = 256
//!
//! [sandbox.cgroup_v1_mounts]     # only where /proc/self/mountinfo does not show them
//! memory = "/sys/fs/cgroup/memory"
//!
//! [sandbox]
//! read_only = ["/opt/python3.12"]    # every module may also read (and execute) these
//!
//! [sandbox.read_only_by_module]      # one module may also read these
//! py-watcher = ["/srv/venvs/py-watcher"]
//! ```
//!
//! A module sees its own (staged) folder and the system directories
//! (`/usr`, `/lib`…) read-only; `read_only` adds paths, as for an
//! interpreter or a virtual environment outside `/usr`. A manifest's
//! `[resources] read_only` only asks: a module asking for a path not
//! covered here is not loaded.
//!
//! A module's manifest (`[resources]`) can tighten these, never loosen them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use blvm_module_host::ipc::RequestRate;
use blvm_module_host::sandbox::{CpuWeight, Identity, ResourceLimits, RunAs, SandboxConfig, SandboxMode};
use serde::Deserialize;

use super::ConfigError;

/// `[sandbox]` as written; `None` = the built-in default.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// False turns the sandbox off.
    pub enabled: Option<bool>,
    /// `strict` (default) or `permissive`.
    pub mode: Option<String>,
    /// Memory of every module, MiB.
    pub memory_mb: Option<u64>,
    /// Processes and threads of every module.
    pub max_processes: Option<u64>,
    /// CPU of every module, percent of one core, or `"none"`.
    pub cpu_percent: Option<CpuPercent>,
    /// Scheduling weight of every module's cpu group (1 to 10000; the
    /// node's is 100).
    pub cpu_weight: Option<u32>,
    /// Open files per process of every module.
    pub max_open_files: Option<u64>,
    /// Size of every module's data dir, MiB.
    pub disk_mb: Option<u64>,
    /// `per-module` (default), `uid:gid`, or `node` to keep the node's.
    pub run_as: Option<String>,
    /// `first-last`: the uids (and gids) per-module identities come from.
    pub uid_range: Option<String>,
    /// Sustained IPC requests per second per module.
    pub requests_per_second: Option<u32>,
    /// IPC requests per module that may arrive at once.
    pub request_burst: Option<u32>,
    /// Where a v1 controller's hierarchy is mounted.
    #[serde(default)]
    pub cgroup_v1_mounts: BTreeMap<String, PathBuf>,
    /// Paths every module may read and execute, besides its folder and
    /// the system's.
    #[serde(default)]
    pub read_only: Vec<PathBuf>,
    /// Paths one module may read and execute, `[sandbox.read_only_by_module]`.
    #[serde(default)]
    pub read_only_by_module: BTreeMap<String, Vec<PathBuf>>,
    /// Per-module limits, `[sandbox.limits.<name>]`.
    #[serde(default, rename = "limits")]
    pub modules: BTreeMap<String, LimitSettings>,
}

/// Resource limits as written; `None` = not set here.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Memory, MiB.
    pub memory_mb: Option<u64>,
    /// Processes and threads.
    pub max_processes: Option<u64>,
    /// CPU, percent of one core (`"none"` in `[sandbox]` only).
    pub cpu_percent: Option<CpuPercent>,
    /// Open files per process.
    pub max_open_files: Option<u64>,
    /// Data dir size, MiB.
    pub disk_mb: Option<u64>,
}

/// A CPU quota as written: a percentage of one core, or a word
/// (`"none"` removes the default quota).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum CpuPercent {
    /// Percent of one core.
    Percent(u32),
    /// `"none"`.
    Word(String),
}

impl LimitSettings {
    /// `self`'s values over `base`, checked: each must be above zero.
    fn over(&self, base: ResourceLimits, section: &str) -> Result<ResourceLimits, ConfigError> {
        let positive = |name: &str, v: Option<u64>| -> Result<Option<u64>, ConfigError> {
            match v {
                Some(0) => Err(ConfigError::Invalid {
                    key: "sandbox",
                    message: format!("[{section}] {name}: expected a number above 0, got 0"),
                }),
                other => Ok(other),
            }
        };
        let memory = positive("memory_mb", self.memory_mb)?
            .map(|mb| {
                mb.checked_mul(1 << 20).ok_or_else(|| ConfigError::Invalid {
                    key: "sandbox",
                    message: format!("[{section}] memory_mb: {mb} MiB does not fit in 64 bits of bytes"),
                })
            })
            .transpose()?;
        let cpu = match &self.cpu_percent {
            None => base.cpu_percent,
            Some(CpuPercent::Percent(p)) => positive("cpu_percent", Some(u64::from(*p)))?.map(|_| *p),
            // Only the defaults can drop the quota: a per-module section
            // is combined with them, the stricter value winning.
            Some(CpuPercent::Word(w)) if w == "none" && section == "sandbox" => None,
            Some(CpuPercent::Word(w)) => {
                return Err(ConfigError::Invalid {
                    key: "sandbox",
                    message: format!(
                        "[{section}] cpu_percent: expected a percent of one core above 0{}, got `{w}`",
                        if section == "sandbox" { " or \"none\"" } else { "" }
                    ),
                })
            }
        };
        let disk = positive("disk_mb", self.disk_mb)?
            .map(|mb| {
                mb.checked_mul(1 << 20).ok_or_else(|| ConfigError::Invalid {
                    key: "sandbox",
                    message: format!("[{section}] disk_mb: {mb} MiB does not fit in 64 bits of bytes"),
                })
            })
            .transpose()?;
        Ok(ResourceLimits {
            memory_bytes: memory.or(base.memory_bytes),
            max_processes: positive("max_processes", self.max_processes)?.or(base.max_processes),
            cpu_percent: cpu,
            max_open_files: positive("max_open_files", self.max_open_files)?.or(base.max_open_files),
            disk_bytes: disk.or(base.disk_bytes),
        })
    }

    /// Only what is written, for per-module sections (combined with the
    /// defaults by the host, the stricter value winning).
    fn only(&self, section: &str) -> Result<ResourceLimits, ConfigError> {
        self.over(
            ResourceLimits {
                memory_bytes: None,
                max_processes: None,
                cpu_percent: None,
                max_open_files: None,
                disk_bytes: None,
            },
            section,
        )
    }
}

impl SandboxSettings {
    /// The host's sandbox configuration.
    pub fn resolve(&self) -> Result<SandboxConfig, ConfigError> {
        let defaults = SandboxConfig::default();
        let mode = match self.mode.as_deref() {
            None | Some("strict") => SandboxMode::Strict,
            Some("permissive") => SandboxMode::Permissive,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "sandbox",
                    message: format!("[sandbox] mode: expected strict or permissive, got `{other}`"),
                })
            }
        };
        let identity = match self.run_as.as_deref() {
            None | Some("per-module") => match self.uid_range.as_deref() {
                None => defaults.identity,
                Some(range) => parse_uid_range(range)?,
            },
            Some("node") => Identity::Node,
            Some(ids) => Identity::Shared(parse_run_as(ids)?),
        };
        let mut limits = BTreeMap::new();
        for (name, l) in &self.modules {
            limits.insert(name.clone(), l.only(&format!("sandbox.limits.{name}"))?);
        }
        for controller in self.cgroup_v1_mounts.keys() {
            if !blvm_module_host::sandbox::CONTROLLERS.contains(&controller.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "sandbox",
                    message: format!("[sandbox.cgroup_v1_mounts] {controller}: expected memory, pids or cpu"),
                });
            }
        }
        let cpu_weight = match self.cpu_weight {
            None => defaults.cpu_weight,
            Some(w) => CpuWeight::new(w).ok_or_else(|| ConfigError::Invalid {
                key: "sandbox",
                message: format!("[sandbox] cpu_weight: expected 1 to 10000 (the node's is 100), got {w}"),
            })?,
        };
        let absolute = |label: &str, paths: &[PathBuf]| -> Result<Vec<PathBuf>, ConfigError> {
            match paths.iter().find(|p| !p.is_absolute() || p.parent().is_none()) {
                Some(bad) => Err(ConfigError::Invalid {
                    key: "sandbox",
                    message: format!(
                        "{label}: expected absolute paths other than `/`, got `{}`",
                        bad.display()
                    ),
                }),
                None => Ok(paths.to_vec()),
            }
        };
        let read_only = absolute("[sandbox] read_only", &self.read_only)?;
        let mut module_read_only = BTreeMap::new();
        for (name, paths) in &self.read_only_by_module {
            module_read_only.insert(
                name.clone(),
                absolute(&format!("[sandbox.read_only_by_module] {name}"), paths)?,
            );
        }
        Ok(SandboxConfig {
            enabled: self.enabled.unwrap_or(defaults.enabled),
            mode,
            default_limits: self.defaults().over(defaults.default_limits, "sandbox")?,
            cpu_weight,
            limits,
            identity,
            cgroup_v1_mounts: self.cgroup_v1_mounts.clone(),
            read_only,
            module_read_only,
        })
    }
}

impl SandboxSettings {
    /// Every module's IPC request rate: the default, with what is written
    /// over it.
    pub fn request_rate(&self) -> Result<RequestRate, ConfigError> {
        let base = RequestRate::default();
        let positive = |name: &str, v: Option<u32>, default: u32| match v {
            Some(0) => Err(ConfigError::Invalid {
                key: "sandbox",
                message: format!("[sandbox] {name}: expected a number above 0, got 0"),
            }),
            other => Ok(other.unwrap_or(default)),
        };
        Ok(RequestRate {
            per_second: positive("requests_per_second", self.requests_per_second, base.per_second)?,
            burst: positive("request_burst", self.request_burst, base.burst)?,
        })
    }

    /// The limits of every module, as written.
    fn defaults(&self) -> LimitSettings {
        LimitSettings {
            memory_mb: self.memory_mb,
            max_processes: self.max_processes,
            cpu_percent: self.cpu_percent.clone(),
            max_open_files: self.max_open_files,
            disk_mb: self.disk_mb,
        }
    }
}

fn parse_uid_range(range: &str) -> Result<Identity, ConfigError> {
    let bad = || ConfigError::Invalid {
        key: "sandbox",
        message: format!("[sandbox] uid_range: expected `first-last` with first <= last, got `{range}`"),
    };
    let (first, last) = range.split_once('-').ok_or_else(bad)?;
    let first: u32 = first.trim().parse().map_err(|_| bad())?;
    let last: u32 = last.trim().parse().map_err(|_| bad())?;
    if first == 0 || last < first {
        return Err(bad());
    }
    Ok(Identity::PerModule {
        first,
        count: last - first + 1,
    })
}

fn parse_run_as(ids: &str) -> Result<RunAs, ConfigError> {
    let bad = || ConfigError::Invalid {
        key: "sandbox",
        message: format!(
            "[sandbox] run_as: expected `per-module`, `uid:gid` (e.g. 65534:65534) or `node`, got `{ids}`"
        ),
    };
    let (uid, gid) = ids.split_once(':').ok_or_else(bad)?;
    Ok(RunAs {
        uid: uid.trim().parse().map_err(|_| bad())?,
        gid: gid.trim().parse().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SandboxConfig, String> {
        #[derive(Deserialize)]
        struct File {
            sandbox: SandboxSettings,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        file.sandbox.resolve().map_err(|e| e.to_string())
    }

    #[test]
    fn absent_keys_keep_the_built_in_defaults() {
        assert_eq!(parse("[sandbox]\n").expect("resolves"), SandboxConfig::default());
    }

    #[test]
    fn limits_mode_and_uid_are_read_and_per_module_limits_kept_apart() {
        let c = parse(
            "[sandbox]\nmode = \"permissive\"\nmemory_mb = 512\ncpu_percent = 50\nrun_as = \"1000:1001\"\n\
             [sandbox.limits.block-stats]\nmax_processes = 8\n[sandbox.cgroup_v1_mounts]\nmemory = \"/m\"\n",
        )
        .expect("resolves");
        assert_eq!(c.mode, SandboxMode::Permissive);
        assert_eq!(c.default_limits.memory_bytes, Some(512 << 20));
        assert_eq!(c.default_limits.cpu_percent, Some(50));
        assert_eq!(c.cpu_weight, CpuWeight::default());
        // Not written: the built-in default stays.
        assert_eq!(c.default_limits.max_processes, Some(512));
        assert_eq!(c.identity, Identity::Shared(RunAs { uid: 1000, gid: 1001 }));
        assert_eq!(c.limits["block-stats"].max_processes, Some(8));
        assert_eq!(c.limits["block-stats"].memory_bytes, None);
        assert_eq!(c.cgroup_v1_mounts["memory"], PathBuf::from("/m"));
        assert_eq!(
            parse("[sandbox]\nrun_as = \"node\"\n").expect("resolves").identity,
            Identity::Node
        );
        assert_eq!(
            parse("[sandbox]\nuid_range = \"2000000-2000009\"\ndisk_mb = 64\n").expect("resolves"),
            SandboxConfig {
                identity: Identity::PerModule {
                    first: 2_000_000,
                    count: 10
                },
                default_limits: ResourceLimits {
                    disk_bytes: Some(64 << 20),
                    ..SandboxConfig::default().default_limits
                },
                ..SandboxConfig::default()
            }
        );
    }

    #[test]
    fn the_default_cpu_quota_can_be_raised_or_removed_and_the_weight_set() {
        let default = parse("[sandbox]\n").expect("resolves");
        assert_eq!(default.default_limits.cpu_percent, Some(50));
        assert!(default.cpu_weight < CpuWeight::NODE);
        let raised = parse("[sandbox]\ncpu_percent = 400\ncpu_weight = 50\n").expect("resolves");
        assert_eq!(raised.default_limits.cpu_percent, Some(400));
        assert_eq!(raised.cpu_weight.get(), 50);
        let removed = parse("[sandbox]\ncpu_percent = \"none\"\n").expect("resolves");
        assert_eq!(removed.default_limits.cpu_percent, None);
        let tighter = parse("[sandbox.limits.x]\ncpu_percent = 20\n").expect("resolves");
        assert_eq!(tighter.limits["x"].cpu_percent, Some(20));
    }

    #[test]
    fn read_only_paths_are_read_for_every_module_and_per_module() {
        let c = parse(
            "[sandbox]\nread_only = [\"/opt/python3.12\"]\n[sandbox.read_only_by_module]\npy = [\"/srv/venv\"]\n",
        )
        .expect("resolves");
        assert_eq!(c.read_only, vec![PathBuf::from("/opt/python3.12")]);
        assert_eq!(
            c.read_only_for("py"),
            vec![PathBuf::from("/opt/python3.12"), PathBuf::from("/srv/venv")]
        );
        assert_eq!(c.read_only_for("other"), vec![PathBuf::from("/opt/python3.12")]);
        let relative = parse("[sandbox]\nread_only = [\"venv\"]\n").expect_err("relative");
        assert!(
            relative.contains("[sandbox] read_only: expected absolute paths other than `/`, got `venv`"),
            "{relative}"
        );
        let root = parse("[sandbox.read_only_by_module]\npy = [\"/\"]\n").expect_err("root");
        assert!(
            root.contains("[sandbox.read_only_by_module] py: expected absolute"),
            "{root}"
        );
    }

    #[test]
    fn the_request_rate_is_read_over_its_default() {
        let file: SandboxSettings = toml::from_str("requests_per_second = 500\n").expect("parses");
        let rate = file.request_rate().expect("valid");
        assert_eq!((rate.per_second, rate.burst), (500, RequestRate::default().burst));
        let zero: SandboxSettings = toml::from_str("request_burst = 0\n").expect("parses");
        assert!(zero.request_rate().unwrap_err().to_string().contains("request_burst"));
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        for (text, key) in [
            ("[sandbox]\nmode = \"lax\"\n", "mode"),
            ("[sandbox]\nmemory_mb = 0\n", "memory_mb"),
            ("[sandbox]\nrun_as = \"nobody\"\n", "run_as"),
            ("[sandbox]\nuid_range = \"9-3\"\n", "uid_range"),
            ("[sandbox]\ndisk_mb = 0\n", "disk_mb"),
            ("[sandbox.limits.x]\ncpu_percent = 0\n", "cpu_percent"),
            ("[sandbox.limits.x]\ncpu_percent = \"none\"\n", "cpu_percent"),
            ("[sandbox]\ncpu_percent = \"all\"\n", "cpu_percent"),
            ("[sandbox]\ncpu_weight = 0\n", "cpu_weight"),
            ("[sandbox]\ncpu_weight = 10001\n", "cpu_weight"),
            ("[sandbox.cgroup_v1_mounts]\nblkio = \"/b\"\n", "blkio"),
            ("[sandbox]\nmemory = 5\n", "memory"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
