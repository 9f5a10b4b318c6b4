//! The `hello` as the node's IPC server sees it, before authentication: a
//! real `ModuleIpcServer` on a real Unix socket, one connection per input
//! (the fuzz process is the module: its pid is bound). The first byte
//! picks the input's form: arbitrary bytes as the connection's whole
//! stream, or a structure-aware `hello` (its keys in any order, some left
//! out or doubled, unknown ones among them; the real module id, name and
//! token, or near misses) followed by the stream after the handshake.
//!
//! Properties: nothing panics, on any of the server's threads; the server
//! answers every connection before it closes it, with exactly the verdict
//! the handshake rules give for the first frame (a `refused` with the
//! right code, nothing after it; or a `welcome` for this module, version
//! 1, the capabilities granted); everything it sends decodes; a `hello`
//! that decodes re-encodes to a frame that decodes to the same `hello`.
#![no_main]

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arbitrary::Unstructured;
use blvm_module_host::ipc::MAX_HELLO_LEN;
use blvm_module_host::{
    BackendError, ConnectionEvent, EventManager, IpcServerConfig, ModuleApiHub, ModuleIpcServer, ModuleSpec,
    NodeBackend,
};
use blvm_module_protocol::codec::FrameDecoder;
use blvm_module_protocol::frame::{encode, Frame};
use blvm_module_protocol::methods::chain::{ChainInfo, ChainTip, OutPoint, Utxo};
use blvm_module_protocol::methods::mempool::{MempoolSize, MempoolTransaction};
use blvm_module_protocol::methods::mining::{BlockTemplate, BlockTemplateParams, SubmitBlockResult};
use blvm_module_protocol::methods::network::{NetworkStats, PeerInfo};
use blvm_module_protocol::{Hash32, Hello, Method, PermissionSet, SUPPORTED_VERSIONS};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio::sync::broadcast::{self, error::RecvError};

/// How long the server may take to answer, or to close an accepted
/// connection: beyond it, a hang.
const DEADLINE: Duration = Duration::from_secs(10);

/// The module's name the node expects.
const NAME: &str = "fuzz";

/// A node with nothing to serve: a request past the handshake is answered
/// `unavailable` (or refused before it gets here).
struct Nothing;

fn none<T>() -> Result<T, BackendError> {
    Err(BackendError::Unavailable("fuzz".into()))
}

impl NodeBackend for Nothing {
    fn get_block(&self, _: &Hash32) -> Result<Option<Vec<u8>>, BackendError> {
        none()
    }
    fn get_block_header(&self, _: &Hash32) -> Result<Option<(Vec<u8>, u64)>, BackendError> {
        none()
    }
    fn get_block_hash(&self, _: u64) -> Result<Option<Hash32>, BackendError> {
        none()
    }
    fn get_transaction(&self, _: &Hash32) -> Result<Option<(Vec<u8>, Hash32)>, BackendError> {
        none()
    }
    fn get_chain_tip(&self) -> Result<ChainTip, BackendError> {
        none()
    }
    fn get_chain_info(&self) -> Result<ChainInfo, BackendError> {
        none()
    }
    fn get_utxo(&self, _: &OutPoint) -> Result<Option<Utxo>, BackendError> {
        none()
    }
    fn get_mempool_txids(&self) -> Result<Vec<Hash32>, BackendError> {
        none()
    }
    fn get_mempool_transaction(&self, _: &Hash32) -> Result<MempoolTransaction, BackendError> {
        none()
    }
    fn get_mempool_size(&self) -> Result<MempoolSize, BackendError> {
        none()
    }
    fn get_fee_estimate(&self, _: u32) -> Result<Option<f64>, BackendError> {
        none()
    }
    fn get_block_template(&self, _: &BlockTemplateParams) -> Result<BlockTemplate, BackendError> {
        none()
    }
    fn submit_transaction(&self, _: &[u8]) -> Result<Hash32, BackendError> {
        none()
    }
    fn submit_block(&self, _: &[u8]) -> Result<SubmitBlockResult, BackendError> {
        none()
    }
    fn get_network_stats(&self) -> Result<NetworkStats, BackendError> {
        none()
    }
    fn get_network_peers(&self) -> Result<Vec<PeerInfo>, BackendError> {
        none()
    }
}

