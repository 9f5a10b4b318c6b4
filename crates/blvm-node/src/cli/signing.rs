//! `blvm-node module keygen|sign|verify`: a maintainer's key, a signature
//! over a manifest, and the check a node will make. Offline: no running
//! node is needed.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use blvm_module_host::registry::ModuleManifest;
use blvm_module_host::security::canonical::signing_digest_of_text;
use blvm_module_host::security::signatures::{generate_secret_key, public_key_of, sign_digest};
use blvm_module_host::security::{self, SignaturePolicy};

/// Why a signing command failed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key or manifest is unusable, or the signatures do not verify.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SigningError + '_ {
    move |source| SigningError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a new secret key to `out` (mode 0600, never over an existing
/// file) and returns its public key.
pub fn keygen(out: &Path) -> Result<String, SigningError> {
    let secret = generate_secret_key().map_err(io(out))?;
    let public = public_key_of(&secret).map_err(SigningError::Invalid)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(io(out))?;
    file.write_all(format!("{secret}\n").as_bytes()).map_err(io(out))?;
    Ok(public)
}

/// The `[signatures] maintainers` entry of `name` signing `manifest` with
/// the secret key in `key_file`.
pub fn sign(manifest: &Path, key_file: &Path, name: &str) -> Result<String, SigningError> {
    let text = std::fs::read_to_string(manifest).map_err(io(manifest))?;
    let secret = std::fs::read_to_string(key_file).map_err(io(key_file))?;
    let digest = signing_digest_of_text(&text).map_err(SigningError::Invalid)?;
    let signature = sign_digest(&digest, secret.trim()).map_err(SigningError::Invalid)?;
    let key = public_key_of(secret.trim()).map_err(SigningError::Invalid)?;
    Ok(format!(
        "{{ name = \"{}\", key = \"{key}\", signature = \"{signature}\" }}",
        name.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// Checks `manifest` (form and signatures) as a node with `policy` would;
/// returns who signed it, in words.
pub fn verify(manifest: &Path, policy: &SignaturePolicy) -> Result<String, SigningError> {
    let parsed = ModuleManifest::from_file(manifest).map_err(|e| SigningError::Invalid(e.to_string()))?;
    let report = security::verify(&parsed, policy).map_err(|e| SigningError::Invalid(e.to_string()))?;
    Ok(if report.signed_by.is_empty() {
        format!("{}: unsigned, and this node requires no signature", parsed.name())
    } else {
        format!(
            "{}: signed by {} ({} required)",
            parsed.name(),
            report.signed_by.join(", "),
            report.required
        )
    })
}
