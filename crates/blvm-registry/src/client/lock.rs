//! `modules/blvm.lock`: what the installer put in `modules/`, exactly.
//!
//! One table per module, by name:
//!
//! ```toml
//! [modules.block-stats]
//! requested = "^0.1.0"          # the range `update` stays within
//! version = "0.1.1"
//! manifest_sha256 = "…"         # of module.toml as installed
//! binary_sha256 = "…"
//! registry = "/srv/registry"    # where it came from
//! tier = "community"
//! signers = ["alice"]           # the operator's names of the keys that signed
//!
//! [modules.block-stats.previous] # what `rollback` brings back
//! version = "0.1.0"
//! …
//! ```
//!
//! The file is replaced atomically after `modules/` has changed, so a
//! lock entry never names a module folder that is not there. Discovery
//! skips it (it is not a directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsutil::{self, PathError};

/// The lock file's name in `modules/`.
pub const LOCK_FILE: &str = "blvm.lock";

/// The largest lock file read, in bytes.
const MAX_LOCK_LEN: u64 = 4 * 1024 * 1024;

/// Why the lock file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// It could not be read or written.
    #[error(transparent)]
    Io(#[from] PathError),
    /// It is not a lock file.
    #[error("{}: not a valid lock file: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
}

/// The whole lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// Installed modules, by name.
    #[serde(default)]
    pub modules: BTreeMap<String, LockEntry>,
}

/// One installed module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    /// The semver range `update` stays within.
    pub requested: String,
    /// The version in `modules/<name>/`.
    #[serde(flatten)]
    pub current: LockedVersion,
    /// The version in `modules/.previous/<name>/`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<LockedVersion>,
}

/// One exact installed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedVersion {
    /// The version.
    pub version: String,
    /// Hex SHA-256 of `module.toml`.
    pub manifest_sha256: String,
    /// Hex SHA-256 of the binary.
    pub binary_sha256: String,
    /// The repository it came from ([`super::Repository::describe`]);
    /// empty for a folder the installer did not write.
    pub registry: String,
    /// Its `[governance] tier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The operator's names of the keys whose signatures verified.
    #[serde(default)]
    pub signers: Vec<String>,
}

impl LockFile {
    /// The lock file of `modules_dir`; empty when there is none.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or parsed.
    pub fn read(modules_dir: &Path) -> Result<LockFile, LockError> {
        let path = modules_dir.join(LOCK_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockFile::default()),
            Err(e) => return Err(fsutil::at(&path)(e).into()),
        };
        let malformed = |message: String| LockError::Malformed {
            path: path.clone(),
            message,
        };
        if bytes.len() as u64 > MAX_LOCK_LEN {
            return Err(malformed(format!("larger than {MAX_LOCK_LEN} bytes")));
        }
        let text = String::from_utf8(bytes).map_err(|e| malformed(e.to_string()))?;
        toml::from_str(&text).map_err(|e| malformed(e.to_string().trim().to_owned()))
    }

    /// Replaces `modules_dir`'s lock file with this one, atomically.
    ///
    /// # Errors
    ///
    /// A file that cannot be written.
    pub fn write(&self, modules_dir: &Path) -> Result<(), LockError> {
        let path = modules_dir.join(LOCK_FILE);
        let text = toml::to_string(self).map_err(|e| LockError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let text = format!("# Written by the blvm module installer; do not edit.\n{text}");
        Ok(fsutil::write_atomically(&path, text.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked(version: &str) -> LockedVersion {
        LockedVersion {
            version: version.into(),
            manifest_sha256: "aa".repeat(32),
            binary_sha256: "bb".repeat(32),
            registry: "/srv/registry".into(),
            tier: Some("community".into()),
            signers: vec!["alice".into()],
        }
    }

    #[test]
    fn a_lock_file_round_trips_through_its_toml_with_the_previous_version() {
        let dir = std::env::temp_dir().join(format!("blvm-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        assert_eq!(LockFile::read(&dir).expect("no file"), LockFile::default());
        let mut lock = LockFile::default();
        lock.modules.insert(
            "block-stats".into(),
            LockEntry {
                requested: "^0.1.0".into(),
                current: locked("0.1.1"),
                previous: Some(locked("0.1.0")),
            },
        );
        lock.write(&dir).expect("written");
        let text = std::fs::read_to_string(dir.join(LOCK_FILE)).expect("read");
        assert!(text.contains("[modules.block-stats.previous]"), "{text}");
        assert_eq!(LockFile::read(&dir).expect("parses"), lock);
        std::fs::write(dir.join(LOCK_FILE), "modules = 3").expect("garbage");
        assert!(matches!(LockFile::read(&dir), Err(LockError::Malformed { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
