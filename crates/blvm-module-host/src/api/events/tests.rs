use std::sync::mpsc::Receiver;

use blvm_module_protocol::events::{ConfigLoaded, Event, EventType, ModuleLoaded, NewBlock, NodeStartupCompleted};
use blvm_module_protocol::Hash32;

use super::{EventManager, Outbound, RETIRED_STATS_KEPT};

fn block(height: u64) -> Event {
    Event::from(NewBlock {
        block_hash: Hash32([height as u8; 32]),
        height,
        header: vec![0; 80],
    })
}

/// The events waiting in a queue, decoded, with their sequence numbers.
fn drain(rx: &Receiver<Outbound>) -> Vec<(u64, Event)> {
    let mut out = Vec::new();
    while let Ok(item) = rx.try_recv() {
        if let Outbound::Event(q) = item {
            out.push((q.seq, Event::decode(&q.event.name, &q.event.payload).unwrap()));
        }
    }
    out
}

#[test]
fn events_arrive_in_order_with_consecutive_sequence_numbers() {
    let bus = EventManager::new();
    let (_tx, rx) = bus.register("a", "a", "1.0.0", 100);
    bus.subscribe("a", &[EventType::NewBlock]);
    for h in 0..10 {
        assert_eq!(bus.publish(&block(h)), 1);
    }
    let got = drain(&rx);
    assert_eq!(
        got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(got[3].1, block(3));
}

#[test]
fn full_queue_drops_and_counts_but_keeps_the_subscription() {
    let bus = EventManager::new();
    let (_tx, rx) = bus.register("slow", "slow", "1.0.0", 2);
    bus.subscribe("slow", &[EventType::NewBlock]);
    for h in 0..3 {
        bus.publish(&block(h));
    }
    let stats = bus.get_delivery_stats("slow").unwrap();
    assert_eq!((stats.delivered, stats.dropped_full), (2, 1));
    assert_eq!(drain(&rx).len(), 2);
    bus.publish(&block(3));
    // seq 3 was dropped, so the next delivery is seq 4: the module sees
    // the gap.
    assert_eq!(drain(&rx).iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![4]);
    assert_eq!(bus.subscriptions("slow"), vec![EventType::NewBlock]);
}

#[test]
fn closed_queue_is_counted_and_unsubscribed() {
    let bus = EventManager::new();
    let (tx, rx) = bus.register("gone", "gone", "1.0.0", 10);
    bus.subscribe("gone", &[EventType::NewBlock]);
    drop(rx);
    drop(tx);
    assert_eq!(bus.publish(&block(1)), 0);
    assert_eq!(bus.get_delivery_stats("gone").unwrap().dropped_closed, 1);
    assert!(bus.subscriptions("gone").is_empty());
    assert_eq!(bus.publish(&block(2)), 0);
    assert_eq!(bus.get_delivery_stats("gone").unwrap().dropped_closed, 1);
}

#[test]
fn module_loaded_is_published_after_subscription_and_replayed_to_hot_loaded_modules() {
    let bus = EventManager::new();
    let (_ta, rx_a) = bus.register("a", "alpha", "1.0.0", 100);
    let (_tb, rx_b) = bus.register("b", "beta", "2.0.0", 100);
    // Registered but not yet subscribed: nobody has heard of either.
    bus.subscribe("a", &[EventType::ModuleLoaded]);
    let loaded = |name: &str, v: &str| {
        Event::from(ModuleLoaded {
            module_name: name.into(),
            version: v.into(),
        })
    };
    assert_eq!(drain(&rx_a), vec![(1, loaded("alpha", "1.0.0"))]);
    // b subscribes later (hot-loaded): it first hears of alpha, then of
    // itself; alpha hears of beta.
    bus.subscribe("b", &[EventType::ModuleLoaded, EventType::NewBlock]);
    assert_eq!(
        drain(&rx_b),
        vec![(1, loaded("alpha", "1.0.0")), (2, loaded("beta", "2.0.0"))]
    );
    assert_eq!(drain(&rx_a), vec![(2, loaded("beta", "2.0.0"))]);
    // A second subscribe does not announce again.
    bus.subscribe("b", &[EventType::NewBlock]);
    assert!(drain(&rx_a).is_empty());
}

fn loaded(name: &str, version: &str) -> Event {
    Event::from(ModuleLoaded {
        module_name: name.into(),
        version: version.into(),
    })
}

fn config(reload: bool) -> Event {
    Event::from(ConfigLoaded {
        changed_sections: vec!["modules".into()],
        reload,
    })
}

fn started() -> Event {
    Event::from(NodeStartupCompleted {
        duration_ms: 812,
        components: vec!["chain".into()],
    })
}

#[test]
fn module_subscribing_to_modules_loaded_later_hears_of_itself_too_and_last() {
    let bus = EventManager::new();
    let (_ta, _rx_a) = bus.register("a", "alpha", "1.0.0", 100);
    let (_tb, rx_b) = bus.register("b", "beta", "2.0.0", 100);
    bus.subscribe("a", &[EventType::NewBlock]);
    // b's first subscription announces it, to no one: nobody listens yet.
    bus.subscribe("b", &[EventType::NewBlock]);
    assert!(drain(&rx_b).is_empty());
    // Its later subscription to ModuleLoaded tells it of alpha, then of
    // itself, as its first one would have.
    bus.subscribe("b", &[EventType::ModuleLoaded]);
    assert_eq!(
        drain(&rx_b),
        vec![(1, loaded("alpha", "1.0.0")), (2, loaded("beta", "2.0.0"))]
    );
}

#[test]
fn startup_events_published_before_a_subscription_are_replayed_to_it_once() {
    let bus = EventManager::new();
    let (_ta, rx_a) = bus.register("a", "alpha", "1.0.0", 100);
    bus.publish(&config(false));
    bus.publish(&config(true));
    bus.publish(&started());
    // a's first subscription comes after both: it gets the latest
    // ConfigLoaded and the startup, in that order, then its own
    // announcement.
    bus.subscribe(
        "a",
        &[
            EventType::NodeStartupCompleted,
            EventType::ModuleLoaded,
            EventType::ConfigLoaded,
        ],
    );
    assert_eq!(
        drain(&rx_a),
        vec![(1, config(true)), (2, started()), (3, loaded("alpha", "1.0.0"))]
    );
    // Subscribing again to types it has is no new subscription: nothing
    // is replayed twice.
    bus.subscribe("a", &[EventType::NodeStartupCompleted, EventType::NewBlock]);
    assert!(drain(&rx_a).is_empty());
    // Published after the subscription: delivered live, once.
    bus.publish(&config(true));
    assert_eq!(drain(&rx_a), vec![(4, config(true))]);
    // A later subscription of another module, that adds only one of them.
    let (_tb, rx_b) = bus.register("b", "beta", "1.0.0", 100);
    bus.subscribe("b", &[EventType::NewBlock]);
    bus.subscribe("b", &[EventType::NodeStartupCompleted]);
    assert_eq!(drain(&rx_b), vec![(1, started())]);
}

#[test]
fn nothing_is_replayed_before_the_node_published_it_or_for_other_types() {
    let bus = EventManager::new();
    let (_ta, rx_a) = bus.register("a", "alpha", "1.0.0", 100);
    bus.publish(&block(1));
    bus.subscribe(
        "a",
        &[
            EventType::NewBlock,
            EventType::ConfigLoaded,
            EventType::NodeStartupCompleted,
        ],
    );
    assert!(drain(&rx_a).is_empty());
}

#[test]
fn startup_event_published_while_modules_subscribe_reaches_each_exactly_once() {
    const N: usize = 500;
    let bus = std::sync::Arc::new(EventManager::new());
    let receivers: Vec<_> = (0..N)
        .map(|i| bus.register(&format!("m{i}"), "m", "1.0.0", 100))
        .collect();
    // The publication lands somewhere among the subscriptions: those
    // before it get it live, those after replayed; none twice, none never.
    let go = std::sync::Arc::new(std::sync::Barrier::new(2));
    let publisher = {
        let (bus, go) = (bus.clone(), go.clone());
        std::thread::spawn(move || {
            go.wait();
            bus.publish(&started())
        })
    };
    go.wait();
    for i in 0..N {
        bus.subscribe(&format!("m{i}"), &[EventType::NodeStartupCompleted]);
    }
    publisher.join().unwrap();
    for (_, rx) in &receivers {
        assert_eq!(drain(rx), vec![(1, started())]);
    }
}

#[test]
fn stats_cover_every_module_and_survive_unregister() {
    let bus = EventManager::new();
    let (_t1, _r1) = bus.register("m1", "one", "1.0.0", 5);
    let (_t2, _r2) = bus.register("m2", "two", "1.0.0", 7);
    bus.subscribe("m1", &[EventType::NewBlock]);
    bus.publish(&block(1));
    bus.unregister("m1");
    let all = bus.get_all_delivery_stats();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].module_id.as_str(), all[0].delivered, all[0].queue_capacity),
        ("m1", 1, 5)
    );
    assert_eq!(all[1].queue_capacity, 7);
}

