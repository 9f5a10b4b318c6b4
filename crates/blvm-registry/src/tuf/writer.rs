//! The repository's side: keys, and signed metadata for a set of targets.
//!
//! A repository is a directory with `metadata/` (what a TUF client fetches
//! first) and `targets/` (the files). It uses consistent snapshots, as
//! python-tuf expects of a repository served while it changes: roots are
//! `N.root.json`, snapshot and targets are `N.snapshot.json` and
//! `N.targets.json`, and each target file lives at `HASH.name`, so
//! nothing a client may be reading is ever overwritten; only
//! `timestamp.json` (and `root.json`, the latest root for bootstrapping)
//! are replaced, each by a rename.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hex_conservative::DisplayHex;
use sha2::{Digest, Sha256};

use super::error::WriteError;
use super::keys::SigningKey;
use super::metadata::{
    Expires, Hashes, MetaFile, RoleKeys, RoleName, Roles, Root, Signed, Snapshot, TargetFile, Targets, Timestamp,
    SPEC_VERSION,
};
use super::target::hash_prefixed;

/// The keys of one role and how many of them must sign.
#[derive(Debug)]
pub struct RoleSigners {
    /// The private keys; the writer signs with all of them.
    pub keys: Vec<SigningKey>,
    /// The threshold root metadata states.
    pub threshold: u64,
}

impl RoleSigners {
    /// `count` fresh keys with threshold `threshold`.
    ///
    /// # Errors
    ///
    /// [`WriteError::Key`] when the random source fails.
    pub fn generate(count: usize, threshold: u64) -> Result<Self, WriteError> {
        let keys = (0..count)
            .map(|_| SigningKey::generate())
            .collect::<Result<_, _>>()
            .map_err(WriteError::Key)?;
        Ok(Self { keys, threshold })
    }

    fn role_keys(&self) -> RoleKeys {
        RoleKeys {
            keyids: self.keys.iter().map(SigningKey::key_id).collect(),
            threshold: self.threshold,
        }
    }

    fn refs(&self) -> Vec<&SigningKey> {
        self.keys.iter().collect()
    }
}

/// The keys of the four top-level roles.
#[derive(Debug)]
pub struct RepositoryKeys {
    /// Root keys: keep them offline.
    pub root: RoleSigners,
    /// Targets keys.
    pub targets: RoleSigners,
    /// Snapshot keys.
    pub snapshot: RoleSigners,
    /// Timestamp keys (online: they re-sign often).
    pub timestamp: RoleSigners,
}

impl RepositoryKeys {
    /// One fresh key per role, threshold 1.
    ///
    /// # Errors
    ///
    /// [`WriteError::Key`] when the random source fails.
    pub fn generate() -> Result<Self, WriteError> {
        Ok(Self {
            root: RoleSigners::generate(1, 1)?,
            targets: RoleSigners::generate(1, 1)?,
            snapshot: RoleSigners::generate(1, 1)?,
            timestamp: RoleSigners::generate(1, 1)?,
        })
    }

    /// The signers of `role`.
    pub fn get(&self, role: RoleName) -> &RoleSigners {
        match role {
            RoleName::Root => &self.root,
            RoleName::Targets => &self.targets,
            RoleName::Snapshot => &self.snapshot,
            RoleName::Timestamp => &self.timestamp,
        }
    }

    fn get_mut(&mut self, role: RoleName) -> &mut RoleSigners {
        match role {
            RoleName::Root => &mut self.root,
            RoleName::Targets => &mut self.targets,
            RoleName::Snapshot => &mut self.snapshot,
            RoleName::Timestamp => &mut self.timestamp,
        }
    }

    fn root_metadata(&self, version: u64, expires: Expires) -> Root {
        let mut keys = BTreeMap::new();
        for role in [
            RoleName::Root,
            RoleName::Targets,
            RoleName::Snapshot,
            RoleName::Timestamp,
        ] {
            for key in &self.get(role).keys {
                keys.insert(key.key_id(), key.public());
            }
        }
        Root {
            type_: RoleName::Root.as_str().to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version,
            expires,
            consistent_snapshot: true,
            keys,
            roles: Roles {
                root: self.root.role_keys(),
                targets: self.targets.role_keys(),
                snapshot: self.snapshot.role_keys(),
                timestamp: self.timestamp.role_keys(),
            },
        }
    }
}

/// How long each role's metadata stays valid after it is signed (the
/// spec's advice: root for long, timestamp for a day).
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Root metadata.
    pub root: Duration,
    /// Targets metadata.
    pub targets: Duration,
    /// Snapshot metadata.
    pub snapshot: Duration,
    /// Timestamp metadata.
    pub timestamp: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 60 * 60);
        Self {
            root: 365 * DAY,
            targets: 90 * DAY,
            snapshot: 7 * DAY,
            timestamp: DAY,
        }
    }
}

/// Writes and signs a repository's metadata.
#[derive(Debug)]
pub struct RepositoryWriter {
    dir: PathBuf,
    keys: RepositoryKeys,
    lifetimes: Lifetimes,
    root: Signed<Root>,
    targets: BTreeMap<String, TargetFile>,
    targets_version: u64,
    snapshot_version: u64,
    timestamp_version: u64,
}

