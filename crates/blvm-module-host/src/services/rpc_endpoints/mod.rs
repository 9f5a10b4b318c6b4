//! The RPC endpoint service: modules add methods to the node's JSON-RPC
//! server (`register_rpc_endpoint`, `unregister_rpc_endpoint`) and serve
//! them through the `rpc_call` invocation.
//!
//! # The seam with the node
//!
//! The host does not know the node's JSON-RPC server. The node installs an
//! [`RpcEndpointSink`] ([`RpcEndpointService::set_sink`]): the service tells
//! it which methods to add and remove, and the node's method for an endpoint
//! calls back into [`RpcEndpointService::call`], which forwards the call to
//! the module and waits for its answer up to the module's deadline. The sink
//! refuses a name the node serves itself, so a module never shadows a node
//! method; this service refuses a name another module registered.
//!
//! # What it owns
//!
//! Every registered method, by name, with the module that registered it and
//! the spawn (module id) it came from, and the caps ([`RpcEndpointLimits`]):
//! endpoints per module and the answer deadline.
//!
//! # When methods go
//!
//! When a module's connection ends (a crash, a reload, an unload) its methods
//! leave the JSON-RPC server at once: they are no longer listed in `help`.
//! The names stay reserved for that module, *dormant*, while it is loaded:
//! a call to one answers [`EndpointError::NotRunning`] (not "Method not
//! found") while the module restarts, and the restarted module registers
//! them again when it starts. Unloading the module forgets them
//! ([`RpcEndpointService::forget_module`]); a call then answers "Method not
//! found" as for any unknown method.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use blvm_module_protocol::frame::decode_body;
use blvm_module_protocol::methods::invocation::{RpcCall, RpcCallResult, RPC_CALL};
use blvm_module_protocol::methods::rpc::{
    is_valid_method_name, RegisterRpcEndpoint, RegisterRpcEndpointResult, UnregisterRpcEndpoint,
    UnregisterRpcEndpointResult, MAX_ARGS_LEN, MAX_HELP_LEN, MAX_METHOD_LEN,
};
use blvm_module_protocol::{ErrorCode, RemoteError};

use crate::api::directory::ModuleDirectory;

/// How long the node waits for a module's answer to an `rpc_call` when the
/// operator sets nothing: below the 30 s timeout of Core's clients
/// (`bitcoin-cli`, python-bitcoinrpc), so the client hears why.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Endpoints a module may register when the operator sets nothing.
pub const DEFAULT_MAX_ENDPOINTS: usize = 32;

/// The operator's caps on RPC endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcEndpointLimits {
    /// How long every module has to answer an `rpc_call`.
    pub timeout: Duration,
    /// Per-module deadlines, replacing `timeout` for that module.
    pub timeout_per_module: BTreeMap<String, Duration>,
    /// Endpoints every module may register.
    pub max_endpoints: usize,
    /// Per-module caps, replacing `max_endpoints` for that module.
    pub max_endpoints_per_module: BTreeMap<String, usize>,
}

impl Default for RpcEndpointLimits {
    fn default() -> Self {
        RpcEndpointLimits {
            timeout: DEFAULT_TIMEOUT,
            timeout_per_module: BTreeMap::new(),
            max_endpoints: DEFAULT_MAX_ENDPOINTS,
            max_endpoints_per_module: BTreeMap::new(),
        }
    }
}

impl RpcEndpointLimits {
    /// The deadline of module `name`.
    pub fn timeout_of(&self, name: &str) -> Duration {
        self.timeout_per_module.get(name).copied().unwrap_or(self.timeout)
    }

    /// The endpoint cap of module `name`.
    pub fn max_endpoints_of(&self, name: &str) -> usize {
        self.max_endpoints_per_module
            .get(name)
            .copied()
            .unwrap_or(self.max_endpoints)
    }
}

/// One method as the node's JSON-RPC server should serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The method name.
    pub method: String,
    /// The module serving it.
    pub module: String,
    /// The whole help text: the usage line (`method args`), a blank line,
    /// the module's help.
    pub help: String,
}

