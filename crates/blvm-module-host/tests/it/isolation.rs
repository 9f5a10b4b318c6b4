//! One module's misbehaviour stays with that module.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use blvm_module_host::ConnectionEvent;
use blvm_module_protocol::events::{Event, NewBlock};
use blvm_module_protocol::frame::encode;
use blvm_module_protocol::Permission::{ReadBlockchain, SubscribeEvents};
use blvm_module_protocol::{Frame, FrameDecoder, Hash32, Hello};
use bytes::BytesMut;

use crate::support::{spec, wait_for, Host, ModuleProc};

fn new_block(host: &Host, height: u64) -> Event {
    Event::from(NewBlock {
        block_hash: host.chain.hash_at(height),
        height,
        header: host.chain.header_bytes(height),
    })
}

/// Connects from this process as `id` and completes the handshake.
fn raw_module(host: &Host, id: &str) -> UnixStream {
    let token = host.expect_self(spec(id, &[]));
    let mut stream = UnixStream::connect(host.server.socket_path()).expect("connect");
    let mut out = Vec::new();
    let hello = Hello {
        protocol_versions: vec![1],
        module_id: id.into(),
        module_name: id.into(),
        version: "1.0.0".into(),
        token,
    };
    encode::control(&mut out, "hello", &hello).expect("encode");
    stream.write_all(&out).expect("send hello");
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(frame) = FrameDecoder::default().next_frame(&mut buf).expect("frame") {
            assert!(matches!(frame, Frame::Welcome(_)), "{frame:?}");
            return stream;
        }
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "closed during handshake");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn bystander(host: &Host) -> ModuleProc {
    let m = host.spawn(
        spec("bystander", &[SubscribeEvents, ReadBlockchain]),
        "events",
        &[("BLVM_TEST_EVENTS", "NewBlock")],
    );
    m.expect("SUBSCRIBED");
    m
}

async fn violation_closes_only_that_connection(tag: &str, bad_bytes: &[u8]) {
    let host = Host::start(tag);
    let mut conn_events = host.server.subscribe_connection_events();
    let other = bystander(&host);
    let mut stream = raw_module(&host, "vandal");
    stream.write_all(bad_bytes).expect("send bad frame");
    let closed = wait_for(
        &mut conn_events,
        |e| matches!(e, ConnectionEvent::Closed { module_id, .. } if module_id == "vandal"),
    )
    .await;
    assert!(
        matches!(
            closed,
            ConnectionEvent::Closed {
                protocol_violation: true,
                ..
            }
        ),
        "{closed:?}"
    );
    // The vandal's socket is closed by the node...
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    // ...and the bystander still gets events.
    host.events.publish(&new_block(&host, 7));
    assert_eq!(
        other.expect("EVENT"),
        format!("EVENT 1 NewBlock 7 {}", host.chain.hash_at(7))
    );
    assert_eq!(host.server.connected_modules(), vec!["bystander".to_string()]);
}

#[tokio::test(flavor = "current_thread")]
async fn malformed_frame_closes_only_that_modules_connection() {
    // A well-framed payload that is not MessagePack (0xc1 is never used).
    violation_closes_only_that_connection("malformed", &[0, 0, 0, 2, 0xc1, 0x00]).await;
}

#[tokio::test(flavor = "current_thread")]
async fn oversized_frame_closes_only_that_modules_connection() {
    // A length prefix of 4 GiB - 1: refused before anything is allocated.
    violation_closes_only_that_connection("oversized", &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
}

#[test]
fn module_that_never_reads_does_not_hold_up_delivery_to_another() {
    const N: u64 = 20_000;
    let host = Host::start("stall");
    let stalled = host.spawn(
        spec("stalled", &[SubscribeEvents, ReadBlockchain]),
        "stall",
        &[("BLVM_TEST_EVENTS", "NewBlock")],
    );
    stalled.expect("STALLED");
    let mut healthy_spec = spec("healthy", &[SubscribeEvents, ReadBlockchain]);
    // Large enough for every event, however slowly this machine runs the
    // module: what is measured is the stalled module's effect, not speed.
    healthy_spec.event_queue_capacity = N as usize + 10;
    let healthy = host.spawn(healthy_spec, "events", &[("BLVM_TEST_EVENTS", "NewBlock")]);
    healthy.expect("SUBSCRIBED");
    for i in 0..N {
        host.events.publish(&new_block(&host, i % 439));
    }
    for i in 0..N {
        let line = healthy.expect("EVENT");
        let seq: u64 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("seq");
        assert_eq!(seq, i + 1, "{line}");
    }
    let stalled_stats = host.events.get_delivery_stats("stalled").expect("stats");
    assert_eq!(stalled_stats.delivered + stalled_stats.dropped_full, N);
    assert!(stalled_stats.dropped_full > 0, "{stalled_stats:?}");
    assert_eq!(
        host.events.subscriptions("stalled").len(),
        1,
        "slow is not dead: subscription kept"
    );
    let healthy_stats = host.events.get_delivery_stats("healthy").expect("stats");
    assert_eq!((healthy_stats.delivered, healthy_stats.dropped_full), (N, 0));
    let _ = Hash32::default();
}

#[test]
fn server_shuts_down_even_when_its_socket_file_is_gone() {
    // A test that fails drops its temp dir before the server: shutdown used
    // to wake its accept thread by connecting to the socket path, and with
    // the file gone it waited for that thread forever (a failure became a
    // hang of the whole suite).
    let host = Host::start("socket-gone");
    std::fs::remove_dir_all(&host.dir).expect("remove the socket's directory");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        host.server.shutdown();
        let _ = tx.send(());
    });
    rx.recv_timeout(crate::support::DEADLINE)
        .expect("shutdown returned although the socket file is gone");
}
