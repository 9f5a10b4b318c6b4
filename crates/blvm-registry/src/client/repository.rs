//! Where a client's metadata and target files come from: a registry over
//! HTTP (`client::http`) or a directory on disk, such as a registry's own
//! data directory copied onto a machine with no network (an offline
//! bundle).
//!
//! Both lay files out alike: `metadata/<file>` and `targets/<url path>`,
//! where the URL path is [`TargetInfo::url_path`] (hash-prefixed under
//! consistent snapshots). A server serves the same two trees at
//! `/metadata/` and `/targets/`.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::tuf::{DirectorySource, FetchError, MetadataSource, TargetInfo, VerifyError};

/// A TUF repository a client can refresh metadata from and download
/// targets from.
pub trait Repository: MetadataSource {
    /// The bytes of target `info`, checked against its signed length and
    /// hash as they arrive: reading stops at the signed length (the
    /// endless-data attack), and bytes that do not hash to the signed
    /// hash are never returned (an arbitrary package).
    ///
    /// # Errors
    ///
    /// [`VerifyError::TargetMismatch`] for bytes that are not the signed
    /// ones, [`VerifyError::Fetch`] for a download that failed.
    fn fetch_target(&self, info: &TargetInfo) -> Result<Vec<u8>, VerifyError>;

    /// Where the files come from, for messages (`http://…`, a path).
    fn describe(&self) -> String;
}

/// Reads `reader` through `info`'s checker: at most the signed length plus
/// one byte (to tell "exactly" from "more"), then the hash. For
/// repositories whose targets arrive as one [`Read`].
///
/// # Errors
///
/// As [`Repository::fetch_target`].
pub fn read_verified(info: &TargetInfo, reader: impl Read) -> Result<Vec<u8>, VerifyError> {
    let fetch_error = |source| VerifyError::Fetch {
        file: info.url_path().to_owned(),
        source,
    };
    let mut checker = info.checker();
    let mut bytes = Vec::with_capacity(usize::try_from(info.length()).unwrap_or(0).min(64 << 20));
    let mut limited = reader.take(info.length().saturating_add(1));
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let read = limited.read(&mut chunk).map_err(|e| fetch_error(FetchError::Io(e)))?;
        if read == 0 {
            break;
        }
        checker.update(&chunk[..read])?;
        bytes.extend_from_slice(&chunk[..read]);
    }
    checker.finish()?;
    Ok(bytes)
}

/// A repository in a local directory: `dir/metadata/` and `dir/targets/`.
#[derive(Debug, Clone)]
pub struct DirectoryRepository {
    dir: PathBuf,
    metadata: DirectorySource,
}

impl DirectoryRepository {
    /// The repository under `dir` (a registry's repository directory or an
    /// offline bundle of it).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let metadata = DirectorySource::new(dir.join("metadata"));
        Self { dir, metadata }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl MetadataSource for DirectoryRepository {
    fn fetch(&self, file: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.metadata.fetch(file, limit)
    }
}

impl Repository for DirectoryRepository {
    fn fetch_target(&self, info: &TargetInfo) -> Result<Vec<u8>, VerifyError> {
        // The URL path is the repository's spelling: refuse any component
        // that would leave `targets/`.
        let url_path = info.url_path();
        let escapes = url_path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
        let fetch_error = |source| VerifyError::Fetch {
            file: url_path.to_owned(),
            source,
        };
        if escapes {
            return Err(fetch_error(FetchError::NotFound));
        }
        let file = match std::fs::File::open(self.dir.join("targets").join(url_path)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(fetch_error(FetchError::NotFound)),
            Err(e) => return Err(fetch_error(FetchError::Io(e))),
        };
        read_verified(info, file)
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}
