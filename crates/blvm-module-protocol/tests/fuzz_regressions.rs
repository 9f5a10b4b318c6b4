//! Inputs the fuzz targets (`fuzz/`, docs/security.md §7) found, kept in
//! the normal suite.

use blvm_module_protocol::events::Event;

/// A NaN that is no `f64::NAN` (a payload bit set), as a peer may send.
const NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

fn write_str(out: &mut Vec<u8>, s: &str) {
    rmp::encode::write_str(out, s).expect("writing to a Vec");
}

/// `DifficultyAdjusted` with a NaN `old_difficulty`: `event_decode` took
/// it for a broken round trip (the decoded event is unequal to itself,
/// NaN != NaN). The payload decodes, the NaN keeps its bits, and the event
/// re-encodes to the very bytes received.
#[test]
fn an_event_payload_holding_nan_re_encodes_bit_for_bit() {
    let mut payload = Vec::new();
    rmp::encode::write_map_len(&mut payload, 5).expect("writing to a Vec");
    write_str(&mut payload, "old_difficulty");
    rmp::encode::write_f64(&mut payload, f64::from_bits(NAN_BITS)).expect("writing to a Vec");
    write_str(&mut payload, "new_difficulty");
    rmp::encode::write_f64(&mut payload, 1.0).expect("writing to a Vec");
    for (key, value) in [("old_bits", 1), ("new_bits", 2), ("height", 3)] {
        write_str(&mut payload, key);
        rmp::encode::write_uint(&mut payload, value).expect("writing to a Vec");
    }

    let event = Event::decode("DifficultyAdjusted", &payload).expect("a NaN difficulty decodes");
    let Event::DifficultyAdjusted(adjusted) = &event else {
        panic!("decoded as {event:?}");
    };
    assert_eq!(adjusted.old_difficulty.to_bits(), NAN_BITS);
    let mut again = Vec::new();
    event.encode_payload(&mut again).expect("re-encodes");
    assert_eq!(again, payload);
}
