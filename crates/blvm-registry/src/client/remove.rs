//! The operations that need no registry: removing a module and rolling
//! it back to the version kept in `modules/.previous/`. Each moves
//! folders by renames within `modules/` and replaces the lock file last,
//! undoing the renames if that fails.

use std::path::Path;

use blvm_module_host::registry::discover;
use semver::Version;

use super::error::InstallError;
use super::folders::{
    folder_version, locked_from_folder, remove_quietly, staging_dir, suffix, InstallLock, PREVIOUS_DIR,
};
use super::fsutil;
use super::lock::{LockEntry, LockFile};
use super::report::{Change, ChangeKind, Report};

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
