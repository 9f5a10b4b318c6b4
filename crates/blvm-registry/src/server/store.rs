//! A registry directory and the one writer that changes it.
//!
//! ```text
//! DIR/registry.json    name claims: module name -> publisher keys
//! DIR/keys/            the TUF role keys (0700; files 0600)
//! DIR/repository/      the TUF repository: metadata/ and targets/
//! ```
//!
//! [`Registry`] owns the [`RepositoryWriter`] and the claims; the server
//! keeps it behind one mutex, so publishes and yanks are serialized.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::keys;
use crate::tuf::{Lifetimes, RepositoryKeys, RepositoryWriter, WriteError};

/// Why a registry directory could not be created, opened or changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file does not hold what the registry wrote there.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `init` was pointed at a directory that holds a registry.
    #[error("{0} already holds a registry")]
    Exists(PathBuf),
    /// The TUF writer failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl StoreError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn malformed(path: &Path, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Malformed {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// `registry.json`: who may publish each module name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    /// Module name → the publisher keys (compressed secp256k1, hex) that
    /// may publish and yank its versions.
    pub claims: BTreeMap<String, BTreeSet<String>>,
}

impl Claims {
    /// The keys that may act on `name`, if it is claimed.
    pub fn publishers(&self, name: &str) -> Option<&BTreeSet<String>> {
        self.claims.get(name)
    }
}

/// A registry directory, open for writing.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    writer: RepositoryWriter,
    claims: Claims,
    lifetimes: Lifetimes,
}

impl Registry {
    /// Creates a registry in `dir` (made if missing; refused if it holds a
    /// registry): fresh role keys, a repository with root version 1 and an
    /// empty first commit, so clients can refresh at once. Returns the path
    /// of the trusted root file operators copy to their nodes.
    ///
    /// # Errors
    ///
    /// [`StoreError::Exists`], or a file that cannot be written.
    pub fn init(dir: &Path, now: SystemTime) -> Result<PathBuf, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        for part in ["registry.json", "keys", "repository"] {
            if dir.join(part).exists() {
                return Err(StoreError::Exists(dir.to_owned()));
            }
        }
        let keys = RepositoryKeys::generate()?;
        keys::write(&dir.join("keys"), &keys)?;
        let lifetimes = Lifetimes::default();
        let mut writer = RepositoryWriter::create(dir.join("repository"), keys, lifetimes, now)?;
        writer.commit(now)?;
        // Written last: its presence says the registry is complete.
        write_claims(&dir.join("registry.json"), &Claims::default())?;
        Ok(writer.metadata_dir().join("1.root.json"))
    }

    /// Opens the registry in `dir`; metadata signed from now on uses
    /// `lifetimes`.
    ///
    /// # Errors
    ///
    /// A missing or unreadable part, or keys that are not the root's.
    pub fn open(dir: &Path, lifetimes: Lifetimes) -> Result<Registry, StoreError> {
        let claims_path = dir.join("registry.json");
        let bytes = std::fs::read(&claims_path).map_err(StoreError::io(&claims_path))?;
        let claims: Claims = serde_json::from_slice(&bytes).map_err(|e| StoreError::malformed(&claims_path, e))?;
        let keys = keys::read(&dir.join("keys"))?;
        let writer = RepositoryWriter::open(dir.join("repository"), keys, lifetimes)?;
        Ok(Registry {
            dir: dir.to_owned(),
            writer,
            claims,
            lifetimes,
        })
    }

    /// The TUF repository directory (`metadata/` and `targets/`).
    pub fn repository_dir(&self) -> &Path {
        self.writer.dir()
    }

    /// The name claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The writer, to add targets before [`Self::commit`].
    pub(crate) fn writer(&mut self) -> &mut RepositoryWriter {
        &mut self.writer
    }

    /// Claims `name` for `key` and saves the claims; returns whether the
    /// claim is new (so a failed publish can [`Self::unclaim`] it).
    pub(crate) fn claim(&mut self, name: &str, key: &str) -> Result<bool, StoreError> {
        let is_new = self
            .claims
            .claims
            .entry(name.to_owned())
            .or_default()
            .insert(key.to_owned());
        if is_new {
            if let Err(e) = write_claims(&self.dir.join("registry.json"), &self.claims) {
                self.remove_claim(name, key);
                return Err(e);
            }
        }
        Ok(is_new)
    }

    /// Takes back a claim [`Self::claim`] just made.
    pub(crate) fn unclaim(&mut self, name: &str, key: &str) {
        self.remove_claim(name, key);
        if let Err(e) = write_claims(&self.dir.join("registry.json"), &self.claims) {
            tracing::error!("cannot take back the claim of {name}: {e}");
        }
    }

    fn remove_claim(&mut self, name: &str, key: &str) {
        if let Some(keys) = self.claims.claims.get_mut(name) {
            keys.remove(key);
            if keys.is_empty() {
                self.claims.claims.remove(name);
            }
        }
    }

    /// Signs the targets added since the last commit, and a new snapshot
    /// and timestamp; returns the catalog of what is now signed.
    pub(crate) fn commit(&mut self, now: SystemTime, previous: &Catalog) -> Result<Catalog, StoreError> {
        self.writer.commit(now)?;
        Catalog::load(self.writer.dir(), previous)
    }

    /// Keeps the served metadata from expiring: re-signs the timestamp, or
    /// commits anew (re-signing targets and snapshot too) when either of
    /// those expires within `margin`. Returns the new catalog when it
    /// committed.
    pub(crate) fn keep_fresh(
        &mut self,
        now: SystemTime,
        margin: Duration,
        current: &Catalog,
    ) -> Result<Option<Catalog>, StoreError> {
        let soon = now + margin;
        let expiring = |expires: Option<SystemTime>| expires.is_none_or(|at| at <= soon);
        if expiring(current.targets_expires) || expiring(current.snapshot_expires) {
            return self.commit(now, current).map(Some);
        }
        self.writer.refresh_timestamp(now)?;
        Ok(None)
    }

    /// How long each role's metadata stays valid.
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }
}

/// Writes `registry.json` through a synced temporary file and a rename: a
/// crash leaves the old claims or the new ones, never none.
fn write_claims(path: &Path, claims: &Claims) -> Result<(), StoreError> {
    let staging = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(claims).map_err(|e| StoreError::malformed(path, e))?;
    let mut file = std::fs::File::create(&staging).map_err(StoreError::io(&staging))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(StoreError::io(&staging))?;
    std::fs::rename(&staging, path).map_err(StoreError::io(path))
}
