//! Why an install, update, removal or rollback refused or failed. Every
//! refusal leaves `modules/` and the lock file as they were.

use std::path::PathBuf;

use semver::Version;

use super::folders::PREVIOUS_DIR;
use super::fsutil::PathError;
use super::lock::LockError;
use super::policy::PolicyError;
use super::resolve::ResolveError;

use crate::tuf::VerifyError;

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
        /// [`crate::layout::binary_target`].
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
