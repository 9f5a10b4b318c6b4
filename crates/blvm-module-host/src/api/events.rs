//! The event bus: node events to subscribed modules, never blocking the
//! publisher.
//!
//! # Delivery semantics
//!
//! [`EventManager::publish`] encodes the payload once and `try_send`s a
//! shared handle to it into each subscriber's bounded queue (default
//! [`DEFAULT_QUEUE_CAPACITY`]); the module's writer thread drains the queue
//! onto its socket, many events per `write`. Nothing here waits for a
//! module.
//!
//! - Each delivery attempt to a module takes the module's next sequence
//!   number, starting at 1. Delivered events arrive in order; a gap in the
//!   numbers is exactly the events that were dropped.
//! - Queue full: the event is dropped for that module and counted in
//!   `dropped_full`; the subscription stays (the module is slow, not dead).
//! - Queue closed (the module's connection is gone): counted in
//!   `dropped_closed` and the subscription is removed.
//! - Payload that cannot be encoded: dropped for everyone and counted in
//!   `encode_errors` of each would-be recipient.
//!
//! Worked example: module A (queue of 2) subscribes to `NewBlock`, then the
//! node publishes blocks 1, 2, 3 before A's writer runs. A's queue takes
//! seq 1 and 2; block 3 gets seq 3 and is dropped (`dropped_full` = 1). A
//! reads seq 1, 2; the next block arrives with seq 4, and A knows it
//! missed one.
//!
//! # Events replayed at subscription
//!
//! Some events describe a state rather than a moment, and a module that
//! subscribes after they happened still needs them: a module loaded at
//! start typically opens its database before it subscribes, and the node
//! announces its configuration and its startup as soon as the modules have
//! shaken hands. A subscription that *adds* one of these types delivers, at
//! once and in this order, before any later event:
//!
//! 1. `ConfigLoaded`: the latest one published, if any ([`REPLAYED`]);
//! 2. `NodeStartupCompleted`: the one published, if the node has started;
//! 3. `ModuleLoaded`: one for every other module already announced, then
//!    the module's own when it has been announced (its own is otherwise
//!    published, to every `ModuleLoaded` subscriber, itself included, by
//!    this very subscription: see below). Either way a module hears of
//!    itself once, after the others it is told about at subscription.
//!
//! Publishing a replayed type and subscribing take the same lock, so an
//! event is either replayed or delivered live, never both and never
//! neither. Nothing else is replayed. A type already in the subscription
//! is not replayed again; unsubscribing and subscribing again replays it
//! again (a new subscription of the same connection).
//!
//! # Events modules publish
//!
//! [`EventManager::publish_from_module`] delivers an event a module
//! published (the inter-module service has checked that its manifest
//! declares it and that its payload is well formed) with the same
//! semantics, tagged with its origin. A catalogue event reaches the
//! subscribers of its type; a module's own `<module>.<Event>` reaches the
//! modules that subscribed to that name ([`EventManager::subscribe_custom`]).
//!
//! # `ModuleLoaded`
//!
//! A module's `ModuleLoaded` is published only once it has subscribed (its
//! first `subscribe_events`), so every module that hears of it is ready.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};

use blvm_module_protocol::events::{Event, EventType, ModuleLoaded};
use bytes::Bytes;

use super::durable::{DurableFeed, DURABLE_TYPES};

/// Default capacity of a module's event queue, as the seed specifies.
pub const DEFAULT_QUEUE_CAPACITY: usize = 100;

/// The event types whose latest event the bus keeps and delivers to a
/// subscription that adds the type after it was published (besides
/// `ModuleLoaded`, replayed per announced module), in replay order.
pub const REPLAYED: [EventType; 2] = [EventType::ConfigLoaded, EventType::NodeStartupCompleted];

/// How many ended spawns' delivery counters are kept ([`EventManager::retire`]):
/// the newest; older ones are dropped, so a module that restarts for
/// months does not grow the node.
pub const RETIRED_STATS_KEPT: usize = 1024;

/// Custom event names one module may subscribe to, at most.
pub const MAX_CUSTOM_SUBSCRIPTIONS: usize = 256;

/// An event encoded once and shared by every subscriber.
#[derive(Debug)]
pub struct EncodedEvent {
    /// The event's wire name: a catalogue name, or a module's own
    /// `<module>.<Event>`.
    pub name: Cow<'static, str>,
    /// The payload, MessagePack.
    pub payload: Bytes,
    /// The publishing module's name; `None` for the node's own events.
    pub origin: Option<Arc<str>>,
}

