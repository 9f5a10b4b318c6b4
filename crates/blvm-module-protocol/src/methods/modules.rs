//! Inter-module methods: discover the running modules, register this
//! module's API, call another module's API, and publish events.
//!
//! An inter-module call reaches its target as the invocation
//! [`MODULE_CALL`](super::invocation::MODULE_CALL) with
//! [`ModuleCall::caller`] set by the node to the calling module's name;
//! nothing the caller sends can change it.

use serde::{Deserialize, Serialize};

use crate::hash::bytes_field;

/// One method of a module's API, as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiMethod {
    /// The method's name: 1 to 64 of `a-z`, `0-9`, `_`, `.`, `-`.
    pub name: String,
    /// What it does, for the modules that discover it.
    #[serde(default)]
    pub description: String,
}

/// Params of `register_module_api`: methods added to the module's API
/// (a name registered before is replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterModuleApi {
    /// The methods.
    pub methods: Vec<ApiMethod>,
}

/// Result of `register_module_api`: the module's whole API now, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleApi {
    /// The registered methods.
    pub methods: Vec<ApiMethod>,
}

/// One running module, in `discover_modules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleDescription {
    /// Its manifest name.
    pub name: String,
    /// Its manifest version.
    pub version: String,
    /// The API methods it registered, sorted by name.
    pub methods: Vec<ApiMethod>,
}

/// Result of `discover_modules`: the modules connected now, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredModules {
    /// The modules, sorted by name (the caller included).
    pub modules: Vec<ModuleDescription>,
}

/// Params of `call_module`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallModule {
    /// The target module's name.
    pub module: String,
    /// One of the methods it registered.
    pub method: String,
    /// Opaque params, as the target's API defines them.
    #[serde(with = "bytes_field")]
    pub params: Vec<u8>,
    /// How long to wait for the answer, in ms; absent or larger than the
    /// node's limit, the node's limit (`[modules] call_timeout_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Result of `call_module`: the target's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallModuleResult {
    /// Opaque result bytes.
    #[serde(with = "bytes_field")]
    pub result: Vec<u8>,
}

/// Params of `publish_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishEvent {
    /// The event's name: one the module's manifest lists in `publishes`,
    /// either a catalogue event a module may publish (`PaymentSettled`) or
    /// the module's own `<module name>.<Event>`.
    pub event: String,
    /// The payload, a MessagePack map; for a catalogue event it must decode
    /// as that event's payload.
    #[serde(with = "bytes_field")]
    pub payload: Vec<u8>,
}

/// Result of `publish_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Subscribers whose queue took the event.
    pub delivered: u64,
}
