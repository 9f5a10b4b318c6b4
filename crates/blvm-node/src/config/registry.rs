//! The `[registry]` section: where the node installs modules from, which
//! repository root it trusts, and the operator's governance policy.
//!
//! ```toml
//! [registry]
//! url = "http://127.0.0.1:8420"   # a registry server, or a directory (an offline bundle)
//! root = "registry-root.json"     # the registry's trusted root (TUF), relative to the datadir
//! allow_young = ["block-stats@0.2.0"]  # install these before their review period ends
//! fetch_missing = true            # auto-load fetches pinned modules that modules/ lacks (default true)
//!
//! [registry.pins]                 # what auto-load makes sure is installed: name = semver range
//! block-stats = "^0.1"
//!
//! [registry.tiers]                # accepted governance tiers = signatures each needs
//! core = 2
//! community = 1
//! ```
//!
//! Without `[registry.tiers]` every tier is accepted with the `[trust]`
//! requirement. With it, a module whose tier is not listed is refused; a
//! module with no `[governance] tier` counts as tier `"untiered"`
//! (`blvm_registry::client::UNTIERED`). The
//! signatures a module needs are the strictest of its manifest's
//! threshold, its tier's number and `[trust] required_signatures`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use serde::Deserialize;

use super::ConfigError;

/// `[registry]` as written.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// The registry: `http://…` or a directory.
    pub url: Option<String>,
    /// The trusted root file.
    pub root: Option<PathBuf>,
    /// `name@version`s allowed before their review period ends.
    #[serde(default)]
    pub allow_young: Vec<String>,
    /// Whether auto-load fetches pinned modules that are not installed.
    pub fetch_missing: Option<bool>,
    /// Modules auto-load makes sure are installed, with their ranges.
    #[serde(default)]
    pub pins: BTreeMap<String, String>,
    /// Accepted tiers and the signatures each needs.
    #[serde(default)]
    pub tiers: BTreeMap<String, u32>,
}

/// Where a registry's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryLocation {
    /// A registry server's base URL.
    Http(String),
    /// A repository directory (`metadata/`, `targets/`): an offline bundle.
    Directory(PathBuf),
}

/// The resolved `[registry]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Where modules come from.
    pub location: RegistryLocation,
    /// The trusted root file.
    pub root: PathBuf,
    /// The client's verified metadata, kept between runs for rollback
    /// checks: `<datadir>/registry`.
    pub state_dir: PathBuf,
    /// Review-period overrides, by exact name and version.
    pub allow_young: Vec<(String, Version)>,
    /// Whether auto-load fetches missing pinned modules.
    pub fetch_missing: bool,
    /// Pinned modules and their ranges.
    pub pins: BTreeMap<String, VersionReq>,
    /// Accepted tiers and their thresholds; empty accepts every tier.
    pub tiers: BTreeMap<String, u32>,
}

impl RegistrySettings {
    /// The registry configuration, `None` when no `url` is set.
    pub fn resolve(&self, datadir: &Path) -> Result<Option<RegistryConfig>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            key: "registry",
            message,
        };
        let Some(url) = &self.url else {
            if self != &RegistrySettings::default() {
                return Err(invalid("[registry] needs a `url`".into()));
            }
            return Ok(None);
        };
        let location = if url.starts_with("http://") || url.starts_with("https://") {
            RegistryLocation::Http(url.trim_end_matches('/').to_owned())
        } else if url.contains("://") {
            return Err(invalid(format!(
                "[registry] url `{url}`: expected http://, https:// or a directory"
            )));
        } else {
            RegistryLocation::Directory(datadir.join(url))
        };
        let root = self
            .root
            .as_ref()
            .ok_or_else(|| invalid("[registry] needs `root`, the registry's trusted root file".into()))?;
        let mut allow_young = Vec::new();
        for entry in &self.allow_young {
            let parsed = entry
                .split_once('@')
                .and_then(|(name, version)| Some((name.to_owned(), Version::parse(version).ok()?)));
            allow_young.push(
                parsed.ok_or_else(|| invalid(format!("[registry] allow_young `{entry}`: expected NAME@VERSION")))?,
            );
        }
        let mut pins = BTreeMap::new();
        for (name, range) in &self.pins {
            let req =
                VersionReq::parse(range).map_err(|e| invalid(format!("[registry.pins] {name} = \"{range}\": {e}")))?;
            pins.insert(name.clone(), req);
        }
        Ok(Some(RegistryConfig {
            location,
            root: datadir.join(root),
            state_dir: datadir.join("registry"),
            allow_young,
            fetch_missing: self.fetch_missing.unwrap_or(true),
            pins,
            tiers: self.tiers.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<RegistryConfig>, String> {
        #[derive(Deserialize)]
        struct File {
            registry: RegistrySettings,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        file.registry.resolve(Path::new("/d")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_registry_with_pins_tiers_and_overrides_resolves() {
        let config = parse(
            "[registry]\nurl = \"http://127.0.0.1:8420/\"\nroot = \"root.json\"\nallow_young = [\"block-stats@0.2.0\"]\n\
             [registry.pins]\nblock-stats = \"^0.1\"\n[registry.tiers]\ncore = 2\n",
        )
        .expect("resolves")
        .expect("set");
        assert_eq!(config.location, RegistryLocation::Http("http://127.0.0.1:8420".into()));
        assert_eq!(config.root, Path::new("/d/root.json"));
        assert_eq!(config.state_dir, Path::new("/d/registry"));
        assert_eq!(config.allow_young, [("block-stats".to_owned(), Version::new(0, 2, 0))]);
        assert!(config.pins["block-stats"].matches(&Version::new(0, 1, 7)));
        assert_eq!(config.tiers["core"], 2);
        assert!(config.fetch_missing);
        let bundle = parse("[registry]\nurl = \"bundle\"\nroot = \"/r.json\"\n")
            .expect("ok")
            .expect("set");
        assert_eq!(bundle.location, RegistryLocation::Directory("/d/bundle".into()));
        assert_eq!(bundle.root, Path::new("/r.json"));
        assert_eq!(parse("[registry]\n").expect("ok"), None);
    }

    #[test]
    fn a_registry_missing_its_root_or_with_bad_values_is_refused_by_name() {
        let err = parse("[registry]\nurl = \"http://x\"\n").unwrap_err();
        assert!(err.contains("root"), "{err}");
        let err = parse("[registry]\nurl = \"ftp://x\"\nroot = \"r\"\n").unwrap_err();
        assert!(err.contains("ftp://x"), "{err}");
        let err = parse("[registry]\nurl = \"http://x\"\nroot = \"r\"\nallow_young = [\"a\"]\n").unwrap_err();
        assert!(err.contains("NAME@VERSION"), "{err}");
        let err = parse("[registry]\nurl = \"http://x\"\nroot = \"r\"\n[registry.pins]\na = \"x.y\"\n").unwrap_err();
        assert!(err.contains("[registry.pins] a"), "{err}");
        let err = parse("[registry]\nroot = \"r\"\n").unwrap_err();
        assert!(err.contains("url"), "{err}");
        assert!(parse("[registry]\nurl = \"d\"\nroot = \"r\"\nmirror = 1\n").is_err());
    }
}
