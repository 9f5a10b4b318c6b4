//! Modules in other languages (issue 9, item 5), with the system's real
//! python3 under the full sandbox as root: a module of several files finds
//! its siblings (the whole folder is staged and shown to it, read-only);
//! an interpreter outside `/usr` (a virtual environment) is refused
//! before the fork with its path and the layer, and runs once the
//! operator names it as a read-only path; a manifest can only ask.
//! Without python3, or without root (no full sandbox), the tests say so
//! and pass.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use blvm_module_host::manager::ModuleState;

use crate::support::{module_call_text, temp_dir, TestNode};

const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// The Python test module's folder in the repository.
fn python_module() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../blvm-test-modules/python")
}

/// Whether this host can run these tests; says why not.
fn can_run() -> bool {
    if !Path::new(SYSTEM_PYTHON).exists() {
        eprintln!("python3 is missing ({SYSTEM_PYTHON}): no script module to test");
        return false;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: the full sandbox (mount namespace, uid drop) needs a root node; nothing to test");
        return false;
    }
    true
}

/// Copies `from` into `to` (files and directories).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Installs the Python module as `name`, its `#!` line naming
/// `interpreter`, with `resources` as its manifest's `[resources]`.
fn install(node: &TestNode, name: &str, interpreter: &Path, resources: &str) -> PathBuf {
    let dir = node.modules_dir.join(name);
    copy_dir(&python_module(), &dir);
    let main = dir.join("main.py");
    let source = std::fs::read_to_string(&main).expect("main.py");
    let body = source.split_once('\n').map_or("", |(_, rest)| rest);
    std::fs::write(&main, format!("#!{}\n{body}", interpreter.display())).expect("main.py");
    std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        dir.join("module.toml"),
        format!(
            "name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"main.py\"\ncapabilities = [\"subscribe_events\"]\n\n\
             [resources]\n{resources}\n"
        ),
    )
    .expect("manifest");
    dir
}