/// Where the node's JSON-RPC server takes the endpoints from: implemented
/// by the node.
pub trait RpcEndpointSink: Send + Sync {
    /// Serves `endpoint`; its calls must go to [`RpcEndpointService::call`].
    ///
    /// # Errors
    ///
    /// Why the name cannot be served (the node serves that method itself),
    /// in words for the module.
    fn add(&self, endpoint: &Endpoint) -> Result<(), String>;
    /// Stops serving `method`.
    fn remove(&self, method: &str);
}

/// Why a JSON-RPC call to a module's method did not return its result.
/// The node turns each into a JSON-RPC error (`docs/ipc-protocol.md`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// No module serves this method.
    #[error("no module serves `{method}`")]
    NotFound {
        /// The method.
        method: String,
    },
    /// The module that registered it is not running (restarting, stopped).
    #[error("module `{module}` that serves `{method}` is not running; the method is back when it has restarted")]
    NotRunning {
        /// The module.
        module: String,
        /// The method.
        method: String,
    },
    /// The module has restarted but has not registered the method again
    /// (yet).
    #[error("module `{module}` that served `{method}` has restarted and has not registered it again")]
    NotRegisteredAgain {
        /// The module.
        module: String,
        /// The method.
        method: String,
    },
    /// The module did not answer within its deadline.
    #[error("module `{module}` did not answer `{method}` within {} ms", timeout.as_millis())]
    Timeout {
        /// The module.
        module: String,
        /// The method.
        method: String,
        /// Its deadline.
        timeout: Duration,
    },
    /// The module answered a JSON-RPC error of its own choosing.
    #[error("{message}")]
    Rpc {
        /// The JSON-RPC code.
        code: i32,
        /// The message.
        message: String,
    },
    /// The module failed the invocation (an error response to `rpc_call`).
    #[error("module `{module}` failed `{method}`: {error}")]
    Failed {
        /// The module.
        module: String,
        /// The method.
        method: String,
        /// Its answer.
        error: RemoteError,
    },
    /// The module's answer is not a JSON-RPC result (it did not decode, or
    /// its `result_json` is not JSON).
    #[error("module `{module}` answered `{method}` with an invalid result: {why}")]
    BadAnswer {
        /// The module.
        module: String,
        /// The method.
        method: String,
        /// What was wrong.
        why: String,
    },
}

/// One registered method.
#[derive(Debug, Clone)]
struct Registered {
    module_name: String,
    /// The spawn that registered it; `None` while dormant (its connection
    /// ended, the module is still loaded).
    module_id: Option<String>,
    help: String,
}

/// Every module's JSON-RPC endpoints.
pub struct RpcEndpointService {
    limits: RpcEndpointLimits,
    methods: Mutex<BTreeMap<String, Registered>>,
    sink: RwLock<Option<Arc<dyn RpcEndpointSink>>>,
    directory: OnceLock<Arc<ModuleDirectory>>,
    runtime: OnceLock<tokio::runtime::Handle>,
}

