//! The disk quota of a module: its data dir is its own ext4 file system,
//! kept in a preallocated image file, so the kernel stops the module at its
//! quota with `ENOSPC` and the node's file systems (the chain store above
//! all) never see its writes.
//!
//! Measured before this existed: a module filled the host's file system
//! through its data dir and the node then failed every block with "No space
//! left on device". Project quotas would need the host file system mounted
//! with `prjquota`, which the node cannot arrange; an image needs only root
//! and a loop device. The image is preallocated (`fallocate`), not sparse,
//! so the space a module may use is taken from the host when its quota is
//! set, not when the module writes: a full host file system cannot be made
//! fuller by a module.
//!
//! # Life of an image
//!
//! `<data_dir>/.images/<name>.ext4` is created the first time a module
//! with a quota starts (`mkfs.ext4 -d` copies what its plain data dir held
//! into it, so data from before the quota is kept), grown with `resize2fs`
//! when the operator raises the quota, and attached to a loop device once
//! per node run ([`DiskImages`] keeps it, so a restart of the module mounts
//! the same device and therefore the same superblock: two loop devices on
//! one image would be two file systems writing the same blocks). The node
//! holds a detached mount of it (`fsmount`) for the run; each spawn gets
//! another detached mount of the same superblock, which its child attaches
//! at the data dir's path inside its own mount namespace
//! (`namespaces`), so the file system is never mounted in the host's
//! namespace and nothing has to be unmounted when a module or the node
//! dies. The loop device is created with `LO_FLAGS_AUTOCLEAR`: it detaches
//! itself once the node's last mount of it is gone.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

use super::RunAs;

/// The smallest quota an ext4 image can carry with its journal.
pub const MIN_QUOTA_BYTES: u64 = 8 << 20;

/// The images of one node's modules, attached for the node's run.
#[derive(Debug, Default)]
pub struct DiskImages {
    attached: Mutex<BTreeMap<PathBuf, Arc<AttachedImage>>>,
}

/// One module's image, attached to a loop device and mounted (detached)
/// by the node.
#[derive(Debug)]
pub struct AttachedImage {
    image: PathBuf,
    /// `/dev/loopN`, for `fsconfig`.
    device: CString,
    /// The node's detached mount: keeps the superblock (and with it the
    /// loop device) alive between spawns, and answers usage questions.
    master: OwnedFd,
    /// The quota, bytes (the image's size).
    bytes: u64,
}

/// A data dir's file system, in use: bytes used and available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Bytes in use.
    pub used: u64,
    /// The file system's size, bytes.
    pub size: u64,
}

impl AttachedImage {
    /// A fresh detached mount of the image's file system for one spawn:
    /// the same superblock as the node's, so every spawn sees the same data.
    pub(crate) fn mount_for_spawn(&self) -> std::io::Result<OwnedFd> {
        new_mount(&self.device)
    }

    /// The image file.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The quota, bytes.
    pub fn quota_bytes(&self) -> u64 {
        self.bytes
    }

    /// What the module's file system holds now.
    pub fn usage(&self) -> std::io::Result<DiskUsage> {
        let st = rustix::fs::fstatvfs(&self.master)?;
        let block = st.f_frsize.max(1);
        Ok(DiskUsage {
            used: (st.f_blocks.saturating_sub(st.f_bfree)).saturating_mul(block),
            size: st.f_blocks.saturating_mul(block),
        })
    }

    /// The node's own mount, to reach the file system's root (its fd as a
    /// `/proc/self/fd` path).
    pub(crate) fn root_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.master.as_fd()
    }
}

impl DiskImages {
    /// The image of module `name` for a spawn: created, grown and attached
    /// as needed; `data_dir` is its plain data dir (copied into a new
    /// image), `ids` the owner of the file system's root.
    ///
    /// # Errors
    ///
    /// A message naming what failed: no root, no loop device, no
    /// `mkfs.ext4`, a full host file system.
    pub fn attach(
        &self,
        images_dir: &Path,
        name: &str,
        data_dir: &Path,
        bytes: u64,
        ids: Option<RunAs>,
    ) -> Result<Arc<AttachedImage>, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("the node is not root (a loop device and a mount are needed)".into());
        }
        let bytes = bytes.max(MIN_QUOTA_BYTES);
        let image = images_dir.join(format!("{name}.ext4"));
        let mut attached = self.attached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = attached.get(&image) {
            if existing.bytes >= bytes {
                return Ok(Arc::clone(existing));
            }
            // A raised quota takes effect at the next node start: the image
            // cannot be resized while a spawn may still have it mounted.
            tracing::warn!(module = name, "raised disk quota applies after the node restarts");
            return Ok(Arc::clone(existing));
        }
        std::fs::create_dir_all(images_dir).map_err(|e| format!("{}: {e}", images_dir.display()))?;
        std::fs::set_permissions(images_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", images_dir.display()))?;
        let created = prepare_image(&image, data_dir, bytes, ids)?;
        let (loop_dev, device) = attach_loop(&image)?;
        let master = new_mount(&device).map_err(|e| format!("cannot mount {}: {e}", image.display()))?;
        if let Some(ids) = ids {
            give_root_to(&master, ids, created)?;
        }
        // The superblock now holds the device open; ours can go (with
        // AUTOCLEAR, the device detaches once the last mount is gone).
        drop(loop_dev);
        let entry = Arc::new(AttachedImage {
            image: image.clone(),
            device,
            master,
            bytes: std::fs::metadata(&image).map(|m| m.len()).unwrap_or(bytes),
        });
        attached.insert(image, Arc::clone(&entry));
        Ok(entry)
    }
}

