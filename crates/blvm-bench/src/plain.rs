//! The plain stack: what a straightforward tokio service gives on this
//! machine, written here so that each system figure can be printed as a
//! ratio to it in the same round. Unix socket, frames of a `u32`
//! little-endian length and a MessagePack body (`rmp-serde`), tokio on
//! both sides (the node side on a 2-worker runtime, the client a
//! current-thread runtime in a child of this binary, `plain-client`, as
//! `bench-module` is).
//!
//! - Request/response: `Request { id, method }` answered by `Response {
//!   id, result }`; the server answers every request it has buffered
//!   before one write. The client awaits one request at a time (`rtt`) or
//!   runs 64 tasks over one connection, a writer task and a reader task
//!   matching answers by id (`inflight`), as a client library does.
//! - Event push: each event serialized and framed once, shared by
//!   subscribers as `Bytes`; a bounded queue (1024) per subscriber that
//!   drops when full (the publisher never blocks) and a writer task per
//!   subscriber that writes what is queued, up to 64 KiB per write. The
//!   client decodes every event.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// A request of the plain stack.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    id: u64,
    method: String,
}

/// An answer of the plain stack.
#[derive(Debug, Serialize, Deserialize)]
struct Response {
    id: u64,
    result: String,
}

/// The plain stack's `NewBlock` event.
#[derive(Debug, Serialize, Deserialize)]
struct PlainEvent {
    #[serde(with = "serde_bytes_compat")]
    block_hash: Vec<u8>,
    height: u64,
    #[serde(with = "serde_bytes_compat")]
    header: Vec<u8>,
}

/// Byte strings as MessagePack `bin` (not arrays of integers), without
/// the `serde_bytes` crate.
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Appends `value` framed (length, then MessagePack) to `out`.
fn frame<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write_named(out, value)?;
    let len = u32::try_from(out.len() - at - 4)?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Reads one frame's body into `buf`; `false` at EOF.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool, Error> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    buf.resize(u32::from_le_bytes(len) as usize, 0);
    r.read_exact(buf).await?;
    Ok(true)
}

/// The node side of the plain stack: its runtime and its request socket.
pub(crate) struct Server {
    rt: tokio::runtime::Runtime,
    rpc: PathBuf,
    dir: PathBuf,
}

impl Server {
    /// Starts the request/response server on `dir/plain.sock`.
    pub fn start(dir: &Path) -> Result<Server, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_io()
            .build()?;
        let rpc = dir.join("plain.sock");
        let listener = {
            let _guard = rt.enter();
            UnixListener::bind(&rpc)?
        };
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // A connection ends when its client does.
                tokio::spawn(async move {
                    let _ = answer(stream).await;
                });
            }
        });
        Ok(Server {
            rt,
            rpc,
            dir: dir.to_path_buf(),
        })
    }

    /// The request socket's path.
    pub fn rpc_path(&self) -> &Path {
        &self.rpc
    }

    /// Accepts `subscribers` connections on a fresh socket `name` (their
    /// clients connect after `connecting` is called with its path) and
    /// returns a publisher to them.
    pub fn subscribers(
        &self,
        name: &str,
        subscribers: usize,
        connecting: impl FnOnce(&Path) -> Result<(), Error>,
    ) -> Result<Publisher, Error> {
        let path = self.dir.join(format!("{name}.sock"));
        let listener = {
            let _guard = self.rt.enter();
            UnixListener::bind(&path)?
        };
        connecting(&path)?;
        let mut queues = Vec::new();
        let dropped = Arc::new(AtomicU64::new(0));
        for _ in 0..subscribers {
            let (stream, _) = self.rt.block_on(listener.accept())?;
            let (tx, rx) = mpsc::channel::<Bytes>(1024);
            self.rt.spawn(async move {
                let _ = push(stream, rx).await;
            });
            queues.push(tx);
        }
        let _ = std::fs::remove_file(&path);
        Ok(Publisher { queues, dropped })
    }
}

/// Answers the requests of one connection, one write per buffered batch.
async fn answer(stream: UnixStream) -> Result<(), Error> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let (mut body, mut out) = (Vec::new(), Vec::with_capacity(64 * 1024));
    while read_frame(&mut r, &mut body).await? {
        let req: Request = rmp_serde::from_slice(&body)?;
        let result = if req.method == "ping" { "pong" } else { "unknown" };
        frame(
            &mut out,
            &Response {
                id: req.id,
                result: result.into(),
            },
        )?;
        if r.buffer().is_empty() {
            w.write_all(&out).await?;
            out.clear();
        }
    }
    Ok(())
}

