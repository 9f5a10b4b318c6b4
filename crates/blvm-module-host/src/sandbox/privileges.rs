//! Process privileges: an unprivileged uid/gid (when configured and the
//! node is root), `PR_SET_NO_NEW_PRIVS`, and `PR_SET_PDEATHSIG(SIGKILL)`.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Gid, Uid};
use rustix::process::Signal;

use super::Target;

/// The uid and gid a module runs as when the node is root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id (also the only group: supplementary groups are cleared).
    pub gid: u32,
}

impl Default for RunAs {
    /// `nobody`/`nogroup` (65534).
    fn default() -> RunAs {
        RunAs { uid: 65534, gid: 65534 }
    }
}

/// How the module will reach its files, which decides what must be made
/// reachable on the host.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reach {
    /// It has its own mount namespace: the directories above its paths are
    /// the root's own (0755), not the host's.
    pub own_root: bool,
    /// Its data dir is its own file system, already given to it
    /// (`disk`): the host directory is not what it sees.
    pub own_file_system: bool,
}

/// Makes what the module needs reachable by `ids`, in the parent, and
/// nothing more: the data dir (and what is in it) is given to `ids`; the
/// binary and the socket are only *checked*, never changed, because
/// loosening them is the business of whoever created them (the staging
/// in `manager::verify` makes binaries execute-only for others, 0511, in
/// a 0711 directory owned by the node; the IPC server makes the module's
/// socket its own). A path that `ids` could not use is an error naming
/// it, so strict mode refuses the spawn with the reason instead of
/// starting a module that cannot even exec.
///
/// A binary the module may execute but not read makes the kernel mark the
/// process non-dumpable at exec: then no process of the module's own uid
/// (outside the sandbox) can `ptrace` it or read its `/proc/<pid>/environ`
/// (its token). A script must be readable by its interpreter, so for a
/// script read permission is required instead.
pub(super) fn prepare_run_as(ids: RunAs, target: &Target<'_>, reach: Reach) -> Result<(), RunAsError> {
    let uid = Uid::from_raw(ids.uid);
    let gid = Gid::from_raw(ids.gid);
    std::fs::create_dir_all(target.data_dir).map_err(RunAsError::io(target.data_dir))?;
    if !reach.own_file_system {
        chown_tree(target.data_dir, uid, gid).map_err(RunAsError::io(target.data_dir))?;
    }
    let binary = std::fs::metadata(target.binary).map_err(RunAsError::io(target.binary))?;
    let (needed, needs) = if is_script(target.binary) {
        (0o5, "read and execute")
    } else {
        (0o1, "execute")
    };
    if rights(&binary, ids) & needed != needed {
        return Err(RunAsError::Unreachable {
            path: target.binary.to_path_buf(),
            needs,
            ids,
        });
    }
    // A binary the module may rewrite would run changed at its next
    // restart (the re-hash would catch it, but it must not be possible).
    if rights(&binary, ids) & 0o2 != 0 {
        return Err(RunAsError::WritableBinary {
            path: target.binary.to_path_buf(),
            ids,
        });
    }
    // Connecting to a Unix socket needs write permission on its file.
    let socket = std::fs::metadata(target.socket_path).map_err(RunAsError::io(target.socket_path))?;
    if rights(&socket, ids) & 0o2 == 0 {
        return Err(RunAsError::Unreachable {
            path: target.socket_path.to_path_buf(),
            needs: "write (connect)",
            ids,
        });
    }
    if reach.own_root {
        return Ok(());
    }
    for path in [target.binary, target.data_dir, target.socket_path] {
        for dir in path.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()) {
            let meta = std::fs::metadata(dir).map_err(RunAsError::io(dir))?;
            if rights(&meta, ids) & 0o1 == 0 {
                return Err(RunAsError::Unreachable {
                    path: dir.to_path_buf(),
                    needs: "search",
                    ids,
                });
            }
        }
    }
    Ok(())
}

