//! The inter-module service: which modules run and what API each offers
//! (`discover_modules`, `register_module_api`), calls from one module to
//! another (`call_module`), and events modules publish (`publish_event`,
//! in [`publish`]).
//!
//! # What it owns
//!
//! Each connection's registered API methods, keyed by module id (a spawn),
//! so they end with the connection: on unload, on a crash, on a restart the
//! methods are gone until the new process registers them again. And the
//! operator's limits ([`InterModuleLimits`]): the call deadline, the size
//! of a module's API, and the publishing rate.
//!
//! # A call
//!
//! `call_module` never waits on the caller's reader thread: the route
//! answers [`crate::api::hub::Handled::Later`]; the connection then sends
//! the target a `module_call` invocation, with `caller` set from the calling
//! connection's handshake, and the caller's answer is queued where the
//! target's answer is read (no task sits in between), or at the deadline.
//! The caller gets the target's result, or one error saying which of these
//! happened: the target is not running (`module_not_running`), it did not
//! register that method (`method_not_found`), it crashed or went away
//! before answering (`module_crashed`), it did not answer in time
//! (`timeout`), or it answered with an error of its own (that error).

pub mod publish;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use blvm_module_protocol::frame::encode;
use blvm_module_protocol::methods::invocation::{ModuleCall, ModuleCallResult, MODULE_CALL};
use blvm_module_protocol::methods::modules::{
    ApiMethod, CallModule, CallModuleResult, DiscoveredModules, ModuleApi, ModuleDescription,
};
use blvm_module_protocol::{ErrorCode, RemoteError};

use crate::api::directory::ModuleDirectory;
use crate::api::hub::{encode_error, Deferred, Responder};

/// The call deadline when the operator sets none.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// API methods a module may register when the operator sets no cap.
pub const DEFAULT_MAX_API_METHODS: usize = 64;

/// The longest method name.
pub const MAX_METHOD_NAME: usize = 64;

/// The longest description kept.
pub const MAX_DESCRIPTION: usize = 1024;

/// One module's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleCallLimits {
    /// The longest a call this module makes may wait for its answer; a
    /// call asking for longer gets this.
    pub call_timeout: Duration,
    /// API methods it may register.
    pub max_api_methods: usize,
    /// Events it may publish per second, sustained, and in a burst.
    pub publish_rate: crate::ipc::RequestRate,
}

impl Default for ModuleCallLimits {
    fn default() -> Self {
        ModuleCallLimits {
            call_timeout: DEFAULT_CALL_TIMEOUT,
            max_api_methods: DEFAULT_MAX_API_METHODS,
            publish_rate: publish::DEFAULT_PUBLISH_RATE,
        }
    }
}

/// The operator's limits: defaults, and whole sets for some modules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterModuleLimits {
    /// Every module's, unless it has its own.
    pub defaults: ModuleCallLimits,
    /// By module name; replaces `defaults` for that module.
    pub per_module: BTreeMap<String, ModuleCallLimits>,
}

impl InterModuleLimits {
    /// The limits of `module`.
    pub fn of(&self, module: &str) -> ModuleCallLimits {
        self.per_module.get(module).copied().unwrap_or(self.defaults)
    }
}

/// Discovery, module APIs, calls and published events.
pub struct InterModuleService {
    limits: InterModuleLimits,
    /// Registered API methods by module id.
    apis: Mutex<HashMap<String, BTreeMap<String, ApiMethod>>>,
    pub(crate) publishers: publish::Publishers,
}

impl Default for InterModuleService {
    fn default() -> Self {
        InterModuleService::new(InterModuleLimits::default())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section is a lookup, an insert or a remove.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl InterModuleService {
    /// A service enforcing `limits`.
    pub fn new(limits: InterModuleLimits) -> Self {
        InterModuleService {
            limits,
            apis: Mutex::new(HashMap::new()),
            publishers: publish::Publishers::default(),
        }
    }

    /// The limits of `module`.
    pub fn limits_of(&self, module: &str) -> ModuleCallLimits {
        self.limits.of(module)
    }

    /// Adds `methods` to `module_id`'s API, all or nothing.
    ///
    /// # Errors
    ///
    /// `invalid_params` for a bad name (the message says which), or
    /// `quota_exceeded` when the API would grow past the module's cap.
    pub fn register(&self, module_id: &str, module: &str, methods: &[ApiMethod]) -> Result<ModuleApi, RemoteError> {
        for m in methods {
            check_method_name(&m.name)?;
        }
        let cap = self.limits.of(module).max_api_methods;
        let mut apis = lock(&self.apis);
        let api = apis.entry(module_id.to_owned()).or_default();
        let added = methods.iter().filter(|m| !api.contains_key(&m.name)).count();
        if api.len() + added > cap {
            return Err(RemoteError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "module `{module}` may register {cap} API methods; it has {} and asked for {added} more",
                    api.len()
                ),
            ));
        }
        for m in methods {
            let mut m = m.clone();
            truncate(&mut m.description, MAX_DESCRIPTION);
            api.insert(m.name.clone(), m);
        }
        Ok(ModuleApi {
            methods: api.values().cloned().collect(),
        })
    }

