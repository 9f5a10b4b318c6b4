//! `blvm-node module keygen|sign|verify`, run as the real binary with real
//! keys: a maintainer makes a key and signs a manifest, an operator who
//! trusts that key verifies it, and any change to the manifest after
//! signing is caught.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("blvm-node-sign-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

fn blvm_node(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blvm-node"))
        .args(["--datadir", dir.join("data").to_str().expect("utf8")])
        .args(args)
        .output()
        .expect("blvm-node runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const BODY: &str = "name = \"watcher\"\nversion = \"1.0.0\"\ncapabilities = [\"read_blockchain\"]\n\n\
                    [binary]\nhash = \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n";

#[test]
fn a_maintainer_signs_and_a_node_trusting_the_key_verifies_and_catches_tampering() {
    let tmp = temp_dir("roundtrip");
    let dir = &tmp.0;
    let key_file = dir.join("alice.key");
    let out = blvm_node(dir, &["module", "keygen", key_file.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("public key: ").map(str::to_owned))
        .expect("public key printed");
    assert_eq!(public.len(), 66, "{public}");
    // The secret is the maintainer's only: 0600, and never overwritten.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).expect("key file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = blvm_node(dir, &["module", "keygen", key_file.to_str().expect("utf8")]);
    assert!(!again.status.success(), "keygen must not overwrite a key");

    let manifest = dir.join("module.toml");
    std::fs::write(&manifest, BODY).expect("manifest");
    let out = blvm_node(
        dir,
        &[
            "module",
            "sign",
            manifest.to_str().expect("utf8"),
            "--key",
            key_file.to_str().expect("utf8"),
            "--name",
            "alice",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let entry = stdout(&out)
        .lines()
        .find(|l| l.trim_start().starts_with("{ name = \"alice\""))
        .expect("entry printed")
        .trim()
        .trim_end_matches(',')
        .to_owned();
    let signed = format!("{BODY}\n[signatures]\nthreshold = \"1-of-1\"\nmaintainers = [ {entry} ]\n");
    std::fs::write(&manifest, &signed).expect("signed manifest");

    // An operator trusting alice, requiring one signature.
    let conf = dir.join("blvm.toml");
    std::fs::write(
        &conf,
        format!("[trust]\nrequired_signatures = 1\n[trust.keys]\nalice = \"{public}\"\n"),
    )
    .expect("config");
    let conf = conf.to_str().expect("utf8");
    let out = blvm_node(
        dir,
        &["--conf", conf, "module", "verify", manifest.to_str().expect("utf8")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "watcher: signed by alice (1 required)");

    // A node that does not trust alice refuses the same manifest.
    let stranger = dir.join("stranger.toml");
    std::fs::write(
        &stranger,
        "[trust.keys]\nbob = \"02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5\"\n",
    )
    .expect("config");
    let out = blvm_node(
        dir,
        &[
            "--conf",
            stranger.to_str().expect("utf8"),
            "module",
            "verify",
            manifest.to_str().expect("utf8"),
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not in the keyring"), "{}", stderr(&out));

    // Granted the network after signing: caught.
    std::fs::write(
        &manifest,
        signed.replace("[\"read_blockchain\"]", "[\"read_blockchain\", \"network_access\"]"),
    )
    .expect("tamper");
    let out = blvm_node(
        dir,
        &["--conf", conf, "module", "verify", manifest.to_str().expect("utf8")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("alice: the signature does not verify for this manifest"),
        "{}",
        stderr(&out)
    );
}
