//! Installing, updating, removing and rolling back modules in `modules/`,
//! and searching the registry.
//!
//! Every change runs in two phases:
//!
//! 1. **Check, writing nothing into `modules/`.** Resolve the versions
//!    ([`super::resolve`]); for each, download the manifest and the binary
//!    through [`Repository::fetch_target`] (length and hash checked against
//!    the signed targets), check the binary against the manifest's
//!    `[binary] hash` and `size` (which the maintainers' signatures cover,
//!    and which the node checks again at every load), and apply the
//!    operator's [`InstallPolicy`].
//! 2. **Write, all or nothing.** Stage each module in
//!    `modules/.staging/<name>.<random>/` (`module.toml` as signed, the
//!    binary at its `entry_point` with mode 0755, the operator's own
//!    files such as `config.toml` copied from the current folder; all
//!    synced); move the current `modules/<name>/` to
//!    `modules/.previous/<name>/` and rename the staged folder into place;
//!    then replace `modules/blvm.lock`. If any step fails, the renames
//!    done so far are undone in reverse, so `modules/` and the lock file
//!    are as they were. A crash leaves at worst a stale staging folder,
//!    which the next run deletes.
//!
//! Discovery skips entries whose name starts with a dot, so neither
//! `.staging/` nor `.previous/` is ever loaded. One installer runs at a
//! time per `modules/` (an exclusive lock on `modules/.install.lock`).
//!
//! Each operation returns a [`Report`] of [`Change`]s, which the node turns
//! into events: [`ChangeKind::Installed`] into `ModuleDiscovered { source:
//! "registry" }` then `ModuleInstalled`, [`ChangeKind::Updated`] (rollback
//! included) into `ModuleUpdated { old, new }`, and
//! [`ChangeKind::Removed`] into `ModuleRemoved`.
//!
//! Every function is synchronous; the node calls them in `spawn_blocking`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use blvm_module_host::registry::discovery::MANIFEST_FILE;
use blvm_module_host::registry::{discover, ModuleManifest, NodeVersions};
use hex_conservative::DisplayHex;
use semver::{Version, VersionReq};
use sha2::{Digest, Sha256};

use super::fsutil::{self, PathError};
use super::lock::{LockEntry, LockError, LockFile, LockedVersion};
use super::policy::{Approval, InstallPolicy, PolicyError};
use super::repository::Repository;
use super::resolve::{self, Catalog, Installed, ResolveError, Resolved};
use super::state::TrustedState;
use crate::layout;
use crate::tuf::VerifyError;

/// Where modules are staged before they are renamed into place.
pub const STAGING_DIR: &str = ".staging";
/// Where the version before the last install or update is kept.
pub const PREVIOUS_DIR: &str = ".previous";
/// The lock that keeps two installers apart.
const INSTALL_LOCK: &str = ".install.lock";

/// A repository and the metadata trusted for it (refreshed by the caller).
#[derive(Debug)]
pub struct Registry<'a, R: ?Sized> {
    /// Where targets are downloaded from.
    pub repo: &'a R,
    /// The verified metadata listing them.
    pub state: &'a TrustedState,
}

/// What an operation changed in `modules/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One entry per module looked at, dependencies first.
    pub changes: Vec<Change>,
}

/// What happened to one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The module.
    pub name: String,
    /// What happened.
    pub kind: ChangeKind,
    /// Its tier.
    pub tier: Option<String>,
    /// The operator's names of the keys whose signatures verified.
    pub signers: Vec<String>,
    /// Installed inside its review period by the operator's override.
    pub review_overridden: bool,
}

/// What happened to a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// Newly installed.
    Installed {
        /// The version.
        version: Version,
    },
    /// Replaced by another version (an update or a rollback).
    Updated {
        /// The version replaced.
        old: Version,
        /// The version now installed.
        new: Version,
    },
    /// Removed.
    Removed {
        /// The version removed.
        version: Version,
    },
    /// Already installed at the version resolved: nothing written.
    Unchanged {
        /// The version.
        version: Version,
    },
}

