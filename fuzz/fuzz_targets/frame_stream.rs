//! The frame codec on a byte stream a module sends: arbitrary bytes, cut
//! into reads at arbitrary points (the first byte picks the read size),
//! through `FrameDecoder` as the node's reader uses it. Every frame that
//! decodes must re-encode to bytes that decode to the same frame.
#![no_main]

use blvm_module_protocol::codec::FrameDecoder;
use blvm_module_protocol::frame::Frame;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// Small enough that a fuzzer reaches "too large" often, large enough for
/// real frames.
const MAX_FRAME: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let decoder = FrameDecoder::new(MAX_FRAME);
    let mut buf = BytesMut::new();
    for chunk in stream.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.next_frame(&mut buf) {
                Ok(Some(frame)) => round_trip(&frame),
                Ok(None) => break,
                // A bad frame ends the connection: stop as the node does.
                Err(_) => return,
            }
        }
        // The decoder never reserves past a frame's declared length.
        assert!(buf.capacity() <= 4 + MAX_FRAME + stream.len() + 64);
    }
});

fn round_trip(frame: &Frame) {
    let mut encoded = Vec::new();
    if frame.encode(&mut encoded).is_err() {
        return;
    }
    let mut buf = BytesMut::from(&encoded[..]);
    let again = FrameDecoder::new(usize::MAX >> 1)
        .next_frame(&mut buf)
        .expect("a re-encoded frame decodes")
        .expect("a re-encoded frame is complete");
    assert_eq!(&again, frame, "decode(encode(frame)) == frame");
    assert!(buf.is_empty(), "one frame re-encodes to one frame");
}
