//! [`ModuleIpcServer`]: the node's socket and one socket per spawned
//! module, every connection on its own threads.
//!
//! `node.sock` (mode 0600: the node's uid only) is for tests and tools that
//! talk to the server directly; each module connects to a socket of its
//! own (`listener`), which only its uid can connect to and whose accept
//! admits only its pid. Both then run the same handshake.
//!
//! # A connection's life
//!
//! 1. accept; the peer's pid is read with `SO_PEERCRED`; it takes a
//!    handshake slot (node socket: capped in all and per pid; a module's
//!    socket: only the module's pid, capped per socket) or is refused at
//!    once;
//! 2. the first frame must be `hello` within the handshake deadline, else
//!    the connection is refused;
//! 3. version negotiation, then token, liveness, replay and pid checks
//!    (see `auth`); a refusal is a `refused` frame with a code and reason,
//!    logged, then close;
//! 4. the module's event queue is registered and its writer thread started,
//!    then `welcome` is sent — so nothing the module is told about can be
//!    published before it can receive it — and, before its bytes leave, the
//!    connection is published and `Connected` announced;
//! 5. the reader loop serves requests until the module closes, the node
//!    cuts it, or it breaks the protocol.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use blvm_module_protocol::frame::encode;
use blvm_module_protocol::{Frame, FrameDecoder, Hello, Refused, Welcome, DEFAULT_MAX_FRAME_LEN, SUPPORTED_VERSIONS};
use bytes::BytesMut;
use tokio::sync::broadcast;

use super::auth::{AuthRegistry, ModuleSpec, ModuleTicket};
use super::connection::{self, CloseReason, Connection, ModuleConnectionHandle};
use super::listener::{self, ModuleListener, MODULE_SOCKET_DIR};
use super::slots::NodeSlots;
use crate::api::hub::ModuleApiHub;

/// Settings of the IPC server.
#[derive(Debug, Clone)]
pub struct IpcServerConfig {
    /// Largest frame payload accepted, checked before allocating.
    pub max_frame_len: usize,
    /// How long a new connection has to send its `hello`.
    pub handshake_timeout: Duration,
    /// The node's version, sent in `welcome`.
    pub node_version: String,
    /// Connections that have not completed their handshake, at most, from
    /// everyone together; one more is refused at once
    /// (`too_many_connections`), before any thread is started for it.
    pub max_pending_handshakes: usize,
    /// The same, per connecting process (by `SO_PEERCRED` pid): a module
    /// opening connections in a loop cannot take the others' share.
    pub max_pending_per_process: usize,
    /// Connections to one module's own socket (all from the module's pid)
    /// that have not completed their handshake, at most; one more is
    /// refused at once (`too_many_connections`). A module needs one.
    pub max_pending_per_module: usize,
}

impl Default for IpcServerConfig {
    fn default() -> Self {
        IpcServerConfig {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            handshake_timeout: Duration::from_secs(10),
            node_version: env!("CARGO_PKG_VERSION").to_owned(),
            max_pending_handshakes: 64,
            max_pending_per_process: 4,
            max_pending_per_module: 2,
        }
    }
}

/// What happened to a connection; the module manager and tests wait on
/// these instead of polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// A module completed its handshake.
    Connected {
        /// The module id.
        module_id: String,
        /// The connected process.
        pid: Option<u32>,
    },
    /// A handshake was refused.
    Refused {
        /// The module whose socket the connection came to, else the
        /// module id the `hello` claimed, if it got that far.
        module_id: Option<String>,
        /// The refusal code.
        code: String,
        /// The reason sent to the peer.
        reason: String,
    },
    /// An authenticated connection ended.
    Closed {
        /// The module id.
        module_id: String,
        /// Why, in words.
        reason: String,
        /// Whether the module broke the protocol.
        protocol_violation: bool,
    },
}

/// What the accept threads and connection threads share.
pub(super) struct Shared {
    pub(super) config: IpcServerConfig,
    pub(super) auth: AuthRegistry,
    hub: Arc<ModuleApiHub>,
    notify: broadcast::Sender<ConnectionEvent>,
    pub(super) stopping: AtomicBool,
}

