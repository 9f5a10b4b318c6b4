//! The data dir with real module processes (`filesystem-module`, driven by
//! `module_call`): the kernel lets a module read its data dir only with
//! `read_filesystem` and write it only with `write_filesystem`; the node's
//! `manage_filesystem` methods work with that capability, are denied
//! without it, and never leave the data dir.

use blvm_module_host::manager::ModuleState;

use crate::support::{module_bin, module_call_text, TestNode};

/// Installs `filesystem-module` as `name` with the capabilities `caps`
/// (TOML strings), and a file `seed` (`hello`) in its data dir, which its
/// new disk image copies.
fn install(node: &TestNode, name: &str, caps: &str) {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::copy(module_bin("filesystem-module"), dir.join(name)).expect("copy binary");
    let manifest =
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{caps}]\n");
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
    let data = node.data_dir.join(name);
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("seed"), "hello").expect("seed");
}

const READ: &str = "\"read_filesystem\"";
const WRITE: &str = "\"write_filesystem\"";
const ALL: &str = "\"read_filesystem\", \"write_filesystem\", \"manage_filesystem\"";

/// `EACCES`, as the module reports the kernel's refusal.
const EACCES: &str = "ERRNO 13";

async fn call(node: &TestNode, name: &str, command: &str, args: &str) -> String {
    module_call_text(&node.manager, name, command, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernel_lets_a_module_read_its_data_dir_only_with_read_filesystem_and_write_it_only_with_write_filesystem()
{
    let node = TestNode::start("fs-grant", |_| {}).await;
    install(&node, "fs-none", "");
    install(&node, "fs-reader", READ);
    install(&node, "fs-writer", WRITE);
    install(&node, "fs-both", &format!("{READ}, {WRITE}"));
    let report = node.manager.auto_load_modules().await.expect("auto-load");
    assert_eq!(report.loaded.len(), 4, "{report:?}");
    let landlock = node.manager.module_status("fs-none").expect("status").sandbox_layers;
    assert!(landlock.iter().any(|l| l == "landlock"), "{landlock:?}");

    // Neither: nothing beneath the data dir can be read, listed or written.
    assert_eq!(call(&node, "fs-none", "read", "seed").await, EACCES);
    assert_eq!(call(&node, "fs-none", "list", ".").await, EACCES);
    assert_eq!(call(&node, "fs-none", "write", "new x").await, EACCES);

    // Read only: reads and lists, cannot create or overwrite.
    assert_eq!(call(&node, "fs-reader", "read", "seed").await, "READ hello");
    assert!(
        call(&node, "fs-reader", "list", ".").await.contains("seed"),
        "the reader lists its data dir"
    );
    assert_eq!(call(&node, "fs-reader", "write", "new x").await, EACCES);
    assert_eq!(call(&node, "fs-reader", "write", "seed x").await, EACCES);

    // Write only: creates and writes, cannot read back or list.
    assert_eq!(call(&node, "fs-writer", "write", "new written").await, "OK");
    assert_eq!(call(&node, "fs-writer", "read", "new").await, EACCES);
    assert_eq!(call(&node, "fs-writer", "read", "seed").await, EACCES);
    assert_eq!(call(&node, "fs-writer", "list", ".").await, EACCES);

    // Both: what it writes it reads back.
    assert_eq!(call(&node, "fs-both", "write", "new both").await, "OK");
    assert_eq!(call(&node, "fs-both", "read", "new").await, "READ both");
    assert_eq!(call(&node, "fs-both", "read", "seed").await, "READ hello");
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_manage_filesystem_method_works_with_the_capability_and_is_denied_naming_it_without() {
    let node = TestNode::start("fs-manage", |_| {}).await;
    install(&node, "fs-manager", ALL);
    install(&node, "fs-bare", &format!("{READ}, {WRITE}"));
    node.manager.auto_load_modules().await.expect("started");

    // Created by the node, used by the module: it owns what the node made.
    assert_eq!(call(&node, "fs-manager", "mkdir", "cache").await, "OK true");
    assert_eq!(call(&node, "fs-manager", "mkdir", "cache").await, "OK false");
    assert_eq!(call(&node, "fs-manager", "mkdir", "cache/blocks/").await, "OK true");
    assert_eq!(call(&node, "fs-manager", "write", "cache/blocks/f data").await, "OK");
    assert_eq!(call(&node, "fs-manager", "list", "cache").await, "LIST blocks");
    assert!(
        call(&node, "fs-manager", "mkdir", "missing/inner")
            .await
            .starts_with("ERR invalid_params `missing/inner`: a directory on the way does not exist"),
        "a missing parent is named"
    );
    // Not empty: only with `recursive`, which removes cache, blocks and f.
    assert!(call(&node, "fs-manager", "rmdir", "cache")
        .await
        .starts_with("ERR invalid_params `cache` is not empty"));
    assert_eq!(call(&node, "fs-manager", "rmdir", "cache recursive").await, "OK 3");
    assert_eq!(call(&node, "fs-manager", "rmdir", "cache").await, "OK 0");
    assert_eq!(call(&node, "fs-manager", "mkdir", "empty").await, "OK true");
    assert_eq!(call(&node, "fs-manager", "rmdir", "empty").await, "OK 1");
    assert!(!call(&node, "fs-manager", "list", ".").await.contains("cache"));

    // Usage of its own file system against the quota (16 MiB, the
    // harness's disk_mb), after writing 256 KiB.
    let big = "x".repeat(256 << 10);
    assert_eq!(call(&node, "fs-manager", "write", &format!("big {big}")).await, "OK");
    let usage = call(&node, "fs-manager", "usage", "").await;
    let figures: Vec<u64> = usage
        .strip_prefix("USAGE ")
        .unwrap_or_else(|| panic!("{usage}"))
        .split(' ')
        .map(|n| n.parse().unwrap_or_else(|_| panic!("{usage}")))
        .collect();
    let [used, free, quota, used_inodes, inodes] = figures[..] else {
        panic!("{usage}")
    };
    assert_eq!(quota, 16 << 20, "{usage}");
    assert!(used >= 256 << 10 && used + free <= quota, "{usage}");
    assert!(used_inodes >= 3 && inodes > used_inodes, "{usage}");

    // Without the capability: denied, naming it, and the connection keeps
    // answering the next request.
    for (command, args) in [("mkdir", "cache"), ("rmdir", "seed recursive"), ("usage", "")] {
        assert_eq!(
            call(&node, "fs-bare", command, args).await,
            "ERR permission_denied manage_filesystem",
            "{command}"
        );
    }
    assert_eq!(call(&node, "fs-bare", "read", "seed").await, "READ hello");
    assert!(!node.data_dir.join("fs-bare").join("cache").exists());
    let status = node.manager.module_status("fs-bare").expect("status");
    assert_eq!((status.state, status.restarts), (ModuleState::Running, 0));
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manage_filesystem_refuses_dotdot_absolute_paths_and_symlinks_out_and_touches_nothing_outside() {
    let node = TestNode::start("fs-escape", |_| {}).await;
    install(&node, "fs-escaper", ALL);
    // The node's side of the world the module must not reach: a directory
    // beside the modules' data dirs, with a file in it.
    let root = node.data_dir.parent().expect("root").to_path_buf();
    let outside = root.join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("keep"), "kept").expect("keep");
    let outside_text = outside.to_str().expect("utf8").to_owned();
    node.manager.auto_load_modules().await.expect("started");

    // A link planted inside the data dir pointing out (to the host path,
    // which the node would reach if it followed it).
    assert_eq!(
        call(&node, "fs-escaper", "symlink", &format!("{outside_text} out")).await,
        "OK"
    );
    assert_eq!(call(&node, "fs-escaper", "mkdir", "inner").await, "OK true");
    assert_eq!(
        call(&node, "fs-escaper", "symlink", &format!("{outside_text} inner/out")).await,
        "OK"
    );

    let refusals = [
        ("mkdir", "../../outside/made".to_owned(), "is not beneath the data dir"),
        ("mkdir", "../escaped".to_owned(), "is not beneath the data dir"),
        ("mkdir", format!("{outside_text}/made"), "is not beneath the data dir"),
        ("mkdir", "out/made".to_owned(), "goes through a symbolic link"),
        ("mkdir", "out".to_owned(), "goes through a symbolic link"),
        (
            "rmdir",
            "../../outside recursive".to_owned(),
            "is not beneath the data dir",
        ),
        (
            "rmdir",
            format!("{outside_text} recursive"),
            "is not beneath the data dir",
        ),
        ("rmdir", "out recursive".to_owned(), "goes through a symbolic link"),
        ("rmdir", "out/. recursive".to_owned(), "names no directory"),
    ];
    for (command, args, why) in &refusals {
        let answer = call(&node, "fs-escaper", command, args).await;
        assert!(
            answer.starts_with("ERR invalid_params") && answer.contains(why),
            "{command} {args}: {answer}"
        );
    }
    // A recursive removal of a directory holding the link removes the link,
    // never what it points to.
    assert_eq!(call(&node, "fs-escaper", "rmdir", "inner recursive").await, "OK 2");

    let mut left: Vec<_> = std::fs::read_dir(&outside)
        .expect("outside")
        .map(|e| e.expect("entry").file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["keep"], "nothing was created or removed outside");
    assert_eq!(std::fs::read_to_string(outside.join("keep")).expect("keep"), "kept");
    assert!(!node.data_dir.join("escaped").exists() && !root.join("escaped").exists());
    let status = node.manager.module_status("fs-escaper").expect("status");
    assert_eq!(status.state, ModuleState::Running);
    node.manager.shutdown().await;
}
