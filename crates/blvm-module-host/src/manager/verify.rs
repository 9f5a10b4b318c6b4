//! Binary verification and staging: the bytes that were hashed are the
//! bytes that run.
//!
//! The module's entry point is read once into memory, its sha256 compared
//! with the manifest's `[binary].hash` (and `size`), and those same bytes
//! are written into a node-owned copy of the module's folder, which is what
//! gets spawned. The rest of the folder (a script module's other files, a
//! module's data files) is copied with it, so a multi-file module finds
//! its siblings next to its entry point. Changing the module's folder
//! after the check changes nothing that runs; a reload reads and checks
//! it again.
//!
//! What is verified: the entry point against the manifest's hash and size
//! (when given), before it is staged and again before every spawn
//! ([`VerifiedBinary::recheck`], first start and each restart). The other
//! files are not named by the manifest, so there is nothing to check them
//! against: they are copied as they are at load (a snapshot: later
//! changes to the folder do not reach the module until a reload), and the
//! staged copy carries the sha256 of its whole content in its name, so a
//! copy found already in place is reused only if its content still
//! matches (else it is replaced).
//!
//! Modes are chosen for a module that runs under another uid (the
//! sandbox's uid drop), all owned by the node: the staging directory is
//! 0711 (others may reach a path they know, not list it); a staged folder
//! and its directories 0555, its files 0444 (0555 where the original was
//! executable), so the module reads its files and nobody changes them;
//! the entry point 0511 — executable but not readable, so the kernel makes
//! the process non-dumpable (no process of the module's uid outside its
//! sandbox can `ptrace` it or read its `/proc/<pid>/environ`) — or 0555
//! for a script (`#!`), which its interpreter must read. Symbolic links
//! are copied as links (never followed: a link to a node file stays a
//! link, which the sandbox resolves in the module's own view); sockets,
//! pipes and devices are left out.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::registry::ModuleManifest;

/// The most a staged folder may hold, bytes: a module folder is code and
/// a little data, not a store (its data dir is for that).
pub const MAX_STAGED_BYTES: u64 = 1 << 30;

/// The most entries (files, directories, links) a staged folder may hold.
pub const MAX_STAGED_ENTRIES: usize = 100_000;

