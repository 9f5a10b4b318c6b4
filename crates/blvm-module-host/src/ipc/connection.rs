//! One module's connection: its reader thread (handshake, requests,
//! responses to invocations, logs), its writer thread (events and
//! node→module frames) and the handle the rest of the node holds.
//!
//! The reader answers requests inline and writes each batch of answers
//! with one `write`; under load many requests arrive in one `read` and
//! their answers leave in one `write`. A request that waits on another
//! process ([`Handled::Later`]) is started by the reader and answered
//! through a [`Responder`], whose frame goes out through the writer thread
//! when it is ready, so the reader never waits on anyone; at most [`MAX_WAITING`] such requests of
//! one module wait at once, one more is answered `rate_limited`. Only a
//! protocol violation ends the loop, and it ends this connection only.
//!
//! Everything the module sends on its own initiative takes a token of its
//! one rate budget ([`super::rate`]): a request over it is answered
//! `rate_limited`; a `log` frame over it is dropped and counted
//! ([`ModuleConnectionHandle::dropped_logs`]), since a log has no answer to
//! carry a refusal. A log frame within it is re-emitted through `tracing`
//! as exactly one line: capped at [`crate::process::MAX_LINE`] and escaped
//! like the module's stdout (`crate::process`'s `output`).

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use blvm_module_protocol::control::{LogLevel, LogRecord};
use blvm_module_protocol::frame::encode;
use blvm_module_protocol::{ErrorCode, Frame, FrameDecoder, FrameError, RemoteError, Response, Shutdown};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use tokio::sync::oneshot;

use super::auth::ModuleSpec;
use super::rate::{RequestRate, TokenBucket, WarnThrottle};
use crate::api::durable::DurableFeed;
use crate::api::events::Outbound;
use crate::api::hub::{Caller, Handled, ModuleApiHub};

/// Largest batch of frames the writer thread puts in one `write`.
const WRITE_BATCH: usize = 256 * 1024;
/// Size of one `read`.
const READ_CHUNK: usize = 64 * 1024;
/// Requests of one module that may wait on other processes at once
/// (inter-module calls): each holds a task and its params until its
/// deadline, so a module cannot pile them up without bound.
pub const MAX_WAITING: usize = 64;

/// What waits for the answer to one of the node's invocations.
enum Pending {
    /// An `invoke` future.
    Task(oneshot::Sender<Result<Bytes, RemoteError>>),
    /// An [`ModuleConnectionHandle::invoke_then`] callback, run where the
    /// answer is read (or the deadline or the connection's end is seen),
    /// and the error it gets at its deadline.
    Callback {
        done: Box<dyn FnOnce(Result<Bytes, RemoteError>) + Send>,
        on_timeout: RemoteError,
    },
}

impl Pending {
    fn finish(self, result: Result<Bytes, RemoteError>) {
        match self {
            Pending::Task(tx) => {
                let _ = tx.send(result);
            }
            Pending::Callback { done, .. } => done(result),
        }
    }
}

/// State shared by a connection's threads and its handles.
pub(crate) struct Connection {
    pub(crate) spec: Arc<ModuleSpec>,
    pub(crate) peer_pid: Option<u32>,
    /// For `shutdown(2)`, which wakes both threads out of blocking calls.
    stream: UnixStream,
    /// Serialises whole frames from the two threads onto the socket.
    writer: Mutex<UnixStream>,
    /// Node→module frames waiting for the writer thread.
    control: Mutex<VecDeque<Vec<u8>>>,
    wake: SyncSender<Outbound>,
    closed: AtomicBool,
    /// Whether the node asked the module to shut down: a connection that
    /// ends without this was lost (the module crashed or exited on its own).
    shutdown_sent: AtomicBool,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    /// Requests answered `rate_limited` instead of served.
    rate_limited: AtomicU64,
    /// `log` frames dropped because the module was over its rate.
    logs_dropped: AtomicU64,
    /// Requests answered later ([`Handled::Later`]) still waiting.
    waiting: AtomicUsize,
    /// The deadlines of this module's `invoke_then` calls.
    deadlines: super::deadlines::Deadlines,
    /// The connection's durable subscription, whose events the writer
    /// makes on each turn.
    durable: Mutex<Option<Arc<DurableFeed>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here is a single push, pop, insert or write;
    // none leaves the data inconsistent if another thread panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connection {
    pub(crate) fn new(
        spec: Arc<ModuleSpec>,
        peer_pid: Option<u32>,
        stream: &UnixStream,
        wake: SyncSender<Outbound>,
    ) -> std::io::Result<Connection> {
        Ok(Connection {
            spec,
            peer_pid,
            stream: stream.try_clone()?,
            writer: Mutex::new(stream.try_clone()?),
            control: Mutex::new(VecDeque::new()),
            wake,
            closed: AtomicBool::new(false),
            shutdown_sent: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            rate_limited: AtomicU64::new(0),
            logs_dropped: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            deadlines: super::deadlines::Deadlines::default(),
            durable: Mutex::new(None),
        })
    }

