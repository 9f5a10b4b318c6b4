//! The registry's shared vocabulary, used by the server, the client and
//! the CLI alike: where a module version lives among the TUF targets, the
//! facts the registry signs about each version, and the statements a
//! publisher signs to publish or yank.
//!
//! A version `V` of module `N` is two TUF targets:
//!
//! - `N/V/module.toml`, the manifest exactly as its maintainers signed it,
//!   whose target `custom` is `{"blvm": VersionRecord}`;
//! - `N/V/binary`, the executable, which the installer writes under the
//!   manifest's `entry_point`.
//!
//! Everything a client decides on (versions, yanks, publish dates, tiers,
//! dependencies) comes from signed metadata or from a manifest whose hash
//! the signed metadata pins, never from the REST API's JSON, which is for
//! people and scripts: a server that lies there cannot add a dependency
//! (the extraneous-dependencies attack) or hide a yank.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The TUF target path of version `version` of module `name`'s manifest.
pub fn manifest_target(name: &str, version: &str) -> String {
    format!("{name}/{version}/module.toml")
}

/// The TUF target path of version `version` of module `name`'s binary.
pub fn binary_target(name: &str, version: &str) -> String {
    format!("{name}/{version}/binary")
}

/// The module name and version of a manifest target path, or `None` for
/// any other target.
pub fn parse_manifest_target(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.split('/');
    let (name, version, file) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && file == "module.toml" && !name.is_empty() && !version.is_empty())
        .then_some((name, version))
}

/// The key of [`VersionRecord`] in a manifest target's `custom` object.
pub const CUSTOM_KEY: &str = "blvm";

/// What the registry signs about one published version, in the `custom`
/// of its manifest target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The module's name (as in the manifest).
    pub name: String,
    /// The version (as in the manifest).
    pub version: String,
    /// When the registry accepted it, RFC 3339 UTC (`2026-12-02T10:00:00Z`):
    /// the start of its governance review period.
    pub published: String,
    /// Yanked versions stay downloadable for lock files that pin them, but
    /// no new resolution picks them.
    pub yanked: bool,
    /// The manifest's `[governance] tier`, if any.
    pub tier: Option<String>,
    /// The publisher's key (compressed secp256k1, hex) that signed the
    /// publish statement.
    pub publisher: String,
    /// The target path of the binary ([`binary_target`]).
    pub binary: String,
}

impl VersionRecord {
    /// The record in a target's `custom`, if it has one.
    pub fn from_custom(custom: Option<&serde_json::Value>) -> Option<VersionRecord> {
        serde_json::from_value(custom?.get(CUSTOM_KEY)?.clone()).ok()
    }

    /// This record as a target's `custom`.
    pub fn to_custom(&self) -> serde_json::Value {
        serde_json::json!({ CUSTOM_KEY: self })
    }
}

/// What a publisher asks of the registry; signed as a [`SignedStatement`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Statement {
    /// Publish version `version` of `name`: the manifest and binary with
    /// these hashes (hex SHA-256) and the binary with this length.
    Publish {
        /// Module name.
        name: String,
        /// Version.
        version: String,
        /// SHA-256 of the manifest file's bytes.
        manifest_sha256: String,
        /// SHA-256 of the binary.
        binary_sha256: String,
        /// Length of the binary in bytes.
        binary_length: u64,
    },
    /// Yank version `version` of `name`.
    Yank {
        /// Module name.
        name: String,
        /// Version.
        version: String,
    },
}

/// The domain separator of statement digests: a statement signature can
/// never be mistaken for a manifest signature made with the same key.
const STATEMENT_DOMAIN: &[u8] = b"blvm-registry statement v1\n";

impl Statement {
    /// The digest a publisher signs: SHA-256 of the domain separator and
    /// the statement's JSON (serde's field order, which is fixed).
    pub fn digest(&self) -> [u8; 32] {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(STATEMENT_DOMAIN);
        hasher.update(&json);
        hasher.finalize().into()
    }

