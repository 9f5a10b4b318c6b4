//! `POST /api/v1/publish` and `POST /api/v1/yank`: what a request must
//! prove before the registry signs anything.
//!
//! A publish is checked in two steps. [`check_publish`] needs no lock: the
//! statement's signature, and that the manifest and binary are the ones
//! it hashes. [`apply_publish`] runs under the registry's lock: the
//! version is new, the key may publish the name (the first publish claims
//! it), then the two targets are added and signed in one commit. Any
//! failure before the commit leaves the signed metadata as it was.

use std::path::Path;
use std::time::SystemTime;

use blvm_module_host::registry::manifest::MAX_MANIFEST_LEN;
use blvm_module_host::registry::ModuleManifest;
use hex_conservative::DisplayHex;
use sha2::{Digest, Sha256};

use super::catalog::Catalog;
use super::error::ApiFailure;
use super::store::Registry;
use crate::layout::{binary_target, manifest_target, PublishRequest, SignedStatement, Statement, VersionRecord};

/// A publish request whose statement is signed and whose files are the
/// ones it hashes; not yet checked against the registry's state.
#[derive(Debug)]
pub struct CheckedPublish {
    name: String,
    version: String,
    key: String,
    manifest: String,
    binary: Vec<u8>,
    tier: Option<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).to_lower_hex_string()
}

/// Checks what a publish request proves by itself.
///
/// # Errors
///
/// 400, saying which check failed.
pub fn check_publish(request: PublishRequest) -> Result<CheckedPublish, ApiFailure> {
    let PublishRequest {
        statement,
        manifest,
        binary,
    } = request;
    if !statement.verifies() {
        return Err(ApiFailure::bad_request(
            "the statement's signature does not verify under its key",
        ));
    }
    let Statement::Publish {
        name,
        version,
        manifest_sha256,
        binary_sha256,
        binary_length,
    } = statement.statement
    else {
        return Err(ApiFailure::bad_request("the statement is not a publish statement"));
    };
    if manifest.len() as u64 > MAX_MANIFEST_LEN {
        return Err(ApiFailure::bad_request(format!(
            "the manifest is {} bytes, more than {MAX_MANIFEST_LEN}",
            manifest.len()
        )));
    }
    let parsed = ModuleManifest::from_toml_str(&manifest, Path::new("module.toml"))
        .map_err(|e| ApiFailure::bad_request(format!("the manifest is invalid: {e}")))?;
    if parsed.name().as_str() != name || parsed.version().to_string() != version {
        return Err(ApiFailure::bad_request(format!(
            "the statement is for {name} {version}, the manifest is {} {}",
            parsed.name(),
            parsed.version()
        )));
    }
    if !sha256_hex(manifest.as_bytes()).eq_ignore_ascii_case(&manifest_sha256) {
        return Err(ApiFailure::bad_request(
            "the manifest is not the one the statement hashes",
        ));
    }
    let binary_hash = Sha256::digest(&binary);
    if binary.len() as u64 != binary_length || !binary_hash.to_lower_hex_string().eq_ignore_ascii_case(&binary_sha256) {
        return Err(ApiFailure::bad_request(
            "the binary is not the one the statement hashes",
        ));
    }
    if let Some(pin) = parsed.binary() {
        if pin.hash.is_some_and(|hash| hash.0 != <[u8; 32]>::from(binary_hash)) {
            return Err(ApiFailure::bad_request(
                "the binary is not the one the manifest's [binary] hash pins",
            ));
        }
        if pin.size.is_some_and(|size| size != binary.len() as u64) {
            return Err(ApiFailure::bad_request(
                "the binary's size is not the manifest's [binary] size",
            ));
        }
    }
    let tier = parsed.governance().and_then(|g| g.tier.clone());
    Ok(CheckedPublish {
        name,
        version,
        key: statement.key,
        manifest,
        binary,
        tier,
    })
}

