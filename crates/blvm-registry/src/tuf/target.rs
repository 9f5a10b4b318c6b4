//! A target's signed facts and the check of its downloaded bytes (§5.7).
//!
//! The verifier hands the downloader a [`TargetInfo`]: the signed length,
//! which is where a download stops (the endless-data attack), the hash,
//! and our custom data. [`TargetChecker`] checks the bytes as they
//! arrive, so nothing past the signed length is ever kept.

use hex_conservative::DisplayHex;
use sha2::{Digest, Sha256};

use super::error::VerifyError;
use super::metadata::TargetFile;

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
    /// The facts signed for `path`; `consistent` when the root says the
    /// repository serves targets under hash-prefixed names.
    pub(super) fn new(path: &str, file: TargetFile, consistent: bool) -> Self {
        let url_path = if consistent {
            hash_prefixed(path, &file.hashes.sha256)
        } else {
            path.to_owned()
        };
        Self {
            path: path.to_owned(),
            url_path,
            file,
        }
    }

    /// The target's path in targets metadata.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where to download it, relative to the targets base URL. It is the
    /// signed path as the repository spelled it: a URL path, never to be
    /// used as a local file name.
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
