//! `blvm-module publish` and `yank`: a maintainer's signed requests to a
//! registry. The statement names the exact bytes (SHA-256 and length), so
//! a request seen in transit cannot be replayed for other files, and the
//! registry's refusal comes back as its one-line [`ApiError`].

use std::path::Path;
use std::time::Duration;

use blvm_module_host::registry::manifest::MAX_MANIFEST_LEN;
use blvm_module_host::registry::ModuleManifest;
use hex_conservative::DisplayHex;
use sha2::{Digest, Sha256};

use crate::layout::{ApiError, PublishRequest, SignedStatement, Statement, VersionRecord};

/// How long a request may take (a large binary on a slow link).
const TIMEOUT: Duration = Duration::from_secs(300);

/// Why a publish or yank did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A local file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The manifest or the key is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The registry could not be reached or answered nonsense.
    #[error("{url}: {reason}")]
    Http {
        /// The endpoint.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The registry refused, with its reason.
    #[error("{url}: the registry refused ({status}): {error}")]
    Refused {
        /// The endpoint.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's [`ApiError`] message.
        error: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_secret(key_file: &Path) -> Result<String, PublishError> {
    Ok(std::fs::read_to_string(key_file)
        .map_err(io(key_file))?
        .trim()
        .to_owned())
}

/// Publishes `manifest` and its binary (by default the manifest's
/// `entry_point` beside it) to the registry at `registry`, signed with the
/// secret key in `key_file` (from `blvm-module keygen`). Returns what the
/// registry signed about the new version.
///
/// # Errors
///
/// [`PublishError`]; a refusal carries the registry's reason.
pub fn publish(
    registry: &str,
    key_file: &Path,
    manifest: &Path,
    binary: Option<&Path>,
) -> Result<VersionRecord, PublishError> {
    let text = std::fs::read_to_string(manifest).map_err(io(manifest))?;
    if text.len() as u64 > MAX_MANIFEST_LEN {
        return Err(PublishError::Invalid(format!(
            "{}: more than {MAX_MANIFEST_LEN} bytes",
            manifest.display()
        )));
    }
    let parsed = ModuleManifest::from_toml_str(&text, manifest).map_err(|e| PublishError::Invalid(e.to_string()))?;
    let binary_path = match binary {
        Some(path) => path.to_path_buf(),
        None => manifest.parent().unwrap_or(Path::new(".")).join(parsed.entry_point()),
    };
    let binary = std::fs::read(&binary_path).map_err(io(&binary_path))?;
    let statement = Statement::Publish {
        name: parsed.name().to_string(),
        version: parsed.version().to_string(),
        manifest_sha256: Sha256::digest(text.as_bytes()).to_lower_hex_string(),
        binary_sha256: Sha256::digest(&binary).to_lower_hex_string(),
        binary_length: binary.len() as u64,
    };
    let statement = SignedStatement::sign(statement, &read_secret(key_file)?)
        .map_err(|e| PublishError::Invalid(format!("{}: {e}", key_file.display())))?;
    let request = PublishRequest {
        statement,
        manifest: text,
        binary,
    };
    let body = rmp_serde::to_vec_named(&request).map_err(|e| PublishError::Invalid(e.to_string()))?;
    post(registry, "publish", "application/msgpack", body)
}

/// Yanks version `version` of `name` from the registry at `registry`,
/// signed with the secret key in `key_file`.
///
/// # Errors
///
/// [`PublishError`]; a refusal carries the registry's reason.
pub fn yank(registry: &str, key_file: &Path, name: &str, version: &str) -> Result<VersionRecord, PublishError> {
    let statement = Statement::Yank {
        name: name.to_owned(),
        version: version.to_owned(),
    };
    let statement = SignedStatement::sign(statement, &read_secret(key_file)?)
        .map_err(|e| PublishError::Invalid(format!("{}: {e}", key_file.display())))?;
    let body = serde_json::to_vec(&statement).map_err(|e| PublishError::Invalid(e.to_string()))?;
    post(registry, "yank", "application/json", body)
}

/// POSTs `body` to `registry`'s `/api/v1/<endpoint>` and reads the
/// record it answers, or its refusal.
fn post(registry: &str, endpoint: &str, content_type: &str, body: Vec<u8>) -> Result<VersionRecord, PublishError> {
    let url = format!("{}/api/v1/{endpoint}", registry.trim_end_matches('/'));
    let http = |reason: String| PublishError::Http {
        url: url.clone(),
        reason,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| http(e.to_string()))?;
    let response = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .map_err(|e| http(error_chain(&e)))?;
    let status = response.status();
    let bytes = response.bytes().map_err(|e| http(error_chain(&e)))?;
    if !status.is_success() {
        let error = serde_json::from_slice::<ApiError>(&bytes).map_or_else(
            |_| String::from_utf8_lossy(&bytes).trim().replace('\n', " "),
            |api| api.error,
        );
        return Err(PublishError::Refused {
            url,
            status: status.as_u16(),
            error,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| http(format!("the answer is not a version record: {e}")))
}

/// An error and its sources on one line (reqwest's own message omits the
/// cause, such as "connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