/// One entry of a module's queue.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    /// The module's delivery sequence number.
    pub seq: u64,
    /// The shared encoded event.
    pub event: Arc<EncodedEvent>,
}

/// What a module's writer thread receives: an event, or a nudge to look
/// at its control queue (invocations, shutdown) and its closed flag.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An event to write.
    Event(QueuedEvent),
    /// Something other than an event is waiting.
    Wake,
}

/// Delivery counters of one module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// The module id.
    pub module_id: String,
    /// The module name.
    pub module_name: String,
    /// Events placed in its queue.
    pub delivered: u64,
    /// Events dropped because its queue was full.
    pub dropped_full: u64,
    /// Events dropped because its queue was closed.
    pub dropped_closed: u64,
    /// Events dropped because they could not be encoded.
    pub encode_errors: u64,
    /// Its queue's capacity.
    pub queue_capacity: u64,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    dropped_full: AtomicU64,
    dropped_closed: AtomicU64,
    encode_errors: AtomicU64,
}

/// A module's counters with its name and queue capacity.
struct StatsEntry {
    name: String,
    capacity: usize,
    counters: Arc<Counters>,
}

/// A module's end of the bus.
struct Subscriber {
    module_id: String,
    tx: SyncSender<Outbound>,
    /// The next sequence number. Held across the `try_send` so that two
    /// threads publishing at once cannot queue seq 6 before seq 5.
    next_seq: Mutex<u64>,
    counters: Arc<Counters>,
}

/// A module's delivery sequence numbers and wake-up, for the events the
/// bus does not queue itself (a durable subscription's, which the module's
/// writer makes): taking numbers under the same lock the publishers hold
/// keeps the module's frames in sequence order.
#[derive(Clone)]
pub struct DeliverySeq(Arc<Subscriber>);

impl DeliverySeq {
    /// The next sequence number, locked: publishers to this module wait
    /// until the guard drops, so every event queued before it has a lower
    /// number and every later one a higher.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        lock(&self.0.next_seq)
    }

    /// Counts `n` events delivered outside the queue.
    pub(crate) fn delivered(&self, n: u64) {
        self.0.counters.delivered.fetch_add(n, Ordering::Relaxed);
    }

    /// Wakes the module's writer; a full queue means it is awake anyway.
    pub(crate) fn wake(&self) {
        let _ = self.0.tx.try_send(Outbound::Wake);
    }
}

/// What happened to one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    Queued,
    Dropped,
    Closed,
}

impl Subscriber {
    /// Tries to enqueue without waiting.
    fn offer(&self, event: &Arc<EncodedEvent>) -> Offer {
        let mut next_seq = lock(&self.next_seq);
        let seq = *next_seq;
        *next_seq += 1;
        let sent = self.tx.try_send(Outbound::Event(QueuedEvent {
            seq,
            event: Arc::clone(event),
        }));
        drop(next_seq);
        match sent {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                Offer::Queued
            }
            Err(TrySendError::Full(_)) => {
                self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
                Offer::Dropped
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped_closed.fetch_add(1, Ordering::Relaxed);
                Offer::Closed
            }
        }
    }
}

struct ModuleEntry {
    name: String,
    version: String,
    subscriber: Arc<Subscriber>,
    types: Vec<EventType>,
    /// Custom (`<module>.<Event>`) names subscribed to.
    custom: Vec<String>,
    announced: bool,
    capacity: usize,
}

/// The event bus. Cheap to share behind an `Arc`.
pub struct EventManager {
    /// Subscribers per event type, indexed by [`EventType::index`]. Read on
    /// every publish; written only on (un)subscribe.
    table: RwLock<Vec<Vec<Arc<Subscriber>>>>,
    /// Subscribers per custom event name; written only on (un)subscribe.
    custom: RwLock<HashMap<String, Vec<Arc<Subscriber>>>>,
    /// Registered modules, in registration order; also the lock that
    /// orders `ModuleLoaded` announcements and the publication of
    /// [`REPLAYED`] types against subscriptions.
    modules: Mutex<Vec<(String, ModuleEntry)>>,
    /// The latest event of each [`REPLAYED`] type, by position in it.
    /// Written and read only with `modules` held.
    retained: Mutex<[Option<Arc<EncodedEvent>>; REPLAYED.len()]>,
    /// Counters outlive a module's registration so that stats can be read
    /// after it disconnected, was replaced or unloaded.
    stats: Mutex<Stats>,
    /// Durable subscriptions by module id, woken when the chain changes.
    durable: RwLock<Vec<(String, Arc<DurableFeed>)>>,
}