/// Why an operation refused or failed; `modules/` and the lock file are as
/// they were.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// No installable set of versions (boxed, as the other large
    /// sources: an error travels up through every caller's `Result`).
    #[error(transparent)]
    Resolve(Box<ResolveError>),
    /// The operator's policy refuses a version.
    #[error(transparent)]
    Policy(Box<PolicyError>),
    /// The binary could not be downloaded, or is not the signed one.
    #[error("{name} {version}: binary: {source}")]
    Binary {
        /// The module.
        name: String,
        /// The version.
        version: Version,
        /// Why.
        #[source]
        source: Box<VerifyError>,
    },
    /// The binary is the registry's but not the one the manifest pins.
    #[error("{name} {version}: the binary's {what} is {found}, the manifest pins {expected}")]
    BinaryMismatch {
        /// The module.
        name: String,
        /// The version.
        version: Version,
        /// Which pin.
        what: PinField,
        /// What the binary has.
        found: String,
        /// What the manifest says.
        expected: String,
    },
    /// The manifest does not pin its binary (`[binary] hash`), so the node
    /// could not check the installed file at load.
    #[error("{name} {version}: the manifest does not pin its binary with [binary] hash")]
    BinaryNotPinned {
        /// The module.
        name: String,
        /// The version.
        version: Version,
    },
    /// The registry's record names a binary target other than the layout's.
    #[error("{name} {version}: the registry's record names binary {found:?}, expected {expected:?}")]
    RecordMismatch {
        /// The module.
        name: String,
        /// The version.
        version: Version,
        /// The record's binary path.
        found: String,
        /// [`layout::binary_target`].
        expected: String,
    },
    /// The module is not installed (or, for `update`, not by the installer).
    #[error("module `{name}` is not installed{}", if *.by_installer { " from a registry (it has no lock entry)" } else { "" })]
    NotInstalled {
        /// The module.
        name: String,
        /// Whether the folder exists but the lock file has no entry.
        by_installer: bool,
    },
    /// Other installed modules depend on the one to remove.
    #[error("module `{name}` is needed by {}; remove them first or force", by.join(", "))]
    InUse {
        /// The module.
        name: String,
        /// The modules depending on it.
        by: Vec<String>,
    },
    /// There is no previous version to roll back to.
    #[error("module `{name}` has no previous version in {PREVIOUS_DIR}/")]
    NoPrevious {
        /// The module.
        name: String,
    },
    /// A folder other than `modules/<name>/` holds this module (a manual
    /// installation); installing beside it would make both fail discovery.
    #[error("module `{name}` is installed in {}, not in modules/{name}/; move or remove it first", dir.display())]
    InstalledElsewhere {
        /// The module.
        name: String,
        /// Its folder.
        dir: PathBuf,
    },
    /// The lock file's requested range is not a semver range.
    #[error("module `{name}`: the lock file's range {requested:?} is not a semver range")]
    BadRange {
        /// The module.
        name: String,
        /// The range written.
        requested: String,
    },
    /// Another installer is working on this `modules/`.
    #[error("{}: another installer is running", path.display())]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be read or written.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A file of `modules/` could not be read or written.
    #[error(transparent)]
    Io(#[from] PathError),
}

impl From<ResolveError> for InstallError {
    fn from(e: ResolveError) -> Self {
        InstallError::Resolve(Box::new(e))
    }
}

impl From<PolicyError> for InstallError {
    fn from(e: PolicyError) -> Self {
        InstallError::Policy(Box::new(e))
    }
}

/// Which of the manifest's `[binary]` pins a binary does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinField {
    /// `[binary] hash`.
    Hash,
    /// `[binary] size`.
    Size,
}

impl std::fmt::Display for PinField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PinField::Hash => "hash",
            PinField::Size => "size",
        })
    }
}

