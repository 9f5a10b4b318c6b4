//! What an operation changed in `modules/`, for the node to turn into
//! events (see [`super::install`](mod@super::install)'s module doc for the mapping).

use semver::Version;

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