    pub(crate) fn write_all(&self, bytes: &[u8]) -> std::io::Result<()> {
        lock(&self.writer).write_all(bytes)
    }

    /// Writes the connection's first frame while `publish` makes the
    /// connection reachable. The writer lock is held across both, so a
    /// frame queued by someone who found the connection through `publish`
    /// is written after `bytes`, and once `publish` has run the module can
    /// be reached by whoever reads `bytes` and reacts to it.
    pub(crate) fn write_first(&self, bytes: &[u8], publish: impl FnOnce()) -> std::io::Result<()> {
        let mut writer = lock(&self.writer);
        publish();
        writer.write_all(bytes)
    }

    /// Queues a node→module frame for the writer thread; never blocks.
    fn send_control(&self, frame: Vec<u8>) {
        lock(&self.control).push_back(frame);
        // A full queue means the writer is busy and will look at the
        // control queue before its next write anyway.
        let _ = self.wake.try_send(Outbound::Wake);
    }

    /// Shuts the socket down, which ends both threads.
    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
            let _ = self.wake.try_send(Outbound::Wake);
            self.deadlines.close();
        }
    }

    /// Hands a response to the invocation waiting for it; false when none
    /// waits (a late answer, or one to nothing).
    fn complete(&self, response: Response) -> bool {
        // Taken out of the map first: the lock is not held while a
        // callback runs.
        let waiter = lock(&self.pending).remove(&response.id);
        match waiter {
            Some(w) => {
                w.finish(response.result);
                true
            }
            None => false,
        }
    }

    /// Invocation `id`'s deadline passed: answers its callback with its
    /// timeout error if it is still waiting. False once the connection is
    /// closed (its watcher stops).
    fn expire(&self, id: u64) -> bool {
        if self.closed.load(Ordering::SeqCst) {
            return false;
        }
        let waiter = lock(&self.pending).remove(&id);
        match waiter {
            Some(Pending::Callback { done, on_timeout }) => done(Err(on_timeout)),
            // Only callbacks have deadlines here; put anything else back.
            Some(task @ Pending::Task(_)) => {
                lock(&self.pending).insert(id, task);
            }
            None => {}
        }
        true
    }

    fn fail_pending(&self, error: &RemoteError) {
        let pending: Vec<_> = lock(&self.pending).drain().collect();
        for (_, w) in pending {
            w.finish(Err(error.clone()));
        }
    }
}

/// A cheap, cloneable handle to a live module connection: invoke the
/// module, ask it to shut down, or cut it off.
#[derive(Clone)]
pub struct ModuleConnectionHandle {
    pub(crate) conn: Arc<Connection>,
}

impl std::fmt::Debug for ModuleConnectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleConnectionHandle")
            .field("module_id", &self.conn.spec.module_id)
            .field("peer_pid", &self.conn.peer_pid)
            .finish()
    }
}

impl ModuleConnectionHandle {
    /// The module id.
    pub fn module_id(&self) -> &str {
        &self.conn.spec.module_id
    }

    /// The module name.
    pub fn module_name(&self) -> &str {
        &self.conn.spec.name
    }

    /// The module's manifest version.
    pub fn module_version(&self) -> &str {
        &self.conn.spec.version
    }

    /// The pid of the connected process, from `SO_PEERCRED`.
    pub fn peer_pid(&self) -> Option<u32> {
        self.conn.peer_pid
    }

