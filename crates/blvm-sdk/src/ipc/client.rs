//! [`ModuleIpcClient`]: the module's end of the socket.
//!
//! One reader task owns the read half and routes every frame: responses to
//! the request that waits for them (matched by correlation id, in any
//! order), events to the event queue, node invocations to the invocation
//! queue, `shutdown` to a watch. Requests are written by the caller when
//! nothing else is in flight (one `write`, no task hop: the latency path),
//! otherwise appended to a buffer that a writer task flushes with one
//! `write` for many frames (the throughput path). No lock is ever held
//! across an `.await`, so a request from the module and an invocation from
//! the node can always be in flight together.
//!
//! The one invocation that never reaches the invocation queue is the node's
//! `health_check`: the reader answers it itself, so a module is alive as
//! long as its connection is read, whether or not its code ever takes the
//! invocation receiver.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use blvm_module_protocol::frame::{decode_body, encode};
use blvm_module_protocol::methods::events::MAX_DURABLE_WINDOW;
use blvm_module_protocol::methods::invocation::HEALTH_CHECK;
use blvm_module_protocol::{
    Empty, ErrorCode, Frame, FrameDecoder, FrameError, Hello, LogRecord, RemoteError, Request, Shutdown, Welcome,
    DEFAULT_MAX_FRAME_LEN,
};
use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::error::SdkError;
use crate::events::{EventReceiver, ReceivedEvent};
use crate::invocation::{Invocation, InvocationReceiver};

/// Default capacity of the module-side event queue. It only takes memory
/// as it fills, so it is large: a module that handles events more slowly
/// than a burst arrives (an import, a reorg) catches up instead of losing
/// them. Events that arrive while it is full are dropped and counted
/// ([`ModuleIpcClient::dropped_events`]) and the node's sequence numbers
/// show the gap. Dropping here rather than waiting keeps responses flowing
/// when the module is not reading its events: a reader that waited could
/// deadlock a module that awaits a response in the task that reads events.
pub const DEFAULT_EVENT_BUFFER: usize = 65_536;

const READ_CHUNK: usize = 256 * 1024;

type Pending = oneshot::Sender<Result<Bytes, RemoteError>>;

#[derive(Default)]
struct Outgoing {
    buf: Vec<u8>,
    /// A writer task owns the socket's write side until `buf` is empty.
    flushing: bool,
    /// Bytes ever accepted for sending; [`ModuleIpcClient::flush`] waits
    /// until `Inner::written` reaches the value it saw.
    appended: u64,
}

struct Inner {
    fd: AsyncFd<UnixStream>,
    out: Mutex<Outgoing>,
    flush: Notify,
    /// Bytes ever written to the socket (direct writes and the writer
    /// task's), for [`ModuleIpcClient::flush`]. An atomic, not a watch:
    /// it is bumped on every request's write, where a watch's lock and
    /// wake-up would cost the round trip for the rare caller that flushes.
    written: AtomicU64,
    /// Woken when `written` moves while someone is flushing.
    written_notify: Notify,
    /// How many `flush` calls are waiting.
    flushing_waiters: std::sync::atomic::AtomicUsize,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    handshake: Mutex<Option<oneshot::Sender<Result<Welcome, SdkError>>>>,
    /// Taken (dropped) when the connection closes, so that the
    /// [`EventReceiver`] ends with `None` once it has taken what is queued.
    events_tx: Mutex<Option<mpsc::Sender<ReceivedEvent>>>,
    events_rx: Mutex<Option<mpsc::Receiver<ReceivedEvent>>>,
    dropped_events: AtomicU64,
    /// Taken on close, like `events_tx`.
    invocations_tx: Mutex<Option<mpsc::UnboundedSender<Invocation>>>,
    invocations_rx: Mutex<Option<mpsc::UnboundedReceiver<Invocation>>>,
    shutdown: watch::Sender<Option<Shutdown>>,
}

impl Inner {
    /// Counts bytes that left for the socket and wakes `flush` callers.
    fn wrote(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::SeqCst);
        if self.flushing_waiters.load(Ordering::SeqCst) > 0 {
            self.written_notify.notify_waiters();
        }
    }
}