impl RepositoryWriter {
    /// Creates a repository in `dir` with `keys`, writing root version 1.
    /// Targets, snapshot and timestamp appear at the first [`Self::commit`].
    ///
    /// # Errors
    ///
    /// A file that cannot be written.
    pub fn create(
        dir: impl Into<PathBuf>,
        keys: RepositoryKeys,
        lifetimes: Lifetimes,
        now: SystemTime,
    ) -> Result<Self, WriteError> {
        let dir = dir.into();
        for sub in ["metadata", "targets"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|source| WriteError::Io { path, source })?;
        }
        let root = keys.root_metadata(1, expires(now, lifetimes.root));
        let root = Signed::sign(root, &keys.root.refs())?;
        let writer = Self {
            dir,
            keys,
            lifetimes,
            root,
            targets: BTreeMap::new(),
            targets_version: 0,
            snapshot_version: 0,
            timestamp_version: 0,
        };
        writer.write_root()?;
        Ok(writer)
    }

    /// Opens the repository a writer created in `dir`, to go on from its
    /// latest root, targets, snapshot and timestamp versions (a registry
    /// server restarting).
    ///
    /// # Errors
    ///
    /// A file that cannot be read or parsed, or `keys` that are not the
    /// ones its root lists.
    pub fn open(dir: impl Into<PathBuf>, keys: RepositoryKeys, lifetimes: Lifetimes) -> Result<Self, WriteError> {
        let dir = dir.into();
        let metadata = dir.join("metadata");
        let root: Signed<Root> = read_metadata(&metadata.join("root.json"))?;
        for role in [
            RoleName::Root,
            RoleName::Targets,
            RoleName::Snapshot,
            RoleName::Timestamp,
        ] {
            let listed: BTreeSet<_> = root.signed.roles.get(role).keyids.iter().collect();
            let given = keys.get(role).role_keys();
            if listed != given.keyids.iter().collect() || root.signed.roles.get(role).threshold != given.threshold {
                return Err(WriteError::KeysMismatch {
                    role,
                    root_version: root.signed.version,
                });
            }
        }
        let mut writer = Self {
            dir,
            keys,
            lifetimes,
            root,
            targets: BTreeMap::new(),
            targets_version: 0,
            snapshot_version: 0,
            timestamp_version: 0,
        };
        let timestamp_path = metadata.join("timestamp.json");
        if !timestamp_path.exists() {
            // Created, never committed.
            return Ok(writer);
        }
        let timestamp: Signed<Timestamp> = read_metadata(&timestamp_path)?;
        writer.timestamp_version = timestamp.signed.version;
        writer.snapshot_version = timestamp
            .signed
            .meta
            .get("snapshot.json")
            .map_or(0, |meta| meta.version);
        let snapshot: Signed<Snapshot> =
            read_metadata(&metadata.join(format!("{}.snapshot.json", writer.snapshot_version)))?;
        writer.targets_version = snapshot.signed.meta.get("targets.json").map_or(0, |meta| meta.version);
        let targets: Signed<Targets> =
            read_metadata(&metadata.join(format!("{}.targets.json", writer.targets_version)))?;
        writer.targets = targets.signed.targets;
        Ok(writer)
    }

    /// The repository directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its `metadata/` directory.
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join("metadata")
    }

    /// Its `targets/` directory.
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join("targets")
    }

    /// Sets the lifetimes of the metadata signed from now on.
    pub fn set_lifetimes(&mut self, lifetimes: Lifetimes) {
        self.lifetimes = lifetimes;
    }

    /// The role keys.
    pub fn keys(&self) -> &RepositoryKeys {
        &self.keys
    }

    /// The current root file's bytes: what a client ships as its trusted
    /// root.
    pub fn root_bytes(&self) -> Vec<u8> {
        self.root.to_bytes()
    }

    /// Adds (or replaces) target `path` with `bytes` and our `custom` data,
    /// writing the file at its hash-prefixed name. It is signed at the next
    /// [`Self::commit`].
    ///
    /// # Errors
    ///
    /// A file that cannot be written.
    pub fn add_target(
        &mut self,
        path: &str,
        bytes: &[u8],
        custom: Option<serde_json::Value>,
    ) -> Result<TargetFile, WriteError> {
        let sha256 = Sha256::digest(bytes).to_lower_hex_string();
        let file = self.targets_dir().join(hash_prefixed(path, &sha256));
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|source| WriteError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        write_atomically(&file, bytes)?;
        let target = TargetFile {
            length: bytes.len() as u64,
            hashes: Hashes { sha256 },
            custom,
        };
        self.targets.insert(path.to_owned(), target.clone());
        Ok(target)
    }

    /// Removes target `path` from the next [`Self::commit`] (its file stays
    /// for clients still on the previous snapshot).
    ///
    /// # Errors
    ///
    /// [`WriteError::UnknownTarget`].
    pub fn remove_target(&mut self, path: &str) -> Result<(), WriteError> {
        self.targets
            .remove(path)
            .map(drop)
            .ok_or_else(|| WriteError::UnknownTarget { path: path.to_owned() })
    }

    /// Signs and writes new targets, snapshot and timestamp, each one
    /// version up, in that order (a client reading meanwhile still finds
    /// the previous timestamp's files).
    ///
    /// # Errors
    ///
    /// A file that cannot be written, or custom data with no canonical form.
    pub fn commit(&mut self, now: SystemTime) -> Result<(), WriteError> {
        self.targets_version += 1;
        let targets = Targets {
            type_: RoleName::Targets.as_str().to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version: self.targets_version,
            expires: expires(now, self.lifetimes.targets),
            targets: self.targets.clone(),
        };
        let bytes = Signed::sign(targets, &self.keys.targets.refs())?.to_bytes();
        self.write_metadata(&format!("{}.targets.json", self.targets_version), &bytes)?;

        self.snapshot_version += 1;
        let snapshot = Snapshot {
            type_: RoleName::Snapshot.as_str().to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version: self.snapshot_version,
            expires: expires(now, self.lifetimes.snapshot),
            meta: BTreeMap::from([("targets.json".to_owned(), meta_file(self.targets_version, &bytes))]),
        };
        let bytes = Signed::sign(snapshot, &self.keys.snapshot.refs())?.to_bytes();
        self.write_metadata(&format!("{}.snapshot.json", self.snapshot_version), &bytes)?;
        self.write_timestamp(now, meta_file(self.snapshot_version, &bytes))
    }

    /// Re-signs the timestamp alone, one version up, for the same snapshot:
    /// what a live repository does before the timestamp expires.
    ///
    /// # Errors
    ///
    /// A file that cannot be written, or nothing committed yet.
    pub fn refresh_timestamp(&mut self, now: SystemTime) -> Result<(), WriteError> {
        let file = format!("{}.snapshot.json", self.snapshot_version);
        let path = self.metadata_dir().join(&file);
        let bytes = std::fs::read(&path).map_err(|source| WriteError::Read { path, source })?;
        self.write_timestamp(now, meta_file(self.snapshot_version, &bytes))
    }

    /// Replaces `role`'s keys and writes the next root, signed by the old
    /// root keys and by the new root's (so a client holding either root can
    /// follow). Rotating a role other than root takes effect for its
    /// metadata at the next [`Self::commit`]. Returns the replaced keys.
    ///
    /// # Errors
    ///
    /// A file that cannot be written.
    pub fn rotate_keys(
        &mut self,
        role: RoleName,
        new: RoleSigners,
        now: SystemTime,
    ) -> Result<RoleSigners, WriteError> {
        let old = std::mem::replace(self.keys.get_mut(role), new);
        let root = self
            .keys
            .root_metadata(self.root.signed.version + 1, expires(now, self.lifetimes.root));
        let mut signers = self.keys.root.refs();
        let old_root = if role == RoleName::Root { old.refs() } else { Vec::new() };
        signers.extend(old_root);
        self.root = Signed::sign(root, &signers)?;
        self.write_root()?;
        Ok(old)
    }

    fn write_timestamp(&mut self, now: SystemTime, snapshot: MetaFile) -> Result<(), WriteError> {
        self.timestamp_version += 1;
        let timestamp = Timestamp {
            type_: RoleName::Timestamp.as_str().to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version: self.timestamp_version,
            expires: expires(now, self.lifetimes.timestamp),
            meta: BTreeMap::from([("snapshot.json".to_owned(), snapshot)]),
        };
        let bytes = Signed::sign(timestamp, &self.keys.timestamp.refs())?.to_bytes();
        self.write_metadata("timestamp.json", &bytes)
    }

    fn write_root(&self) -> Result<(), WriteError> {
        let bytes = self.root.to_bytes();
        self.write_metadata(&format!("{}.root.json", self.root.signed.version), &bytes)?;
        self.write_metadata("root.json", &bytes)
    }

    fn write_metadata(&self, file: &str, bytes: &[u8]) -> Result<(), WriteError> {
        write_atomically(&self.metadata_dir().join(file), bytes)
    }
}

fn read_metadata<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, WriteError> {
    let bytes = std::fs::read(path).map_err(|source| WriteError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| WriteError::Malformed {
        path: path.to_owned(),
        source,
    })
}

fn expires(now: SystemTime, lifetime: Duration) -> Expires {
    Expires(now + lifetime)
}

fn meta_file(version: u64, bytes: &[u8]) -> MetaFile {
    MetaFile {
        version,
        length: Some(bytes.len() as u64),
        hashes: Some(Hashes {
            sha256: Sha256::digest(bytes).to_lower_hex_string(),
        }),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(".tmp");
    let staging = PathBuf::from(staging);
    std::fs::write(&staging, bytes).map_err(|source| WriteError::Io {
        path: staging.clone(),
        source,
    })?;
    std::fs::rename(&staging, path).map_err(|source| WriteError::Io {
        path: path.to_owned(),
        source,
    })
}
