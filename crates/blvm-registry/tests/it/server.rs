//! `blvm-registry init|serve` as an operator runs them, with the real
//! `blvm-module publish|yank` talking to it: the block-stats manifest,
//! packed and signed by a keygen key, published, served back, found,
//! claimed, yanked, and verified by our TUF client over HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use blvm_registry::layout::{
    binary_target, manifest_target, ApiError, PublishRequest, SignedStatement, Statement, VersionRecord,
};
use blvm_registry::tuf::{FetchError, MetadataSource, TrustedMetadata};
use sha2::{Digest, Sha256};

use crate::support::temp_dir;

/// How long a server may take to start, or a condition to come true.
const DEADLINE: Duration = Duration::from_secs(60);

/// The binary published in these tests (any bytes do: the registry does
/// not run it).
pub const BINARY: &[u8] = b"\x7fELF block-stats as the registry serves it\x00\x01\x02";

/// `blvm-registry ARGS`, run to its end.
fn blvm_registry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blvm-registry"))
        .args(args)
        .output()
        .expect("blvm-registry runs")
}

/// `blvm-module ARGS` in `dir`, run to its end.
pub fn blvm_module(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blvm-module"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("blvm-module runs")
}

/// What a successful command printed.
#[track_caller]
pub fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a failed command said on stderr.
#[track_caller]
fn failed(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "command succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `blvm-registry init DIR/registry`; returns the registry directory and
/// the trusted root file it printed.
pub fn init_registry(dir: &Path) -> (PathBuf, PathBuf) {
    let registry = dir.join("registry");
    let out = succeeded(&blvm_registry(&["init", registry.to_str().expect("utf-8 path")]));
    let root = out
        .lines()
        .find_map(|line| line.strip_prefix("trusted root: "))
        .unwrap_or_else(|| panic!("init prints the trusted root: {out}"));
    (registry, PathBuf::from(root))
}

/// A running `blvm-registry serve`; killed on drop.
pub struct RegistryServer {
    child: Child,
    /// `http://ADDR`.
    pub url: String,
    /// The server's log lines (stderr), as they come; also written to
    /// `<registry>.log`.
    log: mpsc::Receiver<String>,
}

impl RegistryServer {
    /// Serves `registry` on a free loopback port with `extra` arguments.
    pub fn start(registry: &Path, extra: &[&str]) -> Self {
        let mut file = std::fs::File::create(registry.with_extension("log")).expect("server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_blvm-registry"))
            .arg("serve")
            .arg(registry)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            // Its timestamp re-signing is logged at debug.
            .env("RUST_LOG", "info,blvm_registry::server=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("blvm-registry serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (log_tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Write;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                let _ = log_tx.send(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(DEADLINE).expect("the server says where it listens");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("a `listening on` line, not {line:?}"))
            .to_owned();
        Self { child, url, log }
    }

    /// Waits for the `count`th log line containing `needle`.
    #[track_caller]
    pub fn wait_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = 0;
        while seen < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .log
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line {needle:?} ({seen} of {count}) within {DEADLINE:?}"));
            seen += usize::from(line.contains(needle));
        }
    }

    /// `GET url/PATH`.
    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        reqwest::blocking::get(format!("{}{path}", self.url)).expect("GET answers")
    }

    /// `GET url/PATH` as JSON, asserting 200.
    #[track_caller]
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self.get(path);
        assert_eq!(response.status(), 200, "GET {path}");
        serde_json::from_slice(&response.bytes().expect("a body")).expect("a JSON answer")
    }

    /// POSTs `body` to `/api/v1/publish`; the status and the error line.
    pub fn post_publish(&self, body: Vec<u8>) -> (u16, String) {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/publish", self.url))
            .header("content-type", "application/msgpack")
            .body(body)
            .send()
            .expect("POST answers");
        let status = response.status().as_u16();
        let body = response.bytes().expect("a body");
        let error = serde_json::from_slice::<ApiError>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("not an ApiError: {}", String::from_utf8_lossy(&body)));
        (status, error)
    }

    /// The signed targets version the server serves now.
    pub fn targets_version(&self) -> u64 {
        let mut client = TrustedMetadata::from_root(&self.get("/metadata/1.root.json").bytes().expect("root"))
            .expect("the served root");
        client
            .refresh(&HttpMetadata(self.url.clone()), SystemTime::now())
            .expect("our client accepts the served metadata");
        client.targets().expect("targets").version
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our TUF client's metadata source over HTTP, for the tests (the
/// client's own lives in `client::http`).
pub struct HttpMetadata(pub String);

impl MetadataSource for HttpMetadata {
    fn fetch(&self, file: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let response = reqwest::blocking::get(format!("{}/metadata/{file}", self.0))
            .map_err(|e| FetchError::Io(std::io::Error::other(e)))?;
        if response.status() == 404 {
            return Err(FetchError::NotFound);
        }
        let mut bytes = Vec::new();
        response.take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(FetchError::TooLong { limit });
        }
        Ok(bytes)
    }
}

