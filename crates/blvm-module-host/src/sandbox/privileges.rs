//! Process privileges: an unprivileged uid/gid (when configured and the
//! node is root), `PR_SET_NO_NEW_PRIVS`, and `PR_SET_PDEATHSIG(SIGKILL)`.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{Gid, Uid};
use rustix::process::{Pid, Signal};

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

/// Makes what the module needs reachable by `ids`, in the parent: its
/// data dir is given to it; the socket and the staged binary get `ids.gid`
/// as their group, with group connect / read+exec rights (and the staging
/// directory group search); then every directory above the binary, the
/// data dir and the socket must be searchable by `ids`, else the module
/// could not even start, and this says which one is not.
pub(super) fn prepare_run_as(ids: RunAs, target: &Target<'_>) -> io::Result<()> {
    let uid = Uid::from_raw(ids.uid);
    let gid = Gid::from_raw(ids.gid);
    std::fs::create_dir_all(target.data_dir)?;
    rustix::fs::chown(target.data_dir, Some(uid), Some(gid))?;
    // Connecting to a Unix socket needs write permission on its file.
    rustix::fs::chown(target.socket_path, None, Some(gid))?;
    add_mode(target.socket_path, 0o060)?;
    rustix::fs::chown(target.binary, None, Some(gid))?;
    add_mode(target.binary, 0o050)?;
    if let Some(dir) = target.binary.parent() {
        rustix::fs::chown(dir, None, Some(gid))?;
        add_mode(dir, 0o010)?;
    }
    for path in [target.binary, target.data_dir, target.socket_path] {
        for dir in path.ancestors().skip(1) {
            if !searchable(dir, ids)? {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{} is not searchable by uid {} gid {}", dir.display(), ids.uid, ids.gid),
                ));
            }
        }
    }
    Ok(())
}

fn add_mode(path: &Path, bits: u32) -> io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode((mode | bits) & 0o7777))
}

fn searchable(dir: &Path, ids: RunAs) -> io::Result<bool> {
    let m = std::fs::metadata(dir)?;
    let mode = m.mode();
    Ok(if m.uid() == ids.uid {
        mode & 0o100 != 0
    } else if m.gid() == ids.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    })
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

/// Child side: SIGKILL when the parent *thread* dies. The spawner forks
/// from a thread that lives as long as the node (`process::spawner`), so
/// this means "when the node dies". If the node died between fork and
/// this call the signal would never come: then the parent is already
/// someone else, and the spawn fails.
pub(super) fn die_with_parent(node: Option<Pid>) -> Result<(), rustix::io::Errno> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    if rustix::process::getppid() != node {
        return Err(rustix::io::Errno::SRCH);
    }
    Ok(())
}
