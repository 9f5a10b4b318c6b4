//! Checked-in test vectors that pin the IPC wire format, and the checks that
//! `docs/ipc-protocol.md` shows exactly those bytes.
//!
//! Every `tests/vectors/<name>.bin` is one complete frame as it travels on
//! the socket, length prefix included (`tests/vectors/README.md` says what
//! each one is). The tests here prove three things:
//!
//! 1. `vectors_match_the_encoder`: encoding each vector's value with the
//!    encoders the node and the SDK use gives the file's bytes exactly. Run
//!    it with `BLVM_REGENERATE_VECTORS=1` to write the files instead; it then
//!    prints each vector's hex as the spec shows it.
//! 2. One test per file: `FrameDecoder::default().next_frame` decodes it to
//!    the expected values, field by field, and re-encoding the decoded frame
//!    gives back the file's bytes.
//! 3. The spec shows every vector's hex (and no hex that is not a vector),
//!    annotates the request vector byte by byte, and lists every method with
//!    its capability and every error code, so the page cannot drift from the
//!    code.

use std::fmt::Write as _;
use std::path::PathBuf;

use blvm_module_protocol::events::{Event, NewBlock};
use blvm_module_protocol::frame::{decode_body, encode};
use blvm_module_protocol::methods::chain::{ByHash, HeaderResult};
use blvm_module_protocol::methods::invocation::{
    RpcCall, RpcCallResult, HEALTH_CHECK, MODULE_CALL, RPC_CALL, TIMER_FIRED,
};
use blvm_module_protocol::methods::metrics::{
    MetricKind, MetricUpdate, MetricValue, MetricValues, ReadMetrics, ReportMetrics, ReportMetricsResult,
};
use blvm_module_protocol::{
    Empty, ErrorCode, Frame, FrameDecoder, FrameError, Hash32, Hello, LogLevel, LogRecord, Method, Permission, Refused,
    RemoteError, Shutdown, Welcome, DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use bytes::BytesMut;
use serde::{Deserialize, Serialize};

#[path = "vectors/durable.rs"]
mod durable;
#[path = "vectors/rpc.rs"]
mod rpc;
#[path = "vectors/storage.rs"]
mod storage;
#[path = "vectors/timers.rs"]
mod timers;

#[path = "vectors/filesystem.rs"]
mod filesystem;
#[path = "vectors/modules.rs"]
mod modules;

/// The normative spec the vectors are shown in.
const SPEC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ipc-protocol.md"));

/// The provenance notes of the vector files.
const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/README.md"));

/// Set to `1` to write the vector files from the encoder instead of
/// comparing them.
const REGENERATE: &str = "BLVM_REGENERATE_VECTORS";

/// Mainnet genesis block hash, display order.
const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
/// Mainnet block 1 hash, display order.
const BLOCK_1_HASH: &str = "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048";
/// Mainnet block 1 header, consensus serialization.
const BLOCK_1_HEADER: &str = "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000\
                              982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299";

/// The example module of every vector.
const MODULE_ID: &str = "blockwatch-1";
const MODULE_NAME: &str = "blockwatch";
const MODULE_VERSION: &str = "0.3.1";
/// An illustrative handshake token: 32 bytes as 64 hex digits, the shape the
/// node generates (a real one is random per spawn).
const TOKEN: &str = "8f3a5c0e9b7d41f2a6c8e0b3d5f7193a2c4e6a8b0d1f3e5c7a9b1d3f5e7c9a0b";

// ---------------------------------------------------------------------------
// The values of the vectors
// ---------------------------------------------------------------------------

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd-length hex `{s}`");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test constants are valid hex"))
        .collect()
}

fn block_1_hash() -> Hash32 {
    Hash32::from_display_hex(BLOCK_1_HASH).expect("BLOCK_1_HASH is 64 hex digits")
}

fn hello() -> Hello {
    Hello {
        protocol_versions: vec![PROTOCOL_VERSION],
        module_id: MODULE_ID.into(),
        module_name: MODULE_NAME.into(),
        version: MODULE_VERSION.into(),
        token: TOKEN.into(),
    }
}

fn welcome() -> Welcome {
    Welcome {
        protocol_version: PROTOCOL_VERSION,
        node_version: "0.1.0".into(),
        capabilities: [
            Permission::ReadBlockchain,
            Permission::ReadChainState,
            Permission::SubscribeEvents,
        ]
        .into_iter()
        .collect(),
        config: [("alert.min_height".to_owned(), "1".to_owned())].into(),
        data_dir: "/var/lib/blvm/modules/blockwatch".into(),
    }
}

fn refused() -> Refused {
    // The words the node's authenticator uses for a wrong token.
    Refused {
        code: "bad_token".into(),
        reason: format!("wrong token for module `{MODULE_ID}`"),
    }
}

fn header_result() -> HeaderResult {
    HeaderResult {
        header: Some(unhex(BLOCK_1_HEADER)),
        height: Some(1),
    }
}

fn method_not_found() -> RemoteError {
    RemoteError::method_not_found("get_private_keys")
}

fn permission_denied() -> RemoteError {
    // Exactly what the hub answers a module without `read_utxo`.
    RemoteError::permission_denied(Permission::ReadUTXO, format_args!("`{}`", Method::GetUtxo.name()))
}

fn new_block() -> NewBlock {
    NewBlock {
        block_hash: block_1_hash(),
        height: 1,
        header: unhex(BLOCK_1_HEADER),
    }
}

/// The payload of an event type no build knows: what a newer node might
/// send.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct QuantumBlockTeleported {
    block_hash: Hash32,
    qubits: u64,
}

