//! Frames: what one length-prefixed message on the socket holds.
//!
//! Every frame's payload is one MessagePack map with a `type` key. The
//! envelope of the frequent kinds (`request`, `response`, `event`) is read
//! by hand (`msgpack`) and their bodies stay raw [`Bytes`], so a
//! request for an unknown method costs no body decode and an event the
//! receiver does not know keeps its bytes. The rare control kinds are serde
//! structs ([`crate::control`]).
//!
//! Evolution rules, which every decoder here follows and every peer must:
//! unknown keys are skipped; a frame whose `type` is unknown decodes as
//! [`Frame::Unknown`] and is ignored by the receiver; a `request` for an
//! unknown method is answered `method_not_found`; an event name the receiver
//! does not know reaches it as [`crate::events::Event::Unknown`].

use std::borrow::Cow;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::control::{Hello, LogRecord, Refused, Shutdown, Welcome};
use crate::error::{DecodeError, EncodeError, RemoteError};
use crate::events::Event;
use crate::msgpack::Reader;

/// The protocol version this build speaks. A handshake picks the highest
/// version both sides list.
pub const PROTOCOL_VERSION: u32 = 1;

/// The versions this build can speak, highest first.
pub const SUPPORTED_VERSIONS: &[u32] = &[PROTOCOL_VERSION];

/// A decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Module→node handshake.
    Hello(Hello),
    /// Node→module handshake acceptance.
    Welcome(Welcome),
    /// Node→module handshake refusal.
    Refused(Refused),
    /// A request, in either direction.
    Request(Request),
    /// The answer to a request, in either direction.
    Response(Response),
    /// Node→module event delivery.
    Event(EventFrame),
    /// Module→node log line.
    Log(LogRecord),
    /// Node→module request to exit.
    Shutdown(Shutdown),
    /// A frame kind this build does not know; receivers ignore it.
    Unknown {
        /// Its `type`.
        kind: String,
    },
}

/// A request: `{type: "request", id, method, params}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Correlation id, chosen by the sender, unique among its requests in
    /// flight on this connection.
    pub id: u64,
    /// The method name.
    pub method: String,
    /// The params, raw MessagePack (an empty map when absent).
    pub params: Bytes,
}

impl Request {
    /// Decodes the params as `T`, ignoring fields `T` does not have.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        decode_body("params", &self.params)
    }
}

/// A response: `{type: "response", id, result}` or
/// `{type: "response", id, error: {code, message}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The id of the request this answers.
    pub id: u64,
    /// The raw result, or the error.
    pub result: Result<Bytes, RemoteError>,
}

/// An event delivery: `{type: "event", seq, event, payload}`, plus
/// `origin` for an event a module published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFrame {
    /// This module's delivery sequence number: 1 for the first event the
    /// node tried to deliver to it, +1 for every later attempt, delivered or
    /// dropped. A gap means the module missed events.
    pub seq: u64,
    /// The event type's name; borrowed from the event table when this
    /// build knows it, so a delivery costs no allocation for it.
    pub name: Cow<'static, str>,
    /// The payload, raw MessagePack.
    pub payload: Bytes,
    /// The name of the module that published it; `None` for the node's own
    /// events. Set by the node from the publisher's handshake, never by the
    /// publisher.
    pub origin: Option<String>,
    /// Set on an event of a durable subscription (`subscribe_durable`):
    /// its durable sequence number, to acknowledge, and its idempotency
    /// key. `None` on the at-most-once path.
    pub durable: Option<DurableMark>,
}

/// What a durable event carries besides the event: the number the module
/// acknowledges (`ack_events`) and the idempotency key (network, height,
/// hash) by which a consumer drops a redelivered event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DurableMark {
    /// The module's durable sequence number: 1 for the first durable event
    /// the node ever sent it, +1 for each after, kept across restarts of
    /// the module and of the node. A redelivered event has a new number.
    pub seq: u64,
    /// The network (`main`, `test`, `regtest`, …): the key's first part.
    pub network: String,
    /// The height of the block the event is about (for `ChainReorg`, the
    /// new tip's).
    pub height: u64,
    /// The hash of that block.
    pub hash: crate::Hash32,
}

