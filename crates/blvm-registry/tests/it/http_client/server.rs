//! HTTP/1.1 servers written by hand on a loopback port, honest or hostile
//! on purpose: each connection gets one request and an answer from a
//! handler, then is closed.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// How long a test waits for the server to have served a request.
const DEADLINE: Duration = Duration::from_secs(60);

/// The send buffer of the server's sockets: small, so that what the
/// server counts as sent is close to what the client took.
pub const SEND_BUFFER: usize = 16 * 1024;

/// A request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request target, e.g. `/metadata/timestamp.json`.
    pub path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// N of `Range: bytes=N-`.
    pub fn range_start(&self) -> Option<u64> {
        self.header("range")?
            .strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse()
            .ok()
    }
}

/// One connection, served: its request, what the handler wrote before it
/// returned or its write failed (the client closed), and the handler's
/// error if any.
#[derive(Debug)]
pub struct Served {
    pub request: Request,
    pub sent: u64,
    pub error: Option<io::ErrorKind>,
}

/// The client side of a connection, counting the bytes written to it.
pub struct Conn {
    stream: TcpStream,
    sent: u64,
}

impl Conn {
    /// Writes `bytes` whole.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        // Byte counts must be what the socket took, so no write_all
        // around a partial write that failed half way.
        let mut rest = bytes;
        while !rest.is_empty() {
            let written = self.stream.write(rest)?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.sent += written as u64;
            rest = &rest[written..];
        }
        Ok(())
    }

    /// The slow-retrieval attack: `bytes` one at a time, `every` apart.
    /// The pause is a wait for the client to hang up (a read with `every`
    /// as its timeout), so the trickle ends as soon as the client gives up.
    pub fn trickle(&mut self, bytes: &[u8], every: std::time::Duration) -> io::Result<()> {
        use std::io::Read;
        self.stream.set_read_timeout(Some(every))?;
        for byte in bytes {
            self.send(std::slice::from_ref(byte))?;
            match self.stream.read(&mut [0u8; 64]) {
                // The client closed: the attack is over.
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes the status line and `headers`, then `Connection: close`.
    pub fn head(&mut self, status: &str, headers: &[(&str, String)]) -> io::Result<()> {
        let mut head = format!("HTTP/1.1 {status}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        self.send(head.as_bytes())
    }

    /// Sends `bytes` as a whole answer.
    pub fn ok(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.head("200 OK", &[("Content-Length", bytes.len().to_string())])?;
        self.send(bytes)
    }

    /// Sends `bytes` from `start` as a 206 of a file `total` bytes long.
    pub fn partial(&mut self, start: u64, bytes: &[u8], total: u64) -> io::Result<()> {
        let end = start + bytes.len() as u64 - 1;
        self.head(
            "206 Partial Content",
            &[
                ("Content-Length", bytes.len().to_string()),
                ("Content-Range", format!("bytes {start}-{end}/{total}")),
            ],
        )?;
        self.send(bytes)
    }

    /// A 404.
    pub fn not_found(&mut self) -> io::Result<()> {
        self.head("404 Not Found", &[("Content-Length", "0".to_owned())])
    }

    /// Sends `filler` over and over, `total` bytes in all: "endless" data,
    /// finite so that a client that reads it all ends (and fails its test).
    pub fn endless(&mut self, filler: u8, total: u64) -> io::Result<()> {
        let chunk = vec![filler; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            self.send(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Waits until the client closes the connection.
    pub fn wait_for_close(&mut self) -> io::Result<()> {
        let mut byte = [0u8; 1];
        while io::Read::read(&mut self.stream, &mut byte)? > 0 {}
        Ok(())
    }
}

type Handler = dyn Fn(&Request, &mut Conn) -> io::Result<()> + Send + Sync;

/// A server on a loopback port.
pub struct Server {
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    served: mpsc::Receiver<Served>,
}

impl Server {
    /// Serves each connection with `handler`, on a thread of its own.
    pub fn start(handler: impl Fn(&Request, &mut Conn) -> io::Result<()> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}/", listener.local_addr().expect("bound"));
        let handler: Arc<Handler> = Arc::new(handler);
        let (tx, served) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = Arc::clone(&handler);
                let tx = tx.clone();
                std::thread::spawn(move || {
                    if let Some(served) = serve(stream, &*handler) {
                        let _ = tx.send(served);
                    }
                });
            }
        });
        Self { url, served }
    }

    /// Serves the `metadata/` and `targets/` trees of `dir` (with ranges),
    /// as a registry does.
    pub fn directory(dir: PathBuf) -> Self {
        Self::start(move |request, conn| serve_file(&dir, request, conn))
    }

    /// The next connection served, in the order they ended.
    pub fn next_served(&self) -> Served {
        self.served
            .recv_timeout(DEADLINE)
            .expect("the server served a request before the deadline")
    }

    /// Every connection served so far, without waiting.
    pub fn served_so_far(&self) -> Vec<Served> {
        self.served.try_iter().collect()
    }
}

/// Answers `request` with the file of `dir` at its path (with ranges), or
/// a 404: what an honest registry does.
pub fn serve_file(dir: &Path, request: &Request, conn: &mut Conn) -> io::Result<()> {
    let file = request
        .path
        .strip_prefix('/')
        .filter(|path| !path.split('/').any(|part| part == ".."))
        .map(|path| dir.join(path));
    let Some(Ok(bytes)) = file.map(std::fs::read) else {
        return conn.not_found();
    };
    match request.range_start() {
        Some(start) if (start as usize) < bytes.len() => {
            conn.partial(start, &bytes[start as usize..], bytes.len() as u64)
        }
        _ => conn.ok(&bytes),
    }
}

fn serve(stream: TcpStream, handler: &Handler) -> Option<Served> {
    rustix::net::sockopt::set_socket_send_buffer_size(&stream, SEND_BUFFER).ok()?;
    let request = read_request(&stream).ok()?;
    let mut conn = Conn { stream, sent: 0 };
    let error = handler(&request, &mut conn).err().map(|e| e.kind());
    let _ = conn.stream.flush();
    Some(Served {
        request,
        sent: conn.sent,
        error,
    })
}

fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    Ok(Request { path, headers })
}
