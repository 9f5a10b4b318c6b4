//! HTTP Basic authentication as Bitcoin Core does it: `rpcuser`/`rpcpassword`
//! and the cookie file.
//!
//! The cookie is `__cookie__:<64 hex digits>` (32 random bytes), written to
//! `<datadir>/.cookie` with mode 0600 when the server starts and deleted when
//! it stops, so any local process that can read the data directory can call
//! the node without a configured password. Either credential is accepted.
//!
//! Credentials are compared in time that does not depend on where they
//! differ, so response timing does not leak the password byte by byte.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The user name of cookie authentication (Core's `COOKIEAUTH_USER`).
pub const COOKIE_USER: &str = "__cookie__";

/// The cookie file's name inside the data directory (Core's `COOKIEAUTH_FILE`).
pub const COOKIE_FILE_NAME: &str = ".cookie";

/// The `WWW-Authenticate` value sent with HTTP 401 (Core's `WWW_AUTH_HEADER_DATA`).
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"jsonrpc\"";

/// The credentials the server accepts. With neither set, every request is
/// refused (Core never serves RPC unauthenticated).
#[derive(Debug, Default)]
pub struct RpcAuth {
    /// `rpcuser` and `rpcpassword`.
    pub user_pass: Option<(String, String)>,
    /// The cookie written for this run; the server deletes it at shutdown.
    pub cookie: Option<CookieFile>,
}

impl RpcAuth {
    /// Returns whether an `Authorization` header value carries an accepted
    /// credential. A missing header (`None`) is never accepted.
    pub fn is_authorized(&self, header: Option<&[u8]>) -> bool {
        let Some(user_pass) = header.and_then(decode_basic) else {
            return false;
        };
        // Check every credential without stopping at the first match, so
        // timing does not tell which one matched.
        let mut ok = false;
        if let Some((user, pass)) = &self.user_pass {
            ok |= timing_resistant_eq(&user_pass, format!("{user}:{pass}").as_bytes());
        }
        if let Some(cookie) = &self.cookie {
            ok |= timing_resistant_eq(&user_pass, cookie.secret.as_bytes());
        }
        ok
    }
}

/// Why a cookie file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("cookie file {path}: {source}")]
pub struct CookieFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: io::Error,
}

/// A cookie file this process wrote; removed by [`CookieFile::remove`], and
/// in `Drop` as a last defence.
pub struct CookieFile {
    path: PathBuf,
    /// `__cookie__:<hex>`, exactly the file's content.
    secret: String,
}

impl fmt::Debug for CookieFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret into logs.
        f.debug_struct("CookieFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl CookieFile {
    /// Writes a fresh cookie to `<datadir>/.cookie`.
    ///
    /// # Errors
    ///
    /// The path and I/O error if the file cannot be written or no random
    /// bytes are available.
    pub fn create(datadir: &Path) -> Result<CookieFile, CookieFileError> {
        Self::create_at(datadir.join(COOKIE_FILE_NAME))
    }

    /// Writes a fresh cookie to `path` (Core's `-rpccookiefile`).
    ///
    /// The cookie goes to `<path>.tmp` created with mode 0600 and is then
    /// renamed over `path`, so a reader never sees a partial or
    /// world-readable cookie.
    ///
    /// # Errors
    ///
    /// As [`CookieFile::create`].
    pub fn create_at(path: PathBuf) -> Result<CookieFile, CookieFileError> {
        let err = |source| CookieFileError {
            path: path.clone(),
            source,
        };
        let mut random = [0u8; 32];
        fill_random(&mut random).map_err(err)?;
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let secret = format!("{COOKIE_USER}:{hex}");

        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        // A leftover tmp file might have wider permissions, which `mode`
        // would not change; start from nothing.
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(err)?;
        file.write_all(secret.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        fs::rename(&tmp, &path).map_err(err)?;
        tracing::info!(path = %path.display(), "generated rpc authentication cookie");
        Ok(CookieFile { path, secret })
    }

    /// Returns the file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the user name (`__cookie__`).
    pub fn user(&self) -> &str {
        COOKIE_USER
    }

    /// Returns the password (64 hex digits).
    pub fn password(&self) -> &str {
        &self.secret[COOKIE_USER.len() + 1..]
    }

    /// Deletes the file if it still holds this cookie (another node started
    /// on the same data directory may have replaced it). Deleting a file that
    /// is already gone succeeds.
    ///
    /// # Errors
    ///
    /// The I/O error if the file exists and cannot be read or deleted.
    pub fn remove(&self) -> io::Result<()> {
        match fs::read_to_string(&self.path) {
            Ok(content) if content.trim_end() == self.secret => fs::remove_file(&self.path),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for CookieFile {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(path = %self.path.display(), error = %e, "could not delete rpc cookie file");
        }
    }
}

/// Reads a cookie file and returns its user and password, for clients such
/// as `blvm-node module list`.
///
/// # Errors
///
/// The path and I/O error if the file cannot be read; `InvalidData` if it
/// holds no `user:password`.
pub fn read_cookie_file(path: &Path) -> Result<(String, String), CookieFileError> {
    let err = |source| CookieFileError {
        path: path.to_path_buf(),
        source,
    };
    let content = fs::read_to_string(path).map_err(err)?;
    let line = content.lines().next().unwrap_or("");
    match line.split_once(':') {
        Some((user, pass)) => Ok((user.to_owned(), pass.to_owned())),
        None => Err(err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no user:password in cookie file",
        ))),
    }
}

