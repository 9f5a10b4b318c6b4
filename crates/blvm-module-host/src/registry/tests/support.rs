//! Helpers shared by the registry tests: temp dirs and module folders.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("blvm-registry-{test}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir is writable");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A minimal valid manifest for `name`, with extra lines appended.
pub fn manifest(name: &str, version: &str, extra: &str) -> String {
    format!("name = \"{name}\"\nversion = \"{version}\"\n{extra}\n")
}

/// Writes `modules/<folder>/module.toml` and, when `binary` is given, an
/// executable file of that name.
pub fn write_module(modules: &Path, folder: &str, manifest_text: &str, binary: Option<&str>) -> PathBuf {
    let dir = modules.join(folder);
    std::fs::create_dir_all(&dir).expect("module dir is writable");
    std::fs::write(dir.join("module.toml"), manifest_text).expect("manifest is writable");
    if let Some(binary) = binary {
        write_executable(&dir.join(binary));
    }
    dir
}

pub fn write_executable(path: &Path) {
    std::fs::write(path, "#!/bin/sh\nexit 0\n").expect("binary is writable");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod works");
    }
}

/// The seed's example manifest (`module-system.md`, "Module Manifest"), with
/// real-looking hex in place of its `...` placeholders, and `capabilities`
/// moved above the first `[section]`: where the seed writes it, last, TOML
/// places it inside `[compatibility]` (see
/// `seed_layout_with_capabilities_last_is_refused_with_a_hint`).
pub const SEED_EXAMPLE: &str = r#"
# Module Identity
name = "lightning-network"
version = "1.2.3"
description = "Lightning Network implementation"
author = "Alice <alice@example.com>"

# Capabilities
capabilities = [
    "read_blockchain",
    "subscribe_events"
]

# Governance
[governance]
tier = "application"
maintainers = ["alice", "bob", "charlie"]
threshold = "2-of-3"
review_period_days = 14

# Signatures
[signatures]
maintainers = [
    { name = "alice", key = "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc", signature = "3045022100c6a2f7a2a3c1d55e2e4f6b1c1a1e0bb2b1a5c6d9f0e2d3c4b5a69788796a5b4c02206f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0" },
    { name = "bob", key = "03df51984d6b8b8b1cc693e239491f77a36c9e9dfe4a486e9972a18e03610a0d22", signature = "304402201f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a798802207a6b5c4d3e2f10017a6b5c4d3e2f10017a6b5c4d3e2f10017a6b5c4d3e2f1001" }
]
threshold = "2-of-3"

# Binary
[binary]
hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
size = 1234567
download_url = "https://registry.bitcoincommons.org/modules/lightning-network/1.2.3"

# Dependencies
[dependencies]
"blvm-node" = ">=1.0.0"
"another-module" = ">=0.5.0"

# Compatibility
[compatibility]
min_consensus_version = "1.0.0"
min_protocol_version = "1.0.0"
min_node_version = "1.0.0"
tested_with = ["1.0.0", "1.1.0"]

"#;
