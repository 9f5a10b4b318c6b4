//! The module registry: what is installed in `modules/`, whether each module
//! may run on this node, and in which order the loadable ones start.
//!
//! Everything here is pure logic over files and values; nothing spawns a
//! process. The lifecycle's first steps map onto the files:
//!
//! ```text
//! discover (discovery.rs) -> validate manifest (manifest.rs)
//!   -> check versions (compatibility.rs) -> order by dependencies (dependencies.rs)
//! ```
//!
//! - [`manifest`]: `module.toml` read into [`RawManifest`], then validated
//!   into a [`ModuleManifest`]; refusals are [`ManifestError`]s naming the
//!   file, the field and what was expected. The module doc lists every rule
//!   (names, versions, ranges, thresholds, unknown keys).
//! - [`discovery`]: one folder per module; [`discover`] returns a
//!   [`Discovery`] holding both the readable modules and the refused folders,
//!   because one broken folder must never stop the others.
//! - [`compatibility`]: [`check_compatibility`] against [`NodeVersions`].
//! - [`dependencies`]: [`resolve`] into a [`Resolution`]: a deterministic
//!   load order, and a [`ResolutionError`] per module that cannot load.
//!
//! Hash and signature verification sit between discovery and resolution and
//! live elsewhere; feed their refusals to [`resolve_with_failures`] so that
//! dependents of a refused module say why they cannot load.

pub mod compatibility;
pub mod dependencies;
pub mod discovery;
pub mod manifest;

#[cfg(test)]
mod tests;

pub use compatibility::{check_compatibility, CompatibilityError, CompatibilityErrorKind, NodeVersions, VersionKind};
pub use dependencies::{resolve, resolve_with_failures, Resolution, ResolutionError, ResolutionErrorKind};
pub use discovery::{
    discover, flatten_config, parse_config, read_config, read_module_folder, ConfigError, DiscoveredModule, Discovery,
    DiscoveryError, DiscoveryErrorKind,
};
pub use manifest::{
    BinaryHash, BinaryInfo, Compatibility, Dependency, Governance, MaintainerSignature, ManifestError,
    ManifestErrorKind, ModuleManifest, ModuleName, RawManifest, RawResources, Resources, Signatures, Threshold,
};
