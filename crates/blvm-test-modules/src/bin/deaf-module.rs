//! A module that completes its handshake and keeps reading its socket, but
//! never answers an invocation: a hung module as the node sees it. It
//! speaks the protocol by hand (no SDK, whose reader would answer the
//! node's `health_check` for it), and exits 0 on `shutdown`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use blvm_sdk::protocol::frame::encode;
use blvm_sdk::protocol::{Frame, FrameDecoder, Hello, PROTOCOL_VERSION};
use bytes::BytesMut;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("{name} is not set");
        std::process::exit(2)
    })
}

fn main() {
    let hello = Hello {
        protocol_versions: vec![PROTOCOL_VERSION],
        module_id: env("BLVM_MODULE_ID"),
        module_name: env("BLVM_MODULE_NAME"),
        version: env("BLVM_MODULE_VERSION"),
        token: env("BLVM_MODULE_TOKEN"),
    };
    let mut stream = UnixStream::connect(env("BLVM_MODULE_SOCKET")).unwrap_or_else(|e| {
        eprintln!("connect: {e}");
        std::process::exit(2)
    });
    let mut out = Vec::new();
    if encode::control(&mut out, "hello", &hello).is_err() || stream.write_all(&out).is_err() {
        std::process::exit(2);
    }
    let decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => std::process::exit(1),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        loop {
            match decoder.next_frame(&mut buf) {
                Ok(Some(Frame::Welcome(_))) => println!("WELCOME"),
                Ok(Some(Frame::Refused(r))) => {
                    println!("REFUSED {} {}", r.code, r.reason);
                    std::process::exit(1);
                }
                Ok(Some(Frame::Shutdown(_))) => std::process::exit(0),
                // Invocations (the health check among them) are read and
                // never answered.
                Ok(Some(Frame::Request(r))) => println!("IGNORED {}", r.method),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    eprintln!("bad frame: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}