/// The module the node expects now: a fresh id and token after every
/// accepted connection (a token is good for one).
struct Expected {
    n: u64,
    module_id: String,
    token: String,
}

struct Node {
    server: ModuleIpcServer,
    bus: Arc<EventManager>,
    path: PathBuf,
    state: Mutex<(Expected, broadcast::Receiver<ConnectionEvent>)>,
}

fn expect(server: &ModuleIpcServer, n: u64) -> Expected {
    let module_id = format!("fuzz-{n}");
    let spec = ModuleSpec::new(module_id.clone(), NAME, "0.1.0");
    let ticket = server.expect_module(spec).expect("a ticket");
    server.bind_pid(&module_id, std::process::id());
    Expected {
        n,
        module_id,
        token: ticket.token,
    }
}

/// The server's directory is `<temp>/<TEMP_PREFIX><pid>`.
const TEMP_PREFIX: &str = "blvm-fuzz-handshake-";

/// Removes the directories of earlier runs (a fuzzer exits without
/// cleaning up) whose process is gone.
fn sweep() {
    for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        // libFuzzer's `main` is not Rust's: a write to a connection the
        // server has closed must be an error, not a signal that kills us.
        // SAFETY: setting a signal's disposition to SIG_IGN at start-up.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        sweep();
        let dir = std::env::temp_dir().join(format!("{TEMP_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let bus = Arc::new(EventManager::new());
        let hub = Arc::new(ModuleApiHub::new(Arc::new(Nothing), Arc::clone(&bus)));
        let config = IpcServerConfig {
            handshake_timeout: DEADLINE,
            ..IpcServerConfig::default()
        };
        let server = ModuleIpcServer::bind(dir.join("node.sock"), hub, config).expect("the server binds");
        let path = server.socket_path().to_path_buf();
        let events = server.subscribe_connection_events();
        let expected = expect(&server, 1);
        Node {
            server,
            bus,
            path,
            state: Mutex::new((expected, events)),
        }
    })
}