/// Returns an `Authorization` header value for `user` and `password`.
pub fn basic_auth_header(user: &str, password: &str) -> String {
    format!("Basic {}", base64_encode(format!("{user}:{password}").as_bytes()))
}

fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Decodes `Basic <base64>` into the `user:password` bytes.
fn decode_basic(header: &[u8]) -> Option<Vec<u8>> {
    let rest = header.strip_prefix(b"Basic ")?;
    base64_decode(rest.trim_ascii())
}

/// Core's `TimingResistantEqual`: the time taken depends only on the lengths.
fn timing_resistant_eq(a: &[u8], b: &[u8]) -> bool {
    if b.is_empty() {
        return a.is_empty();
    }
    let mut acc = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        acc |= usize::from(x ^ b[i % b.len()]);
    }
    acc == 0
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with optional `=` padding; `None` for anything else.
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    let data = match input.iter().position(|&c| c == b'=') {
        Some(pad) if input[pad..].iter().all(|&c| c == b'=') && input[pad..].len() <= 2 => &input[..pad],
        Some(_) => return None,
        None => input,
    };
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in data {
        let v = BASE64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "user:pass", "__cookie__:00ff"] {
            let enc = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(enc.as_bytes()).as_deref(), Some(s.as_bytes()), "{enc}");
            assert_eq!(
                base64_decode(enc.trim_end_matches('=').as_bytes()).as_deref(),
                Some(s.as_bytes())
            );
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_decode(b"dXN!"), None);
        assert_eq!(base64_decode(b"dX=N"), None);
    }

    #[test]
    fn timing_resistant_eq_matches_eq() {
        assert!(timing_resistant_eq(b"abc", b"abc"));
        assert!(!timing_resistant_eq(b"abd", b"abc"));
        assert!(!timing_resistant_eq(b"ab", b"abc"));
        assert!(!timing_resistant_eq(b"abcabc", b"abc"));
        assert!(timing_resistant_eq(b"", b""));
        assert!(!timing_resistant_eq(b"x", b""));
    }

    #[test]
    fn user_pass_is_checked() {
        let auth = RpcAuth {
            user_pass: Some(("u".into(), "p".into())),
            cookie: None,
        };
        assert!(auth.is_authorized(Some(basic_auth_header("u", "p").as_bytes())));
        assert!(!auth.is_authorized(Some(basic_auth_header("u", "q").as_bytes())));
        assert!(!auth.is_authorized(Some(b"Bearer xyz")));
        assert!(!auth.is_authorized(None));
        assert!(!RpcAuth::default().is_authorized(Some(basic_auth_header("", "").as_bytes())));
    }
}
