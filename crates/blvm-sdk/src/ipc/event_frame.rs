//! A fast path for the frame a module receives most: the node's event.
//!
//! The node writes every event in one layout (`encode::event_raw`):
//! `{"type": "event", "seq": n, "event": name, "payload": {…}}`, keys in
//! that order. [`decode_node_event`] reads that layout with fixed byte
//! compares instead of the general decoder's per-key string matching, and
//! walks the payload only to check that it is exactly one value ending the
//! frame. Anything else (another kind, another layout, `origin`, a value
//! type the walk does not know, malformed bytes) gives `None`, and the
//! caller decodes the frame the general way, which accepts or refuses it
//! exactly as before: the fast path changes no outcome, only the cost.

use std::borrow::Cow;

use blvm_module_protocol::{EventFrame, EventType};
use bytes::Bytes;

/// The bytes before `seq`'s value: a 4-entry map, `"type": "event"`, `"seq"`.
const HEAD: &[u8] = b"\x84\xa4type\xa5event\xa3seq";
/// The key before the event name.
const EVENT_KEY: &[u8] = b"\xa5event";
/// The key before the payload.
const PAYLOAD_KEY: &[u8] = b"\xa7payload";
/// Deepest nesting the payload walk follows before giving up (the general
/// decoder then decides).
const MAX_DEPTH: u32 = 32;

/// Decodes `frame` (one frame's payload, without its length prefix) when it
/// is a node event in the node's layout; `None` otherwise.
pub(crate) fn decode_node_event(frame: &Bytes) -> Option<EventFrame> {
    let b: &[u8] = frame;
    let rest = b.strip_prefix(HEAD)?;
    let (seq, rest) = uint(rest)?;
    let rest = rest.strip_prefix(EVENT_KEY)?;
    let (name, rest) = str(rest)?;
    let rest = rest.strip_prefix(PAYLOAD_KEY)?;
    // A map, as the general decoder's `Event::decode` requires.
    if !matches!(rest.first(), Some(0x80..=0x8f | 0xde | 0xdf)) {
        return None;
    }
    if skip(rest, MAX_DEPTH)? != rest.len() {
        return None;
    }
    let start = b.len() - rest.len();
    let name = match EventType::from_name(name) {
        Some(ty) => Cow::Borrowed(ty.name()),
        None => Cow::Owned(name.to_owned()),
    };
    Some(EventFrame {
        seq,
        name,
        payload: frame.slice(start..),
        origin: None,
        durable: None,
    })
}

/// `n` bytes at the start of `b`, and what follows.
fn take(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (b.len() >= n).then(|| b.split_at(n))
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |v, &x| (v << 8) | u64::from(x))
}

/// A non-negative integer in any of its encodings.
fn uint(b: &[u8]) -> Option<(u64, &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let width = match tag {
        0x00..=0x7f => return Some((u64::from(tag), rest)),
        0xcc => 1,
        0xcd => 2,
        0xce => 4,
        0xcf => 8,
        _ => return None,
    };
    let (v, rest) = take(rest, width)?;
    Some((be(v), rest))
}

/// A string, which must be UTF-8.
fn str(b: &[u8]) -> Option<(&str, &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (len, rest) = match tag {
        0xa0..=0xbf => (usize::from(tag & 0x1f), rest),
        0xd9 => {
            let (l, r) = take(rest, 1)?;
            (be(l) as usize, r)
        }
        0xda => {
            let (l, r) = take(rest, 2)?;
            (be(l) as usize, r)
        }
        _ => return None,
    };
    let (s, rest) = take(rest, len)?;
    Some((std::str::from_utf8(s).ok()?, rest))
}

