//! Before the fork: can the module's program be executed in its sandbox?
//!
//! A script's `#!` line names an interpreter the kernel executes in the
//! module's place, inside the sandbox. An interpreter outside what the
//! sandbox shows (a pyenv or `/opt` Python, a virtual environment in a
//! home directory) fails at exec with a bare `ENOENT` (the mount namespace
//! has no such path) or `EACCES` (Landlock, or the module's uid), which
//! says neither which file nor which layer. So the parent checks first and
//! refuses the spawn with both: each interpreter of the chain (the kernel
//! follows up to 4) must be under a path the module may read and execute
//! with its links resolved (what Landlock checks) and, in its own mount
//! namespace, also as written (its root has no other paths, save the
//! merged-`/usr` links it recreates); and the module's uid must be able to
//! execute it and search the directories above it that it sees as they
//! are on the host.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::privileges::{rights, RunAs};
use super::Layer;

/// The kernel's limit on nested interpreters (`BINPRM_MAX_RECURSION`).
const MAX_INTERPRETERS: usize = 4;

/// A program of the module that its sandbox would not let it execute.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{reason}", path.display(), layer.map(|l| format!("refused by the sandbox's {l} layer: ")).unwrap_or_default())]
pub struct ExecRefused {
    /// The file (or directory) that would be refused.
    pub path: PathBuf,
    /// The layer that would refuse it; `None` when it does not exist at all.
    pub layer: Option<Layer>,
    /// Why, and what to do.
    pub reason: String,
}

/// What the module will see and be.
pub(super) struct View {
    /// What it may read and execute (its folder, the system's, the
    /// operator's extra paths).
    pub read_only: Vec<PathBuf>,
    /// Links its root recreates as they are on the host (`/bin ->
    /// usr/bin`): a path through one exists there.
    pub links: Vec<PathBuf>,
    /// Its data dir (all rights).
    pub data_dir: PathBuf,
    /// Its own mount namespace: only those paths exist for it, and the
    /// directories above them are the root's own (0755).
    pub own_root: bool,
    /// Landlock allows only those paths.
    pub landlock: bool,
    /// The uid it is dropped to.
    pub run_as: Option<RunAs>,
}

impl View {
    /// The path of `read_only` (or the data dir) that `path` lies under,
    /// the deepest one.
    fn covering(&self, path: &Path) -> Option<&Path> {
        self.read_only
            .iter()
            .map(PathBuf::as_path)
            .chain(std::iter::once(self.data_dir.as_path()))
            .filter(|r| path.starts_with(r))
            .max_by_key(|r| r.components().count())
    }

    /// The layer that hides what is not covered.
    fn hiding_layer(&self) -> Option<Layer> {
        if self.own_root {
            Some(Layer::MountNamespace)
        } else if self.landlock {
            Some(Layer::Landlock)
        } else {
            None
        }
    }
}

/// Checks `binary`'s chain of interpreters against `view`.
pub(super) fn check(binary: &Path, view: &View) -> Result<(), ExecRefused> {
    let mut program = binary.to_path_buf();
    for _ in 0..MAX_INTERPRETERS {
        let Some(interpreter) = interpreter_of(&program) else {
            return Ok(());
        };
        // A relative interpreter is looked up from the working directory
        // at exec; nothing to check against here.
        if !interpreter.is_absolute() {
            return Ok(());
        }
        check_interpreter(&interpreter, &program, view)?;
        program = interpreter;
    }
    Ok(())
}

fn check_interpreter(interpreter: &Path, script: &Path, view: &View) -> Result<(), ExecRefused> {
    let allowed = "the module may execute only its own folder, the system directories (/usr, /lib…) and the \
                   read-only paths the operator allows; allow it, or a directory above it (blvm-node: \
                   `[sandbox] read_only`)";
    let resolved = std::fs::canonicalize(interpreter).map_err(|e| ExecRefused {
        path: interpreter.to_path_buf(),
        layer: None,
        reason: format!("the interpreter named by the `#!` line of {}: {e}", script.display()),
    })?;
    if let Some(layer) = view.hiding_layer() {
        // Landlock checks the file reached, not the path: only its own
        // root makes the path as written matter.
        let as_written = !view.own_root
            || view.covering(interpreter).is_some()
            || view.links.iter().any(|l| interpreter.starts_with(l));
        if !as_written {
            return Err(ExecRefused {
                path: interpreter.to_path_buf(),
                layer: Some(layer),
                reason: format!(
                    "the interpreter named by the `#!` line of {} is outside what the module can see: {allowed}",
                    script.display()
                ),
            });
        }
        if view.covering(&resolved).is_none() {
            return Err(ExecRefused {
                path: resolved.clone(),
                layer: Some(layer),
                reason: format!(
                    "the interpreter {} (the `#!` line of {}) is a link to it, which is outside what the module can \
                     see: {allowed}",
                    interpreter.display(),
                    script.display()
                ),
            });
        }
    }
    let Some(ids) = view.run_as else {
        return Ok(());
    };
    let no_right = |path: &Path, right: &str| ExecRefused {
        path: path.to_path_buf(),
        layer: Some(Layer::UidDrop),
        reason: format!(
            "lacks {right} permission for uid {} gid {}, which the module runs as; it is needed to execute the \
             interpreter {} (the `#!` line of {})",
            ids.uid,
            ids.gid,
            interpreter.display(),
            script.display()
        ),
    };
    let meta = std::fs::metadata(&resolved).map_err(|e| ExecRefused {
        path: resolved.clone(),
        layer: None,
        reason: e.to_string(),
    })?;
    if rights(&meta, ids) & 0o1 == 0 {
        return Err(no_right(&resolved, "execute"));
    }
    // The directories the module reaches it through, as they are on the
    // host: in its own root, those up to the path it was given (above
    // that are the root's own 0755 directories); else all of them.
    let top = if view.own_root { view.covering(&resolved) } else { None };
    for dir in resolved.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()) {
        if top.is_some_and(|t| !dir.starts_with(t)) {
            break;
        }
        let meta = std::fs::metadata(dir).map_err(|e| ExecRefused {
            path: dir.to_path_buf(),
            layer: None,
            reason: e.to_string(),
        })?;
        if rights(&meta, ids) & 0o1 == 0 {
            return Err(no_right(dir, "search"));
        }
    }
    Ok(())
}

