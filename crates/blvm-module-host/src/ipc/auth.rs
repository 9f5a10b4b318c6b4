//! Authentication of a module's handshake.
//!
//! Before the node spawns a module it registers what it expects
//! ([`ModuleSpec`]) and gets a fresh random token ([`ModuleTicket`]); the
//! token goes to the child in `BLVM_MODULE_TOKEN` and the child's pid is
//! bound once `fork` returns. A `hello` is accepted only if it names a
//! registered module id, presents that module's token (compared in constant
//! time), comes from the bound pid (`SO_PEERCRED`), the token has not been
//! used before, and no connection for that id is live.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use blvm_module_protocol::{Hello, PermissionSet, Refused};

/// What the node expects of a module it is about to spawn.
#[derive(Debug, Clone)]
pub struct ModuleSpec {
    /// The id the node assigned to this spawn (`BLVM_MODULE_ID`).
    pub module_id: String,
    /// The manifest name.
    pub name: String,
    /// The manifest version.
    pub version: String,
    /// Granted capabilities: the manifest's request and the operator's
    /// policy, intersected.
    pub capabilities: PermissionSet,
    /// Configuration handed over in `welcome`.
    pub config: BTreeMap<String, String>,
    /// The module's data directory.
    pub data_dir: PathBuf,
    /// Capacity of the module's event queue (events beyond it are dropped
    /// and counted).
    pub event_queue_capacity: usize,
    /// Requests the module may make, per second and in bursts; beyond it
    /// a request is answered `rate_limited`. `None`: no limit.
    pub request_rate: Option<super::RequestRate>,
    /// The events the manifest declares in `publishes`: all `publish_event`
    /// may carry.
    pub publishes: Vec<String>,
}

impl ModuleSpec {
    /// A spec with no capabilities, no config and the default queue of 100.
    pub fn new(module_id: impl Into<String>, name: impl Into<String>, version: impl Into<String>) -> Self {
        ModuleSpec {
            module_id: module_id.into(),
            name: name.into(),
            version: version.into(),
            capabilities: PermissionSet::empty(),
            config: BTreeMap::new(),
            data_dir: PathBuf::new(),
            event_queue_capacity: crate::api::events::DEFAULT_QUEUE_CAPACITY,
            request_rate: Some(super::RequestRate::default()),
            publishes: Vec::new(),
        }
    }
}

/// The credentials for one spawn: hand `token` to the child process.
///
/// `Debug` shows the module id only: a ticket logged by mistake must not
/// hand its token to whoever reads the log.
#[derive(Clone)]
pub struct ModuleTicket {
    /// The module id.
    pub module_id: String,
    /// The one-time token, 64 hex characters.
    pub token: String,
}

