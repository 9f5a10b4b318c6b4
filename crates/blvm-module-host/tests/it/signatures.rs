//! Maintainer signatures checked at load and reload, with real secp256k1
//! keys and real module processes (DESIGN.md "Verification"): a module
//! signed by trusted keys runs and says who signed it; keys the manifest
//! brings along count for nothing; a manifest changed after signing is
//! refused on reload while the running module keeps running.

use std::path::PathBuf;

use blvm_module_host::manager::ModuleState;
use blvm_module_host::security::canonical::signing_digest_of_text;
use blvm_module_host::security::signatures::{public_key_of, sign_digest};
use blvm_module_host::security::{Keyring, SignaturePolicy};
use sha2::{Digest, Sha256};

use crate::support::{module_bin, TestNode as Node};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A deterministic secret key per maintainer.
fn secret(who: &str) -> String {
    hex(&Sha256::digest(format!("blvm it maintainer {who}").as_bytes()))
}

fn key(who: &str) -> String {
    public_key_of(&secret(who)).expect("secret key")
}

async fn node(tag: &str, trusted: &[&str], required: u32) -> Node {
    let mut keyring = Keyring::new();
    for who in trusted {
        keyring.trust(who, &key(who)).expect("trusted key");
    }
    Node::start(tag, |config| config.signatures = SignaturePolicy { keyring, required }).await
}

/// Installs `test-module` (mode `serve`) as `name`, its manifest pinning
/// the binary's hash and carrying `capabilities`, signed by `signers`
/// (none: unsigned).
fn install(node: &Node, name: &str, capabilities: &str, threshold: &str, signers: &[&str]) -> PathBuf {
    let dir = node.modules_dir.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    let binary = dir.join(name);
    std::fs::copy(module_bin("test-module"), &binary).expect("copy binary");
    let hash = hex(&Sha256::digest(std::fs::read(&binary).expect("binary")));
    let body = format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\ncapabilities = [{capabilities}]\n\n[binary]\nhash = \"sha256:{hash}\"\n"
    );
    let manifest = sign(&body, threshold, signers);
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
    std::fs::write(dir.join("config.toml"), "mode = \"serve\"\n").expect("config");
    dir
}

/// `body` with a `[signatures]` table signed by each of `signers`.
fn sign(body: &str, threshold: &str, signers: &[&str]) -> String {
    if signers.is_empty() {
        return body.to_owned();
    }
    let digest = signing_digest_of_text(body).expect("signable");
    let mut text = format!("{body}\n[signatures]\nthreshold = \"{threshold}\"\nmaintainers = [\n");
    for who in signers {
        let sig = sign_digest(&digest, &secret(who)).expect("signature");
        text.push_str(&format!(
            "  {{ name = \"{who}\", key = \"{}\", signature = \"{sig}\" }},\n",
            key(who)
        ));
    }
    text + "]\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_signed_by_trusted_keys_runs_and_its_status_names_the_signers() {
    let node = node("signed", &["alice", "bob", "carol"], 1).await;
    install(&node, "signed", "\"read_chain_state\"", "2-of-3", &["alice", "carol"]);
    let report = node.manager.auto_load_modules().await.expect("loaded");
    assert_eq!(report.loaded, vec!["signed".to_string()], "{report:?}");
    let status = node.manager.module_status("signed").expect("status");
    assert_eq!(status.state, ModuleState::Running);
    assert_eq!(status.signed_by, vec!["alice", "carol"]);
    let answer = crate::support::module_call_text(&node.manager, "signed", "flood", "").await;
    assert_eq!(answer, "flooded");
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_and_unsigned_modules_are_refused_by_name_and_the_others_load() {
    // The operator trusts alice and requires one signature.
    let node = node("untrusted", &["alice"], 1).await;
    install(&node, "trusted", "\"read_chain_state\"", "1-of-1", &["alice"]);
    // Valid signatures by keys the manifest itself lists, unknown to the operator.
    install(&node, "selfsigned", "\"read_chain_state\"", "1-of-1", &["mallory"]);
    install(&node, "unsigned", "\"read_chain_state\"", "", &[]);
    let report = node.manager.auto_load_modules().await.expect("loaded");
    assert_eq!(report.loaded, vec!["trusted".to_string()], "{report:?}");
    let why = &report.failed["selfsigned"];
    assert!(
        why.contains("0 valid signature(s) from trusted keys, 1 required") && why.contains("mallory: key"),
        "{why}"
    );
    let why = &report.failed["unsigned"];
    assert!(why.contains("unsigned, and the operator requires 1"), "{why}");
    node.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_changed_after_signing_is_refused_on_reload_and_the_running_module_stays() {
    let node = node("tampered", &["alice"], 0).await;
    let dir = install(&node, "victim", "\"read_chain_state\"", "1-of-1", &["alice"]);
    node.manager.auto_load_modules().await.expect("loaded");
    let before = node.manager.module_status("victim").expect("status");
    assert_eq!(before.signed_by, vec!["alice"]);
    // Someone with write access to the module's folder grants it the network.
    let manifest = std::fs::read_to_string(dir.join("module.toml")).expect("manifest");
    let tampered = manifest.replace(
        "capabilities = [\"read_chain_state\"]",
        "capabilities = [\"read_chain_state\", \"network_access\"]",
    );
    assert_ne!(manifest, tampered);
    std::fs::write(dir.join("module.toml"), tampered).expect("tamper");
    let err = node
        .manager
        .reload_module("victim")
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("signatures") && err.contains("alice: the signature does not verify"),
        "{err}"
    );
    let after = node.manager.module_status("victim").expect("status");
    assert_eq!(
        (after.state, after.pid, after.capabilities),
        (ModuleState::Running, before.pid, before.capabilities)
    );
    node.manager.shutdown().await;
}