/// Every spawn's counters, and which spawns have ended, oldest first.
#[derive(Default)]
struct Stats {
    by_id: HashMap<String, StatsEntry>,
    retired: std::collections::VecDeque<String>,
}

impl Default for EventManager {
    fn default() -> Self {
        EventManager::new()
    }
}

impl EventManager {
    /// An empty bus.
    pub fn new() -> Self {
        EventManager {
            table: RwLock::new(vec![Vec::new(); EventType::COUNT]),
            custom: RwLock::new(HashMap::new()),
            modules: Mutex::new(Vec::new()),
            retained: Mutex::new([None, None]),
            stats: Mutex::new(Stats::default()),
            durable: RwLock::new(Vec::new()),
        }
    }

    /// Publishes `event` to every subscriber of its type. Never blocks on a
    /// module; returns the number of modules whose queue took it (not
    /// counting those whose queue was full or closed).
    pub fn publish(&self, event: &Event) -> usize {
        let Some(ty) = event.event_type() else {
            return 0;
        };
        // Sized for a `NewBlock` (143 bytes) and most others, so encoding
        // does not reallocate.
        let mut payload = Vec::with_capacity(256);
        if let Err(e) = event.encode_payload(&mut payload) {
            tracing::warn!(event = ty.name(), error = %e, "event dropped: cannot encode");
            for sub in read(&self.table)[ty.index()].iter() {
                sub.counters.encode_errors.fetch_add(1, Ordering::Relaxed);
            }
            return 0;
        }
        let encoded = Arc::new(EncodedEvent {
            name: Cow::Borrowed(ty.name()),
            payload: Bytes::from(payload),
            origin: None,
        });
        let queued = self.publish_encoded(ty, &encoded);
        if DURABLE_TYPES.contains(&ty) {
            // The chain changed: each durable feed reads what follows its
            // module's view.
            for (_, feed) in read(&self.durable).iter() {
                feed.wake();
            }
        }
        queued
    }

    /// Publishes an event module `origin` published: `ty` for a catalogue
    /// event (never a node-only one: the caller has checked), `None` for
    /// the module's own `name`. `payload` is already encoded and checked.
    /// Never blocks; returns how many queues took it.
    pub fn publish_from_module(&self, ty: Option<EventType>, name: &str, payload: Bytes, origin: &str) -> usize {
        let encoded = Arc::new(EncodedEvent {
            name: match ty {
                Some(ty) => Cow::Borrowed(ty.name()),
                None => Cow::Owned(name.to_owned()),
            },
            payload,
            origin: Some(Arc::from(origin)),
        });
        let (queued, closed) = match ty {
            Some(ty) => self.publish_encoded_counted(ty, &encoded),
            None => {
                let mut closed = Vec::new();
                let mut queued = 0;
                if let Some(subs) = read(&self.custom).get(name) {
                    for sub in subs {
                        match sub.offer(&encoded) {
                            Offer::Queued => queued += 1,
                            Offer::Dropped => {}
                            Offer::Closed => closed.push(sub.module_id.clone()),
                        }
                    }
                }
                (queued, closed)
            }
        };
        self.remove_closed(closed);
        queued
    }

    fn publish_encoded_counted(&self, ty: EventType, encoded: &Arc<EncodedEvent>) -> (usize, Vec<String>) {
        // Module-published types are never replayed ones (those are
        // node-only), so no subscription lock is needed.
        debug_assert!(!REPLAYED.contains(&ty));
        self.offer_all(ty, encoded)
    }

    fn publish_encoded(&self, ty: EventType, encoded: &Arc<EncodedEvent>) -> usize {
        let (queued, closed) = match REPLAYED.iter().position(|t| *t == ty) {
            Some(slot) => {
                // Under the subscription lock: a module subscribing now
                // gets this event either from the table or replayed.
                let _modules = lock(&self.modules);
                lock(&self.retained)[slot] = Some(Arc::clone(encoded));
                self.offer_all(ty, encoded)
            }
            None => self.offer_all(ty, encoded),
        };
        self.remove_closed(closed);
        queued
    }

