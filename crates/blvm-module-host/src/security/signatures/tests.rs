use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;
use crate::security::canonical;

/// A deterministic secret key per maintainer.
fn secret(who: &str) -> String {
    hex(&Sha256::digest(format!("blvm test maintainer {who}").as_bytes()))
}

fn key(who: &str) -> String {
    public_key_of(&secret(who)).expect("valid secret")
}

const BODY: &str = "name = \"signed\"\nversion = \"1.0.0\"\ncapabilities = [\"read_blockchain\"]\n\
                    [binary]\nhash = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n";

/// `body` plus `[signatures]` with `threshold`, signed by each of
/// `signers` (name, secret-key owner): the owner differs from the name
/// to model a maintainer listing someone else's key.
fn signed(body: &str, threshold: &str, signers: &[(&str, &str)]) -> ModuleManifest {
    let table: toml::Table = toml::from_str(body).expect("toml");
    let digest = canonical::signing_digest(&table).expect("signable");
    let mut text = format!("{body}[signatures]\nthreshold = \"{threshold}\"\nmaintainers = [\n");
    for (name, owner) in signers {
        let sig = sign_digest(&digest, &secret(owner)).expect("signs");
        text.push_str(&format!(
            "  {{ name = \"{name}\", key = \"{}\", signature = \"{sig}\" }},\n",
            key(name)
        ));
    }
    text.push_str("]\n");
    ModuleManifest::from_toml_str(&text, Path::new("module.toml")).expect("manifest")
}

fn policy(trusted: &[&str], required: u32) -> SignaturePolicy {
    let mut keyring = Keyring::new();
    for who in trusted {
        keyring.trust(&format!("{who}-key"), &key(who)).expect("key");
    }
    SignaturePolicy { keyring, required }
}

#[test]
fn two_of_three_with_two_trusted_valid_signatures_passes() {
    let m = signed(BODY, "2-of-3", &[("alice", "alice"), ("bob", "bob")]);
    let report = verify(&m, &policy(&["alice", "bob", "carol"], 0)).expect("verified");
    assert_eq!(report.signed_by, vec!["alice-key", "bob-key"]);
    assert_eq!(report.required, 2);
}

#[test]
fn keys_the_manifest_brings_along_count_for_nothing() {
    // Perfectly valid signatures, but the operator trusts only carol.
    let m = signed(BODY, "2-of-3", &[("alice", "alice"), ("bob", "bob")]);
    let err = verify(&m, &policy(&["carol"], 0)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("0 valid signature(s) from trusted keys, 2 required (the manifest's threshold 2-of-3)"),
        "{text}"
    );
    assert!(
        text.contains("alice: key ") && text.contains("is not in the keyring"),
        "{text}"
    );
}

#[test]
fn a_signature_by_another_key_or_over_another_manifest_does_not_verify() {
    // bob's entry carries bob's key but a signature made with mallory's.
    let m = signed(BODY, "2-of-2", &[("alice", "alice"), ("bob", "mallory")]);
    let err = verify(&m, &policy(&["alice", "bob"], 0)).unwrap_err().to_string();
    assert!(err.contains("bob: the signature does not verify"), "{err}");

    // Signatures made for the manifest, then a capability added.
    let good = signed(BODY, "1-of-1", &[("alice", "alice")]);
    let sigs = good.signatures().expect("signed").clone();
    let tampered_body = BODY.replace("[\"read_blockchain\"]", "[\"read_blockchain\", \"network_access\"]");
    let mut text = format!("{tampered_body}[signatures]\nthreshold = \"1-of-1\"\nmaintainers = [\n");
    for s in &sigs.maintainers {
        text.push_str(&format!(
            "  {{ name = \"{}\", key = \"{}\", signature = \"{}\" }},\n",
            s.name,
            hex(&s.key),
            hex(&s.signature)
        ));
    }
    text.push_str("]\n");
    let tampered = ModuleManifest::from_toml_str(&text, Path::new("module.toml")).expect("manifest");
    let err = verify(&tampered, &policy(&["alice"], 0)).unwrap_err().to_string();
    assert!(err.contains("alice: the signature does not verify"), "{err}");
    assert!(verify(&good, &policy(&["alice"], 0)).is_ok());
}

#[test]
fn the_operators_requirement_wins_when_stricter() {
    let m = signed(BODY, "1-of-2", &[("alice", "alice")]);
    assert!(verify(&m, &policy(&["alice", "bob"], 1)).is_ok());
    let err = verify(&m, &policy(&["alice", "bob"], 2)).unwrap_err().to_string();
    assert!(
        err.contains("1 valid signature(s) from trusted keys, 2 required (the operator's policy of 2)"),
        "{err}"
    );
}

#[test]
fn unsigned_modules_load_only_when_the_operator_requires_nothing() {
    let m = ModuleManifest::from_toml_str(BODY, Path::new("module.toml")).expect("manifest");
    assert_eq!(
        verify(&m, &policy(&[], 0)).expect("allowed").signed_by,
        Vec::<String>::new()
    );
    assert_eq!(
        verify(&m, &policy(&["alice"], 1)).unwrap_err(),
        SignatureError::Unsigned { required: 1 }
    );
}

#[test]
fn a_signed_manifest_without_a_binary_hash_is_refused() {
    let body = "name = \"signed\"\nversion = \"1.0.0\"\ncapabilities = []\n";
    let m = signed(body, "1-of-1", &[("alice", "alice")]);
    assert_eq!(
        verify(&m, &policy(&["alice"], 0)).unwrap_err(),
        SignatureError::BinaryNotPinned
    );
}

#[test]
fn a_high_s_signature_is_refused_though_it_is_the_same_signature() {
    let m = signed(BODY, "1-of-1", &[("alice", "alice")]);
    let s = &m.signatures().expect("signed").maintainers[0];
    let low = Signature::from_compact(&s.signature)
        .expect("compact")
        .serialize_compact();
    // s' = n - s: the malleated twin of a valid signature.
    let n: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae,
        0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
    ];
    let mut high = low;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(n[i]) - i16::from(low[32 + i]) - borrow;
        high[32 + i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    let mut normalized = Signature::from_compact(&high).expect("parses");
    normalized.normalize_s();
    assert_eq!(normalized.serialize_compact(), low, "the twin normalizes back");
    let text = format!(
        "{BODY}[signatures]\nthreshold = \"1-of-1\"\nmaintainers = [ {{ name = \"alice\", key = \"{}\", signature = \"{}\" }} ]\n",
        key("alice"),
        hex(&high)
    );
    let malleated = ModuleManifest::from_toml_str(&text, Path::new("module.toml")).expect("manifest");
    let err = verify(&malleated, &policy(&["alice"], 0)).unwrap_err().to_string();
    assert!(err.contains("alice: the signature does not verify"), "{err}");
    assert!(verify(&m, &policy(&["alice"], 0)).is_ok());
}

#[test]
fn keyring_refuses_keys_that_are_not_points_on_the_curve() {
    let mut k = Keyring::new();
    assert!(k.trust("x", "02").is_err());
    // An x-coordinate past the field prime: no point.
    let bad = format!("02{}", "ff".repeat(32));
    assert!(k.trust("x", &bad).unwrap_err().contains("not a point"));
    assert!(k.is_empty());
}
