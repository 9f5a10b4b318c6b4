//! The HTTP side of the JSON-RPC server: listening, routing, authentication,
//! body limits and the blocking pool. JSON-RPC itself is in [`protocol`].
//!
//! # Request steps, in order
//!
//! 1. **Path**: only `/` is served (no wallet, so no `/wallet/<name>`): 404.
//! 2. **Method**: only `POST`: 405, as Core.
//! 3. **Authentication**: a missing or wrong `Authorization` gets 401 with
//!    `WWW-Authenticate: Basic realm="jsonrpc"` and an empty body; a *wrong*
//!    one is answered after [`RpcServerConfig::failed_auth_delay`] (Core
//!    sleeps 250 ms to slow brute forcing). This comes before the body is
//!    read, so an unauthenticated client cannot make the node buffer it.
//! 4. **Work queue**: at most [`RpcServerConfig::work_queue_depth`] requests
//!    are read and run at once; more get 503 `Work queue depth exceeded`, as
//!    Core's `-rpcworkqueue`. This bounds both memory (bodies) and the
//!    blocking threads in use.
//! 5. **Body**: a declared `Content-Length` over
//!    [`RpcServerConfig::max_body_size`] is refused (413) before any byte is
//!    read; a chunked body is refused as soon as it passes the limit. Any
//!    `Content-Type` is accepted, as Core does (`bitcoin-cli` sends none).
//! 6. **Calls**: the body is parsed and the calls run on tokio's blocking
//!    pool, so a slow method never stalls the reactor.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

use super::auth::{RpcAuth, WWW_AUTHENTICATE};
use super::handler::RpcHandler;
use super::protocol;

/// Core's `MAX_SIZE` (32 MiB), the largest body its HTTP server reads; a
/// block as hex is about 8 MB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 32 * 1024 * 1024;

/// Tunables of [`RpcServer`]; [`Default`] gives Core's values.
#[derive(Debug, Clone)]
pub struct RpcServerConfig {
    /// Largest request body accepted, in bytes (Core: 32 MiB).
    pub max_body_size: usize,
    /// Requests read or run at once before 503 (Core's `-rpcworkqueue`, 16).
    pub work_queue_depth: usize,
    /// Delay before answering a wrong credential (Core: 250 ms). It does not
    /// hold a work-queue slot or a thread.
    pub failed_auth_delay: Duration,
    /// Longest time to receive one request body (Core's `-rpcservertimeout`, 30 s).
    pub body_timeout: Duration,
    /// How long [`RpcServer::shutdown`] waits for running requests.
    pub shutdown_grace: Duration,
}

