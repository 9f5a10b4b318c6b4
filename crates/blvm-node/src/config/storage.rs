//! The `[storage]` section: how much every module may keep in its module
//! storage (the key-value store the node keeps for it).
//!
//! ```toml
//! [storage]
//! max_mb = 64               # bytes of keys plus values, per module, MiB
//! max_keys = 1000000        # keys per module, all its trees together
//!
//! [storage.modules.block-stats]   # one module: replaces the above for it
//! max_mb = 256
//! ```
//!
//! A module's manifest (`[resources]` `storage_mb`, `storage_keys`) can ask
//! for less, never for more. The data lives in
//! `<datadir>/module-data/.storage/<name>.redb`, outside every module's
//! sandbox; `blvm-node module storage-remove <name>` deletes it.

use std::collections::BTreeMap;

use blvm_module_host::services::storage::{StorageConfig, StorageQuota};
use serde::Deserialize;

use super::ConfigError;

/// One quota as written; `None` = the default's.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    /// MiB of keys plus values.
    pub max_mb: Option<u64>,
    /// Keys.
    pub max_keys: Option<u64>,
}

/// `[storage]` as written.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// MiB every module may store.
    pub max_mb: Option<u64>,
    /// Keys every module may store.
    pub max_keys: Option<u64>,
    /// `[storage.modules.<name>]`: per-module quotas.
    #[serde(default)]
    pub modules: BTreeMap<String, QuotaSettings>,
}

fn quota(section: &str, q: &QuotaSettings, base: StorageQuota) -> Result<StorageQuota, ConfigError> {
    let max_bytes = match q.max_mb {
        Some(mb) if mb > (1 << 30) => {
            return Err(ConfigError::Invalid {
                key: "storage",
                message: format!("[{section}] max_mb: {mb} is more than this node can count"),
            })
        }
        Some(mb) => mb << 20,
        None => base.max_bytes,
    };
    Ok(StorageQuota {
        max_bytes,
        max_keys: q.max_keys.unwrap_or(base.max_keys),
    })
}

impl StorageSettings {
    /// The written values over the defaults (64 MiB, 1 000 000 keys).
    pub fn resolve(&self) -> Result<StorageConfig, ConfigError> {
        let default_quota = quota(
            "storage",
            &QuotaSettings {
                max_mb: self.max_mb,
                max_keys: self.max_keys,
            },
            StorageQuota::default(),
        )?;
        let mut quotas = BTreeMap::new();
        for (name, q) in &self.modules {
            quotas.insert(
                name.clone(),
                quota(&format!("storage.modules.{name}"), q, default_quota)?,
            );
        }
        Ok(StorageConfig {
            dir: None,
            default_quota,
            quotas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_the_global_keys_then_each_modules_own() {
        let none: StorageSettings = toml::from_str("").expect("parses");
        assert_eq!(none.resolve().expect("valid").default_quota, StorageQuota::default());
        let s: StorageSettings =
            toml::from_str("max_mb = 8\nmax_keys = 100\n[modules.block-stats]\nmax_keys = 5000\n").expect("parses");
        let c = s.resolve().expect("valid");
        assert_eq!(
            c.default_quota,
            StorageQuota {
                max_bytes: 8 << 20,
                max_keys: 100
            }
        );
        assert_eq!(
            c.quotas["block-stats"],
            StorageQuota {
                max_bytes: 8 << 20,
                max_keys: 5000
            }
        );
        assert!(toml::from_str::<StorageSettings>("max_megabytes = 1\n").is_err());
    }
}
