//! A repository written by our writer in a temp dir, and a client for it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use blvm_registry::tuf::metadata::Metadata;
use blvm_registry::tuf::{
    DirectorySource, Lifetimes, RepositoryKeys, RepositoryWriter, Signed, SigningKey, TrustedMetadata,
};
use serde::de::DeserializeOwned;

/// The time the repositories are written at (2027-01-15).
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// `hours` hours after `now()`.
pub fn hours_later(hours: u64) -> SystemTime {
    now() + Duration::from_secs(hours * 60 * 60)
}

/// The target every repository holds.
pub const TARGET: &str = "block-stats/0.1.0/block-stats";
/// Its bytes.
pub const TARGET_BYTES: &[u8] = b"\x7fELF pretend module binary";

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("blvm-registry-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir created");
    dir
}

/// A repository with [`TARGET`] committed, and the root a client ships.
pub struct Repo {
    pub writer: RepositoryWriter,
    pub trusted_root: Vec<u8>,
}

impl Repo {
    /// A repository in a fresh temp dir with one key per role.
    pub fn new(name: &str) -> Self {
        Self::with_keys(name, RepositoryKeys::generate().expect("keys generated"))
    }

    /// A repository with `keys`.
    pub fn with_keys(name: &str, keys: RepositoryKeys) -> Self {
        let mut writer =
            RepositoryWriter::create(temp_dir(name), keys, Lifetimes::default(), now()).expect("repository created");
        writer
            .add_target(
                TARGET,
                TARGET_BYTES,
                Some(serde_json::json!({"manifest_sha256": "00".repeat(32)})),
            )
            .expect("target added");
        writer.commit(now()).expect("first commit");
        let trusted_root = writer.root_bytes();
        Self { writer, trusted_root }
    }

    /// A client that ships this repository's first root.
    pub fn client(&self) -> TrustedMetadata {
        TrustedMetadata::from_root(&self.trusted_root).expect("the shipped root verifies")
    }

    /// The repository's metadata, as a client fetches it.
    pub fn source(&self) -> DirectorySource {
        DirectorySource::new(self.writer.metadata_dir())
    }

    /// `metadata/<file>`.
    pub fn metadata(&self, file: &str) -> PathBuf {
        self.writer.metadata_dir().join(file)
    }

    /// The parsed `metadata/<file>`.
    pub fn read<T: DeserializeOwned>(&self, file: &str) -> Signed<T> {
        read(&self.metadata(file))
    }

    /// Signs `signed` with `keys` and writes it as `metadata/<file>`;
    /// returns the bytes.
    pub fn forge<T: Metadata>(&self, file: &str, signed: T, keys: &[&SigningKey]) -> Vec<u8> {
        let bytes = Signed::sign(signed, keys).expect("forged metadata signs").to_bytes();
        std::fs::write(self.metadata(file), &bytes).expect("forged metadata written");
        bytes
    }
}

/// The parsed metadata file at `path`.
pub fn read<T: DeserializeOwned>(path: &Path) -> Signed<T> {
    serde_json::from_slice(&std::fs::read(path).expect("metadata file read")).expect("metadata file parses")
}