/// Publishes a checked request: refuses a version that exists (409) or a
/// name claimed by other keys (403), then claims the name if new and signs
/// both targets in one commit. Returns the record and the new catalog.
///
/// # Errors
///
/// 409, 403, or 500 when the registry cannot write.
pub fn apply_publish(
    registry: &mut Registry,
    catalog: &Catalog,
    publish: CheckedPublish,
    now: SystemTime,
) -> Result<(VersionRecord, Catalog), ApiFailure> {
    let CheckedPublish {
        name,
        version,
        key,
        manifest,
        binary,
        tier,
    } = publish;
    let manifest_path = manifest_target(&name, &version);
    let binary_path = binary_target(&name, &version);
    if catalog.version(&name, &version).is_some() {
        return Err(ApiFailure::conflict(format!(
            "{name} {version} is already published; published versions never change, publish a new version"
        )));
    }
    if let Some(publishers) = registry.claims().publishers(&name) {
        if !publishers.contains(&key) {
            return Err(ApiFailure::forbidden(format!(
                "{name} is claimed by another publisher's key; key {key} may not publish it"
            )));
        }
    }
    let is_new_claim = registry
        .claim(&name, &key)
        .map_err(|e| ApiFailure::internal("cannot save the name claim", &e))?;
    let record = VersionRecord {
        name: name.clone(),
        version: version.clone(),
        published: humantime::format_rfc3339_seconds(now).to_string(),
        yanked: false,
        tier,
        publisher: key.clone(),
        binary: binary_path.clone(),
    };
    let written = (|| {
        let writer = registry.writer();
        writer.add_target(&binary_path, &binary, None)?;
        writer.add_target(&manifest_path, manifest.as_bytes(), Some(record.to_custom()))?;
        Ok::<_, crate::tuf::WriteError>(())
    })();
    let committed = match written {
        Ok(()) => registry.commit(now, catalog).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match committed {
        Ok(catalog) => {
            tracing::info!(name, version, publisher = key, "published");
            Ok((record, catalog))
        }
        Err(e) => {
            // Leave nothing of this publish for the next commit to sign.
            let _ = registry.writer().remove_target(&binary_path);
            let _ = registry.writer().remove_target(&manifest_path);
            if is_new_claim {
                registry.unclaim(&name, &key);
            }
            Err(ApiFailure::internal("cannot sign the new version", &e))
        }
    }
}

/// Yanks a version: only a key that claims the name may (403); the
/// manifest target's record is re-signed with `yanked: true` and both
/// files stay, for lock files that pin the version. Yanking a yanked
/// version changes nothing.
///
/// # Errors
///
/// 400 for a statement that is not a verifying yank, 403, 404, or 500.
pub fn apply_yank(
    registry: &mut Registry,
    catalog: &Catalog,
    statement: SignedStatement,
    now: SystemTime,
) -> Result<(VersionRecord, Option<Catalog>), ApiFailure> {
    if !statement.verifies() {
        return Err(ApiFailure::bad_request(
            "the statement's signature does not verify under its key",
        ));
    }
    let Statement::Yank { name, version } = &statement.statement else {
        return Err(ApiFailure::bad_request("the statement is not a yank statement"));
    };
    let Some(publishers) = registry.claims().publishers(name) else {
        return Err(ApiFailure::not_found(format!("no module named {name}")));
    };
    if !publishers.contains(&statement.key) {
        return Err(ApiFailure::forbidden(format!(
            "key {} is not a publisher of {name}",
            statement.key
        )));
    }
    let Some(entry) = catalog.version(name, version) else {
        return Err(ApiFailure::not_found(format!("{name} has no version {version}")));
    };
    if entry.record.yanked {
        return Ok((entry.record.clone(), None));
    }
    let path = registry
        .repository_dir()
        .join("targets")
        .join(entry.manifest_url_path());
    let bytes = std::fs::read(&path).map_err(|e| ApiFailure::internal("cannot read the manifest target", &e))?;
    if sha256_hex(&bytes) != entry.manifest.hashes.sha256 {
        return Err(ApiFailure::internal(
            "the stored manifest is not the signed one",
            &path.display(),
        ));
    }
    let record = VersionRecord {
        yanked: true,
        ..entry.record.clone()
    };
    let manifest_path = manifest_target(name, version);
    let previous_custom = entry.manifest.custom.clone();
    registry
        .writer()
        .add_target(&manifest_path, &bytes, Some(record.to_custom()))
        .map_err(|e| ApiFailure::internal("cannot stage the yank", &e))?;
    match registry.commit(now, catalog) {
        Ok(catalog) => {
            tracing::info!(name, version, "yanked");
            Ok((record, Some(catalog)))
        }
        Err(e) => {
            // Put the unyanked record back for the next commit.
            let _ = registry.writer().add_target(&manifest_path, &bytes, previous_custom);
            Err(ApiFailure::internal("cannot sign the yank", &e))
        }
    }
}
