//! cgroup v1: where each controller's hierarchy is mounted, and where the
//! module's groups go in it.
//!
//! Used for a limit when the cgroup v2 hierarchy does not offer its
//! controller (hybrid hosts, where memory, pids and cpu are bound to v1
//! hierarchies and v2 has only its core). Each limit then gets its own
//! group, `<node's path in that hierarchy>/blvm-modules/<id>-<node pid>-<n>`,
//! created and removed by [`super::groups`].

use std::io;
use std::path::{Path, PathBuf};

/// `<mount of controller><node's path in that hierarchy>/blvm-modules`.
pub(super) fn parent(controller: &str, mount_override: Option<&Path>) -> io::Result<PathBuf> {
    let (mount, root) = match mount_override {
        // An operator-given mount is taken to show the whole hierarchy.
        Some(path) => (path.to_path_buf(), "/".to_owned()),
        None => v1_mount(controller).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no cgroup v1 hierarchy with the {controller} controller is mounted"),
            )
        })?,
    };
    // Checked before anything is created: on a plain directory (a wrong
    // override, an unmounted hierarchy) `create_dir_all` and the limit
    // writes would all "succeed" and limit nothing.
    if !mount.join("cgroup.procs").is_file() || !is_cgroup_v1_fs(&mount) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{} is not a cgroup v1 hierarchy with the {controller} controller",
                mount.display()
            ),
        ));
    }
    let own = std::fs::read_to_string("/proc/self/cgroup")?;
    let path = own
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == controller).then(|| path.to_owned())
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the node is in no {controller} cgroup"),
            )
        })?;
    let rel = path
        .strip_prefix(root.as_str())
        .unwrap_or(&path)
        .trim_start_matches('/');
    Ok(mount.join(rel).join(crate::process::MODULES_GROUP))
}

/// True when `path` lies on a cgroup v1 filesystem (`CGROUP_SUPER_MAGIC`).
fn is_cgroup_v1_fs(path: &Path) -> bool {
    const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
    // `f_type`'s width and sign differ between architectures; the magic
    // fits in the low 32 bits everywhere.
    rustix::fs::statfs(path).is_ok_and(|s| (s.f_type as u64) & 0xffff_ffff == CGROUP_SUPER_MAGIC)
}

/// Mount point and mounted root of the v1 hierarchy holding `controller`.
fn v1_mount(controller: &str) -> Option<(PathBuf, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_ascii_whitespace();
        if r.next()? != "cgroup" {
            return None;
        }
        let opts = r.nth(1)?;
        if !opts.split(',').any(|o| o == controller) {
            return None;
        }
        let mut f = left.split_ascii_whitespace();
        let root = f.nth(3)?;
        let point = f.next()?;
        Some((Path::new(point).to_path_buf(), root.to_owned()))
    })
}
