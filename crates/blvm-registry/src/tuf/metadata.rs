//! The four top-level roles' metadata and the envelope that signs them.
//!
//! Field names are the spec's (`_type`, `spec_version`, `version`,
//! `expires`, ...), so the files are what python-tuf reads and writes.
//! Unknown fields are dropped when parsing into these types, which is
//! safe because signatures are checked on the canonical form of the
//! `signed` value as received (see [`super::canonical`]), before parsing.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::canonical::to_canonical;
use super::keys::{KeyId, PublicKey, Signature, SigningKey};

/// The spec version we write: TUF 1.0.31, the one python-tuf implements.
pub const SPEC_VERSION: &str = "1.0.31";

/// A top-level role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoleName {
    /// Signs the keys of every role, itself included.
    Root,
    /// Signs the target files' lengths, hashes and custom data.
    Targets,
    /// Signs the version of every targets metadata file.
    Snapshot,
    /// Signs the current snapshot's version, with a short expiry.
    Timestamp,
}

impl RoleName {
    /// The role's name as `_type` and file names spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Targets => "targets",
            Self::Snapshot => "snapshot",
            Self::Timestamp => "timestamp",
        }
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `expires` date: RFC 3339 in UTC with whole seconds and a `Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expires(pub SystemTime);

impl Expires {
    /// Whether the metadata has expired at `now` (the spec: expired when
    /// the expiry is not in the future).
    pub fn is_expired_at(self, now: SystemTime) -> bool {
        self.0 <= now
    }
}

impl fmt::Display for Expires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_seconds(self.0))
    }
}

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text)
            .map(Expires)
            .map_err(serde::de::Error::custom)
    }
}

/// The keys and threshold of one role, in root metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// The ids of the keys that may sign for the role.
    pub keyids: Vec<KeyId>,
    /// How many distinct keys must sign.
    pub threshold: u64,
}

/// The four top-level roles' keys; root metadata must list each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    /// The root role.
    pub root: RoleKeys,
    /// The targets role.
    pub targets: RoleKeys,
    /// The snapshot role.
    pub snapshot: RoleKeys,
    /// The timestamp role.
    pub timestamp: RoleKeys,
}

impl Roles {
    /// The keys of `role`.
    pub fn get(&self, role: RoleName) -> &RoleKeys {
        match role {
            RoleName::Root => &self.root,
            RoleName::Targets => &self.targets,
            RoleName::Snapshot => &self.snapshot,
            RoleName::Timestamp => &self.timestamp,
        }
    }
}

/// Hashes of a file; we write and require SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    /// Hex SHA-256.
    pub sha256: String,
}

/// What snapshot and timestamp say about a metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// The file's version.
    pub version: u64,
    /// Its length in bytes, when listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Its hashes, when listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Hashes>,
}

/// What targets metadata says about one target file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    /// The file's length in bytes: a downloader stops here.
    pub length: u64,
    /// Its hashes.
    pub hashes: Hashes,
    /// Our per-target data, such as the module manifest's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<serde_json::Value>,
}

/// Root metadata: the keys and thresholds of every role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// `"root"`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The TUF spec version.
    pub spec_version: String,
    /// Increases by one at each new root.
    pub version: u64,
    /// When the root stops being trusted.
    pub expires: Expires,
    /// Whether snapshot, targets and target files are served under
    /// version- and hash-prefixed names.
    #[serde(default)]
    pub consistent_snapshot: bool,
    /// Every role key, by key id.
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// Each role's key ids and threshold.
    pub roles: Roles,
}

/// Targets metadata: the target files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// `"targets"`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The TUF spec version.
    pub spec_version: String,
    /// Increases at each change.
    pub version: u64,
    /// When this metadata stops being trusted.
    pub expires: Expires,
    /// The target files by path.
    pub targets: BTreeMap<String, TargetFile>,
}

/// Snapshot metadata: the version of every targets metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `"snapshot"`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The TUF spec version.
    pub spec_version: String,
    /// Increases at each change.
    pub version: u64,
    /// When this metadata stops being trusted.
    pub expires: Expires,
    /// `targets.json` (and delegated roles, later) by file name.
    pub meta: BTreeMap<String, MetaFile>,
}

/// Timestamp metadata: the current snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// `"timestamp"`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The TUF spec version.
    pub spec_version: String,
    /// Increases at each change.
    pub version: u64,
    /// When this metadata stops being trusted (soon, by design).
    pub expires: Expires,
    /// `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
}

/// What the four roles' metadata have in common.
pub trait Metadata: Serialize + DeserializeOwned {
    /// The role this metadata is for.
    const ROLE: RoleName;
    /// The `_type` field.
    fn type_(&self) -> &str;
    /// The `spec_version` field.
    fn spec_version(&self) -> &str;
    /// The `version` field.
    fn version(&self) -> u64;
    /// The `expires` field.
    fn expires(&self) -> Expires;
}

macro_rules! metadata {
    ($type:ty, $role:expr) => {
        impl Metadata for $type {
            const ROLE: RoleName = $role;
            fn type_(&self) -> &str {
                &self.type_
            }
            fn spec_version(&self) -> &str {
                &self.spec_version
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> Expires {
                self.expires
            }
        }
    };
}

metadata!(Root, RoleName::Root);
metadata!(Targets, RoleName::Targets);
metadata!(Snapshot, RoleName::Snapshot);
metadata!(Timestamp, RoleName::Timestamp);

/// The envelope of every metadata file: `{"signed": …, "signatures": […]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// What is signed.
    pub signed: T,
    /// Signatures of the canonical JSON of `signed`.
    pub signatures: Vec<Signature>,
}

impl<T: Serialize> Signed<T> {
    /// Signs `signed` with each of `keys`.
    ///
    /// # Errors
    ///
    /// Fails when `signed` has no canonical form (a float in `custom`).
    pub fn sign(signed: T, keys: &[&SigningKey]) -> Result<Self, serde_json::Error> {
        let canonical = to_canonical(&signed)?;
        let signatures = keys.iter().map(|key| key.sign(&canonical)).collect();
        Ok(Self { signed, signatures })
    }

    /// The file's bytes (indented JSON; the signature covers the canonical
    /// form, not the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("metadata types have string keys and serialize to JSON")
    }
}
