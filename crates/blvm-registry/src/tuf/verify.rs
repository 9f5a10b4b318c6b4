//! The client's side: the spec's detailed client workflow (§5).
//!
//! [`TrustedMetadata`] is the workflow without I/O: it is handed each
//! file's bytes in order and either trusts them or refuses with a
//! [`VerifyError`], leaving what it trusted untouched. [`TrustedMetadata::refresh`]
//! drives it from a [`MetadataSource`], in the spec's order:
//!
//! 1. root: fetch `N+1.root.json` until there is none, each new root
//!    signed by the threshold of the trusted root's root keys *and* of its
//!    own; then the final root must not have expired. If it changed the
//!    timestamp or snapshot keys, forget the trusted timestamp and snapshot
//!    (fast-forward recovery: their versions may have been pushed up by
//!    whoever held the old keys).
//! 2. timestamp: signed by the timestamp threshold, not older than the
//!    trusted one, nor listing an older snapshot; not expired.
//! 3. snapshot: the length and hash the timestamp lists, the version it
//!    lists, signed; no targets file dropped or rolled back; not expired.
//! 4. targets: the length, hash and version the snapshot lists, signed,
//!    not expired.
//!
//! Then [`TrustedMetadata::target`] gives a target's signed length (the
//! limit a downloader stops at) and checks the downloaded bytes.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::time::SystemTime;

use hex_conservative::DisplayHex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::canonical::to_canonical;
use super::error::{FetchError, VerifyError};
use super::keys::Signature;
use super::metadata::{MetaFile, Metadata, RoleName, Root, Snapshot, TargetFile, Targets, Timestamp};

/// How many new roots one refresh follows (python-tuf's default).
pub const MAX_ROOT_ROTATIONS: u64 = 32;
/// The most bytes read of a root file.
pub const ROOT_MAX_LENGTH: u64 = 512 * 1024;
/// The most bytes read of `timestamp.json`.
pub const TIMESTAMP_MAX_LENGTH: u64 = 16 * 1024;
/// The most bytes read of a snapshot the timestamp gives no length for.
pub const SNAPSHOT_MAX_LENGTH: u64 = 2 * 1024 * 1024;
/// The most bytes read of a targets file the snapshot gives no length for.
pub const TARGETS_MAX_LENGTH: u64 = 8 * 1024 * 1024;

const SNAPSHOT_JSON: &str = "snapshot.json";
const TARGETS_JSON: &str = "targets.json";

/// Where metadata files come from: a directory, an HTTP server.
pub trait MetadataSource {
    /// The bytes of `file` (a name such as `2.root.json`), reading no more
    /// than `limit` bytes: a longer file is [`FetchError::TooLong`].
    ///
    /// # Errors
    ///
    /// [`FetchError::NotFound`] when there is no such file (which ends the
    /// root chain), or why it could not be read.
    fn fetch(&self, file: &str, limit: u64) -> Result<Vec<u8>, FetchError>;
}

/// Metadata files in a local directory (a bundle, or a test's repository).
#[derive(Debug, Clone)]
pub struct DirectorySource {
    dir: PathBuf,
}

impl DirectorySource {
    /// Files under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl MetadataSource for DirectorySource {
    fn fetch(&self, file: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let opened = std::fs::File::open(self.dir.join(file));
        let handle = match opened {
            Ok(handle) => handle,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FetchError::NotFound),
            Err(e) => return Err(e.into()),
        };
        // Read one byte past the limit to tell "exactly the limit" from "more".
        let mut bytes = Vec::new();
        handle.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(FetchError::TooLong { limit });
        }
        Ok(bytes)
    }
}

/// A file as received: the `signed` value kept raw for its signatures.
#[derive(Deserialize)]
struct RawSigned {
    signed: serde_json::Value,
    signatures: Vec<Signature>,
}

/// A parsed file whose signatures are still to be checked.
struct Unverified<T> {
    signed: T,
    canonical: Vec<u8>,
    signatures: Vec<Signature>,
}