/// A maintainer's folder: keys, and block-stats manifests to publish.
pub struct Maintainer {
    /// The folder.
    pub dir: PathBuf,
}

impl Maintainer {
    /// A folder with secret keys `alice.key` and `mallory.key`.
    pub fn new(dir: &Path) -> Self {
        let dir = dir.join("maintainer");
        std::fs::create_dir_all(&dir).expect("maintainer dir");
        for key in ["alice.key", "mallory.key"] {
            succeeded(&blvm_module(&dir, &["keygen", key]));
        }
        Self { dir }
    }

    /// The public key of `key_file`.
    pub fn public_key(&self, key_file: &str) -> String {
        let secret = std::fs::read_to_string(self.dir.join(key_file)).expect("secret key");
        blvm_module_host::security::signatures::public_key_of(secret.trim()).expect("a valid key")
    }

    /// `modules/block-stats/module.toml` at `version`, in its own folder
    /// beside `binary`, packed and signed by alice; returns its path.
    pub fn block_stats(&self, version: &str, binary: &[u8]) -> PathBuf {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules/block-stats/module.toml");
        let text = std::fs::read_to_string(source).expect("block-stats manifest");
        assert!(text.contains("version = \"0.1.0\""), "{text}");
        let text = text.replacen("version = \"0.1.0\"", &format!("version = \"{version}\""), 1)
            + "\n[governance]\ntier = \"community\"\nmaintainers = [\"alice\"]\nthreshold = \"1-of-1\"\n";
        let folder = self.dir.join(format!("block-stats-{version}"));
        std::fs::create_dir_all(&folder).expect("module folder");
        let manifest = folder.join("module.toml");
        std::fs::write(&manifest, text).expect("manifest");
        std::fs::write(folder.join("block-stats"), binary).expect("binary");
        let path = manifest.to_str().expect("utf-8");
        succeeded(&blvm_module(&self.dir, &["pack", path]));
        let signed = succeeded(&blvm_module(
            &self.dir,
            &["sign", path, "--key", "alice.key", "--name", "alice"],
        ));
        let entry = signed
            .lines()
            .nth(1)
            .expect("the entry line")
            .trim()
            .trim_end_matches(',');
        let packed = std::fs::read_to_string(&manifest).expect("packed");
        std::fs::write(
            &manifest,
            format!("{packed}\n[signatures]\nthreshold = \"1-of-1\"\nmaintainers = [{entry}]\n"),
        )
        .expect("signed manifest");
        manifest
    }

    /// `blvm-module publish --registry URL --key KEY MANIFEST`.
    pub fn publish(&self, url: &str, key: &str, manifest: &Path) -> Output {
        blvm_module(
            &self.dir,
            &[
                "publish",
                "--registry",
                url,
                "--key",
                key,
                manifest.to_str().expect("utf-8"),
            ],
        )
    }

    /// `blvm-module yank --registry URL --key KEY NAME VERSION`.
    pub fn yank(&self, url: &str, key: &str, name: &str, version: &str) -> Output {
        blvm_module(&self.dir, &["yank", "--registry", url, "--key", key, name, version])
    }

