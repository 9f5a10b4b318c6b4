//! `blvm-module keygen|pack|sign|verify` as a maintainer runs them: the
//! real binary on real files.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::temp_dir;

const MANIFEST: &str = "name = \"watcher\"\nversion = \"1.0.0\"\nentry_point = \"watcher\"\ncapabilities = [\"read_blockchain\"]\n\n[governance]\nmaintainers = [\"alice\"]\nthreshold = \"1-of-1\"\n";

fn blvm_module(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blvm-module"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("blvm-module runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "blvm-module failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn pack_pins_the_binary_and_the_signed_manifest_verifies_only_with_the_maintainers_key_trusted() {
    let dir = temp_dir("maintainer-pack-sign");
    std::fs::write(dir.join("module.toml"), MANIFEST).expect("write manifest");
    std::fs::write(dir.join("watcher"), b"\x7fELF pretend module").expect("write binary");

    let keygen = stdout(&blvm_module(&["keygen", "alice.key"], &dir));
    let public = keygen
        .lines()
        .find_map(|line| line.strip_prefix("public key: "))
        .expect("the public key is printed")
        .to_owned();

    let pack = stdout(&blvm_module(&["pack", "module.toml"], &dir));
    assert!(pack.contains("size = 19"), "{pack}");
    let packed = std::fs::read_to_string(dir.join("module.toml")).expect("read");
    assert!(
        packed.contains("[binary]") && packed.contains("hash = \"sha256:"),
        "{packed}"
    );
    assert!(
        packed.starts_with(MANIFEST),
        "pack keeps the maintainer's text: {packed}"
    );

    let sign = stdout(&blvm_module(
        &["sign", "module.toml", "--key", "alice.key", "--name", "alice"],
        &dir,
    ));
    let entry = sign
        .lines()
        .nth(1)
        .expect("the entry line")
        .trim()
        .trim_end_matches(',');
    std::fs::write(
        dir.join("module.toml"),
        format!("{packed}\n[signatures]\nthreshold = \"1-of-1\"\nmaintainers = [{entry}]\n"),
    )
    .expect("write signed");

    let trusted = format!("alice={public}");
    let verified = stdout(&blvm_module(&["verify", "module.toml", "--trust", &trusted], &dir));
    assert!(verified.contains("signed by alice"), "{verified}");

    let untrusted = blvm_module(&["verify", "module.toml"], &dir);
    assert!(
        !untrusted.status.success(),
        "a key the operator does not trust counts for nothing"
    );
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("not in the keyring"),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );

    // A new binary under a signed manifest: pack refuses to re-pin it.
    std::fs::write(dir.join("watcher"), b"\x7fELF another build").expect("rebuild");
    let repack = blvm_module(&["pack", "module.toml"], &dir);
    assert!(!repack.status.success(), "pack must not silently void signatures");
    assert!(
        String::from_utf8_lossy(&repack.stderr).contains("sign again"),
        "{}",
        String::from_utf8_lossy(&repack.stderr)
    );
}

#[test]
fn two_maintainers_sign_the_same_manifest_in_turn_and_it_verifies_two_of_two() {
    let dir = temp_dir("maintainer-sign-write");
    let manifest = MANIFEST.replace(
        "maintainers = [\"alice\"]\nthreshold = \"1-of-1\"",
        "maintainers = [\"alice\", \"bob\"]\nthreshold = \"2-of-2\"",
    );
    std::fs::write(dir.join("module.toml"), &manifest).expect("write manifest");
    std::fs::write(dir.join("watcher"), b"\x7fELF pretend module").expect("write binary");
    let mut trust = Vec::new();
    for who in ["alice", "bob"] {
        let keygen = stdout(&blvm_module(&["keygen", &format!("{who}.key")], &dir));
        let public = keygen
            .lines()
            .find_map(|line| line.strip_prefix("public key: "))
            .expect("the public key is printed");
        trust.push(format!("{who}={public}"));
    }
    stdout(&blvm_module(&["pack", "module.toml"], &dir));
    let verify = |required: &str| {
        blvm_module(
            &[
                "verify",
                "module.toml",
                "--trust",
                &trust[0],
                "--trust",
                &trust[1],
                "--required",
                required,
            ],
            &dir,
        )
    };
    let signed = stdout(&blvm_module(
        &[
            "sign",
            "module.toml",
            "--key",
            "alice.key",
            "--name",
            "alice",
            "--write",
        ],
        &dir,
    ));
    assert!(signed.contains("signed by alice"), "{signed}");
    let one = verify("0");
    assert!(
        !one.status.success(),
        "one signature of a 2-of-2 manifest is not enough"
    );
    // Alice signing again replaces her entry; then Bob adds his.
    stdout(&blvm_module(
        &[
            "sign",
            "module.toml",
            "--key",
            "alice.key",
            "--name",
            "alice",
            "--write",
        ],
        &dir,
    ));
    stdout(&blvm_module(
        &["sign", "module.toml", "--key", "bob.key", "--name", "bob", "--write"],
        &dir,
    ));
    let text = std::fs::read_to_string(dir.join("module.toml")).expect("read");
    assert_eq!(text.matches("signature = ").count(), 2, "{text}");
    assert!(text.contains("threshold = \"2-of-2\""), "{text}");
    let both = stdout(&verify("2"));
    assert!(both.contains("signed by alice, bob"), "{both}");
}
