//! Registry metadata as a client reads it from an untrusted server: a
//! root to trust (`from_root`) and, under a real root, a timestamp.
//! Nothing panics; nothing unsigned is accepted.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use blvm_registry::tuf::{Lifetimes, RepositoryKeys, RepositoryWriter, TrustedMetadata};
use libfuzzer_sys::fuzz_target;

/// A real repository's root, made once.
fn root() -> &'static [u8] {
    static ROOT: OnceLock<Vec<u8>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("blvm-fuzz-tuf-{}", std::process::id()));
        let keys = RepositoryKeys::generate().expect("keys");
        let writer = RepositoryWriter::create(&dir, keys, Lifetimes::default(), SystemTime::now()).expect("repository");
        let root = writer.root_bytes();
        let _ = std::fs::remove_dir_all(&dir);
        root
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(trusted) = TrustedMetadata::from_root(data) {
        // Whatever it is, it is self-signed to its own threshold.
        assert!(trusted.root().version >= 1);
    }
    let mut trusted = TrustedMetadata::from_root(root()).expect("the real root");
    // Arbitrary bytes are never a timestamp signed by the real keys.
    assert!(trusted.update_timestamp(data, SystemTime::now()).is_err());
});
