//! Installing and updating modules in `modules/`.
//!
//! Every change (and, for their part, removal and rollback in
//! [`super::remove`](mod@super::remove)) runs in two phases:
//!
//! 1. **Check, writing nothing into `modules/`.** Resolve the versions
//!    ([`super::resolve`]); for each, download the manifest and the binary
//!    through [`Repository::fetch_target`] (length and hash checked against
//!    the signed targets), apply the operator's [`InstallPolicy`] (before
//!    the binary is downloaded: a refusal costs no download), and check
//!    the binary against the manifest's `[binary] hash` and `size` (which
//!    the maintainers' signatures cover, and which the node checks again
//!    at every load).
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

use super::error::{InstallError, PinField};
use super::folders::{locked_from_folder, remove_quietly, staging_dir, suffix, InstallLock, Swap};
use super::fsutil;
use super::lock::{LockEntry, LockFile, LockedVersion};
use super::policy::{Approval, InstallPolicy};
use super::report::{Change, ChangeKind, Report};
use super::repository::Repository;
use super::resolve::{self, Catalog, Installed, Resolved};
use super::state::TrustedState;
use crate::layout;

/// A repository and the metadata trusted for it (refreshed by the caller).
#[derive(Debug)]
pub struct Registry<'a, R: ?Sized> {
    /// Where targets are downloaded from.
    pub repo: &'a R,
    /// The verified metadata listing them.
    pub state: &'a TrustedState,
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
        let (checked, mut report) = self.check(plan, &installed, &lock, name)?;
        self.next_lock(&mut lock, &checked, from_request.then_some((name, req, raw)));
        self.write(&checked, &lock)?;
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

    /// Phase 1: every version of `plan` that is not installed already,
    /// checked (policy first, as it needs no download, then the binary);
    /// and the report of those already installed.
    fn check(
        &self,
        plan: Vec<Resolved>,
        installed: &BTreeMap<String, (Installed, PathBuf)>,
        lock: &LockFile,
        requested: &str,
    ) -> Result<(Vec<Checked>, Report), InstallError> {
        let mut report = Report::default();
        let mut checked = Vec::new();
        for resolved in plan {
            let name = resolved.name().to_owned();
            if let Some((_, dir)) = installed.get(&name) {
                let ours = self.modules_dir.join(&name).canonicalize().ok();
                if ours.as_ref() != Some(dir) {
                    return Err(InstallError::InstalledElsewhere { name, dir: dir.clone() });
                }
            }
            let old = installed.get(&name).map(|(i, _)| i.version.clone());
            // The module asked for, installed by hand (no lock entry), is
            // replaced by the registry's verified copy even at the same
            // version; a dependency installed by hand in range is kept.
            let by_hand = name == requested && !lock.modules.contains_key(&name);
            if old.as_ref() == Some(&resolved.published.version) && !by_hand {
                let entry = lock.modules.get(&name);
                report.changes.push(Change {
                    name,
                    kind: ChangeKind::Unchanged {
                        version: resolved.published.version.clone(),
                    },
                    tier: entry.and_then(|e| e.current.tier.clone()),
                    signers: entry.map(|e| e.current.signers.clone()).unwrap_or_default(),
                    review_overridden: false,
                });
                continue;
            }
            let approval = self.policy.check(&resolved.manifest, &resolved.published.record)?;
            let binary = self.binary(&resolved)?;
            checked.push(Checked {
                resolved,
                binary,
                approval,
                old,
            });
        }
        Ok((checked, report))
    }

    /// The lock file as it will be once `checked` is installed. `request`
    /// is the operator's (name, range), recorded for the module asked for.
    fn next_lock(&self, lock: &mut LockFile, checked: &[Checked], request: Option<(&str, &VersionReq, &str)>) {
        let registry = self.registry.repo.describe();
        for c in checked {
            let name = c.resolved.name();
            let version = &c.resolved.published.version;
            let existing = lock.modules.remove(name);
            let requested = match (request, &existing) {
                (Some((_, req, raw)), _) if c.resolved.required_by.is_none() => record_range(req, raw, version),
                (_, Some(e)) => e.requested.clone(),
                _ => c.resolved.requested.clone(),
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
        // A new range for a module already at the version resolved.
        if let Some((name, req, raw)) = request {
            if checked.iter().all(|c| c.resolved.name() != name) {
                if let Some(entry) = lock.modules.get_mut(name) {
                    let version = Version::parse(&entry.current.version).unwrap_or_else(|_| Version::new(0, 0, 0));
                    entry.requested = record_range(req, raw, &version);
                }
            }
        }
    }

    /// Phase 2: stage every checked version, move each into place, then
    /// replace the lock file; on any failure, undo the moves in reverse.
    fn write(&self, checked: &[Checked], lock: &LockFile) -> Result<(), InstallError> {
        let mut staged = Vec::new();
        for c in checked {
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
        Ok(())
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
