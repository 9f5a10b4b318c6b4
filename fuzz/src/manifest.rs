//! The manifest properties `manifest` and `manifest_structured` share.

use std::path::Path;

use blvm_module_host::registry::ModuleManifest;
use blvm_module_host::security::canonical;

/// Where a fuzzed manifest claims to come from (only named in errors).
const ORIGIN: &str = "fuzz/module.toml";

/// Parsing `text` never panics, and a manifest that parses has one
/// signing digest, the parser's and the text's alike. Its canonical
/// encoding (what maintainers sign) is JSON of the same value: written
/// back as TOML, plain and pretty (other key order, quoting, inline or
/// standard tables), with its `[signatures]`, it parses to the same
/// manifest, with the same canonical encoding and the same digest.
pub fn check(text: &str) {
    let origin = Path::new(ORIGIN);
    let Ok(manifest) = ModuleManifest::from_toml_str(text, origin) else {
        return;
    };
    let twice = ModuleManifest::from_toml_str(text, origin).expect("parsing is deterministic");
    assert_eq!(twice, manifest, "parsing is deterministic");
    let from_text = canonical::signing_digest_of_text(text);
    match manifest.signing_digest() {
        Ok(digest) => assert_eq!(from_text.as_ref().ok(), Some(digest), "one signing digest"),
        Err(_) => assert!(from_text.is_err(), "no digest from the text either"),
    }
    let table: toml::Table = toml::from_str(text).expect("a manifest that parses is TOML");
    let encoding = match canonical::encode(&table) {
        Ok(encoding) => encoding,
        // A float or a datetime: no canonical form, so no digest.
        Err(_) => {
            assert!(
                manifest.signing_digest().is_err(),
                "a manifest without canonical form has no digest"
            );
            return;
        }
    };
    let json: serde_json::Value = serde_json::from_slice(&encoding).expect("the canonical encoding is JSON");
    let toml::Value::Table(mut back) = toml::Value::try_from(json).expect("the canonical value is TOML") else {
        panic!("the canonical encoding of a table is a table");
    };
    let mut unsigned = table.clone();
    if let Some(signatures) = unsigned.remove("signatures") {
        back.insert("signatures".to_owned(), signatures);
    }
    let mut back_unsigned = back.clone();
    back_unsigned.remove("signatures");
    assert_eq!(
        back_unsigned, unsigned,
        "the canonical encoding holds the manifest's value"
    );
    for render in [toml::to_string, toml::to_string_pretty] {
        let again_text = render(&back).expect("a TOML table renders");
        let again = ModuleManifest::from_toml_str(&again_text, origin)
            .unwrap_or_else(|e| panic!("the canonical form re-parses: {e}\n{again_text}"));
        assert_eq!(again, manifest, "re-parsed from its canonical form, the same manifest");
        let again_table: toml::Table = toml::from_str(&again_text).expect("TOML");
        assert_eq!(
            canonical::encode(&again_table).ok().as_deref(),
            Some(&encoding[..]),
            "one canonical encoding"
        );
        assert_eq!(
            again.signing_digest().ok(),
            manifest.signing_digest().ok(),
            "one signing digest"
        );
    }
}
