//! The JSON-RPC server over real TCP on 127.0.0.1, checked against the exact
//! bytes Bitcoin Core v28 answers with.
//!
//! The client is a few lines of HTTP/1.1 over `std::net::TcpStream`
//! (`Connection: close`, read to EOF), so what is asserted is what goes over
//! the wire. Every socket read has a timeout, so a hang fails the test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use blvm_node::rpc::auth::{basic_auth_header, read_cookie_file};
use blvm_node::rpc::{CookieFile, MethodTable, RpcAuth, RpcError, RpcServer, RpcServerConfig};
use serde_json::{json, Value};

const USER: &str = "alice";
const PASS: &str = "correct horse";

struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", self.body))
    }
}

/// Sends `head` (request line and headers, without the final blank line)
/// and `body`, and reads the whole response.
fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect to rpc server");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    // The server may answer (413) and close before taking the body; that is
    // what some tests check, so a failed write is not an error here.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    HttpResponse { status, headers, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        s = &rest[size + 2..];
    }
}

/// A server on 127.0.0.1:0 with `echo`, `fail`, `getblockcount`, `height`,
/// `notify` and `wait`, accepting `alice:correct horse` and a cookie.
struct Node {
    rt: tokio::runtime::Runtime,
    server: Option<RpcServer>,
    addr: SocketAddr,
    dir: PathBuf,
    methods: Arc<MethodTable>,
    notified: Arc<AtomicUsize>,
    /// Releases a running `wait` call.
    release: mpsc::Sender<()>,
    /// Receives one message each time `wait` starts.
    entered: mpsc::Receiver<()>,
}

impl Node {
    fn start(name: &str) -> Node {
        Self::start_with(name, RpcServerConfig::default())
    }