    /// A publish request for `manifest` with `binary`, whose statement
    /// hashes `stated` instead, signed with `key`: what a tampering proxy
    /// or a buggy tool might send.
    pub fn request(&self, key: &str, manifest: &Path, binary: &[u8], stated: &[u8]) -> Vec<u8> {
        let text = std::fs::read_to_string(manifest).expect("manifest");
        let secret = std::fs::read_to_string(self.dir.join(key)).expect("key");
        let hex = |bytes: &[u8]| hex_conservative::DisplayHex::to_lower_hex_string(&Sha256::digest(bytes)[..]);
        let statement = Statement::Publish {
            name: "block-stats".into(),
            version: text
                .lines()
                .find_map(|l| l.strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
                .expect("a version line")
                .into(),
            manifest_sha256: hex(text.as_bytes()),
            binary_sha256: hex(stated),
            binary_length: stated.len() as u64,
        };
        let request = PublishRequest {
            statement: SignedStatement::sign(statement, secret.trim()).expect("signs"),
            manifest: text,
            binary: binary.to_vec(),
        };
        rmp_serde::to_vec_named(&request).expect("encodes")
    }
}

/// Tries `attempt` (a request that answers) until it says yes, failing
/// after [`DEADLINE`]; each try is a round trip to the server, no pause.
#[track_caller]
fn retry_until(what: &str, mut attempt: impl FnMut() -> bool) {
    let start = Instant::now();
    while !attempt() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
    }
}

/// The signed record of `name` `version` as our TUF client sees it.
fn signed_record(server: &RegistryServer, root: &Path, name: &str, version: &str) -> VersionRecord {
    let mut client = TrustedMetadata::from_root(&std::fs::read(root).expect("trusted root")).expect("root");
    client
        .refresh(&HttpMetadata(server.url.clone()), SystemTime::now())
        .expect("our client accepts the served metadata");
    let info = client
        .target(&manifest_target(name, version))
        .expect("signed manifest target");
    VersionRecord::from_custom(info.custom()).expect("a version record")
}

#[test]
fn a_published_module_is_served_byte_identical_with_its_length_verified_by_tuf_and_found_by_search() {
    let dir = temp_dir("server-publish");
    let (registry, root) = init_registry(&dir);
    let server = RegistryServer::start(&registry, &[]);
    let maintainer = Maintainer::new(&dir);
    let manifest = maintainer.block_stats("0.1.0", BINARY);

    let out = succeeded(&maintainer.publish(&server.url, "alice.key", &manifest));
    assert!(out.contains("published block-stats 0.1.0"), "{out}");

    let response = server.get("/api/v1/modules/block-stats/0.1.0/binary");
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(BINARY.len() as u64));
    assert_eq!(response.headers()["content-length"], BINARY.len().to_string().as_str());
    assert_eq!(response.bytes().expect("body").as_ref(), BINARY, "byte-identical");
    let served_manifest = server
        .get("/api/v1/modules/block-stats/0.1.0/manifest")
        .text()
        .expect("text");
    assert_eq!(served_manifest, std::fs::read_to_string(&manifest).expect("manifest"));

    // Our TUF client, from the root `init` printed, over HTTP.
    let mut client = TrustedMetadata::from_root(&std::fs::read(&root).expect("root")).expect("root");
    client
        .refresh(&HttpMetadata(server.url.clone()), SystemTime::now())
        .expect("our client accepts the served metadata");
    let info = client
        .target(&binary_target("block-stats", "0.1.0"))
        .expect("signed binary");
    let served = server.get(&format!("/targets/{}", info.url_path()));
    assert_eq!(served.content_length(), Some(info.length()));
    info.verify(&served.bytes().expect("body"))
        .expect("the served binary is the signed one");
    let record = signed_record(&server, &root, "block-stats", "0.1.0");
    assert_eq!(record.publisher, maintainer.public_key("alice.key"));
    assert_eq!(record.tier.as_deref(), Some("community"));
    assert!(!record.yanked);
    assert!(
        humantime::parse_rfc3339(&record.published).is_ok(),
        "{}",
        record.published
    );

    let found: serde_json::Value = server.get_json("/api/v1/modules?q=statistics");
    assert_eq!(found[0]["name"], "block-stats", "{found}");
    assert_eq!(found[0]["version"], "0.1.0", "{found}");
    assert!(
        found[0]["description"]
            .as_str()
            .is_some_and(|d| d.contains("per-block")),
        "{found}"
    );
    let none: serde_json::Value = server.get_json("/api/v1/modules?q=no-such-thing");
    assert_eq!(none, serde_json::json!([]));
    let versions: serde_json::Value = server.get_json("/api/v1/modules/block-stats");
    assert_eq!(
        versions["versions"][0]["record"]["publisher"],
        record.publisher.as_str()
    );
}

