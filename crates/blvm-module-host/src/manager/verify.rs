//! Binary verification: the bytes that were hashed are the bytes that run.
//!
//! The module's binary is read once into memory, its sha256 compared with
//! the manifest's `[binary].hash` (and `size`), and those same bytes are
//! written to a node-owned copy that others may execute but not read
//! (0511; a script, which its interpreter must read, 0555) in a 0711
//! directory, which is what gets spawned. Changing the file in the module's folder after the check
//! changes nothing that runs; a reload reads and checks it again.
//!
//! The staged copy is trusted only as far as its hash: it is hashed again
//! before every spawn ([`VerifiedBinary::recheck`], first start and each
//! restart), and a staged file found already in place is hashed before it
//! is reused (and replaced if it does not match).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::registry::ModuleManifest;

/// Why a binary was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The binary could not be read or copied.
    #[error("cannot read or stage binary {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Its hash differs from the manifest's.
    #[error("binary {path} has sha256:{actual}, the manifest says sha256:{expected}")]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// `[binary].hash`.
        expected: String,
        /// What the file hashes to.
        actual: String,
    },
    /// The staged copy no longer hashes to what was verified.
    #[error("staged binary {path} changed since it was verified: sha256:{actual}, verified sha256:{expected}")]
    StagedChanged {
        /// The staged file.
        path: PathBuf,
        /// The verified hash.
        expected: String,
        /// What the file hashes to now.
        actual: String,
    },
    /// Its size differs from the manifest's.
    #[error("binary {path} is {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// `[binary].size`.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A binary that passed verification, staged where the module cannot
/// change it.
#[derive(Debug, Clone)]
pub struct VerifiedBinary {
    /// The staged copy to execute.
    pub path: PathBuf,
    /// Its sha256, hex.
    pub sha256: String,
}

impl VerifiedBinary {
    /// Hashes the staged file again; it must still be the verified bytes.
    ///
    /// # Errors
    ///
    /// [`VerifyError::StagedChanged`] if it differs, [`VerifyError::Io`] if
    /// it cannot be read.
    pub fn recheck(&self) -> Result<(), VerifyError> {
        let actual = sha256_file(&self.path).map_err(|source| VerifyError::Io {
            path: self.path.clone(),
            source,
        })?;
        if actual != self.sha256 {
            return Err(VerifyError::StagedChanged {
                path: self.path.clone(),
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// The sha256 of a file, hex, read in pieces (binaries can be large).
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// Reads `binary`, checks it against `manifest`, and stages the checked
/// bytes under `stage_dir`.
///
/// Modes are chosen for a module that runs under another uid (the
/// sandbox's uid drop): the directory is 0711 (others may reach a file
/// whose name they know, not list the directory) and the binary 0511,
/// both owned by the node, so the module can execute its binary but
/// neither it nor any other module can change it, or read it: a process
/// that executes a file it cannot read is made non-dumpable by the kernel,
/// so no process of the module's uid outside its sandbox can `ptrace` it
/// or read its `/proc/<pid>/environ`. A script (`#!`) must be read by its
/// interpreter and is staged 0555.
pub fn verify_and_stage(
    manifest: &ModuleManifest,
    binary: &Path,
    stage_dir: &Path,
) -> Result<VerifiedBinary, VerifyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VerifyError::Io { path, source }
    };
    let bytes = std::fs::read(binary).map_err(io(binary))?;
    let digest = Sha256::digest(&bytes);
    let actual = hex(&digest);
    if let Some(info) = manifest.binary() {
        if let Some(expected) = &info.hash {
            if expected.0[..] != digest[..] {
                return Err(VerifyError::HashMismatch {
                    path: binary.to_path_buf(),
                    expected: hex(&expected.0),
                    actual,
                });
            }
        }
        if let Some(size) = info.size {
            if size != bytes.len() as u64 {
                return Err(VerifyError::SizeMismatch {
                    path: binary.to_path_buf(),
                    expected: size,
                    actual: bytes.len() as u64,
                });
            }
        }
    }
    std::fs::create_dir_all(stage_dir).map_err(io(stage_dir))?;
    std::fs::set_permissions(stage_dir, std::fs::Permissions::from_mode(0o711)).map_err(io(stage_dir))?;
    let staged = stage_dir.join(format!("{}-{}", manifest.name().as_str(), &actual[..16]));
    // A file already under that name is reused only if it hashes right; a
    // corrupted or tampered one is replaced by the verified bytes.
    let reusable = match sha256_file(&staged) {
        Ok(existing) if existing == actual => true,
        Ok(existing) => {
            tracing::warn!(
                staged = %staged.display(),
                "staged binary has sha256:{existing}, expected sha256:{actual}; replacing it"
            );
            false
        }
        Err(_) => false,
    };
    let mode = if bytes.starts_with(b"#!") { 0o555 } else { 0o511 };
    if !reusable {
        // Write under a temporary name and rename, so a crash mid-write
        // never leaves a truncated binary under the final name.
        let tmp = stage_dir.join(format!(".{}.{}.tmp", manifest.name().as_str(), std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &staged).map_err(io(&staged))?;
    }
    // Also for a reused file, which an older node may have staged 0500
    // (unreadable by a module's own uid); the mode is not in the hash.
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode)).map_err(io(&staged))?;
    Ok(VerifiedBinary {
        path: staged,
        sha256: actual,
    })
}
