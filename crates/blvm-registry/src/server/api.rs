//! The REST API's JSON answers (`/api/v1/modules…`). They are read from
//! the signed targets metadata but are not signed themselves: they are for
//! people and scripts, and a client decides only on the TUF metadata.

use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, CatalogVersion};
use crate::layout::VersionRecord;

/// One module in a search: `GET /api/v1/modules?q=TEXT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleSummary {
    /// The module's name.
    pub name: String,
    /// Its highest version that is not yanked (`None`: all are yanked).
    pub version: Option<String>,
    /// That version's manifest `description`.
    pub description: Option<String>,
}

/// A target file as the signed targets list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSummary {
    /// The TUF target path.
    pub path: String,
    /// Its signed length.
    pub length: u64,
    /// Its signed hex SHA-256.
    pub sha256: String,
}

/// One version of a module: `GET /api/v1/modules/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSummary {
    /// The version.
    pub version: String,
    /// What the registry signed about it.
    pub record: VersionRecord,
    /// The manifest target.
    pub manifest: TargetSummary,
    /// The binary target.
    pub binary: Option<TargetSummary>,
}

/// A module's versions, lowest first: `GET /api/v1/modules/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleVersions {
    /// The module's name.
    pub name: String,
    /// Its versions.
    pub versions: Vec<VersionSummary>,
}

/// The modules whose name or description contains `query` (any case);
/// every module for an empty query.
pub fn search(catalog: &Catalog, query: &str) -> Vec<ModuleSummary> {
    let query = query.to_lowercase();
    catalog
        .modules
        .keys()
        .filter_map(|name| {
            let latest = catalog.latest(name);
            let description = latest.and_then(|v| v.description.clone());
            let matches = name.contains(&query)
                || description
                    .as_deref()
                    .is_some_and(|d| d.to_lowercase().contains(&query));
            matches.then(|| ModuleSummary {
                name: name.clone(),
                version: latest.map(|v| v.record.version.clone()),
                description,
            })
        })
        .collect()
}

/// `name`'s versions, if it has any.
pub fn versions(catalog: &Catalog, name: &str) -> Option<ModuleVersions> {
    let versions = catalog.modules.get(name)?;
    Some(ModuleVersions {
        name: name.to_owned(),
        versions: versions.values().map(version_summary).collect(),
    })
}

fn version_summary(entry: &CatalogVersion) -> VersionSummary {
    VersionSummary {
        version: entry.record.version.clone(),
        record: entry.record.clone(),
        manifest: TargetSummary {
            path: crate::layout::manifest_target(&entry.record.name, &entry.record.version),
            length: entry.manifest.length,
            sha256: entry.manifest.hashes.sha256.clone(),
        },
        binary: entry.binary.as_ref().map(|file| TargetSummary {
            path: entry.record.binary.clone(),
            length: file.length,
            sha256: file.hashes.sha256.clone(),
        }),
    }
}