fn quantum_block_teleported() -> QuantumBlockTeleported {
    QuantumBlockTeleported {
        block_hash: block_1_hash(),
        qubits: 1024,
    }
}

fn log_record() -> LogRecord {
    LogRecord {
        level: LogLevel::Info,
        target: "blockwatch::chain".into(),
        message: "new tip".into(),
        fields: [("height".to_owned(), "1".to_owned())].into(),
    }
}

fn shutdown() -> Shutdown {
    Shutdown {
        reason: "unload".into(),
        grace_ms: 5000,
    }
}

fn rpc_call() -> RpcCall {
    RpcCall {
        method: "blockwatch_status".into(),
        params_json: "[]".into(),
    }
}

fn rpc_call_result() -> RpcCallResult {
    RpcCallResult {
        result_json: r#"{"tip_height":1}"#.into(),
        error: None,
    }
}

/// The request of `request.bin` with an extra key, `"x_future": [1, "two",
/// {"three": 3}]`, between `id` and `method`: what a newer peer might send.
/// Built by hand because no encoder here writes unknown keys.
fn request_with_unknown_field() -> Vec<u8> {
    fn s(out: &mut Vec<u8>, v: &str) {
        rmp::encode::write_str(out, v).expect("writing to a Vec cannot fail");
    }
    let mut payload = Vec::new();
    rmp::encode::write_map_len(&mut payload, 5).expect("writing to a Vec cannot fail");
    s(&mut payload, "type");
    s(&mut payload, "request");
    s(&mut payload, "id");
    rmp::encode::write_uint(&mut payload, 1).expect("writing to a Vec cannot fail");
    s(&mut payload, "x_future");
    rmp::encode::write_array_len(&mut payload, 3).expect("writing to a Vec cannot fail");
    rmp::encode::write_uint(&mut payload, 1).expect("writing to a Vec cannot fail");
    s(&mut payload, "two");
    rmp::encode::write_map_len(&mut payload, 1).expect("writing to a Vec cannot fail");
    s(&mut payload, "three");
    rmp::encode::write_uint(&mut payload, 3).expect("writing to a Vec cannot fail");
    s(&mut payload, "method");
    s(&mut payload, Method::GetBlockHeader.name());
    s(&mut payload, "params");
    rmp_serde::encode::write_named(&mut payload, &ByHash { hash: block_1_hash() }).expect("ByHash encodes");
    with_length_prefix(&payload)
}

fn with_length_prefix(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("test payloads are small");
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

/// One vector: its file stem and its bytes as the encoder writes them.
struct Vector {
    name: &'static str,
    bytes: Vec<u8>,
}

/// Runs an encoder into a fresh buffer.
fn encoded(what: &str, f: impl FnOnce(&mut Vec<u8>) -> Result<(), blvm_module_protocol::EncodeError>) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut out).unwrap_or_else(|e| panic!("{what} must encode: {e}"));
    out
}

/// Every vector, encoded with the functions the node and the SDK call.
fn vectors() -> Vec<Vector> {
    let event_payload = |event: Event| {
        let mut payload = Vec::new();
        event.encode_payload(&mut payload).expect("a catalogue payload encodes");
        payload
    };
    let unknown_payload =
        rmp_serde::to_vec_named(&quantum_block_teleported()).expect("the unknown event's payload encodes");
    let mut all = vec![
        Vector {
            name: "hello",
            bytes: encoded("hello", |out| encode::control(out, "hello", &hello())),
        },
        Vector {
            name: "welcome",
            bytes: encoded("welcome", |out| encode::control(out, "welcome", &welcome())),
        },
        Vector {
            name: "refused",
            bytes: encoded("refused", |out| encode::control(out, "refused", &refused())),
        },
        Vector {
            name: "request",
            bytes: encoded("request", |out| {
                encode::request(out, 1, Method::GetBlockHeader.name(), &ByHash { hash: block_1_hash() })
            }),
        },
        Vector {
            name: "response_success",
            bytes: encoded("response", |out| encode::response(out, 1, &header_result())),
        },
        Vector {
            name: "response_error",
            bytes: encoded("error response", |out| {
                encode::response_err(out, 3, &method_not_found())
            }),
        },
        Vector {
            name: "response_error_permission_denied",
            bytes: encoded("permission_denied response", |out| {
                encode::response_err(out, 2, &permission_denied())
            }),
        },
        Vector {
            name: "event",
            bytes: {
                let mut out = Vec::new();
                encode::event_raw(&mut out, 1, "NewBlock", &event_payload(Event::NewBlock(new_block())));
                out
            },
        },
        Vector {
            name: "event_unknown_type",
            bytes: {
                let mut out = Vec::new();
                encode::event_raw(&mut out, 2, "QuantumBlockTeleported", &unknown_payload);
                out
            },
        },
        Vector {
            name: "log",
            bytes: encoded("log", |out| encode::control(out, "log", &log_record())),
        },
        Vector {
            name: "shutdown",
            bytes: encoded("shutdown", |out| encode::control(out, "shutdown", &shutdown())),
        },
        Vector {
            name: "invocation_request",
            bytes: encoded("invocation", |out| encode::request(out, 1, RPC_CALL, &rpc_call())),
        },
        Vector {
            name: "invocation_response",
            bytes: encoded("invocation response", |out| {
                encode::response(out, 1, &rpc_call_result())
            }),
        },
        Vector {
            name: "request_with_unknown_field",
            bytes: request_with_unknown_field(),
        },
        Vector {
            name: "health_check_request",
            bytes: encoded("health check", |out| encode::request(out, 2, HEALTH_CHECK, &Empty {})),
        },
        Vector {
            name: "health_check_response",
            bytes: encoded("health check answer", |out| encode::response(out, 2, &Empty {})),
        },
    ];
    all.extend(storage::vectors());
    all.extend(metrics_vectors());
    all.extend(modules::vectors());
    all.extend(filesystem::vectors());
    all.extend(rpc::vectors());
    all.extend(timers::vectors());
    all.extend(durable::vectors());
    all
}

