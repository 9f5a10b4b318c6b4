//! What the client trusts between runs: the registry's root, timestamp and
//! snapshot, kept in a state directory (`<datadir>/registry/`).
//!
//! The first run starts from the operator's trusted root file (shipped
//! with the node or copied from the registry's operator). Every later run
//! starts from the root stored here, which may be newer (key rotations
//! followed), and from the stored timestamp and snapshot, which are what
//! TUF's rollback checks compare against: without them a server could
//! serve metadata older than what this node already saw.
//!
//! A refresh runs on a copy of the trusted metadata; only when it passes
//! are the new files written (each atomically, root first) and the copy
//! kept. A refresh that fails leaves the state directory and the state in
//! memory as they were. A crash between two of the writes leaves a newer
//! root with an older timestamp, which [`TrustedMetadata::from_stored`]
//! handles (a stored file that no longer verifies is left out).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::fsutil::{self, PathError};
use super::repository::Repository;
use crate::tuf::source::{ROOT_MAX_LENGTH, SNAPSHOT_MAX_LENGTH, TIMESTAMP_MAX_LENGTH};
use crate::tuf::{FetchError, MetadataSource, TrustedMetadata, VerifyError};

/// The stored root's file name in the state directory.
pub const ROOT_FILE: &str = "root.json";
/// The stored timestamp's file name.
pub const TIMESTAMP_FILE: &str = "timestamp.json";
/// The stored snapshot's file name.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

/// Why the trusted state could not be opened or refreshed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A state file could not be read or written.
    #[error(transparent)]
    Io(#[from] PathError),
    /// The trusted root (stored, or the operator's file) does not verify.
    #[error("trusted root {}: {source}", path.display())]
    Root {
        /// The root file.
        path: PathBuf,
        /// Why it was refused.
        #[source]
        source: VerifyError,
    },
    /// The repository's metadata was refused; nothing was stored.
    #[error("registry {repository}: {source}")]
    Refresh {
        /// The repository, as [`Repository::describe`] says.
        repository: String,
        /// The refusal, named by the attack it stops.
        #[source]
        source: VerifyError,
    },
}

/// The registry metadata this node trusts, and the directory it is kept in.
#[derive(Debug, Clone)]
pub struct TrustedState {
    dir: PathBuf,
    metadata: TrustedMetadata,
}

impl TrustedState {
    /// Opens the state in `dir` (created if missing): the stored root if
    /// there is one, else `bootstrap_root`, the operator's trusted root
    /// file; and the stored timestamp and snapshot as rollback references.
    ///
    /// # Errors
    ///
    /// A file that cannot be read, or a root that does not verify.
    pub fn open(dir: impl Into<PathBuf>, bootstrap_root: &Path, now: SystemTime) -> Result<Self, StateError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(fsutil::at(&dir))?;
        let read = |file: &str, limit| read_limited(&dir.join(file), limit);
        let (root, root_path) = match read(ROOT_FILE, ROOT_MAX_LENGTH)? {
            Some(bytes) => (bytes, dir.join(ROOT_FILE)),
            None => match read_limited(bootstrap_root, ROOT_MAX_LENGTH)? {
                Some(bytes) => (bytes, bootstrap_root.to_owned()),
                None => {
                    return Err(PathError {
                        path: bootstrap_root.to_owned(),
                        source: std::io::ErrorKind::NotFound.into(),
                    }
                    .into())
                }
            },
        };
        let timestamp = read(TIMESTAMP_FILE, TIMESTAMP_MAX_LENGTH)?;
        let snapshot = read(SNAPSHOT_FILE, SNAPSHOT_MAX_LENGTH)?;
        let metadata =
            TrustedMetadata::from_stored(&root, timestamp.as_deref(), snapshot.as_deref(), now).map_err(|source| {
                StateError::Root {
                    path: root_path,
                    source,
                }
            })?;
        Ok(Self { dir, metadata })
    }

    /// Refreshes from `repo` (the TUF client workflow) and, if every check
    /// passes, stores the new root, timestamp and snapshot.
    ///
    /// # Errors
    ///
    /// [`StateError::Refresh`] for refused metadata, [`StateError::Io`]
    /// when the new state cannot be stored; either way the state is as it
    /// was.
    pub fn refresh<R: Repository + ?Sized>(&mut self, repo: &R, now: SystemTime) -> Result<(), StateError> {
        let mut next = self.metadata.clone();
        next.refresh(&AsSource(repo), now)
            .map_err(|source| StateError::Refresh {
                repository: repo.describe(),
                source,
            })?;
        fsutil::write_atomically(&self.dir.join(ROOT_FILE), next.root_bytes())?;
        if let Some(bytes) = next.timestamp_bytes() {
            fsutil::write_atomically(&self.dir.join(TIMESTAMP_FILE), bytes)?;
        }
        if let Some(bytes) = next.snapshot_bytes() {
            fsutil::write_atomically(&self.dir.join(SNAPSHOT_FILE), bytes)?;
        }
        self.metadata = next;
        Ok(())
    }

    /// The trusted metadata (after [`Self::refresh`], its targets).
    pub fn metadata(&self) -> &TrustedMetadata {
        &self.metadata
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The bytes of `path`, `None` if there is no such file; refused past
/// `limit` bytes.
fn read_limited(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, PathError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fsutil::at(path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(fsutil::at(path))?;
    if bytes.len() as u64 > limit {
        return Err(fsutil::at(path)(std::io::Error::other(format!(
            "longer than the {limit} bytes allowed"
        ))));
    }
    Ok(Some(bytes))
}

/// A repository as a metadata source, for repositories used unsized
/// (`&dyn Repository`).
struct AsSource<'a, R: ?Sized>(&'a R);

impl<R: Repository + ?Sized> MetadataSource for AsSource<'_, R> {
    fn fetch(&self, file: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.0.fetch(file, limit)
    }
}
