//! A module that speaks the protocol by hand, frame by frame, without the
//! SDK: it can send what the SDK never would. For the module test
//! harness's own tests (`blvm-module-testkit`).
//!
//! Its config key `send` says what it sends after the handshake:
//!
//! - `ping` (default): a well-formed `ping` request; it prints `PONG`
//!   when answered;
//! - `malformed`: a frame whose payload is not a MessagePack map (a
//!   protocol violation: the node closes the connection);
//! - `bad-params`: a `get_block` whose `hash` is a number (answered
//!   `invalid_params`).
//!
//! Then it answers the node's invocations (health checks) with `{}` and
//! reads until the node sends `shutdown` (exit 0) or closes the
//! connection (exit 1).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use blvm_sdk::protocol::codec::FrameDecoder;
use blvm_sdk::protocol::frame::encode;
use blvm_sdk::protocol::{Frame, Hello, SUPPORTED_VERSIONS};
use bytes::BytesMut;

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_default()
}

/// Reads the next whole frame; `None` once the node closed.
fn next(stream: &mut UnixStream, decoder: &FrameDecoder, buf: &mut BytesMut) -> Option<Frame> {
    let mut chunk = [0u8; 4096];
    loop {
        match decoder.next_frame(buf) {
            Ok(Some(frame)) => return Some(frame),
            Ok(None) => {}
            Err(e) => {
                eprintln!("raw-module: the node sent a bad frame: {e}");
                return None;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn main() {
    let Ok(mut stream) = UnixStream::connect(env("BLVM_MODULE_SOCKET")) else {
        eprintln!("raw-module: cannot connect to the node");
        std::process::exit(1);
    };
    let hello = Hello {
        protocol_versions: SUPPORTED_VERSIONS.to_vec(),
        module_id: env("BLVM_MODULE_ID"),
        module_name: env("BLVM_MODULE_NAME"),
        version: env("BLVM_MODULE_VERSION"),
        token: env("BLVM_MODULE_TOKEN"),
    };
    let mut out = Vec::new();
    if Frame::Hello(hello).encode(&mut out).is_err() || stream.write_all(&out).is_err() {
        std::process::exit(1);
    }
    let decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    let send = match next(&mut stream, &decoder, &mut buf) {
        Some(Frame::Welcome(welcome)) => welcome.config.get("send").cloned().unwrap_or_else(|| "ping".into()),
        other => {
            eprintln!("raw-module: no welcome: {other:?}");
            std::process::exit(1);
        }
    };
    out.clear();
    match send.as_str() {
        // Length 1, payload 0xc1: a byte MessagePack never uses.
        "malformed" => out.extend_from_slice(&[0, 0, 0, 1, 0xc1]),
        // {"hash": 5}
        "bad-params" => encode::request_raw(&mut out, 1, "get_block", &[0x81, 0xa4, b'h', b'a', b's', b'h', 0x05]),
        _ => encode::request_raw(&mut out, 1, "ping", &[0x80]),
    }
    if stream.write_all(&out).is_err() {
        std::process::exit(1);
    }
    while let Some(frame) = next(&mut stream, &decoder, &mut buf) {
        match frame {
            Frame::Response(r) if r.id == 1 && send == "ping" => println!("PONG"),
            Frame::Shutdown(_) => std::process::exit(0),
            // The node's health checks: any answer shows it alive.
            Frame::Request(r) => {
                let mut answer = Vec::new();
                encode::response_raw(&mut answer, r.id, &[0x80]);
                if stream.write_all(&answer).is_err() {
                    std::process::exit(1);
                }
            }
            _ => {}
        }
    }
    std::process::exit(1);
}
