//! Where a client's metadata files come from, and how much of each it reads.
//!
//! Every read is capped before it starts: a file longer than its limit is
//! refused without being read to its end (the endless-data attack on
//! metadata). Snapshot and targets files are capped at the length the
//! metadata above them signs, when it signs one.

use std::io::Read;
use std::path::PathBuf;

use super::error::FetchError;

/// The most bytes read of a root file.
pub const ROOT_MAX_LENGTH: u64 = 512 * 1024;
/// The most bytes read of `timestamp.json`.
pub const TIMESTAMP_MAX_LENGTH: u64 = 16 * 1024;
/// The most bytes read of a snapshot the timestamp gives no length for.
pub const SNAPSHOT_MAX_LENGTH: u64 = 2 * 1024 * 1024;
/// The most bytes read of a targets file the snapshot gives no length for.
pub const TARGETS_MAX_LENGTH: u64 = 8 * 1024 * 1024;

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
        let handle = match std::fs::File::open(self.dir.join(file)) {
            Ok(handle) => handle,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FetchError::NotFound),
            Err(e) => return Err(e.into()),
        };
        // One byte past the limit tells "exactly the limit" from "more".
        let mut bytes = Vec::new();
        handle.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(FetchError::TooLong { limit });
        }
        Ok(bytes)
    }
}