    /// Requests this connection answered `rate_limited` instead of
    /// serving (see [`ModuleSpec::request_rate`]).
    pub fn rate_limited_requests(&self) -> u64 {
        self.conn.rate_limited.load(Ordering::Relaxed)
    }

    /// `log` frames this connection dropped, unlogged, because the module
    /// was over its request rate (the same budget as its requests).
    pub fn dropped_logs(&self) -> u64 {
        self.conn.logs_dropped.load(Ordering::Relaxed)
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.conn.closed.load(Ordering::SeqCst)
    }

    /// Sends a request to the module (an RPC endpoint call, an inter-module
    /// call, a timer fire) and waits for its answer. Never blocks the
    /// caller's thread: the frame is written by the connection's writer.
    ///
    /// # Errors
    ///
    /// The module's error response; `module_crashed` if the connection is
    /// lost first, `connection_closed` if it ends after a `shutdown`.
    pub async fn invoke<P: Serialize + ?Sized>(&self, method: &str, params: &P) -> Result<Bytes, RemoteError> {
        let conn = &self.conn;
        if self.is_closed() {
            return Err(closed_error());
        }
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = Vec::new();
        encode::request(&mut frame, id, method, params)
            .map_err(|e| RemoteError::new(ErrorCode::InvalidParams, e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        lock(&conn.pending).insert(id, Pending::Task(tx));
        // Closed between the check and the insert: the closer may already
        // have drained `pending`, so fail this one ourselves.
        if self.is_closed() {
            lock(&conn.pending).remove(&id);
            return Err(closed_error());
        }
        // A caller that stops waiting (its deadline passed) takes the entry
        // with it: a module that never answers does not grow `pending`.
        let _forget = ForgetPending { conn, id };
        conn.send_control(frame);
        rx.await.unwrap_or_else(|_| Err(closed_error()))
    }

    /// Sends a request to the module and runs `done` with its answer, once:
    /// on the thread that reads the answer, or with `on_timeout` when
    /// `deadline` passes first (a task on `runtime` watches it), or with
    /// the connection's end (`module_crashed`, `connection_closed`), or at
    /// once when the connection is closed already. Nothing waits in
    /// between: no thread or task is woken to pass the answer on, which is
    /// what an inter-module call needs to cost two hops, not four.
    ///
    /// `done` must be quick (it may run on the connection's reader thread):
    /// encode and queue a frame, no I/O.
    pub fn invoke_then<P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
        deadline: std::time::Duration,
        runtime: &tokio::runtime::Handle,
        on_timeout: RemoteError,
        done: impl FnOnce(Result<Bytes, RemoteError>) + Send + 'static,
    ) {
        let conn = &self.conn;
        if self.is_closed() {
            return done(Err(closed_error()));
        }
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = Vec::new();
        if let Err(e) = encode::request(&mut frame, id, method, params) {
            return done(Err(RemoteError::new(ErrorCode::InvalidParams, e.to_string())));
        }
        lock(&conn.pending).insert(
            id,
            Pending::Callback {
                done: Box::new(done),
                on_timeout,
            },
        );
        // Closed between the check and the insert: the closer may already
        // have drained `pending`, so fail this one ourselves.
        if self.is_closed() {
            let waiter = lock(&conn.pending).remove(&id);
            if let Some(w) = waiter {
                w.finish(Err(closed_error()));
            }
            return;
        }
        conn.send_control(frame);
        // Whoever takes the entry out of `pending` answers: the reader with
        // the module's answer, the closer with the connection's end, or the
        // connection's deadline watcher.
        conn.deadlines.add(
            id,
            tokio::time::Instant::now() + deadline,
            runtime,
            Arc::downgrade(conn),
            |c: &Connection| &c.deadlines,
            Connection::expire,
        );
    }

    /// Makes `feed` this connection's durable subscription; its writer
    /// starts sending from the feed's cursor.
    pub fn set_durable(&self, feed: Arc<DurableFeed>) {
        *lock(&self.conn.durable) = Some(Arc::clone(&feed));
        feed.wake();
    }

    /// The durable subscription of this connection, if it made one.
    pub fn durable(&self) -> Option<Arc<DurableFeed>> {
        lock(&self.conn.durable).clone()
    }

    /// Asks the module to exit within `grace`.
    pub fn send_shutdown(&self, reason: &str, grace: std::time::Duration) {
        let mut frame = Vec::new();
        let body = Shutdown {
            reason: reason.to_owned(),
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        };
        if encode::control(&mut frame, "shutdown", &body).is_ok() {
            self.conn.shutdown_sent.store(true, Ordering::SeqCst);
            self.conn.send_control(frame);
        }
    }

    /// Cuts the connection off now. The listening socket is untouched.
    pub fn close(&self) {
        self.conn.close();
    }
}

/// Removes an invocation's `pending` entry when its future ends, answered
/// (then a no-op) or dropped.
struct ForgetPending<'a> {
    conn: &'a Connection,
    id: u64,
}

