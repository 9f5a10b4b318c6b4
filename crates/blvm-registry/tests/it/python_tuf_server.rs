//! The proof that our server is a TUF repository: the unmodified
//! python-tuf client (`ngclient.Updater`), given the root `blvm-registry
//! init` printed, downloads a module `blvm-module publish` sent to our
//! `blvm-registry serve`, reads our version record, and follows the
//! registry as it changes.

use std::path::Path;
use std::process::Command;

use blvm_registry::layout::{binary_target, VersionRecord};

use crate::python_tuf::has_python_tuf;
use crate::server::{init_registry, succeeded, Maintainer, RegistryServer, BINARY};
use crate::support::temp_dir;

/// Runs python_tuf_client.py for `target` against `url`; the downloaded
/// file's path and the target's custom data.
fn python_tuf_download(client_dir: &Path, url: &str, target: &str) -> (String, serde_json::Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/python_tuf_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(client_dir.join("metadata"))
        .arg(client_dir.join("targets"))
        .arg(url)
        .arg(target)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python-tuf downloads {target}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = said.lines();
    let path = lines.next().expect("the downloaded path").to_owned();
    let custom = serde_json::from_str(lines.next().expect("custom")).expect("custom is JSON");
    (path, custom)
}

#[test]
fn python_tuf_downloads_a_published_module_from_our_server_and_follows_its_changes() {
    if !has_python_tuf() {
        return;
    }
    let dir = temp_dir("python-tuf-server");
    let (registry, root) = init_registry(&dir);
    let server = RegistryServer::start(&registry, &[]);
    let maintainer = Maintainer::new(&dir);
    let manifest = maintainer.block_stats("0.1.0", BINARY);
    succeeded(&maintainer.publish(&server.url, "alice.key", &manifest));

    let client_dir = dir.join("python-client");
    for sub in ["metadata", "targets"] {
        std::fs::create_dir_all(client_dir.join(sub)).expect("client dir");
    }
    std::fs::copy(&root, client_dir.join("metadata/root.json")).expect("trusted root");
    let (path, custom) = python_tuf_download(&client_dir, &server.url, &binary_target("block-stats", "0.1.0"));
    assert_eq!(
        std::fs::read(&path).expect("downloaded"),
        BINARY,
        "python-tuf got the published bytes"
    );
    assert_eq!(custom, serde_json::Value::Null, "the binary target carries no record");
    let (_, custom) = python_tuf_download(&client_dir, &server.url, "block-stats/0.1.0/module.toml");
    let record = VersionRecord::from_custom(Some(&custom)).expect("python-tuf reads our version record");
    assert_eq!(record.publisher, maintainer.public_key("alice.key"));

    // The registry moves on (a new version, a yank): python-tuf updates
    // from the metadata it cached, checking every version rule on the way.
    let next_binary = b"\x7fELF block-stats 0.2.0";
    let next = maintainer.block_stats("0.2.0", next_binary);
    succeeded(&maintainer.publish(&server.url, "alice.key", &next));
    succeeded(&maintainer.yank(&server.url, "alice.key", "block-stats", "0.1.0"));
    let (path, _) = python_tuf_download(&client_dir, &server.url, &binary_target("block-stats", "0.2.0"));
    assert_eq!(std::fs::read(&path).expect("downloaded"), next_binary);
    let (_, custom) = python_tuf_download(&client_dir, &server.url, "block-stats/0.1.0/module.toml");
    assert!(
        VersionRecord::from_custom(Some(&custom)).expect("record").yanked,
        "python-tuf sees the signed yank"
    );
}