/// The interpreter a `#!` line names (its first word), if `path` starts
/// with one.
pub(super) fn interpreter_of(path: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = Vec::with_capacity(256);
    std::fs::File::open(path).ok()?.take(256).read_to_end(&mut head).ok()?;
    let line = head.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|b| *b == b'\n').unwrap_or(line.len())];
    let word = line.split(|b| *b == b' ' || *b == b'\t').find(|w| !w.is_empty())?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(word)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("blvm-exec-check-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    fn script(dir: &Path, line: &str) -> PathBuf {
        let path = dir.join("main.py");
        std::fs::write(&path, format!("{line}\nprint('hi')\n")).expect("script");
        path
    }

    fn view(read_only: &[&Path], own_root: bool, landlock: bool) -> View {
        View {
            read_only: read_only.iter().map(|p| p.to_path_buf()).collect(),
            links: Vec::new(),
            data_dir: PathBuf::from("/nonexistent/data"),
            own_root,
            landlock,
            run_as: None,
        }
    }

    #[test]
    fn the_first_word_of_the_hashbang_line_is_the_interpreter() {
        let dir = temp("hashbang");
        assert_eq!(
            interpreter_of(&script(&dir, "#!  /usr/bin/env python3 -u")),
            Some(PathBuf::from("/usr/bin/env"))
        );
        std::fs::write(dir.join("elf"), b"\x7fELF").expect("write");
        assert_eq!(interpreter_of(&dir.join("elf")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_interpreter_outside_the_visible_paths_is_refused_naming_it_and_the_layer() {
        let dir = temp("outside");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        // A link to the system's shell, as a virtual environment's python
        // is, and a copy of it, as a pyenv build is.
        let link = bin.join("sh-link");
        std::os::unix::fs::symlink("/bin/sh", &link).expect("link");
        let copy = bin.join("sh-copy");
        std::fs::copy("/bin/sh", &copy).expect("copy");
        let system: Vec<&Path> = ["/usr", "/lib"].iter().map(Path::new).collect();
        for interpreter in [&link, &copy] {
            let main = script(&dir, &format!("#!{}", interpreter.display()));
            // In its own root the path does not exist: the mount namespace.
            let e = check(&main, &view(&system, true, true)).expect_err("refused");
            assert_eq!(
                (e.path.as_path(), e.layer),
                (interpreter.as_path(), Some(Layer::MountNamespace))
            );
            assert!(
                e.to_string().contains(": refused by the sandbox's mountns layer: "),
                "{e}"
            );
            // Allowed (its directory): fine; what the link leads to is
            // visible too.
            let mut allowed = system.clone();
            allowed.push(&bin);
            check(&main, &view(&allowed, true, true)).expect("allowed");
            check(&main, &view(&allowed, false, true)).expect("allowed");
            // No layer hides anything: nothing to refuse.
            check(&main, &view(&[], false, false)).expect("unconfined");
        }
        // Without its own root, Landlock judges the file reached: the link
        // leads into /usr, the copy is outside.
        let main = script(&dir, &format!("#!{}", link.display()));
        check(&main, &view(&system, false, true)).expect("a link into /usr");
        let main = script(&dir, &format!("#!{}", copy.display()));
        let e = check(&main, &view(&system, false, true)).expect_err("refused");
        assert_eq!((e.path.as_path(), e.layer), (copy.as_path(), Some(Layer::Landlock)));
        // Allowed as written, but its link leads outside: named too.
        let main = script(&dir, &format!("#!{}", link.display()));
        let e = check(&main, &view(&[bin.as_path()], true, true)).expect_err("link target hidden");
        assert_eq!(e.layer, Some(Layer::MountNamespace));
        assert!(e.to_string().contains("is a link to it"), "{e}");
        // `/bin` is a link its root recreates: `#!/bin/sh` is fine.
        let main = script(&dir, "#!/bin/sh");
        let mut with_links = view(&system, true, true);
        with_links.links = vec![PathBuf::from("/bin")];
        if Path::new("/bin").is_symlink() {
            check(&main, &with_links).expect("/bin/sh through the /bin link");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_interpreter_is_named() {
        let dir = temp("missing");
        let main = script(&dir, "#!/nonexistent/python3");
        let e = check(&main, &view(&[Path::new("/usr")], true, true)).expect_err("missing");
        assert_eq!((e.path.as_path(), e.layer), (Path::new("/nonexistent/python3"), None));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
