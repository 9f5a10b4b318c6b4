//! The registry client over HTTP against real servers in the test process:
//! an honest one serving a repository our writer built, and hostile ones
//! that send too much, too slowly, nothing, or the wrong bytes.

pub(crate) mod server;

use std::time::Duration;

use blvm_registry::client::{DownloadOptions, HttpRepository, Progress, Repository};
use blvm_registry::tuf::source::TIMESTAMP_MAX_LENGTH;
use blvm_registry::tuf::{FetchError, RoleName, RoleSigners, TargetInfo, VerifyError};

use crate::support::{now, Repo};
use server::{Served, Server, SEND_BUFFER};

/// The target of these tests: a real Bitcoin block, mainnet 300025
/// (284,231 bytes; provenance in crates/blvm-bench/data/README.md).
const BLOCK: &str = "blocks/0.1.0/block-300025";

fn block_bytes() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../blvm-bench/data/block-300025.raw");
    std::fs::read(path).expect("the block file of blvm-bench is in the repository")
}

/// A repository holding [`BLOCK`] too.
fn repo_with_block(name: &str) -> Repo {
    let mut repo = Repo::new(name);
    repo.writer
        .add_target(BLOCK, &block_bytes(), None)
        .expect("target added");
    repo.writer.commit(now()).expect("commit");
    repo
}

/// The block's signed facts, from the repository's files on disk: for the
/// tests whose hostile server only serves the target.
fn block_info(repo: &Repo) -> TargetInfo {
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("the repository verifies");
    client.target(BLOCK).expect("the block is signed")
}

fn quiet() -> DownloadOptions {
    DownloadOptions {
        progress: Progress::Quiet,
        ..DownloadOptions::default()
    }
}

fn http(server: &Server, options: DownloadOptions) -> HttpRepository {
    HttpRepository::new(&server.url, options).expect("the server's URL is valid")
}

/// Runs `f` on a thread and waits for it with a generous deadline, so a
/// client that would read forever fails the test instead of hanging it.
pub(crate) fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the client returned before the deadline")
}