/// The length of the one MessagePack value at the start of `b`; `None`
/// if it is cut short, nested deeper than `depth`, or of a kind this walk
/// leaves to the general decoder (ext types, strings not UTF-8).
fn skip(b: &[u8], depth: u32) -> Option<usize> {
    let depth = depth.checked_sub(1)?;
    let (&tag, rest) = b.split_first()?;
    // (bytes of length that follow the tag, bytes of data, items to walk)
    let (len_bytes, fixed, items): (usize, usize, u64) = match tag {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0, 0),
        0x80..=0x8f => (0, 0, 2 * u64::from(tag & 0x0f)),
        0x90..=0x9f => (0, 0, u64::from(tag & 0x0f)),
        0xa0..=0xbf => {
            let n = usize::from(tag & 0x1f);
            std::str::from_utf8(take(rest, n)?.0).ok()?;
            return Some(1 + n);
        }
        0xcc | 0xd0 => (0, 1, 0),
        0xcd | 0xd1 => (0, 2, 0),
        0xca | 0xce | 0xd2 => (0, 4, 0),
        0xcb | 0xcf | 0xd3 => (0, 8, 0),
        0xc4 | 0xd9 => (1, 0, 0),
        0xc5 | 0xda => (2, 0, 0),
        0xc6 | 0xdb => (4, 0, 0),
        0xdc => (2, 0, 1),
        0xdd => (4, 0, 1),
        0xde => (2, 0, 2),
        0xdf => (4, 0, 2),
        _ => return None,
    };
    let mut at = 1 + fixed;
    if fixed > 0 {
        take(rest, fixed)?;
        return Some(at);
    }
    if len_bytes == 0 {
        return walk(b, at, items, depth);
    }
    let (len, data) = take(rest, len_bytes)?;
    let len = be(len);
    at += len_bytes;
    if matches!(tag, 0xdc..=0xdf) {
        // Arrays and maps: `len` entries of 1 or 2 values.
        return walk(b, at, len * items, depth);
    }
    let len = usize::try_from(len).ok()?;
    let data = take(data, len)?.0;
    if matches!(tag, 0xd9..=0xdb) {
        std::str::from_utf8(data).ok()?;
    }
    Some(at + len)
}

/// Walks `items` values starting at `at`; returns where they end.
fn walk(b: &[u8], mut at: usize, items: u64, depth: u32) -> Option<usize> {
    for _ in 0..items {
        at += skip(b.get(at..)?, depth)?;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    use blvm_module_protocol::events::{Event, NewBlock};
    use blvm_module_protocol::frame::encode;
    use blvm_module_protocol::{Frame, Hash32};

    /// A frame's payload as the decoder hands it over (prefix stripped).
    fn body(frame: Vec<u8>) -> Bytes {
        Bytes::from(frame).slice(4..)
    }

    fn node_event(seq: u64, name: &str, payload: &[u8]) -> Bytes {
        let mut out = Vec::new();
        encode::event_raw(&mut out, seq, name, payload);
        body(out)
    }

    fn general(frame: &Bytes) -> EventFrame {
        match Frame::decode(frame.clone()) {
            Ok(Frame::Event(e)) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    fn new_block_payload(height: u64) -> Vec<u8> {
        let mut payload = Vec::new();
        Event::from(NewBlock {
            block_hash: Hash32([7; 32]),
            height,
            header: vec![1; 80],
        })
        .encode_payload(&mut payload)
        .unwrap();
        payload
    }

    #[test]
    fn a_node_event_decodes_as_the_general_decoder_decodes_it() {
        for seq in [
            0,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            for height in [0, 300, u64::MAX] {
                let frame = node_event(seq, "NewBlock", &new_block_payload(height));
                let fast = decode_node_event(&frame).expect("the fast path takes the node's layout");
                let slow = general(&frame);
                assert_eq!(
                    (fast.seq, &fast.name, &fast.payload, &fast.origin),
                    (slow.seq, &slow.name, &slow.payload, &slow.origin)
                );
                assert_eq!(fast.event().unwrap(), slow.event().unwrap());
            }
        }
    }

    #[test]
    fn an_unknown_event_name_is_kept_as_sent() {
        let frame = node_event(3, "other.Thing", b"\x82\xa1a\x92\x01\xc0\xa1b\xc4\x02hi");
        let fast = decode_node_event(&frame).unwrap();
        assert_eq!(fast.name, "other.Thing");
        assert_eq!(fast.payload, general(&frame).payload);
    }

    #[test]
    fn a_frame_in_another_layout_is_left_to_the_general_decoder() {
        let mut out = Vec::new();
        encode::event_from(&mut out, 1, "NewBlock", "peer", &new_block_payload(1));
        assert!(
            decode_node_event(&body(out)).is_none(),
            "an origin is not the node layout"
        );
        let mut out = Vec::new();
        encode::request_raw(&mut out, 1, "ping", b"\x80");
        assert!(decode_node_event(&body(out)).is_none());
    }

    #[test]
    fn a_malformed_payload_is_left_to_the_general_decoder() {
        let good = new_block_payload(5);
        let cases: Vec<Vec<u8>> = vec![
            good[..good.len() - 1].to_vec(),                          // cut short
            [good.as_slice(), b"\x00"].concat(),                      // trailing byte
            b"\x92\x01\x02".to_vec(),                                 // not a map
            b"\x81\xa1k\xa2\xff\xfe".to_vec(),                        // string not UTF-8
            b"\x81\xa1k\xd4\x01\x02".to_vec(),                        // ext type
            [b"\x81\xa1k".as_slice(), &[0x91; 40], &[0xc0]].concat(), // too deep
        ];
        for payload in cases {
            let frame = node_event(1, "NewBlock", &payload);
            assert!(decode_node_event(&frame).is_none(), "{payload:x?}");
        }
    }
}