impl DurableMark {
    /// The idempotency key as text: `<network>:<event>:<height>:<hash>`,
    /// the hash in display hex. Unique per chain event, equal for a
    /// redelivery of the same one.
    pub fn key(&self, event: &str) -> String {
        format!("{}:{}:{}:{}", self.network, event, self.height, self.hash)
    }
}

impl EventFrame {
    /// Decodes the typed event; unknown names give [`Event::Unknown`].
    pub fn event(&self) -> Result<Event, DecodeError> {
        Event::decode(&self.name, &self.payload).map_err(|e| DecodeError::Body {
            what: "event payload",
            message: e.to_string(),
        })
    }
}

/// Decodes `bytes` as `T` (a params, result or control body).
pub fn decode_body<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Body {
        what,
        message: e.to_string(),
    })
}

const EMPTY_MAP: &[u8] = &[0x80];
const NIL: &[u8] = &[0xc0];

impl Frame {
    /// Decodes one frame payload (without its length prefix).
    pub fn decode(payload: Bytes) -> Result<Frame, DecodeError> {
        let mut r = Reader::new(&payload);
        let entries = r.map_len()?;
        let mut kind: Option<&str> = None;
        let mut id = None;
        let mut seq = None;
        let mut method = None;
        let mut event = None;
        let mut params = None;
        let mut result = None;
        let mut event_payload = None;
        let mut error = None;
        let mut origin = None;
        let mut durable = None;
        for _ in 0..entries {
            match r.str()? {
                "type" => kind = Some(r.str()?),
                "id" => id = Some(r.uint()?),
                "seq" => seq = Some(r.uint()?),
                "method" => method = Some(r.str()?),
                "event" => event = Some(r.str()?),
                "origin" => origin = Some(r.str()?),
                // Each kind has its own body key; the others are unknown
                // keys for it and are ignored.
                "params" => params = Some(r.skip_value()?),
                "result" => result = Some(r.skip_value()?),
                "payload" => event_payload = Some(r.skip_value()?),
                "error" => error = Some(r.skip_value()?),
                "durable" => durable = Some(r.skip_value()?),
                _ => {
                    r.skip_value()?;
                }
            }
        }
        if !r.is_at_end() {
            return Err(DecodeError::TrailingBytes);
        }
        let raw = |range: Option<std::ops::Range<usize>>, default: &'static [u8]| match range {
            Some(range) => payload.slice(range),
            None => Bytes::from_static(default),
        };
        let kind = kind.ok_or(DecodeError::MissingField("type"))?;
        Ok(match kind {
            "request" => Frame::Request(Request {
                id: id.ok_or(DecodeError::MissingField("id"))?,
                method: method.ok_or(DecodeError::MissingField("method"))?.to_owned(),
                params: raw(params, EMPTY_MAP),
            }),
            "response" => Frame::Response(Response {
                id: id.ok_or(DecodeError::MissingField("id"))?,
                result: match error {
                    Some(range) => Err(decode_body("error", &payload[range])?),
                    None => Ok(raw(result, NIL)),
                },
            }),
            "event" => Frame::Event(EventFrame {
                seq: seq.ok_or(DecodeError::MissingField("seq"))?,
                name: {
                    let name = event.ok_or(DecodeError::MissingField("event"))?;
                    match crate::events::EventType::from_name(name) {
                        Some(ty) => Cow::Borrowed(ty.name()),
                        None => Cow::Owned(name.to_owned()),
                    }
                },
                payload: raw(event_payload, EMPTY_MAP),
                origin: origin.map(str::to_owned),
                durable: match durable {
                    Some(range) => Some(decode_body("durable", &payload[range])?),
                    None => None,
                },
            }),
            "hello" => Frame::Hello(decode_body("hello", &payload)?),
            "welcome" => Frame::Welcome(decode_body("welcome", &payload)?),
            "refused" => Frame::Refused(decode_body("refused", &payload)?),
            "log" => Frame::Log(decode_body("log", &payload)?),
            "shutdown" => Frame::Shutdown(decode_body("shutdown", &payload)?),
            other => Frame::Unknown { kind: other.to_owned() },
        })
    }

    /// Appends this frame, length prefix included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Frame::Hello(b) => encode::control(out, "hello", b),
            Frame::Welcome(b) => encode::control(out, "welcome", b),
            Frame::Refused(b) => encode::control(out, "refused", b),
            Frame::Log(b) => encode::control(out, "log", b),
            Frame::Shutdown(b) => encode::control(out, "shutdown", b),
            Frame::Request(r) => {
                encode::request_raw(out, r.id, &r.method, &r.params);
                Ok(())
            }
            Frame::Response(r) => match &r.result {
                Ok(bytes) => {
                    encode::response_raw(out, r.id, bytes);
                    Ok(())
                }
                Err(e) => encode::response_err(out, r.id, e),
            },
            Frame::Event(e) => match (&e.origin, &e.durable) {
                (None, None) => {
                    encode::event_raw(out, e.seq, &e.name, &e.payload);
                    Ok(())
                }
                (Some(origin), None) => {
                    encode::event_from(out, e.seq, &e.name, origin, &e.payload);
                    Ok(())
                }
                (None, Some(mark)) => encode::event_durable(out, e.seq, &e.name, &e.payload, mark),
                // Durable events are the node's own chain events.
                (Some(_), Some(_)) => Err(EncodeError {
                    what: "event",
                    source: rmp_serde::encode::Error::Syntax("a durable event has no origin".into()),
                }),
            },
            Frame::Unknown { kind } => {
                let start = encode::begin(out);
                rmp::encode::write_map_len(out, 1).expect("writing to a Vec cannot fail");
                write_str(out, "type");
                write_str(out, kind);
                encode::finish(out, start);
                Ok(())
            }
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    rmp::encode::write_str(out, s).expect("writing to a Vec cannot fail");
}

