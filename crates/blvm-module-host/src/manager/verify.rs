//! Binary verification: the bytes that were hashed are the bytes that run.
//!
//! The module's binary is read once into memory, its sha256 compared with
//! the manifest's `[binary].hash` (and `size`), and those same bytes are
//! written to a node-owned, read-and-execute-only copy, which is what gets
//! spawned. Changing the file in the module's folder after the check
//! changes nothing that runs; a reload reads and checks it again.

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

/// Reads `binary`, checks it against `manifest`, and stages the checked
/// bytes under `stage_dir` (created 0700).
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
    std::fs::set_permissions(stage_dir, std::fs::Permissions::from_mode(0o700)).map_err(io(stage_dir))?;
    let staged = stage_dir.join(format!("{}-{}", manifest.name().as_str(), &actual[..16]));
    if !staged.exists() {
        // Write under a temporary name and rename, so a crash mid-write
        // never leaves a truncated binary under the final name.
        let tmp = stage_dir.join(format!(".{}.{}.tmp", manifest.name().as_str(), std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o500)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &staged).map_err(io(&staged))?;
    }
    Ok(VerifiedBinary {
        path: staged,
        sha256: actual,
    })
}
