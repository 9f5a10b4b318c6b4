//! The vectors of durable subscriptions (`docs/ipc-protocol.md` §10.6):
//! the example module `blockwatch` subscribes durably from genesis, is sent
//! mainnet block 1 as a durable `NewBlock` (its second durable event), and
//! acknowledges it.

use blvm_module_protocol::methods::events::{
    AckEvents, AckResult, ChainPoint, DurableCursor, DurableSubscribed, DurableSubscription,
};
use blvm_module_protocol::DurableMark;

use super::*;

fn subscription() -> DurableSubscription {
    DurableSubscription {
        events: vec!["NewBlock".into(), "BlockDisconnected".into(), "ChainReorg".into()],
        start_height: Some(0),
    }
}

/// A module with no cursor yet that asked for `start_height` 0: before
/// genesis, nothing acknowledged.
fn subscribed() -> DurableSubscribed {
    DurableSubscribed {
        durable: vec!["NewBlock".into(), "BlockDisconnected".into(), "ChainReorg".into()],
        cursor: DurableCursor { seq: 0, at: None },
    }
}

fn mark() -> DurableMark {
    DurableMark {
        seq: 2,
        network: "main".into(),
        height: 1,
        hash: block_1_hash(),
    }
}

fn acked() -> AckResult {
    AckResult {
        cursor: DurableCursor {
            seq: 2,
            at: Some(ChainPoint {
                height: 1,
                hash: block_1_hash(),
            }),
        },
    }
}

fn response<R: Serialize>(name: &'static str, id: u64, result: &R) -> Vector {
    Vector {
        name,
        bytes: encoded(name, |out| encode::response(out, id, result)),
    }
}

/// The durable vectors, in the order the spec shows them.
pub(super) fn vectors() -> Vec<Vector> {
    let mut payload = Vec::new();
    Event::NewBlock(new_block())
        .encode_payload(&mut payload)
        .expect("a catalogue payload encodes");
    vec![
        request(
            "subscribe_durable_request",
            50,
            Method::SubscribeDurable.name(),
            &subscription(),
        ),
        response("subscribe_durable_response", 50, &subscribed()),
        Vector {
            name: "event_durable",
            bytes: encoded("event_durable", |out| {
                encode::event_durable(out, 7, "NewBlock", &payload, &mark())
            }),
        },
        request(
            "ack_events_request",
            51,
            Method::AckEvents.name(),
            &AckEvents { seq: 2 },
        ),
        response("ack_events_response", 51, &acked()),
    ]
}

#[test]
fn durable_request_vectors_decode_to_their_params_need_subscribe_events_and_re_encode_exactly() {
    let (id, method, params) = request_vector::<DurableSubscription>("subscribe_durable_request");
    assert_eq!((id, method.as_str(), params), (50, "subscribe_durable", subscription()));
    let (id, method, params) = request_vector::<AckEvents>("ack_events_request");
    assert_eq!((id, method.as_str(), params), (51, "ack_events", AckEvents { seq: 2 }));
    for name in ["subscribe_durable", "ack_events"] {
        let method = Method::from_name(name).expect("a known method");
        assert_eq!(
            method.required_permission(),
            Some(Permission::SubscribeEvents),
            "{name}"
        );
    }
}

#[test]
fn durable_response_vectors_decode_to_the_cursor_and_re_encode_exactly() {
    let (id, result) = response_vector::<DurableSubscribed>("subscribe_durable_response");
    assert_eq!((id, result), (50, subscribed()));
    let (id, result) = response_vector::<AckResult>("ack_events_response");
    assert_eq!((id, result), (51, acked()));
}

#[test]
fn a_durable_event_vector_carries_block_1_with_its_number_and_key_and_re_encodes_exactly() {
    let bytes = read_vector("event_durable");
    let frame = decode_only_frame(&bytes);
    assert_re_encodes_to(&frame, &bytes);
    let Frame::Event(e) = frame else {
        panic!("event_durable is not an event")
    };
    assert_eq!(e.seq, 7);
    assert_eq!(e.event().expect("decodes"), Event::NewBlock(new_block()));
    let mark = e.durable.expect("durable");
    assert_eq!(mark, self::mark());
    assert_eq!(mark.key("NewBlock"), format!("main:NewBlock:1:{BLOCK_1_HASH}"));
}