impl std::fmt::Debug for RpcEndpointService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcEndpointService")
            .field("limits", &self.limits)
            .field("methods", &lock(&self.methods).keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for RpcEndpointService {
    fn default() -> Self {
        RpcEndpointService::new(RpcEndpointLimits::default())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a map lookup, insert or remove.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RpcEndpointService {
    /// A service with `limits` and no endpoints.
    pub fn new(limits: RpcEndpointLimits) -> Self {
        RpcEndpointService {
            limits,
            methods: Mutex::new(BTreeMap::new()),
            sink: RwLock::new(None),
            directory: OnceLock::new(),
            runtime: OnceLock::new(),
        }
    }

    /// The caps.
    pub fn limits(&self) -> &RpcEndpointLimits {
        &self.limits
    }

    /// Where calls go to the modules and where they wait: set once by the
    /// hub that serves the modules.
    pub(crate) fn attach(&self, directory: Arc<ModuleDirectory>, runtime: tokio::runtime::Handle) {
        let _ = self.directory.set(directory);
        let _ = self.runtime.set(runtime);
    }

    /// Installs the node's JSON-RPC server; the live endpoints registered
    /// before are added to it now.
    pub fn set_sink(&self, sink: Arc<dyn RpcEndpointSink>) {
        let methods = lock(&self.methods);
        for (method, r) in methods.iter().filter(|(_, r)| r.module_id.is_some()) {
            let endpoint = Endpoint {
                method: method.clone(),
                module: r.module_name.clone(),
                help: r.help.clone(),
            };
            if let Err(why) = sink.add(&endpoint) {
                tracing::warn!(module = %r.module_name, method, "cannot serve the endpoint: {why}");
            }
        }
        *self.sink.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sink);
    }

    fn sink(&self) -> Option<Arc<dyn RpcEndpointSink>> {
        self.sink
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The methods module `name` registered (live or dormant), sorted.
    pub fn endpoints_of(&self, name: &str) -> Vec<String> {
        lock(&self.methods)
            .iter()
            .filter(|(_, r)| r.module_name == name)
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Registers (or re-registers, with new help) `p.method` for module
    /// `module_name`, spawn `module_id`.
    pub fn register(
        &self,
        module_id: &str,
        module_name: &str,
        p: &RegisterRpcEndpoint,
    ) -> Result<RegisterRpcEndpointResult, RemoteError> {
        let invalid = |why: String| RemoteError::invalid_params("register_rpc_endpoint", why);
        if !is_valid_method_name(&p.method) {
            return Err(invalid(format!(
                "method name {:?}: expected 1 to {MAX_METHOD_LEN} lowercase letters, digits and `_`, \
                 starting with a letter",
                p.method
            )));
        }
        if p.help.len() > MAX_HELP_LEN || p.args.len() > MAX_ARGS_LEN || p.args.contains('\n') {
            return Err(invalid(format!(
                "help is at most {MAX_HELP_LEN} bytes and args at most {MAX_ARGS_LEN} bytes on one line"
            )));
        }
        let sink = self
            .sink()
            .ok_or_else(|| RemoteError::new(ErrorCode::Unavailable, "this node serves no JSON-RPC"))?;
        let cap = self.limits.max_endpoints_of(module_name);
        let usage = if p.args.trim().is_empty() {
            p.method.clone()
        } else {
            format!("{} {}", p.method, p.args.trim())
        };
        let help = if p.help.trim().is_empty() {
            usage
        } else {
            format!("{usage}\n\n{}", p.help.trim_end())
        };
        let mut methods = lock(&self.methods);
        let previous = methods.get(&p.method).cloned();
        if let Some(other) = previous.as_ref().filter(|r| r.module_name != module_name) {
            return Err(RemoteError::new(
                ErrorCode::AlreadyRegistered,
                format!("`{}` is already registered by module `{}`", p.method, other.module_name),
            ));
        }
        let count = methods.values().filter(|r| r.module_name == module_name).count();
        if previous.is_none() && count >= cap {
            return Err(RemoteError::new(
                ErrorCode::QuotaExceeded,
                format!("module `{module_name}` may register at most {cap} RPC endpoints and has {count}"),
            ));
        }
        if previous.as_ref().is_some_and(|r| r.module_id.is_some()) {
            // A re-registration by the running module: new help.
            sink.remove(&p.method);
        }
        let endpoint = Endpoint {
            method: p.method.clone(),
            module: module_name.to_owned(),
            help: help.clone(),
        };
        if let Err(why) = sink.add(&endpoint) {
            methods.remove(&p.method);
            return Err(RemoteError::new(ErrorCode::AlreadyRegistered, why));
        }
        methods.insert(
            p.method.clone(),
            Registered {
                module_name: module_name.to_owned(),
                module_id: Some(module_id.to_owned()),
                help,
            },
        );
        let endpoints = count + usize::from(previous.is_none());
        tracing::info!(module = module_name, method = %p.method, "RPC endpoint registered");
        Ok(RegisterRpcEndpointResult {
            endpoints: u32::try_from(endpoints).unwrap_or(u32::MAX),
            max_endpoints: u32::try_from(cap).unwrap_or(u32::MAX),
            timeout_ms: u64::try_from(self.limits.timeout_of(module_name).as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Removes `p.method` if module `module_name` registered it.
    pub fn unregister(&self, module_name: &str, p: &UnregisterRpcEndpoint) -> UnregisterRpcEndpointResult {
        let mut methods = lock(&self.methods);
        if methods.get(&p.method).is_none_or(|r| r.module_name != module_name) {
            return UnregisterRpcEndpointResult { removed: false };
        }
        if let Some(r) = methods.remove(&p.method) {
            if r.module_id.is_some() {
                if let Some(sink) = self.sink() {
                    sink.remove(&p.method);
                }
            }
        }
        UnregisterRpcEndpointResult { removed: true }
    }

    /// The connection of spawn `module_id` ended: its methods leave the
    /// server and wait, dormant, for the module to register them again.
    pub(crate) fn connection_closed(&self, module_id: &str) {
        let mut methods = lock(&self.methods);
        let sink = self.sink();
        for (method, r) in methods.iter_mut() {
            if r.module_id.as_deref() == Some(module_id) {
                r.module_id = None;
                if let Some(sink) = &sink {
                    sink.remove(method);
                }
            }
        }
    }

    /// Module `name` was unloaded: its methods are forgotten.
    pub fn forget_module(&self, name: &str) {
        let mut methods = lock(&self.methods);
        let sink = self.sink();
        methods.retain(|method, r| {
            if r.module_name != name {
                return true;
            }
            if let (Some(sink), Some(_)) = (&sink, &r.module_id) {
                sink.remove(method);
            }
            false
        });
    }

    /// Why `method` is not served although a module registered it (it is
    /// dormant: its module is restarting or has not registered it again),
    /// for the node's answer to a call
    /// of a method it does not know.
    pub fn dormant(&self, method: &str) -> Option<EndpointError> {
        let methods = lock(&self.methods);
        let r = methods.get(method).filter(|r| r.module_id.is_none())?;
        let module = r.module_name.clone();
        let method = method.to_owned();
        // Reserved for the module until it is unloaded, also once it is
        // back: between its handshake and its registration, or when a new
        // version no longer serves it.
        if self.directory.get().is_some_and(|d| d.by_name(&module).is_some()) {
            return Some(EndpointError::NotRegisteredAgain { module, method });
        }
        Some(EndpointError::NotRunning { module, method })
    }

    /// Forwards a JSON-RPC call of `method` with `params_json` (a JSON
    /// array or object, as text) to the module serving it and waits for the
    /// answer, at most the module's deadline. Returns the result as JSON
    /// text.
    ///
    /// Blocks the calling thread: call it from a thread of its own (the
    /// node's JSON-RPC methods run on tokio's blocking pool), never from a
    /// task of the hub's runtime.
    pub fn call(&self, method: &str, params_json: String) -> Result<String, EndpointError> {
        let (module_name, module_id) = {
            let methods = lock(&self.methods);
            let r = methods.get(method).ok_or_else(|| EndpointError::NotFound {
                method: method.to_owned(),
            })?;
            (r.module_name.clone(), r.module_id.clone())
        };
        let not_running = || EndpointError::NotRunning {
            module: module_name.clone(),
            method: method.to_owned(),
        };
        let conn = module_id
            .and_then(|id| self.directory.get()?.get(&id))
            .filter(|c| !c.is_closed())
            .ok_or_else(not_running)?;
        let runtime = self.runtime.get().ok_or_else(not_running)?;
        let timeout = self.limits.timeout_of(&module_name);
        let call = RpcCall {
            method: method.to_owned(),
            params_json,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let answer = tokio::time::timeout(timeout, conn.invoke(RPC_CALL, &call)).await;
            let _ = tx.send(answer);
        });
        // The task always sends (its own timeout ends it); a runtime shut
        // down under it drops the sender instead.
        let raw = match rx.recv() {
            Err(_) => return Err(not_running()),
            Ok(Err(_elapsed)) => {
                return Err(EndpointError::Timeout {
                    module: module_name,
                    method: method.to_owned(),
                    timeout,
                })
            }
            Ok(Ok(Err(e))) if matches!(e.code, ErrorCode::ConnectionClosed | ErrorCode::ModuleCrashed) => {
                return Err(not_running())
            }
            Ok(Ok(Err(error))) => {
                return Err(EndpointError::Failed {
                    module: module_name,
                    method: method.to_owned(),
                    error,
                })
            }
            Ok(Ok(Ok(raw))) => raw,
        };
        let bad = |why: String| EndpointError::BadAnswer {
            module: module_name.clone(),
            method: method.to_owned(),
            why,
        };
        let answer: RpcCallResult = decode_body("result", &raw).map_err(|e| bad(e.to_string()))?;
        if let Some(e) = answer.error {
            return Err(EndpointError::Rpc {
                code: e.code,
                message: e.message,
            });
        }
        Ok(answer.result_json)
    }
}

#[cfg(test)]
mod tests;
