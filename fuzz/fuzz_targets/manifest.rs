//! `module.toml` as the node reads it from a module folder or a registry:
//! parsing never panics, and a manifest that parses has one signing
//! digest, the same whether computed by the parser or from the text.
#![no_main]

use std::path::Path;

use blvm_module_host::registry::ModuleManifest;
use blvm_module_host::security::canonical::signing_digest_of_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = ModuleManifest::from_toml_str(text, Path::new("fuzz/module.toml")) else {
        return;
    };
    let from_text = signing_digest_of_text(text);
    match manifest.signing_digest() {
        Ok(digest) => assert_eq!(from_text.as_ref().ok(), Some(digest)),
        Err(_) => assert!(from_text.is_err()),
    }
    // Parsing is deterministic.
    let again = ModuleManifest::from_toml_str(text, Path::new("fuzz/module.toml")).expect("parses again");
    assert_eq!(again.signing_digest().ok(), manifest.signing_digest().ok());
});
