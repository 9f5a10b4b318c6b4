//! A maintainer's offline tools, behind both `blvm-module keygen|pack|sign|verify`
//! and `blvm-node module keygen|sign|verify`: a key, the binary's pin in
//! the manifest, a signature over the manifest, and the check a node will
//! make. No running node or registry is needed.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use blvm_module_host::registry::{ModuleManifest, RawManifest};
use blvm_module_host::security::canonical::signing_digest_of_text;
use blvm_module_host::security::signatures::{generate_secret_key, public_key_of, sign_digest};
use blvm_module_host::security::{self, Keyring, SignaturePolicy};

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
    let (key, signature) = signature_of(manifest, key_file)?;
    Ok(format!(
        "{{ name = \"{}\", key = \"{key}\", signature = \"{signature}\" }}",
        name.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The public key and signature of the secret key in `key_file` over
/// `manifest`'s signing digest.
fn signature_of(manifest: &Path, key_file: &Path) -> Result<(String, String), SigningError> {
    let text = std::fs::read_to_string(manifest).map_err(io(manifest))?;
    let secret = std::fs::read_to_string(key_file).map_err(io(key_file))?;
    let digest = signing_digest_of_text(&text).map_err(SigningError::Invalid)?;
    let signature = sign_digest(&digest, secret.trim()).map_err(SigningError::Invalid)?;
    let key = public_key_of(secret.trim()).map_err(SigningError::Invalid)?;
    Ok((key, signature))
}

/// Signs `manifest` as `name` and writes the entry into its
/// `[signatures] maintainers`, replacing an earlier entry of `name`:
/// maintainers sign the same file one after another, since signatures
/// cover everything but `[signatures]`. A manifest with no `[signatures]`
/// gets one whose threshold is its `[governance] threshold`, else
/// `1-of-1`.
pub fn sign_in_place(manifest: &Path, key_file: &Path, name: &str) -> Result<(), SigningError> {
    let (key, signature) = signature_of(manifest, key_file)?;
    let text = std::fs::read_to_string(manifest).map_err(io(manifest))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| SigningError::Invalid(e.to_string()))?;
    let threshold = doc
        .get("governance")
        .and_then(|g| g.get("threshold"))
        .and_then(|t| t.as_str())
        .unwrap_or("1-of-1")
        .to_owned();
    if !doc.contains_table("signatures") {
        let mut table = toml_edit::Table::new();
        table.insert("threshold", toml_edit::value(threshold));
        doc.insert("signatures", toml_edit::Item::Table(table));
    }
    let table = doc
        .get_mut("signatures")
        .and_then(toml_edit::Item::as_table_mut)
        .ok_or_else(|| SigningError::Invalid("`signatures` is not a table".into()))?;
    if !table.contains_key("maintainers") {
        table.insert("maintainers", toml_edit::value(toml_edit::Array::new()));
    }
    let entries = table
        .get_mut("maintainers")
        .and_then(toml_edit::Item::as_array_mut)
        .ok_or_else(|| SigningError::Invalid("`[signatures] maintainers` is not an array".into()))?;
    entries.retain(|entry| {
        entry
            .as_inline_table()
            .and_then(|t| t.get("name"))
            .and_then(|n| n.as_str())
            != Some(name)
    });
    let mut entry = toml_edit::InlineTable::new();
    entry.insert("name", name.into());
    entry.insert("key", key.into());
    entry.insert("signature", signature.into());
    entries.push(entry);
    entries.fmt();
    let out = doc.to_string();
    RawManifest::parse(&out, manifest)
        .and_then(|raw| raw.validate(manifest))
        .map_err(|e| SigningError::Invalid(e.to_string()))?;
    let staged = manifest.with_extension("toml.signing");
    std::fs::write(&staged, out).map_err(io(&staged))?;
    std::fs::rename(&staged, manifest).map_err(io(manifest))
}

/// What `sign` does and prints, for both CLIs: with `--write` the entry
/// goes into the manifest, else it is printed for the maintainer to add.
pub fn run_sign(args: &SignArgs) -> Result<String, SigningError> {
    if args.write {
        sign_in_place(&args.manifest, &args.key, &args.name)?;
        return Ok(format!("{}: signed by {}", args.manifest.display(), args.name));
    }
    let entry = sign(&args.manifest, &args.key, &args.name)?;
    Ok(format!(
        "add to [signatures] maintainers of {}:\n  {entry},",
        args.manifest.display()
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

/// The keyring of `--trust NAME=HEX` arguments (`blvm-module verify`,
/// `install`, `update`).
///
/// # Errors
///
/// An entry that is not `NAME=HEX`, or a key that is not a compressed
/// secp256k1 public key.
pub fn keyring_of(trust: &[String]) -> Result<Keyring, SigningError> {
    let mut keyring = Keyring::new();
    for entry in trust {
        let (name, key) = entry
            .split_once('=')
            .ok_or_else(|| SigningError::Invalid(format!("--trust {entry}: expected NAME=HEX")))?;
        keyring
            .trust(name, key)
            .map_err(|e| SigningError::Invalid(format!("--trust {name}: {e}")))?;
    }
    Ok(keyring)
}

/// The arguments of `sign`, shared by `blvm-module sign` and
/// `blvm-node module sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The module's `module.toml`.
    pub manifest: std::path::PathBuf,
    /// The secret key file from `keygen`.
    #[arg(long)]
    pub key: std::path::PathBuf,
    /// The maintainer's name, as listed in `[governance] maintainers`.
    #[arg(long)]
    pub name: String,
    /// Write the signature into the manifest's `[signatures]` instead of
    /// printing the entry to add.
    #[arg(long)]
    pub write: bool,
}

/// What [`pack`] wrote into a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// `sha256:<hex>` of the binary.
    pub hash: String,
    /// The binary's length in bytes.
    pub size: u64,
}

/// Fills `manifest`'s `[binary] hash` and `size` from `binary` (by default
/// the manifest's `entry_point` beside it), keeping the rest of the file
/// as written. Refused when the manifest is already signed and the pin
/// changes: the signatures would no longer cover the code, so the
/// maintainers must sign again after packing.
pub fn pack(manifest: &Path, binary: Option<&Path>) -> Result<Packed, SigningError> {
    use sha2::{Digest, Sha256};
    let text = std::fs::read_to_string(manifest).map_err(io(manifest))?;
    let parsed = ModuleManifest::from_file(manifest).map_err(|e| SigningError::Invalid(e.to_string()))?;
    let binary = match binary {
        Some(path) => path.to_path_buf(),
        None => manifest.parent().unwrap_or(Path::new(".")).join(parsed.entry_point()),
    };
    let bytes = std::fs::read(&binary).map_err(io(&binary))?;
    let packed = Packed {
        hash: format!(
            "sha256:{}",
            hex_conservative::DisplayHex::to_lower_hex_string(&Sha256::digest(&bytes)[..])
        ),
        size: bytes.len() as u64,
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| SigningError::Invalid(e.to_string()))?;
    let old_hash = doc
        .get("binary")
        .and_then(|b| b.get("hash"))
        .and_then(|h| h.as_str())
        .map(str::to_owned);
    if parsed.signatures().is_some() && old_hash.as_deref() != Some(packed.hash.as_str()) {
        return Err(SigningError::Invalid(format!(
            "{} is signed for another binary: remove [signatures], pack, and have the maintainers sign again",
            manifest.display()
        )));
    }
    if !doc.contains_table("binary") {
        doc.insert("binary", toml_edit::table());
    }
    let table = doc
        .get_mut("binary")
        .and_then(toml_edit::Item::as_table_mut)
        .ok_or_else(|| SigningError::Invalid("`binary` is not a table".into()))?;
    table.insert("hash", toml_edit::value(packed.hash.clone()));
    let size = i64::try_from(packed.size).map_err(|_| SigningError::Invalid("the binary is too large".into()))?;
    table.insert("size", toml_edit::value(size));
    let out = doc.to_string();
    // The packed manifest must still be one a node accepts.
    RawManifest::parse(&out, manifest)
        .and_then(|raw| raw.validate(manifest))
        .map_err(|e| SigningError::Invalid(e.to_string()))?;
    let staged = manifest.with_extension("toml.packing");
    std::fs::write(&staged, out).map_err(io(&staged))?;
    std::fs::rename(&staged, manifest).map_err(io(manifest))?;
    Ok(packed)
}
