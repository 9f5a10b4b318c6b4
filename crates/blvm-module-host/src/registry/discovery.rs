//! Scanning the `modules/` directory: one folder per module.
//!
//! ```text
//! modules/
//!   <folder>/module.toml     required; validated (see `manifest`)
//!   <folder>/<entry_point>   required; a regular, executable file that,
//!                            after resolving symlinks, is inside <folder>
//!   <folder>/config.toml     optional; flattened to dotted keys
//! ```
//!
//! The folder's name does not matter: a module is known by the `name` in its
//! manifest. Entries that are not directories, and entries whose name starts
//! with `.`, are skipped; a directory without `module.toml` is an error (a
//! broken or half-finished installation).
//!
//! One broken folder never stops the others: [`discover`] returns every
//! module it could read in [`Discovery::modules`] and every folder it could
//! not in [`Discovery::errors`]. Two folders declaring the same name are both
//! refused, each error naming the other folder, since neither can be
//! preferred without guessing. Both lists are sorted (modules by name,
//! errors by path), so the result does not depend on the order the file
//! system lists entries in.
//!
//! # Config flattening
//!
//! `config.toml` is flattened to the `BTreeMap<String, String>` the node
//! sends in `welcome`: nested tables become dotted keys (`[limits]
//! max_peers = 8` → `limits.max_peers = "8"`), strings are kept as they are,
//! numbers, booleans and dates are written as TOML writes them, and array
//! elements get their index as a key segment (`peers = ["a", "b"]` →
//! `peers.0 = "a"`, `peers.1 = "b"`), which keeps values containing commas
//! intact. Empty tables and arrays produce no key. Two spellings that
//! flatten to the same key (`"a.b" = 1` and `[a] b = 2`) are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::manifest::{ManifestError, ModuleManifest};

/// The manifest's file name inside a module folder.
pub const MANIFEST_FILE: &str = "module.toml";

/// The optional config's file name inside a module folder.
pub const CONFIG_FILE: &str = "config.toml";

/// The largest `config.toml` accepted, in bytes (1 MiB).
pub const MAX_CONFIG_LEN: u64 = 1024 * 1024;

/// A module folder that was read and passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredModule {
    /// The validated manifest.
    pub manifest: ModuleManifest,
    /// The module's folder, canonical (symlinks resolved).
    pub dir: PathBuf,
    /// The manifest's path.
    pub manifest_path: PathBuf,
    /// The binary's path, canonical and inside [`DiscoveredModule::dir`].
    pub binary_path: PathBuf,
    /// `config.toml` flattened to dotted keys; empty when there is none.
    pub config: BTreeMap<String, String>,
}

impl DiscoveredModule {
    /// The module's name.
    pub fn name(&self) -> &str {
        self.manifest.name().as_str()
    }
}

/// What a scan found: the modules that can go on to verification, and the
/// folders that could not be read.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Readable modules, sorted by name, names unique.
    pub modules: Vec<DiscoveredModule>,
    /// One error per folder that was refused, sorted by path.
    pub errors: Vec<DiscoveryError>,
}

impl Discovery {
    /// Whether some folder was refused.
    pub fn is_partial(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The manifests of the readable modules, by name.
    pub fn manifests(&self) -> impl Iterator<Item = &ModuleManifest> {
        self.modules.iter().map(|m| &m.manifest)
    }

    /// The modules refused although their manifest named them (a duplicate
    /// name, a bad binary or config), name → reason: what dependency
    /// resolution needs so their dependents can say why they cannot load.
    pub fn failed_names(&self) -> BTreeMap<String, String> {
        let mut failed = BTreeMap::new();
        for e in &self.errors {
            if let Some(name) = &e.name {
                failed.entry(name.clone()).or_insert_with(|| e.kind.to_string());
            }
        }
        failed
    }
}

/// A module folder (or the modules directory itself) that could not be used.
#[derive(Debug, thiserror::Error)]
pub struct DiscoveryError {
    /// The folder.
    pub path: PathBuf,
    /// The module's name, when its manifest could be read.
    pub name: Option<String>,
    /// What was wrong.
    pub kind: DiscoveryErrorKind,
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            // The manifest error already names its file.
            DiscoveryErrorKind::Manifest(e) => write!(f, "{e}"),
            kind => write!(f, "{}: {kind}", self.path.display()),
        }
    }
}