/// What the handshake rules say of a connection whose stream is `stream`.
#[derive(Debug, PartialEq)]
enum Verdict {
    Refused(&'static str),
    Welcome,
}

fn verdict(stream: &[u8], expected: &Expected) -> Verdict {
    let mut buf = BytesMut::from(stream);
    let hello = match FrameDecoder::new(MAX_HELLO_LEN).next_frame(&mut buf) {
        Ok(Some(Frame::Hello(hello))) => hello,
        Ok(Some(_)) => return Verdict::Refused("unexpected_frame"),
        // Malformed, too large, or closed before it was complete.
        Ok(None) | Err(_) => return Verdict::Refused("bad_handshake"),
    };
    re_encodes(&hello);
    if !SUPPORTED_VERSIONS.iter().any(|v| hello.protocol_versions.contains(v)) {
        return Verdict::Refused("unsupported_version");
    }
    if hello.module_id != expected.module_id || hello.token != expected.token {
        return Verdict::Refused("bad_token");
    }
    if hello.module_name != NAME {
        return Verdict::Refused("identity_mismatch");
    }
    Verdict::Welcome
}

fn re_encodes(hello: &Hello) {
    let mut wire = Vec::new();
    Frame::Hello(hello.clone()).encode(&mut wire).expect("a hello encodes");
    let mut buf = BytesMut::from(&wire[..]);
    match FrameDecoder::new(MAX_HELLO_LEN).next_frame(&mut buf) {
        Ok(Some(Frame::Hello(again))) => assert_eq!(&again, hello, "decode(encode(hello)) == hello"),
        other => panic!("a re-encoded hello decodes as one: {other:?}"),
    }
}

/// A `hello` map written key by key, then what the module sends after it.
fn structured(data: &[u8], expected: &Expected) -> Vec<u8> {
    let mut u = Unstructured::new(data);
    let mut pick = || u8::from(u.arbitrary::<u8>().unwrap_or(0));
    let choices = [pick(), pick(), pick(), pick(), pick(), pick(), pick()];
    let text = |u: &mut Unstructured<'_>| u.arbitrary::<String>().unwrap_or_default();
    let near = |s: &str, u: &mut Unstructured<'_>| {
        let mut s = s.to_owned();
        match u.arbitrary::<u8>().unwrap_or(0) % 3 {
            0 => {
                s.pop();
            }
            1 => s.push('0'),
            _ => s = s.to_uppercase(),
        }
        s
    };
    let versions: Vec<u32> = match choices[0] % 5 {
        0 | 1 => vec![1],
        2 => vec![2, 1],
        3 => vec![],
        _ => u.arbitrary().unwrap_or_default(),
    };
    let module_id = match choices[1] % 8 {
        0 => text(&mut u),
        1 => near(&expected.module_id, &mut u),
        2 => format!("fuzz-{}", expected.n.saturating_sub(1)),
        _ => expected.module_id.clone(),
    };
    let token = match choices[2] % 8 {
        0 => text(&mut u),
        1 => near(&expected.token, &mut u),
        _ => expected.token.clone(),
    };
    let name = match choices[3] % 8 {
        0 => text(&mut u),
        1 => near(NAME, &mut u),
        _ => NAME.to_owned(),
    };
    let kind = match choices[4] % 16 {
        0 => "welcome",
        1 => "request",
        2 => "hellO",
        _ => "hello",
    };
    enum V {
        Str(String),
        Ints(Vec<u32>),
        Int(u64),
    }
    let mut entries = vec![
        ("type", V::Str(kind.to_owned())),
        ("protocol_versions", V::Ints(versions)),
        ("module_id", V::Str(module_id)),
        ("module_name", V::Str(name)),
        ("version", V::Str(text(&mut u))),
        ("token", V::Str(token)),
    ];
    // Now and then a key left out, one doubled, an unknown one, a wrong
    // type; the order shuffled.
    match choices[5] % 12 {
        0 => {
            entries.remove(usize::from(choices[6]) % entries.len());
        }
        1 => entries.push(("module_id", V::Str(text(&mut u)))),
        2 => entries.push(("capabilities", V::Ints(vec![u32::MAX]))),
        3 => entries.push(("protocol_versions", V::Str("1".into()))),
        4 => entries.push(("token", V::Int(u.arbitrary().unwrap_or(0)))),
        _ => {}
    }
    for i in (1..entries.len()).rev() {
        let j = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % (i + 1);
        entries.swap(i, j);
    }
    let mut payload = Vec::new();
    rmp::encode::write_map_len(&mut payload, entries.len() as u32).expect("a Vec");
    for (key, value) in &entries {
        rmp::encode::write_str(&mut payload, key).expect("a Vec");
        match value {
            V::Str(s) => rmp::encode::write_str(&mut payload, s).expect("a Vec"),
            V::Int(n) => {
                rmp::encode::write_uint(&mut payload, *n).expect("a Vec");
            }
            V::Ints(list) => {
                rmp::encode::write_array_len(&mut payload, list.len() as u32).expect("a Vec");
                for n in list {
                    rmp::encode::write_uint(&mut payload, u64::from(*n)).expect("a Vec");
                }
            }
        }
    }
    let mut stream = (payload.len() as u32).to_be_bytes().to_vec();
    stream.extend_from_slice(&payload);
    // After the handshake: requests (every one but `ping` needs a
    // capability this module lacks), or raw bytes.
    if u.arbitrary::<bool>().unwrap_or(false) {
        stream.extend_from_slice(u.take_rest());
    } else {
        let count = u.arbitrary::<u8>().unwrap_or(0) % 4;
        for id in 0..u64::from(count) {
            let method = Method::ALL[usize::from(u.arbitrary::<u8>().unwrap_or(0)) % Method::ALL.len()];
            let params: &[u8] = if u.arbitrary::<bool>().unwrap_or(true) {
                &[0x80]
            } else {
                u.arbitrary().unwrap_or(&[0x80])
            };
            encode::request_raw(&mut stream, id, method.name(), params);
        }
    }
    stream
}

