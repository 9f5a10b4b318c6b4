//! The module's own pid, IPC and mount namespaces, and the minimal root
//! its mount namespace shows.
//!
//! - **pid**: the module is process 1 of a fresh pid namespace. It sees no
//!   other process (no other module to signal, freeze, renice or
//!   `prlimit`, no node), and when it exits the kernel kills everything it
//!   left in the namespace. The namespace is created by the spawner thread
//!   around its fork ([`fork_in_new_pid_namespace`]): only a process
//!   *created* in a pid namespace belongs to it.
//! - **IPC**: SysV shared memory, semaphores, message queues and POSIX
//!   message queues of one module are invisible to every other, and die
//!   with it.
//! - **mount**: the root is an empty tmpfs holding only what the module
//!   needs, each at the path it has on the host (so `BLVM_MODULE_*` paths
//!   stay true): read-only system directories and files, its binary, the
//!   devices it may use, its data dir (mounted read-write, Landlock
//!   grants what the capabilities say; its own file system when it has a
//!   disk quota), its socket, a private `/tmp` and its own
//!   `/proc`. No host socket under `/run`, no other module's data dir, no
//!   node directory exists there to `stat`, watch or connect to. The root
//!   itself is read-only.
//!
//! Everything the child does is prepared by [`MountPlan::new`] in the
//! parent: every path as a C string, in order. The child takes a detached
//! copy (`open_tree`) of every source first, while host names still mean
//! what they mean on the host, then builds the root from those copies.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

/// Whether the node can create namespaces: it must be root (`CAP_SYS_ADMIN`)
/// and the kernel must have them.
pub(super) fn available(kind: &str) -> Result<(), String> {
    if !Path::new(&format!("/proc/self/ns/{kind}")).exists() {
        return Err(format!("this kernel has no {kind} namespaces"));
    }
    if !rustix::process::geteuid().is_root() {
        return Err(format!(
            "the node is not root (CAP_SYS_ADMIN is needed to create a {kind} namespace)"
        ));
    }
    Ok(())
}

/// Runs `fork` (which must create exactly one child, on this thread) so
/// that the child is process 1 of a new pid namespace, then puts this
/// thread's "namespace for children" back to the node's own, so nothing
/// else this thread forks lands there.
///
/// `unshare(CLONE_NEWPID)` changes the namespace of the calling *thread's*
/// future children only; it cannot be called twice in a row (the kernel
/// refuses while the pending namespace differs from the active one), hence
/// the `setns` back to the active one after every fork.
pub(crate) fn fork_in_new_pid_namespace<T>(fork: impl FnOnce() -> T) -> std::io::Result<T> {
    let own = rustix::fs::open(
        "/proc/thread-self/ns/pid",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    #[allow(unsafe_code)]
    // SAFETY: CLONE_NEWPID changes no state of this process's memory or
    // threads: only the pid namespace of this thread's next children.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWPID) }?;
    let out = fork();
    if let Err(e) = rustix::thread::move_into_link_name_space(own.as_fd(), Some(LinkNameSpaceType::ProcessID)) {
        // Every later fork of this thread would land in the spent
        // namespace and fail: say so loudly, the spawn itself succeeded.
        tracing::error!(error = %e, "cannot restore the spawner thread's pid namespace");
    }
    Ok(out)
}

/// Child side: its own IPC namespace.
#[allow(unsafe_code)]
pub(super) fn unshare_ipc_in_child() -> Result<(), Errno> {
    // SAFETY: the forked child has one thread; the IPC namespace backs no
    // memory of the process.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWIPC) }
}

/// One thing made visible in the module's root.
#[derive(Debug)]
struct Entry {
    /// Its host path.
    source: CString,
    /// Its path under the new root.
    target: CString,
    kind: Kind,
    /// A detached mount to attach instead of `source` (the data dir's own
    /// file system), made by the parent.
    mount: Option<OwnedFd>,
    /// The child's detached copy of `source` (`open_tree`), taken before
    /// the new root hides anything.
    tree: Option<OwnedFd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A read-only bind of a directory.
    ReadOnlyDir,
    /// A read-only bind of a file.
    ReadOnlyFile,
    /// A device node, read-write (no `nodev`).
    Device,
    /// A device node, read-only (no `nodev`): `/dev/urandom`.
    ReadOnlyDevice,
    /// A symbolic link, recreated as it is on the host (merged-`/usr`
    /// systems have `/bin -> usr/bin`, `/lib -> usr/lib`): `source` holds
    /// the link's text.
    Symlink,
    /// A read-write bind of a directory (the data dir without a quota).
    WritableDir,
    /// A bind of a socket file (connectable; nothing to write).
    Socket,
    /// A detached mount moved into place (the data dir's own file system).
    Mount,
}

/// What one module's root holds, prepared before the fork.
#[derive(Debug)]
pub(crate) struct MountPlan {
    /// Where the new root is mounted before `pivot_root`.
    root: CString,
    /// Directories to create under the root, parents first.
    dirs: Vec<CString>,
    entries: Vec<Entry>,
    proc_dir: CString,
    tmp_dir: CString,
    workdir: CString,
}

/// What goes into a module's root.
pub(crate) struct RootContents<'a> {
    /// Read-only paths (directories or files); missing ones are skipped.
    pub read_only: Vec<&'a Path>,
    /// Device nodes, read-write.
    pub devices: &'a [&'a str],
    /// Its data dir, read-write.
    pub data_dir: &'a Path,
    /// The data dir's own file system, if it has a quota: a detached mount.
    pub data_mount: Option<OwnedFd>,
    /// The socket the module connects to.
    pub socket: &'a Path,
    /// The process's working directory (inside the root).
    pub workdir: &'a Path,
}