fn parse<T: Metadata>(bytes: &[u8]) -> Result<Unverified<T>, VerifyError> {
    let malformed = |source| VerifyError::Malformed { role: T::ROLE, source };
    let raw: RawSigned = serde_json::from_slice(bytes).map_err(malformed)?;
    let canonical = to_canonical(&raw.signed).map_err(malformed)?;
    let signed: T = serde_json::from_value(raw.signed).map_err(malformed)?;
    if signed.type_() != T::ROLE.as_str() {
        return Err(VerifyError::WrongType {
            role: T::ROLE,
            found: signed.type_().to_owned(),
        });
    }
    if signed.spec_version().split('.').next() != Some("1") {
        return Err(VerifyError::UnsupportedSpecVersion {
            role: T::ROLE,
            found: signed.spec_version().to_owned(),
        });
    }
    Ok(Unverified {
        signed,
        canonical,
        signatures: raw.signatures,
    })
}

impl<T: Metadata> Unverified<T> {
    /// Checks that at least the threshold of `role`'s keys in `root` signed.
    /// Each key counts once, however many signatures it made, and a key id
    /// the role does not list counts for nothing.
    fn check_signed_by(&self, root: &Root, role: RoleName) -> Result<(), VerifyError> {
        let role_keys = root.roles.get(role);
        let mut signers = HashSet::new();
        for signature in &self.signatures {
            if !role_keys.keyids.contains(&signature.keyid) {
                continue;
            }
            let Some(key) = root.keys.get(&signature.keyid) else {
                continue;
            };
            if key.verifies(&self.canonical, &signature.sig) {
                signers.insert(key.keyval.public.clone());
            }
        }
        // A threshold of 0 would trust unsigned files: treat it as 1.
        if (signers.len() as u64) < role_keys.threshold.max(1) {
            return Err(VerifyError::BelowThreshold {
                role: T::ROLE,
                valid: signers.len(),
                threshold: role_keys.threshold,
            });
        }
        Ok(())
    }
}

fn check_expiry<T: Metadata>(signed: &T, now: SystemTime) -> Result<(), VerifyError> {
    if signed.expires().is_expired_at(now) {
        return Err(VerifyError::Expired {
            role: T::ROLE,
            expires: signed.expires(),
        });
    }
    Ok(())
}

/// Checks a metadata file's bytes against what the role above lists.
fn check_meta_file(bytes: &[u8], listed: &MetaFile, role: RoleName, listed_by: RoleName) -> Result<(), VerifyError> {
    if listed.length.is_some_and(|length| bytes.len() as u64 != length) {
        return Err(VerifyError::MetaFileMismatch {
            role,
            what: "length",
            listed_by,
        });
    }
    if let Some(hashes) = &listed.hashes {
        if Sha256::digest(bytes).to_lower_hex_string() != hashes.sha256.to_ascii_lowercase() {
            return Err(VerifyError::MetaFileMismatch {
                role,
                what: "sha256",
                listed_by,
            });
        }
    }
    Ok(())
}

/// What a client trusts: a root, and the timestamp, snapshot and targets
/// verified under it.
#[derive(Debug, Clone)]
pub struct TrustedMetadata {
    root: Root,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: Option<Targets>,
}

impl TrustedMetadata {
    /// Trusts `root_bytes`, the root shipped with the client or kept from
    /// the last update, if it is signed by its own root threshold. Its
    /// expiry is checked at the end of the root update, not here.
    ///
    /// # Errors
    ///
    /// A malformed or under-signed root.
    pub fn from_root(root_bytes: &[u8]) -> Result<Self, VerifyError> {
        let root = parse::<Root>(root_bytes)?;
        root.check_signed_by(&root.signed, RoleName::Root)?;
        Ok(Self {
            root: root.signed,
            timestamp: None,
            snapshot: None,
            targets: None,
        })
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The trusted timestamp, if any.
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The trusted targets, if any.
    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref()
    }

