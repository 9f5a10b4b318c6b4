//! `module.toml` text as the node reads it from a module folder or a
//! registry: parsing never panics, and a manifest that parses has one
//! signing digest, the parser's and the text's alike, and re-parses from
//! its canonical encoding to the same manifest (`blvm_fuzz::manifest`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        blvm_fuzz::manifest::check(text);
    }
});
