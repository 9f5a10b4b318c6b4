//! Bodies of the control frames: handshake (`hello`, `welcome`, `refused`),
//! `log` and `shutdown`.
//!
//! These are rare, so they are plain serde structs; the frame's `type` key
//! sits beside their fields in the same map and is ignored when the body
//! is decoded (as any unknown field is).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::permissions::PermissionSet;

/// First frame on a connection, module→node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol versions the module speaks; the node picks the highest
    /// one it also speaks.
    pub protocol_versions: Vec<u32>,
    /// The module id the node assigned at spawn (`BLVM_MODULE_ID`).
    pub module_id: String,
    /// The module's name, as in its manifest.
    pub module_name: String,
    /// The module's version, as in its manifest.
    pub version: String,
    /// The one-time token the node handed to the spawned process
    /// (`BLVM_MODULE_TOKEN`), hex.
    pub token: String,
}

/// The node's acceptance of a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version both sides now speak.
    pub protocol_version: u32,
    /// The node's software version.
    pub node_version: String,
    /// The capabilities granted: what the manifest asked for and the
    /// operator's policy allows.
    pub capabilities: PermissionSet,
    /// The module's configuration, flattened to dotted keys
    /// (`limits.max_peers = "8"`).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The directory the module may use for its own data.
    pub data_dir: String,
}

/// Why the node refused a [`Hello`]. The node closes the connection after
/// sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// `bad_token`, `pid_mismatch`, `already_connected`, `token_replayed`,
    /// `unsupported_version`, `identity_mismatch`, `unexpected_frame`,
    /// `bad_handshake` or `internal`; a receiver must accept codes it does
    /// not know.
    pub code: String,
    /// A human-readable reason.
    pub reason: String,
}

/// Severity of a [`LogRecord`], in `tracing`'s order. A level this build
/// does not know (a newer module's `notice`, say) decodes as `Info`, so a
/// log line can never be a protocol violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `error`
    Error,
    /// `warn`
    Warn,
    /// `info`
    Info,
    /// `debug`
    Debug,
    /// `trace`
    Trace,
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(match s.as_ref() {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => LogLevel::Info,
        })
    }
}

/// A log line a module asks the node to record under the module's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Severity.
    pub level: LogLevel,
    /// Where in the module it comes from.
    #[serde(default)]
    pub target: String,
    /// The message.
    pub message: String,
    /// Structured fields.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// Node→module: stop now. The module should finish its work, close the
/// connection and exit with status 0 within `grace_ms`; after that the node
/// kills its process tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shutdown {
    /// Why (`unload`, `reload`, `node_shutdown`).
    pub reason: String,
    /// How long the node waits before killing.
    pub grace_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_log_level_decodes_as_info() {
        let bytes = rmp_serde::to_vec_named(&BTreeMap::from([("level", "notice"), ("message", "m")])).expect("encodes");
        let record: LogRecord = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!(record.level, LogLevel::Info);
    }
}