/// Top-level directories that merged-`/usr` systems make links into
/// `/usr`: recreated as links (only when they are links on the host), so
/// `/bin/sh` means in the module what it means on the host.
pub(super) const MERGED_USR_LINKS: [&str; 6] = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// Where the child mounts its new root before pivoting into it. Any
/// directory will do: the mount is private to the child's namespace, and
/// every source is copied (`open_tree`) before this mount could hide it.
const STAGING_ROOT: &str = "/tmp";

fn c_path(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} contains a NUL byte", p.display()))
}

fn under_root(p: &Path) -> PathBuf {
    Path::new(STAGING_ROOT).join(p.strip_prefix("/").unwrap_or(p))
}

/// Adds `dir` and every directory above it (under the new root, not the
/// root itself) to `dirs`, once each.
fn add_dirs(dirs: &mut Vec<PathBuf>, dir: &Path) {
    for d in dir.ancestors() {
        if d.starts_with(STAGING_ROOT) && d != Path::new(STAGING_ROOT) && !dirs.iter().any(|x| x == d) {
            dirs.push(d.to_path_buf());
        }
    }
}

impl MountPlan {
    /// Lays out every path (the child opens the sources).
    pub(crate) fn new(contents: RootContents<'_>) -> Result<MountPlan, String> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut entries = Vec::new();
        let mut add = |path: &Path, kind: Kind, mount: Option<OwnedFd>| -> Result<(), String> {
            if !path.is_absolute() {
                return Err(format!("{} is not absolute", path.display()));
            }
            if let (Kind::ReadOnlyFile, Ok(link)) = (kind, std::fs::read_link(path)) {
                // A link is shown as a link; what it points at is reachable
                // only if it is shown too (the system dirs are).
                let target = under_root(path);
                if let Some(parent) = target.parent() {
                    add_dirs(&mut dirs, parent);
                }
                entries.push(Entry {
                    source: c_path(&link)?,
                    target: c_path(&target)?,
                    kind: Kind::Symlink,
                    mount: None,
                    tree: None,
                });
                return Ok(());
            }
            let kind = match (kind, std::fs::metadata(path)) {
                (Kind::Mount, _) => Kind::Mount,
                // Optional system paths this host lacks are skipped.
                (Kind::ReadOnlyFile | Kind::Device, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(())
                }
                (_, Err(e)) => return Err(format!("{}: {e}", path.display())),
                (Kind::ReadOnlyFile, Ok(meta)) if meta.is_dir() => Kind::ReadOnlyDir,
                (Kind::ReadOnlyFile, Ok(meta))
                    if {
                        use std::os::unix::fs::FileTypeExt;
                        meta.file_type().is_char_device() || meta.file_type().is_block_device()
                    } =>
                {
                    Kind::ReadOnlyDevice
                }
                (kind, Ok(_)) => kind,
            };
            let target = under_root(path);
            let parent_of_target = if matches!(kind, Kind::ReadOnlyDir | Kind::WritableDir | Kind::Mount) {
                Some(target.as_path())
            } else {
                target.parent()
            };
            if let Some(dir) = parent_of_target {
                add_dirs(&mut dirs, dir);
            }
            entries.push(Entry {
                source: c_path(path)?,
                target: c_path(&target)?,
                kind,
                mount,
                tree: None,
            });
            Ok(())
        };
        for path in &contents.read_only {
            add(path, Kind::ReadOnlyFile, None)?;
        }
        for path in MERGED_USR_LINKS {
            let path = Path::new(path);
            if path.is_symlink() && !contents.read_only.contains(&path) {
                add(path, Kind::ReadOnlyFile, None)?;
            }
        }
        for dev in contents.devices {
            add(Path::new(dev), Kind::Device, None)?;
        }
        match contents.data_mount {
            Some(fd) => add(contents.data_dir, Kind::Mount, Some(fd))?,
            None => add(contents.data_dir, Kind::WritableDir, None)?,
        }
        add(contents.socket, Kind::Socket, None)?;
        for special in ["/proc", "/tmp"] {
            dirs.push(under_root(Path::new(special)));
        }
        // Parents before children; `/tmp` (the module's private one) comes
        // early so a target under the host's /tmp is created inside it.
        dirs.sort_by_key(|d| d.components().count());
        dirs.dedup();
        // A mount whose target lies under another's must come after it.
        entries.sort_by_key(|e| e.target.as_bytes().iter().filter(|b| **b == b'/').count());
        Ok(MountPlan {
            root: c_path(Path::new(STAGING_ROOT))?,
            dirs: dirs.iter().map(|d| c_path(d)).collect::<Result<_, _>>()?,
            entries,
            proc_dir: c_path(&under_root(Path::new("/proc")))?,
            tmp_dir: c_path(&under_root(Path::new("/tmp")))?,
            workdir: c_path(contents.workdir)?,
        })
    }