// Metrics (`report_metrics`, `read_metrics`): values and vectors together.

fn report_metrics() -> ReportMetrics {
    ReportMetrics {
        metrics: vec![MetricUpdate {
            name: "blocks_seen".into(),
            kind: MetricKind::Counter,
            help: Some("Blocks seen.".into()),
            labels: [("kind".to_owned(), "full".to_owned())].into(),
            value: 1.0,
            observations: vec![],
            buckets: None,
        }],
    }
}

fn report_metrics_result() -> ReportMetricsResult {
    ReportMetricsResult {
        series: 1,
        max_series: 1000,
    }
}

fn read_metrics() -> ReadMetrics {
    ReadMetrics {
        source: Some(MODULE_NAME.into()),
        prefix: None,
    }
}

fn metric_values() -> MetricValues {
    MetricValues {
        metrics: vec![MetricValue {
            source: MODULE_NAME.into(),
            name: "module_blockwatch_blocks_seen".into(),
            kind: MetricKind::Counter,
            labels: [("kind".to_owned(), "full".to_owned())].into(),
            value: 1.0,
            count: None,
        }],
    }
}

fn metrics_vectors() -> Vec<Vector> {
    vec![
        Vector {
            name: "report_metrics_request",
            bytes: encoded("report_metrics", |out| {
                encode::request(out, 4, Method::ReportMetrics.name(), &report_metrics())
            }),
        },
        Vector {
            name: "report_metrics_response",
            bytes: encoded("report_metrics answer", |out| {
                encode::response(out, 4, &report_metrics_result())
            }),
        },
        Vector {
            name: "read_metrics_request",
            bytes: encoded("read_metrics", |out| {
                encode::request(out, 5, Method::ReadMetrics.name(), &read_metrics())
            }),
        },
        Vector {
            name: "read_metrics_response",
            bytes: encoded("read_metrics answer", |out| encode::response(out, 5, &metric_values())),
        },
    ]
}

/// The vector of a request frame: `method` with `params`, id `id`.
fn request<P: Serialize>(name: &'static str, id: u64, method: &str, params: &P) -> Vector {
    Vector {
        name,
        bytes: encoded(name, |out| encode::request(out, id, method, params)),
    }
}

/// Decodes a request vector, checks id, method and capability, and that
/// its params decode to `expected`; then that it re-encodes exactly.
#[track_caller]
fn check_request<P: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    name: &str,
    id: u64,
    method: Method,
    permission: Permission,
    expected: &P,
) {
    let bytes = read_vector(name);
    let frame = decode_only_frame(&bytes);
    let Frame::Request(r) = &frame else {
        panic!("{name}.bin decoded as {frame:?}")
    };
    assert_eq!((r.id, r.method.as_str()), (id, method.name()), "{name}");
    assert_eq!(Method::from_name(&r.method), Some(method));
    assert_eq!(method.required_permission(), Some(permission), "{name}");
    let params: P = r.params().unwrap_or_else(|e| panic!("{name}: params: {e}"));
    assert_eq!(&params, expected, "{name}");
    assert_re_encodes_to(&frame, &bytes);
}

/// Decodes the request vector `name`: its id, method and params.
fn request_vector<P: serde::de::DeserializeOwned>(name: &str) -> (u64, String, P) {
    let bytes = read_vector(name);
    let Frame::Request(request) = decode_only_frame(&bytes) else {
        panic!("{name} is not a request");
    };
    let params = request.params().expect("params decode");
    let (id, method) = (request.id, request.method.clone());
    assert_re_encodes_to(&Frame::Request(request), &bytes);
    (id, method, params)
}

/// Decodes the response vector `name`: its id and result.
fn response_vector<R: serde::de::DeserializeOwned>(name: &str) -> (u64, R) {
    let bytes = read_vector(name);
    let frame = decode_only_frame(&bytes);
    assert_re_encodes_to(&frame, &bytes);
    let Frame::Response(response) = frame else {
        panic!("{name} is not a response");
    };
    let raw = response.result.as_ref().expect("a success response");
    (response.id, decode_body("result", raw).expect("the result decodes"))
}

#[test]
fn report_metrics_vectors_decode_to_one_counter_update_and_its_series_count() {
    let (id, method, params) = request_vector::<ReportMetrics>("report_metrics_request");
    assert_eq!((id, method.as_str()), (4, "report_metrics"));
    assert_eq!(params, report_metrics());
    let (id, result) = response_vector::<ReportMetricsResult>("report_metrics_response");
    assert_eq!((id, result), (4, report_metrics_result()));
}

#[test]
fn read_metrics_vectors_decode_to_a_source_and_its_values() {
    let (id, method, params) = request_vector::<ReadMetrics>("read_metrics_request");
    assert_eq!((id, method.as_str()), (5, "read_metrics"));
    assert_eq!(params, read_metrics());
    let (id, result) = response_vector::<MetricValues>("read_metrics_response");
    assert_eq!((id, result), (5, metric_values()));
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("vectors")
}