/// Installs `name` at the highest acceptable version in `req`, with its
/// dependencies. The lock file records `req` as the range `update` stays
/// within (`*` is recorded as `^<version installed>`, as Cargo does).
///
/// # Errors
///
/// [`InstallError`]; nothing is changed then.
pub fn install<R: Repository + ?Sized>(
    registry: &Registry<'_, R>,
    policy: &InstallPolicy,
    node: &NodeVersions,
    modules_dir: &Path,
    name: &str,
    req: &VersionReq,
) -> Result<Report, InstallError> {
    let _lock = InstallLock::take(modules_dir)?;
    let raw = req.to_string();
    let ctx = Context {
        registry,
        policy,
        node,
        modules_dir,
    };
    ctx.apply(name, req, &raw, true)
}

/// Moves `name` (and what its new version needs) to the highest acceptable
/// version within the range its lock entry records.
///
/// # Errors
///
/// [`InstallError::NotInstalled`] for a module with no lock entry, or as
/// [`install`].
pub fn update<R: Repository + ?Sized>(
    registry: &Registry<'_, R>,
    policy: &InstallPolicy,
    node: &NodeVersions,
    modules_dir: &Path,
    name: &str,
) -> Result<Report, InstallError> {
    let _lock = InstallLock::take(modules_dir)?;
    let lock = LockFile::read(modules_dir)?;
    let Some(entry) = lock.modules.get(name) else {
        return Err(InstallError::NotInstalled {
            name: name.to_owned(),
            by_installer: modules_dir.join(name).exists(),
        });
    };
    let req = VersionReq::parse(&entry.requested).map_err(|_| InstallError::BadRange {
        name: name.to_owned(),
        requested: entry.requested.clone(),
    })?;
    let raw = entry.requested.clone();
    let ctx = Context {
        registry,
        policy,
        node,
        modules_dir,
    };
    ctx.apply(name, &req, &raw, false)
}

/// Removes `modules/<name>/` and its previous version. Refused while
/// another installed module depends on it, unless `force`.
///
/// # Errors
///
/// [`InstallError::NotInstalled`], [`InstallError::InUse`], or a file that
/// cannot be moved; nothing is changed then.
pub fn remove(modules_dir: &Path, name: &str, force: bool) -> Result<Report, InstallError> {
    let _lock = InstallLock::take(modules_dir)?;
    let mut lock = LockFile::read(modules_dir)?;
    let folder = modules_dir.join(name);
    if !folder.is_dir() {
        return Err(InstallError::NotInstalled {
            name: name.to_owned(),
            by_installer: false,
        });
    }
    let discovery = discover(modules_dir);
    let by: Vec<String> = discovery
        .modules
        .iter()
        .filter(|m| m.name() != name && m.manifest.module_dependencies().any(|d| d.name.as_str() == name))
        .map(|m| m.name().to_owned())
        .collect();
    if !by.is_empty() && !force {
        return Err(InstallError::InUse {
            name: name.to_owned(),
            by,
        });
    }
    let version = folder_version(&folder)
        .or_else(|| {
            lock.modules
                .get(name)
                .and_then(|e| Version::parse(&e.current.version).ok())
        })
        .unwrap_or_else(|| Version::new(0, 0, 0));
    let entry = lock.modules.remove(name);
    let staging = staging_dir(modules_dir)?;
    let trash = staging.join(format!("{name}.{}.removed", suffix(modules_dir)?));
    std::fs::rename(&folder, &trash).map_err(fsutil::at(&folder))?;
    if let Err(e) = lock.write(modules_dir) {
        let _ = std::fs::rename(&trash, &folder);
        return Err(e.into());
    }
    let previous = modules_dir.join(PREVIOUS_DIR).join(name);
    if previous.exists() {
        let old = staging.join(format!("{name}.{}.removed-previous", suffix(modules_dir)?));
        if std::fs::rename(&previous, &old).is_ok() {
            remove_quietly(&old);
        }
    }
    remove_quietly(&trash);
    let _ = fsutil::sync_dir(modules_dir);
    Ok(Report {
        changes: vec![Change {
            name: name.to_owned(),
            kind: ChangeKind::Removed { version },
            tier: entry.as_ref().and_then(|e| e.current.tier.clone()),
            signers: entry.map(|e| e.current.signers).unwrap_or_default(),
            review_overridden: false,
        }],
    })
}