/// The value of `key` in the module's `whoami` JSON answer (a string or a
/// number, as text).
fn field(json: &str, key: &str) -> String {
    let start = json
        .find(&format!("\"{key}\": "))
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len()
        + 4;
    let rest = &json[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted[..quoted.find('"').expect("closing quote")].to_owned(),
        None => rest[..rest.find([',', '}']).expect("end")].trim().to_owned(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("metadata").permissions().mode() & 0o7777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_module_of_several_files_imports_its_siblings_from_its_staged_folder_under_the_full_sandbox() {
    if !can_run() {
        return;
    }
    let node = TestNode::start("py-files", |_| {}).await;
    let source = install(&node, "pyfiles", Path::new(SYSTEM_PYTHON), "");
    let report = node.manager.auto_load_modules().await.expect("auto load");
    assert_eq!(report.loaded, vec!["pyfiles".to_string()], "{report:?}");
    let status = node.manager.module_status("pyfiles").expect("status");
    for layer in ["mountns", "uid-drop", "landlock", "seccomp", "pidns"] {
        assert!(
            status.sandbox_layers.iter().any(|l| l == layer),
            "{layer} missing: {status:?}"
        );
    }
    // Its handshake already needed `wire.py`; it also imported `pkg`, from
    // the staged copy of its folder, as its own uid.
    let me = module_call_text(&node.manager, "pyfiles", "whoami", "").await;
    let wire = PathBuf::from(field(&me, "wire"));
    let staged = wire.parent().expect("staged folder").to_path_buf();
    assert_eq!(staged.parent(), Some(node.data_dir.join(".staged").as_path()), "{me}");
    assert!(
        staged
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pyfiles-")),
        "{me}"
    );
    assert_eq!(
        PathBuf::from(field(&me, "answers")),
        staged.join("pkg/answers.py"),
        "{me}"
    );
    assert_eq!(
        field(&me, "uid"),
        status.run_as.expect("dropped").uid.to_string(),
        "{me}"
    );
    assert_eq!(field(&me, "prefix"), "/usr", "{me}");
    // It reads its staged files; the original folder is not in its root.
    let read = |path: PathBuf| {
        let manager = &node.manager;
        async move { module_call_text(manager, "pyfiles", "read", path.to_str().expect("utf8")).await }
    };
    assert!(read(staged.join("wire.py")).await.starts_with("ALLOWED"));
    assert_eq!(read(source.join("wire.py")).await, "BLOCKED ENOENT");
    // Node-owned and read-only: folders 0555, files 0444, the script 0555,
    // in the 0711 staging directory.
    assert_eq!(mode(&node.data_dir.join(".staged")), 0o711);
    assert_eq!(mode(&staged), 0o555);
    assert_eq!(mode(&staged.join("pkg")), 0o555);
    assert_eq!(mode(&staged.join("wire.py")), 0o444);
    assert_eq!(mode(&staged.join("main.py")), 0o555);
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&staged).expect("meta")),
        0
    );
    // A shell launcher (`#!/bin/sh`: through the merged-/usr link its root
    // recreates) that execs python on the staged main.py next to it.
    let launcher = install(&node, "pylauncher", Path::new(SYSTEM_PYTHON), "");
    std::fs::write(
        launcher.join("run.sh"),
        "#!/bin/sh\nexec /usr/bin/python3 \"$(dirname \"$0\")/main.py\"\n",
    )
    .expect("launcher");
    std::fs::set_permissions(launcher.join("run.sh"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let manifest = std::fs::read_to_string(launcher.join("module.toml")).expect("manifest");
    std::fs::write(
        launcher.join("module.toml"),
        manifest.replace("\"main.py\"", "\"run.sh\""),
    )
    .expect("manifest");
    let report = node.manager.auto_load_modules().await.expect("auto load");
    assert_eq!(report.loaded, vec!["pylauncher".to_string()], "{report:?}");
    let me = module_call_text(&node.manager, "pylauncher", "whoami", "").await;
    assert!(field(&me, "wire").contains("/.staged/pylauncher-"), "{me}");
    node.manager.shutdown().await;
}

/// A virtual environment of the system's python3 under `root`, or `None`
/// (said why) when python3 cannot make one.
fn venv(root: &Path) -> Option<PathBuf> {
    let venv = root.join("venv");
    let made = Command::new(SYSTEM_PYTHON)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .expect("python3 runs");
    if !made.status.success() {
        eprintln!(
            "python3 cannot make a virtual environment: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        return None;
    }
    Some(venv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interpreter_outside_usr_is_refused_naming_its_path_and_layer_and_runs_once_the_operator_allows_it() {
    if !can_run() {
        return;
    }
    let root = temp_dir("py-venv");
    let Some(venv) = venv(&root) else {
        let _ = std::fs::remove_dir_all(&root);
        return;
    };
    let python = venv.join("bin/python3");
    let ask = format!("read_only = [\"{}\"]", venv.display());

    // Not allowed: the module that just names the venv's python is refused
    // before the fork, with the path and the layer (its root has no such
    // path); the one whose manifest asks for the venv is refused as the
    // operator has not allowed it.
    let node = TestNode::start("py-venv-refused", |_| {}).await;
    install(&node, "pyvenv", &python, "");
    install(&node, "pyasks", &python, &ask);
    let report = node.manager.auto_load_modules().await.expect("auto load");
    assert!(report.loaded.is_empty(), "{report:?}");
    let refused = &report.failed["pyvenv"];
    assert!(
        refused.contains(&format!(
            "{}: refused by the sandbox's mountns layer: the interpreter named by the `#!` line of",
            python.display()
        )) && refused.contains("[sandbox] read_only"),
        "{refused}"
    );
    let asked = &report.failed["pyasks"];
    assert!(
        asked.contains(&format!(
            "asks to read {} (`[resources] read_only` of its manifest)",
            venv.display()
        )) && asked.contains("[sandbox.read_only_by_module] pyasks"),
        "{asked}"
    );
    node.manager.shutdown().await;
    drop(node);

    // The operator allows the venv (to one module), and a directory above
    // it (to the other, which asked for the venv): both run on its
    // interpreter.
    let node = TestNode::start("py-venv-allowed", |config| {
        let allow = &mut config.sandbox.module_read_only;
        allow.insert("pyvenv".into(), vec![venv.clone()]);
        allow.insert("pyasks".into(), vec![root.clone()]);
    })
    .await;
    install(&node, "pyvenv", &python, "");
    install(&node, "pyasks", &python, &ask);
    let report = node.manager.auto_load_modules().await.expect("auto load");
    assert_eq!(report.loaded.len(), 2, "{report:?}");
    for name in ["pyvenv", "pyasks"] {
        let me = module_call_text(&node.manager, name, "whoami", "").await;
        assert_eq!(PathBuf::from(field(&me, "prefix")), venv, "{name}: {me}");
        assert_eq!(PathBuf::from(field(&me, "executable")), python, "{name}: {me}");
        let status = node.manager.module_status(name).expect("status");
        assert_eq!(status.state, ModuleState::Running);
        assert!(status.sandbox_layers.iter().any(|l| l == "mountns"), "{status:?}");
    }
    node.manager.shutdown().await;
    drop(node);
    let _ = std::fs::remove_dir_all(&root);
}
