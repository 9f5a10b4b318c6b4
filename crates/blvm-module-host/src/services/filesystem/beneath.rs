//! Path operations beneath a module's data dir, done by the node (root) on
//! a directory the module controls.
//!
//! Every lookup is `openat2` relative to the data dir's root fd with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV`: the kernel, not a string check, refuses an absolute
//! path, a `..` that would leave the root, any symbolic link on the way
//! (including the last component), a `/proc` magic link and a crossing
//! into another mount. The module may change its tree while the node works
//! on it; every step therefore works on fds opened this way (`mkdirat`,
//! `unlinkat` relative to such an fd, on a single component), so a
//! directory swapped for a link between two steps is refused (`ELOOP`) or
//! the link itself is removed, never followed.

use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::FsError;

/// How every path is resolved.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// The deepest tree a recursive removal walks (one open fd per level).
pub(super) const MAX_DEPTH: usize = 128;

/// Mode of a directory the node creates for a module (its owner is the
/// module's uid).
const DIR_MODE: u32 = 0o700;

/// Opens directory `path` beneath `root` (`.` for the root itself), for
/// listing and as the dirfd of later calls. No `O_NOFOLLOW`: a link as
/// the last component is then refused by `RESOLVE_NO_SYMLINKS` (`ELOOP`,
/// "a symbolic link") rather than opened as itself (`ENOTDIR`).
fn open_dir(root: &OwnedFd, path: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
}

/// `path` as its parent directory and its last component. The parent
/// keeps its trailing `/`, so an absolute path stays absolute and the
/// kernel refuses it. A path naming no directory (empty, `/`, ending in
/// `.` or `..`) is refused here: there is nothing to create or remove.
fn split(path: &str) -> Result<(&str, &str), FsError> {
    let trimmed = path.trim_end_matches('/');
    let (parent, name) = match trimmed.rfind('/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (".", trimmed),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(FsError::Invalid(format!(
            "`{path}` names no directory beneath the data dir (give a relative path ending in a name)"
        )));
    }
    Ok((parent, name))
}

/// What a failed lookup or call of `path` means, in the module's words.
fn explain(path: &str, errno: Errno) -> FsError {
    match errno {
        Errno::XDEV => FsError::Invalid(format!(
            "`{path}` is not beneath the data dir (an absolute path, a `..` leaving it, or another mount)"
        )),
        Errno::LOOP => FsError::Invalid(format!(
            "`{path}` goes through a symbolic link, which the node never follows"
        )),
        Errno::NOENT => FsError::Invalid(format!("`{path}`: a directory on the way does not exist")),
        Errno::NOTDIR => FsError::Invalid(format!("`{path}`: not a directory")),
        Errno::NOTEMPTY => FsError::Invalid(format!("`{path}` is not empty (remove it with `recursive`)")),
        Errno::NOSPC | Errno::DQUOT => FsError::QuotaExceeded(format!("`{path}`: the data dir is full")),
        Errno::AGAIN => FsError::Busy(format!("`{path}` changed while it was resolved; try again")),
        Errno::NAMETOOLONG => FsError::Invalid(format!("`{path}`: a name is too long")),
        other => FsError::Io(format!("`{path}`: {other}")),
    }
}

/// Creates directory `path` beneath `root`, owned by `owner`. False when
/// it already was a directory.
pub(super) fn create_dir(root: &OwnedFd, path: &str, owner: Option<(u32, u32)>) -> Result<bool, FsError> {
    let (parent, name) = split(path)?;
    let dir = open_dir(root, parent).map_err(|e| explain(path, e))?;
    match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) => {
            if let Some((uid, gid)) = owner {
                // Opened again as it is now: had the module swapped it for a
                // link, this refuses rather than chown through it.
                let made = open_dir(&dir, name).map_err(|e| explain(path, e))?;
                rustix::fs::fchown(
                    &made,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .map_err(|e| explain(path, e))?;
            }
            Ok(true)
        }
        // Something is there: fine if it is a directory (not a link to one).
        Err(Errno::EXIST) => open_dir(&dir, name).map(|_| false).map_err(|e| explain(path, e)),
        Err(e) => Err(explain(path, e)),
    }
}

/// Removes directory `path` beneath `root`: only when empty, or with
/// everything in it (`recursive`). Answers how many entries went (0: it did
/// not exist).
pub(super) fn remove_dir(root: &OwnedFd, path: &str, recursive: bool) -> Result<u64, FsError> {
    let (parent, name) = split(path)?;
    let dir = open_dir(root, parent).map_err(|e| explain(path, e))?;
    // The target itself must be a directory reached without a link.
    let target = match open_dir(&dir, name) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(0),
        Err(e) => return Err(explain(path, e)),
    };
    let mut removed = 0;
    if recursive {
        removed += empty_tree(target, path, 0)?;
    } else {
        drop(target);
    }
    match rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR) {
        Ok(()) => Ok(removed + 1),
        Err(e) => Err(explain(path, e)),
    }
}