/// The node's module sockets: `node.sock` and one per spawned module.
pub struct ModuleIpcServer {
    shared: Arc<Shared>,
    path: PathBuf,
    /// The accept thread's listening socket, to wake its `accept` at
    /// shutdown (see [`ModuleIpcServer::shutdown`]).
    listener: UnixListener,
    accept_thread: Mutex<Option<JoinHandle<()>>>,
    /// Where module sockets are made (`<dir of node.sock>/m`).
    module_dir: PathBuf,
    /// Number of the next module socket.
    next_socket: AtomicU64,
    /// Each module's own socket, by module id. `stopping` is set under
    /// this lock, so no socket is added once shutdown has taken them.
    listeners: Mutex<HashMap<String, ModuleListener>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map is only ever inserted into or removed from.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ModuleIpcServer {
    /// Binds `path` and starts accepting. A stale socket file left by a
    /// dead node is replaced; a live one is an `AddrInUse` error. The
    /// directory of module sockets next to it (`m`, mode 0711) is created,
    /// or emptied of a dead node's sockets.
    pub fn bind(path: impl AsRef<Path>, hub: Arc<ModuleApiHub>, config: IpcServerConfig) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                return Err(std::io::Error::new(
                    ErrorKind::AddrInUse,
                    format!("{} is in use by a running node", path.display()),
                ));
            }
            std::fs::remove_file(&path)?;
        }
        let module_dir = path.parent().unwrap_or(Path::new("")).join(MODULE_SOCKET_DIR);
        listener::prepare_dir(&module_dir)?;
        // The node's uid only (0600): no module (each has its own socket)
        // and no other local user can connect, and so none can hold the
        // handshake slots of this socket.
        let listener = listener::bind_with_mode(&path, 0o600)?;
        let (notify, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            config,
            auth: AuthRegistry::default(),
            hub,
            notify,
            stopping: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        let wake = listener.try_clone()?;
        let accept_thread = std::thread::Builder::new()
            .name("blvm-ipc-accept".into())
            .spawn(move || accept_loop(accept_shared, listener))?;
        tracing::info!(path = %path.display(), "module IPC server listening");
        Ok(ModuleIpcServer {
            shared,
            path,
            listener: wake,
            accept_thread: Mutex::new(Some(accept_thread)),
            module_dir,
            next_socket: AtomicU64::new(1),
            listeners: Mutex::new(HashMap::new()),
        })
    }

    /// The node's socket, `node.sock`: for tests and tools that talk to the
    /// server directly. Modules connect to their own
    /// ([`ModuleIpcServer::listen_for`]).
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Opens the socket of a module about to be spawned and returns its
    /// path, for the child's `BLVM_MODULE_SOCKET`: `<dir of node.sock>/m/
    /// <n>.sock`, mode 0600, given to `owner`'s uid:gid when the module
    /// will run as another user (else the node's), so only the module's
    /// uid and root can connect. Its accept admits only the pid bound to
    /// `module_id` ([`ModuleIpcServer::bind_pid`]), and a `hello` for
    /// `module_id` only. It is closed and its file removed by
    /// [`ModuleIpcServer::forget_module`] and at shutdown; a second call for
    /// the same id replaces it.
    ///
    /// # Errors
    ///
    /// The path would be too long for a socket address (a long socket
    /// directory), or binding, `chown` or starting the thread failed, or
    /// the server is shut down.
    pub fn listen_for(&self, module_id: &str, owner: Option<(u32, u32)>) -> std::io::Result<PathBuf> {
        let n = self.next_socket.fetch_add(1, Ordering::Relaxed);
        let path = listener::socket_path(&self.module_dir, n)?;
        let replaced = {
            let mut listeners = lock(&self.listeners);
            if self.shared.stopping.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("the module IPC server is shut down"));
            }
            let listener = ModuleListener::start(&self.shared, module_id, path.clone(), owner)?;
            listeners.insert(module_id.to_owned(), listener)
        };
        // Closed outside the lock: closing joins its accept thread.
        drop(replaced);
        Ok(path)
    }

    /// The path of a module's own socket, while it has one.
    pub fn module_socket(&self, module_id: &str) -> Option<PathBuf> {
        lock(&self.listeners).get(module_id).map(|l| l.path().to_path_buf())
    }

    /// The API hub.
    pub fn hub(&self) -> &Arc<ModuleApiHub> {
        &self.shared.hub
    }

    /// Registers a module about to be spawned and returns its one-time
    /// token. Call [`ModuleIpcServer::bind_pid`] as soon as the process
    /// exists.
    pub fn expect_module(&self, spec: ModuleSpec) -> std::io::Result<ModuleTicket> {
        self.shared.auth.expect(spec)
    }

    /// Binds the spawned process's pid to the module id.
    pub fn bind_pid(&self, module_id: &str, pid: u32) {
        self.shared.auth.bind_pid(module_id, pid);
    }

    /// Cuts a module's connection, forgets its token, and closes its socket
    /// (the file is removed).
    pub fn forget_module(&self, module_id: &str) {
        self.shared.auth.forget(module_id);
        let listener = lock(&self.listeners).remove(module_id);
        drop(listener);
        if let Some(handle) = self.shared.hub.directory().remove(module_id) {
            handle.close();
        }
    }

    /// The live connection of a module.
    pub fn connection(&self, module_id: &str) -> Option<ModuleConnectionHandle> {
        self.shared.hub.directory().get(module_id)
    }

    /// Ids of the modules connected now.
    pub fn connected_modules(&self) -> Vec<String> {
        self.shared.hub.directory().ids()
    }

    /// Connection events from now on.
    pub fn subscribe_connection_events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.shared.notify.subscribe()
    }

    /// Stops accepting, on every socket, and closes every connection; the
    /// socket files are removed.
    pub fn shutdown(&self) {
        let listeners: Vec<ModuleListener> = {
            let mut listeners = lock(&self.listeners);
            if self.shared.stopping.swap(true, Ordering::SeqCst) {
                return;
            }
            listeners.drain().map(|(_, l)| l).collect()
        };
        // Each closes (wakes and joins its accept thread, removes its file)
        // as it drops.
        drop(listeners);
        let _ = std::fs::remove_dir(&self.module_dir);
        // Wake the blocking accept so it sees `stopping`: `shutdown(2)` on
        // the listening socket makes a blocked `accept` (and every later
        // one) fail at once. Connecting to our own path instead would hang
        // this join forever once the socket file is gone (its directory
        // removed, say a data dir deleted or a test's temp dir cleaned up
        // before the server was dropped); it is only the fallback.
        if rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Both).is_err() {
            let _ = UnixStream::connect(&self.path);
        }
        if let Some(t) = lock(&self.accept_thread).take() {
            let _ = t.join();
        }
        let handles = self.shared.hub.directory().drain();
        for h in handles {
            h.close();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ModuleIpcServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(shared: Arc<Shared>, listener: UnixListener) {
    let slots = NodeSlots::new(
        shared.config.max_pending_handshakes,
        shared.config.max_pending_per_process,
    );
    // Connections refused because too many were pending, for the log's rate.
    let mut refused_for_load = 0u64;
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // EMFILE and friends: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let pending = match slots.take(peer_pid(&stream).unwrap_or(0)) {
            Ok(p) => p,
            Err(reason) => {
                // Refused on the accept thread: no thread, no buffer. The
                // frame is small and the socket's buffer empty, so the
                // write does not block.
                // Logged once per 1 000: a connect loop must not flood the log.
                if refused_for_load % 1_000 == 0 {
                    tracing::warn!(refused = refused_for_load + 1, "module connection refused: {reason}");
                }
                refused_for_load += 1;
                send_refusal(&shared, &stream, None, "too_many_connections", reason);
                continue;
            }
        };
        let conn_shared = Arc::clone(&shared);
        if let Err(e) = std::thread::Builder::new()
            .name("blvm-ipc-conn".into())
            .spawn(move || serve(conn_shared, stream, pending, None))
        {
            tracing::error!(error = %e, "cannot start a connection thread; connection dropped");
        }
    }
}

