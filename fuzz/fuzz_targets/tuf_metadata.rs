//! Registry metadata as a client reads it from an untrusted server: a
//! root to trust (`from_root`) and, under a real root, a timestamp.
//! Nothing panics; nothing unsigned is accepted. The real root is made
//! and verified once; each input gets a clone of the trusted state, so
//! the run spends its time in the parser, not in key generation.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use blvm_registry::tuf::{Lifetimes, RepositoryKeys, RepositoryWriter, TrustedMetadata};
use libfuzzer_sys::fuzz_target;

/// A real repository's root, trusted once.
fn trusted() -> &'static TrustedMetadata {
    static TRUSTED: OnceLock<TrustedMetadata> = OnceLock::new();
    TRUSTED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("blvm-fuzz-tuf-{}", std::process::id()));
        let keys = RepositoryKeys::generate().expect("keys");
        let writer = RepositoryWriter::create(&dir, keys, Lifetimes::default(), SystemTime::now()).expect("repository");
        let root = writer.root_bytes();
        let _ = std::fs::remove_dir_all(&dir);
        TrustedMetadata::from_root(&root).expect("the real root")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(trusted) = TrustedMetadata::from_root(data) {
        // Whatever it is, it is self-signed to its own threshold.
        assert!(trusted.root().version >= 1);
    }
    let mut trusted = trusted().clone();
    // Arbitrary bytes are never a timestamp signed by the real keys.
    assert!(trusted.update_timestamp(data, SystemTime::now()).is_err());
});