    /// Child side: a new mount namespace, the root built and pivoted into.
    /// Only system calls on what `new` prepared.
    #[allow(unsafe_code)]
    pub(super) fn enter_in_child(&mut self) -> Result<(), Errno> {
        // SAFETY: the forked child has one thread, so unsharing its mount
        // namespace (and with it its filesystem context) affects no other.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }?;
        // Nothing done here may propagate back to the host's mounts.
        rustix::mount::mount_change(c"/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)?;
        // Detached copies of every source, taken in this namespace (a bind
        // from a mount of another namespace is refused) and before the new
        // root's tmpfs can hide a source below it.
        for e in &mut self.entries {
            if e.mount.is_none() && e.kind != Kind::Symlink {
                e.tree = Some(rustix::mount::open_tree(
                    rustix::fs::CWD,
                    e.source.as_c_str(),
                    OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
                )?);
            }
        }
        let plain = MountFlags::NOSUID | MountFlags::NODEV;
        rustix::mount::mount(c"tmpfs", self.root.as_c_str(), c"tmpfs", plain, c"mode=0755,size=4m")?;
        for dir in &self.dirs {
            match rustix::fs::mkdir(dir.as_c_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
            if dir == &self.tmp_dir {
                // The module's private /tmp, before anything is put under it.
                rustix::mount::mount(c"tmpfs", dir.as_c_str(), c"tmpfs", plain, c"mode=1777,size=64m")?;
            }
        }
        for e in &self.entries {
            if e.kind == Kind::Symlink {
                match rustix::fs::symlink(e.source.as_c_str(), e.target.as_c_str()) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(err) => return Err(err),
                }
                continue;
            }
            if matches!(
                e.kind,
                Kind::ReadOnlyFile | Kind::Device | Kind::ReadOnlyDevice | Kind::Socket
            ) {
                match rustix::fs::open(
                    e.target.as_c_str(),
                    OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                ) {
                    Ok(fd) => drop(fd),
                    Err(Errno::EXIST) => {}
                    Err(err) => return Err(err),
                }
            }
            let Some(tree) = e.mount.as_ref().or(e.tree.as_ref()) else {
                return Err(Errno::BADF);
            };
            rustix::mount::move_mount(
                tree.as_fd(),
                c"",
                rustix::fs::CWD,
                e.target.as_c_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )?;
            let flags = match e.kind {
                Kind::ReadOnlyDir | Kind::ReadOnlyFile => MountFlags::RDONLY | plain,
                Kind::Device => MountFlags::NOSUID,
                Kind::ReadOnlyDevice => MountFlags::RDONLY | MountFlags::NOSUID,
                Kind::WritableDir | Kind::Socket => plain,
                Kind::Mount | Kind::Symlink => continue,
            };
            rustix::mount::mount_remount(e.target.as_c_str(), flags | MountFlags::BIND, c"")?;
        }
        rustix::mount::mount(
            c"proc",
            self.proc_dir.as_c_str(),
            c"proc",
            plain | MountFlags::NOEXEC,
            None,
        )?;
        rustix::process::chdir(self.root.as_c_str())?;
        rustix::process::pivot_root(c".", c".")?;
        rustix::mount::unmount(c".", UnmountFlags::DETACH)?;
        rustix::mount::mount_remount(c"/", MountFlags::RDONLY | plain, c"")?;
        rustix::process::chdir(self.workdir.as_c_str())?;
        Ok(())
    }
}