    /// The module the statement is about.
    pub fn name(&self) -> &str {
        match self {
            Statement::Publish { name, .. } | Statement::Yank { name, .. } => name,
        }
    }

    /// The version the statement is about.
    pub fn version(&self) -> &str {
        match self {
            Statement::Publish { version, .. } | Statement::Yank { version, .. } => version,
        }
    }
}

/// A statement with the publisher's key and ECDSA signature (hex, as for
/// manifest signatures; made by `blvm-module` with the maintainer key from
/// `keygen`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatement {
    /// What is asked.
    pub statement: Statement,
    /// The publisher's compressed secp256k1 public key, hex.
    pub key: String,
    /// The signature of [`Statement::digest`], hex.
    pub signature: String,
}

impl SignedStatement {
    /// Signs `statement` with `secret_key_hex`.
    ///
    /// # Errors
    ///
    /// A secret key that is not 32 bytes of hex in range.
    pub fn sign(statement: Statement, secret_key_hex: &str) -> Result<SignedStatement, String> {
        use blvm_module_host::security::signatures::{public_key_of, sign_digest};
        let signature = sign_digest(&statement.digest(), secret_key_hex)?;
        let key = public_key_of(secret_key_hex)?;
        Ok(SignedStatement {
            statement,
            key,
            signature,
        })
    }

    /// Whether the signature is `key`'s over the statement.
    pub fn verifies(&self) -> bool {
        blvm_module_host::security::signatures::verify_digest(&self.statement.digest(), &self.key, &self.signature)
    }
}

/// The body of `POST /api/v1/publish` (MessagePack): the signed statement
/// and the two files it hashes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishRequest {
    /// A [`Statement::Publish`], signed.
    pub statement: SignedStatement,
    /// The manifest file, as signed by the maintainers.
    pub manifest: String,
    /// The binary.
    #[serde(with = "serde_bytes")]
    pub binary: Vec<u8>,
}

/// The REST API's error body (any 4xx or 5xx answer): `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, in one line.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_targets_round_trip_and_other_paths_are_not_manifests() {
        let path = manifest_target("block-stats", "0.1.0");
        assert_eq!(parse_manifest_target(&path), Some(("block-stats", "0.1.0")));
        assert_eq!(parse_manifest_target(&binary_target("block-stats", "0.1.0")), None);
        assert_eq!(parse_manifest_target("a/b/c/module.toml"), None);
        assert_eq!(parse_manifest_target("/0.1.0/module.toml"), None);
    }

    #[test]
    fn a_statement_verifies_only_under_its_own_key_and_content() {
        let secret = blvm_module_host::security::signatures::generate_secret_key().expect("random");
        let other = blvm_module_host::security::signatures::generate_secret_key().expect("random");
        let yank = Statement::Yank {
            name: "a".into(),
            version: "1.0.0".into(),
        };
        let signed = SignedStatement::sign(yank.clone(), &secret).expect("signs");
        assert!(signed.verifies());
        let mut forged = signed.clone();
        forged.statement = Statement::Yank {
            name: "a".into(),
            version: "1.0.1".into(),
        };
        assert!(!forged.verifies(), "a signature covers the version");
        let mut rekeyed = signed;
        rekeyed.key = blvm_module_host::security::signatures::public_key_of(&other).expect("key");
        assert!(!rekeyed.verifies(), "a signature is its key's");
    }

    #[test]
    fn the_version_record_lives_under_its_custom_key() {
        let record = VersionRecord {
            name: "a".into(),
            version: "1.0.0".into(),
            published: "2026-12-02T10:00:00Z".into(),
            yanked: false,
            tier: Some("community".into()),
            publisher: "02".into(),
            binary: binary_target("a", "1.0.0"),
        };
        assert_eq!(VersionRecord::from_custom(Some(&record.to_custom())), Some(record));
        assert_eq!(VersionRecord::from_custom(Some(&serde_json::json!({"other": 1}))), None);
    }
}