    fn start_with(name: &str, config: RpcServerConfig) -> Node {
        let dir = std::env::temp_dir().join(format!("blvm-rpc-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();

        let methods = Arc::new(MethodTable::new());
        let notified = Arc::new(AtomicUsize::new(0));
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let (enter, entered) = mpsc::channel::<()>();
        let enter = Mutex::new(enter);
        methods
            .register("echo", "echo ( args )\n\nReturns its params.", |p| Ok(params_json(p)))
            .unwrap();
        methods
            .register("fail", "fail\n\nAlways fails with -8.", |_| {
                Err(RpcError::invalid_parameter("always fails"))
            })
            .unwrap();
        methods
            .register("getblockcount", "getblockcount\n\nReturns 438.", |_| Ok(json!(438)))
            .unwrap();
        methods
            .register("height", "height height\n\nReturns its u32 argument.", |p| {
                Ok(json!(p.required::<u32>(0, "height")?))
            })
            .unwrap();
        let counter = Arc::clone(&notified);
        methods
            .register("notify", "notify\n\nCounts calls.", move |_| {
                Ok(json!(counter.fetch_add(1, Ordering::SeqCst) + 1))
            })
            .unwrap();
        methods
            .register("wait", "wait\n\nBlocks until the test releases it.", move |_| {
                let rx = released.lock().unwrap();
                enter
                    .lock()
                    .unwrap()
                    .send(())
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                rx.recv_timeout(Duration::from_secs(20))
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                Ok(json!("released"))
            })
            .unwrap();

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cookie = CookieFile::create(&dir).expect("write cookie");
        let auth = RpcAuth {
            user_pass: Some((USER.into(), PASS.into())),
            cookie: Some(cookie),
        };
        let server = {
            let _entered = rt.enter();
            RpcServer::bind_with_config("127.0.0.1:0".parse().unwrap(), auth, methods.clone(), config).unwrap()
        };
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        Node {
            rt,
            server: Some(server),
            addr,
            dir,
            methods,
            notified,
            release,
            entered,
        }
    }

    fn post_as(&self, authorization: Option<&str>, body: &str) -> HttpResponse {
        let mut head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: {}",
            self.addr,
            body.len()
        );
        if let Some(a) = authorization {
            head.push_str(&format!("\r\nAuthorization: {a}"));
        }
        exchange(self.addr, &head, body.as_bytes())
    }

    fn post(&self, body: &str) -> HttpResponse {
        self.post_as(Some(&basic_auth_header(USER, PASS)), body)
    }

    fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            assert!(self.rt.block_on(server.shutdown()), "shutdown was not graceful");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn params_json(p: blvm_node::rpc::Params) -> Value {
    match p {
        blvm_node::rpc::Params::Positional(v) => Value::Array(v),
        blvm_node::rpc::Params::Named(m) => Value::Object(m),
    }
}

#[test]
fn v1_request_gets_cores_exact_reply() {
    let node = Node::start("v1");
    let r = node.post(r#"{"jsonrpc":"1.0","id":1,"method":"getblockcount","params":[]}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, "{\"result\":438,\"error\":null,\"id\":1}\n");

    // bitcoin-cli style: no "jsonrpc", string id, no Content-Type header.
    let r = node.post(r#"{"id":"curltest","method":"echo","params":["a",2]}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "{\"result\":[\"a\",2],\"error\":null,\"id\":\"curltest\"}\n");
}

#[test]
fn v1_method_error_is_http_500() {
    let node = Node::start("v1err");
    let r = node.post(r#"{"jsonrpc":"1.0","id":7,"method":"fail"}"#);
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        "{\"result\":null,\"error\":{\"code\":-8,\"message\":\"always fails\"},\"id\":7}\n"
    );
}

#[test]
fn v2_request_and_error_are_http_200() {
    let node = Node::start("v2");
    let r = node.post(r#"{"jsonrpc":"2.0","id":"a","method":"getblockcount"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "{\"jsonrpc\":\"2.0\",\"result\":438,\"id\":\"a\"}\n");

    let r = node.post(r#"{"jsonrpc":"2.0","id":2,"method":"fail"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-8,\"message\":\"always fails\"},\"id\":2}\n"
    );
}

#[test]
fn v2_notification_runs_and_gets_204() {
    let node = Node::start("notif");
    let r = node.post(r#"{"jsonrpc":"2.0","method":"notify"}"#);
    assert_eq!(r.status, 204);
    assert_eq!(r.body, "");
    assert_eq!(node.notified.load(Ordering::SeqCst), 1);
}

#[test]
fn named_params_reach_the_method() {
    let node = Node::start("named");
    let r = node.post(r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":{"verbosity":2,"blockhash":"00"}}"#);
    assert_eq!(
        r.json(),
        json!({"jsonrpc":"2.0","result":{"verbosity":2,"blockhash":"00"},"id":1})
    );

    let r = node.post(r#"{"jsonrpc":"2.0","id":1,"method":"height","params":{"height":5}}"#);
    assert_eq!(r.body, "{\"jsonrpc\":\"2.0\",\"result\":5,\"id\":1}\n");
}

#[test]
fn wrong_param_type_gets_cores_type_error() {
    let node = Node::start("typeerr");
    let r = node.post(r#"{"jsonrpc":"1.0","id":1,"method":"height","params":["ten"]}"#);
    assert_eq!(r.status, 500);
    let error = &r.json()["error"];
    assert_eq!(error["code"], -3);
    assert_eq!(
        error["message"],
        "Wrong type passed:\n{\n    \"Position 1 (height)\": \"JSON value of type string is not of expected type number\"\n}"
    );
}

#[test]
fn batch_mixes_versions_errors_and_notifications() {
    let node = Node::start("batch");
    let r = node.post(
        r#"[
            {"jsonrpc":"1.0","id":1,"method":"getblockcount"},
            {"jsonrpc":"2.0","id":"two","method":"echo","params":["x"]},
            {"jsonrpc":"2.0","id":3,"method":"fail"},
            {"jsonrpc":"2.0","method":"notify"},
            {"id":5,"method":"nosuch"},
            7
        ]"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        concat!(
            "[{\"result\":438,\"error\":null,\"id\":1},",
            "{\"jsonrpc\":\"2.0\",\"result\":[\"x\"],\"id\":\"two\"},",
            "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-8,\"message\":\"always fails\"},\"id\":3},",
            "{\"result\":null,\"error\":{\"code\":-32601,\"message\":\"Method not found\"},\"id\":5},",
            "{\"result\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid Request object\"},\"id\":null}]\n"
        )
    );
    assert_eq!(node.notified.load(Ordering::SeqCst), 1, "the notification ran");
}

#[test]
fn batch_of_only_notifications_gets_204() {
    let node = Node::start("batchnotif");
    let r = node.post(r#"[{"jsonrpc":"2.0","method":"notify"},{"jsonrpc":"2.0","method":"notify"}]"#);
    assert_eq!(r.status, 204);
    assert_eq!(r.body, "");
    assert_eq!(node.notified.load(Ordering::SeqCst), 2);
}

#[test]
fn empty_batch_is_invalid_request() {
    // Deliberately stricter than Core v28 (which answers `[]`); see rpc::protocol.
    let node = Node::start("emptybatch");
    let r = node.post("[]");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32600);
}

#[test]
fn malformed_json_is_parse_error() {
    let node = Node::start("parse");
    let r = node.post(r#"{"id":1,"method":"#);
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body,
        "{\"result\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"},\"id\":null}\n"
    );
}

#[test]
fn non_object_request_is_refused_with_cores_codes() {
    let node = Node::start("nonobject");
    // Inside a batch: Core's `JSONRPCRequest::parse`, -32600.
    let r = node.post(r#"["getblockcount"]"#);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        "[{\"result\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid Request object\"},\"id\":null}]\n"
    );
    // At top level Core answers -32700 "Top-level object parse error".
    let r = node.post("42");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json()["error"],
        json!({"code": -32700, "message": "Top-level object parse error"})
    );
    // An object that is not a request: -32600 and HTTP 400, keeping the id.
    let r = node.post(r#"{"id":9,"method":12}"#);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        "{\"result\":null,\"error\":{\"code\":-32600,\"message\":\"Method must be a string\"},\"id\":9}\n"
    );
}

#[test]
fn unknown_method_is_404_in_v1_and_200_in_v2() {
    let node = Node::start("unknown");
    let r = node.post(r#"{"jsonrpc":"1.0","id":1,"method":"nosuch"}"#);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        "{\"result\":null,\"error\":{\"code\":-32601,\"message\":\"Method not found\"},\"id\":1}\n"
    );
    let r = node.post(r#"{"jsonrpc":"2.0","id":1,"method":"nosuch"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"Method not found\"},\"id\":1}\n"
    );
}

#[test]
fn wrong_or_missing_credentials_get_401() {
    let node = Node::start("badauth");
    let body = r#"{"id":1,"method":"getblockcount"}"#;
    for auth in [
        Some(basic_auth_header(USER, "wrong")),
        Some("Basic !!!".to_owned()),
        None,
    ] {
        let r = node.post_as(auth.as_deref(), body);
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"jsonrpc\""));
        assert_eq!(r.body, "");
    }
}

#[test]
fn user_pass_and_cookie_both_work_and_cookie_is_removed_at_shutdown() {
    let mut node = Node::start("cookie");
    let path = node.dir.join(".cookie");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let (user, pass) = read_cookie_file(&path).unwrap();
    assert_eq!(user, "__cookie__");
    assert_eq!(pass.len(), 64);
    assert!(pass.bytes().all(|b| b.is_ascii_hexdigit()));

    let body = r#"{"id":1,"method":"getblockcount"}"#;
    assert_eq!(node.post_as(Some(&basic_auth_header(&user, &pass)), body).status, 200);
    assert_eq!(node.post_as(Some(&basic_auth_header(USER, PASS)), body).status, 200);

    node.shutdown();
    assert!(!path.exists(), "cookie file left behind");
    assert!(TcpStream::connect(node.addr).is_err(), "still listening after shutdown");
}

#[test]
fn body_over_limit_is_refused() {
    // Default limit (32 MiB): refused from the declared length alone.
    let node = Node::start("limit");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 40000000",
        basic_auth_header(USER, PASS)
    );
    assert_eq!(exchange(node.addr, &head, b"").status, 413);
    drop(node);

    // Small limit: a chunked body is refused once it passes the limit.
    let config = RpcServerConfig {
        max_body_size: 1024,
        ..RpcServerConfig::default()
    };
    let node = Node::start_with("limitchunked", config);
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked",
        basic_auth_header(USER, PASS)
    );
    let chunk = format!("{:x}\r\n{}\r\n", 2000, " ".repeat(2000));
    assert_eq!(exchange(node.addr, &head, chunk.as_bytes()).status, 413);

    // Under the limit, the same server answers.
    let padded = format!("{}{{\"id\":1,\"method\":\"getblockcount\"}}", " ".repeat(900));
    assert_eq!(node.post(&padded).status, 200);
}

#[test]
fn help_lists_methods_and_describes_one() {
    let node = Node::start("help");
    let r = node.post(r#"{"id":1,"method":"help"}"#);
    assert_eq!(
        r.json()["result"],
        "echo ( args )\nfail\ngetblockcount\nheight height\nhelp ( \"command\" )\nnotify\nwait"
    );
    let r = node.post(r#"{"id":1,"method":"help","params":["getblockcount"]}"#);
    assert_eq!(r.json()["result"], "getblockcount\n\nReturns 438.");
}

#[test]
fn methods_registered_at_runtime_are_served() {
    let node = Node::start("register");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"mod_hello"}"#;
    assert_eq!(node.post(body).json()["error"]["code"], -32601);
    node.methods
        .register("mod_hello", "mod_hello\n\nFrom a module.", |_| Ok(json!("hi")))
        .unwrap();
    assert_eq!(node.post(body).json()["result"], "hi");
    assert!(node.methods.unregister("mod_hello"));
    assert_eq!(node.post(body).json()["error"]["code"], -32601);
}

#[test]
fn slow_method_does_not_stall_other_requests() {
    let node = Node::start("slow");
    let addr = node.addr;
    let auth = basic_auth_header(USER, PASS);
    let slow = std::thread::spawn(move || {
        let body = r#"{"id":1,"method":"wait"}"#;
        let head = format!(
            "POST / HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Length: {}",
            body.len()
        );
        exchange(addr, &head, body.as_bytes())
    });
    node.entered
        .recv_timeout(Duration::from_secs(20))
        .expect("wait started");
    // `wait` is blocked until released, yet another request is answered.
    assert_eq!(node.post(r#"{"id":2,"method":"getblockcount"}"#).status, 200);
    node.release.send(()).unwrap();
    let r = slow.join().unwrap();
    assert_eq!(r.body, "{\"result\":\"released\",\"error\":null,\"id\":1}\n");
}

#[test]
fn only_post_to_root_is_served() {
    let node = Node::start("routes");
    let auth = basic_auth_header(USER, PASS);
    let r = exchange(node.addr, &format!("GET / HTTP/1.1\r\nAuthorization: {auth}"), b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.body, "JSONRPC server handles only POST requests");
    let body = r#"{"id":1,"method":"getblockcount"}"#;
    let head = format!(
        "POST /wallet/x HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Length: {}",
        body.len()
    );
    assert_eq!(exchange(node.addr, &head, body.as_bytes()).status, 404);
}