/// Swaps `modules/<name>/` and `modules/.previous/<name>/`, and their lock
/// entries: the version installed before the last install or update comes
/// back, and the one it replaced becomes the previous version.
///
/// # Errors
///
/// [`InstallError::NotInstalled`], [`InstallError::NoPrevious`], or a file
/// that cannot be moved; nothing is changed then.
pub fn rollback(modules_dir: &Path, name: &str) -> Result<Report, InstallError> {
    let _lock = InstallLock::take(modules_dir)?;
    let mut lock = LockFile::read(modules_dir)?;
    let current = modules_dir.join(name);
    let previous = modules_dir.join(PREVIOUS_DIR).join(name);
    if !current.is_dir() {
        return Err(InstallError::NotInstalled {
            name: name.to_owned(),
            by_installer: false,
        });
    }
    if !previous.is_dir() {
        return Err(InstallError::NoPrevious { name: name.to_owned() });
    }
    let entry = lock.modules.get(name);
    let current_locked = match entry {
        Some(e) => e.current.clone(),
        None => locked_from_folder(&current)?,
    };
    let previous_locked = match entry.and_then(|e| e.previous.clone()) {
        Some(p) => p,
        None => locked_from_folder(&previous)?,
    };
    let requested = entry.map_or_else(|| format!("^{}", previous_locked.version), |e| e.requested.clone());
    let old = Version::parse(&current_locked.version).unwrap_or_else(|_| Version::new(0, 0, 0));
    let new = Version::parse(&previous_locked.version).unwrap_or_else(|_| Version::new(0, 0, 0));
    let (tier, signers) = (previous_locked.tier.clone(), previous_locked.signers.clone());
    lock.modules.insert(
        name.to_owned(),
        LockEntry {
            requested,
            current: previous_locked,
            previous: Some(current_locked),
        },
    );

    let tmp = staging_dir(modules_dir)?.join(format!("{name}.{}.rollback", suffix(modules_dir)?));
    std::fs::rename(&current, &tmp).map_err(fsutil::at(&current))?;
    if let Err(e) = std::fs::rename(&previous, &current) {
        let _ = std::fs::rename(&tmp, &current);
        return Err(fsutil::at(&previous)(e).into());
    }
    let undo = || {
        let _ = std::fs::rename(&current, &previous);
        let _ = std::fs::rename(&tmp, &current);
    };
    if let Err(e) = std::fs::rename(&tmp, &previous) {
        undo();
        return Err(fsutil::at(&previous)(e).into());
    }
    if let Err(e) = lock.write(modules_dir) {
        let _ = std::fs::rename(&previous, &tmp);
        undo();
        return Err(e.into());
    }
    let _ = fsutil::sync_dir(modules_dir);
    let _ = fsutil::sync_dir(&modules_dir.join(PREVIOUS_DIR));
    Ok(Report {
        changes: vec![Change {
            name: name.to_owned(),
            kind: ChangeKind::Updated { old, new },
            tier,
            signers,
            review_overridden: false,
        }],
    })
}

/// One module found by [`search`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The module.
    pub name: String,
    /// The newest version's description, from its verified manifest.
    pub description: Option<String>,
    /// Every published version, oldest first.
    pub versions: Vec<VersionSummary>,
}

/// One published version, as the registry signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSummary {
    /// The version.
    pub version: Version,
    /// Yanked: no new resolution picks it.
    pub yanked: bool,
    /// Its tier.
    pub tier: Option<String>,
    /// When it was published (RFC 3339).
    pub published: String,
}

