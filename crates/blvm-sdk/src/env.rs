//! The environment the node gives a module process it spawns.
//!
//! | variable | meaning |
//! |---|---|
//! | `BLVM_MODULE_SOCKET` | path of the socket this spawn connects to (its own, made by the node for it) |
//! | `BLVM_MODULE_ID` | the id of this spawn, sent in `hello` |
//! | `BLVM_MODULE_NAME` | the manifest name |
//! | `BLVM_MODULE_VERSION` | the manifest version |
//! | `BLVM_MODULE_TOKEN` | the one-time handshake token |
//! | `BLVM_MODULE_DATA_DIR` | the module's own data directory |
//!
//! The module's configuration is not in the environment: it arrives in the
//! `welcome` frame.

use std::path::PathBuf;

use crate::error::SdkError;

/// Socket path variable.
pub const SOCKET: &str = "BLVM_MODULE_SOCKET";
/// Module id variable.
pub const MODULE_ID: &str = "BLVM_MODULE_ID";
/// Module name variable.
pub const MODULE_NAME: &str = "BLVM_MODULE_NAME";
/// Module version variable.
pub const MODULE_VERSION: &str = "BLVM_MODULE_VERSION";
/// Token variable.
pub const TOKEN: &str = "BLVM_MODULE_TOKEN";
/// Data directory variable.
pub const DATA_DIR: &str = "BLVM_MODULE_DATA_DIR";

/// The connection details the node handed to this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleEnv {
    /// `BLVM_MODULE_SOCKET`
    pub socket_path: PathBuf,
    /// `BLVM_MODULE_ID`
    pub module_id: String,
    /// `BLVM_MODULE_NAME`
    pub module_name: String,
    /// `BLVM_MODULE_VERSION`
    pub version: String,
    /// `BLVM_MODULE_TOKEN`
    pub token: String,
    /// `BLVM_MODULE_DATA_DIR` (empty when unset)
    pub data_dir: PathBuf,
}

fn var(name: &'static str) -> Result<String, SdkError> {
    std::env::var(name).map_err(|_| SdkError::MissingEnv(name))
}

impl ModuleEnv {
    /// Reads every variable; all but the data dir are required.
    pub fn from_env() -> Result<ModuleEnv, SdkError> {
        Ok(ModuleEnv {
            socket_path: PathBuf::from(var(SOCKET)?),
            module_id: var(MODULE_ID)?,
            module_name: var(MODULE_NAME)?,
            version: var(MODULE_VERSION)?,
            token: var(TOKEN)?,
            data_dir: PathBuf::from(std::env::var(DATA_DIR).unwrap_or_default()),
        })
    }

    /// The token alone, for the seed's `connect(socket, id, name, version)`.
    pub fn token() -> Result<String, SdkError> {
        var(TOKEN)
    }
}
