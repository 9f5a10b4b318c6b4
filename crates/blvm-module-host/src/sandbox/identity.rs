//! One identity per module: the uid/gid a module runs as when the node is
//! root.
//!
//! Modules that share a uid can signal, freeze, renice and `prlimit` each
//! other, read each other's `/proc/<pid>/environ`, and change each other's
//! files (measured: issue 8). So each module gets its own uid and gid (the
//! same number), allocated by the node from a range that no account of the
//! host uses, and never the system's `nobody`. The allocation is stable per
//! module *name* and kept in a small file in the modules' data dir, so a
//! module keeps owning its data across restarts, reloads and node restarts,
//! and a name that was unloaded keeps its number (its data may still be
//! there).
//!
//! The file is plain text, one `<uid> <name>` per line, written atomically
//! (temp file, then rename). It is the node's: the modules' data dirs are
//! siblings, and no module can reach the file (mount namespace, Landlock).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::RunAs;

/// Who modules run as when the node runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Each module its own uid and gid (equal), allocated from
    /// `first ..= first + count - 1` and stable per module name (default).
    PerModule {
        /// The first uid of the range.
        first: u32,
        /// How many uids the range has.
        count: u32,
    },
    /// Every module the same ids. Modules are then not isolated from each
    /// other (one can signal another); kept for operators who must map
    /// modules to one existing account.
    Shared(RunAs),
    /// Modules keep the node's ids (no uid drop).
    Node,
}

impl Identity {
    /// The default range: 65 536 uids from 1 500 000 000, far above the
    /// accounts distributions create (below 60 000), `nobody` (65 534),
    /// systemd's dynamic users (61 184–65 519) and the usual
    /// `/etc/subuid` blocks (from 100 000, 65 536 each).
    pub const DEFAULT_FIRST_UID: u32 = 1_500_000_000;
    /// Size of the default range.
    pub const DEFAULT_COUNT: u32 = 65_536;
}

impl Default for Identity {
    fn default() -> Identity {
        Identity::PerModule {
            first: Identity::DEFAULT_FIRST_UID,
            count: Identity::DEFAULT_COUNT,
        }
    }
}

/// Why no identity could be given to a module.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The allocation file could not be read or written.
    #[error("module identities file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of the file is not `<uid> <name>`.
    #[error("module identities file {}, line {line}: expected `<uid> <name>`", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// Every uid of the range is taken.
    #[error("no free uid left in {first}..={last} for module {module}")]
    Exhausted {
        /// The module.
        module: String,
        /// First uid of the range.
        first: u32,
        /// Last uid of the range.
        last: u32,
    },
}

/// Hands out per-module uids and remembers them in `<data_dir>/.identities`.
#[derive(Debug)]
pub struct IdentityAllocator {
    path: PathBuf,
    first: u32,
    count: u32,
    /// name → uid, loaded lazily; the lock serialises allocation.
    table: Mutex<Option<BTreeMap<String, u32>>>,
}

impl IdentityAllocator {
    /// An allocator over `first ..= first + count - 1` whose table lives in
    /// `<data_dir>/.identities`.
    pub fn new(data_dir: &Path, first: u32, count: u32) -> IdentityAllocator {
        IdentityAllocator {
            path: data_dir.join(".identities"),
            first,
            count,
            table: Mutex::new(None),
        }
    }

    /// The uid and gid of `module`: the one recorded for its name, else
    /// the lowest free uid of the range that no local account or group
    /// uses, recorded before it is returned.
    pub fn identity_of(&self, module: &str) -> Result<RunAs, IdentityError> {
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.load()?);
        }
        let table = guard.get_or_insert_with(BTreeMap::new);
        if let Some(&uid) = table.get(module) {
            return Ok(RunAs { uid, gid: uid });
        }
        let taken: std::collections::BTreeSet<u32> = table.values().copied().collect();
        let accounts = local_ids();
        let last = self.first.saturating_add(self.count.saturating_sub(1));
        let uid = (self.first..=last)
            .find(|uid| !taken.contains(uid) && !accounts.contains(uid))
            .ok_or_else(|| IdentityError::Exhausted {
                module: module.to_owned(),
                first: self.first,
                last,
            })?;
        table.insert(module.to_owned(), uid);
        if let Err(e) = self.store(table) {
            table.remove(module);
            return Err(e);
        }
        Ok(RunAs { uid, gid: uid })
    }

    fn load(&self) -> Result<BTreeMap<String, u32>, IdentityError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => {
                return Err(IdentityError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut table = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let malformed = || IdentityError::Malformed {
                path: self.path.clone(),
                line: i + 1,
            };
            let (uid, name) = line.split_once(' ').ok_or_else(malformed)?;
            let uid: u32 = uid.parse().map_err(|_| malformed())?;
            if name.is_empty() {
                return Err(malformed());
            }
            table.insert(name.to_owned(), uid);
        }
        Ok(table)
    }

    fn store(&self, table: &BTreeMap<String, u32>) -> Result<(), IdentityError> {
        let io = |source| IdentityError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension(format!("tmp.{}", std::process::id()));
        let mut out = String::new();
        for (name, uid) in table {
            out.push_str(&format!("{uid} {name}\n"));
        }
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(out.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

/// Every uid in `/etc/passwd` and gid in `/etc/group`: a module must never
/// share a number with a local account or group (it would own that
/// account's files).
fn local_ids() -> std::collections::BTreeSet<u32> {
    let mut ids = std::collections::BTreeSet::new();
    for file in ["/etc/passwd", "/etc/group"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines() {
            if let Some(id) = line.split(':').nth(2).and_then(|f| f.parse().ok()) {
                ids.insert(id);
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("blvm-identity-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn each_module_gets_its_own_uid_and_keeps_it_across_allocators() {
        let d = dir("stable");
        let a = IdentityAllocator::new(&d, 1_500_000_000, 10);
        let x = a.identity_of("x").expect("x");
        let y = a.identity_of("y").expect("y");
        assert_ne!(x.uid, y.uid);
        assert_eq!(x.uid, x.gid);
        assert_eq!(a.identity_of("x").expect("again").uid, x.uid);
        // A new node on the same data dir reads the same table.
        let b = IdentityAllocator::new(&d, 1_500_000_000, 10);
        assert_eq!(b.identity_of("y").expect("y").uid, y.uid);
        assert_eq!(b.identity_of("x").expect("x").uid, x.uid);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_full_range_is_a_clear_error_and_a_broken_table_names_its_line() {
        let d = dir("full");
        let a = IdentityAllocator::new(&d, 1_500_000_000, 1);
        a.identity_of("x").expect("x");
        let err = a.identity_of("y").expect_err("full");
        assert!(err.to_string().contains("no free uid"), "{err}");
        std::fs::write(d.join(".identities"), "1500000000 x\nnot-a-uid y\n").expect("write");
        let err = IdentityAllocator::new(&d, 1_500_000_000, 4)
            .identity_of("z")
            .expect_err("malformed");
        assert!(err.to_string().contains("line 2"), "{err}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn local_accounts_are_never_handed_out() {
        // root (0) is in every /etc/passwd: a range starting at 0 skips it.
        let d = dir("accounts");
        let a = IdentityAllocator::new(&d, 0, 100_000);
        let ids = a.identity_of("x").expect("x");
        assert!(!local_ids().contains(&ids.uid));
        assert_ne!(ids.uid, 0);
        let _ = std::fs::remove_dir_all(&d);
    }
}