    /// The methods `module_id` registered, sorted.
    pub fn api_of(&self, module_id: &str) -> Vec<ApiMethod> {
        lock(&self.apis)
            .get(module_id)
            .map(|api| api.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The modules connected now, with their APIs.
    pub fn discover(&self, directory: &ModuleDirectory) -> DiscoveredModules {
        let apis = lock(&self.apis);
        DiscoveredModules {
            modules: directory
                .all()
                .into_iter()
                .map(|h| ModuleDescription {
                    name: h.module_name().to_owned(),
                    version: h.module_version().to_owned(),
                    methods: apis
                        .get(h.module_id())
                        .map(|api| api.values().cloned().collect())
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Starts `caller`'s call `p` to another module: what is known at once
    /// (bad params, an absent target or method) is an error now; the rest
    /// is the returned [`Deferred`], which sends the target its
    /// `module_call` and answers the caller, from the target's reader
    /// thread, when the target answers (or from a task on `runtime` at the
    /// deadline, or when the target's connection ends).
    ///
    /// # Errors
    ///
    /// `invalid_params` (a call to itself), `module_not_running`,
    /// `method_not_found`.
    pub fn call(
        &self,
        directory: &ModuleDirectory,
        runtime: &tokio::runtime::Handle,
        caller: &str,
        p: CallModule,
    ) -> Result<Deferred, RemoteError> {
        if p.module == caller {
            // Its own reader is busy with this request: the invocation
            // could be answered only by the module's other tasks, and a
            // module wanting that does not need the node.
            return Err(RemoteError::invalid_params(
                "call_module",
                "a module cannot call itself through the node",
            ));
        }
        let target = directory.by_name(&p.module).ok_or_else(|| {
            RemoteError::new(
                ErrorCode::ModuleNotRunning,
                format!("module `{}` is not running", p.module),
            )
        })?;
        if !lock(&self.apis)
            .get(target.module_id())
            .is_some_and(|api| api.contains_key(&p.method))
        {
            return Err(RemoteError::new(
                ErrorCode::MethodNotFound,
                format!("module `{}` registered no API method `{}`", p.module, p.method),
            ));
        }
        let limit = self.limits.of(caller).call_timeout;
        let deadline = p.timeout_ms.map_or(limit, |ms| Duration::from_millis(ms).min(limit));
        let on_timeout = RemoteError::new(
            ErrorCode::Timeout,
            format!(
                "module `{}` did not answer `{}` within {} ms",
                p.module,
                p.method,
                deadline.as_millis()
            ),
        );
        let invocation = ModuleCall {
            caller: caller.to_owned(),
            method: p.method,
            params: p.params,
        };
        let target_name = p.module;
        let runtime = runtime.clone();
        Ok(Box::new(move |responder: Responder| {
            target.invoke_then(
                MODULE_CALL,
                &invocation,
                deadline,
                &runtime,
                on_timeout,
                move |answer| {
                    let frame = call_answer(responder.id(), &target_name, answer);
                    responder.respond(frame);
                },
            );
        }))
    }

    /// Forgets what `module_id`'s connection registered.
    pub(crate) fn connection_closed(&self, module_id: &str) {
        lock(&self.apis).remove(module_id);
        self.publishers.remove(module_id);
    }
}

/// The response frame of call `id` to `target` from the target's answer:
/// its result, or the error saying what happened to the call.
fn call_answer(id: u64, target: &str, answer: Result<bytes::Bytes, RemoteError>) -> Vec<u8> {
    let result = match answer {
        Err(e) if e.code == ErrorCode::ConnectionClosed => Err(RemoteError::new(
            ErrorCode::ModuleCrashed,
            format!("module `{target}` went away before it answered"),
        )),
        Err(e) => Err(e),
        Ok(bytes) => blvm_module_protocol::frame::decode_body::<ModuleCallResult>("result", &bytes)
            .map(|r| CallModuleResult { result: r.result })
            .map_err(|e| {
                RemoteError::new(
                    ErrorCode::Internal,
                    format!("module `{target}` answered with a malformed result: {e}"),
                )
            }),
    };
    let mut out = Vec::new();
    let encoded = result.and_then(|r| {
        encode::response(&mut out, id, &r).map_err(|e| RemoteError::new(ErrorCode::Internal, e.to_string()))
    });
    if let Err(e) = encoded {
        out.clear();
        encode_error(&mut out, id, &e);
    }
    out
}

/// Checks an API method name: 1 to [`MAX_METHOD_NAME`] of `a-z`, `0-9`,
/// `_`, `.`, `-`.
fn check_method_name(name: &str) -> Result<(), RemoteError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_METHOD_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RemoteError::invalid_params(
            "register_module_api",
            format_args!("method name {name:?}: 1 to {MAX_METHOD_NAME} of a-z, 0-9, `_`, `.`, `-`"),
        ))
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(name: &str) -> ApiMethod {
        ApiMethod {
            name: name.into(),
            description: "d".into(),
        }
    }

    #[test]
    fn an_api_past_its_cap_is_refused_whole() {
        let mut limits = InterModuleLimits::default();
        limits.defaults.max_api_methods = 2;
        let service = InterModuleService::new(limits);
        service.register("a-1", "a", &[method("x")]).unwrap();
        let err = service.register("a-1", "a", &[method("y"), method("z")]).unwrap_err();
        assert_eq!(err.code, ErrorCode::QuotaExceeded);
        assert_eq!(service.api_of("a-1"), vec![method("x")]);
        // Re-registering a name replaces it and costs nothing.
        service.register("a-1", "a", &[method("x"), method("y")]).unwrap();
        assert_eq!(service.api_of("a-1").len(), 2);
    }

    #[test]
    fn method_names_are_checked() {
        let service = InterModuleService::default();
        for bad in ["", "Upper", "sp ace", "slash/x", &"x".repeat(65)] {
            let err = service.register("a-1", "a", &[method(bad)]).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidParams, "{bad:?}");
        }
        assert!(service.api_of("a-1").is_empty());
    }

    #[test]
    fn an_api_ends_with_its_connection() {
        let service = InterModuleService::default();
        service.register("a-1", "a", &[method("x")]).unwrap();
        service.connection_closed("a-1");
        assert!(service.api_of("a-1").is_empty());
    }
}