/// The modules of the signed targets whose name or description contains
/// `query` (case-insensitively; an empty query lists all). Descriptions
/// come from each module's newest manifest, downloaded and checked; one
/// that cannot be fetched leaves the description out.
pub fn search<R: Repository + ?Sized>(registry: &Registry<'_, R>, query: &str) -> Vec<SearchHit> {
    let query = query.to_lowercase();
    let catalog = Catalog::from_trusted(registry.state.metadata());
    let mut hits = Vec::new();
    for (name, versions) in catalog.modules() {
        let description = versions.values().next_back().and_then(|newest| {
            resolve::fetch_manifest(registry.repo, name, newest)
                .ok()
                .and_then(|(_, m)| m.description().map(str::to_owned))
        });
        let matches = name.to_lowercase().contains(&query)
            || description.as_ref().is_some_and(|d| d.to_lowercase().contains(&query));
        if !matches {
            continue;
        }
        hits.push(SearchHit {
            name: name.to_owned(),
            description,
            versions: versions
                .values()
                .map(|p| VersionSummary {
                    version: p.version.clone(),
                    yanked: p.record.yanked,
                    tier: p.record.tier.clone(),
                    published: p.record.published.clone(),
                })
                .collect(),
        });
    }
    hits
}

/// One module in `modules/`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedModule {
    /// The module.
    pub name: String,
    /// The installed version.
    pub version: Version,
    /// Its folder.
    pub dir: PathBuf,
    /// Its lock entry, when the installer wrote it.
    pub locked: Option<LockEntry>,
    /// Whether `rollback` has a version to go back to.
    pub has_previous: bool,
}

/// The modules in `modules_dir`, and one line per folder discovery refused.
///
/// # Errors
///
/// A lock file that cannot be read.
pub fn list(modules_dir: &Path) -> Result<(Vec<ListedModule>, Vec<String>), InstallError> {
    let lock = LockFile::read(modules_dir)?;
    let discovery = discover(modules_dir);
    let modules = discovery
        .modules
        .iter()
        .map(|m| ListedModule {
            name: m.name().to_owned(),
            version: m.manifest.version().clone(),
            dir: m.dir.clone(),
            locked: lock.modules.get(m.name()).cloned(),
            has_previous: modules_dir.join(PREVIOUS_DIR).join(m.name()).is_dir(),
        })
        .collect();
    Ok((modules, discovery.errors.iter().map(ToString::to_string).collect()))
}

/// The inputs of one install or update.
struct Context<'a, R: ?Sized> {
    registry: &'a Registry<'a, R>,
    policy: &'a InstallPolicy,
    node: &'a NodeVersions,
    modules_dir: &'a Path,
}

/// A version that passed every check, with its binary.
struct Checked {
    resolved: Resolved,
    binary: Vec<u8>,
    approval: Approval,
    /// The installed version it replaces.
    old: Option<Version>,
}

