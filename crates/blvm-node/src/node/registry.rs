//! The node's side of the module registry: `[registry]` turned into a
//! repository, the trusted metadata kept in `<datadir>/registry` and the
//! operator's install policy, and the lifecycle events of each change.
//!
//! The installer itself is `blvm_registry::client`; this file only
//! decides where its inputs come from. Every operation refreshes the TUF
//! metadata first, so a node never installs from a stale or frozen view.

use std::path::PathBuf;
use std::time::SystemTime;

use blvm_module_host::registry::NodeVersions;
use blvm_module_host::security::SignaturePolicy;
use blvm_module_protocol::events::{Event, ModuleDiscovered, ModuleInstalled, ModuleRemoved, ModuleUpdated};
use blvm_registry::client::{
    self, ChangeKind, DirectoryRepository, DownloadOptions, HttpRepository, InstallError, InstallPolicy, Progress,
    Registry, Report, Repository, SearchHit, StateError, TrustedState,
};
use semver::VersionReq;

use crate::config::{NodeConfig, RegistryConfig, RegistryLocation};

/// Why a registry operation failed; `modules/` is as it was.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The config names no registry.
    #[error("no registry is configured: set [registry] url and root")]
    NotConfigured,
    /// The registry's URL is unusable.
    #[error("registry {url}: {why}")]
    Location {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// The trusted metadata could not be opened or refreshed (boxed: a
    /// refusal carries the whole verifier error).
    #[error(transparent)]
    State(Box<StateError>),
    /// The installer refused or failed.
    #[error(transparent)]
    Install(#[from] InstallError),
}

impl From<StateError> for RegistryError {
    fn from(e: StateError) -> Self {
        RegistryError::State(Box::new(e))
    }
}

/// What the node needs to run the registry client.
#[derive(Debug, Clone)]
pub struct NodeRegistry {
    config: RegistryConfig,
    signatures: SignaturePolicy,
    modules_dir: PathBuf,
    versions: NodeVersions,
}

impl NodeRegistry {
    /// The node's registry, if its config names one.
    pub fn new(config: &NodeConfig, versions: NodeVersions) -> Option<NodeRegistry> {
        Some(NodeRegistry {
            config: config.registry.clone()?,
            signatures: config.signatures.clone(),
            modules_dir: config.modules_dir.clone(),
            versions,
        })
    }

    /// The `[registry]` it was made from.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn repository(&self) -> Result<Box<dyn Repository>, RegistryError> {
        Ok(match &self.config.location {
            RegistryLocation::Http(url) => {
                // The node logs each change itself; no progress output.
                let options = DownloadOptions {
                    progress: Progress::Quiet,
                    ..DownloadOptions::default()
                };
                Box::new(HttpRepository::new(url, options).map_err(|e| RegistryError::Location {
                    url: url.clone(),
                    why: e.to_string(),
                })?)
            }
            RegistryLocation::Directory(dir) => Box::new(DirectoryRepository::new(dir)),
        })
    }

    /// The operator's policy, as of `now`.
    fn policy(&self, now: SystemTime) -> InstallPolicy {
        let mut policy = InstallPolicy::new(self.signatures.clone(), now);
        policy.tiers = self.config.tiers.clone();
        policy.review_overrides = self.config.allow_young.iter().cloned().collect();
        policy
    }

    /// Runs `op` against the repository with freshly verified metadata.
    fn with_registry<T>(
        &self,
        op: impl FnOnce(&Registry<'_, dyn Repository>, &InstallPolicy) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let now = SystemTime::now();
        let repo = self.repository()?;
        let mut state = TrustedState::open(&self.config.state_dir, &self.config.root, now)?;
        state.refresh(repo.as_ref(), now)?;
        let registry = Registry {
            repo: repo.as_ref(),
            state: &state,
        };
        op(&registry, &self.policy(now))
    }

    /// Installs `name` at the highest acceptable version in `req`, with
    /// its dependencies.
    pub fn install(&self, name: &str, req: &VersionReq) -> Result<Report, RegistryError> {
        self.with_registry(|registry, policy| {
            Ok(client::install(
                registry,
                policy,
                &self.versions,
                &self.modules_dir,
                name,
                req,
            )?)
        })
    }

    /// Updates `name` within the range its lock entry pins.
    pub fn update(&self, name: &str) -> Result<Report, RegistryError> {
        self.with_registry(|registry, policy| {
            Ok(client::update(
                registry,
                policy,
                &self.versions,
                &self.modules_dir,
                name,
            )?)
        })
    }

    /// Removes `name` from `modules/`.
    pub fn remove(&self, name: &str, force: bool) -> Result<Report, RegistryError> {
        Ok(client::remove(&self.modules_dir, name, force)?)
    }

    /// Puts back the version `name` had before its last install or update.
    pub fn rollback(&self, name: &str) -> Result<Report, RegistryError> {
        Ok(client::rollback(&self.modules_dir, name)?)
    }

    /// Modules of the signed targets whose name or description contains
    /// `query`.
    pub fn search(&self, query: &str) -> Result<Vec<SearchHit>, RegistryError> {
        self.with_registry(|registry, _| Ok(client::search(registry, query)))
    }

    /// The pinned modules that `modules/` has no folder for: what the
    /// auto-load fetches first.
    pub fn missing_pins(&self) -> Vec<(String, VersionReq)> {
        self.config
            .pins
            .iter()
            .filter(|(name, _)| !self.modules_dir.join(name).join("module.toml").exists())
            .map(|(name, req)| (name.clone(), req.clone()))
            .collect()
    }
}

/// The lifecycle events of what `report` changed in `modules/`, in its
/// order (dependencies first). With `from_registry` (install, update) a
/// version taken from the registry is `ModuleDiscovered` (`source`
/// `"registry"`) before it is installed; a rollback's comes from
/// `modules/.previous`.
pub fn events_of(report: &Report, from_registry: bool) -> Vec<Event> {
    let mut events = Vec::new();
    for change in &report.changes {
        let discovered = |version: &semver::Version| {
            Event::from(ModuleDiscovered {
                module_name: change.name.clone(),
                version: version.to_string(),
                source: "registry".into(),
            })
        };
        match &change.kind {
            ChangeKind::Installed { version } => {
                if from_registry {
                    events.push(discovered(version));
                }
                events.push(
                    ModuleInstalled {
                        module_name: change.name.clone(),
                        version: version.to_string(),
                    }
                    .into(),
                );
            }
            ChangeKind::Updated { old, new } => {
                if from_registry {
                    events.push(discovered(new));
                }
                events.push(
                    ModuleUpdated {
                        module_name: change.name.clone(),
                        old_version: old.to_string(),
                        new_version: new.to_string(),
                    }
                    .into(),
                );
            }
            ChangeKind::Removed { version } => events.push(
                ModuleRemoved {
                    module_name: change.name.clone(),
                    version: version.to_string(),
                }
                .into(),
            ),
            ChangeKind::Unchanged { .. } => {}
        }
    }
    events
}
