//! [`ModuleIpcServer`]: one listening socket, every connection on its own
//! threads.
//!
//! # A connection's life
//!
//! 1. accept; the peer's pid is read with `SO_PEERCRED`;
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
}

impl Default for IpcServerConfig {
    fn default() -> Self {
        IpcServerConfig {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            handshake_timeout: Duration::from_secs(10),
            node_version: env!("CARGO_PKG_VERSION").to_owned(),
            max_pending_handshakes: 64,
            max_pending_per_process: 4,
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
        /// The module id the `hello` claimed, if it got that far.
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

struct Shared {
    config: IpcServerConfig,
    auth: AuthRegistry,
    hub: Arc<ModuleApiHub>,
    connections: Mutex<HashMap<String, ModuleConnectionHandle>>,
    notify: broadcast::Sender<ConnectionEvent>,
    stopping: AtomicBool,
    /// Connections still in their handshake, by peer pid (0: unknown).
    pending: Mutex<HashMap<u32, usize>>,
    /// Connections refused because too many were pending.
    refused_for_load: AtomicU64,
}

/// One connection counted in [`Shared::pending`] until dropped (its
/// handshake finished one way or the other).
struct PendingHandshake {
    shared: Arc<Shared>,
    pid: u32,
}

impl PendingHandshake {
    /// Counts a new connection from `pid`, or says why it is one too many.
    fn admit(shared: &Arc<Shared>, pid: u32) -> Result<PendingHandshake, String> {
        let mut pending = lock(&shared.pending);
        let total: usize = pending.values().sum();
        let mine = pending.get(&pid).copied().unwrap_or(0);
        if total >= shared.config.max_pending_handshakes {
            return Err(format!(
                "{total} connections are already waiting to complete their handshake (the limit)"
            ));
        }
        if mine >= shared.config.max_pending_per_process {
            return Err(format!(
                "process {pid} already has {mine} connections waiting to complete their handshake (the limit)"
            ));
        }
        *pending.entry(pid).or_insert(0) += 1;
        Ok(PendingHandshake {
            shared: Arc::clone(shared),
            pid,
        })
    }
}

impl Drop for PendingHandshake {
    fn drop(&mut self) {
        let mut pending = lock(&self.shared.pending);
        if let Some(n) = pending.get_mut(&self.pid) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.pid);
            }
        }
    }
}

/// The node's module socket.
pub struct ModuleIpcServer {
    shared: Arc<Shared>,
    path: PathBuf,
    /// The accept thread's listening socket, to wake its `accept` at
    /// shutdown (see [`ModuleIpcServer::shutdown`]).
    listener: UnixListener,
    accept_thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map is only ever inserted into or removed from.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ModuleIpcServer {
    /// Binds `path` and starts accepting. A stale socket file left by a
    /// dead node is replaced; a live one is an `AddrInUse` error.
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
        let listener = UnixListener::bind(&path)?;
        // World-connectable (0666), so a module dropped to another uid (the
        // sandbox's `nobody`) can connect. Connecting proves nothing: every
        // connection must still present its one-time token from the pid it
        // was spawned as (`auth`), so another local user gains no more than
        // a refused handshake. The directory's mode still decides who can
        // reach the socket at all.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        let (notify, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            config,
            auth: AuthRegistry::default(),
            hub,
            connections: Mutex::new(HashMap::new()),
            notify,
            stopping: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
            refused_for_load: AtomicU64::new(0),
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
        })
    }

    /// The socket path modules connect to.
    pub fn socket_path(&self) -> &Path {
        &self.path
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

    /// Cuts a module's connection and forgets its token.
    pub fn forget_module(&self, module_id: &str) {
        self.shared.auth.forget(module_id);
        if let Some(handle) = lock(&self.shared.connections).remove(module_id) {
            handle.close();
        }
    }

    /// The live connection of a module.
    pub fn connection(&self, module_id: &str) -> Option<ModuleConnectionHandle> {
        lock(&self.shared.connections).get(module_id).cloned()
    }

    /// Ids of the modules connected now.
    pub fn connected_modules(&self) -> Vec<String> {
        let mut ids: Vec<_> = lock(&self.shared.connections).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Connection events from now on.
    pub fn subscribe_connection_events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.shared.notify.subscribe()
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
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
        let handles: Vec<_> = lock(&self.shared.connections).drain().map(|(_, h)| h).collect();
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
        let pending = match PendingHandshake::admit(&shared, peer_pid(&stream).unwrap_or(0)) {
            Ok(p) => p,
            Err(reason) => {
                // Refused on the accept thread: no thread, no buffer. The
                // frame is small and the socket's buffer empty, so the
                // write does not block.
                // Logged once per 1 000: a connect loop must not flood the log.
                let n = shared.refused_for_load.fetch_add(1, Ordering::Relaxed);
                if n % 1_000 == 0 {
                    tracing::warn!(refused = n + 1, "module connection refused: {reason}");
                }
                send_refusal(&shared, &stream, None, "too_many_connections", reason);
                continue;
            }
        };
        let conn_shared = Arc::clone(&shared);
        if let Err(e) = std::thread::Builder::new()
            .name("blvm-ipc-conn".into())
            .spawn(move || serve(conn_shared, stream, pending))
        {
            tracing::error!(error = %e, "cannot start a connection thread; connection dropped");
        }
    }
}

fn peer_pid(stream: &UnixStream) -> Option<u32> {
    let cred = rustix::net::sockopt::socket_peercred(stream).ok()?;
    u32::try_from(cred.pid.as_raw_nonzero().get()).ok()
}

/// Refuses a connection that was admitted to its handshake. It stops
/// counting as pending first, before the refusal is sent or announced: a
/// peer that has been told (or an observer of [`ConnectionEvent::Refused`])
/// may connect again at once and must not find its slot still taken.
fn refuse(
    shared: &Shared,
    stream: &UnixStream,
    pending: PendingHandshake,
    module_id: Option<&str>,
    code: &str,
    reason: String,
) {
    drop(pending);
    tracing::warn!(module_id, code, "module connection refused: {reason}");
    send_refusal(shared, stream, module_id, code, reason);
}

/// Sends `refused`, closes, and announces it; no log line.
fn send_refusal(shared: &Shared, mut stream: &UnixStream, module_id: Option<&str>, code: &str, reason: String) {
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

/// The largest `hello` accepted: an unauthenticated peer must not make
/// the node reserve a full-size frame buffer.
const MAX_HELLO_LEN: usize = 64 * 1024;

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

fn serve(shared: Arc<Shared>, mut stream: UnixStream, pending: PendingHandshake) {
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
    {
        let mut conns = lock(&shared.connections);
        if conns.get(&module_id).is_some_and(|h| Arc::ptr_eq(&h.conn, &conn)) {
            conns.remove(&module_id);
        }
    }
    shared.hub.events().unregister(&module_id);
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
        lock(&shared.connections).insert(spec.module_id.clone(), handle);
        let _ = shared.notify.send(ConnectionEvent::Connected {
            module_id: spec.module_id.clone(),
            pid,
        });
    })
    .inspect_err(|e| {
        conn.close();
        {
            let mut conns = lock(&shared.connections);
            if conns.get(&spec.module_id).is_some_and(|h| Arc::ptr_eq(&h.conn, &conn)) {
                conns.remove(&spec.module_id);
            }
        }
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
