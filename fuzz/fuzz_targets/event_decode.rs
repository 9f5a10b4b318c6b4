//! An event payload as the SDK decodes it, under every known event name
//! and an unknown one: decoding never panics, and a decoded event
//! re-encodes to a payload that decodes to the same event.
#![no_main]

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
    if event.encode_payload(&mut encoded).is_err() {
        return;
    }
    let again = Event::decode(name, &encoded).expect("a re-encoded event decodes");
    assert_eq!(again, event, "decode(encode(event)) == event");
});