impl std::fmt::Debug for ModuleTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleTicket")
            .field("module_id", &self.module_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

struct Expected {
    spec: Arc<ModuleSpec>,
    token: String,
    pid: Option<u32>,
    used: bool,
    connected: bool,
}

/// The registry of expected modules.
#[derive(Default)]
pub(crate) struct AuthRegistry {
    expected: Mutex<HashMap<String, Expected>>,
    pid_bound: Condvar,
}

/// How long a `hello` waits for the spawner to bind the child's pid: the
/// spawner binds it as soon as `fork` returns, long before the child can
/// have exec'd and connected, so this only matters under extreme load.
const PID_BIND_WAIT: Duration = Duration::from_secs(5);

fn refused(code: &str, reason: String) -> Refused {
    Refused {
        code: code.to_owned(),
        reason,
    }
}

impl AuthRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Expected>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every update is a single insert or field store), so poisoning is
        // safe to ignore.
        self.expected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a module about to be spawned; replaces any earlier
    /// registration of the same id (a restart gets a fresh token).
    pub(crate) fn expect(&self, spec: ModuleSpec) -> std::io::Result<ModuleTicket> {
        let token = random_token()?;
        let ticket = ModuleTicket {
            module_id: spec.module_id.clone(),
            token: token.clone(),
        };
        self.lock().insert(
            spec.module_id.clone(),
            Expected {
                spec: Arc::new(spec),
                token,
                pid: None,
                used: false,
                connected: false,
            },
        );
        Ok(ticket)
    }

    /// Records the pid the module's process runs as.
    pub(crate) fn bind_pid(&self, module_id: &str, pid: u32) {
        if let Some(e) = self.lock().get_mut(module_id) {
            e.pid = Some(pid);
        }
        self.pid_bound.notify_all();
    }

    /// Whether `module_id` is still registered (not forgotten).
    pub(crate) fn is_expected(&self, module_id: &str) -> bool {
        self.lock().contains_key(module_id)
    }

    /// Forgets a module (unloaded): its token no longer works, and whoever
    /// waits for its pid stops waiting.
    pub(crate) fn forget(&self, module_id: &str) {
        self.lock().remove(module_id);
        self.pid_bound.notify_all();
    }

    /// The pid bound to `module_id`, waiting up to the same 5 s as
    /// [`AuthRegistry::authenticate`] for the spawner to bind it. `None`
    /// if the module is not expected (or is forgotten meanwhile), no pid
    /// is bound in time, or `stop` is set (then call
    /// [`AuthRegistry::wake_waiters`] to end the wait at once).
    pub(crate) fn bound_pid(&self, module_id: &str, stop: &AtomicBool) -> Option<u32> {
        let deadline = Instant::now() + PID_BIND_WAIT;
        let mut map = self.lock();
        loop {
            // Checked under the lock that `wake_waiters` takes to notify,
            // so a stop set before the notification is always seen.
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            let e = map.get(module_id)?;
            if let Some(pid) = e.pid {
                return Some(pid);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            map = self
                .pid_bound
                .wait_timeout(map, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Wakes every [`AuthRegistry::bound_pid`] wait, to look at its `stop`
    /// flag again.
    pub(crate) fn wake_waiters(&self) {
        let _map = self.lock();
        self.pid_bound.notify_all();
    }

    /// Marks the module's connection closed. Its token stays used: a
    /// reconnect needs a new spawn and a new token.
    pub(crate) fn disconnected(&self, module_id: &str) {
        if let Some(e) = self.lock().get_mut(module_id) {
            e.connected = false;
        }
    }

    /// Checks a `hello` from a peer with pid `peer_pid`.
    pub(crate) fn authenticate(&self, hello: &Hello, peer_pid: Option<u32>) -> Result<Arc<ModuleSpec>, Refused> {
        let deadline = Instant::now() + PID_BIND_WAIT;
        let mut map = self.lock();
        loop {
            let Some(e) = map.get_mut(&hello.module_id) else {
                return Err(refused(
                    "bad_token",
                    format!("no module `{}` is expected", hello.module_id),
                ));
            };
            if !constant_time_eq(e.token.as_bytes(), hello.token.as_bytes()) {
                return Err(refused(
                    "bad_token",
                    format!("wrong token for module `{}`", hello.module_id),
                ));
            }
            if e.connected {
                return Err(refused(
                    "already_connected",
                    format!("module `{}` already has a live connection", hello.module_id),
                ));
            }
            if e.used {
                return Err(refused(
                    "token_replayed",
                    format!("the token of module `{}` was already used", hello.module_id),
                ));
            }
            match (e.pid, peer_pid) {
                (Some(expected), Some(peer)) if expected == peer => {}
                (Some(expected), peer) => {
                    return Err(refused(
                        "pid_mismatch",
                        format!(
                            "module `{}` runs as pid {expected}, the connection comes from {}",
                            hello.module_id,
                            peer.map_or_else(|| "an unknown pid".to_owned(), |p| format!("pid {p}")),
                        ),
                    ));
                }
                (None, _) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(refused(
                            "pid_mismatch",
                            format!("module `{}` has no process bound to it", hello.module_id),
                        ));
                    }
                    map = self
                        .pid_bound
                        .wait_timeout(map, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    continue;
                }
            }
            if e.spec.name != hello.module_name {
                return Err(refused(
                    "identity_mismatch",
                    format!(
                        "module `{}` is `{}`, not `{}`",
                        hello.module_id, e.spec.name, hello.module_name
                    ),
                ));
            }
            e.used = true;
            e.connected = true;
            return Ok(Arc::clone(&e.spec));
        }
    }
}

fn random_token() -> std::io::Result<String> {
    let mut buf = [0u8; 32];
    let mut filled = 0;
    while filled < buf.len() {
        filled += rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(id: &str, token: &str) -> Hello {
        Hello {
            protocol_versions: vec![1],
            module_id: id.into(),
            module_name: "m".into(),
            version: "1.0.0".into(),
            token: token.into(),
        }
    }

    #[test]
    fn ticket_debug_output_does_not_show_the_token() {
        let reg = AuthRegistry::default();
        let ticket = reg.expect(ModuleSpec::new("m-1", "m", "1.0.0")).unwrap();
        let shown = format!("{ticket:?}");
        assert!(!shown.contains(&ticket.token), "{shown}");
        assert!(shown.contains("m-1") && shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn tokens_are_random_and_one_time() {
        let reg = AuthRegistry::default();
        let t = reg.expect(ModuleSpec::new("m-1", "m", "1.0.0")).unwrap();
        let t2 = reg.expect(ModuleSpec::new("m-2", "m", "1.0.0")).unwrap();
        assert_ne!(t.token, t2.token);
        assert_eq!(t.token.len(), 64);
        reg.bind_pid("m-1", 42);
        assert_eq!(
            reg.authenticate(&hello("m-1", "00"), Some(42)).unwrap_err().code,
            "bad_token"
        );
        assert_eq!(
            reg.authenticate(&hello("m-1", &t.token), Some(43)).unwrap_err().code,
            "pid_mismatch"
        );
        assert!(reg.authenticate(&hello("m-1", &t.token), Some(42)).is_ok());
        assert_eq!(
            reg.authenticate(&hello("m-1", &t.token), Some(42)).unwrap_err().code,
            "already_connected"
        );
        reg.disconnected("m-1");
        assert_eq!(
            reg.authenticate(&hello("m-1", &t.token), Some(42)).unwrap_err().code,
            "token_replayed"
        );
    }

    #[test]
    fn bound_pid_waits_for_the_bind_and_ends_on_forget_or_stop() {
        let reg = Arc::new(AuthRegistry::default());
        let running = AtomicBool::new(false);
        assert_eq!(reg.bound_pid("nobody-expected", &running), None);
        reg.expect(ModuleSpec::new("m-1", "m", "1.0.0")).unwrap();
        let binder = {
            let reg = Arc::clone(&reg);
            std::thread::spawn(move || reg.bind_pid("m-1", 7))
        };
        assert_eq!(reg.bound_pid("m-1", &running), Some(7));
        binder.join().unwrap();

        reg.expect(ModuleSpec::new("m-2", "m", "1.0.0")).unwrap();
        let forgetter = {
            let reg = Arc::clone(&reg);
            std::thread::spawn(move || reg.forget("m-2"))
        };
        assert_eq!(reg.bound_pid("m-2", &running), None);
        forgetter.join().unwrap();

        reg.expect(ModuleSpec::new("m-3", "m", "1.0.0")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopper = {
            let (reg, stop) = (Arc::clone(&reg), Arc::clone(&stop));
            std::thread::spawn(move || {
                stop.store(true, Ordering::SeqCst);
                reg.wake_waiters();
            })
        };
        assert_eq!(reg.bound_pid("m-3", &stop), None);
        stopper.join().unwrap();
    }
}
