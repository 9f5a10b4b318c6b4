//! [`ModuleApiHub`]: routes each module request to the backend after
//! checking the module's granted capabilities.
//!
//! Every request gets exactly one response. A failure of any kind (unknown
//! method, missing capability, bad params, backend error) is a `response`
//! with an error code; nothing a request does closes the connection
//! (pitfalls #4).

use std::sync::Arc;

use blvm_module_protocol::frame::encode;
use blvm_module_protocol::{ErrorCode, Method, PermissionSet, RemoteError, Request};

use super::backend::NodeBackend;
use super::events::EventManager;
use super::routes;
use crate::services::metrics::MetricsService;
use crate::services::storage::StorageService;

/// Who is calling: established by the handshake, never by the request.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The module id.
    pub module_id: &'a str,
    /// The module name.
    pub module_name: &'a str,
    /// Its granted capabilities.
    pub capabilities: PermissionSet,
}

/// Routes module requests to the node.
pub struct ModuleApiHub {
    pub(crate) backend: Arc<dyn NodeBackend>,
    pub(crate) events: Arc<EventManager>,
    pub(crate) storage: Option<Arc<StorageService>>,
    pub(crate) metrics: Arc<MetricsService>,
}

impl ModuleApiHub {
    /// A hub over `backend`, delivering subscriptions through `events`.
    pub fn new(backend: Arc<dyn NodeBackend>, events: Arc<EventManager>) -> Self {
        ModuleApiHub {
            backend,
            events,
            storage: None,
            metrics: Arc::new(MetricsService::default()),
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

    /// The metrics service.
    pub fn metrics(&self) -> &Arc<MetricsService> {
        &self.metrics
    }

    /// The event bus.
    pub fn events(&self) -> &Arc<EventManager> {
        &self.events
    }

    /// Answers `request`, appending exactly one response frame to `out`.
    pub fn handle(&self, caller: &Caller<'_>, request: &Request, out: &mut Vec<u8>) {
        let start = out.len();
        self.metrics.count_request(caller.module_name);
        let result = self.dispatch(caller, request, out);
        if let Err(error) = result {
            out.truncate(start);
            if error.code == ErrorCode::PermissionDenied {
                tracing::warn!(module = caller.module_name, method = %request.method, "{}", error.message);
            }
            if let Err(e) = encode::response_err(out, request.id, &error) {
                // A RemoteError is strings only; this cannot fail, but if it
                // ever did the module must still get an answer.
                out.truncate(start);
                tracing::error!(error = %e, "cannot encode an error response");
                let _ = encode::response_err(
                    out,
                    request.id,
                    &RemoteError::new(ErrorCode::Internal, "internal error"),
                );
            }
        }
    }

    fn dispatch(&self, caller: &Caller<'_>, request: &Request, out: &mut Vec<u8>) -> Result<(), RemoteError> {
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
        routes::route(self, caller, method, request, out)
    }
}
