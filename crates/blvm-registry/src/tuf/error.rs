//! Why a verifier refused metadata or a target.
//!
//! Each variant names the attack of the TUF spec it stops, where there is
//! one, so a log line says what happened and not only what mismatched.

use super::metadata::{Expires, RoleName};

/// The verifier refused a metadata file or a target file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The file is not the JSON of a signed envelope of this role.
    #[error("{role} metadata is malformed: {source}")]
    Malformed {
        /// The role of the file.
        role: RoleName,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// `_type` names another role.
    #[error("{role} metadata has _type {found:?}")]
    WrongType {
        /// The role expected.
        role: RoleName,
        /// The `_type` found.
        found: String,
    },
    /// The spec version's major number is not 1.
    #[error("{role} metadata has unsupported spec_version {found:?}")]
    UnsupportedSpecVersion {
        /// The role of the file.
        role: RoleName,
        /// The `spec_version` found.
        found: String,
    },
    /// Fewer distinct trusted keys signed than the threshold: a
    /// compromise of fewer keys than the threshold, a rotated-out key, or
    /// an untrusted key.
    #[error("key compromise: {role} metadata has valid signatures from {valid} trusted key(s), its threshold is {threshold}")]
    BelowThreshold {
        /// The role whose keys counted.
        role: RoleName,
        /// The distinct trusted keys whose signature verified.
        valid: usize,
        /// The threshold needed.
        threshold: u64,
    },
    /// A metadata file's version is lower than the trusted one.
    #[error("rollback attack: {role} version {found} is older than the trusted version {trusted}")]
    Rollback {
        /// The role.
        role: RoleName,
        /// The version offered.
        found: u64,
        /// The version trusted.
        trusted: u64,
    },
    /// A file's version is not the one the metadata above it lists.
    #[error("mix-and-match attack: {role} version {found} is not the version {expected} that {listed_by} lists")]
    VersionMismatch {
        /// The role of the file.
        role: RoleName,
        /// The version in the file.
        found: u64,
        /// The version listed.
        expected: u64,
        /// The role whose metadata lists it.
        listed_by: RoleName,
    },
    /// A metadata file has expired.
    #[error("freeze attack: {role} metadata expired at {expires}")]
    Expired {
        /// The role.
        role: RoleName,
        /// Its expiry.
        expires: Expires,
    },
    /// A metadata file's hash or length is not what the metadata above it
    /// lists: a file of another time (mix-and-match) or tampered.
    #[error("mix-and-match attack: {role} metadata does not match the {what} that {listed_by} lists")]
    MetaFileMismatch {
        /// The role of the file.
        role: RoleName,
        /// `"length"` or `"sha256"`.
        what: &'static str,
        /// The role whose metadata lists it.
        listed_by: RoleName,
    },
    /// A new snapshot drops a targets file the trusted snapshot listed.
    #[error("rollback attack: snapshot no longer lists {file}")]
    MetaFileDropped {
        /// The file name.
        file: String,
    },
    /// A new root's version is not the trusted root's plus one.
    #[error("root version {found} is not the next version {expected}")]
    UnexpectedRootVersion {
        /// The version in the file.
        found: u64,
        /// The trusted version plus one.
        expected: u64,
    },
    /// Metadata does not list a file it must list.
    #[error("{role} metadata does not list {file}")]
    MissingMeta {
        /// The role whose metadata lacks it.
        role: RoleName,
        /// The file name.
        file: &'static str,
    },
    /// A step ran before the one it depends on (a caller's bug).
    #[error("{role} metadata cannot be checked before {needs}")]
    OutOfOrder {
        /// The role that was offered.
        role: RoleName,
        /// The role that must come first.
        needs: RoleName,
    },
    /// The signed targets do not list this path.
    #[error("target {path:?} is not in the signed targets")]
    UnknownTarget {
        /// The path asked for.
        path: String,
    },
    /// A target file is not the one signed: arbitrary package attack.
    #[error("arbitrary package attack: target {path:?} has {what} {found}, the signed {what} is {expected}")]
    TargetMismatch {
        /// The target's path.
        path: String,
        /// `"length"` or `"sha256"`.
        what: &'static str,
        /// What the file has.
        found: String,
        /// What targets metadata signed.
        expected: String,
    },
    /// The source could not provide a file.
    #[error("cannot fetch {file}: {source}")]
    Fetch {
        /// The file name.
        file: String,
        /// Why.
        source: FetchError,
    },
}

impl VerifyError {
    /// Whether the refusal means the repository (or someone between it and
    /// us) served something other than what its keys signed, as opposed to
    /// a file that could not be fetched or a caller's mistake.
    pub fn is_attack(&self) -> bool {
        !matches!(
            self,
            Self::Fetch { .. } | Self::OutOfOrder { .. } | Self::UnknownTarget { .. }
        )
    }
}

/// A [`super::source::MetadataSource`] could not provide a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The repository has no such file.
    #[error("not found")]
    NotFound,
    /// The file is longer than the length allowed for it: endless data.
    #[error("longer than the {limit} bytes allowed")]
    TooLong {
        /// The limit in bytes.
        limit: u64,
    },
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The server answered with an HTTP status other than success or 404.
    #[error("the server answered HTTP {status}")]
    Http {
        /// The status code.
        status: u16,
    },
    /// The transfer ran below the minimum rate: the slow-retrieval attack
    /// (or a link too slow to finish in reasonable time).
    #[error("slow retrieval: {rate} bytes/s is below the minimum of {min} bytes/s")]
    TooSlow {
        /// The rate measured over the last window, in bytes per second.
        rate: u64,
        /// The minimum rate, in bytes per second.
        min: u64,
    },
    /// No byte arrived for the read timeout.
    #[error("stalled: no byte for {}", humantime::format_duration(*after))]
    Stalled {
        /// The read timeout.
        after: std::time::Duration,
    },
    /// The transfer ended before the signed length, after every retry.
    #[error("interrupted at byte {received} of {expected}: {reason}")]
    Interrupted {
        /// The bytes received (and kept, checked so far).
        received: u64,
        /// The bytes expected.
        expected: u64,
        /// Why the last attempt ended.
        reason: String,
    },
    /// A resume from byte `offset` was answered with another range.
    #[error("a resume from byte {offset} was answered with Content-Range {content_range:?}")]
    BadRange {
        /// The offset asked for.
        offset: u64,
        /// The `Content-Range` received.
        content_range: String,
    },
}

/// The repository writer could not write or sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key could not be generated.
    #[error("cannot generate a key: {0}")]
    Key(std::io::Error),
    /// The metadata has no canonical form (a float in `custom`).
    #[error("metadata has no canonical JSON form: {0}")]
    Canonical(#[from] serde_json::Error),
    /// No such target to remove.
    #[error("target {path:?} is not in the repository")]
    UnknownTarget {
        /// The path.
        path: String,
    },
    /// A file of the repository being opened cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A metadata file of the repository being opened does not parse.
    #[error("{path} is not valid metadata: {source}")]
    Malformed {
        /// The file.
        path: std::path::PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// The keys given for a role are not the ones the root lists: what
    /// they signed would be refused by every client.
    #[error("the {role} keys given are not the ones root version {root_version} lists")]
    KeysMismatch {
        /// The role.
        role: super::metadata::RoleName,
        /// The repository's root version.
        root_version: u64,
    },
}
