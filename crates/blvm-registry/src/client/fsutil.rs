//! The installer's file operations: writes that are all or nothing, and
//! names no other run can pick.
//!
//! A file is written beside its final name, synced, renamed over it, and
//! its directory synced, so a crash leaves the old file or the new one.
//! Renames within one file system are atomic; the installer keeps every
//! directory it moves between (`modules/`, `modules/.staging/`,
//! `modules/.previous/`) under `modules/` for that reason.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An I/O error with the path it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct PathError {
    /// The file or directory.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Attaches `path` to an I/O error.
pub(crate) fn at(path: &Path) -> impl FnOnce(std::io::Error) -> PathError + '_ {
    move |source| PathError {
        path: path.to_owned(),
        source,
    }
}

/// 16 random hex digits from the kernel, for staging names.
pub(crate) fn random_suffix() -> std::io::Result<String> {
    let mut bytes = [0u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        filled += rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(hex_conservative::DisplayHex::to_lower_hex_string(&bytes[..]))
}

/// Syncs directory `dir`, so the renames in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), PathError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// Writes `bytes` to a new file `path` with `mode`, synced.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PathError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(at(path))?;
    file.write_all(bytes).map_err(at(path))?;
    // The umask may have narrowed the mode: set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(at(path))?;
    file.sync_all().map_err(at(path))
}

/// Replaces `path` with `bytes` atomically (temporary file, sync, rename,
/// sync of the directory).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PathError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = dir.join(format!(".{name}.{}.tmp", random_suffix().map_err(at(path))?));
    if let Err(e) = write_new(&staging, bytes, 0o644) {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&staging, path) {
        let _ = std::fs::remove_file(&staging);
        return Err(at(path)(e));
    }
    sync_dir(dir)
}

/// Copies the entries of `from` into the existing directory `to`, but for
/// the names in `skip`: files (with their permissions), directories
/// recursively, and symlinks as symlinks.
pub(crate) fn copy_entries(from: &Path, to: &Path, skip: &[&str]) -> Result<(), PathError> {
    for entry in std::fs::read_dir(from).map_err(at(from))? {
        let entry = entry.map_err(at(from))?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == std::ffi::OsStr::new(s)) {
            continue;
        }
        let source = entry.path();
        let target = to.join(&name);
        let kind = entry.file_type().map_err(at(&source))?;
        if kind.is_symlink() {
            let link = std::fs::read_link(&source).map_err(at(&source))?;
            std::os::unix::fs::symlink(link, &target).map_err(at(&target))?;
        } else if kind.is_dir() {
            std::fs::create_dir(&target).map_err(at(&target))?;
            copy_entries(&source, &target, &[])?;
            sync_dir(&target)?;
        } else {
            std::fs::copy(&source, &target).map_err(at(&target))?;
            std::fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(at(&target))?;
        }
    }
    Ok(())
}