impl<R: Repository + ?Sized> Context<'_, R> {
    /// Phase 1 then phase 2 of the module doc, for `name` in `req`.
    /// `from_request`: the range is the operator's (record it), not the
    /// lock file's.
    fn apply(&self, name: &str, req: &VersionReq, raw: &str, from_request: bool) -> Result<Report, InstallError> {
        let mut lock = LockFile::read(self.modules_dir)?;
        let installed = self.installed()?;
        let catalog = Catalog::from_trusted(self.registry.state.metadata());
        let view = installed.iter().map(|(n, (i, _))| (n.clone(), i.clone())).collect();
        let plan = resolve::resolve(self.registry.repo, &catalog, self.node, &view, name, req, raw)?;

        // Phase 1: check everything before writing anything.
        let mut report = Report::default();
        let mut checked = Vec::new();
        for resolved in plan {
            if let Some((_, dir)) = installed.get(resolved.name()) {
                let ours = self.modules_dir.join(resolved.name()).canonicalize().ok();
                if ours.as_ref() != Some(dir) {
                    return Err(InstallError::InstalledElsewhere {
                        name: resolved.name().to_owned(),
                        dir: dir.clone(),
                    });
                }
            }
            let old = installed.get(resolved.name()).map(|(i, _)| i.version.clone());
            if old.as_ref() == Some(&resolved.published.version) {
                report.changes.push(Change {
                    name: resolved.name().to_owned(),
                    kind: ChangeKind::Unchanged {
                        version: resolved.published.version.clone(),
                    },
                    tier: lock.modules.get(resolved.name()).and_then(|e| e.current.tier.clone()),
                    signers: lock
                        .modules
                        .get(resolved.name())
                        .map(|e| e.current.signers.clone())
                        .unwrap_or_default(),
                    review_overridden: false,
                });
                continue;
            }
            let binary = self.binary(&resolved)?;
            let approval = self.policy.check(&resolved.manifest, &resolved.published.record)?;
            checked.push(Checked {
                resolved,
                binary,
                approval,
                old,
            });
        }

        // The lock file as it will be.
        let registry = self.registry.repo.describe();
        for c in &checked {
            let name = c.resolved.name();
            let version = &c.resolved.published.version;
            let existing = lock.modules.remove(name);
            let requested = if c.resolved.required_by.is_none() && from_request {
                record_range(req, raw, version)
            } else if let Some(e) = &existing {
                e.requested.clone()
            } else {
                c.resolved.requested.clone()
            };
            let previous = match (&existing, &c.old) {
                (Some(e), Some(_)) => Some(e.current.clone()),
                (None, Some(_)) => locked_from_folder(&self.modules_dir.join(name)).ok(),
                _ => None,
            };
            lock.modules.insert(
                name.to_owned(),
                LockEntry {
                    requested,
                    current: LockedVersion {
                        version: version.to_string(),
                        manifest_sha256: c.resolved.published.manifest.sha256().to_ascii_lowercase(),
                        binary_sha256: Sha256::digest(&c.binary).to_lower_hex_string(),
                        registry: registry.clone(),
                        tier: c.approval.tier.clone(),
                        signers: c.approval.signers.clone(),
                    },
                    previous,
                },
            );
        }
        if from_request {
            // A new range for a module already at the version resolved.
            if let Some(entry) = lock.modules.get_mut(name) {
                if checked.iter().all(|c| c.resolved.name() != name) {
                    entry.requested = record_range(
                        req,
                        raw,
                        &Version::parse(&entry.current.version).unwrap_or_else(|_| Version::new(0, 0, 0)),
                    );
                }
            }
        }

        // Phase 2: stage, swap, lock; undo on any failure.
        let mut staged = Vec::new();
        for c in &checked {
            match self.stage(c) {
                Ok(dir) => staged.push(dir),
                Err(e) => {
                    staged.iter().for_each(remove_quietly);
                    return Err(e);
                }
            }
        }
        let mut swaps: Vec<Swap> = Vec::new();
        for (c, dir) in checked.iter().zip(&staged) {
            match Swap::place(self.modules_dir, c.resolved.name(), dir) {
                Ok(swap) => swaps.push(swap),
                Err(e) => {
                    swaps.iter().rev().for_each(Swap::undo);
                    staged.iter().for_each(remove_quietly);
                    return Err(e.into());
                }
            }
        }
        if let Err(e) = lock.write(self.modules_dir) {
            swaps.iter().rev().for_each(Swap::undo);
            staged.iter().for_each(remove_quietly);
            return Err(e.into());
        }
        swaps.into_iter().for_each(Swap::commit);

        for c in checked {
            let new = c.resolved.published.version.clone();
            report.changes.push(Change {
                name: c.resolved.name().to_owned(),
                kind: match c.old {
                    Some(old) => ChangeKind::Updated { old, new },
                    None => ChangeKind::Installed { version: new },
                },
                tier: c.approval.tier,
                signers: c.approval.signers,
                review_overridden: c.approval.review_overridden,
            });
        }
        Ok(report)
    }

    /// The modules in `modules/` by name, with their (canonical) folders.
    fn installed(&self) -> Result<BTreeMap<String, (Installed, PathBuf)>, InstallError> {
        Ok(discover(self.modules_dir)
            .modules
            .iter()
            .map(|m| (m.name().to_owned(), (Installed::of(&m.manifest), m.dir.clone())))
            .collect())
    }

    /// The binary of `resolved`, downloaded against the signed targets and
    /// checked against the manifest's pin.
    fn binary(&self, resolved: &Resolved) -> Result<Vec<u8>, InstallError> {
        let name = resolved.name().to_owned();
        let version = resolved.published.version.clone();
        let expected = layout::binary_target(&name, &version.to_string());
        if resolved.published.record.binary != expected {
            return Err(InstallError::RecordMismatch {
                name,
                version,
                found: resolved.published.record.binary.clone(),
                expected,
            });
        }
        let Some(pin) = resolved.manifest.binary().and_then(|b| b.hash) else {
            return Err(InstallError::BinaryNotPinned { name, version });
        };
        let binary_error = |source| InstallError::Binary {
            name: name.clone(),
            version: version.clone(),
            source: Box::new(source),
        };
        let info = self.registry.state.metadata().target(&expected).map_err(binary_error)?;
        let bytes = self.registry.repo.fetch_target(&info).map_err(binary_error)?;
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        if hash != pin.0 {
            return Err(InstallError::BinaryMismatch {
                name,
                version,
                what: PinField::Hash,
                found: format!("sha256:{}", hash.to_lower_hex_string()),
                expected: pin.to_string(),
            });
        }
        if let Some(size) = resolved.manifest.binary().and_then(|b| b.size) {
            if size != bytes.len() as u64 {
                return Err(InstallError::BinaryMismatch {
                    name,
                    version,
                    what: PinField::Size,
                    found: bytes.len().to_string(),
                    expected: size.to_string(),
                });
            }
        }
        Ok(bytes)
    }

    /// Writes `checked` into a new staging folder: the operator's files
    /// from the current folder, then the manifest and the binary; synced.
    fn stage(&self, checked: &Checked) -> Result<PathBuf, InstallError> {
        let name = checked.resolved.name();
        let current = self.modules_dir.join(name);
        let entry_point = checked.resolved.manifest.entry_point();
        let dir = staging_dir(self.modules_dir)?.join(format!("{name}.{}", suffix(self.modules_dir)?));
        std::fs::create_dir(&dir).map_err(fsutil::at(&dir))?;
        let written = (|| {
            if current.is_dir() {
                let old_entry = ModuleManifest::from_file(&current.join(MANIFEST_FILE))
                    .map(|m| m.entry_point().to_owned())
                    .unwrap_or_default();
                fsutil::copy_entries(&current, &dir, &[MANIFEST_FILE, entry_point, &old_entry])?;
            }
            fsutil::write_new(&dir.join(MANIFEST_FILE), &checked.resolved.manifest_bytes, 0o644)?;
            fsutil::write_new(&dir.join(entry_point), &checked.binary, 0o755)?;
            fsutil::sync_dir(&dir)
        })();
        match written {
            Ok(()) => Ok(dir),
            Err(e) => {
                remove_quietly(&dir);
                Err(e.into())
            }
        }
    }
}

