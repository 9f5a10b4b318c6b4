//! The readers of a module's stdout and stderr.
//!
//! A pipe holds 64 KiB; a child that fills it blocks in `write` until
//! someone reads (pitfalls #10). So each pipe gets its own thread that reads
//! until end of file and never does anything else that could stall: each
//! line goes to `tracing` (stdout at info, stderr at warn, with the module's
//! name), and a line longer than [`MAX_LINE`] is cut there, marked, and the
//! rest of it discarded, so memory stays bounded whatever the module writes.
//!
//! End of file comes when every holder of the write end is gone, which
//! includes descendants of the module, so a reader can outlive the main
//! process until the whole tree is killed. The threads are detached: joining
//! them could hang on a descendant that escaped teardown.

use std::io::{self, Read};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Longest line, in bytes, re-emitted as is.
pub const MAX_LINE: usize = 8 * 1024;

/// The marker appended to a line cut at [`MAX_LINE`].
pub const TRUNCATED_MARKER: &str = " [line truncated]";

/// Which of the module's output streams a reader serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// Splits a byte stream into lines of at most `max` bytes, without I/O, so
/// the cutting rules are testable alone.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    line: Vec<u8>,
    max: usize,
    /// Bytes of the current over-long line thrown away so far; nonzero means
    /// "skip until the next newline".
    dropped: u64,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> LineSplitter {
        LineSplitter {
            line: Vec::with_capacity(256),
            max,
            dropped: 0,
        }
    }

    /// Feeds bytes; calls `emit(line, truncated)` for each finished line.
    pub(crate) fn push(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|b| *b == b'\n');
            let (chunk, rest, ends_line) = match newline {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &bytes[bytes.len()..], false),
            };
            if self.dropped > 0 {
                self.dropped = self.dropped.saturating_add(chunk.len() as u64);
            } else {
                let room = self.max - self.line.len();
                if chunk.len() > room {
                    self.line.extend_from_slice(&chunk[..room]);
                    emit(&self.line, true);
                    self.line.clear();
                    // Nonzero, since chunk.len() > room: the skip state is on.
                    self.dropped = (chunk.len() - room) as u64;
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            if ends_line {
                if self.dropped == 0 {
                    emit(&self.line, false);
                }
                self.line.clear();
                self.dropped = 0;
            }
            bytes = rest;
        }
    }

    /// Emits a last line that had no newline before end of file.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.line.is_empty() {
            emit(&self.line, false);
            self.line.clear();
        }
    }
}

/// Logs one line of module output.
fn log_line(module: &str, stream: Stream, line: &[u8], truncated: bool) {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let marker = if truncated { TRUNCATED_MARKER } else { "" };
    match stream {
        Stream::Stdout => tracing::info!(module, stream = "stdout", "{text}{marker}"),
        Stream::Stderr => tracing::warn!(module, stream = "stderr", "{text}{marker}"),
    }
}

/// Starts the thread that drains one pipe of the module `module` into the
/// log until end of file.
pub(crate) fn spawn_reader(
    pipe: impl Read + Send + 'static,
    module: Arc<str>,
    stream: Stream,
) -> io::Result<JoinHandle<()>> {
    let tag = match stream {
        Stream::Stdout => "out",
        Stream::Stderr => "err",
    };
    let thread_name = format!("m{tag}-{module}");
    let log = move |line: &[u8], truncated: bool| log_line(&module, stream, line, truncated);
    spawn_drain(pipe, thread_name, log)
}

/// Starts a thread that reads `pipe` until end of file and hands each line
/// to `emit(line, truncated)`.
fn spawn_drain(
    mut pipe: impl Read + Send + 'static,
    thread_name: String,
    mut emit: impl FnMut(&[u8], bool) + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    // Linux keeps 15 bytes of a thread name; std truncates, but panics on NUL.
    let thread_name: String = thread_name.chars().filter(|c| *c != '\0').collect();
    std::thread::Builder::new().name(thread_name.clone()).spawn(move || {
        let mut splitter = LineSplitter::new(MAX_LINE);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => splitter.push(&buf[..n], &mut emit),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Only a broken pipe fd can get here; the module now gets
                    // EPIPE on write rather than blocking, so nothing hangs.
                    tracing::error!(thread = %thread_name, error = %e, "cannot read module output");
                    break;
                }
            }
        }
        splitter.finish(&mut emit);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut s = LineSplitter::new(max);
        let mut emit = |l: &[u8], t: bool| out.push((String::from_utf8_lossy(l).into_owned(), t));
        for c in chunks {
            s.push(c, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn lines_across_chunks() {
        let got = split(8, &[b"ab", b"c\nde", b"\n\nf"]);
        let want = [("abc", false), ("de", false), ("", false), ("f", false)];
        assert_eq!(got, want.map(|(s, t)| (s.to_owned(), t)));
    }

    #[test]
    fn long_line_is_cut_and_rest_dropped() {
        let got = split(4, &[b"abcdefgh", b"ijk\nxy\n"]);
        assert_eq!(got, vec![("abcd".to_owned(), true), ("xy".to_owned(), false)]);
        // Exactly max bytes is not truncated.
        assert_eq!(split(4, &[b"abcd\n"]), vec![("abcd".to_owned(), false)]);
        // One past max is.
        assert_eq!(
            split(4, &[b"abcde\nz"]),
            vec![("abcd".to_owned(), true), ("z".to_owned(), false)]
        );
        // Cut exactly at a chunk boundary, the rest arriving later.
        assert_eq!(
            split(4, &[b"abcd", b"e", b"f\ng\n"]),
            vec![("abcd".to_owned(), true), ("g".to_owned(), false)]
        );
    }

    #[test]
    fn reader_drains_a_real_pipe_to_the_end() {
        let mut child = std::process::Command::new("/bin/sh")
            .args([
                "-c",
                "yes ab | head -n 100000; head -c 100000 /dev/zero | tr '\\0' x; echo; printf tail",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn /bin/sh");
        let pipe = child.stdout.take().expect("stdout is piped");
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = spawn_drain(pipe, "test".into(), move |l, t| {
            sink.lock()
                .expect("not poisoned")
                .push((l.len(), t, l.first().copied()))
        })
        .expect("spawn reader");
        reader.join().expect("reader does not panic");
        assert!(child.wait().expect("reap").success());
        let lines = lines.lock().expect("not poisoned");
        assert_eq!(lines.len(), 100_002);
        assert!(lines[..100_000].iter().all(|l| *l == (2, false, Some(b'a'))));
        assert_eq!(lines[100_000], (MAX_LINE, true, Some(b'x')));
        assert_eq!(lines[100_001], (4, false, Some(b't')));
    }

    #[test]
    fn memory_stays_bounded_without_newlines() {
        let mut s = LineSplitter::new(MAX_LINE);
        let mut count = 0;
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..100 {
            s.push(&chunk, &mut |_, _| count += 1);
        }
        assert_eq!(count, 1);
        assert!(s.line.capacity() <= MAX_LINE.max(256) * 2);
    }
}
