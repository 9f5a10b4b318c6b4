//! [`ModuleApiHub`]: routes each module request to the backend after
//! checking the module's granted capabilities.
//!
//! Every request gets exactly one response. A failure of any kind (unknown
//! method, missing capability, bad params, backend error) is a `response`
//! with an error code; nothing a request does closes the connection
//! (pitfalls #4).
//!
//! # Requests that wait
//!
//! Most requests are answered inline by the connection's reader thread. A
//! request that waits on another process (an inter-module call) is answered
//! [`Handled::Later`]: the route hands back what starts it, which the
//! connection runs at once with a [`Responder`] for the one answer; the
//! answer is written whenever it comes (an inter-module call answers from
//! the target's reader thread, a future may run on [`ModuleApiHub::runtime`]),
//! so the module's other requests, its events and every other module go on
//! meanwhile; a slow or dead target costs the caller only that call's
//! deadline.

use std::sync::Arc;

use blvm_module_protocol::frame::encode;
use blvm_module_protocol::{ErrorCode, Method, PermissionSet, RemoteError, Request};

use super::backend::NodeBackend;
use super::directory::ModuleDirectory;
use super::durable::CursorStore;
use super::events::EventManager;
use super::routes;
use crate::services::filesystem::FilesystemService;
use crate::services::metrics::MetricsService;
use crate::services::modules::InterModuleService;
use crate::services::rpc_endpoints::RpcEndpointService;
use crate::services::storage::StorageService;
use crate::services::timers::TimerService;

/// Who is calling: established by the handshake, never by the request.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The module id.
    pub module_id: &'a str,
    /// The module name.
    pub module_name: &'a str,
    /// Its granted capabilities.
    pub capabilities: PermissionSet,
    /// The events its manifest declares it publishes.
    pub publishes: &'a [String],
}

pub use crate::ipc::connection::Responder;

/// What starts a request that waits: run once, at once, with the
/// [`Responder`] that takes its one response frame whenever it is ready.
pub type Deferred = Box<dyn FnOnce(Responder) + Send + 'static>;

/// How [`ModuleApiHub::handle`] answered.
pub enum Handled {
    /// The response frame is in `out`.
    Now,
    /// Nothing is in `out`: run this with the request's [`Responder`]
    /// (see the module docs).
    Later(Deferred),
}

/// Sees every request a module sends, as the hub takes it: an audit trail,
/// or a test harness asserting on what a module asked
/// (`blvm-module-testkit`). Called on the connection's reader thread
/// before the request is answered, so it must be quick and never block.
pub trait RequestTap: Send + Sync + 'static {
    /// `caller` sent `request`; `error` is the code it is answered with
    /// at once (unknown method, missing capability, bad params…), `None`
    /// when it succeeded or waits.
    fn request(&self, caller: &Caller<'_>, request: &Request, error: Option<ErrorCode>);
}

/// Routes module requests to the node.
pub struct ModuleApiHub {
    pub(crate) backend: Arc<dyn NodeBackend>,
    pub(crate) events: Arc<EventManager>,
    pub(crate) storage: Option<Arc<StorageService>>,
    pub(crate) metrics: Arc<MetricsService>,
    pub(crate) filesystem: Arc<FilesystemService>,
    pub(crate) rpc_endpoints: Arc<RpcEndpointService>,
    pub(crate) timers: Arc<TimerService>,
    pub(crate) directory: Arc<ModuleDirectory>,
    pub(crate) modules: Arc<InterModuleService>,
    /// Where durable subscriptions keep their cursors; without it
    /// `subscribe_durable` answers `unavailable`.
    pub(crate) cursors: Option<Arc<dyn CursorStore>>,
    /// Told of every request, when set.
    tap: Option<Arc<dyn RequestTap>>,
    /// Where waiting requests run: the runtime the hub was made in, else
    /// one of the hub's own.
    runtime: tokio::runtime::Handle,
    /// Stops the hub's own runtime thread (when there was no runtime to
    /// borrow) as the hub drops.
    _own_runtime: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ModuleApiHub {
    /// A hub over `backend`, delivering subscriptions through `events`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, if the hub's own small runtime cannot be
    /// started (the process cannot make a thread).
    pub fn new(backend: Arc<dyn NodeBackend>, events: Arc<EventManager>) -> Self {
        let (runtime, own) = match tokio::runtime::Handle::try_current() {
            Ok(handle) => (handle, None),
            Err(_) => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("cannot start the module hub's runtime");
                let handle = rt.handle().clone();
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                std::thread::Builder::new()
                    .name("blvm-hub".into())
                    .spawn(move || {
                        let _ = rt.block_on(stopped);
                    })
                    .expect("cannot start the module hub's runtime thread");
                (handle, Some(stop))
            }
        };
        let directory = Arc::new(ModuleDirectory::default());
        let rpc_endpoints = Arc::new(RpcEndpointService::default());
        rpc_endpoints.attach(Arc::clone(&directory), runtime.clone());
        ModuleApiHub {
            backend,
            events,
            storage: None,
            metrics: Arc::new(MetricsService::default()),
            filesystem: Arc::new(FilesystemService::default()),
            rpc_endpoints,
            timers: Arc::new(TimerService::default()),
            directory,
            modules: Arc::new(InterModuleService::default()),
            cursors: None,
            tap: None,
            runtime,
            _own_runtime: own,
        }
    }

