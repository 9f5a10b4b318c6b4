//! The module's data dir, managed by the node (`manage_filesystem`):
//! create and remove subdirectories, read its usage and quota.
//!
//! Reading and writing files is not a request: the module does it itself,
//! and the kernel allows it only with `read_filesystem` (read) and
//! `write_filesystem` (write). These requests are served by the node, so
//! a `path` is always relative to the module's data dir and resolved
//! beneath it by the kernel: an absolute path, a `..` leaving the data
//! dir, or any symbolic link on the way is refused (`invalid_params`) and
//! touches nothing.

use serde::{Deserialize, Serialize};

/// The longest `path`, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// Params of `fs_create_dir`: one directory, whose parent must exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateDir {
    /// Relative to the data dir (`cache/blocks`).
    pub path: String,
}

/// Params of `fs_remove_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveDir {
    /// Relative to the data dir; never the data dir itself.
    pub path: String,
    /// False: only an empty directory is removed. True: the directory and
    /// everything in it (a symbolic link inside is removed, never
    /// followed).
    #[serde(default)]
    pub recursive: bool,
}

/// Result of `fs_create_dir`, `fs_remove_dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirChanged {
    /// `fs_create_dir`: false when the directory already existed.
    /// `fs_remove_dir`: false when there was nothing to remove.
    pub changed: bool,
    /// Entries removed, the directory included (0 for `fs_create_dir`).
    #[serde(default)]
    pub removed: u64,
}

/// Result of `fs_usage`: the data dir's own file system (its disk quota,
/// enforced by the kernel). Every field is nil when the data dir has no
/// file system of its own (no disk quota, or the sandbox is off): the node
/// does not describe the host's file systems to a module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsUsage {
    /// Bytes in use.
    #[serde(default)]
    pub used_bytes: Option<u64>,
    /// Bytes that can still be written.
    #[serde(default)]
    pub free_bytes: Option<u64>,
    /// The quota: the size of its disk image, bytes.
    #[serde(default)]
    pub quota_bytes: Option<u64>,
    /// Inodes (files, directories, links) in use.
    #[serde(default)]
    pub used_inodes: Option<u64>,
    /// Inodes the file system has: at most this many files and
    /// directories fit, whatever their size.
    #[serde(default)]
    pub total_inodes: Option<u64>,
}