    /// Trusts the next root (§5.3.4–5.3.9): signed by the thresholds of
    /// the trusted root and of itself, with the next version.
    ///
    /// # Errors
    ///
    /// Under-signed by either root, or not the next version.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), VerifyError> {
        let new = parse::<Root>(bytes)?;
        new.check_signed_by(&self.root, RoleName::Root)?;
        new.check_signed_by(&new.signed, RoleName::Root)?;
        let expected = self.root.version + 1;
        if new.signed.version != expected {
            return Err(VerifyError::UnexpectedRootVersion {
                found: new.signed.version,
                expected,
            });
        }
        // §5.3.11, fast-forward recovery: versions signed by rotated keys
        // are no reference for rollback checks any more.
        let rotated = |role| self.root.roles.get(role) != new.signed.roles.get(role);
        if rotated(RoleName::Timestamp) || rotated(RoleName::Snapshot) {
            self.timestamp = None;
            self.snapshot = None;
            self.targets = None;
        }
        self.root = new.signed;
        Ok(())
    }

    /// Ends the root update (§5.3.10): the final root must not have expired.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Expired`].
    pub fn check_root_expiry(&self, now: SystemTime) -> Result<(), VerifyError> {
        check_expiry(&self.root, now)
    }

    /// Trusts a new timestamp (§5.4).
    ///
    /// # Errors
    ///
    /// Under-signed, older than the trusted one or listing an older
    /// snapshot (rollback), or expired (freeze).
    pub fn update_timestamp(&mut self, bytes: &[u8], now: SystemTime) -> Result<(), VerifyError> {
        let new = parse::<Timestamp>(bytes)?;
        new.check_signed_by(&self.root, RoleName::Timestamp)?;
        let new_snapshot = snapshot_meta(&new.signed)?;
        if let Some(trusted) = &self.timestamp {
            if new.signed.version < trusted.version {
                return Err(VerifyError::Rollback {
                    role: RoleName::Timestamp,
                    found: new.signed.version,
                    trusted: trusted.version,
                });
            }
            let trusted_snapshot = snapshot_meta(trusted)?;
            if new_snapshot.version < trusted_snapshot.version {
                return Err(VerifyError::Rollback {
                    role: RoleName::Snapshot,
                    found: new_snapshot.version,
                    trusted: trusted_snapshot.version,
                });
            }
        }
        check_expiry(&new.signed, now)?;
        self.timestamp = Some(new.signed);
        Ok(())
    }

    /// The snapshot file to fetch next and the most bytes to read of it.
    ///
    /// # Errors
    ///
    /// No timestamp trusted yet.
    pub fn snapshot_request(&self) -> Result<(String, u64), VerifyError> {
        let timestamp = self.timestamp.as_ref().ok_or(VerifyError::OutOfOrder {
            role: RoleName::Snapshot,
            needs: RoleName::Timestamp,
        })?;
        let meta = snapshot_meta(timestamp)?;
        Ok((
            self.versioned(meta.version, SNAPSHOT_JSON),
            meta.length.unwrap_or(SNAPSHOT_MAX_LENGTH),
        ))
    }

    /// Trusts a new snapshot (§5.5).
    ///
    /// # Errors
    ///
    /// Not the length, hash or version the timestamp lists (mix-and-match),
    /// under-signed, dropping or rolling back a targets file, or expired.
    pub fn update_snapshot(&mut self, bytes: &[u8], now: SystemTime) -> Result<(), VerifyError> {
        let timestamp = self.timestamp.as_ref().ok_or(VerifyError::OutOfOrder {
            role: RoleName::Snapshot,
            needs: RoleName::Timestamp,
        })?;
        let listed = snapshot_meta(timestamp)?;
        check_meta_file(bytes, listed, RoleName::Snapshot, RoleName::Timestamp)?;
        let new = parse::<Snapshot>(bytes)?;
        new.check_signed_by(&self.root, RoleName::Snapshot)?;
        if new.signed.version != listed.version {
            return Err(VerifyError::VersionMismatch {
                role: RoleName::Snapshot,
                found: new.signed.version,
                expected: listed.version,
                listed_by: RoleName::Timestamp,
            });
        }
        if let Some(trusted) = &self.snapshot {
            if new.signed.version < trusted.version {
                return Err(VerifyError::Rollback {
                    role: RoleName::Snapshot,
                    found: new.signed.version,
                    trusted: trusted.version,
                });
            }
            for (file, old) in &trusted.meta {
                let Some(now_listed) = new.signed.meta.get(file) else {
                    return Err(VerifyError::MetaFileDropped { file: file.clone() });
                };
                if now_listed.version < old.version {
                    return Err(VerifyError::Rollback {
                        role: RoleName::Targets,
                        found: now_listed.version,
                        trusted: old.version,
                    });
                }
            }
        }
        check_expiry(&new.signed, now)?;
        self.snapshot = Some(new.signed);
        // Targets are trusted only as listed by the trusted snapshot.
        self.targets = None;
        Ok(())
    }

    /// The targets file to fetch next and the most bytes to read of it.
    ///
    /// # Errors
    ///
    /// No snapshot trusted yet, or it lists no `targets.json`.
    pub fn targets_request(&self) -> Result<(String, u64), VerifyError> {
        let meta = self.targets_meta()?;
        Ok((
            self.versioned(meta.version, TARGETS_JSON),
            meta.length.unwrap_or(TARGETS_MAX_LENGTH),
        ))
    }

    /// Trusts new targets (§5.6).
    ///
    /// # Errors
    ///
    /// Not the length, hash or version the snapshot lists (mix-and-match),
    /// under-signed, or expired.
    pub fn update_targets(&mut self, bytes: &[u8], now: SystemTime) -> Result<(), VerifyError> {
        let listed = self.targets_meta()?;
        check_meta_file(bytes, listed, RoleName::Targets, RoleName::Snapshot)?;
        let new = parse::<Targets>(bytes)?;
        new.check_signed_by(&self.root, RoleName::Targets)?;
        if new.signed.version != listed.version {
            return Err(VerifyError::VersionMismatch {
                role: RoleName::Targets,
                found: new.signed.version,
                expected: listed.version,
                listed_by: RoleName::Snapshot,
            });
        }
        check_expiry(&new.signed, now)?;
        self.targets = Some(new.signed);
        Ok(())
    }

    /// Runs the whole update (§5.2–5.6) against `source`, with `now` as the
    /// time of the update cycle.
    ///
    /// # Errors
    ///
    /// The first refusal; what was trusted before it stays trusted.
    pub fn refresh(&mut self, source: &impl MetadataSource, now: SystemTime) -> Result<(), VerifyError> {
        for _ in 0..MAX_ROOT_ROTATIONS {
            let file = format!("{}.root.json", self.root.version + 1);
            match source.fetch(&file, ROOT_MAX_LENGTH) {
                Ok(bytes) => self.update_root(&bytes)?,
                Err(FetchError::NotFound) => break,
                Err(source) => return Err(VerifyError::Fetch { file, source }),
            }
        }
        self.check_root_expiry(now)?;
        let bytes = fetch(source, "timestamp.json".to_owned(), TIMESTAMP_MAX_LENGTH)?;
        self.update_timestamp(&bytes, now)?;
        let (file, limit) = self.snapshot_request()?;
        self.update_snapshot(&fetch(source, file, limit)?, now)?;
        let (file, limit) = self.targets_request()?;
        self.update_targets(&fetch(source, file, limit)?, now)?;
        Ok(())
    }

    /// The signed facts about target `path` (§5.7).
    ///
    /// # Errors
    ///
    /// No targets trusted yet, or the path is not among them.
    pub fn target(&self, path: &str) -> Result<TargetInfo, VerifyError> {
        let targets = self.targets.as_ref().ok_or(VerifyError::OutOfOrder {
            role: RoleName::Targets,
            needs: RoleName::Snapshot,
        })?;
        let file = targets
            .targets
            .get(path)
            .ok_or_else(|| VerifyError::UnknownTarget { path: path.to_owned() })?;
        let url_path = if self.root.consistent_snapshot {
            hash_prefixed(path, &file.hashes.sha256)
        } else {
            path.to_owned()
        };
        Ok(TargetInfo {
            path: path.to_owned(),
            url_path,
            file: file.clone(),
        })
    }

    fn targets_meta(&self) -> Result<&MetaFile, VerifyError> {
        let snapshot = self.snapshot.as_ref().ok_or(VerifyError::OutOfOrder {
            role: RoleName::Targets,
            needs: RoleName::Snapshot,
        })?;
        snapshot.meta.get(TARGETS_JSON).ok_or(VerifyError::MissingMeta {
            role: RoleName::Snapshot,
            file: TARGETS_JSON,
        })
    }

    /// `N.name` under consistent snapshots, `name` otherwise.
    fn versioned(&self, version: u64, name: &str) -> String {
        if self.root.consistent_snapshot {
            format!("{version}.{name}")
        } else {
            name.to_owned()
        }
    }
}