impl Drop for ForgetPending<'_> {
    fn drop(&mut self) {
        lock(&self.conn.pending).remove(&self.id);
    }
}

fn closed_error() -> RemoteError {
    RemoteError::new(ErrorCode::ConnectionClosed, "the module's connection closed")
}

/// The writer thread: drains the module's event queue and control queue
/// onto the socket, many frames per `write`. Ends when the connection
/// closes or a write fails.
pub(crate) fn run_writer(conn: Arc<Connection>, rx: Receiver<Outbound>) {
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    AWAKE_WRITERS.fetch_add(1, Ordering::Relaxed);
    let mut next = next_batch(&rx);
    while let Some(first) = next.take() {
        if conn.closed.load(Ordering::SeqCst) {
            break;
        }
        buf.clear();
        push_outbound(&mut buf, first);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(item) => push_outbound(&mut buf, item),
                Err(_) => break,
            }
        }
        {
            let mut control = lock(&conn.control);
            while let Some(frame) = control.pop_front() {
                buf.extend_from_slice(&frame);
            }
        }
        let feed = lock(&conn.durable).clone();
        if let Some(feed) = feed {
            push_durable(&mut buf, &feed, &rx, &conn.spec.name);
        }
        if !buf.is_empty() {
            if let Err(e) = conn.write_all(&buf) {
                tracing::debug!(module = %conn.spec.name, error = %e, "event writer stopped");
                break;
            }
        }
        next = next_batch(&rx);
    }
    AWAKE_WRITERS.fetch_sub(1, Ordering::Relaxed);
    // Dropping `rx` closes the queue: the bus counts and removes it.
}

/// Writer threads of this process that are awake (not blocked on an
/// empty queue).
static AWAKE_WRITERS: AtomicUsize = AtomicUsize::new(0);

/// The first item of the writer's next batch, blocking on an empty queue.
///
/// While other writers are awake too (events fan out to several modules),
/// the writer first yields its core once: the others and their modules
/// run, the publisher queues more behind it, and each writer takes many
/// events per wake-up instead of being woken (a futex wake paid by the
/// publisher, and a context switch) for every event or two. Alone it does
/// not yield: the core would go to the publisher for a whole time slice
/// while its queue fills and drops, so it sleeps and is woken at the next
/// event instead.
fn next_batch(rx: &Receiver<Outbound>) -> Option<Outbound> {
    if let Ok(item) = rx.try_recv() {
        return Some(item);
    }
    if AWAKE_WRITERS.load(Ordering::Relaxed) > 1 {
        std::thread::yield_now();
        if let Ok(item) = rx.try_recv() {
            return Some(item);
        }
    }
    AWAKE_WRITERS.fetch_sub(1, Ordering::Relaxed);
    let item = rx.recv().ok();
    AWAKE_WRITERS.fetch_add(1, Ordering::Relaxed);
    item
}

fn push_outbound(buf: &mut Vec<u8>, item: Outbound) {
    if let Outbound::Event(e) = item {
        match &e.event.origin {
            None => encode::event_raw(buf, e.seq, &e.event.name, &e.event.payload),
            Some(origin) => encode::event_from(buf, e.seq, &e.event.name, origin, &e.event.payload),
        }
    }
}

