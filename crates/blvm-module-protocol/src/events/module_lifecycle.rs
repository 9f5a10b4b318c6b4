//! Payloads of the module lifecycle and module registry events. Only the
//! node publishes these; modules are named by their manifest `name`, never
//! by their per-spawn module id.
//!
//! `ModuleLoaded` timing: it is published only after the loaded module has
//! subscribed to events, and a module that subscribes to `ModuleLoaded`
//! first receives one `ModuleLoaded` for every module already loaded (see
//! `docs/events.md`).

use serde::{Deserialize, Serialize};

/// A module was loaded, has handshaken and subscribed: it is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleLoaded {
    /// The module's manifest name.
    pub module_name: String,
    /// The module's version.
    pub version: String,
}

/// A module was unloaded (stopped on request and its resources released).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleUnloaded {
    /// The module's manifest name.
    pub module_name: String,
    /// The version that was unloaded.
    pub version: String,
}

/// A module was reloaded; published only once the new version runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleReloaded {
    /// The module's manifest name.
    pub module_name: String,
    /// The version that ran before.
    pub old_version: String,
    /// The version that runs now (may equal `old_version`).
    pub new_version: String,
}

/// A module process was spawned inside its sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleStarted {
    /// The module's manifest name.
    pub module_name: String,
    /// The module's version.
    pub version: String,
}

/// A module process ended without crashing (after `Shutdown`, or exit
/// status 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleStopped {
    /// The module's manifest name.
    pub module_name: String,
    /// The module's version.
    pub version: String,
    /// Why it stopped, e.g. `"shutdown"`, `"unload"`, `"exited"`.
    pub reason: String,
}

/// A module process crashed: it exited with a non-zero status, was killed
/// by a signal, or broke the protocol or its handshake deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleCrashed {
    /// The module's manifest name.
    pub module_name: String,
    /// The module's version.
    pub version: String,
    /// What went wrong, as the node saw it.
    pub error: String,
    /// The exit status, if the process exited.
    pub exit_code: Option<i32>,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    /// How many times the module has been restarted so far.
    pub restarts: u32,
    /// Whether the node will restart it (false once the crash-loop cap is
    /// reached or restarts are disabled).
    pub will_restart: bool,
}

/// A module's health, as the node's monitor sees it, changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleHealthChanged {
    /// The module's manifest name.
    pub module_name: String,
    /// Previous health, e.g. `"healthy"`, `"degraded"`, `"unresponsive"`.
    pub old_health: String,
    /// New health.
    pub new_health: String,
}

/// A module's lifecycle state changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleStateChanged {
    /// The module's manifest name.
    pub module_name: String,
    /// Previous state: one of the node's `"loading"`, `"running"`,
    /// `"unresponsive"`, `"restarting"`, `"stopped"`, `"failed"`, or
    /// `"unloaded"` for a module that was not loaded before (its load).
    pub old_state: String,
    /// New state, one of the same (never `"unloaded"`).
    pub new_state: String,
}

/// A module was discovered (not yet loaded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleDiscovered {
    /// The module's manifest name.
    pub module_name: String,
    /// The module's version.
    pub version: String,
    /// Where it was found: `"filesystem"`, `"registry"` or `"manual"`.
    pub source: String,
}

/// A module was installed (verified and placed in the modules directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleInstalled {
    /// The module's manifest name.
    pub module_name: String,
    /// The installed version.
    pub version: String,
}

/// An installed module was updated to another version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleUpdated {
    /// The module's manifest name.
    pub module_name: String,
    /// The version before the update.
    pub old_version: String,
    /// The version after the update.
    pub new_version: String,
}

/// An installed module was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleRemoved {
    /// The module's manifest name.
    pub module_name: String,
    /// The version that was removed.
    pub version: String,
}
