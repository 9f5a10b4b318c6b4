//! The filesystem service: a module's data dir as the node manages it
//! (`manage_filesystem`): create and remove subdirectories, read its usage
//! and quota.
//!
//! What the module itself may do there is the kernel's business, not this
//! service's: Landlock gives its process read rights beneath the data dir
//! only with `read_filesystem` and write rights only with
//! `write_filesystem` (`sandbox::DataDirAccess`).
//!
//! # Where the node reaches a data dir
//!
//! With a disk quota (the default) the data dir is an ext4 image that is
//! mounted only inside the module's own mount namespace; in the node's
//! namespace the path `<data dir>/<name>` is an empty directory, and
//! operating through the module's namespace (`setns`) would need a
//! thread of the node to enter it. The node, though, holds a detached
//! mount of the same superblock for its run (`sandbox::AttachedImage`):
//! each spawn registers a duplicate of that fd here, so the service works
//! on exactly the files the module sees, with no namespace switch and
//! nothing mounted in the host. Without a quota (or with the sandbox off)
//! the data dir is a plain host directory, opened once per spawn.
//!
//! Roots are keyed by module id (one spawn), registered when the spawn
//! starts and dropped when it ends, so a request is always served on the
//! data dir of the process that sent it. Every path is resolved beneath
//! the root by the kernel (`beneath`).

mod beneath;

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use blvm_module_protocol::methods::filesystem::{DirChanged, FsUsage, MAX_PATH_LEN};
use blvm_module_protocol::{ErrorCode, RemoteError};

use crate::sandbox::{AttachedImage, RunAs};

/// Why a filesystem request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// A path that is not a directory beneath the data dir, or a
    /// directory in the wrong state (not empty, missing parent).
    #[error("{0}")]
    Invalid(String),
    /// The data dir's file system is full.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The path changed while it was resolved.
    #[error("{0}")]
    Busy(String),
    /// The data dir is not known (its spawn is over) or an I/O error.
    #[error("{0}")]
    Io(String),
}

impl From<FsError> for RemoteError {
    fn from(e: FsError) -> RemoteError {
        let code = match &e {
            FsError::Invalid(_) => ErrorCode::InvalidParams,
            FsError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            FsError::Busy(_) => ErrorCode::Unavailable,
            FsError::Io(_) => ErrorCode::Internal,
        };
        RemoteError::new(code, e.to_string())
    }
}

/// One spawn's data dir, as the node reaches it.
#[derive(Debug)]
struct DataRoot {
    /// The root of the data dir: the node's detached mount of its image,
    /// or the plain directory.
    fd: OwnedFd,
    /// The quota (image size), when the data dir is a file system of its
    /// own.
    quota_bytes: Option<u64>,
    /// Who directories the node creates belong to: the module's ids
    /// (`None`: the node's own, when it dropped no privileges).
    owner: Option<(u32, u32)>,
}

/// Every running spawn's data dir.
#[derive(Debug, Default)]
pub struct FilesystemService {
    roots: Mutex<HashMap<String, Arc<DataRoot>>>,
}

impl FilesystemService {
    /// Registers the data dir of spawn `module_id`: the image's root when
    /// it has one (`image`), else the directory `data_dir`; `owner` is the
    /// uid/gid it runs as.
    ///
    /// # Errors
    ///
    /// When the data dir cannot be opened.
    pub(crate) fn attach(
        &self,
        module_id: &str,
        data_dir: &Path,
        image: Option<&AttachedImage>,
        owner: Option<RunAs>,
    ) -> std::io::Result<()> {
        let (fd, quota_bytes) = match image {
            Some(image) => (image.root_fd().try_clone_to_owned()?, Some(image.quota_bytes())),
            None => {
                use rustix::fs::{Mode, OFlags};
                let fd = rustix::fs::open(
                    data_dir,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                    Mode::empty(),
                )?;
                (fd, None)
            }
        };
        let root = DataRoot {
            fd,
            quota_bytes,
            owner: owner
                .filter(|_| rustix::process::geteuid().is_root())
                .map(|ids| (ids.uid, ids.gid)),
        };
        self.lock().insert(module_id.to_owned(), Arc::new(root));
        Ok(())
    }

    /// Forgets spawn `module_id`'s data dir (its run ended).
    pub(crate) fn detach(&self, module_id: &str) {
        self.lock().remove(module_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<DataRoot>>> {
        // Inserts and removes only: a panic elsewhere leaves it whole.
        self.roots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn root(&self, module_id: &str) -> Result<Arc<DataRoot>, FsError> {
        self.lock()
            .get(module_id)
            .cloned()
            .ok_or_else(|| FsError::Io(format!("no data dir is known for {module_id}")))
    }

    fn check(path: &str) -> Result<(), FsError> {
        if path.len() > MAX_PATH_LEN || path.contains('\0') {
            return Err(FsError::Invalid(format!(
                "a path of {} bytes, or with a NUL; at most {MAX_PATH_LEN} bytes",
                path.len()
            )));
        }
        Ok(())
    }

    /// `fs_create_dir`: one directory beneath the data dir, its parent
    /// existing; `changed` false when it already was a directory.
    pub fn create_dir(&self, module_id: &str, path: &str) -> Result<DirChanged, FsError> {
        Self::check(path)?;
        let root = self.root(module_id)?;
        let changed = beneath::create_dir(&root.fd, path, root.owner)?;
        Ok(DirChanged { changed, removed: 0 })
    }

    /// `fs_remove_dir`: an empty directory, or (`recursive`) a directory
    /// and everything in it, links removed and never followed.
    pub fn remove_dir(&self, module_id: &str, path: &str, recursive: bool) -> Result<DirChanged, FsError> {
        Self::check(path)?;
        let root = self.root(module_id)?;
        let removed = beneath::remove_dir(&root.fd, path, recursive)?;
        Ok(DirChanged {
            changed: removed > 0,
            removed,
        })
    }

    /// `fs_usage`: the data dir's own file system, or nothing without one.
    pub fn usage(&self, module_id: &str) -> Result<FsUsage, FsError> {
        let root = self.root(module_id)?;
        let Some(quota) = root.quota_bytes else {
            return Ok(FsUsage::default());
        };
        let st = rustix::fs::fstatvfs(root.fd.as_fd()).map_err(|e| FsError::Io(format!("statvfs: {e}")))?;
        let block = st.f_frsize.max(1);
        Ok(FsUsage {
            used_bytes: Some(st.f_blocks.saturating_sub(st.f_bfree).saturating_mul(block)),
            free_bytes: Some(st.f_bavail.saturating_mul(block)),
            quota_bytes: Some(quota),
            used_inodes: Some(st.f_files.saturating_sub(st.f_ffree)),
            total_inodes: Some(st.f_files),
        })
    }
}
