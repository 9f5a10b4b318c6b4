//! The client's side: the spec's detailed client workflow (§5).
//!
//! [`TrustedMetadata`] is the workflow without I/O: it is handed each
//! file's bytes in order and either trusts them or refuses with a
//! [`VerifyError`]. [`TrustedMetadata::refresh`] drives it from a
//! [`MetadataSource`], in the spec's order:
//!
//! 1. root: fetch `N+1.root.json` until there is none, each new root
//!    signed by the threshold of the trusted root's root keys *and* of its
//!    own, with the next version; then the final root must not have
//!    expired. If a new root changed the timestamp or snapshot keys, the
//!    trusted timestamp and snapshot are forgotten (fast-forward recovery:
//!    whoever held the old keys may have pushed their versions up).
//! 2. timestamp: signed by the timestamp threshold, not older than the
//!    trusted one, nor listing an older snapshot; not expired.
//! 3. snapshot: the length and hash the timestamp lists, the version it
//!    lists, signed; no targets file dropped or rolled back; not expired.
//! 4. targets: the length, hash and version the snapshot lists, signed,
//!    not expired.
//!
//! Then [`TrustedMetadata::target`] gives a target's signed length (where
//! a download stops) and checks the downloaded bytes.
//!
//! A refusal leaves what was trusted as it was, with one exception taken
//! from python-tuf: a timestamp or snapshot that passed every check but
//! its expiry is kept, refused for use (the next step checks its expiry
//! again) but still the reference for rollback checks. Otherwise a client
//! that was offline until its metadata expired would accept any older
//! metadata signed with a longer lifetime. For the same reason a client
//! stores the bytes of what it trusts ([`TrustedMetadata::root_bytes`] and
//! the others) and starts from them with [`TrustedMetadata::from_stored`].

use std::collections::HashSet;
use std::time::SystemTime;

use hex_conservative::DisplayHex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::canonical::to_canonical;
use super::error::{FetchError, VerifyError};
use super::keys::Signature;
use super::metadata::{MetaFile, Metadata, RoleName, Root, Snapshot, Targets, Timestamp};
use super::source::{MetadataSource, ROOT_MAX_LENGTH, SNAPSHOT_MAX_LENGTH, TARGETS_MAX_LENGTH, TIMESTAMP_MAX_LENGTH};
use super::target::TargetInfo;

/// How many new roots one refresh follows (python-tuf's default).
pub const MAX_ROOT_ROTATIONS: u64 = 32;

const SNAPSHOT_JSON: &str = "snapshot.json";
const TARGETS_JSON: &str = "targets.json";

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
    /// Each key counts once, however many signatures it made or key ids it
    /// is listed under, and a key id the role does not list counts for
    /// nothing.
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
                signers.insert(key.keyval.public.to_ascii_lowercase());
            }
        }
        // A threshold of 0 would trust unsigned files: count it as 1.
        if (signers.len() as u64) < role_keys.threshold.max(1) {
            return Err(VerifyError::BelowThreshold {
                role: T::ROLE,
                valid: signers.len(),
                threshold: role_keys.threshold,
            });
        }
        Ok(())
    }

    fn trusted(self, bytes: &[u8]) -> Trusted<T> {
        Trusted {
            signed: self.signed,
            bytes: bytes.to_vec(),
        }
    }
}