fn write_uint(out: &mut Vec<u8>, v: u64) {
    rmp::encode::write_uint(out, v).expect("writing to a Vec cannot fail");
}

/// Encoders that append one complete frame (length prefix included) to a
/// buffer, so that many frames can be written with one syscall.
pub mod encode {
    use super::*;

    /// Reserves the length prefix; returns where the frame starts.
    pub fn begin(out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        start
    }

    /// Writes the length prefix of the frame begun at `start`.
    pub fn finish(out: &mut [u8], start: usize) {
        let len = out.len() - start - 4;
        // Frames are capped far below 4 GiB by the codec; a larger one is a
        // bug in the caller, and the receiver refuses it by its maximum.
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Serializes `value` as a MessagePack map with field names.
    pub fn body<T: Serialize + ?Sized>(out: &mut Vec<u8>, what: &'static str, value: &T) -> Result<(), EncodeError> {
        rmp_serde::encode::write_named(out, value).map_err(|source| EncodeError { what, source })
    }

    /// A request with typed params.
    pub fn request<P: Serialize + ?Sized>(
        out: &mut Vec<u8>,
        id: u64,
        method: &str,
        params: &P,
    ) -> Result<(), EncodeError> {
        let start = begin(out);
        request_head(out, id, method);
        if let Err(e) = body(out, "params", params) {
            out.truncate(start);
            return Err(e);
        }
        finish(out, start);
        Ok(())
    }

    /// A request whose params are already MessagePack.
    pub fn request_raw(out: &mut Vec<u8>, id: u64, method: &str, params: &[u8]) {
        let start = begin(out);
        request_head(out, id, method);
        out.extend_from_slice(params);
        finish(out, start);
    }

    fn request_head(out: &mut Vec<u8>, id: u64, method: &str) {
        rmp::encode::write_map_len(out, 4).expect("writing to a Vec cannot fail");
        write_str(out, "type");
        write_str(out, "request");
        write_str(out, "id");
        write_uint(out, id);
        write_str(out, "method");
        write_str(out, method);
        write_str(out, "params");
    }

    /// A successful response with a typed result.
    pub fn response<R: Serialize + ?Sized>(out: &mut Vec<u8>, id: u64, result: &R) -> Result<(), EncodeError> {
        let start = begin(out);
        response_head(out, id, "result");
        if let Err(e) = body(out, "result", result) {
            out.truncate(start);
            return Err(e);
        }
        finish(out, start);
        Ok(())
    }

    /// A successful response whose result is already MessagePack.
    pub fn response_raw(out: &mut Vec<u8>, id: u64, result: &[u8]) {
        let start = begin(out);
        response_head(out, id, "result");
        out.extend_from_slice(result);
        finish(out, start);
    }

    /// A failed response.
    pub fn response_err(out: &mut Vec<u8>, id: u64, error: &RemoteError) -> Result<(), EncodeError> {
        let start = begin(out);
        response_head(out, id, "error");
        if let Err(e) = body(out, "error", error) {
            out.truncate(start);
            return Err(e);
        }
        finish(out, start);
        Ok(())
    }

    fn response_head(out: &mut Vec<u8>, id: u64, key: &str) {
        rmp::encode::write_map_len(out, 3).expect("writing to a Vec cannot fail");
        write_str(out, "type");
        write_str(out, "response");
        write_str(out, "id");
        write_uint(out, id);
        write_str(out, key);
    }

    /// An event whose payload was encoded once by the publisher
    /// ([`Event::encode_payload`]) and is shared by every subscriber.
    pub fn event_raw(out: &mut Vec<u8>, seq: u64, name: &str, payload: &[u8]) {
        // This runs once per event per module, so the constant part of the
        // envelope is written as bytes: {"type": "event", "seq": …
        const HEAD: &[u8] = b"\x84\xa4type\xa5event\xa3seq";
        const EVENT_KEY: &[u8] = b"\xa5event";
        const PAYLOAD_KEY: &[u8] = b"\xa7payload";
        out.reserve(4 + HEAD.len() + 9 + EVENT_KEY.len() + 5 + name.len() + PAYLOAD_KEY.len() + payload.len());
        let start = begin(out);
        out.extend_from_slice(HEAD);
        write_uint(out, seq);
        out.extend_from_slice(EVENT_KEY);
        write_str(out, name);
        out.extend_from_slice(PAYLOAD_KEY);
        out.extend_from_slice(payload);
        finish(out, start);
    }

    /// An event a module published: [`event_raw`]'s frame with `origin`,
    /// the publishing module's name, after `event`.
    pub fn event_from(out: &mut Vec<u8>, seq: u64, name: &str, origin: &str, payload: &[u8]) {
        const HEAD: &[u8] = b"\x85\xa4type\xa5event\xa3seq";
        const EVENT_KEY: &[u8] = b"\xa5event";
        const ORIGIN_KEY: &[u8] = b"\xa6origin";
        const PAYLOAD_KEY: &[u8] = b"\xa7payload";
        let start = begin(out);
        out.extend_from_slice(HEAD);
        write_uint(out, seq);
        out.extend_from_slice(EVENT_KEY);
        write_str(out, name);
        out.extend_from_slice(ORIGIN_KEY);
        write_str(out, origin);
        out.extend_from_slice(PAYLOAD_KEY);
        out.extend_from_slice(payload);
        finish(out, start);
    }

    /// An event of a durable subscription: [`event_raw`]'s frame with
    /// `durable` ([`DurableMark`]) after `payload`.
    pub fn event_durable(
        out: &mut Vec<u8>,
        seq: u64,
        name: &str,
        payload: &[u8],
        mark: &DurableMark,
    ) -> Result<(), EncodeError> {
        const HEAD: &[u8] = b"\x85\xa4type\xa5event\xa3seq";
        const EVENT_KEY: &[u8] = b"\xa5event";
        const PAYLOAD_KEY: &[u8] = b"\xa7payload";
        const DURABLE_KEY: &[u8] = b"\xa7durable";
        let start = begin(out);
        out.extend_from_slice(HEAD);
        write_uint(out, seq);
        out.extend_from_slice(EVENT_KEY);
        write_str(out, name);
        out.extend_from_slice(PAYLOAD_KEY);
        out.extend_from_slice(payload);
        out.extend_from_slice(DURABLE_KEY);
        if let Err(e) = body(out, "durable", mark) {
            out.truncate(start);
            return Err(e);
        }
        finish(out, start);
        Ok(())
    }

    /// A control frame: the body's fields with `type` first, in one map.
    pub fn control<T: Serialize>(out: &mut Vec<u8>, kind: &'static str, value: &T) -> Result<(), EncodeError> {
        let mut tmp = Vec::new();
        body(&mut tmp, kind, value)?;
        let mut r = Reader::new(&tmp);
        let fields = r.map_len().map_err(|_| EncodeError {
            what: kind,
            source: rmp_serde::encode::Error::Syntax("control body is not a map".into()),
        })?;
        let head = r.position();
        let start = begin(out);
        rmp::encode::write_map_len(out, fields + 1).expect("writing to a Vec cannot fail");
        write_str(out, "type");
        write_str(out, kind);
        out.extend_from_slice(&tmp[head..]);
        finish(out, start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::LogLevel;
    use crate::{ErrorCode, Hash32};

    fn round_trip(frame: Frame) {
        let mut out = Vec::new();
        frame.encode(&mut out).unwrap();
        let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(len, out.len() - 4);
        let decoded = Frame::decode(Bytes::copy_from_slice(&out[4..])).unwrap();
        assert_eq!(decoded, frame);
    }

    #[test]
    fn every_frame_kind_round_trips() {
        round_trip(Frame::Hello(Hello {
            protocol_versions: vec![1],
            module_id: "m-1".into(),
            module_name: "m".into(),
            version: "1.0.0".into(),
            token: "ab".into(),
        }));
        round_trip(Frame::Refused(Refused {
            code: "bad_token".into(),
            reason: "no".into(),
        }));
        round_trip(Frame::Log(LogRecord {
            level: LogLevel::Warn,
            target: "t".into(),
            message: "hi".into(),
            fields: [("k".to_string(), "v".to_string())].into(),
        }));
        round_trip(Frame::Shutdown(Shutdown {
            reason: "unload".into(),
            grace_ms: 5000,
        }));
        round_trip(Frame::Request(Request {
            id: u64::MAX,
            method: "ping".into(),
            params: Bytes::from_static(EMPTY_MAP),
        }));
        round_trip(Frame::Response(Response {
            id: 9,
            result: Err(RemoteError::new(ErrorCode::Other("new_code".into()), "x")),
        }));
        round_trip(Frame::Event(EventFrame {
            seq: 3,
            name: "SomethingNew".into(),
            payload: Bytes::from_static(&[0x81, 0xa1, b'a', 0x01]),
            origin: None,
            durable: None,
        }));
        round_trip(Frame::Event(EventFrame {
            seq: 4,
            name: "block-stats.summary".into(),
            payload: Bytes::from_static(&[0x81, 0xa1, b'a', 0x01]),
            origin: Some("block-stats".into()),
            durable: None,
        }));
        round_trip(Frame::Event(EventFrame {
            seq: 5,
            name: "NewBlock".into(),
            payload: Bytes::from_static(&[0x81, 0xa1, b'a', 0x01]),
            origin: None,
            durable: Some(DurableMark {
                seq: 17,
                network: "regtest".into(),
                height: 101,
                hash: Hash32([7; 32]),
            }),
        }));
        round_trip(Frame::Unknown {
            kind: "telemetry".into(),
        });
    }

    #[test]
    fn keys_in_any_order_and_unknown_keys_are_accepted() {
        // {"id": 5, "extra": [1, 2], "method": "ping", "type": "request"}
        let mut m = Vec::new();
        rmp::encode::write_map_len(&mut m, 4).unwrap();
        write_str(&mut m, "id");
        write_uint(&mut m, 5);
        write_str(&mut m, "extra");
        rmp::encode::write_array_len(&mut m, 2).unwrap();
        write_uint(&mut m, 1);
        write_uint(&mut m, 2);
        write_str(&mut m, "method");
        write_str(&mut m, "ping");
        write_str(&mut m, "type");
        write_str(&mut m, "request");
        let Frame::Request(r) = Frame::decode(Bytes::from(m)).unwrap() else {
            panic!("not a request")
        };
        assert_eq!((r.id, r.method.as_str(), &r.params[..]), (5, "ping", EMPTY_MAP));
    }

    #[test]
    fn malformed_envelopes_are_errors_not_panics() {
        for bad in [
            &[][..],
            &[0x01],
            &[0x81, 0xa4, b't', b'y', b'p', b'e'],
            &[0x80],
            &[
                0x81, 0xa4, b't', b'y', b'p', b'e', 0xa7, b'r', b'e', b'q', b'u', b'e', b's', b't',
            ],
            &[0x80, 0x00],
        ] {
            assert!(Frame::decode(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
    }

    /// A deterministic mutation fuzz: valid frames with bytes flipped and
    /// cut, and pure noise, must decode or fail, never panic.
    #[test]
    fn mutated_and_random_payloads_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut seeds = Vec::new();
        let header = vec![1u8; 80];
        for frame in [
            Frame::Hello(Hello {
                protocol_versions: vec![1, 2],
                module_id: "m-1".into(),
                module_name: "m".into(),
                version: "1.0.0".into(),
                token: "ab".repeat(32),
            }),
            Frame::Request(Request {
                id: 7,
                method: "get_block_header".into(),
                params: Bytes::from(
                    rmp_serde::to_vec_named(&crate::methods::chain::ByHash { hash: Hash32([3; 32]) }).unwrap(),
                ),
            }),
            Frame::Response(Response {
                id: 7,
                result: Err(RemoteError::permission_denied(
                    crate::Permission::ReadUTXO,
                    "`get_utxo`",
                )),
            }),
            Frame::Event(EventFrame {
                seq: 9,
                name: "NewBlock".into(),
                payload: {
                    let mut p = Vec::new();
                    Event::from(crate::events::NewBlock {
                        block_hash: Hash32([4; 32]),
                        height: 9,
                        header: header.clone(),
                    })
                    .encode_payload(&mut p)
                    .unwrap();
                    Bytes::from(p)
                },
                origin: None,
                durable: None,
            }),
        ] {
            let mut out = Vec::new();
            frame.encode(&mut out).unwrap();
            seeds.push(out[4..].to_vec());
        }
        for i in 0..50_000 {
            let mut bytes = if i % 10 == 9 {
                (0..next() % 64).map(|_| next() as u8).collect()
            } else {
                seeds[i % seeds.len()].clone()
            };
            if !bytes.is_empty() {
                for _ in 0..=next() % 4 {
                    let pos = next() as usize % bytes.len();
                    bytes[pos] = next() as u8;
                }
                if next() % 5 == 0 {
                    bytes.truncate(next() as usize % bytes.len());
                }
            }
            match Frame::decode(Bytes::from(bytes)) {
                Ok(Frame::Event(e)) => {
                    let _ = e.event();
                }
                Ok(Frame::Request(r)) => {
                    let _ = r.params::<crate::methods::chain::ByHash>();
                }
                _ => {}
            }
        }
    }

    #[test]
    fn a_body_key_of_another_frame_kind_is_an_ignored_unknown_key() {
        // {"type": "response", "id": 1, "params": 5, "result": 6}
        let mut m = Vec::new();
        rmp::encode::write_map_len(&mut m, 4).unwrap();
        write_str(&mut m, "type");
        write_str(&mut m, "response");
        write_str(&mut m, "id");
        write_uint(&mut m, 1);
        write_str(&mut m, "params");
        write_uint(&mut m, 5);
        write_str(&mut m, "result");
        write_uint(&mut m, 6);
        let Frame::Response(r) = Frame::decode(Bytes::from(m)).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(&r.result.unwrap()[..], &[6]);
    }
}
