//! A registry over HTTP: [`HttpRepository`] fetches `{base}/metadata/{file}`
//! and `{base}/targets/{url path}` with reqwest's blocking client.
//!
//! Nothing here is trusted: the signed metadata is what makes a download
//! safe, so plain HTTP is the default (the `https` feature adds rustls for
//! privacy). What the transport must do is not let a server waste the
//! client's memory or time, which TUF names as two attacks:
//!
//! - endless data: a metadata file is read to its limit plus one byte and
//!   a target to its signed length plus one byte, and a `Content-Length`
//!   above either is refused before the body is read;
//! - slow retrieval: a transfer below the minimum rate over a window, or
//!   with no byte for the read timeout, is cut off
//!   ([`super::download`]).
//!
//! An interrupted target download (a closed connection, an I/O error, a
//! stall) resumes where it stopped with `Range: bytes=N-`, through the
//! same checker, so the hash covers every byte whichever answer brought
//! it; a server that answers the range with the whole file (200) starts
//! the check over. The bytes are returned only when the signed length and
//! hash match.
//!
//! The blocking client runs its own runtime thread: build, call and drop
//! an `HttpRepository` outside any async runtime (in tokio, from
//! `spawn_blocking`).
//!
//! ```no_run
//! use std::time::SystemTime;
//!
//! use blvm_registry::client::{DownloadOptions, HttpRepository, Repository};
//! use blvm_registry::tuf::TrustedMetadata;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = HttpRepository::new("http://127.0.0.1:8080/", DownloadOptions::default())?;
//! // The root shipped with the node, or the one kept from the last refresh.
//! let mut trusted = TrustedMetadata::from_root(&std::fs::read("root.json")?)?;
//! trusted.refresh(&registry, SystemTime::now())?;
//! let info = trusted.target("block-stats/0.1.0/binary")?;
//! let binary = registry.fetch_target(&info)?; // the signed bytes, or an error
//! # drop(binary);
//! # Ok(())
//! # }
//! ```

use std::io::Read;

use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{StatusCode, Url};

use super::download::{DownloadOptions, RateGuard};
use super::progress::ProgressReport;
use super::repository::Repository;
use crate::tuf::{FetchError, MetadataSource, TargetChecker, TargetInfo, VerifyError};

/// The most bytes asked of one read: what the client may read past a
/// limit is one byte, whatever this is.
const CHUNK: usize = 64 * 1024;

/// A registry's repository over HTTP.
#[derive(Debug)]
pub struct HttpRepository {
    base: Url,
    client: Client,
    options: DownloadOptions,
}

/// An [`HttpRepository`] could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The base URL is not one a repository can be at.
    #[error("invalid registry URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot start the HTTP client: {0}")]
    Client(String),
}

/// How one attempt failed: for good (`E`), or worth another attempt.
enum Failure<E> {
    Fatal(E),
    Retry(FetchError),
}

impl Failure<FetchError> {
    fn for_target(self, file: &str) -> Failure<VerifyError> {
        match self {
            Self::Fatal(source) => Failure::Fatal(fetch_error(file, source)),
            Self::Retry(source) => Failure::Retry(source),
        }
    }
}

fn fetch_error(file: &str, source: FetchError) -> VerifyError {
    VerifyError::Fetch {
        file: file.to_owned(),
        source,
    }
}

/// An error and its sources on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !line.contains(&message) {
            line.push_str(": ");
            line.push_str(&message);
        }
        source = cause.source();
    }
    line
}

/// Whether a body read failed because the read timeout passed.
fn is_timeout(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::TimedOut
        || error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

/// Only 200 is a file; 404 is "no such file" (it ends the root chain);
/// a server error or "too many requests" may pass, anything else will not.
fn check_status(status: StatusCode) -> Result<(), Failure<FetchError>> {
    match status {
        StatusCode::OK => Ok(()),
        StatusCode::NOT_FOUND => Err(Failure::Fatal(FetchError::NotFound)),
        status if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
            Err(Failure::Retry(FetchError::Http {
                status: status.as_u16(),
            }))
        }
        status => Err(Failure::Fatal(FetchError::Http {
            status: status.as_u16(),
        })),
    }
}

/// A target download across its attempts: the bytes so far and the check
/// they went through.
struct Download {
    checker: TargetChecker,
    bytes: Vec<u8>,
    progress: Option<ProgressReport<std::io::Stderr>>,
}