impl Default for RpcServerConfig {
    fn default() -> Self {
        RpcServerConfig {
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            work_queue_depth: 16,
            failed_auth_delay: Duration::from_millis(250),
            body_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcServerError {
    /// [`RpcServer::bind`] was called outside a tokio runtime.
    #[error("rpc server must be started inside a tokio runtime")]
    NoRuntime,
    /// The address could not be bound (in use, not local, no permission).
    #[error("could not bind rpc server to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// State shared by all connections.
struct Shared {
    auth: RpcAuth,
    handler: Arc<dyn RpcHandler>,
    config: RpcServerConfig,
    work_queue: Arc<Semaphore>,
}

/// A running JSON-RPC server. Owns the listener task; [`RpcServer::shutdown`]
/// stops it and deletes the cookie file.
///
/// Dropping it without `shutdown` stops accepting at once; running requests
/// finish in the background and the cookie file is deleted after them.
pub struct RpcServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RpcServer {
    /// Binds `addr` now and serves on the current tokio runtime, with
    /// [`RpcServerConfig::default`].
    ///
    /// Port 0 picks a free port; [`RpcServer::local_addr`] tells which.
    ///
    /// # Errors
    ///
    /// [`RpcServerError::Bind`] if the address cannot be bound;
    /// [`RpcServerError::NoRuntime`] outside a tokio runtime.
    pub fn bind(addr: SocketAddr, auth: RpcAuth, handler: Arc<dyn RpcHandler>) -> Result<RpcServer, RpcServerError> {
        Self::bind_with_config(addr, auth, handler, RpcServerConfig::default())
    }

    /// As [`RpcServer::bind`], with explicit tunables.
    ///
    /// # Errors
    ///
    /// As [`RpcServer::bind`].
    pub fn bind_with_config(
        addr: SocketAddr,
        auth: RpcAuth,
        handler: Arc<dyn RpcHandler>,
        config: RpcServerConfig,
    ) -> Result<RpcServer, RpcServerError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| RpcServerError::NoRuntime)?;
        let bind_err = |source| RpcServerError::Bind { addr, source };
        // Bind synchronously so the caller knows the port (and any error)
        // before this returns.
        let std_listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        std_listener.set_nonblocking(true).map_err(bind_err)?;
        let local_addr = std_listener.local_addr().map_err(bind_err)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(bind_err)?
        };

        let shared = Arc::new(Shared {
            auth,
            handler,
            work_queue: Arc::new(Semaphore::new(config.work_queue_depth.max(1))),
            config,
        });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    // Fires on `shutdown` and when the `RpcServer` is dropped.
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%local_addr, "json-rpc server listening");
        Ok(RpcServer {
            local_addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Returns the address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets running requests finish for up to
    /// [`RpcServerConfig::shutdown_grace`], then aborts what is left, and
    /// deletes the cookie file. Returns whether every request finished.
    pub async fn shutdown(mut self) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let graceful = match self.task.take() {
            Some(mut task) => match tokio::time::timeout(self.shared.config.shutdown_grace, &mut task).await {
                Ok(Ok(Ok(()))) => true,
                Ok(Ok(Err(e))) => {
                    tracing::error!(error = %e, "json-rpc server failed");
                    true
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "json-rpc server task panicked");
                    true
                }
                Err(_) => {
                    tracing::warn!("json-rpc requests still running at shutdown deadline; aborting them");
                    task.abort();
                    false
                }
            },
            None => true,
        };
        if let Some(cookie) = &self.shared.auth.cookie {
            if let Err(e) = cookie.remove() {
                tracing::warn!(path = %cookie.path().display(), error = %e, "could not delete rpc cookie file");
            }
        }
        tracing::info!(local_addr = %self.local_addr, "json-rpc server stopped");
        graceful
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves one HTTP request; the steps are listed in the module docs.
async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if request.uri().path() != "/" {
        return StatusCode::NOT_FOUND.into_response();
    }
    if request.method() != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "JSONRPC server handles only POST requests",
        )
            .into_response();
    }

    let credential = request.headers().get(header::AUTHORIZATION);
    if !shared.auth.is_authorized(credential.map(HeaderValue::as_bytes)) {
        if credential.is_some() {
            tracing::warn!(%peer, "incorrect rpc password attempt");
            // Deters brute forcing; a timer, so no thread or queue slot waits.
            tokio::time::sleep(shared.config.failed_auth_delay).await;
        }
        return unauthorized();
    }

    let limit = shared.config.max_body_size;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }

    let Ok(permit) = Arc::clone(&shared.work_queue).try_acquire_owned() else {
        tracing::warn!(%peer, "rpc work queue depth exceeded");
        return (StatusCode::SERVICE_UNAVAILABLE, "Work queue depth exceeded").into_response();
    };

    let capacity = declared.map_or(0, |len| len as usize);
    let read = read_body(request.into_body(), limit, capacity);
    let body = match tokio::time::timeout(shared.config.body_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(BodyError::TooLarge)) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        Ok(Err(BodyError::Read)) => return StatusCode::BAD_REQUEST.into_response(),
        Err(_) => return StatusCode::REQUEST_TIMEOUT.into_response(),
    };

    let handler = Arc::clone(&shared.handler);
    let reply = tokio::task::spawn_blocking(move || {
        // The slot is held until the calls are done, bounding blocking threads.
        let _permit = permit;
        protocol::process(&body, handler.as_ref())
    })
    .await;
    match reply {
        Ok(reply) => into_response(reply),
        // `process` catches method panics; this is a bug in the server itself.
        Err(e) => {
            tracing::error!(error = %e, "json-rpc request task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn unauthorized() -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTHENTICATE));
    response
}

fn into_response(reply: protocol::HttpReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.body {
        Some(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => status.into_response(),
    }
}

enum BodyError {
    TooLarge,
    Read,
}

/// Reads the whole body, failing as soon as it passes `limit`.
async fn read_body(mut body: Body, limit: usize, capacity: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(capacity.min(limit));
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}
