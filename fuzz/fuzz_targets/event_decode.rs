//! An event payload as the SDK decodes it, under every known event name
//! and an unknown one: decoding never panics, and a decoded event
//! re-encodes to a payload that decodes to the same event and encodes to
//! the same bytes again. (A NaN among the payload's floats is unequal to
//! itself: such an event is compared by its encoding only.)
#![no_main]

use blvm_fuzz::self_equal;
use blvm_module_protocol::events::{Event, EventType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let all = EventType::ALL;
    let name = match all.get(usize::from(pick) % (all.len() + 1)) {
        Some(t) => t.name(),
        None => "some-module.custom",
    };
    let Ok(event) = Event::decode(name, payload) else {
        return;
    };
    let mut encoded = Vec::new();
    event.encode_payload(&mut encoded).expect("a decoded event re-encodes");
    let again = Event::decode(name, &encoded).expect("a re-encoded event decodes");
    if self_equal(&event) {
        assert_eq!(again, event, "decode(encode(event)) == event");
    }
    let mut twice = Vec::new();
    again.encode_payload(&mut twice).expect("a decoded event re-encodes");
    assert_eq!(twice, encoded, "encode(decode(encode(event))) == encode(event)");
});