impl Download {
    fn received(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn restart(&mut self, info: &TargetInfo) {
        self.checker = info.checker();
        self.bytes.clear();
        if let Some(progress) = &mut self.progress {
            progress.update(0);
        }
    }
}

impl HttpRepository {
    /// The repository at `base_url` (`http://host:port/` or a path under
    /// it), with `options` for every download.
    ///
    /// # Errors
    ///
    /// [`HttpError::InvalidUrl`] for a URL that is not `http` (or `https`
    /// with the `https` feature), [`HttpError::Client`] if the client
    /// cannot start.
    pub fn new(base_url: &str, options: DownloadOptions) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let base = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        match base.scheme() {
            "http" => {}
            "https" if cfg!(feature = "https") => {}
            "https" => return Err(invalid("https needs blvm-registry's `https` feature")),
            _ => return Err(invalid("the scheme is not http")),
        }
        if base.cannot_be_a_base() || base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("a repository URL has a path and no query or fragment"));
        }
        let client = Client::builder()
            .connect_timeout(options.connect_timeout)
            // The blocking client applies this to each wait: for the
            // headers, then for each read of the body. So it is a stall
            // timeout, not a limit on the whole transfer.
            .timeout(options.read_timeout)
            .user_agent(concat!("blvm-registry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Client(error_chain(&e)))?;
        Ok(Self { base, client, options })
    }

    /// The options downloads run with.
    pub fn options(&self) -> &DownloadOptions {
        &self.options
    }

    /// `{base}/{tree}/{path}`, each component of `path` percent-encoded;
    /// `None` for a path with an empty, `.` or `..` component, which would
    /// name another file than the one signed.
    fn url(&self, tree: &str, path: &str) -> Option<Url> {
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().ok()?;
            segments.pop_if_empty().push(tree);
            for part in path.split('/') {
                if part.is_empty() || part == "." || part == ".." {
                    return None;
                }
                segments.push(part);
            }
        }
        Some(url)
    }

    fn send(&self, url: &Url, offset: u64) -> Result<Response, FetchError> {
        let mut request = self.client.get(url.clone());
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        request.send().map_err(|e| {
            if e.is_timeout() && !e.is_connect() {
                FetchError::Stalled {
                    after: self.options.read_timeout,
                }
            } else {
                FetchError::Io(std::io::Error::other(error_chain(&e)))
            }
        })
    }

    /// One read of the body into `buf`, checked against the minimum rate.
    /// `interrupted` names a failed read.
    fn read(
        &self,
        response: &mut Response,
        buf: &mut [u8],
        guard: &mut RateGuard,
        interrupted: impl FnOnce(String) -> FetchError,
    ) -> Result<usize, Failure<FetchError>> {
        let read = loop {
            match response.read(buf) {
                Ok(read) => break read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => {
                    return Err(Failure::Retry(FetchError::Stalled {
                        after: self.options.read_timeout,
                    }))
                }
                Err(e) => return Err(Failure::Retry(interrupted(error_chain(&e)))),
            }
        };
        // The end of the body ends the transfer: a slow last window is no
        // reason to refuse bytes that are all here.
        if read > 0 {
            guard.record(read).map_err(Failure::Fatal)?;
        }
        Ok(read)
    }

    fn fetch_once(&self, url: &Url, limit: u64) -> Result<Vec<u8>, Failure<FetchError>> {
        let mut guard = RateGuard::start(&self.options);
        let mut response = self.send(url, 0).map_err(Failure::Retry)?;
        check_status(response.status())?;
        if response.content_length().is_some_and(|length| length > limit) {
            return Err(Failure::Fatal(FetchError::TooLong { limit }));
        }
        let mut bytes = Vec::new();
        let mut chunk = vec![0u8; CHUNK];
        loop {
            // One byte past the limit tells "exactly the limit" from "more".
            let room = limit.saturating_add(1).saturating_sub(bytes.len() as u64);
            let room = usize::try_from(room).unwrap_or(CHUNK).min(CHUNK);
            let read = self.read(&mut response, &mut chunk[..room], &mut guard, |reason| {
                FetchError::Io(std::io::Error::other(reason))
            })?;
            if read == 0 {
                return Ok(bytes);
            }
            bytes.extend_from_slice(&chunk[..read]);
            if bytes.len() as u64 > limit {
                return Err(Failure::Fatal(FetchError::TooLong { limit }));
            }
        }
    }

    /// One request for the rest of `download`: from its first missing byte.
    fn fetch_target_once(
        &self,
        url: &Url,
        info: &TargetInfo,
        download: &mut Download,
    ) -> Result<(), Failure<VerifyError>> {
        let file = info.url_path();
        let offset = download.received();
        let mut guard = RateGuard::start(&self.options);
        let mut response = self.send(url, offset).map_err(Failure::Retry)?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let content_range = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                if !content_range.starts_with(&format!("bytes {offset}-")) {
                    return Err(Failure::Fatal(fetch_error(
                        file,
                        FetchError::BadRange {
                            offset,
                            content_range: content_range.to_owned(),
                        },
                    )));
                }
            }
            // The server ignored the range and sends the whole file.
            StatusCode::OK if offset > 0 => download.restart(info),
            status => check_status(status).map_err(|failure| failure.for_target(file))?,
        }
        let announced = response.content_length();
        if announced.is_some_and(|length| length > download.checker.remaining()) {
            // Endless data, announced: refuse before reading a byte of it.
            return Err(Failure::Fatal(VerifyError::TargetMismatch {
                path: info.path().to_owned(),
                what: "length",
                found: format!(
                    "{} (announced)",
                    download.received().saturating_add(announced.unwrap_or(0))
                ),
                expected: info.length().to_string(),
            }));
        }
        let mut chunk = vec![0u8; CHUNK];
        loop {
            // One byte past the signed length tells "exactly" from "more".
            let room = download.checker.remaining().saturating_add(1);
            let room = usize::try_from(room).unwrap_or(CHUNK).min(CHUNK);
            let received = download.received();
            let read = self
                .read(&mut response, &mut chunk[..room], &mut guard, |reason| {
                    FetchError::Interrupted {
                        received,
                        expected: info.length(),
                        reason,
                    }
                })
                .map_err(|failure| failure.for_target(file))?;
            if read == 0 {
                break;
            }
            download.checker.update(&chunk[..read]).map_err(Failure::Fatal)?;
            download.bytes.extend_from_slice(&chunk[..read]);
            let received = download.received();
            if let Some(progress) = &mut download.progress {
                progress.update(received);
            }
        }
        if download.checker.remaining() > 0 {
            return Err(Failure::Retry(FetchError::Interrupted {
                received: download.received(),
                expected: info.length(),
                reason: "the connection closed early".to_owned(),
            }));
        }
        Ok(())
    }
}