    /// Offers to every subscriber of `ty`; returns how many took it and the
    /// modules whose queue is closed. Takes only the table's read lock, so
    /// it may run while `modules` is held.
    fn offer_all(&self, ty: EventType, encoded: &Arc<EncodedEvent>) -> (usize, Vec<String>) {
        let mut closed = Vec::new();
        let mut queued = 0;
        for sub in read(&self.table)[ty.index()].iter() {
            match sub.offer(encoded) {
                Offer::Queued => queued += 1,
                Offer::Dropped => {}
                Offer::Closed => closed.push(sub.module_id.clone()),
            }
        }
        (queued, closed)
    }

    fn remove_closed(&self, closed: Vec<String>) {
        for module_id in closed {
            tracing::debug!(module_id, "event queue closed; removing its subscriptions");
            self.unregister(&module_id);
        }
    }

    /// Registers a module (at handshake) and returns both ends of its event
    /// queue. The sender is for [`Outbound::Wake`] only: the queue closes
    /// for the publisher when the receiver is dropped.
    pub fn register(
        &self,
        module_id: &str,
        name: &str,
        version: &str,
        capacity: usize,
    ) -> (SyncSender<Outbound>, Receiver<Outbound>) {
        let capacity = capacity.max(1);
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let counters = Arc::new(Counters::default());
        lock(&self.stats).by_id.insert(
            module_id.to_owned(),
            StatsEntry {
                name: name.to_owned(),
                capacity,
                counters: Arc::clone(&counters),
            },
        );
        let entry = ModuleEntry {
            name: name.to_owned(),
            version: version.to_owned(),
            subscriber: Arc::new(Subscriber {
                module_id: module_id.to_owned(),
                tx: tx.clone(),
                next_seq: Mutex::new(1),
                counters,
            }),
            types: Vec::new(),
            custom: Vec::new(),
            announced: false,
            capacity,
        };
        let mut modules = lock(&self.modules);
        modules.retain(|(id, _)| id != module_id);
        modules.push((module_id.to_owned(), entry));
        (tx, rx)
    }

    /// Removes a module's subscriptions and registration (its connection
    /// closed). Its delivery stats are kept.
    pub fn unregister(&self, module_id: &str) {
        let mut modules = lock(&self.modules);
        let Some(pos) = modules.iter().position(|(id, _)| id == module_id) else {
            return;
        };
        let (_, entry) = modules.remove(pos);
        write(&self.durable).retain(|(id, _)| id != module_id);
        let mut table = write(&self.table);
        for ty in entry.types {
            table[ty.index()].retain(|s| !Arc::ptr_eq(s, &entry.subscriber));
        }
        drop(table);
        remove_custom(&mut write(&self.custom), &entry.subscriber, &entry.custom);
    }

    /// Adds custom event names (`<module>.<Event>`, of modules that publish
    /// their own events) to a module's subscription; returns every custom
    /// name it is now subscribed to, or `None` when it would pass
    /// [`MAX_CUSTOM_SUBSCRIPTIONS`] (nothing is added).
    pub fn subscribe_custom(&self, module_id: &str, names: &[String]) -> Option<Vec<String>> {
        let mut modules = lock(&self.modules);
        let Some((_, entry)) = modules.iter_mut().find(|(id, _)| id == module_id) else {
            return Some(Vec::new());
        };
        let mut added: Vec<&String> = names.iter().filter(|n| !entry.custom.contains(n)).collect();
        added.sort();
        added.dedup();
        if entry.custom.len() + added.len() > MAX_CUSTOM_SUBSCRIPTIONS {
            return None;
        }
        let mut custom = write(&self.custom);
        for name in added {
            custom
                .entry(name.clone())
                .or_default()
                .push(Arc::clone(&entry.subscriber));
            entry.custom.push(name.clone());
        }
        Some(entry.custom.clone())
    }

    /// Removes custom event names from a module's subscription; returns the
    /// custom names that remain.
    pub fn unsubscribe_custom(&self, module_id: &str, names: &[String]) -> Vec<String> {
        let mut modules = lock(&self.modules);
        let Some((_, entry)) = modules.iter_mut().find(|(id, _)| id == module_id) else {
            return Vec::new();
        };
        let gone: Vec<String> = entry.custom.iter().filter(|n| names.contains(n)).cloned().collect();
        remove_custom(&mut write(&self.custom), &entry.subscriber, &gone);
        entry.custom.retain(|n| !names.contains(n));
        entry.custom.clone()
    }