/// The range to record for the operator's request: `*` pins the major
/// version installed, as Cargo does; anything else as written.
fn record_range(req: &VersionReq, raw: &str, version: &Version) -> String {
    if *req == VersionReq::STAR {
        format!("^{version}")
    } else {
        raw.to_owned()
    }
}

/// One module's folder moved into place, and how to move it back.
struct Swap {
    current: PathBuf,
    previous: PathBuf,
    staged: PathBuf,
    /// Where an older previous version was moved, to delete at commit.
    old_previous: Option<PathBuf>,
    /// Whether a current folder was moved to `previous`.
    had_current: bool,
}

impl Swap {
    /// Moves `modules/<name>/` to `.previous/<name>/` (the older previous
    /// to the staging area) and `staged` to `modules/<name>/`.
    fn place(modules_dir: &Path, name: &str, staged: &Path) -> Result<Swap, PathError> {
        let previous_dir = modules_dir.join(PREVIOUS_DIR);
        std::fs::create_dir_all(&previous_dir).map_err(fsutil::at(&previous_dir))?;
        let mut swap = Swap {
            current: modules_dir.join(name),
            previous: previous_dir.join(name),
            staged: staged.to_owned(),
            old_previous: None,
            had_current: false,
        };
        if swap.current.symlink_metadata().is_ok() {
            if swap.previous.symlink_metadata().is_ok() {
                let mut old = staged.as_os_str().to_owned();
                old.push(".old-previous");
                let old = PathBuf::from(old);
                std::fs::rename(&swap.previous, &old).map_err(fsutil::at(&swap.previous))?;
                swap.old_previous = Some(old);
            }
            if let Err(e) = std::fs::rename(&swap.current, &swap.previous) {
                swap.undo();
                return Err(fsutil::at(&swap.current)(e));
            }
            swap.had_current = true;
        }
        if let Err(e) = std::fs::rename(staged, &swap.current) {
            swap.undo();
            return Err(fsutil::at(&swap.current)(e));
        }
        fsutil::sync_dir(modules_dir)?;
        fsutil::sync_dir(&previous_dir)?;
        Ok(swap)
    }