/// Appends the durable events the feed has room for. Their sequence
/// numbers are taken under the module's delivery lock after draining the
/// queue, so every event queued before them (a lower number) is written
/// first.
fn push_durable(buf: &mut Vec<u8>, feed: &DurableFeed, rx: &Receiver<Outbound>, module: &str) {
    let (events, more) = match feed.next_events() {
        Ok(next) => next,
        Err(e) => {
            tracing::warn!(module, error = %e, "durable events wait: cannot read the chain");
            return;
        }
    };
    if !events.is_empty() {
        let delivery = feed.delivery();
        let mut seq = delivery.lock();
        while let Ok(item) = rx.try_recv() {
            push_outbound(buf, item);
        }
        for e in &events {
            let start = buf.len();
            if let Err(err) = encode::event_durable(buf, *seq, e.ty.name(), &e.payload, &e.mark) {
                buf.truncate(start);
                tracing::warn!(module, error = %err, "cannot encode a durable event");
                continue;
            }
            *seq += 1;
        }
        drop(seq);
        delivery.delivered(events.len() as u64);
    }
    if more {
        feed.wake();
    }
}

/// Why a connection ended.
pub(crate) enum CloseReason {
    /// The module closed it or the node shut it down.
    Closed,
    /// The module broke the protocol; the connection was cut.
    Violation(String),
    /// An I/O error.
    Io(std::io::Error),
}

/// The reader loop after a successful handshake. `buf` may already hold
/// frames that arrived with the `hello`.
pub(crate) fn run_reader(
    conn: &Arc<Connection>,
    hub: &ModuleApiHub,
    decoder: FrameDecoder,
    mut stream: UnixStream,
    mut buf: BytesMut,
) -> CloseReason {
    let caller = Caller {
        module_id: &conn.spec.module_id,
        module_name: &conn.spec.name,
        capabilities: conn.spec.capabilities,
        publishes: &conn.spec.publishes,
    };
    let mut out = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut budget = Budget {
        bucket: conn.spec.request_rate.map(TokenBucket::new),
        requests_warned: WarnThrottle::default(),
        logs_warned: WarnThrottle::default(),
    };
    loop {
        loop {
            let payload = match decoder.next_payload(&mut buf) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return violation(&e),
            };
            let frame = match Frame::decode(payload) {
                Ok(f) => f,
                Err(e) => return violation(&FrameError::Decode(e)),
            };
            match frame {
                Frame::Request(request) => match budget.over() {
                    Some(rate) => refuse_over_rate(conn, &mut budget, rate, request.id, &mut out),
                    None => {
                        if let Handled::Later(answer) = hub.handle(&caller, &request, &mut out) {
                            answer_later(conn, hub, request.id, answer, &mut out);
                        }
                    }
                },
                Frame::Response(response) => {
                    let id = response.id;
                    // Only an unsolicited one costs a token (and a line).
                    if !conn.complete(response) && budget.over().is_none() {
                        tracing::debug!(module = %conn.spec.name, id, "response to no pending invocation ignored");
                    }
                }
                Frame::Log(record) => match budget.over() {
                    Some(rate) => drop_over_rate(conn, &mut budget, rate),
                    None => emit_log(&conn.spec.name, &record),
                },
                Frame::Unknown { kind } => {
                    if budget.over().is_none() {
                        let mut shown = String::new();
                        crate::process::escape_into(&mut shown, &kind);
                        tracing::debug!(module = %conn.spec.name, kind = %shown, "ignoring unknown frame kind");
                    }
                }
                other => {
                    return CloseReason::Violation(format!(
                        "unexpected `{}` frame after the handshake",
                        frame_kind(&other)
                    ))
                }
            }
            if out.len() >= WRITE_BATCH {
                if let Err(e) = conn.write_all(&out) {
                    return CloseReason::Io(e);
                }
                out.clear();
            }
        }
        if !out.is_empty() {
            if let Err(e) = conn.write_all(&out) {
                return CloseReason::Io(e);
            }
            out.clear();
        }
        match stream.read(&mut chunk) {
            Ok(0) => return CloseReason::Closed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return if conn.closed.load(Ordering::SeqCst) {
                    CloseReason::Closed
                } else {
                    CloseReason::Io(e)
                }
            }
        }
    }
}