/// Why a module folder was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryErrorKind {
    /// The folder (or the modules directory) could not be read.
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
    /// The folder has no `module.toml`.
    #[error("no {MANIFEST_FILE} in this folder")]
    MissingManifest,
    /// `module.toml` was refused.
    #[error(transparent)]
    Manifest(Box<ManifestError>),
    /// The binary named by `entry_point` does not exist (or is a dangling symlink).
    #[error("binary `{entry_point}` not found")]
    BinaryMissing {
        /// The manifest's `entry_point`.
        entry_point: String,
    },
    /// The binary, after resolving symlinks, lies outside the module's folder.
    #[error("binary `{entry_point}` resolves to {}, outside the module's folder", resolved.display())]
    BinaryEscapes {
        /// The manifest's `entry_point`.
        entry_point: String,
        /// Where it resolves to.
        resolved: PathBuf,
    },
    /// The binary is not a regular file.
    #[error("binary `{entry_point}` is not a regular file")]
    BinaryNotAFile {
        /// The manifest's `entry_point`.
        entry_point: String,
    },
    /// The binary has no execute permission.
    #[error("binary `{entry_point}` is not executable")]
    BinaryNotExecutable {
        /// The manifest's `entry_point`.
        entry_point: String,
    },
    /// `config.toml` was refused.
    #[error("{CONFIG_FILE}: {0}")]
    Config(#[source] ConfigError),
    /// Another folder declares the same module name.
    #[error("module `{name}` is also declared by {}", others.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    DuplicateName {
        /// The name both declare.
        name: String,
        /// The other folders declaring it.
        others: Vec<PathBuf>,
    },
}

/// A `config.toml` that could not be read or flattened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
    /// The file is larger than [`MAX_CONFIG_LEN`].
    #[error("file is {size} bytes, more than the {max} bytes a config may have")]
    TooLarge {
        /// The size found.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The text is not valid TOML.
    #[error("not valid TOML: {message}")]
    Syntax {
        /// The parser's message.
        message: String,
    },
    /// Two spellings flatten to the same dotted key.
    #[error("key `{key}` is given twice (once as a dotted key, once as a table)")]
    DuplicateKey {
        /// The dotted key.
        key: String,
    },
}

/// Scans `modules_dir`. A directory that does not exist holds no modules
/// (no error); one that cannot be read yields a single error for it.
pub fn discover(modules_dir: &Path) -> Discovery {
    let mut discovery = Discovery::default();
    let entries = match std::fs::read_dir(modules_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return discovery,
        Err(e) => {
            discovery
                .errors
                .push(folder_error(modules_dir, None, DiscoveryErrorKind::Io(e)));
            return discovery;
        }
    };

    let mut folders = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                discovery
                    .errors
                    .push(folder_error(modules_dir, None, DiscoveryErrorKind::Io(e)));
                continue;
            }
        };
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks: a symlinked module folder is the
        // operator's choice, and its binary is then checked against the
        // folder's real location.
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            folders.push(path);
        }
    }

    for folder in folders {
        match read_module_folder(&folder) {
            Ok(module) => discovery.modules.push(module),
            Err(e) => discovery.errors.push(e),
        }
    }

    refuse_duplicate_names(&mut discovery);
    discovery.modules.sort_by(|a, b| a.name().cmp(b.name()));
    discovery.errors.sort_by(|a, b| a.path.cmp(&b.path));
    discovery
}

/// Reads one module folder: its manifest, binary and optional config.
///
/// # Errors
///
/// The first problem found, in that order.
pub fn read_module_folder(folder: &Path) -> Result<DiscoveredModule, DiscoveryError> {
    let dir = folder
        .canonicalize()
        .map_err(|e| folder_error(folder, None, DiscoveryErrorKind::Io(e)))?;
    let manifest_path = folder.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Err(folder_error(folder, None, DiscoveryErrorKind::MissingManifest));
    }
    let manifest = ModuleManifest::from_file(&manifest_path)
        .map_err(|e| folder_error(folder, None, DiscoveryErrorKind::Manifest(Box::new(e))))?;
    let name = Some(manifest.name().to_string());
    let fail = |kind| folder_error(folder, name.clone(), kind);

    let binary_path = resolve_binary(&dir, manifest.entry_point()).map_err(fail)?;
    let config = match read_config(&folder.join(CONFIG_FILE)) {
        Ok(config) => config.unwrap_or_default(),
        Err(e) => return Err(fail(DiscoveryErrorKind::Config(e))),
    };
    Ok(DiscoveredModule {
        manifest,
        dir,
        manifest_path,
        binary_path,
        config,
    })
}