/// A verified file: its contents, and its bytes for the client to store.
#[derive(Debug, Clone)]
struct Trusted<T> {
    signed: T,
    bytes: Vec<u8>,
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

/// What a client trusts: a root, and the timestamp, snapshot and targets
/// verified under it.
#[derive(Debug, Clone)]
pub struct TrustedMetadata {
    root: Trusted<Root>,
    timestamp: Option<Trusted<Timestamp>>,
    snapshot: Option<Trusted<Snapshot>>,
    targets: Option<Trusted<Targets>>,
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
            root: root.trusted(root_bytes),
            timestamp: None,
            snapshot: None,
            targets: None,
        })
    }

    /// Starts from what the client stored after its last update: the root,
    /// and the timestamp and snapshot as references for rollback checks.
    /// A stored timestamp or snapshot that no longer verifies under the
    /// root (its keys rotated) is left out, as python-tuf does; an expired
    /// one is kept (see the module doc).
    ///
    /// # Errors
    ///
    /// A malformed or under-signed root.
    pub fn from_stored(
        root: &[u8],
        timestamp: Option<&[u8]>,
        snapshot: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<Self, VerifyError> {
        let mut trusted = Self::from_root(root)?;
        if let Some(bytes) = timestamp {
            let _ = trusted.update_timestamp(bytes, now);
        }
        if let (Some(bytes), Some(_)) = (snapshot, &trusted.timestamp) {
            // The timestamp may list a newer snapshot than the one stored:
            // only the version and signature count for a stored file.
            let _ = trusted.accept_snapshot(bytes, now, false);
        }
        Ok(trusted)
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root.signed
    }

    /// The trusted root's bytes, for the client to store.
    pub fn root_bytes(&self) -> &[u8] {
        &self.root.bytes
    }

    /// The trusted timestamp, if any.
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref().map(|t| &t.signed)
    }

    /// The trusted timestamp's bytes, for the client to store.
    pub fn timestamp_bytes(&self) -> Option<&[u8]> {
        self.timestamp.as_ref().map(|t| t.bytes.as_slice())
    }

    /// The trusted snapshot, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().map(|t| &t.signed)
    }

    /// The trusted snapshot's bytes, for the client to store.
    pub fn snapshot_bytes(&self) -> Option<&[u8]> {
        self.snapshot.as_ref().map(|t| t.bytes.as_slice())
    }

    /// The trusted targets, if any.
    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref().map(|t| &t.signed)
    }

    /// Trusts the next root (§5.3.4–5.3.9): signed by the thresholds of
    /// the trusted root and of itself, with the next version.
    ///
    /// # Errors
    ///
    /// Under-signed by either root, or not the next version.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), VerifyError> {
        let new = parse::<Root>(bytes)?;
        let trusted = &self.root.signed;
        new.check_signed_by(trusted, RoleName::Root)?;
        new.check_signed_by(&new.signed, RoleName::Root)?;
        let expected = trusted.version + 1;
        if new.signed.version != expected {
            return Err(VerifyError::UnexpectedRootVersion {
                found: new.signed.version,
                expected,
            });
        }
        // §5.3.11, fast-forward recovery: versions signed by rotated keys
        // are no reference for rollback checks any more.
        let rotated = |role| trusted.roles.get(role) != new.signed.roles.get(role);
        if rotated(RoleName::Timestamp) || rotated(RoleName::Snapshot) {
            self.timestamp = None;
            self.snapshot = None;
            self.targets = None;
        }
        self.root = new.trusted(bytes);
        Ok(())
    }

    /// Ends the root update (§5.3.10): the final root must not have expired.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Expired`].
    pub fn check_root_expiry(&self, now: SystemTime) -> Result<(), VerifyError> {
        check_expiry(&self.root.signed, now)
    }

    /// Trusts a new timestamp (§5.4).
    ///
    /// # Errors
    ///
    /// Under-signed, older than the trusted one or listing an older
    /// snapshot (rollback), or expired (freeze; it is kept as the rollback
    /// reference all the same).
    pub fn update_timestamp(&mut self, bytes: &[u8], now: SystemTime) -> Result<(), VerifyError> {
        let new = parse::<Timestamp>(bytes)?;
        new.check_signed_by(&self.root.signed, RoleName::Timestamp)?;
        let new_snapshot = snapshot_meta(&new.signed)?;
        if let Some(Trusted { signed: trusted, .. }) = &self.timestamp {
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
        let new = new.trusted(bytes);
        let expired = check_expiry(&new.signed, now);
        self.timestamp = Some(new);
        expired
    }

    /// The snapshot file to fetch next and the most bytes to read of it.
    ///
    /// # Errors
    ///
    /// No timestamp trusted yet.
    pub fn snapshot_request(&self) -> Result<(String, u64), VerifyError> {
        let meta = snapshot_meta(self.trusted_timestamp()?)?;
        Ok((
            self.versioned(meta.version, SNAPSHOT_JSON),
            meta.length.unwrap_or(SNAPSHOT_MAX_LENGTH),
        ))
    }

    /// Trusts a new snapshot (§5.5).
    ///
    /// # Errors
    ///
    /// The trusted timestamp expired; not the length, hash or version the
    /// timestamp lists (mix-and-match); under-signed; dropping or rolling
    /// back a targets file; or expired (kept as the rollback reference).
    pub fn update_snapshot(&mut self, bytes: &[u8], now: SystemTime) -> Result<(), VerifyError> {
        check_expiry(self.trusted_timestamp()?, now)?;
        self.accept_snapshot(bytes, now, true)
    }

    fn accept_snapshot(&mut self, bytes: &[u8], now: SystemTime, check_listed: bool) -> Result<(), VerifyError> {
        let listed = snapshot_meta(self.trusted_timestamp()?)?;
        if check_listed {
            check_meta_file(bytes, listed, RoleName::Snapshot, RoleName::Timestamp)?;
        }
        let new = parse::<Snapshot>(bytes)?;
        new.check_signed_by(&self.root.signed, RoleName::Snapshot)?;
        if check_listed && new.signed.version != listed.version {
            return Err(VerifyError::VersionMismatch {
                role: RoleName::Snapshot,
                found: new.signed.version,
                expected: listed.version,
                listed_by: RoleName::Timestamp,
            });
        }
        if let Some(Trusted { signed: trusted, .. }) = &self.snapshot {
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
        let new = new.trusted(bytes);
        let expired = check_expiry(&new.signed, now);
        self.snapshot = Some(new);
        // Targets are trusted only as listed by the trusted snapshot.
        self.targets = None;
        expired
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
    /// The trusted snapshot expired; not the length, hash or version the
    /// snapshot lists (mix-and-match); under-signed; or expired.
    pub fn update_targets(&mut self, bytes: &[u8], now: SystemTime) -> Result<(), VerifyError> {
        if let Some(snapshot) = &self.snapshot {
            check_expiry(&snapshot.signed, now)?;
        }
        let listed = self.targets_meta()?;
        check_meta_file(bytes, listed, RoleName::Targets, RoleName::Snapshot)?;
        let new = parse::<Targets>(bytes)?;
        new.check_signed_by(&self.root.signed, RoleName::Targets)?;
        if new.signed.version != listed.version {
            return Err(VerifyError::VersionMismatch {
                role: RoleName::Targets,
                found: new.signed.version,
                expected: listed.version,
                listed_by: RoleName::Snapshot,
            });
        }
        check_expiry(&new.signed, now)?;
        self.targets = Some(new.trusted(bytes));
        Ok(())
    }

    /// Runs the whole update (§5.2–5.6) against `source`, with `now` as the
    /// time of the update cycle.
    ///
    /// # Errors
    ///
    /// The first refusal.
    pub fn refresh(&mut self, source: &impl MetadataSource, now: SystemTime) -> Result<(), VerifyError> {
        for _ in 0..MAX_ROOT_ROTATIONS {
            let file = format!("{}.root.json", self.root.signed.version + 1);
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
            .signed
            .targets
            .get(path)
            .ok_or_else(|| VerifyError::UnknownTarget { path: path.to_owned() })?;
        Ok(TargetInfo::new(
            path,
            file.clone(),
            self.root.signed.consistent_snapshot,
        ))
    }

    fn trusted_timestamp(&self) -> Result<&Timestamp, VerifyError> {
        self.timestamp().ok_or(VerifyError::OutOfOrder {
            role: RoleName::Snapshot,
            needs: RoleName::Timestamp,
        })
    }

    fn targets_meta(&self) -> Result<&MetaFile, VerifyError> {
        let snapshot = self.snapshot().ok_or(VerifyError::OutOfOrder {
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
        if self.root.signed.consistent_snapshot {
            format!("{version}.{name}")
        } else {
            name.to_owned()
        }
    }
}