fn snapshot_meta(timestamp: &Timestamp) -> Result<&MetaFile, VerifyError> {
    timestamp.meta.get(SNAPSHOT_JSON).ok_or(VerifyError::MissingMeta {
        role: RoleName::Timestamp,
        file: SNAPSHOT_JSON,
    })
}

fn fetch(source: &impl MetadataSource, file: String, limit: u64) -> Result<Vec<u8>, VerifyError> {
    source
        .fetch(&file, limit)
        .map_err(|source| VerifyError::Fetch { file, source })
}

/// `dir/HASH.name` for target `dir/name`: where consistent snapshots keep
/// a target file, so a file is never replaced while clients read it.
pub fn hash_prefixed(path: &str, sha256: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{sha256}.{name}"),
        None => format!("{sha256}.{path}"),
    }
}

/// A target's signed length, hash and custom data, and the check of its
/// bytes.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    path: String,
    url_path: String,
    file: TargetFile,
}

impl TargetInfo {
    /// The target's path in targets metadata.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where to download it, relative to the targets base URL.
    pub fn url_path(&self) -> &str {
        &self.url_path
    }

    /// The signed length: a downloader reads no more than this (endless
    /// data), and fewer is a mismatch.
    pub fn length(&self) -> u64 {
        self.file.length
    }