/// Removes everything in directory `dir` (reached as `shown`, for errors),
/// never following a link; answers the number of entries removed.
fn empty_tree(dir: OwnedFd, shown: &str, depth: usize) -> Result<u64, FsError> {
    if depth >= MAX_DEPTH {
        return Err(FsError::Invalid(format!(
            "`{shown}` is more than {MAX_DEPTH} directories deep; remove its innermost directories first"
        )));
    }
    // The names first, then the removals: the listing is not changed under
    // the iterator.
    let names: Vec<CString> = rustix::fs::Dir::read_from(&dir)
        .map_err(|e| explain(shown, e))?
        .filter_map(|entry| match entry {
            Ok(entry) => {
                let name = entry.file_name();
                (name != c"." && name != c"..").then(|| Ok(name.to_owned()))
            }
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()
        .map_err(|e| explain(shown, e))?;
    let mut removed = 0;
    for name in &names {
        let kind = rustix::fs::statat(&dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode));
        let inner = || format!("{shown}/{}", name.to_string_lossy());
        match kind {
            Ok(FileType::Directory) => {
                let sub = open_dir_c(&dir, name).map_err(|e| explain(&inner(), e))?;
                removed += empty_tree(sub, &inner(), depth + 1)?;
                rustix::fs::unlinkat(&dir, name.as_c_str(), AtFlags::REMOVEDIR).map_err(|e| explain(&inner(), e))?;
            }
            // A file, a link (removed itself, never its target), a socket.
            Ok(_) => rustix::fs::unlinkat(&dir, name.as_c_str(), AtFlags::empty()).map_err(|e| explain(&inner(), e))?,
            // Gone meanwhile (the module removed it): nothing to do.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(explain(&inner(), e)),
        }
        removed += 1;
    }
    Ok(removed)
}

fn open_dir_c(dir: &OwnedFd, name: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(tag: &str) -> (std::path::PathBuf, OwnedFd) {
        let dir = std::env::temp_dir().join(format!("blvm-beneath-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("dir");
        let fd = rustix::fs::open(
            dir.join("data"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open");
        (dir, fd)
    }

    #[test]
    fn a_path_naming_no_directory_is_refused_before_the_kernel_sees_it() {
        for path in ["", "/", ".", "a/..", "a/.", "//"] {
            assert!(split(path).is_err(), "{path:?}");
        }
        assert_eq!(split("a/b/").ok(), Some(("a/", "b")));
        assert_eq!(split("/etc").ok(), Some(("/", "etc")));
        assert_eq!(split("x").ok(), Some((".", "x")));
    }

    #[test]
    fn escapes_are_refused_by_the_kernel_and_nothing_outside_changes() {
        let (dir, fd) = root("escape");
        std::fs::create_dir(dir.join("outside")).expect("outside");
        std::fs::write(dir.join("outside/keep"), b"k").expect("keep");
        std::os::unix::fs::symlink(dir.join("outside"), dir.join("data/link")).expect("link");
        for (path, why) in [
            ("../outside/new", "not beneath"),
            ("/tmp/blvm-never", "not beneath"),
            ("link/new", "symbolic link"),
            ("link", "symbolic link"),
        ] {
            let e = create_dir(&fd, path, None).expect_err(path);
            assert!(
                matches!(e, FsError::Invalid(_)) && e.to_string().contains(why),
                "{path}: {e}"
            );
        }
        for (path, why) in [
            ("../outside", "not beneath"),
            ("link", "symbolic link"),
            ("link/x", "symbolic link"),
            ("/tmp", "not beneath"),
        ] {
            let e = remove_dir(&fd, path, true).expect_err(path);
            assert!(
                matches!(e, FsError::Invalid(_)) && e.to_string().contains(why),
                "{path}: {e}"
            );
        }
        assert!(dir.join("outside/keep").exists());
        assert!(!dir.join("outside/new").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_recursive_removal_removes_links_inside_and_never_what_they_point_to() {
        let (dir, fd) = root("recursive");
        std::fs::create_dir(dir.join("outside")).expect("outside");
        std::fs::write(dir.join("outside/keep"), b"k").expect("keep");
        assert!(create_dir(&fd, "a", None).expect("a"));
        assert!(!create_dir(&fd, "a", None).expect("again"));
        assert!(create_dir(&fd, "a/b", None).expect("a/b"));
        std::fs::write(dir.join("data/a/b/f"), b"f").expect("f");
        std::os::unix::fs::symlink(dir.join("outside"), dir.join("data/a/out")).expect("link");
        let e = remove_dir(&fd, "a", false).expect_err("not empty");
        assert!(e.to_string().contains("not empty"), "{e}");
        // a, a/b, a/b/f, a/out.
        assert_eq!(remove_dir(&fd, "a", true).expect("removed"), 4);
        assert_eq!(remove_dir(&fd, "a", true).expect("absent"), 0);
        assert!(dir.join("outside/keep").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
