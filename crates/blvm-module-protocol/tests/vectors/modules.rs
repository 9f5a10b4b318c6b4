//! The vectors of the inter-module methods (`docs/ipc-protocol.md` §8.5):
//! module `wallet` registers `balance`, module `pos` discovers it, calls
//! it, and `wallet` publishes a `PaymentSettled`, which a subscriber
//! receives with its origin.

use blvm_module_protocol::events::PaymentSettled;
use blvm_module_protocol::methods::modules::{
    ApiMethod, CallModule, CallModuleResult, PublishEvent, RegisterModuleApi,
};

use super::*;

fn balance() -> ApiMethod {
    ApiMethod {
        name: "balance".into(),
        description: "The wallet's balance in satoshis.".into(),
    }
}

fn register() -> RegisterModuleApi {
    RegisterModuleApi {
        methods: vec![balance()],
    }
}

fn call() -> CallModule {
    CallModule {
        module: "wallet".into(),
        method: "balance".into(),
        params: vec![0x80],
        timeout_ms: Some(2000),
    }
}

fn call_result() -> CallModuleResult {
    CallModuleResult {
        result: vec![0x81, 0xa4, b's', b'a', b't', b's', 0xcd, 0x13, 0x88],
    }
}

fn settled() -> Event {
    Event::from(PaymentSettled {
        payment_id: "inv-42".into(),
        txid: block_1_hash(),
        confirmations: 1,
    })
}

fn publish() -> PublishEvent {
    let mut payload = Vec::new();
    settled()
        .encode_payload(&mut payload)
        .expect("a catalogue payload encodes");
    PublishEvent {
        event: "PaymentSettled".into(),
        payload,
    }
}

/// The inter-module vectors, in the order the spec shows them.
pub(super) fn vectors() -> Vec<Vector> {
    vec![
        request(
            "register_module_api_request",
            20,
            Method::RegisterModuleApi.name(),
            &register(),
        ),
        request(
            "discover_modules_request",
            21,
            Method::DiscoverModules.name(),
            &Empty {},
        ),
        request("call_module_request", 22, Method::CallModule.name(), &call()),
        Vector {
            name: "call_module_response",
            bytes: encoded("call_module answer", |out| encode::response(out, 22, &call_result())),
        },
        request("publish_event_request", 23, Method::PublishEvent.name(), &publish()),
        Vector {
            name: "event_from_module",
            bytes: {
                let p = publish();
                let mut out = Vec::new();
                encode::event_from(&mut out, 5, &p.event, "wallet", &p.payload);
                out
            },
        },
    ]
}

#[test]
fn inter_module_vectors_decode_to_their_params_and_capabilities() {
    let (id, method, params) = request_vector::<RegisterModuleApi>("register_module_api_request");
    assert_eq!((id, method.as_str(), params), (20, "register_module_api", register()));
    let (id, method, _) = request_vector::<Empty>("discover_modules_request");
    assert_eq!((id, method.as_str()), (21, "discover_modules"));
    let (id, method, params) = request_vector::<CallModule>("call_module_request");
    assert_eq!((id, method.as_str(), params), (22, "call_module", call()));
    let (id, result) = response_vector::<CallModuleResult>("call_module_response");
    assert_eq!((id, result), (22, call_result()));
    let (id, method, params) = request_vector::<PublishEvent>("publish_event_request");
    assert_eq!((id, method.as_str(), params), (23, "publish_event", publish()));
    for (method, permission) in [
        (Method::RegisterModuleApi, Permission::RegisterModuleApi),
        (Method::DiscoverModules, Permission::DiscoverModules),
        (Method::CallModule, Permission::CallModule),
        (Method::PublishEvent, Permission::PublishEvents),
    ] {
        assert_eq!(method.required_permission(), Some(permission));
    }
}

#[test]
fn an_event_a_module_published_carries_its_origin_and_decodes_as_the_catalogue_event() {
    let bytes = read_vector("event_from_module");
    let frame = decode_only_frame(&bytes);
    assert_re_encodes_to(&frame, &bytes);
    let Frame::Event(e) = frame else {
        panic!("event_from_module is not an event");
    };
    assert_eq!((e.seq, e.origin.as_deref()), (5, Some("wallet")));
    assert_eq!(e.event().expect("decodes"), settled());
}