#[test]
fn a_claimed_name_refuses_another_key_and_a_published_version_never_changes() {
    let dir = temp_dir("server-claims");
    let (registry, _) = init_registry(&dir);
    let server = RegistryServer::start(&registry, &[]);
    let maintainer = Maintainer::new(&dir);
    let first = maintainer.block_stats("0.1.0", BINARY);
    succeeded(&maintainer.publish(&server.url, "alice.key", &first));

    let next = maintainer.block_stats("0.2.0", b"another build");
    let refused = failed(&maintainer.publish(&server.url, "mallory.key", &next));
    assert!(refused.contains("(403)") && refused.contains("claimed"), "{refused}");
    assert_eq!(refused.trim().lines().count(), 1, "one line: {refused}");

    let again = failed(&maintainer.publish(&server.url, "alice.key", &first));
    assert!(
        again.contains("(409)") && again.contains("already published"),
        "{again}"
    );

    succeeded(&maintainer.publish(&server.url, "alice.key", &next));
    let listed: serde_json::Value = server.get_json("/api/v1/modules?q=block");
    assert_eq!(listed[0]["version"], "0.2.0", "the latest version: {listed}");
}

#[test]
fn a_binary_that_is_not_the_stated_one_is_refused_and_nothing_is_signed() {
    let dir = temp_dir("server-tampered");
    let (registry, _) = init_registry(&dir);
    let server = RegistryServer::start(&registry, &[]);
    let maintainer = Maintainer::new(&dir);
    let manifest = maintainer.block_stats("0.1.0", BINARY);
    let before = server.targets_version();

    let mut tampered = BINARY.to_vec();
    tampered[5] ^= 1;
    let (status, error) = server.post_publish(maintainer.request("alice.key", &manifest, &tampered, BINARY));
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("not the one the statement hashes"), "{error}");

    // Stated and sent agree, but the manifest pins another binary.
    let (status, error) = server.post_publish(maintainer.request("alice.key", &manifest, &tampered, &tampered));
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("[binary] hash"), "{error}");

    let (status, error) = server.post_publish(b"\x93not a request".to_vec());
    assert_eq!(status, 400, "{error}");

    assert_eq!(server.targets_version(), before, "nothing was signed");
    assert_eq!(server.get("/api/v1/modules/block-stats").status(), 404);
    let claims: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.join("registry.json")).expect("claims")).expect("json");
    assert_eq!(
        claims["claims"],
        serde_json::json!({}),
        "a refused publish claims nothing"
    );
}