    /// The custom event names a module is subscribed to.
    pub fn custom_subscriptions(&self, module_id: &str) -> Vec<String> {
        lock(&self.modules)
            .iter()
            .find(|(id, _)| id == module_id)
            .map(|(_, e)| e.custom.clone())
            .unwrap_or_default()
    }

    /// Adds `types` to a module's subscription and returns all the types it
    /// is now subscribed to. Permission checks are the hub's job.
    ///
    /// The [`REPLAYED`] types it adds are replayed to it (their latest
    /// event, if any); on a module's first subscription its `ModuleLoaded`
    /// is published; if `types` adds `ModuleLoaded`, the already-announced
    /// modules are replayed to it first, its own last (see the module
    /// docs).
    pub fn subscribe(&self, module_id: &str, types: &[EventType]) -> Vec<EventType> {
        let mut modules = lock(&self.modules);
        let Some(pos) = modules.iter().position(|(id, _)| id == module_id) else {
            return Vec::new();
        };
        let added: Vec<EventType> = {
            let entry = &mut modules[pos].1;
            let mut added = Vec::new();
            for ty in types {
                if !entry.types.contains(ty) && !added.contains(ty) {
                    added.push(*ty);
                }
            }
            let mut table = write(&self.table);
            for ty in &added {
                table[ty.index()].push(Arc::clone(&entry.subscriber));
            }
            entry.types.extend(added.iter().copied());
            added
        };
        let subscriber = Arc::clone(&modules[pos].1.subscriber);
        // A full or closed queue is counted by `offer`; a replay is best
        // effort like any delivery.
        {
            let retained = lock(&self.retained);
            for (ty, event) in REPLAYED.iter().zip(retained.iter()) {
                if let (true, Some(event)) = (added.contains(ty), event) {
                    let _ = subscriber.offer(event);
                }
            }
        }
        if added.contains(&EventType::ModuleLoaded) {
            for (id, other) in modules.iter() {
                if other.announced && id != module_id {
                    if let Some(e) = encode_module_loaded(&other.name, &other.version) {
                        let _ = subscriber.offer(&e);
                    }
                }
            }
            // Its own, when an earlier subscription announced it; else the
            // announcement below reaches it like every subscriber.
            let own = &modules[pos].1;
            if own.announced {
                if let Some(e) = encode_module_loaded(&own.name, &own.version) {
                    let _ = subscriber.offer(&e);
                }
            }
        }
        let entry = &mut modules[pos].1;
        let subscribed = entry.types.clone();
        let mut closed = Vec::new();
        if !entry.announced {
            entry.announced = true;
            if let Some(e) = encode_module_loaded(&entry.name, &entry.version) {
                closed = self.offer_all(EventType::ModuleLoaded, &e).1;
            }
        }
        drop(modules);
        self.remove_closed(closed);
        subscribed
    }

    /// The delivery numbers of a registered module, for the events its
    /// writer makes itself (a durable subscription's).
    pub fn delivery_seq(&self, module_id: &str) -> Option<DeliverySeq> {
        lock(&self.modules)
            .iter()
            .find(|(id, _)| id == module_id)
            .map(|(_, e)| DeliverySeq(Arc::clone(&e.subscriber)))
    }

    /// Makes `feed` the module's durable subscription (replacing an
    /// earlier one of the connection) and takes its types out of the
    /// module's at-most-once subscription, so each event reaches it once.
    pub fn add_durable(&self, module_id: &str, feed: Arc<DurableFeed>) {
        self.unsubscribe(module_id, feed.types());
        let mut durable = write(&self.durable);
        durable.retain(|(id, _)| id != module_id);
        durable.push((module_id.to_owned(), feed));
    }

    /// The module's durable subscription, if it made one.
    pub fn durable(&self, module_id: &str) -> Option<Arc<DurableFeed>> {
        read(&self.durable)
            .iter()
            .find(|(id, _)| id == module_id)
            .map(|(_, f)| Arc::clone(f))
    }