// Each critical section is a push, take or map update with no await and
// no panic path in between, so a poisoned lock still guards valid data.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection to the node's module socket. Cheap to clone; every clone
/// shares the one connection.
#[derive(Clone)]
pub struct ModuleIpcClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ModuleIpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleIpcClient")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl ModuleIpcClient {
    /// Connects to the node's socket. Must be called inside a tokio
    /// runtime; the handshake is a separate step
    /// ([`ModuleIpcClient::handshake`]).
    pub async fn connect(socket_path: impl AsRef<Path>) -> Result<ModuleIpcClient, SdkError> {
        Self::connect_with(socket_path, DEFAULT_EVENT_BUFFER).await
    }

    /// Connects with a module-side event queue of `event_buffer` entries.
    pub async fn connect_with(socket_path: impl AsRef<Path>, event_buffer: usize) -> Result<ModuleIpcClient, SdkError> {
        let stream = UnixStream::connect(socket_path)?;
        stream.set_nonblocking(true)?;
        // Room beyond `event_buffer` that only durable events may take:
        // the node sends at most MAX_DURABLE_WINDOW unacknowledged, so one
        // always fits and none is ever dropped here.
        let (events_tx, events_rx) = mpsc::channel(event_buffer.max(1) + MAX_DURABLE_WINDOW);
        let (invocations_tx, invocations_rx) = mpsc::unbounded_channel();
        // Registered for reading only. With write interest too, every send
        // raises an edge-triggered EPOLLOUT that wakes the reactor for
        // nothing: two `epoll_wait`s per round trip instead of one. Writes
        // normally succeed at once; the rare one that would block waits on
        // a temporary registration (`wait_writable`).
        let fd = register(stream, Interest::READABLE)?;
        let inner = Arc::new(Inner {
            fd,
            out: Mutex::new(Outgoing::default()),
            flush: Notify::new(),
            written: AtomicU64::new(0),
            written_notify: Notify::new(),
            flushing_waiters: std::sync::atomic::AtomicUsize::new(0),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            handshake: Mutex::new(None),
            events_tx: Mutex::new(Some(events_tx)),
            events_rx: Mutex::new(Some(events_rx)),
            dropped_events: AtomicU64::new(0),
            invocations_tx: Mutex::new(Some(invocations_tx)),
            invocations_rx: Mutex::new(Some(invocations_rx)),
            shutdown: watch::channel(None).0,
        });
        tokio::spawn(read_loop(Arc::clone(&inner)));
        tokio::spawn(write_loop(Arc::clone(&inner)));
        Ok(ModuleIpcClient { inner })
    }

    /// Sends `hello` and waits for `welcome`.
    ///
    /// # Errors
    ///
    /// [`SdkError::Refused`] with the node's code and reason.
    pub async fn handshake(&self, hello: &Hello) -> Result<Welcome, SdkError> {
        let (tx, rx) = oneshot::channel();
        *lock(&self.inner.handshake) = Some(tx);
        let mut frame = Vec::new();
        encode::control(&mut frame, "hello", hello)?;
        self.send_frame(&frame, false)?;
        rx.await.unwrap_or(Err(SdkError::ConnectionClosed))
    }

    /// Sends a request and waits for its raw result.
    pub async fn request_raw<P: Serialize + ?Sized>(&self, method: &str, params: &P) -> Result<Bytes, SdkError> {
        let inner = &self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let in_flight = {
            let mut pending = lock(&inner.pending);
            pending.insert(id, tx);
            pending.len()
        };
        // The reader sets `closed` before it drains `pending`; checking
        // after the insert means we either are drained or see the flag.
        if self.is_closed() {
            lock(&inner.pending).remove(&id);
            return Err(SdkError::ConnectionClosed);
        }
        let sent = {
            let mut out = lock(&inner.out);
            let start = out.buf.len();
            match encode::request(&mut out.buf, id, method, params) {
                Ok(()) => self.kick(&mut out, start, in_flight == 1),
                Err(e) => Err(SdkError::Encode(e)),
            }
        };
        if let Err(e) = sent {
            lock(&inner.pending).remove(&id);
            return Err(e);
        }
        match rx.await {
            Ok(result) => result.map_err(SdkError::Remote),
            Err(_) => Err(SdkError::ConnectionClosed),
        }
    }

    /// Sends a request and decodes its result as `R`.
    pub async fn request<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, SdkError> {
        let raw = self.request_raw(method, params).await?;
        Ok(decode_body("result", &raw)?)
    }

    /// Sends a log line for the node to record under this module's name.
    ///
    /// Written at once when nothing else is being written, else queued
    /// behind what is. A module about to exit should await
    /// [`ModuleIpcClient::flush`] first, or its last lines may be lost.
    pub fn log(&self, record: &LogRecord) -> Result<(), SdkError> {
        let mut frame = Vec::new();
        encode::control(&mut frame, "log", record)?;
        self.send_frame(&frame, true)
    }

    /// Waits until every frame sent or queued before this call (requests,
    /// logs, answers to invocations) has been written to the socket. It
    /// does not wait for the node to handle them, only for the bytes to
    /// leave this process, which is what a module needs before it exits:
    ///
    /// ```no_run
    /// # async fn run(client: blvm_sdk::ModuleIpcClient, record: blvm_sdk::protocol::LogRecord) -> Result<(), blvm_sdk::SdkError> {
    /// client.log(&record)?;
    /// client.flush().await?;
    /// std::process::exit(0);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SdkError::ConnectionClosed`] if the connection ended before all
    /// of it was written.
    pub async fn flush(&self) -> Result<(), SdkError> {
        let target = lock(&self.inner.out).appended;
        let inner = &self.inner;
        inner.flushing_waiters.fetch_add(1, Ordering::SeqCst);
        let reached = loop {
            // Register interest before checking, so a write between the
            // check and the await still wakes this waiter.
            let notified = inner.written_notify.notified();
            if inner.written.load(Ordering::SeqCst) >= target {
                break true;
            }
            if self.is_closed() {
                break false;
            }
            notified.await;
        };
        inner.flushing_waiters.fetch_sub(1, Ordering::SeqCst);
        if reached {
            Ok(())
        } else {
            Err(SdkError::ConnectionClosed)
        }
    }

    /// Answers a node invocation.
    pub(crate) fn respond(&self, id: u64, result: Result<Vec<u8>, RemoteError>) -> Result<(), SdkError> {
        let mut frame = Vec::new();
        match result {
            Ok(bytes) => encode::response_raw(&mut frame, id, &bytes),
            Err(e) => encode::response_err(&mut frame, id, &e)?,
        }
        self.send_frame(&frame, true)
    }

    /// Appends a complete frame and makes sure it gets written.
    fn send_frame(&self, frame: &[u8], direct: bool) -> Result<(), SdkError> {
        let mut out = lock(&self.inner.out);
        let start = out.buf.len();
        out.buf.extend_from_slice(frame);
        self.kick(&mut out, start, direct)
    }

    /// Gets the bytes appended at `start` onto the socket: written now when
    /// `direct` and nothing else is being written, else by the writer task.
    fn kick(&self, out: &mut Outgoing, start: usize, direct: bool) -> Result<(), SdkError> {
        if self.is_closed() {
            out.buf.truncate(start);
            return Err(SdkError::ConnectionClosed);
        }
        out.appended += (out.buf.len() - start) as u64;
        if out.flushing {
            return Ok(());
        }
        if direct && start == 0 {
            match self.inner.fd.get_ref().write(&out.buf) {
                Ok(n) if n == out.buf.len() => {
                    out.buf.clear();
                    self.inner.wrote(n);
                    return Ok(());
                }
                Ok(n) => {
                    out.buf.drain(..n);
                    self.inner.wrote(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    out.appended -= (out.buf.len() - start) as u64;
                    out.buf.truncate(start);
                    return Err(SdkError::Io(e));
                }
            }
        }
        out.flushing = true;
        self.inner.flush.notify_one();
        Ok(())
    }

    /// Takes the event receiver. Events that arrived before are kept.
    pub fn event_receiver(&self) -> Result<EventReceiver, SdkError> {
        lock(&self.inner.events_rx)
            .take()
            .map(EventReceiver::new)
            .ok_or(SdkError::AlreadyTaken("event"))
    }

    /// Takes the receiver of node invocations (RPC calls, module calls,
    /// timer fires). Invocations that arrive before it is taken wait for
    /// it (one may arrive right after the handshake); once it is dropped,
    /// they are answered `method_not_found`. The node's `health_check` is
    /// never queued here: the SDK answers it as it reads the socket.
    pub fn invocation_receiver(&self) -> Result<InvocationReceiver, SdkError> {
        let rx = lock(&self.inner.invocations_rx)
            .take()
            .ok_or(SdkError::AlreadyTaken("invocation"))?;
        Ok(InvocationReceiver::new(rx))
    }

    /// Events dropped on the module side because the event queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.inner.dropped_events.load(Ordering::Relaxed)
    }

    /// Waits until the node sends `shutdown` (or the connection closes, in
    /// which case `None`).
    pub async fn shutdown_requested(&self) -> Option<Shutdown> {
        let mut rx = self.inner.shutdown.subscribe();
        loop {
            if let Some(s) = rx.borrow_and_update().clone() {
                return Some(s);
            }
            if self.is_closed() || rx.changed().await.is_err() {
                return rx.borrow().clone();
            }
        }
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Closes the connection.
    pub fn close(&self) {
        let _ = self.inner.fd.get_ref().shutdown(std::net::Shutdown::Both);
    }
}