#[test]
fn an_upload_over_the_limit_is_refused_with_413_and_an_api_error() {
    let dir = temp_dir("server-limit");
    let (registry, _) = init_registry(&dir);
    let server = RegistryServer::start(&registry, &["--max-upload", "4096"]);
    let maintainer = Maintainer::new(&dir);
    let big = vec![7u8; 8192];
    let manifest = maintainer.block_stats("0.1.0", &big);
    let refused = failed(&maintainer.publish(&server.url, "alice.key", &manifest));
    assert!(refused.contains("(413)"), "{refused}");

    let (status, error) = server.post_publish(maintainer.request("alice.key", &manifest, &big, &big));
    assert_eq!(status, 413, "{error}");
    assert!(error.contains("limit of 4096 bytes"), "{error}");

    // Without a Content-Length, the limit stops the read.
    let chunk = vec![b'x'; 8192];
    let mut request = b"POST /api/v1/publish HTTP/1.1\r\nHost: registry\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2000\r\n".to_vec();
    request.extend_from_slice(&chunk);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    let (status, answer) = raw_answer(raw_request(&server.url, &request));
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains(r#"{"error":"#), "{answer}");
}

#[test]
fn a_stalled_upload_holds_up_no_one_and_is_cut_off() {
    let dir = temp_dir("server-stall");
    let (registry, _) = init_registry(&dir);
    let server = RegistryServer::start(&registry, &["--upload-timeout", "2"]);
    let maintainer = Maintainer::new(&dir);
    let manifest = maintainer.block_stats("0.1.0", BINARY);
    // A publish that promises 1000 bytes and sends 10.
    let stalled = raw_request(
        &server.url,
        b"POST /api/v1/publish HTTP/1.1\r\nHost: registry\r\nContent-Length: 1000\r\n\r\n0123456789",
    );
    succeeded(&maintainer.publish(&server.url, "alice.key", &manifest));
    assert_eq!(server.get("/api/v1/modules/block-stats/0.1.0/binary").status(), 200);
    let (status, answer) = raw_answer(stalled);
    assert_eq!(status, 408, "{answer}");
    assert!(answer.contains("did not arrive"), "{answer}");
}

#[test]
fn uploads_beyond_the_concurrent_limit_are_turned_away_until_one_ends() {
    let dir = temp_dir("server-concurrent");
    let (registry, _) = init_registry(&dir);
    // The stalled upload holds the permit until its timeout: long enough
    // that a loaded machine still sends the next uploads inside it (2 s
    // was not, in CI beside other work).
    let server = RegistryServer::start(&registry, &["--max-concurrent-uploads", "1", "--upload-timeout", "10"]);
    let maintainer = Maintainer::new(&dir);
    let manifest = maintainer.block_stats("0.1.0", BINARY);
    let stalled = raw_request(
        &server.url,
        b"POST /api/v1/publish HTTP/1.1\r\nHost: registry\r\nContent-Length: 1000\r\n\r\n0123456789",
    );
    // Once the stalled upload holds the one permit, the next is turned
    // away (until then this junk is read, and refused as junk).
    retry_until("a refusal while the stalled upload holds the permit", || {
        let (status, error) = server.post_publish(b"\x93junk".to_vec());
        assert!(status == 400 || status == 503, "{status} {error}");
        status == 503
    });
    let refused = failed(&maintainer.publish(&server.url, "alice.key", &manifest));
    assert!(refused.contains("(503)") && refused.contains("try again"), "{refused}");
    assert_eq!(raw_answer(stalled).0, 408);
    succeeded(&maintainer.publish(&server.url, "alice.key", &manifest));
}

#[test]
fn only_the_owner_yanks_and_the_yank_is_in_the_signed_targets() {
    let dir = temp_dir("server-yank");
    let (registry, root) = init_registry(&dir);
    let server = RegistryServer::start(&registry, &[]);
    let maintainer = Maintainer::new(&dir);
    let manifest = maintainer.block_stats("0.1.0", BINARY);
    succeeded(&maintainer.publish(&server.url, "alice.key", &manifest));

    let refused = failed(&maintainer.yank(&server.url, "mallory.key", "block-stats", "0.1.0"));
    assert!(refused.contains("(403)"), "{refused}");
    assert!(!signed_record(&server, &root, "block-stats", "0.1.0").yanked);
    let unknown = failed(&maintainer.yank(&server.url, "alice.key", "block-stats", "9.9.9"));
    assert!(unknown.contains("(404)"), "{unknown}");

    let out = succeeded(&maintainer.yank(&server.url, "alice.key", "block-stats", "0.1.0"));
    assert!(out.contains("yanked block-stats 0.1.0"), "{out}");
    let record = signed_record(&server, &root, "block-stats", "0.1.0");
    assert!(record.yanked, "the signed record says yanked");
    // Still downloadable, for lock files that pin it.
    let binary = server.get("/api/v1/modules/block-stats/0.1.0/binary");
    assert_eq!(binary.bytes().expect("body").as_ref(), BINARY);
    let found: serde_json::Value = server.get_json("/api/v1/modules?q=block");
    assert_eq!(
        found[0]["version"],
        serde_json::Value::Null,
        "no version to pick: {found}"
    );
}

/// A connection to `url` that has sent `request` as written.
fn raw_request(url: &str, request: &[u8]) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).expect("connects");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream.write_all(request).expect("request sent");
    stream
}