    /// Serves the storage methods from `storage` (without it they answer
    /// `unavailable`).
    pub fn with_storage(mut self, storage: Arc<StorageService>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The hub with `metrics` as its metrics service (the manager's, which
    /// the node's exposition reads).
    pub fn with_metrics(mut self, metrics: Arc<MetricsService>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The hub with `service` for discovery, module APIs, calls and
    /// published events (its limits are the operator's).
    pub fn with_inter_module(mut self, service: Arc<InterModuleService>) -> Self {
        self.modules = service;
        self
    }

    /// The hub with `store` keeping durable subscriptions' cursors (the
    /// node's own store).
    pub fn with_cursor_store(mut self, store: Arc<dyn CursorStore>) -> Self {
        self.cursors = Some(store);
        self
    }

    /// The hub with `tap` told of every request.
    pub fn with_request_tap(mut self, tap: Arc<dyn RequestTap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// The inter-module service.
    pub fn inter_module(&self) -> &Arc<InterModuleService> {
        &self.modules
    }

    /// The hub with `filesystem` as its filesystem service (the
    /// manager's, where each spawn registers its data dir).
    pub fn with_filesystem(mut self, filesystem: Arc<FilesystemService>) -> Self {
        self.filesystem = filesystem;
        self
    }

    /// The hub with `endpoints` as its RPC endpoint service (the
    /// manager's, which the node's JSON-RPC server serves from).
    pub fn with_rpc_endpoints(mut self, endpoints: Arc<RpcEndpointService>) -> Self {
        endpoints.attach(Arc::clone(&self.directory), self.runtime.clone());
        self.rpc_endpoints = endpoints;
        self
    }

    /// The RPC endpoint service.
    pub fn rpc_endpoints(&self) -> &Arc<RpcEndpointService> {
        &self.rpc_endpoints
    }

    /// The hub with `timers` as its timer service (the manager's, whose
    /// limits the operator sets and which the node tells of its tip).
    pub fn with_timers(mut self, timers: Arc<TimerService>) -> Self {
        self.timers = timers;
        self
    }

    /// The timer service.
    pub fn timers(&self) -> &Arc<TimerService> {
        &self.timers
    }

    /// The metrics service.
    pub fn metrics(&self) -> &Arc<MetricsService> {
        &self.metrics
    }

    /// The event bus.
    pub fn events(&self) -> &Arc<EventManager> {
        &self.events
    }

    /// The live module connections.
    pub fn directory(&self) -> &Arc<ModuleDirectory> {
        &self.directory
    }

    /// The runtime that waiting requests (and the services' timers) run on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Everything a connection held in the services ends with it: its
    /// directory entry, its subscriptions, its metric series, its RPC
    /// endpoints (dormant until it registers them again), its timers.
    /// Called once by the IPC server when a connection ends.
    pub(crate) fn connection_closed(&self, handle: &crate::ipc::ModuleConnectionHandle) {
        self.directory.remove_if_same(handle);
        self.events.unregister(handle.module_id());
        self.metrics.remove(handle.module_id());
        self.modules.connection_closed(handle.module_id());
        self.rpc_endpoints.connection_closed(handle.module_id());
        self.timers.connection_closed(handle);
    }

    /// Answers `request`: appends exactly one response frame to `out`
    /// ([`Handled::Now`]), or returns the future that makes it
    /// ([`Handled::Later`]) and appends nothing.
    pub fn handle(&self, caller: &Caller<'_>, request: &Request, out: &mut Vec<u8>) -> Handled {
        let start = out.len();
        self.metrics.count_request(caller.module_name);
        let mut later = None;
        let result = self.dispatch(caller, request, out, &mut later);
        if let Some(tap) = &self.tap {
            tap.request(caller, request, result.as_ref().err().map(|e| e.code.clone()));
        }
        match result {
            Ok(()) => match later {
                Some(future) => Handled::Later(future),
                None => Handled::Now,
            },
            Err(error) => {
                out.truncate(start);
                if error.code == ErrorCode::PermissionDenied {
                    tracing::warn!(module = caller.module_name, method = %request.method, "{}", error.message);
                }
                encode_error(out, request.id, &error);
                Handled::Now
            }
        }
    }

    fn dispatch(
        &self,
        caller: &Caller<'_>,
        request: &Request,
        out: &mut Vec<u8>,
        later: &mut Option<Deferred>,
    ) -> Result<(), RemoteError> {
        let method =
            Method::from_name(&request.method).ok_or_else(|| RemoteError::method_not_found(&request.method))?;
        if let Some(permission) = method.required_permission() {
            if !caller.capabilities.contains(permission) {
                return Err(RemoteError::permission_denied(
                    permission,
                    format_args!("`{}`", method.name()),
                ));
            }
        }
        routes::route(self, caller, method, request, out, later)
    }
}

/// Appends an error response. A RemoteError is strings only, so this
/// cannot fail; if it ever did, the module still gets an answer.
pub(crate) fn encode_error(out: &mut Vec<u8>, id: u64, error: &RemoteError) {
    let start = out.len();
    if let Err(e) = encode::response_err(out, id, error) {
        out.truncate(start);
        tracing::error!(error = %e, "cannot encode an error response");
        let _ = encode::response_err(out, id, &RemoteError::new(ErrorCode::Internal, "internal error"));
    }
}