    /// The signed hex SHA-256.
    pub fn sha256(&self) -> &str {
        &self.file.hashes.sha256
    }

    /// Our per-target data (the module manifest's digest and signatures).
    pub fn custom(&self) -> Option<&serde_json::Value> {
        self.file.custom.as_ref()
    }

    /// A streaming check for a download of this target.
    pub fn checker(&self) -> TargetChecker {
        TargetChecker {
            info: self.clone(),
            hasher: Sha256::new(),
            received: 0,
        }
    }

    /// Checks a whole downloaded file against the signed length and hash.
    ///
    /// # Errors
    ///
    /// [`VerifyError::TargetMismatch`]: an arbitrary package.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), VerifyError> {
        let mut checker = self.checker();
        checker.update(bytes)?;
        checker.finish()
    }

    fn mismatch(&self, what: &'static str, found: String, expected: String) -> VerifyError {
        VerifyError::TargetMismatch {
            path: self.path.clone(),
            what,
            found,
            expected,
        }
    }
}

/// Checks a target's bytes as they arrive: refuses the chunk that goes past
/// the signed length, then the hash at the end.
#[derive(Debug, Clone)]
pub struct TargetChecker {
    info: TargetInfo,
    hasher: Sha256,
    received: u64,
}

impl TargetChecker {
    /// Takes the next chunk of the download.
    ///
    /// # Errors
    ///
    /// [`VerifyError::TargetMismatch`] on `length` once the bytes go past the
    /// signed length; stop downloading then.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), VerifyError> {
        self.received = self.received.saturating_add(chunk.len() as u64);
        if self.received > self.info.length() {
            return Err(self.info.mismatch(
                "length",
                format!("more than {}", self.info.length()),
                self.info.length().to_string(),
            ));
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// How many more bytes the signed length allows.
    pub fn remaining(&self) -> u64 {
        self.info.length().saturating_sub(self.received)
    }

    /// Ends the download: the length and the hash must be the signed ones.
    ///
    /// # Errors
    ///
    /// [`VerifyError::TargetMismatch`] on `length` or `sha256`.
    pub fn finish(self) -> Result<(), VerifyError> {
        if self.received != self.info.length() {
            return Err(self
                .info
                .mismatch("length", self.received.to_string(), self.info.length().to_string()));
        }
        let sha256 = self.hasher.finalize().to_lower_hex_string();
        if sha256 != self.info.sha256().to_ascii_lowercase() {
            return Err(self.info.mismatch("sha256", sha256, self.info.sha256().to_owned()));
        }
        Ok(())
    }
}