/// Writes one subscriber's queued events, up to 64 KiB per write.
async fn push(mut stream: UnixStream, mut rx: mpsc::Receiver<Bytes>) -> Result<(), Error> {
    let (mut batch, mut out) = (Vec::with_capacity(1024), Vec::with_capacity(64 * 1024));
    while rx.recv_many(&mut batch, 1024).await > 0 {
        for event in batch.drain(..) {
            out.extend_from_slice(&event);
            if out.len() >= 64 * 1024 {
                stream.write_all(&out).await?;
                out.clear();
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
    Ok(())
}

/// The publishing side of the plain event push.
pub(crate) struct Publisher {
    queues: Vec<mpsc::Sender<Bytes>>,
    dropped: Arc<AtomicU64>,
}

impl Publisher {
    /// Serializes and frames a `NewBlock` event once, for every
    /// subscriber.
    pub fn event(block_hash: &[u8], height: u64, header: &[u8]) -> Result<Bytes, Error> {
        let mut out = Vec::new();
        frame(
            &mut out,
            &PlainEvent {
                block_hash: block_hash.to_vec(),
                height,
                header: header.to_vec(),
            },
        )?;
        Ok(Bytes::from(out))
    }

    /// Queues `event` for every subscriber, dropping it for those whose
    /// queue is full: never blocks.
    pub fn publish(&self, event: &Bytes) {
        for q in &self.queues {
            if q.try_send(event.clone()).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far because a queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The plain stack's client (`blvm-bench plain-client <socket> <mode>
/// <n> [tasks]`): `rtt` (n sequential requests, prints p50 p99 total ns),
/// `inflight` (tasks × n requests, prints requests and total ns) or
/// `events` (counts events until height `u64::MAX`, prints count and ns
/// from the first to the last). Gated like the other children: `WARM`
/// before the span (after connecting, and for `rtt` a tenth as many
/// uncounted requests), `DONE` after the result.
pub(crate) fn client(path: &Path, mode: &str, n: usize, tasks: usize) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    rt.block_on(async {
        let stream = UnixStream::connect(path).await?;
        match mode {
            "rtt" => client_rtt(stream, n).await,
            "inflight" => client_inflight(stream, n, tasks).await,
            "events" => client_events(stream).await,
            other => Err(format!("unknown plain-client mode {other}").into()),
        }
    })
}

/// One request awaited at a time.
async fn client_rtt(stream: UnixStream, n: usize) -> Result<(), Error> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let (mut out, mut body) = (Vec::new(), Vec::new());
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n + n / 10 {
        if i == n / 10 {
            crate::rtt::hold("WARM")?;
        }
        let t = Instant::now();
        out.clear();
        frame(
            &mut out,
            &Request {
                id: i as u64,
                method: "ping".into(),
            },
        )?;
        w.write_all(&out).await?;
        if !read_frame(&mut r, &mut body).await? {
            return Err("the plain server closed".into());
        }
        let resp: Response = rmp_serde::from_slice(&body)?;
        if resp.id != i as u64 {
            return Err("answer out of order".into());
        }
        if i >= n / 10 {
            lat.push(t.elapsed().as_nanos() as u64);
        }
    }
    let total = start.elapsed().as_nanos();
    lat.sort_unstable();
    let at = |q: usize| lat.get(q).copied().unwrap_or(0);
    println!("{} {} {total}", at(n / 2), at(n * 99 / 100));
    crate::rtt::hold("DONE")
}

/// Answers awaited by id: the reader task's table.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// `tasks` tasks each awaiting `n` requests over one connection.
async fn client_inflight(stream: UnixStream, n: usize, tasks: usize) -> Result<(), Error> {
    let (r, mut w) = stream.into_split();
    let pending: Pending = Arc::default();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        let (mut batch, mut out) = (Vec::new(), Vec::new());
        while rx.recv_many(&mut batch, 256).await > 0 {
            for f in batch.drain(..) {
                out.extend_from_slice(&f);
            }
            if w.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
    });
    let table = pending.clone();
    let reader = tokio::spawn(async move {
        let mut r = BufReader::with_capacity(64 * 1024, r);
        let mut body = Vec::new();
        while let Ok(true) = read_frame(&mut r, &mut body).await {
            let Ok(resp) = rmp_serde::from_slice::<Response>(&body) else {
                break;
            };
            let waiter = table.lock().ok().and_then(|mut t| t.remove(&resp.id));
            if let Some(waiter) = waiter {
                let _ = waiter.send(resp);
            }
        }
    });
    crate::rtt::hold("WARM")?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (tx, pending, next) = (tx.clone(), pending.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..n {
                let id = next.fetch_add(1, Ordering::Relaxed);
                let (done, answer) = oneshot::channel();
                pending.lock().map_err(|_| "poisoned")?.insert(id, done);
                let mut out = Vec::new();
                frame(
                    &mut out,
                    &Request {
                        id,
                        method: "ping".into(),
                    },
                )
                .map_err(|e| e.to_string())?;
                tx.send(out).map_err(|_| "the writer ended")?;
                answer.await.map_err(|_| "no answer")?;
            }
            Ok::<_, String>(())
        }));
    }
    for h in handles {
        h.await.map_err(|e| e.to_string())??;
    }
    let total = start.elapsed().as_nanos();
    println!("{} {total}", tasks * n);
    drop(tx);
    let _ = writer.await;
    reader.abort();
    crate::rtt::hold("DONE")
}

/// Decodes and counts events until the end marker.
async fn client_events(stream: UnixStream) -> Result<(), Error> {
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    println!("READY");
    let mut body = Vec::new();
    let (mut count, mut first) = (0u64, None);
    while read_frame(&mut r, &mut body).await? {
        first.get_or_insert_with(Instant::now);
        let event: PlainEvent = rmp_serde::from_slice(&body)?;
        count += 1;
        if event.height == u64::MAX {
            break;
        }
    }
    let elapsed = first.map_or(0, |f: Instant| f.elapsed().as_nanos());
    println!("{count} {elapsed}");
    crate::rtt::hold("DONE")
}
