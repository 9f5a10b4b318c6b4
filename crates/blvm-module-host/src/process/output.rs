//! A module's text made into the node's log lines: the readers of its
//! stdout and stderr, and the one cap and escaping every line of module text
//! gets, whether it came through a pipe or a `log` frame.
//!
//! A pipe holds 64 KiB; a child that fills it blocks in `write` until
//! someone reads (pitfalls #10). So each pipe gets its own thread that reads
//! until end of file and never does anything else that could stall: each
//! line goes to `tracing` (stdout at info, stderr at warn, with the module's
//! name), and a line longer than [`MAX_LINE`] is cut there, marked, and the
//! rest of it discarded, so memory stays bounded whatever the module writes.
//!
//! # One module line, one log line
//!
//! Module text is untrusted. A newline in it would start a line of the
//! node's log that the module wrote entirely (`INFO blvm_node: …`), a
//! carriage return would overwrite what a terminal shows, and an escape
//! sequence would recolour or hide it. So before any of it reaches
//! `tracing`, [`escape_into`] writes every control character (C0, DEL and
//! C1, CR and LF among them), the Unicode line and paragraph separators and
//! the bidirectional-text controls as visible escapes (`\n`, `\r`, `\t`,
//! `\x1b`, `\u{2028}`), and a backslash as `\\` so that the escaping can be
//! undone without ambiguity: a module cannot fake an escape either.
//! Whatever subscriber the node installs then writes one line per module
//! line. [`LineBudget`] caps a `log` frame (message, target and fields
//! together) at the same [`MAX_LINE`] bytes as a pipe line.
//!
//! End of file comes when every holder of the write end is gone, which
//! includes descendants of the module, so a reader can outlive the main
//! process until the whole tree is killed. The threads are detached: joining
//! them could hang on a descendant that escaped teardown.

use std::io::{self, Read};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Longest line of module text, in bytes before escaping, that reaches the
/// log whole: a stdout or stderr line, or a `log` frame's message, target
/// and fields together. The one cap on both.
pub const MAX_LINE: usize = 8 * 1024;

/// The marker appended to a line cut at [`MAX_LINE`].
pub const TRUNCATED_MARKER: &str = " [line truncated]";

/// Appends `text` to `out` with every character that could break a log line
/// or drive a terminal written as a visible escape (see the module docs).
/// Everything else is copied as is.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // C0 and DEL: `\x1b`.
            '\0'..='\x1f' | '\x7f' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            // C1 (`\u{9b}` is a one-byte CSI to some terminals), the line and
            // paragraph separators some viewers break lines at, and the
            // bidirectional controls that reorder what the reader sees.
            c if c.is_control() || is_separator_or_bidi(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// U+2028, U+2029, and the bidirectional formatting characters (ALM, LRM,
/// RLM, the embeddings and overrides, the isolates).
fn is_separator_or_bidi(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The [`MAX_LINE`] bytes one log line may carry of a module's text, spent
/// piece by piece (a `log` frame's message, then its target, then its
/// fields): what does not fit is cut at a character boundary and the line
/// is then marked [truncated](LineBudget::is_truncated).
#[derive(Debug)]
pub(crate) struct LineBudget {
    left: usize,
    truncated: bool,
}

impl LineBudget {
    /// A budget of [`MAX_LINE`] bytes.
    pub(crate) fn new() -> LineBudget {
        LineBudget::with(MAX_LINE)
    }

    fn with(bytes: usize) -> LineBudget {
        LineBudget {
            left: bytes,
            truncated: false,
        }
    }

    /// Escapes as much of `text` into `out` as the budget has left.
    pub(crate) fn push(&mut self, out: &mut String, text: &str) {
        let mut end = text.len().min(self.left);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if end < text.len() {
            self.truncated = true;
        }
        self.left -= end;
        escape_into(out, &text[..end]);
    }

    /// Whether nothing is left: anything more would be cut.
    pub(crate) fn is_spent(&self) -> bool {
        self.left == 0
    }

    /// Records that something was left out without being pushed.
    pub(crate) fn mark_truncated(&mut self) {
        self.truncated = true;
    }

    /// Whether anything was cut.
    pub(crate) fn is_truncated(&self) -> bool {
        self.truncated
    }
}

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

/// Logs one line of module output, escaped.
fn log_line(module: &str, stream: Stream, line: &[u8], truncated: bool) {
    let raw = String::from_utf8_lossy(line);
    // A CRLF line ending is a line ending, not text to show.
    let raw = raw.strip_suffix('\r').unwrap_or(&raw);
    let mut text = String::with_capacity(raw.len());
    escape_into(&mut text, raw);
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

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        escape_into(&mut out, text);
        out
    }

    #[test]
    fn line_breaks_terminal_controls_and_backslashes_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escaped("a\nINFO blvm_node: forged\r\x1b[31mred\x1b[0m\t\0\x7f"),
            "a\\nINFO blvm_node: forged\\r\\x1b[31mred\\x1b[0m\\t\\x00\\x7f"
        );
        // C1 (NEL, CSI), the line separator and a bidi override.
        assert_eq!(
            escaped("\u{85}\u{9b}\u{2028}\u{202e}"),
            "\\u{85}\\u{9b}\\u{2028}\\u{202e}"
        );
        // A backslash is doubled, so `\n` typed by a module stays
        // distinguishable from an escaped newline.
        assert_eq!(escaped("C:\\n"), "C:\\\\n");
        assert_eq!(escaped("héllo ₿ \"quoted\" {}"), "héllo ₿ \"quoted\" {}");
        assert!(!escaped(&(0u8..=127).map(char::from).collect::<String>()).contains(|c: char| c.is_control()));
    }

    #[test]
    fn a_budget_is_shared_by_every_piece_and_cuts_at_a_character_boundary() {
        let mut budget = LineBudget::with(6);
        let mut a = String::new();
        budget.push(&mut a, "abcd");
        assert!(!budget.is_truncated());
        let mut b = String::new();
        // 2 bytes left; "é" is 2 bytes, "₿" 3: cut before the ₿.
        budget.push(&mut b, "é₿");
        assert_eq!((a.as_str(), b.as_str()), ("abcd", "é"));
        assert!(budget.is_truncated() && budget.is_spent());
        // The budget counts the module's bytes, not the escapes.
        let mut budget = LineBudget::with(2);
        let mut c = String::new();
        budget.push(&mut c, "\n\n");
        assert_eq!(c, "\\n\\n");
        assert!(!budget.is_truncated());
    }
}