fn read_vector(name: &str) -> Vec<u8> {
    let path = vector_dir().join(format!("{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (run `{REGENERATE}=1 cargo test -p blvm-module-protocol --test vectors \
             vectors_match_the_encoder` to create it)",
            path.display()
        )
    })
}

/// Lowercase hex pairs separated by spaces, 32 bytes per line: the form
/// the spec shows.
fn hex_block(bytes: &[u8]) -> String {
    bytes
        .chunks(32)
        .map(|line| line.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes `bytes` as exactly one complete frame, checking its length
/// prefix and that one byte less is not yet a frame.
fn decode_only_frame(bytes: &[u8]) -> Frame {
    let prefix = u32::from_be_bytes(bytes[..4].try_into().expect("a frame has a 4-byte prefix"));
    assert_eq!(prefix as usize, bytes.len() - 4, "the prefix is the payload length");
    let decoder = FrameDecoder::default();
    let mut short = BytesMut::from(&bytes[..bytes.len() - 1]);
    assert_eq!(
        decoder
            .next_frame(&mut short)
            .expect("a truncated frame is not an error"),
        None,
        "one byte short is not yet a frame"
    );
    let mut buf = BytesMut::from(bytes);
    let frame = decoder
        .next_frame(&mut buf)
        .expect("the vector is a valid frame")
        .expect("the vector is one complete frame");
    assert!(buf.is_empty(), "the vector holds exactly one frame");
    frame
}

/// Re-encoding `frame` gives back `bytes` exactly.
fn assert_re_encodes_to(frame: &Frame, bytes: &[u8]) {
    let mut out = Vec::new();
    frame.encode(&mut out).expect("a decoded frame re-encodes");
    assert_eq!(hex(&out), hex(bytes), "re-encoding the decoded frame changed its bytes");
}

// ---------------------------------------------------------------------------
// The files are what the encoder writes
// ---------------------------------------------------------------------------

#[test]
fn vectors_match_the_encoder() {
    let regenerate = std::env::var(REGENERATE).is_ok_and(|v| v == "1");
    if regenerate {
        std::fs::create_dir_all(vector_dir()).expect("the vector directory can be created");
    }
    let mut stale = Vec::new();
    for v in vectors() {
        let path = vector_dir().join(format!("{}.bin", v.name));
        if regenerate {
            std::fs::write(&path, &v.bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            println!(
                "{}.bin ({} bytes)\n```hex\n{}\n```\n",
                v.name,
                v.bytes.len(),
                hex_block(&v.bytes)
            );
            continue;
        }
        if read_vector(v.name) != v.bytes {
            stale.push(format!(
                "{}.bin differs from the encoder's output, which is:\n{}",
                v.name,
                hex_block(&v.bytes)
            ));
        }
    }
    if regenerate {
        let request = vectors()
            .into_iter()
            .find(|v| v.name == "request")
            .expect("there is a request vector");
        println!("request.bin annotated:\n```\n{}\n```", annotate(&request.bytes));
    }
    assert!(
        stale.is_empty(),
        "{}\n\nIf the wire format changed on purpose, run `{REGENERATE}=1 cargo test -p blvm-module-protocol \
         --test vectors vectors_match_the_encoder -- --nocapture`, update docs/ipc-protocol.md and say so in \
         tests/vectors/README.md.",
        stale.join("\n\n")
    );
}

#[test]
fn the_vector_directory_holds_exactly_the_listed_vectors_and_the_readme_describes_each() {
    let mut on_disk: Vec<String> = std::fs::read_dir(vector_dir())
        .expect("the vector directory exists")
        .map(|e| {
            e.expect("the directory can be listed")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".bin"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = vectors().iter().map(|v| format!("{}.bin", v.name)).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "stray or missing .bin files in tests/vectors");
    for name in &listed {
        assert!(
            README.contains(&format!("`{name}`")),
            "tests/vectors/README.md does not describe {name}"
        );
    }
}

// ---------------------------------------------------------------------------
// Each file decodes to its values and re-encodes byte for byte
// ---------------------------------------------------------------------------

#[test]
fn hello_vector_decodes_to_the_module_identity_and_re_encodes_exactly() {
    let bytes = read_vector("hello");
    let frame = decode_only_frame(&bytes);
    let Frame::Hello(h) = &frame else {
        panic!("hello.bin decoded as {frame:?}")
    };
    assert_eq!(h.protocol_versions, vec![1]);
    assert_eq!(h.module_id, "blockwatch-1");
    assert_eq!(h.module_name, "blockwatch");
    assert_eq!(h.version, "0.3.1");
    assert_eq!(h.token, TOKEN);
    assert_eq!(h.token.len(), 64, "a token is 32 bytes as hex");
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn welcome_vector_decodes_to_the_grant_and_re_encodes_exactly() {
    let bytes = read_vector("welcome");
    let frame = decode_only_frame(&bytes);
    let Frame::Welcome(w) = &frame else {
        panic!("welcome.bin decoded as {frame:?}")
    };
    assert_eq!(w.protocol_version, 1);
    assert_eq!(w.node_version, "0.1.0");
    assert_eq!(
        w.capabilities.iter().collect::<Vec<_>>(),
        vec![
            Permission::ReadBlockchain,
            Permission::ReadChainState,
            Permission::SubscribeEvents
        ]
    );
    assert_eq!(w.config.len(), 1);
    assert_eq!(w.config.get("alert.min_height").map(String::as_str), Some("1"));
    assert_eq!(w.data_dir, "/var/lib/blvm/modules/blockwatch");
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn refused_vector_decodes_to_code_and_reason_and_re_encodes_exactly() {
    let bytes = read_vector("refused");
    let frame = decode_only_frame(&bytes);
    let Frame::Refused(r) = &frame else {
        panic!("refused.bin decoded as {frame:?}")
    };
    assert_eq!(r.code, "bad_token");
    assert_eq!(r.reason, "wrong token for module `blockwatch-1`");
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn request_vector_decodes_to_get_block_header_for_block_1_and_re_encodes_exactly() {
    let bytes = read_vector("request");
    let frame = decode_only_frame(&bytes);
    let Frame::Request(r) = &frame else {
        panic!("request.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 1);
    assert_eq!(r.method, "get_block_header");
    let method = Method::from_name(&r.method).expect("get_block_header is a known method");
    assert_eq!(method, Method::GetBlockHeader);
    assert_eq!(method.required_permission(), Some(Permission::ReadBlockchain));
    let params: ByHash = r.params().expect("the params are a ByHash");
    assert_eq!(params.hash.to_string(), BLOCK_1_HASH);
    // Internal byte order: the last byte of the display hex comes first.
    assert_eq!(params.hash.0[0], 0x48);
    assert_eq!(params.hash.0[31], 0x00);
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn response_success_vector_decodes_to_block_1_header_at_height_1_and_re_encodes_exactly() {
    let bytes = read_vector("response_success");
    let frame = decode_only_frame(&bytes);
    let Frame::Response(r) = &frame else {
        panic!("response_success.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 1);
    let result = r.result.as_ref().expect("a success response");
    let header: HeaderResult = decode_body("result", result).expect("the result is a HeaderResult");
    assert_eq!(header.height, Some(1));
    let raw = header.header.expect("the header is present");
    assert_eq!(hex(&raw), BLOCK_1_HEADER);
    assert_eq!(raw.len(), 80);
    // The header's previous-block field is the genesis hash in the same
    // internal byte order hashes travel in.
    let genesis = Hash32::from_display_hex(GENESIS_HASH).expect("GENESIS_HASH is 64 hex digits");
    assert_eq!(&raw[4..36], &genesis.0[..]);
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn response_error_vector_decodes_to_method_not_found_without_capability_and_re_encodes_exactly() {
    let bytes = read_vector("response_error");
    let frame = decode_only_frame(&bytes);
    let Frame::Response(r) = &frame else {
        panic!("response_error.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 3);
    let error = r.result.as_ref().expect_err("an error response");
    assert_eq!(error.code, ErrorCode::MethodNotFound);
    assert_eq!(error.message, "unknown method `get_private_keys`");
    assert_eq!(error.capability, None);
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn permission_denied_vector_names_the_missing_capability_and_re_encodes_exactly() {
    let bytes = read_vector("response_error_permission_denied");
    let frame = decode_only_frame(&bytes);
    let Frame::Response(r) = &frame else {
        panic!("response_error_permission_denied.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 2);
    let error = r.result.as_ref().expect_err("an error response");
    assert_eq!(error.code, ErrorCode::PermissionDenied);
    assert_eq!(error.message, "`get_utxo` requires the `read_utxo` capability");
    assert_eq!(error.capability.as_deref(), Some("read_utxo"));
    assert_eq!(
        Permission::from_name(error.capability.as_deref().unwrap_or_default()),
        Method::GetUtxo.required_permission(),
        "the capability named is the one the method needs"
    );
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn event_vector_decodes_to_new_block_1_with_seq_1_and_re_encodes_exactly() {
    let bytes = read_vector("event");
    let frame = decode_only_frame(&bytes);
    let Frame::Event(e) = &frame else {
        panic!("event.bin decoded as {frame:?}")
    };
    assert_eq!(e.seq, 1);
    assert_eq!(e.name, "NewBlock");
    let Event::NewBlock(block) = e.event().expect("the payload is a NewBlock") else {
        panic!("event.bin is not a NewBlock")
    };
    assert_eq!(block.block_hash.to_string(), BLOCK_1_HASH);
    assert_eq!(block.height, 1);
    assert_eq!(hex(&block.header), BLOCK_1_HEADER);
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn unknown_event_vector_decodes_as_unknown_with_its_payload_bytes_intact() {
    let bytes = read_vector("event_unknown_type");
    let frame = decode_only_frame(&bytes);
    let Frame::Event(e) = &frame else {
        panic!("event_unknown_type.bin decoded as {frame:?}")
    };
    assert_eq!(e.seq, 2);
    assert_eq!(e.name, "QuantumBlockTeleported");
    let event = e.event().expect("an unknown event is not an error");
    let Event::Unknown { name, payload } = &event else {
        panic!("QuantumBlockTeleported decoded as a known event: {event:?}")
    };
    assert_eq!(name, "QuantumBlockTeleported");
    assert_eq!(event.event_type(), None);
    // The payload is the last value of the frame: the exact bytes, kept.
    assert!(bytes.ends_with(payload), "the payload bytes are kept as received");
    assert_eq!(payload[0], 0x82, "the payload is a map of two entries");
    assert_eq!(
        payload.len(),
        56,
        "the spec says the payload is the frame's last 56 bytes"
    );
    let teleported: QuantumBlockTeleported =
        rmp_serde::from_slice(payload).expect("a newer build can read the kept payload");
    assert_eq!(teleported, quantum_block_teleported());
    // Forwarding the unknown event writes the same bytes again.
    let mut forwarded = Vec::new();
    event
        .encode_payload(&mut forwarded)
        .expect("an unknown payload re-encodes");
    assert_eq!(&forwarded[..], &payload[..]);
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn log_vector_decodes_to_level_target_message_and_fields_and_re_encodes_exactly() {
    let bytes = read_vector("log");
    let frame = decode_only_frame(&bytes);
    let Frame::Log(l) = &frame else {
        panic!("log.bin decoded as {frame:?}")
    };
    assert_eq!(l.level, LogLevel::Info);
    assert_eq!(l.target, "blockwatch::chain");
    assert_eq!(l.message, "new tip");
    assert_eq!(l.fields.len(), 1);
    assert_eq!(l.fields.get("height").map(String::as_str), Some("1"));
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn shutdown_vector_decodes_to_reason_and_grace_and_re_encodes_exactly() {
    let bytes = read_vector("shutdown");
    let frame = decode_only_frame(&bytes);
    let Frame::Shutdown(s) = &frame else {
        panic!("shutdown.bin decoded as {frame:?}")
    };
    assert_eq!(s.reason, "unload");
    assert_eq!(s.grace_ms, 5000);
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn invocation_request_vector_decodes_to_an_rpc_call_and_re_encodes_exactly() {
    let bytes = read_vector("invocation_request");
    let frame = decode_only_frame(&bytes);
    let Frame::Request(r) = &frame else {
        panic!("invocation_request.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 1);
    assert_eq!(r.method, "rpc_call");
    assert_eq!(
        Method::from_name(&r.method),
        None,
        "invocations are not module→node methods"
    );
    let call: RpcCall = r.params().expect("the params are an RpcCall");
    assert_eq!(call.method, "blockwatch_status");
    assert_eq!(call.params_json, "[]");
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn invocation_response_vector_decodes_to_the_json_result_and_re_encodes_exactly() {
    let bytes = read_vector("invocation_response");
    let frame = decode_only_frame(&bytes);
    let Frame::Response(r) = &frame else {
        panic!("invocation_response.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 1);
    let result = r.result.as_ref().expect("a success response");
    let answer: RpcCallResult = decode_body("result", result).expect("the result is an RpcCallResult");
    assert_eq!(answer.result_json, r#"{"tip_height":1}"#);
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn health_check_request_vector_decodes_to_the_nodes_liveness_check_and_re_encodes_exactly() {
    let bytes = read_vector("health_check_request");
    let frame = decode_only_frame(&bytes);
    let Frame::Request(r) = &frame else {
        panic!("health_check_request.bin decoded as {frame:?}")
    };
    assert_eq!((r.id, r.method.as_str()), (2, "health_check"));
    assert_eq!(
        Method::from_name(&r.method),
        None,
        "an invocation, not a module→node method"
    );
    let _: Empty = r.params().expect("the params are an empty map");
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn health_check_response_vector_decodes_to_an_empty_result_and_re_encodes_exactly() {
    let bytes = read_vector("health_check_response");
    let frame = decode_only_frame(&bytes);
    let Frame::Response(r) = &frame else {
        panic!("health_check_response.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 2);
    let result = r.result.as_ref().expect("a success response");
    assert_eq!(&result[..], &[0x80], "the result is the empty map");
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn an_unknown_key_in_a_request_is_ignored() {
    let bytes = read_vector("request_with_unknown_field");
    assert!(
        bytes.windows(8).any(|w| w == b"x_future"),
        "the vector really carries the extra key"
    );
    let frame = decode_only_frame(&bytes);
    let Frame::Request(r) = &frame else {
        panic!("request_with_unknown_field.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 1);
    assert_eq!(r.method, "get_block_header");
    let params: ByHash = r.params().expect("the params are a ByHash");
    assert_eq!(params.hash.to_string(), BLOCK_1_HASH);
    // The same request as request.bin, and it re-encodes as that file: the
    // extra key left no trace.
    let plain = read_vector("request");
    assert_eq!(frame, decode_only_frame(&plain));
    assert_re_encodes_to(&frame, &plain);
}

// ---------------------------------------------------------------------------
// Rules the spec states that no single vector shows
// ---------------------------------------------------------------------------

#[test]
fn integers_of_any_msgpack_width_decode_to_the_same_request() {
    let plain = decode_only_frame(&read_vector("request"));
    let params = rmp_serde::to_vec_named(&ByHash { hash: block_1_hash() }).expect("ByHash encodes");
    let encodings: [&[u8]; 9] = [
        &[0x01],
        &[0xcc, 0x01],
        &[0xcd, 0x00, 0x01],
        &[0xce, 0x00, 0x00, 0x00, 0x01],
        &[0xcf, 0, 0, 0, 0, 0, 0, 0, 0x01],
        &[0xd0, 0x01],
        &[0xd1, 0x00, 0x01],
        &[0xd2, 0x00, 0x00, 0x00, 0x01],
        &[0xd3, 0, 0, 0, 0, 0, 0, 0, 0x01],
    ];
    for id in encodings {
        let mut payload = Vec::new();
        rmp::encode::write_map_len(&mut payload, 4).expect("writing to a Vec cannot fail");
        rmp::encode::write_str(&mut payload, "type").expect("writing to a Vec cannot fail");
        rmp::encode::write_str(&mut payload, "request").expect("writing to a Vec cannot fail");
        rmp::encode::write_str(&mut payload, "id").expect("writing to a Vec cannot fail");
        payload.extend_from_slice(id);
        rmp::encode::write_str(&mut payload, "method").expect("writing to a Vec cannot fail");
        rmp::encode::write_str(&mut payload, "get_block_header").expect("writing to a Vec cannot fail");
        rmp::encode::write_str(&mut payload, "params").expect("writing to a Vec cannot fail");
        payload.extend_from_slice(&params);
        assert_eq!(
            decode_only_frame(&with_length_prefix(&payload)),
            plain,
            "id encoded as {}",
            hex(id)
        );
    }
    // The same holds inside bodies: a height written as a signed 64-bit
    // integer decodes like the 1-byte form.
    let mut result = Vec::new();
    rmp::encode::write_map_len(&mut result, 2).expect("writing to a Vec cannot fail");
    rmp::encode::write_str(&mut result, "header").expect("writing to a Vec cannot fail");
    rmp::encode::write_bin(&mut result, &unhex(BLOCK_1_HEADER)).expect("writing to a Vec cannot fail");
    rmp::encode::write_str(&mut result, "height").expect("writing to a Vec cannot fail");
    result.extend_from_slice(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 0x01]);
    let decoded: HeaderResult = decode_body("result", &result).expect("a wide height decodes");
    assert_eq!(decoded, header_result());
}

#[test]
fn a_frame_of_unknown_type_decodes_as_unknown_and_keeps_no_fields() {
    // {"type": "telemetry", "cpu": 3}
    let mut payload = Vec::new();
    rmp::encode::write_map_len(&mut payload, 2).expect("writing to a Vec cannot fail");
    rmp::encode::write_str(&mut payload, "type").expect("writing to a Vec cannot fail");
    rmp::encode::write_str(&mut payload, "telemetry").expect("writing to a Vec cannot fail");
    rmp::encode::write_str(&mut payload, "cpu").expect("writing to a Vec cannot fail");
    rmp::encode::write_uint(&mut payload, 3).expect("writing to a Vec cannot fail");
    assert_eq!(
        decode_only_frame(&with_length_prefix(&payload)),
        Frame::Unknown {
            kind: "telemetry".into()
        }
    );
}

#[test]
fn a_length_prefix_above_16_mib_is_refused_before_the_payload_arrives() {
    assert_eq!(DEFAULT_MAX_FRAME_LEN, 16 * 1024 * 1024);
    let too_long = u32::try_from(DEFAULT_MAX_FRAME_LEN + 1).expect("16 MiB + 1 fits in a u32");
    let mut buf = BytesMut::from(&too_long.to_be_bytes()[..]);
    assert_eq!(
        FrameDecoder::default().next_frame(&mut buf),
        Err(FrameError::TooLarge {
            len: DEFAULT_MAX_FRAME_LEN + 1,
            max: DEFAULT_MAX_FRAME_LEN
        })
    );
    let longest = u32::try_from(DEFAULT_MAX_FRAME_LEN).expect("16 MiB fits in a u32");
    let mut buf = BytesMut::from(&longest.to_be_bytes()[..]);
    assert_eq!(
        FrameDecoder::default().next_frame(&mut buf),
        Ok(None),
        "exactly 16 MiB is allowed: the decoder waits for the payload"
    );
}

// ---------------------------------------------------------------------------
// The spec shows the vectors and the tables of the code
// ---------------------------------------------------------------------------

/// The bodies of the spec's ```` ```hex ```` blocks, whitespace removed.
fn spec_hex_blocks() -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = SPEC;
    while let Some(start) = rest.find("```hex\n") {
        let body = &rest[start + "```hex\n".len()..];
        let end = body.find("```").expect("every ```hex block in the spec is closed");
        blocks.push(body[..end].split_whitespace().collect::<String>());
        rest = &body[end + 3..];
    }
    blocks
}

#[test]
fn the_spec_shows_every_vector_and_no_other_hex() {
    let blocks = spec_hex_blocks();
    let vectors = vectors();
    let mut missing = Vec::new();
    for v in &vectors {
        let file = read_vector(v.name);
        if !blocks.contains(&hex(&file)) {
            missing.push(format!("{}.bin:\n```hex\n{}\n```", v.name, hex_block(&file)));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/ipc-protocol.md lacks these vectors:\n{}",
        missing.join("\n\n")
    );
    for block in &blocks {
        assert!(
            vectors.iter().any(|v| hex(&read_vector(v.name)) == *block),
            "docs/ipc-protocol.md shows hex that is no vector: {block}"
        );
    }
}

#[test]
fn the_spec_annotates_the_request_vector_byte_by_byte() {
    let dump = annotate(&read_vector("request"));
    assert!(
        SPEC.contains(&dump),
        "docs/ipc-protocol.md lacks the annotated request, which is:\n{dump}"
    );
}

/// The text of the spec under the heading that starts with `heading`
/// (e.g. `"### 8.2 "`), up to the next heading of any level.
fn spec_section(heading: &str) -> &'static str {
    let start = SPEC
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("docs/ipc-protocol.md has no heading `{heading}`"));
    let body = &SPEC[start + 1..];
    let end = body.find("\n#").unwrap_or(body.len());
    &body[..end]
}

/// The cells of the table row, in `section`, whose first cell is `` `key` ``.
fn table_row(section: &str, key: &str) -> Option<Vec<String>> {
    let start = format!("| `{key}` |");
    section.lines().find(|l| l.starts_with(&start)).map(|l| {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    })
}

#[test]
fn the_spec_lists_every_method_with_its_capability() {
    let section = spec_section("### 8.2 ");
    for method in Method::ALL {
        let row = table_row(section, method.name())
            .unwrap_or_else(|| panic!("docs/ipc-protocol.md has no row for method `{}`", method.name()));
        let capability = row.last().expect("a row has cells");
        let expected = match method.required_permission() {
            Some(p) => format!("`{p}`"),
            None => "none".to_owned(),
        };
        assert_eq!(capability, &expected, "capability of `{}` in the spec", method.name());
    }
}

#[test]
fn the_spec_lists_every_error_code() {
    let codes = [
        ErrorCode::PermissionDenied,
        ErrorCode::MethodNotFound,
        ErrorCode::InvalidParams,
        ErrorCode::Unavailable,
        ErrorCode::Rejected,
        ErrorCode::ModuleCrashed,
        ErrorCode::ConnectionClosed,
        ErrorCode::RateLimited,
        ErrorCode::QuotaExceeded,
        ErrorCode::ModuleNotRunning,
        ErrorCode::Timeout,
        ErrorCode::AlreadyRegistered,
        ErrorCode::Internal,
    ];
    let section = spec_section("### 7.3 ");
    for code in codes {
        assert_eq!(ErrorCode::from_wire(code.as_str()), code, "{code} round-trips");
        assert!(
            table_row(section, code.as_str()).is_some(),
            "docs/ipc-protocol.md has no row for error code `{code}`"
        );
    }
}

#[test]
fn the_spec_lists_every_invocation() {
    let section = spec_section("## 9. ");
    for method in [RPC_CALL, MODULE_CALL, TIMER_FIRED, HEALTH_CHECK] {
        assert!(
            table_row(section, method).is_some(),
            "docs/ipc-protocol.md has no row for invocation `{method}`"
        );
    }
}

#[test]
fn the_spec_lists_every_capability() {
    let section = spec_section("### 8.1 ");
    for permission in Permission::ALL {
        assert!(
            table_row(section, permission.as_str()).is_some(),
            "docs/ipc-protocol.md has no row for capability `{permission}`"
        );
    }
}

#[test]
fn the_spec_states_the_protocol_version_and_frame_limit_the_code_uses() {
    assert_eq!(PROTOCOL_VERSION, 1);
    assert!(SPEC.contains("16 MiB (16777216 bytes)"));
    assert_eq!(DEFAULT_MAX_FRAME_LEN, 16_777_216);
}

// ---------------------------------------------------------------------------
// The annotator behind the spec's byte-by-byte example
// ---------------------------------------------------------------------------

/// Column where the annotations start.
const NOTE_COLUMN: usize = 54;

/// Annotates a frame: one line per MessagePack value (long strings and
/// `bin` wrap at 16 bytes), indented by nesting.
fn annotate(frame: &[u8]) -> String {
    let mut lines = Vec::new();
    let len = u32::from_be_bytes(frame[..4].try_into().expect("a frame has a 4-byte prefix"));
    lines.push((
        0,
        frame[..4].to_vec(),
        format!("length prefix: {len} bytes of payload follow"),
    ));
    let mut pos = 4;
    annotate_value(frame, &mut pos, 0, &mut lines);
    assert_eq!(pos, frame.len(), "the payload is one value");
    let mut out = String::new();
    for (depth, bytes, note) in lines {
        for (i, chunk) in bytes.chunks(16).enumerate() {
            let hex = chunk.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
            let cell = format!("{}{hex}", "  ".repeat(depth));
            let note = if i == 0 { note.as_str() } else { "" };
            let line = format!("{cell:<NOTE_COLUMN$}{note}");
            writeln!(out, "{}", line.trim_end()).expect("writing to a String cannot fail");
        }
    }
    out.trim_end().to_owned()
}

fn annotate_value(b: &[u8], pos: &mut usize, depth: usize, lines: &mut Vec<(usize, Vec<u8>, String)>) {
    let start = *pos;
    let marker = b[start];
    let mut take = |n: usize, note: String, lines: &mut Vec<(usize, Vec<u8>, String)>| {
        lines.push((depth, b[start..start + n].to_vec(), note));
        *pos = start + n;
    };
    match marker {
        0x00..=0x7f => take(1, format!("positive fixint {marker}"), lines),
        0xcc => take(2, format!("uint 8: {}", b[start + 1]), lines),
        0xcd => take(
            3,
            format!("uint 16: {}", u16::from_be_bytes([b[start + 1], b[start + 2]])),
            lines,
        ),
        0xc0 => take(1, "nil".into(), lines),
        0xc2 => take(1, "false".into(), lines),
        0xc3 => take(1, "true".into(), lines),
        0xa0..=0xbf => {
            let n = usize::from(marker & 0x1f);
            let text = std::str::from_utf8(&b[start + 1..start + 1 + n]).expect("strings are UTF-8");
            take(1 + n, format!("fixstr, {n} bytes: \"{text}\""), lines);
        }
        0xc4 => {
            let n = usize::from(b[start + 1]);
            take(2 + n, format!("bin 8, {n} bytes"), lines);
        }
        0x80..=0x8f => {
            let n = marker & 0x0f;
            let entries = if n == 1 { "entry" } else { "entries" };
            take(1, format!("fixmap, {n} {entries} (key, value, ...)"), lines);
            for _ in 0..2 * n {
                annotate_value(b, pos, depth + 1, lines);
            }
        }
        0x90..=0x9f => {
            let n = marker & 0x0f;
            let elements = if n == 1 { "element" } else { "elements" };
            take(1, format!("fixarray, {n} {elements}"), lines);
            for _ in 0..n {
                annotate_value(b, pos, depth + 1, lines);
            }
        }
        other => panic!("the annotator does not handle marker 0x{other:02x}"),
    }
}
