//! The proof that our metadata is real TUF: the unmodified python-tuf
//! client (`tuf.ngclient.Updater`) follows our writer's root chain and
//! downloads a target from a directory served by `python3 -m http.server`,
//! and refuses a tampered target as our verifier does; and our verifier
//! reads a repository python-tuf's own metadata API wrote.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use blvm_registry::tuf::{
    DirectorySource, Lifetimes, RepositoryKeys, RepositoryWriter, RoleName, RoleSigners, TrustedMetadata, VerifyError,
};

use crate::support::{temp_dir, TARGET, TARGET_BYTES};

/// What `.ci/run` installs python-tuf with.
/// (pyca/cryptography, securesystemslib's `crypto` extra, checks ed25519.)
const INSTALL: &str = "python3 -m pip install tuf==7.0.1 'securesystemslib[crypto]'";

/// How long the server may take to say where it listens.
const DEADLINE: Duration = Duration::from_secs(30);

/// Whether python-tuf can be imported: `false` outside CI skips the test;
/// in CI its absence fails it.
pub(crate) fn has_python_tuf() -> bool {
    let imported = Command::new("python3")
        .args(["-c", "import tuf.ngclient, cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !imported && std::env::var_os("CI").is_some() {
        panic!("python-tuf is not importable: run .ci/run's install step, `{INSTALL}`");
    }
    if !imported {
        eprintln!(
            "skipping the python-tuf check: cannot import tuf.ngclient and cryptography; install it with `{INSTALL}`"
        );
    }
    imported
}

/// `python3 -m http.server` on a free loopback port; killed on drop.
struct HttpServer {
    child: Child,
    base_url: String,
}

impl HttpServer {
    fn serve(dir: &Path) -> Self {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0", "--directory"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        // "Serving HTTP on 127.0.0.1 port N (...)" comes once it listens.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(DEADLINE).expect("http.server says where it listens");
        let port = line
            .split_whitespace()
            .skip_while(|word| *word != "port")
            .nth(1)
            .unwrap_or_else(|| panic!("a port in {line:?}"));
        Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the python-tuf client; its exit status and output.
fn python_tuf_download(client_dir: &Path, base_url: &str) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/python_tuf_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(client_dir.join("metadata"))
        .arg(client_dir.join("targets"))
        .arg(base_url)
        .arg(TARGET)
        .output()
        .expect("python3 runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn python_tuf_follows_our_root_chain_and_downloads_a_target_and_refuses_a_tampered_one() {
    if !has_python_tuf() {
        return;
    }
    let dir = temp_dir("python-tuf");
    // python-tuf checks expiry against its own clock.
    let now = SystemTime::now();
    let keys = RepositoryKeys::generate().expect("keys");
    let mut writer = RepositoryWriter::create(dir.join("repo"), keys, Lifetimes::default(), now).expect("repository");
    let shipped_root = writer.root_bytes();
    let custom = serde_json::json!({"manifest_sha256": "ab".repeat(32)});
    writer
        .add_target(TARGET, TARGET_BYTES, Some(custom.clone()))
        .expect("target");
    writer.commit(now).expect("first commit");
    // A root rotation and a timestamp key rotation, so python-tuf checks
    // a root signed by the old and the new root keys.
    writer
        .rotate_keys(RoleName::Root, RoleSigners::generate(2, 2).expect("keys"), now)
        .expect("root 2");
    writer
        .rotate_keys(RoleName::Timestamp, RoleSigners::generate(1, 1).expect("key"), now)
        .expect("root 3");
    writer.commit(now).expect("second commit");

    let client_dir = dir.join("client");
    for sub in ["metadata", "targets"] {
        std::fs::create_dir_all(client_dir.join(sub)).expect("client dir");
    }
    std::fs::write(client_dir.join("metadata/root.json"), &shipped_root).expect("trusted root");
    let server = HttpServer::serve(writer.dir());

    let (ok, said) = python_tuf_download(&client_dir, &server.base_url);
    assert!(ok, "python-tuf downloads the target: {said}");
    let mut lines = said.lines();
    let path = lines.next().expect("the downloaded path");
    assert_eq!(std::fs::read(path).expect("downloaded file"), TARGET_BYTES);
    let custom_seen: serde_json::Value = serde_json::from_str(lines.next().expect("custom")).expect("json");
    assert_eq!(custom_seen, custom, "python-tuf reads our custom data");
    let trusted = std::fs::read(client_dir.join("metadata/root.json")).expect("root kept by python-tuf");
    assert_eq!(trusted, writer.root_bytes(), "python-tuf now trusts root 3");

    // Our verifier agrees, and finds the file where python-tuf did.
    let mut ours = TrustedMetadata::from_root(&shipped_root).expect("shipped root");
    ours.refresh(&DirectorySource::new(writer.metadata_dir()), now)
        .expect("our client accepts it too");
    let info = ours.target(TARGET).expect("signed target");
    let served = writer.targets_dir().join(info.url_path());
    info.verify(&std::fs::read(&served).expect("served target"))
        .expect("our client accepts the target");

    // A tampered binary of the same length, served where the signed one was.
    let mut evil = TARGET_BYTES.to_vec();
    evil[0] ^= 1;
    std::fs::write(&served, &evil).expect("tampered");
    std::fs::remove_dir_all(client_dir.join("targets")).expect("no cached download");
    std::fs::create_dir_all(client_dir.join("targets")).expect("client targets dir");
    let (ok, said) = python_tuf_download(&client_dir, &server.base_url);
    assert!(!ok, "python-tuf refuses the tampered target: {said}");
    assert!(said.contains("LengthOrHashMismatchError"), "{said}");
    let err = info.verify(&evil).expect_err("our client refuses it too");
    assert!(
        matches!(err, VerifyError::TargetMismatch { what: "sha256", .. }),
        "{err}"
    );
}

#[test]
fn our_verifier_reads_a_repository_written_by_python_tufs_metadata_api() {
    if !has_python_tuf() {
        return;
    }
    let dir = temp_dir("python-tuf-writes");
    let local = dir.join("module-binary");
    std::fs::write(&local, TARGET_BYTES).expect("local target");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/python_tuf_repository.py");
    let repo = dir.join("repo");
    let out = Command::new("python3")
        .arg(script)
        .arg(&repo)
        .arg(TARGET)
        .arg(&local)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python-tuf writes a repository: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let root = std::fs::read(repo.join("metadata/1.root.json")).expect("root 1");
    let mut client = TrustedMetadata::from_root(&root).expect("python-tuf's root verifies");
    client
        .refresh(&DirectorySource::new(repo.join("metadata")), SystemTime::now())
        .expect("its metadata verifies");
    for (keyid, key) in &client.root().keys {
        assert_eq!(&key.key_id(), keyid, "our key id is the one securesystemslib computed");
    }
    let info = client.target(TARGET).expect("its target is signed");
    assert_eq!(info.custom().expect("custom")["written_by"], "python-tuf");
    let served = std::fs::read(repo.join("targets").join(info.url_path())).expect("served where python-tuf put it");
    info.verify(&served).expect("the target matches");
}