    /// Puts everything back (best effort: what cannot be moved back stays
    /// where the next run's cleanup or the operator finds it).
    fn undo(&self) {
        if !self.staged.exists() {
            let _ = std::fs::rename(&self.current, &self.staged);
        }
        if self.had_current {
            let _ = std::fs::rename(&self.previous, &self.current);
        }
        if let Some(old) = &self.old_previous {
            let _ = std::fs::rename(old, &self.previous);
        }
    }

    /// Deletes the older previous version, now replaced.
    fn commit(self) {
        if let Some(old) = &self.old_previous {
            remove_quietly(old);
        }
    }
}

/// An exclusive lock on `modules/` for one operation; taking it also
/// deletes what an interrupted run left in the staging area.
struct InstallLock {
    _file: std::fs::File,
}

impl InstallLock {
    fn take(modules_dir: &Path) -> Result<InstallLock, InstallError> {
        std::fs::create_dir_all(modules_dir).map_err(fsutil::at(modules_dir))?;
        let path = modules_dir.join(INSTALL_LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(fsutil::at(&path))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(InstallError::Busy { path });
        }
        let staging = modules_dir.join(STAGING_DIR);
        if let Ok(entries) = std::fs::read_dir(&staging) {
            for entry in entries.flatten() {
                tracing::info!(path = %entry.path().display(), "removing what an interrupted install left");
                remove_quietly(&entry.path());
            }
        }
        Ok(InstallLock { _file: file })
    }
}

fn staging_dir(modules_dir: &Path) -> Result<PathBuf, PathError> {
    let dir = modules_dir.join(STAGING_DIR);
    std::fs::create_dir_all(&dir).map_err(fsutil::at(&dir))?;
    Ok(dir)
}

fn suffix(modules_dir: &Path) -> Result<String, PathError> {
    fsutil::random_suffix().map_err(fsutil::at(modules_dir))
}

fn remove_quietly(path: &PathBuf) {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove; the next run will try again");
    }
}

/// The version of the module in `folder`, from its manifest.
fn folder_version(folder: &Path) -> Option<Version> {
    ModuleManifest::from_file(&folder.join(MANIFEST_FILE))
        .ok()
        .map(|m| m.version().clone())
}

/// A lock entry for a folder the installer did not record: its version,
/// tier and hashes from its files; no registry, no signers.
fn locked_from_folder(folder: &Path) -> Result<LockedVersion, InstallError> {
    let manifest_path = folder.join(MANIFEST_FILE);
    let text = std::fs::read(&manifest_path).map_err(fsutil::at(&manifest_path))?;
    let manifest = ModuleManifest::from_file(&manifest_path).map_err(|e| PathError {
        path: manifest_path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let binary_path = folder.join(manifest.entry_point());
    let binary = std::fs::read(&binary_path).map_err(fsutil::at(&binary_path))?;
    Ok(LockedVersion {
        version: manifest.version().to_string(),
        manifest_sha256: Sha256::digest(&text).to_lower_hex_string(),
        binary_sha256: Sha256::digest(&binary).to_lower_hex_string(),
        registry: String::new(),
        tier: manifest.governance().and_then(|g| g.tier.clone()),
        signers: Vec::new(),
    })
}
