//! Reading without changing: the registry's signed modules ([`search`])
//! and what is in `modules/` ([`list`]).

use std::path::{Path, PathBuf};

use blvm_module_host::registry::discover;
use semver::Version;

use super::error::InstallError;
use super::folders::PREVIOUS_DIR;
use super::install::Registry;
use super::lock::{LockEntry, LockFile};
use super::repository::Repository;
use super::resolve::{self, Catalog};

/// One module found by [`search`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The module.
    pub name: String,
    /// The newest version's description, from its verified manifest.
    pub description: Option<String>,
    /// Every published version, oldest first.
    pub versions: Vec<VersionSummary>,
}

/// One published version, as the registry signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSummary {
    /// The version.
    pub version: Version,
    /// Yanked: no new resolution picks it.
    pub yanked: bool,
    /// Its tier.
    pub tier: Option<String>,
    /// When it was published (RFC 3339).
    pub published: String,
}

/// The modules of the signed targets whose name or description contains
/// `query` (case-insensitively; an empty query lists all). Descriptions
/// come from each module's newest manifest, downloaded and checked; one
/// that cannot be fetched leaves the description out.
pub fn search<R: Repository + ?Sized>(registry: &Registry<'_, R>, query: &str) -> Vec<SearchHit> {
    let query = query.to_lowercase();
    let catalog = Catalog::from_trusted(registry.state.metadata());
    let mut hits = Vec::new();
    for (name, versions) in catalog.modules() {
        let description = versions.values().next_back().and_then(|newest| {
            resolve::fetch_manifest(registry.repo, name, newest)
                .ok()
                .and_then(|(_, m)| m.description().map(str::to_owned))
        });
        let matches = name.to_lowercase().contains(&query)
            || description.as_ref().is_some_and(|d| d.to_lowercase().contains(&query));
        if !matches {
            continue;
        }
        hits.push(SearchHit {
            name: name.to_owned(),
            description,
            versions: versions
                .values()
                .map(|p| VersionSummary {
                    version: p.version.clone(),
                    yanked: p.record.yanked,
                    tier: p.record.tier.clone(),
                    published: p.record.published.clone(),
                })
                .collect(),
        });
    }
    hits
}

/// One module in `modules/`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedModule {
    /// The module.
    pub name: String,
    /// The installed version.
    pub version: Version,
    /// Its folder.
    pub dir: PathBuf,
    /// Its lock entry, when the installer wrote it.
    pub locked: Option<LockEntry>,
    /// Whether `rollback` has a version to go back to.
    pub has_previous: bool,
}

/// The modules in `modules_dir`, and one line per folder discovery refused.
///
/// # Errors
///
/// A lock file that cannot be read.
pub fn list(modules_dir: &Path) -> Result<(Vec<ListedModule>, Vec<String>), InstallError> {
    let lock = LockFile::read(modules_dir)?;
    let discovery = discover(modules_dir);
    let modules = discovery
        .modules
        .iter()
        .map(|m| ListedModule {
            name: m.name().to_owned(),
            version: m.manifest.version().clone(),
            dir: m.dir.clone(),
            locked: lock.modules.get(m.name()).cloned(),
            has_previous: modules_dir.join(PREVIOUS_DIR).join(m.name()).is_dir(),
        })
        .collect();
    Ok((modules, discovery.errors.iter().map(ToString::to_string).collect()))
}