impl MetadataSource for HttpRepository {
    fn fetch(&self, file: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let url = self.url("metadata", file).ok_or(FetchError::NotFound)?;
        let mut attempt = 0;
        loop {
            match self.fetch_once(&url, limit) {
                Ok(bytes) => return Ok(bytes),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(e)) if attempt < self.options.retries => {
                    attempt += 1;
                    tracing::warn!(%url, attempt, "fetching metadata again: {e}");
                }
                Err(Failure::Retry(e)) => return Err(e),
            }
        }
    }
}

impl Repository for HttpRepository {
    fn fetch_target(&self, info: &TargetInfo) -> Result<Vec<u8>, VerifyError> {
        let file = info.url_path();
        let url = self
            .url("targets", file)
            .ok_or_else(|| fetch_error(file, FetchError::NotFound))?;
        let mut download = Download {
            checker: info.checker(),
            // Capacity up to the signed length, bounded: the length is
            // signed, but a large one must not allocate before a byte came.
            bytes: Vec::with_capacity(usize::try_from(info.length()).unwrap_or(0).min(64 << 20)),
            progress: ProgressReport::stderr(self.options.progress, info.path(), info.length()),
        };
        let mut attempt = 0;
        let result = loop {
            match self.fetch_target_once(&url, info, &mut download) {
                Ok(()) => break Ok(()),
                Err(Failure::Fatal(e)) => break Err(e),
                Err(Failure::Retry(e)) if attempt < self.options.retries => {
                    attempt += 1;
                    tracing::warn!(%url, attempt, received = download.received(), "resuming the download: {e}");
                }
                Err(Failure::Retry(e)) => break Err(fetch_error(file, e)),
            }
        };
        if let Some(progress) = download.progress {
            progress.finish();
        }
        result?;
        download.checker.finish()?;
        Ok(download.bytes)
    }

    fn describe(&self) -> String {
        self.base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository(base: &str) -> HttpRepository {
        HttpRepository::new(base, DownloadOptions::default()).expect("a valid base URL")
    }

    #[test]
    fn urls_are_the_base_then_the_tree_then_the_encoded_path() {
        let repo = repository("http://127.0.0.1:8080/registry/");
        let url = repo
            .url("targets", "block-stats/0.1.0/ab.block stats")
            .expect("a plain path");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/registry/targets/block-stats/0.1.0/ab.block%20stats"
        );
        let url = repository("http://host")
            .url("metadata", "1.root.json")
            .expect("a file");
        assert_eq!(url.as_str(), "http://host/metadata/1.root.json");
    }

    #[test]
    fn a_path_that_leaves_its_tree_has_no_url() {
        let repo = repository("http://host/");
        for path in ["../keys", "a/./b", "a//b", "", "a/.."] {
            assert!(repo.url("targets", path).is_none(), "{path:?}");
        }
    }

    #[cfg(not(feature = "https"))]
    #[test]
    fn an_https_url_needs_the_https_feature() {
        let err = HttpRepository::new("https://registry.example/", DownloadOptions::default()).expect_err("no TLS");
        assert_eq!(
            err.to_string(),
            "invalid registry URL \"https://registry.example/\": https needs blvm-registry's `https` feature"
        );
    }

    #[cfg(feature = "https")]
    #[test]
    fn an_https_url_is_accepted_with_the_https_feature() {
        HttpRepository::new("https://registry.example/", DownloadOptions::default()).expect("TLS built in");
    }

    #[test]
    fn a_base_url_that_is_not_http_is_refused() {
        for base in ["ftp://host/", "not a url", "http://host/?q=1", "mailto:a@b"] {
            let err = HttpRepository::new(base, DownloadOptions::default()).expect_err(base);
            assert!(matches!(err, HttpError::InvalidUrl { .. }), "{err}");
        }
    }
}
