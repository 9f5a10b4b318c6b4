use std::sync::mpsc::Receiver;

use blvm_module_protocol::events::{Event, EventType, ModuleLoaded, NewBlock};
use blvm_module_protocol::Hash32;

use super::{EventManager, Outbound};

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
            out.push((q.seq, Event::decode(q.event.name, &q.event.payload).unwrap()));
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