/// Why a binary was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The binary could not be read or copied.
    #[error("cannot read or stage {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Its hash differs from the manifest's.
    #[error("binary {path} has sha256:{actual}, the manifest says sha256:{expected}")]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// `[binary].hash`.
        expected: String,
        /// What the file hashes to.
        actual: String,
    },
    /// The staged copy no longer hashes to what was verified.
    #[error("staged binary {path} changed since it was verified: sha256:{actual}, verified sha256:{expected}")]
    StagedChanged {
        /// The staged file.
        path: PathBuf,
        /// The verified hash.
        expected: String,
        /// What the file hashes to now.
        actual: String,
    },
    /// Its size differs from the manifest's.
    #[error("binary {path} is {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// `[binary].size`.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
    /// The module's folder is larger than a staged folder may be.
    #[error(
        "module folder {path} holds more than {MAX_STAGED_ENTRIES} entries or {MAX_STAGED_BYTES} bytes: too large to stage"
    )]
    FolderTooLarge {
        /// The folder.
        path: PathBuf,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A module that passed verification, staged where the module cannot
/// change it.
#[derive(Debug, Clone)]
pub struct VerifiedBinary {
    /// The staged entry point, to execute.
    pub path: PathBuf,
    /// The staged folder holding it (the module's files, read-only to it).
    pub dir: PathBuf,
    /// The entry point's sha256, hex.
    pub sha256: String,
    /// The sha256 of the staged folder's whole content, hex (its name
    /// holds the first 16 digits).
    pub tree_sha256: String,
}

impl VerifiedBinary {
    /// Hashes the staged entry point again; it must still be the verified
    /// bytes.
    ///
    /// # Errors
    ///
    /// [`VerifyError::StagedChanged`] if it differs, [`VerifyError::Io`] if
    /// it cannot be read.
    pub fn recheck(&self) -> Result<(), VerifyError> {
        let actual = sha256_file(&self.path).map_err(|source| VerifyError::Io {
            path: self.path.clone(),
            source,
        })?;
        if actual != self.sha256 {
            return Err(VerifyError::StagedChanged {
                path: self.path.clone(),
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// The sha256 of a file, hex, read in pieces (binaries can be large).
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// Reads `binary`, checks it against `manifest`, and stages it under
/// `stage_dir`: with the rest of `folder` (the module's folder, when it
/// was discovered in one; the entry point then keeps its manifest name)
/// or alone (named as the file is). Modes and what is checked: module doc.
pub fn verify_and_stage(
    manifest: &ModuleManifest,
    binary: &Path,
    folder: Option<&Path>,
    stage_dir: &Path,
) -> Result<VerifiedBinary, VerifyError> {
    let bytes = std::fs::read(binary).map_err(io(binary))?;
    let digest = Sha256::digest(&bytes);
    let actual = hex(&digest);
    if let Some(info) = manifest.binary() {
        if let Some(expected) = &info.hash {
            if expected.0[..] != digest[..] {
                return Err(VerifyError::HashMismatch {
                    path: binary.to_path_buf(),
                    expected: hex(&expected.0),
                    actual,
                });
            }
        }
        if let Some(size) = info.size {
            if size != bytes.len() as u64 {
                return Err(VerifyError::SizeMismatch {
                    path: binary.to_path_buf(),
                    expected: size,
                    actual: bytes.len() as u64,
                });
            }
        }
    }
    let entry_name: PathBuf = match (folder, binary.file_name()) {
        (Some(_), _) => PathBuf::from(manifest.entry_point()),
        (None, Some(name)) => PathBuf::from(name),
        (None, None) => PathBuf::from(manifest.name().as_str()),
    };
    let entry = Entry {
        name: entry_name.clone(),
        bytes: &bytes,
        mode: if bytes.starts_with(b"#!") { 0o555 } else { 0o511 },
        sha256: actual.clone(),
    };
    std::fs::create_dir_all(stage_dir).map_err(io(stage_dir))?;
    std::fs::set_permissions(stage_dir, std::fs::Permissions::from_mode(0o711)).map_err(io(stage_dir))?;
    // What the copy will hold, read without copying: a copy already in
    // place with that content is reused.
    let planned = Tree::of_source(folder, &entry)?;
    let staged = stage_dir.join(format!("{}-{}", manifest.name().as_str(), &planned.digest()[..16]));
    if staged.is_dir()
        && Tree::of_staged(&staged)
            .map(|t| t.digest() == planned.digest())
            .unwrap_or(false)
    {
        return Ok(VerifiedBinary {
            path: staged.join(&entry_name),
            dir: staged,
            sha256: actual,
            tree_sha256: planned.digest(),
        });
    }
    // Built under a temporary name and renamed, so a crash mid-copy never
    // leaves a partial folder under the final name.
    static N: AtomicU64 = AtomicU64::new(0);
    let tmp = stage_dir.join(format!(
        ".{}.{}.{}.tmp",
        manifest.name().as_str(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    remove_tree(&tmp).map_err(io(&tmp))?;
    let copied = match copy_tree(folder, &entry, &tmp) {
        Ok(tree) => tree,
        Err(e) => {
            let _ = remove_tree(&tmp);
            return Err(e);
        }
    };
    // Named after what was copied, which is what runs (the folder may have
    // changed since it was read).
    let digest = copied.digest();
    let staged = stage_dir.join(format!("{}-{}", manifest.name().as_str(), &digest[..16]));
    if std::fs::symlink_metadata(&staged).is_ok() {
        tracing::warn!(
            staged = %staged.display(),
            "staged copy does not hold what was verified (sha256:{digest}); replacing it"
        );
        remove_tree(&staged).map_err(io(&staged))?;
    }
    std::fs::rename(&tmp, &staged).map_err(io(&staged))?;
    Ok(VerifiedBinary {
        path: staged.join(&entry_name),
        dir: staged,
        sha256: actual,
        tree_sha256: digest,
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VerifyError {
    let path = path.to_path_buf();
    move |source| VerifyError::Io { path, source }
}

/// The verified entry point: its name in the staged folder, the bytes and
/// the mode it is staged with.
struct Entry<'a> {
    name: PathBuf,
    bytes: &'a [u8],
    mode: u32,
    sha256: String,
}

/// A staged folder's content, one line per path (sorted): what its
/// digest covers. Directories, files (mode and sha256) and links (their
/// text).
#[derive(Default)]
struct Tree {
    lines: BTreeMap<Vec<u8>, String>,
    bytes: u64,
}

impl Tree {
    fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for (path, line) in &self.lines {
            hasher.update(path);
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        hex(&hasher.finalize())
    }

    fn add(&mut self, rel: &Path, line: String, size: u64, limit: &Path) -> Result<(), VerifyError> {
        self.bytes += size;
        if self.lines.len() >= MAX_STAGED_ENTRIES || self.bytes > MAX_STAGED_BYTES {
            return Err(VerifyError::FolderTooLarge {
                path: limit.to_path_buf(),
            });
        }
        self.lines.insert(rel.as_os_str().as_bytes().to_vec(), line);
        Ok(())
    }

    /// What copying `folder` (or the entry alone) will stage, read from
    /// the source.
    fn of_source(folder: Option<&Path>, entry: &Entry<'_>) -> Result<Tree, VerifyError> {
        let mut tree = Tree::default();
        if let Some(folder) = folder {
            walk(folder, Path::new(""), &mut |rel, kind| {
                if rel == entry.name {
                    return Ok(());
                }
                let line = match kind {
                    Kind::Dir => " dir".to_owned(),
                    Kind::File { mode, .. } => {
                        let path = folder.join(rel);
                        format!(
                            " file {:o} {}",
                            staged_mode(mode),
                            sha256_file(&path).map_err(io(&path))?
                        )
                    }
                    Kind::Link(ref target) => format!(" link {}", target.display()),
                };
                let size = match kind {
                    Kind::File { size, .. } => size,
                    _ => 0,
                };
                tree.add(rel, line, size, folder)
            })?;
        }
        tree.add(
            &entry.name,
            format!(" file {:o} {}", entry.mode, entry.sha256),
            entry.bytes.len() as u64,
            folder.unwrap_or(&entry.name),
        )?;
        Ok(tree)
    }

    /// What a staged folder holds now.
    fn of_staged(dir: &Path) -> Result<Tree, VerifyError> {
        let mut tree = Tree::default();
        walk(dir, Path::new(""), &mut |rel, kind| {
            let (line, size) = match kind {
                Kind::Dir => (" dir".to_owned(), 0),
                Kind::File { mode, size } => {
                    let path = dir.join(rel);
                    (
                        format!(" file {:o} {}", mode & 0o7777, sha256_file(&path).map_err(io(&path))?),
                        size,
                    )
                }
                Kind::Link(target) => (format!(" link {}", target.display()), 0),
            };
            tree.add(rel, line, size, dir)
        })?;
        Ok(tree)
    }
}

/// The mode a staged copy of a file of `mode` gets: read-only, executable
/// where the original was.
fn staged_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 {
        0o555
    } else {
        0o444
    }
}

enum Kind {
    Dir,
    File { mode: u32, size: u64 },
    Link(PathBuf),
}

/// Calls `each` for everything under `root/rel`, parents before children,
/// in name order; never follows a link. Sockets, pipes and devices are
/// skipped.
fn walk(
    root: &Path,
    rel: &Path,
    each: &mut dyn FnMut(&Path, Kind) -> Result<(), VerifyError>,
) -> Result<(), VerifyError> {
    let dir = root.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io(&dir))?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            each(&rel, Kind::Link(target))?;
        } else if kind.is_dir() {
            each(&rel, Kind::Dir)?;
            walk(root, &rel, each)?;
        } else if kind.is_file() {
            each(
                &rel,
                Kind::File {
                    mode: meta.permissions().mode(),
                    size: meta.len(),
                },
            )?;
        } else {
            tracing::debug!(path = %path.display(), "not staged: not a file, directory or link");
        }
    }
    Ok(())
}

/// Copies `folder` (or nothing but the entry) to `dest`, with the entry's
/// verified bytes under its name, and returns what it staged. Directories
/// are made read-only last, once filled.
fn copy_tree(folder: Option<&Path>, entry: &Entry<'_>, dest: &Path) -> Result<Tree, VerifyError> {
    std::fs::create_dir(dest).map_err(io(dest))?;
    let mut dirs = vec![dest.to_path_buf()];
    if let Some(folder) = folder {
        walk(folder, Path::new(""), &mut |rel, kind| {
            if rel == entry.name {
                return Ok(());
            }
            let to = dest.join(rel);
            match kind {
                Kind::Dir => {
                    std::fs::create_dir(&to).map_err(io(&to))?;
                    dirs.push(to);
                }
                Kind::File { mode, .. } => {
                    let from = folder.join(rel);
                    std::fs::copy(&from, &to).map_err(io(&from))?;
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(staged_mode(mode)))
                        .map_err(io(&to))?;
                }
                Kind::Link(target) => std::os::unix::fs::symlink(&target, &to).map_err(io(&to))?,
            }
            Ok(())
        })?;
    }
    let to = dest.join(&entry.name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(entry.mode)
        .open(&to)
        .map_err(io(&to))?;
    file.write_all(entry.bytes).map_err(io(&to))?;
    file.sync_all().map_err(io(&to))?;
    drop(file);
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(entry.mode)).map_err(io(&to))?;
    for dir in dirs.iter().rev() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).map_err(io(dir))?;
    }
    Tree::of_staged(dest)
}

/// Removes a staged folder (or an older node's staged file) and
/// everything in it; nothing there is not an error. Its directories are
/// made writable first: they are 0555, which stops a node that is not
/// root from removing what is in them.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(path)? {
        remove_tree(&entry?.path())?;
    }
    std::fs::remove_dir(path)
}