/// The pid of the process that connected `stream` (`SO_PEERCRED`).
pub(super) fn peer_pid(stream: &UnixStream) -> Option<u32> {
    let cred = rustix::net::sockopt::socket_peercred(stream).ok()?;
    u32::try_from(cred.pid.as_raw_nonzero().get()).ok()
}

/// Refuses a connection that was admitted to its handshake. It stops
/// counting as pending first, before the refusal is sent or announced: a
/// peer that has been told (or an observer of [`ConnectionEvent::Refused`])
/// may connect again at once and must not find its slot still taken.
fn refuse<P>(shared: &Shared, stream: &UnixStream, pending: P, module_id: Option<&str>, code: &str, reason: String) {
    drop(pending);
    tracing::warn!(module_id, code, "module connection refused: {reason}");
    send_refusal(shared, stream, module_id, code, reason);
}

/// Sends `refused`, closes, and announces it; no log line.
pub(super) fn send_refusal(
    shared: &Shared,
    mut stream: &UnixStream,
    module_id: Option<&str>,
    code: &str,
    reason: String,
) {
    let mut out = Vec::new();
    let refusal = Refused {
        code: code.to_owned(),
        reason: reason.clone(),
    };
    if encode::control(&mut out, "refused", &refusal).is_ok() {
        let _ = stream.write_all(&out);
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = shared.notify.send(ConnectionEvent::Refused {
        module_id: module_id.map(str::to_owned),
        code: code.to_owned(),
        reason,
    });
}

/// The largest `hello` accepted (payload bytes, 64 KiB): an
/// unauthenticated peer must not make the node reserve a full-size frame
/// buffer. `docs/ipc-protocol.md` §3 and §6 state it.
pub const MAX_HELLO_LEN: usize = 64 * 1024;

/// Reads until the first frame is complete, within one overall deadline
/// (a per-read timeout would let a peer trickle a byte at a time forever).
fn read_hello(stream: &mut UnixStream, deadline: Instant, buf: &mut BytesMut) -> Result<Frame, String> {
    let decoder = FrameDecoder::new(MAX_HELLO_LEN);
    let mut chunk = [0u8; 4096];
    loop {
        match decoder.next_frame(buf) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err("no hello before the handshake deadline".into());
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err("closed before the handshake".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("no hello before the handshake deadline".into())
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Steps 2–5 of a connection's life, on its own thread. `pending` is its
/// handshake slot, released (dropped) when the handshake ends either way;
/// `only` is the module whose own socket it came to, if any: a `hello` for
/// another id is refused there.
pub(super) fn serve<P>(shared: Arc<Shared>, mut stream: UnixStream, pending: P, only: Option<Arc<str>>) {
    let pid = peer_pid(&stream);
    let decoder = FrameDecoder::new(shared.config.max_frame_len);
    let mut buf = BytesMut::with_capacity(4096);
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let hello: Hello = match read_hello(&mut stream, deadline, &mut buf) {
        Ok(Frame::Hello(h)) => h,
        Ok(other) => {
            let kind = connection::frame_kind(&other).to_owned();
            return refuse(
                &shared,
                &stream,
                pending,
                None,
                "unexpected_frame",
                format!("expected `hello`, got `{kind}`"),
            );
        }
        Err(reason) => {
            if shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            return refuse(&shared, &stream, pending, None, "bad_handshake", reason);
        }
    };
    let Some(version) = SUPPORTED_VERSIONS
        .iter()
        .copied()
        .find(|v| hello.protocol_versions.contains(v))
    else {
        return refuse(
            &shared,
            &stream,
            pending,
            Some(&hello.module_id),
            "unsupported_version",
            format!(
                "module speaks protocol versions {:?}, node speaks {:?}",
                hello.protocol_versions, SUPPORTED_VERSIONS
            ),
        );
    };
    if let Some(own) = only.as_deref().filter(|own| *own != hello.module_id) {
        return refuse(
            &shared,
            &stream,
            pending,
            Some(own),
            "bad_token",
            format!("this socket is module `{own}`'s, not `{}`'s", hello.module_id),
        );
    }
    let spec = match shared.auth.authenticate(&hello, pid) {
        Ok(spec) => spec,
        Err(r) => return refuse(&shared, &stream, pending, Some(&hello.module_id), &r.code, r.reason),
    };
    let module_id = spec.module_id.clone();
    let accepted = start_connection(&shared, &stream, spec, pid, version);
    let conn = match accepted {
        Ok(conn) => conn,
        Err(e) => {
            shared.auth.disconnected(&module_id);
            shared.hub.events().unregister(&module_id);
            return refuse(
                &shared,
                &stream,
                pending,
                Some(&module_id),
                "internal",
                format!("node could not accept the module: {e}"),
            );
        }
    };
    // Handshake done: no longer pending.
    drop(pending);
    let reason = if stream.set_read_timeout(None).is_ok() {
        connection::run_reader(&conn, &shared.hub, decoder, stream, buf)
    } else {
        CloseReason::Io(std::io::Error::other("cannot clear the read timeout"))
    };
    let (text, protocol_violation) = match reason {
        CloseReason::Closed => ("closed".to_owned(), false),
        CloseReason::Violation(why) => {
            tracing::warn!(module = %conn.spec.name, module_id, "protocol violation, connection closed: {why}");
            (format!("protocol violation: {why}"), true)
        }
        CloseReason::Io(e) => (format!("i/o error: {e}"), false),
    };
    connection::finish(&conn);
    shared.hub.connection_closed(&ModuleConnectionHandle {
        conn: Arc::clone(&conn),
    });
    shared.auth.disconnected(&module_id);
    tracing::info!(module = %conn.spec.name, module_id, reason = %text, "module disconnected");
    let _ = shared.notify.send(ConnectionEvent::Closed {
        module_id,
        reason: text,
        protocol_violation,
    });
}

/// Steps 4 of the connection's life: queue, writer, registration,
/// `welcome`.
fn start_connection(
    shared: &Arc<Shared>,
    stream: &UnixStream,
    spec: Arc<ModuleSpec>,
    pid: Option<u32>,
    version: u32,
) -> std::io::Result<Arc<Connection>> {
    let events = shared.hub.events();
    // A larger send buffer lets the writer hand a burst of events over in
    // fewer writes, and so with fewer wake-ups of the module; best effort.
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(stream, 1 << 20);
    let (wake, rx) = events.register(&spec.module_id, &spec.name, &spec.version, spec.event_queue_capacity);
    let conn = Arc::new(Connection::new(Arc::clone(&spec), pid, stream, wake)?);
    let writer_conn = Arc::clone(&conn);
    std::thread::Builder::new()
        .name("blvm-ipc-write".into())
        .spawn(move || connection::run_writer(writer_conn, rx))?;
    let welcome = Welcome {
        protocol_version: version,
        node_version: shared.config.node_version.clone(),
        capabilities: spec.capabilities,
        config: spec.config.clone(),
        data_dir: spec.data_dir.display().to_string(),
    };
    let mut out = Vec::new();
    encode::control(&mut out, "welcome", &welcome).map_err(std::io::Error::other)?;
    // The connection is published, and announced, while `welcome` is
    // written under the writer lock: no invocation or shutdown can precede
    // `welcome` on the wire, and a module that reacts to `welcome` is
    // already reachable through `connection()` and already announced. A
    // module may exit the moment it reads `welcome` (a crash at start-up):
    // whoever waits for the handshake (the supervisor) must find
    // `Connected` before it can see that exit, or a module that did start
    // is taken for one that never completed its handshake. Announcing after
    // the write left that window open while this thread was descheduled.
    let handle = ModuleConnectionHandle {
        conn: Arc::clone(&conn),
    };
    conn.write_first(&out, || {
        shared.hub.directory().insert(handle);
        let _ = shared.notify.send(ConnectionEvent::Connected {
            module_id: spec.module_id.clone(),
            pid,
        });
    })
    .inspect_err(|e| {
        conn.close();
        shared.hub.directory().remove_if_same(&ModuleConnectionHandle {
            conn: Arc::clone(&conn),
        });
        // It was announced: announce its end too.
        let _ = shared.notify.send(ConnectionEvent::Closed {
            module_id: spec.module_id.clone(),
            reason: format!("i/o error: {e}"),
            protocol_violation: false,
        });
    })?;
    // `forget_module` may have run between the handshake and the insert,
    // when there was no connection yet to cut: cut it now. (Forget removes
    // the registration first, then the connection, so one of the two
    // always sees the other.)
    if !shared.auth.is_expected(&spec.module_id) {
        conn.close();
    }
    tracing::info!(module = %spec.name, module_id = %spec.module_id, pid, "module connected");
    Ok(conn)
}