/// Sends `stream` on a fresh connection, half-closes it, and returns all
/// the server sent until it closed.
fn exchange(node: &Node, stream: &[u8]) -> Vec<u8> {
    let mut socket = UnixStream::connect(&node.path).expect("the server accepts");
    socket.set_read_timeout(Some(DEADLINE)).expect("a timeout");
    socket.set_write_timeout(Some(DEADLINE)).expect("a timeout");
    // The server stops reading once it has refused: a broken pipe then is
    // its right.
    if let Err(e) = socket.write_all(stream) {
        assert!(
            matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "writing to the server: {e}"
        );
    }
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    if let Err(e) = socket.read_to_end(&mut reply) {
        assert_eq!(
            e.kind(),
            ErrorKind::ConnectionReset,
            "the server answers and closes in time: {e}"
        );
    }
    reply
}

/// Waits until the server has finished with the accepted `module_id`.
/// Blocks on the server's events (a server that never closes it is a
/// hang, which libFuzzer's `-timeout` reports): polling with sleeps cost
/// more than the rest of an input's exchange.
fn wait_closed(events: &mut broadcast::Receiver<ConnectionEvent>, module_id: &str) {
    loop {
        match events.blocking_recv() {
            Ok(ConnectionEvent::Closed { module_id: id, .. }) if id == module_id => return,
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => panic!("the server's events stopped"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let node = node();
    let mut state = node.state.lock().unwrap_or_else(|p| p.into_inner());
    let (expected, events) = &mut *state;
    let stream = if form & 1 == 0 {
        rest.to_vec()
    } else {
        structured(rest, expected)
    };
    let want = verdict(&stream, expected);
    let reply = exchange(node, &stream);
    let mut buf = BytesMut::from(&reply[..]);
    let decoder = FrameDecoder::default();
    let first = decoder
        .next_frame(&mut buf)
        .expect("the server's answer decodes")
        .expect("the server answers before it closes");
    match (&first, &want) {
        (Frame::Refused(refused), Verdict::Refused(code)) => {
            assert_eq!(refused.code, *code, "refused for the right reason: {}", refused.reason);
            assert!(buf.is_empty(), "nothing follows a refusal");
        }
        (Frame::Welcome(welcome), Verdict::Welcome) => {
            assert_eq!(welcome.protocol_version, 1);
            assert_eq!(welcome.capabilities, PermissionSet::empty());
            // Its answers to what followed the hello.
            while let Some(frame) = decoder.next_frame(&mut buf).expect("the server's frames decode") {
                assert!(matches!(frame, Frame::Response(_)), "only answers follow: {frame:?}");
            }
            assert!(buf.is_empty(), "the server sends whole frames");
            wait_closed(events, &expected.module_id);
            // As the module manager ends a spawn: the server forgets
            // it, the event bus retires it (else its delivery counters
            // stay, one set per spawn).
            node.server.forget_module(&expected.module_id);
            node.bus.retire(&expected.module_id);
            *expected = expect(&node.server, expected.n + 1);
        }
        (frame, want) => panic!("the server answered {frame:?}; the handshake rules say {want:?}"),
    }
    // Refusals and closes announced meanwhile.
    while events.try_recv().is_ok() {}
});