#[test]
fn concurrent_publishers_queue_sequence_numbers_in_order() {
    let bus = std::sync::Arc::new(EventManager::new());
    let (_tx, rx) = bus.register("m", "m", "1.0.0", 100_000);
    bus.subscribe("m", &[EventType::NewBlock]);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for h in 0..5_000 {
                    bus.publish(&block(h));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seqs: Vec<u64> = drain(&rx).into_iter().map(|(s, _)| s).collect();
    assert_eq!(seqs, (1..=20_000).collect::<Vec<_>>());
}

#[test]
fn retired_spawns_keep_their_stats_up_to_the_bound_and_live_ones_always() {
    let bus = EventManager::new();
    let (_live_tx, _live_rx) = bus.register("live", "live", "1.0.0", 5);
    let mut queues = Vec::new();
    for n in 0..RETIRED_STATS_KEPT + 3 {
        let id = format!("m-{n:05}");
        queues.push(bus.register(&id, "m", "1.0.0", 5));
        bus.subscribe(&id, &[EventType::NewBlock]);
        bus.retire(&id);
        // Retired twice (unload after a replacement) counts once.
        bus.retire(&id);
    }
    // A retired spawn has no subscription left.
    assert_eq!(bus.publish(&block(1)), 0);
    assert!(bus.subscriptions("m-00003").is_empty());
    // The three oldest were dropped; the newest are kept, the live one too.
    for gone in ["m-00000", "m-00001", "m-00002"] {
        assert_eq!(bus.get_delivery_stats(gone), None, "{gone}");
    }
    assert!(bus.get_delivery_stats("m-00003").is_some());
    assert!(bus
        .get_delivery_stats(&format!("m-{:05}", RETIRED_STATS_KEPT + 2))
        .is_some());
    assert!(bus.get_delivery_stats("live").is_some());
    assert_eq!(bus.get_all_delivery_stats().len(), RETIRED_STATS_KEPT + 1);
}
