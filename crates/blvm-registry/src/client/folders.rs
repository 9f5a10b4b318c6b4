//! The installer's layout inside `modules/` and the moves between its
//! parts: `.staging/` (what is being written, deleted at the next run if
//! a run is interrupted), `.previous/` (what `rollback` brings back) and
//! `.install.lock` (one installer at a time). Discovery skips every name
//! starting with a dot.

use std::path::{Path, PathBuf};

use blvm_module_host::registry::discovery::MANIFEST_FILE;
use blvm_module_host::registry::ModuleManifest;
use hex_conservative::DisplayHex;
use semver::Version;
use sha2::{Digest, Sha256};

use super::error::InstallError;
use super::fsutil::{self, PathError};
use super::lock::LockedVersion;

/// Where modules are staged before they are renamed into place.
pub const STAGING_DIR: &str = ".staging";
/// Where the version before the last install or update is kept.
pub const PREVIOUS_DIR: &str = ".previous";
/// The lock that keeps two installers apart.
const INSTALL_LOCK: &str = ".install.lock";

/// One module's folder moved into place, and how to move it back.
pub(crate) struct Swap {
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
    pub(crate) fn place(modules_dir: &Path, name: &str, staged: &Path) -> Result<Swap, PathError> {
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
    pub(crate) fn undo(&self) {
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
    pub(crate) fn commit(self) {
        if let Some(old) = &self.old_previous {
            remove_quietly(old);
        }
    }
}

/// An exclusive lock on `modules/` for one operation; taking it also
/// deletes what an interrupted run left in the staging area.
pub(crate) struct InstallLock {
    _file: std::fs::File,
}

impl InstallLock {
    pub(crate) fn take(modules_dir: &Path) -> Result<InstallLock, InstallError> {
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

pub(crate) fn staging_dir(modules_dir: &Path) -> Result<PathBuf, PathError> {
    let dir = modules_dir.join(STAGING_DIR);
    std::fs::create_dir_all(&dir).map_err(fsutil::at(&dir))?;
    Ok(dir)
}

pub(crate) fn suffix(modules_dir: &Path) -> Result<String, PathError> {
    fsutil::random_suffix().map_err(fsutil::at(modules_dir))
}

pub(crate) fn remove_quietly(path: &PathBuf) {
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
pub(crate) fn folder_version(folder: &Path) -> Option<Version> {
    ModuleManifest::from_file(&folder.join(MANIFEST_FILE))
        .ok()
        .map(|m| m.version().clone())
}

/// A lock entry for a folder the installer did not record: its version,
/// tier and hashes from its files; no registry, no signers.
pub(crate) fn locked_from_folder(folder: &Path) -> Result<LockedVersion, InstallError> {
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