/// Creates the image if missing (preallocated, ext4, root owned by `ids`,
/// holding a copy of `data_dir`), or grows it to `bytes`. True when it
/// was created now.
fn prepare_image(image: &Path, data_dir: &Path, bytes: u64, ids: Option<RunAs>) -> Result<bool, String> {
    let show = |e: std::io::Error| format!("{}: {e}", image.display());
    match std::fs::metadata(image) {
        Ok(meta) if meta.len() >= bytes => return Ok(false),
        Ok(_) => {
            // Grow: extend the file, then the file system (offline: the
            // image is not attached yet in this node run).
            preallocate(image, bytes).map_err(show)?;
            return run(Command::new("resize2fs").arg("-f").arg(image), "resize2fs").map(|()| false);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(show(e)),
    }
    let tmp = image.with_extension("ext4.new");
    let _ = std::fs::remove_file(&tmp);
    preallocate(&tmp, bytes).map_err(show)?;
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-m", "0"]);
    let mut extended = "lazy_itable_init=1,lazy_journal_init=1".to_owned();
    if let Some(ids) = ids {
        extended.push_str(&format!(",root_owner={}:{}", ids.uid, ids.gid));
    }
    mkfs.arg("-E").arg(extended);
    if std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some()) {
        tracing::info!(data_dir = %data_dir.display(), "copying the module's data into its new disk image");
        mkfs.arg("-d").arg(data_dir);
    }
    mkfs.arg(&tmp);
    if let Err(e) = run(&mut mkfs, "mkfs.ext4") {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, image).map_err(show)?;
    Ok(true)
}

fn preallocate(path: &Path, bytes: u64) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, bytes)?;
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .map_err(|e| format!("cannot run {what} (e2fsprogs): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A new detached mount of the ext4 file system on `device`.
fn new_mount(device: &CString) -> std::io::Result<OwnedFd> {
    let fs = rustix::mount::fsopen("ext4", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_set_string(&fs, "source", device.as_c_str())?;
    rustix::mount::fsconfig_create(&fs)?;
    Ok(rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )?)
}

/// Makes the file system's root, and everything in it, belong to the
/// module: always for a new image (`mkfs -d` copies files with the owners
/// they had, say an earlier shared uid), else when its root is not the
/// module's (the operator changed `uid_range`).
fn give_root_to(mount: &OwnedFd, ids: RunAs, created: bool) -> Result<(), String> {
    let st = rustix::fs::fstat(mount).map_err(|e| format!("stat of the image's root: {e}"))?;
    if !created && st.st_uid == ids.uid && st.st_gid == ids.gid {
        return Ok(());
    }
    // `/.` so the walk, which never follows a link, starts *through* the
    // magic link to the mount's root rather than at the link itself.
    let root = PathBuf::from(format!("/proc/self/fd/{}/.", mount.as_raw_fd()));
    super::privileges::chown_tree(
        &root,
        rustix::fs::Uid::from_raw(ids.uid),
        rustix::fs::Gid::from_raw(ids.gid),
    )
    .map_err(|e| format!("cannot give the image's files to uid {}: {e}", ids.uid))
}

// The loop device ABI (linux/loop.h). No maintained crate without a
// bindgen build offers it; these are the kernel's stable ioctl numbers and
// structs, used as documented in loop(4).
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Attaches `image` to a free loop device with autoclear; returns the
/// device's fd and path. A device another process takes between the two ioctls is
/// `EBUSY`: try the next free one.
#[allow(unsafe_code)]
fn attach_loop(image: &Path) -> Result<(OwnedFd, CString), String> {
    let control = rustix::fs::open("/dev/loop-control", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("/dev/loop-control: {e}"))?;
    let backing = rustix::fs::open(image, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("{}: {e}", image.display()))?;
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device
        // number or -1; the fd is valid for the call.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(format!("no free loop device: {}", std::io::Error::last_os_error()));
        }
        let path = format!("/dev/loop{n}");
        let dev = match rustix::fs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => return Err(format!("{path}: {e}")),
        };
        let config = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_AUTOCLEAR,
                lo_file_name: [0; 64],
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads one `struct loop_config`, which
        // `config` is (repr(C), the kernel's layout), for the duration of
        // the call; both fds are valid.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &config as *const LoopConfig) };
        if r == 0 {
            return CString::new(path).map(|p| (dev, p)).map_err(|e| e.to_string());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(format!("cannot attach {} to {path}: {e}", image.display()));
        }
    }
    Err("every free loop device was taken before it could be configured".into())
}