/// Resolves `entry_point` inside the canonical folder `dir`, refusing a
/// binary that is missing, escapes the folder (symlinks resolved), is not a
/// regular file or is not executable.
fn resolve_binary(dir: &Path, entry_point: &str) -> Result<PathBuf, DiscoveryErrorKind> {
    let entry_point_owned = || entry_point.to_owned();
    let resolved = dir.join(entry_point).canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DiscoveryErrorKind::BinaryMissing {
            entry_point: entry_point_owned(),
        },
        _ => DiscoveryErrorKind::Io(e),
    })?;
    // The manifest already refuses separators and `..`; this catches a
    // symlink (or a symlinked parent) pointing elsewhere.
    if !resolved.starts_with(dir) {
        return Err(DiscoveryErrorKind::BinaryEscapes {
            entry_point: entry_point_owned(),
            resolved,
        });
    }
    let meta = std::fs::metadata(&resolved).map_err(DiscoveryErrorKind::Io)?;
    if !meta.is_file() {
        return Err(DiscoveryErrorKind::BinaryNotAFile {
            entry_point: entry_point_owned(),
        });
    }
    if !is_executable(&meta) {
        return Err(DiscoveryErrorKind::BinaryNotExecutable {
            entry_point: entry_point_owned(),
        });
    }
    Ok(resolved)
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    true
}

/// Reads and flattens a `config.toml`; `Ok(None)` when there is none.
///
/// # Errors
///
/// [`ConfigError`] when the file cannot be read, is too large, is not TOML
/// or flattens two keys onto one.
pub fn read_config(path: &Path) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError::Io(e)),
    };
    let mut text = String::new();
    file.take(MAX_CONFIG_LEN + 1)
        .read_to_string(&mut text)
        .map_err(ConfigError::Io)?;
    if text.len() as u64 > MAX_CONFIG_LEN {
        return Err(ConfigError::TooLarge {
            size: text.len() as u64,
            max: MAX_CONFIG_LEN,
        });
    }
    parse_config(&text).map(Some)
}

/// Parses config text and flattens it to dotted keys (see the module doc).
///
/// # Errors
///
/// [`ConfigError::Syntax`] or [`ConfigError::DuplicateKey`].
pub fn parse_config(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        message: e.to_string().trim().to_owned(),
    })?;
    flatten_config(&table)
}

/// Flattens a TOML table to dotted keys (see the module doc); for merging
/// the node's `[modules.<name>]` table over a module's `config.toml`.
///
/// # Errors
///
/// [`ConfigError::DuplicateKey`] when two spellings flatten to one key.
pub fn flatten_config(table: &toml::Table) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (key, value) in table {
        flatten_value(key.clone(), value, &mut out)?;
    }
    Ok(out)
}

fn flatten_value(key: String, value: &toml::Value, out: &mut BTreeMap<String, String>) -> Result<(), ConfigError> {
    let scalar = match value {
        toml::Value::Table(table) => {
            for (sub, v) in table {
                flatten_value(format!("{key}.{sub}"), v, out)?;
            }
            return Ok(());
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_value(format!("{key}.{i}"), v, out)?;
            }
            return Ok(());
        }
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
    };
    if out.contains_key(&key) {
        return Err(ConfigError::DuplicateKey { key });
    }
    out.insert(key, scalar);
    Ok(())
}

fn folder_error(path: &Path, name: Option<String>, kind: DiscoveryErrorKind) -> DiscoveryError {
    DiscoveryError {
        path: path.to_path_buf(),
        name,
        kind,
    }
}

/// Moves every module whose name another folder also declares out of
/// `modules` and into `errors`, each naming the other folders.
fn refuse_duplicate_names(discovery: &mut Discovery) {
    let mut folders_by_name: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for m in &discovery.modules {
        folders_by_name
            .entry(m.name().to_owned())
            .or_default()
            .push(m.dir.clone());
    }
    let duplicated: BTreeSet<&String> = folders_by_name
        .iter()
        .filter(|(_, dirs)| dirs.len() > 1)
        .map(|(name, _)| name)
        .collect();
    if duplicated.is_empty() {
        return;
    }
    let (dups, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut discovery.modules)
        .into_iter()
        .partition(|m| duplicated.contains(&m.name().to_owned()));
    discovery.modules = kept;
    for m in dups {
        let name = m.name().to_owned();
        let others = folders_by_name[&name]
            .iter()
            .filter(|d| **d != m.dir)
            .cloned()
            .collect();
        discovery.errors.push(DiscoveryError {
            path: m.dir,
            name: Some(name.clone()),
            kind: DiscoveryErrorKind::DuplicateName { name, others },
        });
    }
}
