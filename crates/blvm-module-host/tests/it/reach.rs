//! A data dir under a directory the module's uid cannot search (issue 9,
//! item 6): with its own mount namespace a module reaches its files
//! through its root's own 0755 directories, so strict mode no longer
//! refuses it (it did, naming the directory, when the host's directories
//! above its paths were checked). Needs root (the uid drop); without it
//! the test says so and passes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use blvm_module_host::manager::{ManagerConfig, ModuleState};
use blvm_module_host::sandbox::SandboxMode;

use crate::support::{module_bin, module_call_text, start_manager, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_runs_a_module_whose_data_dir_is_under_a_0700_directory() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: no uid drop, so nothing above the data dir is out of the module's reach");
        return;
    }
    // As `mktemp -d` makes it: 0700, root's.
    let top = temp_dir("private-parent");
    let root = top.join("private");
    std::fs::create_dir(&root).expect("private dir");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let modules = root.join("modules");
    let folder = modules.join("hidden");
    std::fs::create_dir_all(&folder).expect("module dir");
    std::fs::copy(module_bin("attacker-module"), folder.join("hidden")).expect("binary");
    std::fs::write(
        folder.join("module.toml"),
        "name = \"hidden\"\nversion = \"1.0.0\"\nentry_point = \"hidden\"\ncapabilities = [\"subscribe_events\", \"write_filesystem\"]\n",
    )
    .expect("manifest");
    let data_dir = root.join("data");
    let mut config = ManagerConfig::new(&modules, &data_dir, root.join("sock"));
    config.handshake_timeout = Duration::from_secs(30);
    config.shutdown_grace = Duration::from_secs(3);
    config.sandbox.default_limits.disk_bytes = Some(16 << 20);
    assert_eq!(config.sandbox.mode, SandboxMode::Strict);
    let manager = start_manager(&root, config).await;
    let report = manager.auto_load_modules().await.expect("auto load");
    assert_eq!(report.loaded, vec!["hidden".to_string()], "{report:?}");
    let status = manager.module_status("hidden").expect("status");
    assert_eq!(status.state, ModuleState::Running);
    for layer in ["mountns", "uid-drop"] {
        assert!(status.sandbox_layers.iter().any(|l| l == layer), "{layer}: {status:?}");
    }
    // Its uid is not the owner of the 0700 directory: on the host it could
    // not pass through it.
    let ids = status.run_as.expect("dropped");
    let private = std::fs::metadata(&root).expect("metadata");
    assert_ne!(private.uid(), ids.uid);
    assert_eq!(private.permissions().mode() & 0o777, 0o700);
    // Yet it executes its binary, holds its connection, and writes its data dir.
    let own = data_dir.join("hidden").join("mine");
    let answer = module_call_text(&manager, "hidden", "write", own.to_str().expect("utf8")).await;
    assert!(answer.starts_with("ALLOWED"), "{answer}");
    manager.shutdown().await;
    let _ = std::fs::remove_dir_all(&top);
}
