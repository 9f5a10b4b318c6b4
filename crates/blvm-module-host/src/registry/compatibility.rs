//! Whether a module can run on this node: its `[compatibility]` minimums and
//! its `blvm-node` dependency range, checked against the node's versions.
//!
//! Checks run in a fixed order and the first failure is returned: the
//! `blvm-node` range, then `min_node_version`, `min_protocol_version` and
//! `min_consensus_version`. Comparison follows semver precedence, so
//! `1.0.0-rc.1` is older than `1.0.0`, and a range matches a pre-release only
//! when it names one with the same `major.minor.patch` (the `semver` crate's
//! rule).

use std::fmt;

use blvm_module_protocol::PROTOCOL_VERSION;
use semver::Version;

use super::manifest::ModuleManifest;

/// The running node's versions, which modules are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVersions {
    /// The node software's version (what `blvm-node` ranges and
    /// `min_node_version` are compared with).
    pub node: Version,
    /// The module protocol version (what `min_protocol_version` is compared with).
    pub protocol: Version,
    /// The consensus rules' version (what `min_consensus_version` is compared with).
    pub consensus: Version,
}

impl NodeVersions {
    /// Versions with `protocol` taken from the wire protocol this build speaks
    /// ([`PROTOCOL_VERSION`] `n` becomes `n.0.0`).
    pub fn new(node: Version, consensus: Version) -> NodeVersions {
        NodeVersions {
            node,
            protocol: Version::new(u64::from(PROTOCOL_VERSION), 0, 0),
            consensus,
        }
    }
}

/// A module that cannot run on this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("module `{module}` is incompatible with this node: {kind}")]
pub struct CompatibilityError {
    /// The module's name.
    pub module: String,
    /// Which requirement failed, with both versions.
    pub kind: CompatibilityErrorKind,
}

/// Which compatibility requirement failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompatibilityErrorKind {
    /// `[dependencies] "blvm-node"` does not match the node's version.
    NodeOutOfRange {
        /// The range as written.
        required: String,
        /// The node's version.
        found: Version,
    },
    /// A `min_*_version` above the node's.
    TooOld {
        /// What is compared.
        what: VersionKind,
        /// The minimum the module asks for.
        required: Version,
        /// This node's version.
        found: Version,
    },
}

/// Which of the node's versions a requirement is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionKind {
    /// The node software (`min_node_version`).
    Node,
    /// The module protocol (`min_protocol_version`).
    Protocol,
    /// The consensus rules (`min_consensus_version`).
    Consensus,
}

impl VersionKind {
    /// The manifest field that sets this minimum.
    pub fn field(self) -> &'static str {
        match self {
            VersionKind::Node => "min_node_version",
            VersionKind::Protocol => "min_protocol_version",
            VersionKind::Consensus => "min_consensus_version",
        }
    }
}

impl fmt::Display for VersionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VersionKind::Node => "node",
            VersionKind::Protocol => "protocol",
            VersionKind::Consensus => "consensus",
        })
    }
}

impl fmt::Display for CompatibilityErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompatibilityErrorKind::NodeOutOfRange { required, found } => {
                write!(f, "it needs blvm-node {required}, but this node is version {found}")
            }
            CompatibilityErrorKind::TooOld { what, required, found } => write!(
                f,
                "its {} is {required}, but this node's {what} version is {found}",
                what.field()
            ),
        }
    }
}

/// Checks `manifest` against the node's versions.
///
/// # Errors
///
/// The first requirement that fails, in the order given in the module doc,
/// naming both versions.
pub fn check_compatibility(manifest: &ModuleManifest, node: &NodeVersions) -> Result<(), CompatibilityError> {
    let fail = |kind| CompatibilityError {
        module: manifest.name().to_string(),
        kind,
    };
    if let Some(dep) = manifest.node_requirement() {
        if !dep.req.matches(&node.node) {
            return Err(fail(CompatibilityErrorKind::NodeOutOfRange {
                required: dep.raw.clone(),
                found: node.node.clone(),
            }));
        }
    }
    let compat = manifest.compatibility();
    let minimums = [
        (VersionKind::Node, &compat.min_node_version, &node.node),
        (VersionKind::Protocol, &compat.min_protocol_version, &node.protocol),
        (VersionKind::Consensus, &compat.min_consensus_version, &node.consensus),
    ];
    for (what, required, found) in minimums {
        if let Some(required) = required {
            if found < required {
                return Err(fail(CompatibilityErrorKind::TooOld {
                    what,
                    required: required.clone(),
                    found: found.clone(),
                }));
            }
        }
    }
    Ok(())
}