    /// Removes `types` from a module's subscription; returns what remains.
    pub fn unsubscribe(&self, module_id: &str, types: &[EventType]) -> Vec<EventType> {
        let mut modules = lock(&self.modules);
        let Some((_, entry)) = modules.iter_mut().find(|(id, _)| id == module_id) else {
            return Vec::new();
        };
        let mut table = write(&self.table);
        for ty in types {
            table[ty.index()].retain(|s| !Arc::ptr_eq(s, &entry.subscriber));
        }
        entry.types.retain(|t| !types.contains(t));
        entry.types.clone()
    }

    /// The event types a module is subscribed to.
    pub fn subscriptions(&self, module_id: &str) -> Vec<EventType> {
        lock(&self.modules)
            .iter()
            .find(|(id, _)| id == module_id)
            .map(|(_, e)| e.types.clone())
            .unwrap_or_default()
    }

    /// The capacity of a registered module's queue.
    pub fn queue_capacity(&self, module_id: &str) -> Option<usize> {
        lock(&self.modules)
            .iter()
            .find(|(id, _)| id == module_id)
            .map(|(_, e)| e.capacity)
    }

    /// Delivery counters of one module spawn (also after it disconnected,
    /// was replaced or unloaded, while it is among the last
    /// [`RETIRED_STATS_KEPT`] that ended).
    pub fn get_delivery_stats(&self, module_id: &str) -> Option<DeliveryStats> {
        lock(&self.stats).by_id.get(module_id).map(|e| snapshot(module_id, e))
    }

    /// Delivery counters of every spawn the bus holds (the live ones and
    /// the last [`RETIRED_STATS_KEPT`] that ended), sorted by id.
    pub fn get_all_delivery_stats(&self) -> Vec<DeliveryStats> {
        let mut all: Vec<_> = lock(&self.stats).by_id.iter().map(|(id, e)| snapshot(id, e)).collect();
        all.sort_by(|a, b| a.module_id.cmp(&b.module_id));
        all
    }

    /// A spawn ended for good (replaced by the next spawn, or its module
    /// unloaded): its subscriptions go, its counters stay, readable, among
    /// the last [`RETIRED_STATS_KEPT`] that ended; the oldest beyond that
    /// are dropped.
    pub fn retire(&self, module_id: &str) {
        self.unregister(module_id);
        let mut stats = lock(&self.stats);
        if !stats.by_id.contains_key(module_id) || stats.retired.iter().any(|id| id == module_id) {
            return;
        }
        stats.retired.push_back(module_id.to_owned());
        while stats.retired.len() > RETIRED_STATS_KEPT {
            if let Some(oldest) = stats.retired.pop_front() {
                stats.by_id.remove(&oldest);
            }
        }
    }
}

fn encode_module_loaded(name: &str, version: &str) -> Option<Arc<EncodedEvent>> {
    let event = Event::from(ModuleLoaded {
        module_name: name.to_owned(),
        version: version.to_owned(),
    });
    let mut payload = Vec::new();
    match event.encode_payload(&mut payload) {
        Ok(()) => Some(Arc::new(EncodedEvent {
            name: Cow::Borrowed(EventType::ModuleLoaded.name()),
            payload: Bytes::from(payload),
            origin: None,
        })),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode ModuleLoaded");
            None
        }
    }
}

/// Takes `subscriber` out of the custom table's entries for `names`,
/// dropping entries left empty.
fn remove_custom(custom: &mut HashMap<String, Vec<Arc<Subscriber>>>, subscriber: &Arc<Subscriber>, names: &[String]) {
    for name in names {
        if let Some(subs) = custom.get_mut(name) {
            subs.retain(|s| !Arc::ptr_eq(s, subscriber));
            if subs.is_empty() {
                custom.remove(name);
            }
        }
    }
}

fn snapshot(module_id: &str, entry: &StatsEntry) -> DeliveryStats {
    let c = &entry.counters;
    DeliveryStats {
        module_id: module_id.to_owned(),
        module_name: entry.name.clone(),
        delivered: c.delivered.load(Ordering::Relaxed),
        dropped_full: c.dropped_full.load(Ordering::Relaxed),
        dropped_closed: c.dropped_closed.load(Ordering::Relaxed),
        encode_errors: c.encode_errors.load(Ordering::Relaxed),
        queue_capacity: entry.capacity as u64,
    }
}

// The bus's locks guard plain collections that every operation leaves
// consistent, so a poisoned lock (a panic elsewhere) is safe to use.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