/// Runs a waiting request's answer on the hub's runtime and queues the
/// response for the writer when it is ready; over [`MAX_WAITING`] it is
/// refused at once instead.
fn answer_later(
    conn: &Arc<Connection>,
    hub: &ModuleApiHub,
    id: u64,
    answer: crate::api::hub::Deferred,
    out: &mut Vec<u8>,
) {
    if conn.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
        conn.waiting.fetch_sub(1, Ordering::AcqRel);
        let error = RemoteError::new(
            ErrorCode::RateLimited,
            format!("{MAX_WAITING} calls of this module are already waiting for an answer; retry when one completes"),
        );
        crate::api::hub::encode_error(out, id, &error);
        return;
    }
    let _ = hub;
    answer(Responder {
        conn: Some(Arc::clone(conn)),
        id,
    });
}

/// The one answer to a request the hub answers later
/// ([`Handled::Later`]): give it the response frame with
/// [`Responder::respond`], from any thread. Dropped unanswered (a bug, or
/// a panic), it answers `internal` so the module is never left waiting.
pub struct Responder {
    conn: Option<Arc<Connection>>,
    id: u64,
}

impl Responder {
    /// The request's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues `frame` (the whole response frame of the request) for the
    /// connection's writer.
    pub fn respond(mut self, frame: Vec<u8>) {
        if let Some(conn) = self.conn.take() {
            conn.waiting.fetch_sub(1, Ordering::AcqRel);
            if !conn.closed.load(Ordering::SeqCst) {
                conn.send_control(frame);
            }
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.conn.is_some() {
            let mut frame = Vec::new();
            crate::api::hub::encode_error(
                &mut frame,
                self.id,
                &RemoteError::new(ErrorCode::Internal, "the node dropped this request unanswered"),
            );
            let this = Responder {
                conn: self.conn.take(),
                id: self.id,
            };
            this.respond(frame);
        }
    }
}

/// The reader's side of the module's rate budget: the bucket, and the
/// throttles of the warnings about what is over it.
struct Budget {
    /// `None`: the operator set no limit.
    bucket: Option<TokenBucket>,
    requests_warned: WarnThrottle,
    logs_warned: WarnThrottle,
}

impl Budget {
    /// Takes a token for one frame; the rate when none is left.
    fn over(&mut self) -> Option<RequestRate> {
        self.bucket.as_mut().and_then(|b| (!b.allow()).then(|| b.rate()))
    }
}

/// Answers a request over the module's rate with `rate_limited`, counts
/// it, and warns at most once per [`super::rate::WARN_EVERY`] (a flood must
/// not flood the log).
fn refuse_over_rate(conn: &Connection, budget: &mut Budget, rate: RequestRate, id: u64, out: &mut Vec<u8>) {
    let n = conn.rate_limited.fetch_add(1, Ordering::Relaxed) + 1;
    if budget.requests_warned.ready() {
        tracing::warn!(module = %conn.spec.name, limited = n, "module is over its request rate of {rate}");
    }
    let error = RemoteError::new(
        ErrorCode::RateLimited,
        format!("over this module's request rate of {rate}; retry later"),
    );
    // A RemoteError is strings only: encoding it cannot fail.
    let _ = encode::response_err(out, id, &error);
}

/// Drops a `log` frame over the module's rate, counts it, and warns at most
/// once per [`super::rate::WARN_EVERY`]. A log has no response, so the
/// module is not told; the operator is, and sees the count in status.
fn drop_over_rate(conn: &Connection, budget: &mut Budget, rate: RequestRate) {
    let n = conn.logs_dropped.fetch_add(1, Ordering::Relaxed) + 1;
    if budget.logs_warned.ready() {
        tracing::warn!(
            module = %conn.spec.name,
            logs_dropped = n,
            "module is over its request rate of {rate}: its log lines are dropped until it slows down"
        );
    }
}

fn violation(e: &FrameError) -> CloseReason {
    CloseReason::Violation(e.to_string())
}

/// Ends a connection: fails what waits on it and closes the socket. An
/// invocation cut off by a connection the node did not ask to end fails
/// with `module_crashed`; after a `shutdown`, with `connection_closed`.
pub(crate) fn finish(conn: &Connection) {
    conn.close();
    let error = if conn.shutdown_sent.load(Ordering::SeqCst) {
        closed_error()
    } else {
        RemoteError::new(
            ErrorCode::ModuleCrashed,
            format!("module `{}` went away before it answered", conn.spec.name),
        )
    };
    conn.fail_pending(&error);
}

pub(crate) fn frame_kind(frame: &Frame) -> &str {
    match frame {
        Frame::Hello(_) => "hello",
        Frame::Welcome(_) => "welcome",
        Frame::Refused(_) => "refused",
        Frame::Request(_) => "request",
        Frame::Response(_) => "response",
        Frame::Event(_) => "event",
        Frame::Log(_) => "log",
        Frame::Shutdown(_) => "shutdown",
        Frame::Unknown { kind } => kind,
    }
}

/// A `log` frame as the one line it becomes: its message, target and
/// fields escaped, [`crate::process::MAX_LINE`] bytes of them at most
/// (message first, then target, then fields in key order), the message
/// ending in [`crate::process::TRUNCATED_MARKER`] when anything was cut.
struct LogLine {
    message: String,
    target: String,
    /// `{key=value, …}`.
    fields: String,
}

impl LogLine {
    fn new(record: &LogRecord) -> LogLine {
        let mut budget = crate::process::LineBudget::new();
        let mut message = String::new();
        budget.push(&mut message, &record.message);
        let mut target = String::new();
        budget.push(&mut target, &record.target);
        let mut fields = String::from("{");
        for (i, (key, value)) in record.fields.iter().enumerate() {
            if budget.is_spent() {
                // Stop here: every further field would add its `, =`.
                budget.mark_truncated();
                break;
            }
            if i > 0 {
                fields.push_str(", ");
            }
            budget.push(&mut fields, key);
            fields.push('=');
            budget.push(&mut fields, value);
        }
        fields.push('}');
        if budget.is_truncated() {
            message.push_str(crate::process::TRUNCATED_MARKER);
        }
        LogLine {
            message,
            target,
            fields,
        }
    }
}

/// Re-emits a module's log line through `tracing`, under the module's
/// name, as one line whatever it holds (see [`LogLine`]).
fn emit_log(module: &str, record: &LogRecord) {
    let line = LogLine::new(record);
    let (msg, target, fields) = (&line.message, &line.target, &line.fields);
    // Display (`%`), not Debug: the text is escaped already, and Debug
    // would escape the escapes.
    match record.level {
        LogLevel::Error => tracing::error!(module, module_target = %target, fields = %fields, "{msg}"),
        LogLevel::Warn => tracing::warn!(module, module_target = %target, fields = %fields, "{msg}"),
        LogLevel::Info => tracing::info!(module, module_target = %target, fields = %fields, "{msg}"),
        LogLevel::Debug => tracing::debug!(module, module_target = %target, fields = %fields, "{msg}"),
        LogLevel::Trace => tracing::trace!(module, module_target = %target, fields = %fields, "{msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::process::{MAX_LINE, TRUNCATED_MARKER};

    fn record(message: &str, target: &str, fields: &[(&str, &str)]) -> LogRecord {
        LogRecord {
            level: LogLevel::Info,
            target: target.into(),
            message: message.into(),
            fields: fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn a_log_line_escapes_message_target_and_fields() {
        let line = LogLine::new(&record("a\nb\x1b[2J", "t\r", &[("k\n", "v\x07"), ("z", "1")]));
        assert_eq!(line.message, "a\\nb\\x1b[2J");
        assert_eq!(line.target, "t\\r");
        assert_eq!(line.fields, "{k\\n=v\\x07, z=1}");
    }

    #[test]
    fn an_oversize_log_frame_is_cut_to_the_line_cap_and_marked() {
        let big = "x".repeat(4 << 20);
        let line = LogLine::new(&record(&big, "target", &[("k", "v")]));
        assert_eq!(line.message, format!("{}{TRUNCATED_MARKER}", "x".repeat(MAX_LINE)));
        assert_eq!((line.target.as_str(), line.fields.as_str()), ("", "{}"));
        // Many fields share the one budget too.
        let fields: Vec<(String, String)> = (0..10_000).map(|i| (format!("k{i:05}"), "v".repeat(10))).collect();
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let line = LogLine::new(&record("m", "t", &refs));
        assert!(line.message.ends_with(TRUNCATED_MARKER));
        assert!(line.fields.len() < 2 * MAX_LINE, "{}", line.fields.len());
    }
}