async fn write_loop(inner: Arc<Inner>) {
    let mut chunk = Vec::new();
    loop {
        inner.flush.notified().await;
        loop {
            {
                let mut out = lock(&inner.out);
                if out.buf.is_empty() {
                    out.flushing = false;
                    break;
                }
                std::mem::swap(&mut out.buf, &mut chunk);
            }
            if write_all(&inner.fd, &chunk).await.is_err() {
                // The reader notices the dead socket and fails what waits
                // (`close_inner` also wakes `flush`).
                let _ = inner.fd.get_ref().shutdown(std::net::Shutdown::Both);
                return;
            }
            inner.wrote(chunk.len());
            chunk.clear();
        }
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Registers `stream` with the reactor for `interest`.
fn register(stream: UnixStream, interest: Interest) -> std::io::Result<AsyncFd<UnixStream>> {
    // SAFETY: `register_with_interest` needs the fd to stay open and the
    // same for the AsyncFd's life. The AsyncFd owns the `UnixStream`, which
    // owns the fd and closes it only when dropped with the AsyncFd; nothing
    // here ever replaces or closes the fd behind it (`shutdown` keeps it
    // open).
    #[allow(unsafe_code)]
    let fd = unsafe { AsyncFd::register_with_interest(stream, interest) };
    fd.map_err(std::io::Error::from)
}

/// Waits until the socket can take more bytes, through a registration
/// made for this wait only (see `connect_with` for why the connection's
/// own registration has no write interest). Registering an edge-triggered
/// fd that is already writable reports it at once, so space that freed up
/// between the failed write and this call is not missed.
async fn wait_writable(fd: &AsyncFd<UnixStream>) -> std::io::Result<()> {
    let temporary = register(fd.get_ref().try_clone()?, Interest::WRITABLE)?;
    let _guard = temporary.writable().await?;
    Ok(())
}

async fn write_all(fd: &AsyncFd<UnixStream>, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match fd.get_ref().write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => wait_writable(fd).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn read_loop(inner: Arc<Inner>) {
    let decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let client = ModuleIpcClient {
        inner: Arc::clone(&inner),
    };
    'outer: loop {
        let n = {
            let mut guard = match inner.fd.readable().await {
                Ok(g) => g,
                Err(_) => break,
            };
            match guard.get_inner().read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    // A short read drained the socket: clear readiness now
                    // rather than paying for an EAGAIN read. Data arriving
                    // after the read raises a new edge, which tokio's tick
                    // check keeps from being lost.
                    if n < chunk.len() {
                        guard.clear_ready();
                    }
                    n
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let frame = match decoder.next_payload(&mut buf) {
                // Events are most of what arrives: their fast path first,
                // the general decoder for everything it leaves.
                Ok(Some(payload)) => match super::event_frame::decode_node_event(&payload) {
                    Some(event) => Ok(Frame::Event(event)),
                    None => Frame::decode(payload).map_err(FrameError::from),
                },
                Ok(None) => break,
                Err(e) => Err(e),
            };
            match frame {
                Ok(frame) => dispatch(&client, frame),
                Err(e) => {
                    tracing::error!(error = %e, "undecodable frame from the node; closing");
                    break 'outer;
                }
            }
        }
    }
    close_inner(&inner);
}

fn close_inner(inner: &Inner) {
    inner.closed.store(true, Ordering::SeqCst);
    let _ = inner.fd.get_ref().shutdown(std::net::Shutdown::Both);
    let pending: Vec<_> = lock(&inner.pending).drain().collect();
    for (_, tx) in pending {
        let _ = tx.send(Err(RemoteError::new(
            ErrorCode::ConnectionClosed,
            "connection to the node closed",
        )));
    }
    if let Some(tx) = lock(&inner.handshake).take() {
        let _ = tx.send(Err(SdkError::ConnectionClosed));
    }
    // Dropping the senders ends both receivers once they are drained.
    // Invocations still queued hold a client (and so `Inner`), which is why
    // the senders must go rather than wait for `Inner` to drop.
    lock(&inner.events_tx).take();
    lock(&inner.invocations_tx).take();
    inner.shutdown.send_modify(|_| {});
    inner.written_notify.notify_waiters();
    inner.flush.notify_one();
}

fn dispatch(client: &ModuleIpcClient, frame: Frame) {
    let inner = &client.inner;
    match frame {
        Frame::Response(r) => {
            if let Some(tx) = lock(&inner.pending).remove(&r.id) {
                let _ = tx.send(r.result);
            }
        }
        Frame::Event(e) => {
            let event = match e.event() {
                Ok(ev) => ev,
                Err(err) => {
                    tracing::warn!(event = %e.name, error = %err, "undecodable event payload dropped");
                    inner.dropped_events.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let durable = e.durable.is_some();
            let sent = match lock(&inner.events_tx).as_ref() {
                // An at-most-once event may not take the durable room.
                Some(tx) if !durable && tx.capacity() <= MAX_DURABLE_WINDOW => false,
                Some(tx) => tx
                    .try_send(ReceivedEvent {
                        seq: e.seq,
                        event,
                        origin: e.origin,
                        durable: e.durable,
                    })
                    .is_ok(),
                None => false,
            };
            if !sent && durable {
                // Cannot happen while the node keeps its window; if it
                // does, closing makes the node resend it, where dropping
                // it would let a later ack skip it.
                tracing::error!(event = %e.name, "no room for a durable event; closing the connection");
                close_inner(&client.inner);
            } else if !sent {
                inner.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
        }
        Frame::Request(request) => dispatch_invocation(client, request),
        Frame::Welcome(w) => {
            if let Some(tx) = lock(&inner.handshake).take() {
                let _ = tx.send(Ok(w));
            }
        }
        Frame::Refused(r) => {
            if let Some(tx) = lock(&inner.handshake).take() {
                let _ = tx.send(Err(SdkError::Refused {
                    code: r.code,
                    reason: r.reason,
                }));
            }
        }
        Frame::Shutdown(s) => {
            inner.shutdown.send_replace(Some(s));
        }
        Frame::Hello(_) | Frame::Log(_) | Frame::Unknown { .. } => {}
    }
}

fn dispatch_invocation(client: &ModuleIpcClient, request: Request) {
    if request.method == HEALTH_CHECK {
        // Answered here, by the task that reads the socket: what the node
        // checks is that the connection is served, and a module that never
        // takes its invocation receiver (it only follows events, say) is
        // as alive as one that does. A module whose runtime is blocked
        // does not get here, and does not answer, which is the point.
        let mut result = Vec::new();
        if encode::body(&mut result, "result", &Empty {}).is_ok() {
            let _ = client.respond(request.id, Ok(result));
        }
        return;
    }
    let inner = &client.inner;
    let invocation = Invocation::new(client.clone(), request);
    // Sent under the lock so that `close_inner` cannot drop the sender in
    // between; a rejected invocation is answered after the lock is gone.
    let rejected = match lock(&inner.invocations_tx).as_ref() {
        Some(tx) => tx.send(invocation).err().map(|mpsc::error::SendError(i)| i),
        None => Some(invocation),
    };
    if let Some(invocation) = rejected {
        let error = RemoteError::method_not_found(invocation.method());
        invocation.reject(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_to_a_missing_socket_is_an_io_error() {
        let err = ModuleIpcClient::connect("/nonexistent/blvm.sock").await.unwrap_err();
        assert!(matches!(err, SdkError::Io(_)));
    }
}
