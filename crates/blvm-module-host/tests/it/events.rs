//! Event delivery to real module processes.

use blvm_module_protocol::events::{Event, NewBlock};
use blvm_module_protocol::Permission::{ReadBlockchain, SubscribeEvents};

use crate::support::{spec, Host};

fn new_block(host: &Host, height: u64) -> Event {
    Event::from(NewBlock {
        block_hash: host.chain.hash_at(height),
        height,
        header: host.chain.header_bytes(height),
    })
}

#[test]
fn module_receives_published_events_in_order_with_consecutive_sequence_numbers() {
    let host = Host::start("events-order");
    let mut watcher = spec("watcher", &[SubscribeEvents, ReadBlockchain]);
    // The whole chain is published in one burst; the queue holds it all so
    // that nothing is dropped however slowly the module runs.
    watcher.event_queue_capacity = 1000;
    let module = host.spawn(watcher, "events", &[("BLVM_TEST_EVENTS", "ModuleLoaded,NewBlock")]);
    module.expect("SUBSCRIBED");
    // Its own ModuleLoaded comes first: published at subscription.
    assert_eq!(module.expect("EVENT"), "EVENT 1 ModuleLoaded watcher 1.0.0");
    for height in 0..=438 {
        assert_eq!(host.events.publish(&new_block(&host, height)), 1);
    }
    for height in 0..=438u64 {
        let line = module.expect("EVENT");
        let expected = format!(
            "EVENT {} NewBlock {} {}",
            height + 2,
            height,
            host.chain.hash_at(height)
        );
        assert_eq!(line, expected);
    }
    let stats = host.events.get_delivery_stats("watcher").expect("stats");
    assert_eq!((stats.delivered, stats.dropped_full, stats.dropped_closed), (440, 0, 0));
}

#[test]
fn hot_loaded_module_first_hears_of_modules_already_loaded() {
    let host = Host::start("events-loaded");
    let first = host.spawn(
        spec("first", &[SubscribeEvents]),
        "events",
        &[("BLVM_TEST_EVENTS", "ModuleLoaded")],
    );
    first.expect("SUBSCRIBED");
    assert_eq!(first.expect("EVENT"), "EVENT 1 ModuleLoaded first 1.0.0");
    let second = host.spawn(
        spec("second", &[SubscribeEvents]),
        "events",
        &[("BLVM_TEST_EVENTS", "ModuleLoaded")],
    );
    second.expect("SUBSCRIBED");
    assert_eq!(second.expect("EVENT"), "EVENT 1 ModuleLoaded first 1.0.0");
    assert_eq!(second.expect("EVENT"), "EVENT 2 ModuleLoaded second 1.0.0");
    assert_eq!(first.expect("EVENT"), "EVENT 2 ModuleLoaded second 1.0.0");
}

#[test]
fn subscribing_to_an_event_needs_its_capability() {
    let host = Host::start("events-perm");
    // NewBlock needs read_blockchain on top of subscribe_events.
    let module = host.spawn(
        spec("nosy", &[SubscribeEvents]),
        "events",
        &[("BLVM_TEST_EVENTS", "NewBlock")],
    );
    let line = module.expect("ERROR");
    assert!(
        line.contains("permission_denied") && line.contains("read_blockchain"),
        "{line}"
    );
}
