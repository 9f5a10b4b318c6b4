//! What the REST API answers from: the repository's current signed
//! targets metadata (found as a client finds it: timestamp, then
//! snapshot, then targets), indexed by module and version. It is rebuilt
//! after each commit and swapped in whole, so readers never wait for a
//! publish and never see half of one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use blvm_module_host::registry::ModuleManifest;

use super::store::StoreError;
use crate::layout::{parse_manifest_target, VersionRecord};
use crate::tuf::metadata::{Snapshot, TargetFile, Targets, Timestamp};
use crate::tuf::target::hash_prefixed;
use crate::tuf::Signed;

/// One published version, as the signed targets say.
#[derive(Debug, Clone)]
pub struct CatalogVersion {
    /// The record signed in the manifest target's `custom`.
    pub record: VersionRecord,
    /// The manifest target.
    pub manifest: TargetFile,
    /// The binary target, when the targets list it.
    pub binary: Option<TargetFile>,
    /// The manifest's `description`.
    pub description: Option<String>,
}

impl CatalogVersion {
    /// Where the manifest file is, under `targets/`.
    pub fn manifest_url_path(&self) -> String {
        hash_prefixed(
            &crate::layout::manifest_target(&self.record.name, &self.record.version),
            &self.manifest.hashes.sha256,
        )
    }

    /// Where the binary file is, under `targets/`.
    pub fn binary_url_path(&self) -> Option<String> {
        let binary = self.binary.as_ref()?;
        Some(hash_prefixed(&self.record.binary, &binary.hashes.sha256))
    }
}

/// The index of the current signed targets.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The targets metadata version (0 before the first commit).
    pub targets_version: u64,
    /// When the targets metadata expires.
    pub targets_expires: Option<SystemTime>,
    /// When the snapshot expires.
    pub snapshot_expires: Option<SystemTime>,
    /// Every module's versions, by name then semver (highest last).
    pub modules: BTreeMap<String, BTreeMap<semver::Version, CatalogVersion>>,
}

impl Catalog {
    /// Reads the current signed metadata under `repository` (its
    /// `metadata/` and `targets/`). Manifests already parsed in `previous`
    /// are not read again.
    pub(crate) fn load(repository: &Path, previous: &Catalog) -> Result<Catalog, StoreError> {
        let metadata = repository.join("metadata");
        let timestamp_path = metadata.join("timestamp.json");
        if !timestamp_path.exists() {
            return Ok(Catalog::default());
        }
        let timestamp: Signed<Timestamp> = read_json(&timestamp_path)?;
        let snapshot_version = timestamp.signed.meta.get("snapshot.json").map_or(0, |m| m.version);
        let snapshot: Signed<Snapshot> = read_json(&metadata.join(format!("{snapshot_version}.snapshot.json")))?;
        let targets_version = snapshot.signed.meta.get("targets.json").map_or(0, |m| m.version);
        let targets: Signed<Targets> = read_json(&metadata.join(format!("{targets_version}.targets.json")))?;

        let mut catalog = Catalog {
            targets_version,
            targets_expires: Some(targets.signed.expires.0),
            snapshot_expires: Some(snapshot.signed.expires.0),
            modules: BTreeMap::new(),
        };
        for (path, file) in &targets.signed.targets {
            let Some((name, version)) = parse_manifest_target(path) else {
                continue;
            };
            let (Some(record), Ok(semver)) = (
                VersionRecord::from_custom(file.custom.as_ref()),
                semver::Version::parse(version),
            ) else {
                tracing::warn!("target {path} has no version record; not listed");
                continue;
            };
            let reused = previous
                .modules
                .get(name)
                .and_then(|versions| versions.get(&semver))
                .filter(|old| old.manifest.hashes.sha256 == file.hashes.sha256)
                .map(|old| old.description.clone());
            let description = match reused {
                Some(description) => description,
                None => read_description(
                    &repository
                        .join("targets")
                        .join(hash_prefixed(path, &file.hashes.sha256)),
                ),
            };
            let binary = targets.signed.targets.get(&record.binary).cloned();
            catalog.modules.entry(name.to_owned()).or_default().insert(
                semver,
                CatalogVersion {
                    record,
                    manifest: file.clone(),
                    binary,
                    description,
                },
            );
        }
        Ok(catalog)
    }

    /// Version `version` of `name`, if published.
    pub fn version(&self, name: &str, version: &str) -> Option<&CatalogVersion> {
        let version = semver::Version::parse(version).ok()?;
        self.modules.get(name)?.get(&version)
    }

    /// The highest version of `name` that is not yanked.
    pub fn latest(&self, name: &str) -> Option<&CatalogVersion> {
        self.modules.get(name)?.values().rev().find(|v| !v.record.yanked)
    }
}

fn read_description(path: &Path) -> Option<String> {
    // A manifest the registry accepted parses; if it somehow does not, the
    // module is still listed, without a description.
    let manifest = ModuleManifest::from_file(path).ok()?;
    manifest.description().map(str::to_owned)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let bytes = std::fs::read(path).map_err(StoreError::io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::malformed(path, e))
}
