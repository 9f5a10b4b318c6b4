//! The registry's TUF role keys on disk: `keys/<role>.json`, one file per
//! role (`{"threshold": 1, "keys": ["<hex secret>"]}`), files 0600 in a
//! 0700 directory. Whoever reads them can sign metadata every client
//! trusts, so they are written with those modes from the start, never
//! chmodded afterwards.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use hex_conservative::{DisplayHex, FromHex};
use serde::{Deserialize, Serialize};

use super::store::StoreError;
use crate::tuf::{RepositoryKeys, RoleName, RoleSigners, SigningKey};

const ROLES: [RoleName; 4] = [
    RoleName::Root,
    RoleName::Targets,
    RoleName::Snapshot,
    RoleName::Timestamp,
];

#[derive(Serialize, Deserialize)]
struct RoleFile {
    threshold: u64,
    keys: Vec<String>,
}

/// Writes `keys` under `dir` (created, mode 0700; it must not exist).
pub(crate) fn write(dir: &Path, keys: &RepositoryKeys) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(StoreError::io(dir))?;
    for role in ROLES {
        let signers = keys.get(role);
        let file = RoleFile {
            threshold: signers.threshold,
            keys: signers.keys.iter().map(|k| k.secret().to_lower_hex_string()).collect(),
        };
        let path = dir.join(format!("{role}.json"));
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::malformed(&path, e))?;
        out.write_all(&bytes)
            .and_then(|()| out.sync_all())
            .map_err(StoreError::io(&path))?;
    }
    Ok(())
}

/// Reads the keys [`write`] wrote under `dir`.
pub(crate) fn read(dir: &Path) -> Result<RepositoryKeys, StoreError> {
    let role = |role: RoleName| -> Result<RoleSigners, StoreError> {
        let path = dir.join(format!("{role}.json"));
        let bytes = std::fs::read(&path).map_err(StoreError::io(&path))?;
        let file: RoleFile = serde_json::from_slice(&bytes).map_err(|e| StoreError::malformed(&path, e))?;
        let keys = file
            .keys
            .iter()
            .map(|hex| <[u8; 32]>::from_hex(hex).map(SigningKey::from_secret))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::malformed(&path, e))?;
        Ok(RoleSigners {
            keys,
            threshold: file.threshold,
        })
    };
    Ok(RepositoryKeys {
        root: role(RoleName::Root)?,
        targets: role(RoleName::Targets)?,
        snapshot: role(RoleName::Snapshot)?,
        timestamp: role(RoleName::Timestamp)?,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_round_trip_through_private_files() {
        let dir = std::env::temp_dir().join(format!("blvm-registry-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let keys = RepositoryKeys::generate().expect("keys");
        write(&dir, &keys).expect("written");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("root.json")), 0o600);
        let back = read(&dir).expect("read back");
        for role in ROLES {
            let ids = |k: &RepositoryKeys| k.get(role).keys.iter().map(SigningKey::key_id).collect::<Vec<_>>();
            assert_eq!(ids(&back), ids(&keys));
            assert_eq!(back.get(role).threshold, keys.get(role).threshold);
        }
        assert!(write(&dir, &keys).is_err(), "never over existing keys");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