/// Why the module's files cannot be made reachable by its uid/gid.
#[derive(Debug, thiserror::Error)]
pub(super) enum RunAsError {
    /// A file could not be read, created or given away.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The module would lack a right it needs on a path.
    #[error("{} lacks {needs} permission for uid {} gid {}", path.display(), ids.uid, ids.gid)]
    Unreachable {
        /// The path.
        path: PathBuf,
        /// The right missing.
        needs: &'static str,
        /// The module's ids.
        ids: RunAs,
    },
    /// The module could change its own binary.
    #[error("binary {} is writable by uid {} gid {}", path.display(), ids.uid, ids.gid)]
    WritableBinary {
        /// The binary.
        path: PathBuf,
        /// The module's ids.
        ids: RunAs,
    },
}

impl RunAsError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> RunAsError + '_ {
        move |source| RunAsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Gives `dir` and everything under it to `uid`/`gid`: files a root node
/// (or a run without the drop) left there must stay the module's. Never
/// follows a symbolic link (the module may have planted one pointing at
/// a node file): links are changed themselves (`AT_SYMLINK_NOFOLLOW`) and
/// not descended into.
pub(super) fn chown_tree(dir: &Path, uid: Uid, gid: Gid) -> io::Result<()> {
    rustix::fs::chownat(
        rustix::fs::CWD,
        dir,
        Some(uid),
        Some(gid),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if std::fs::symlink_metadata(dir)?.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The permission bits (`rwx` as 0o7) that apply to `ids` on a file, by
/// the kernel's rule: the owner's if it owns it, else the group's if it is
/// the file's group (the module has no supplementary groups), else others'.
pub(super) fn rights(meta: &std::fs::Metadata, ids: RunAs) -> u32 {
    let mode = meta.mode();
    if meta.uid() == ids.uid {
        (mode >> 6) & 0o7
    } else if meta.gid() == ids.gid {
        (mode >> 3) & 0o7
    } else {
        mode & 0o7
    }
}

/// Child side: clears supplementary groups, then sets real, effective and
/// saved gid, then uid (gid first: after the uid change, the gid can no
/// longer be changed). Raw system calls: in the single-threaded child the
/// "thread" variants are the process's.
pub(super) fn drop_to(ids: RunAs) -> Result<(), rustix::io::Errno> {
    let gid = Gid::from_raw(ids.gid);
    let uid = Uid::from_raw(ids.uid);
    rustix::thread::set_thread_groups(&[])?;
    rustix::thread::set_thread_res_gid(gid, gid, gid)?;
    rustix::thread::set_thread_res_uid(uid, uid, uid)?;
    Ok(())
}

/// Child side: `PR_SET_NO_NEW_PRIVS`, so no exec (setuid, file
/// capabilities) can give the module more than it has.
pub(super) fn no_new_privs() -> Result<(), rustix::io::Errno> {
    rustix::thread::set_no_new_privs(true)
}

/// Whether `path` starts with `#!`: run by an interpreter that must read it.
fn is_script(path: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| &head == b"#!")
}

/// A pidfd of the node, opened before the fork, for [`die_with_parent`].
pub(super) fn node_pidfd() -> Option<std::os::fd::OwnedFd> {
    rustix::process::pidfd_open(rustix::process::getpid(), rustix::process::PidfdFlags::empty()).ok()
}

/// Child side: SIGKILL when the parent *thread* dies. The spawner forks
/// from a thread that lives as long as the node (`process::spawner`), so
/// this means "when the node dies". If the node died between fork and
/// this call the signal would never come: then the spawn fails. The node's
/// pidfd tells (it is readable once the node has exited); `getppid` could
/// not, since in the module's own pid namespace the parent is always 0.
pub(super) fn die_with_parent(node: Option<&std::os::fd::OwnedFd>) -> Result<(), rustix::io::Errno> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    let Some(node) = node else {
        return Err(rustix::io::Errno::SRCH);
    };
    let mut fds = [rustix::event::PollFd::new(node, rustix::event::PollFlags::IN)];
    if rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 }))? > 0 {
        return Err(rustix::io::Errno::SRCH);
    }
    Ok(())
}