/// The most a server can have written to a client that read `read` bytes
/// and closed: the rest sat in the kernel, in the client's receive buffer
/// (at most `tcp_rmem`'s maximum) and the server's send buffer (which
/// Linux doubles).
pub(crate) fn most_sent_for(read: u64) -> u64 {
    let receive_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem")
        .ok()
        .and_then(|line| line.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(32 << 20);
    read + receive_max + 2 * SEND_BUFFER as u64 + 64 * 1024
}

/// Endless data: four times what the kernel can hold between server and
/// client, so that a client that reads it all is caught.
pub(crate) fn endless_length() -> u64 {
    4 * most_sent_for(0)
}

fn fetch_source(err: &VerifyError) -> &FetchError {
    match err {
        VerifyError::Fetch { source, .. } => source,
        other => panic!("expected a fetch error, got: {other}"),
    }
}

#[test]
fn an_honest_server_serves_metadata_that_verifies_and_the_exact_target() {
    let repo = repo_with_block("http-honest");
    let server = Server::directory(repo.writer.dir().to_owned());
    let http = http(&server, quiet());
    let mut client = repo.client();
    client.refresh(&http, now()).expect("the repository verifies over HTTP");
    let info = client.target(BLOCK).expect("the block is signed");
    let bytes = http.fetch_target(&info).expect("the block downloads");
    assert!(bytes == block_bytes(), "the downloaded bytes are the block's");
    assert_eq!(http.describe(), server.url);
    let paths: Vec<String> = server.served_so_far().into_iter().map(|s| s.request.path).collect();
    assert!(
        paths.contains(&format!("/targets/{}", info.url_path())),
        "the target came from its hash-prefixed URL: {paths:?}"
    );
}

#[test]
fn a_404_on_the_next_root_ends_the_root_chain() {
    let mut repo = repo_with_block("http-root-chain");
    repo.writer
        .rotate_keys(RoleName::Timestamp, RoleSigners::generate(1, 1).expect("key"), now())
        .expect("root 2 rotates the timestamp key");
    repo.writer.commit(now()).expect("commit under root 2");
    let server = Server::directory(repo.writer.dir().to_owned());
    let mut client = repo.client();
    client
        .refresh(&http(&server, quiet()), now())
        .expect("refresh ends at the 404");
    assert_eq!(client.root().version, 2, "the client followed 2.root.json");
    let served = server.served_so_far();
    let three = served
        .iter()
        .find(|s| s.request.path == "/metadata/3.root.json")
        .expect("the client asked for 3.root.json");
    assert!(three.error.is_none(), "and was answered (404)");
    assert!(served.iter().any(|s| s.request.path == "/metadata/timestamp.json"));
}

#[test]
fn a_server_error_on_the_next_root_is_an_error_not_the_end_of_the_chain() {
    let server = Server::start(|_, conn| conn.head("500 Internal Server Error", &[("Content-Length", "0".into())]));
    let repo = Repo::new("http-root-500");
    let mut client = repo.client();
    let options = DownloadOptions { retries: 1, ..quiet() };
    let err = client
        .refresh(&http(&server, options), now())
        .expect_err("500 is no answer");
    assert!(matches!(fetch_source(&err), FetchError::Http { status: 500 }), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot fetch 2.root.json: the server answered HTTP 500"
    );
    assert_eq!(server.served_so_far().len(), 2, "one try and one retry");
}

/// Serves the block then garbage, with `content_length` if given.
fn endless_target(name: &str, content_length: Option<u64>) -> (Server, TargetInfo) {
    let repo = repo_with_block(name);
    let info = block_info(&repo);
    let block = block_bytes();
    let server = Server::start(move |_, conn| {
        let headers: Vec<_> = content_length
            .map(|n| ("Content-Length", n.to_string()))
            .into_iter()
            .collect();
        conn.head("200 OK", &headers)?;
        conn.send(&block)?;
        conn.endless(b'x', endless_length())
    });
    (server, info)
}

fn assert_refused_at_the_signed_length(err: &VerifyError, info: &TargetInfo, served: &Served) {
    assert!(
        matches!(err, VerifyError::TargetMismatch { what: "length", .. }),
        "endless data refused as too long: {err}"
    );
    assert!(served.error.is_some(), "the client closed before the server was done");
    assert!(
        served.sent <= most_sent_for(info.length() + 64 * 1024),
        "the client stopped reading at the signed length: the server wrote {} bytes",
        served.sent
    );
}

#[test]
fn endless_data_a_target_longer_than_signed_is_refused_at_the_signed_length() {
    let (server, info) = endless_target("http-endless", None);
    let client = http(&server, quiet());
    let target = info.clone();
    let err = within_deadline(move || client.fetch_target(&target)).expect_err("more than the signed length");
    assert_refused_at_the_signed_length(&err, &info, &server.next_served());
}

#[test]
fn endless_data_a_content_length_above_the_signed_length_is_refused_before_the_body() {
    let announced = info_length_plus_endless();
    let (server, info) = endless_target("http-endless-announced", Some(announced));
    let client = http(&server, quiet());
    let target = info.clone();
    let err = within_deadline(move || client.fetch_target(&target)).expect_err("announced as too long");
    assert!(err.to_string().contains("(announced)"), "{err}");
    assert_refused_at_the_signed_length(&err, &info, &server.next_served());
}

/// The Content-Length an endless server announces: the block and the
/// garbage after it.
fn info_length_plus_endless() -> u64 {
    block_bytes().len() as u64 + endless_length()
}

#[test]
fn endless_metadata_a_timestamp_that_never_ends_is_refused_at_its_limit() {
    let server = Server::start(|request, conn| {
        if request.path != "/metadata/timestamp.json" {
            return conn.not_found();
        }
        conn.head("200 OK", &[])?;
        conn.endless(b' ', endless_length())
    });
    let repo = Repo::new("http-endless-timestamp");
    let client = http(&server, quiet());
    let mut trusted = repo.client();
    let err = within_deadline(move || trusted.refresh(&client, now())).expect_err("an endless timestamp");
    assert!(
        matches!(
            fetch_source(&err),
            FetchError::TooLong {
                limit: TIMESTAMP_MAX_LENGTH
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "cannot fetch timestamp.json: longer than the 16384 bytes allowed"
    );
    let served = std::iter::from_fn(|| Some(server.next_served()))
        .find(|s| s.request.path == "/metadata/timestamp.json")
        .expect("the timestamp was served");
    assert!(
        served.sent <= most_sent_for(TIMESTAMP_MAX_LENGTH + 64 * 1024),
        "the client stopped at the limit: the server wrote {} bytes",
        served.sent
    );
}

#[test]
fn slow_retrieval_a_trickling_server_is_cut_off_below_the_minimum_rate() {
    let repo = repo_with_block("http-slow");
    let info = block_info(&repo);
    let block = block_bytes();
    let server = Server::start(move |_, conn| {
        conn.head("200 OK", &[("Content-Length", block.len().to_string())])?;
        // The attack: one byte every 100 ms, never quite a stall.
        conn.trickle(&block, Duration::from_millis(100))
    });
    let options = DownloadOptions {
        min_rate_bytes_per_sec: 100,
        rate_window: Duration::from_secs(1),
        read_timeout: Duration::from_secs(10),
        ..quiet()
    };
    let client = http(&server, options);
    let target = info.clone();
    let err = within_deadline(move || client.fetch_target(&target)).expect_err("too slow");
    let FetchError::TooSlow { rate, min } = fetch_source(&err) else {
        panic!("expected slow retrieval, got: {err}");
    };
    assert_eq!(*min, 100);
    assert!(*rate < 100, "{err}");
    let served = server.next_served();
    assert!(served.sent < 1000, "cut off after a few bytes, not the block");
    assert!(server.served_so_far().is_empty(), "a slow server is not retried");
}

#[test]
fn slow_retrieval_a_trickling_timestamp_is_cut_off_below_the_minimum_rate() {
    let repo = Repo::new("http-slow-timestamp");
    let timestamp = std::fs::read(repo.metadata("timestamp.json")).expect("timestamp written");
    let server = Server::start(move |request, conn| {
        if request.path != "/metadata/timestamp.json" {
            return conn.not_found();
        }
        conn.head("200 OK", &[("Content-Length", timestamp.len().to_string())])?;
        conn.trickle(&timestamp, Duration::from_millis(100))
    });
    let options = DownloadOptions {
        min_rate_bytes_per_sec: 100,
        rate_window: Duration::from_secs(1),
        ..quiet()
    };
    let client = http(&server, options);
    let mut trusted = repo.client();
    let err = within_deadline(move || trusted.refresh(&client, now())).expect_err("too slow");
    assert!(
        matches!(fetch_source(&err), FetchError::TooSlow { min: 100, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("cannot fetch timestamp.json: slow retrieval: "),
        "{err}"
    );
}

#[test]
fn a_stalled_transfer_is_cut_off_by_the_read_timeout_after_its_retries() {
    let repo = repo_with_block("http-stall");
    let info = block_info(&repo);
    let block = block_bytes();
    let server = Server::start(move |request, conn| {
        let start = request.range_start().unwrap_or(0);
        let rest = &block[start as usize..];
        if start == 0 {
            conn.head("200 OK", &[("Content-Length", block.len().to_string())])?;
        } else {
            let range = format!("bytes {start}-{}/{}", block.len() - 1, block.len());
            conn.head(
                "206 Partial Content",
                &[("Content-Length", rest.len().to_string()), ("Content-Range", range)],
            )?;
        }
        // A thousand bytes, then nothing until the client gives up.
        conn.send(&rest[..1000])?;
        conn.wait_for_close()
    });
    let options = DownloadOptions {
        read_timeout: Duration::from_secs(1),
        retries: 1,
        ..quiet()
    };
    let client = http(&server, options);
    let target = info.clone();
    let err = within_deadline(move || client.fetch_target(&target)).expect_err("a stall");
    assert!(
        matches!(fetch_source(&err), FetchError::Stalled { after } if *after == Duration::from_secs(1)),
        "{err}"
    );
    assert!(err.to_string().ends_with("stalled: no byte for 1s"), "{err}");
    let mut requests: Vec<_> = [server.next_served(), server.next_served()]
        .into_iter()
        .map(|s| s.request.range_start())
        .collect();
    requests.sort();
    assert_eq!(
        requests,
        [None, Some(1000)],
        "the retry resumed after the first thousand bytes"
    );
}

/// A server that closes after half the block, then answers a range
/// request with `rest` (the block's second half, or other bytes).
fn interrupting_server(rest: Vec<u8>) -> Server {
    let block = block_bytes();
    let half = block.len() / 2;
    Server::start(move |request, conn| match request.range_start() {
        None => {
            conn.head("200 OK", &[("Content-Length", block.len().to_string())])?;
            conn.send(&block[..half])
        }
        Some(start) => conn.partial(start, &rest[start as usize - half..], block.len() as u64),
    })
}

#[test]
fn an_interrupted_download_resumes_with_a_range_request() {
    let repo = repo_with_block("http-resume");
    let info = block_info(&repo);
    let block = block_bytes();
    let half = block.len() / 2;
    let server = interrupting_server(block[half..].to_vec());
    let bytes = http(&server, quiet()).fetch_target(&info).expect("resumed");
    assert!(bytes == block, "the resumed download is the block");
    let first = server.next_served();
    let second = server.next_served();
    assert_eq!(first.request.header("range"), None);
    assert_eq!(second.request.header("range"), Some(format!("bytes={half}-").as_str()));
    assert!(second.error.is_none(), "the rest came whole, as a 206");
}

#[test]
fn a_resume_answered_with_other_bytes_fails_the_hash_check() {
    let repo = repo_with_block("http-resume-tampered");
    let info = block_info(&repo);
    let block = block_bytes();
    let half = block.len() / 2;
    let mut tampered = block[half..].to_vec();
    tampered[1000] ^= 0xff;
    let server = interrupting_server(tampered);
    let err = http(&server, quiet())
        .fetch_target(&info)
        .expect_err("the resumed bytes are not the block's");
    assert!(
        matches!(err, VerifyError::TargetMismatch { what: "sha256", .. }),
        "{err}"
    );
    assert!(err.is_attack(), "an arbitrary package");
    assert_eq!(server.next_served().request.header("range"), None);
    assert!(server.next_served().request.range_start() == Some(half as u64));
}

#[test]
fn a_range_answered_with_the_whole_file_starts_the_check_over() {
    let repo = repo_with_block("http-resume-200");
    let info = block_info(&repo);
    let block = block_bytes();
    let half = block.len() / 2;
    let server = Server::start(move |request, conn| {
        conn.head("200 OK", &[("Content-Length", block.len().to_string())])?;
        match request.range_start() {
            None => conn.send(&block[..half]),
            // A server without ranges: the whole file again.
            Some(_) => conn.send(&block),
        }
    });
    let bytes = http(&server, quiet()).fetch_target(&info).expect("restarted from zero");
    assert!(bytes == block_bytes(), "the bytes are the block's, once");
}

#[test]
fn a_resume_answered_with_another_range_is_refused() {
    let repo = repo_with_block("http-resume-wrong-range");
    let info = block_info(&repo);
    let block = block_bytes();
    let half = block.len() / 2;
    let server = Server::start(move |request, conn| match request.range_start() {
        None => {
            conn.head("200 OK", &[("Content-Length", block.len().to_string())])?;
            conn.send(&block[..half])
        }
        // The bytes from zero, labelled as such: not what was asked.
        Some(_) => conn.partial(0, &block, block.len() as u64),
    });
    let err = http(&server, quiet()).fetch_target(&info).expect_err("the wrong range");
    assert!(
        matches!(fetch_source(&err), FetchError::BadRange { offset, .. } if *offset == half as u64),
        "{err}"
    );
}