/// The status code of the answer on `stream`, and the whole answer.
fn raw_answer(mut stream: std::net::TcpStream) -> (u16, String) {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line in {answer:?}"));
    (status, answer)
}

/// Sends `GET TARGET` exactly as written (an HTTP library would normalize
/// `..` away); the status code.
fn raw_get_status(url: &str, target: &str) -> u16 {
    let request = format!("GET {target} HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n");
    raw_answer(raw_request(url, request.as_bytes())).0
}

#[test]
fn paths_that_leave_the_repository_are_not_found() {
    let dir = temp_dir("server-traversal");
    let (registry, _) = init_registry(&dir);
    let server = RegistryServer::start(&registry, &[]);
    assert_eq!(raw_get_status(&server.url, "/metadata/timestamp.json"), 200);
    for target in [
        "/targets/../../keys/root.json",
        "/targets/..%2f..%2fkeys/root.json",
        "/targets/%2e%2e/%2e%2e/keys/root.json",
        "/targets//etc/passwd",
        "/targets/%2fetc%2fpasswd",
        "/metadata/..%2f..%2fkeys%2froot.json",
        "/metadata/..",
        "/targets/",
        "/targets/x/../../../registry.json",
    ] {
        assert_eq!(raw_get_status(&server.url, target), 404, "{target}");
    }
}

#[test]
fn a_restarted_server_keeps_its_claims_and_versions() {
    let dir = temp_dir("server-restart");
    let (registry, root) = init_registry(&dir);
    let maintainer = Maintainer::new(&dir);
    let manifest = maintainer.block_stats("0.1.0", BINARY);
    let first = RegistryServer::start(&registry, &[]);
    succeeded(&maintainer.publish(&first.url, "alice.key", &manifest));
    let published = signed_record(&first, &root, "block-stats", "0.1.0");
    drop(first);

    let server = RegistryServer::start(&registry, &[]);
    assert_eq!(signed_record(&server, &root, "block-stats", "0.1.0"), published);
    let again = failed(&maintainer.publish(&server.url, "alice.key", &manifest));
    assert!(again.contains("(409)"), "{again}");
    let next = maintainer.block_stats("0.2.0", b"another build");
    let refused = failed(&maintainer.publish(&server.url, "mallory.key", &next));
    assert!(refused.contains("(403)"), "the claim survives: {refused}");
    succeeded(&maintainer.publish(&server.url, "alice.key", &next));
}

#[test]
fn the_server_re_signs_the_timestamp_before_it_expires() {
    let dir = temp_dir("server-timestamp");
    let (registry, root) = init_registry(&dir);
    let server = RegistryServer::start(&registry, &["--timestamp-lifetime", "3"]);
    let version = || {
        let timestamp: serde_json::Value = server.get_json("/metadata/timestamp.json");
        timestamp["signed"]["version"].as_u64().expect("a version")
    };
    let first = version();
    // Two re-signings after the one at start.
    server.wait_log("timestamp re-signed", 2);
    assert!(version() > first + 1, "the served timestamp is the re-signed one");
    // What is served verifies now: it never froze.
    let mut client = TrustedMetadata::from_root(&std::fs::read(&root).expect("root")).expect("root");
    client
        .refresh(&HttpMetadata(server.url.clone()), SystemTime::now())
        .expect("the served timestamp is fresh");
}

#[test]
fn init_refuses_a_directory_that_holds_a_registry() {
    let dir = temp_dir("server-init");
    let (registry, root) = init_registry(&dir);
    assert!(root.starts_with(&registry));
    let before = std::fs::read(&root).expect("root");
    let refused = failed(&blvm_registry(&["init", registry.to_str().expect("utf-8")]));
    assert!(refused.contains("already holds a registry"), "{refused}");
    assert_eq!(std::fs::read(&root).expect("root"), before, "the keys and root stay");
}
