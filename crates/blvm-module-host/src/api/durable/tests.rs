//! The durable feed over a chain held in memory: a block tree whose
//! active chain the tests move (blocks, reorgs), and a cursor store in
//! memory. The property test drives random reorgs, crashes and acks and
//! checks that the module's view, applying only what it was sent, always
//! ends equal to the active chain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use blvm_module_protocol::methods::chain::{ChainInfo, ChainTip, OutPoint, Utxo};
use blvm_module_protocol::methods::events::{ChainPoint, DurableCursor};
use blvm_module_protocol::methods::mempool::{MempoolSize, MempoolTransaction};
use blvm_module_protocol::methods::mining::{BlockTemplate, BlockTemplateParams, SubmitBlockResult};
use blvm_module_protocol::methods::network::{NetworkStats, PeerInfo};
use blvm_module_protocol::{ErrorCode, Event, EventType, Hash32};

use super::{CursorStore, DurableEvent, DurableFeed};
use crate::api::backend::{BackendError, NodeBackend};
use crate::api::events::EventManager;

/// A block tree: every block ever made, and the active chain.
#[derive(Default)]
struct Tree {
    headers: HashMap<Hash32, (Vec<u8>, u64)>,
    active: Vec<Hash32>,
    made: u32,
}

#[derive(Default)]
struct FakeChain(Mutex<Tree>);

impl FakeChain {
    fn with_blocks(n: u64) -> Arc<FakeChain> {
        let chain = Arc::new(FakeChain::default());
        for _ in 0..=n {
            chain.extend();
        }
        chain
    }

    /// A new block on the active tip.
    fn extend(&self) -> Hash32 {
        let mut t = self.0.lock().unwrap();
        let parent = t.active.last().copied();
        let hash = make(&mut t, parent);
        t.active.push(hash);
        hash
    }

    /// Replaces the top `depth` blocks with `len` new ones.
    fn reorg(&self, depth: usize, len: usize) {
        let mut t = self.0.lock().unwrap();
        let keep = t.active.len() - depth;
        t.active.truncate(keep);
        for _ in 0..len {
            let parent = t.active.last().copied();
            let hash = make(&mut t, parent);
            t.active.push(hash);
        }
    }

    fn active(&self) -> Vec<Hash32> {
        self.0.lock().unwrap().active.clone()
    }

    fn height(&self) -> u64 {
        self.0.lock().unwrap().active.len() as u64 - 1
    }
}

/// A block of the tree: a header whose bytes 4..36 are the parent's hash
/// and whose hash is a counter (the feed never hashes headers).
fn make(t: &mut Tree, parent: Option<Hash32>) -> Hash32 {
    t.made += 1;
    let mut hash = [0u8; 32];
    hash[..4].copy_from_slice(&t.made.to_le_bytes());
    hash[31] = 0xbb;
    let hash = Hash32(hash);
    let mut header = vec![0u8; 80];
    let height = match parent {
        Some(p) => {
            header[4..36].copy_from_slice(&p.0);
            t.headers[&p].1 + 1
        }
        None => 0,
    };
    header[76..80].copy_from_slice(&t.made.to_le_bytes());
    t.headers.insert(hash, (header, height));
    hash
}

fn unavailable<T>() -> Result<T, BackendError> {
    Err(BackendError::Unavailable("not in this test".into()))
}

impl NodeBackend for FakeChain {
    fn get_block(&self, _: &Hash32) -> Result<Option<Vec<u8>>, BackendError> {
        unavailable()
    }
    fn get_block_header(&self, hash: &Hash32) -> Result<Option<(Vec<u8>, u64)>, BackendError> {
        Ok(self.0.lock().unwrap().headers.get(hash).cloned())
    }
    fn get_block_hash(&self, height: u64) -> Result<Option<Hash32>, BackendError> {
        Ok(self.0.lock().unwrap().active.get(height as usize).copied())
    }
    fn get_transaction(&self, _: &Hash32) -> Result<Option<(Vec<u8>, Hash32)>, BackendError> {
        unavailable()
    }
    fn get_chain_tip(&self) -> Result<ChainTip, BackendError> {
        let t = self.0.lock().unwrap();
        Ok(ChainTip {
            hash: *t.active.last().expect("genesis"),
            height: t.active.len() as u64 - 1,
        })
    }
    fn get_chain_info(&self) -> Result<ChainInfo, BackendError> {
        let tip = self.get_chain_tip()?;
        Ok(ChainInfo {
            network: "regtest".into(),
            tip_hash: tip.hash,
            height: tip.height,
            chain_work: vec![0; 32],
            bits: 0x207fffff,
            difficulty: 0.0,
            is_synced: true,
        })
    }
    fn get_utxo(&self, _: &OutPoint) -> Result<Option<Utxo>, BackendError> {
        unavailable()
    }
    fn get_mempool_txids(&self) -> Result<Vec<Hash32>, BackendError> {
        unavailable()
    }
    fn get_mempool_transaction(&self, _: &Hash32) -> Result<MempoolTransaction, BackendError> {
        unavailable()
    }
    fn get_mempool_size(&self) -> Result<MempoolSize, BackendError> {
        unavailable()
    }
    fn get_fee_estimate(&self, _: u32) -> Result<Option<f64>, BackendError> {
        unavailable()
    }
    fn get_block_template(&self, _: &BlockTemplateParams) -> Result<BlockTemplate, BackendError> {
        unavailable()
    }
    fn submit_transaction(&self, _: &[u8]) -> Result<Hash32, BackendError> {
        unavailable()
    }
    fn submit_block(&self, _: &[u8]) -> Result<SubmitBlockResult, BackendError> {
        unavailable()
    }
    fn get_network_stats(&self) -> Result<NetworkStats, BackendError> {
        unavailable()
    }
    fn get_network_peers(&self) -> Result<Vec<PeerInfo>, BackendError> {
        unavailable()
    }
}

/// Cursors in memory, counting saves.
#[derive(Default)]
struct Cursors(Mutex<HashMap<String, DurableCursor>>);

impl CursorStore for Cursors {
    fn load(&self, module: &str) -> Result<Option<DurableCursor>, BackendError> {
        Ok(self.0.lock().unwrap().get(module).copied())
    }
    fn save(&self, module: &str, cursor: &DurableCursor) -> Result<(), BackendError> {
        self.0.lock().unwrap().insert(module.to_owned(), *cursor);
        Ok(())
    }
}

const ALL: [EventType; 3] = [EventType::NewBlock, EventType::BlockDisconnected, EventType::ChainReorg];

/// A feed of module `m` (a fresh registration on `bus`, as a new
/// connection has).
fn open(
    chain: &Arc<FakeChain>,
    store: &Arc<Cursors>,
    bus: &EventManager,
    start: Option<u64>,
    window: usize,
    types: &[EventType],
) -> Arc<DurableFeed> {
    let _queue = bus.register("m-1", "m", "1.0.0", 100);
    let delivery = bus.delivery_seq("m-1").expect("registered");
    DurableFeed::open(
        "m",
        types.to_vec(),
        start,
        window,
        Arc::clone(chain) as Arc<dyn NodeBackend>,
        Arc::clone(store) as Arc<dyn CursorStore>,
        delivery,
    )
    .expect("opens")
}

fn next(feed: &DurableFeed) -> Vec<DurableEvent> {
    feed.next_events().expect("chain reads").0
}

fn describe(e: &DurableEvent) -> String {
    match Event::decode(e.ty.name(), &e.payload).expect("decodes") {
        Event::NewBlock(b) => format!("NewBlock {}", b.height),
        Event::BlockDisconnected(b) => format!("BlockDisconnected {}", b.height),
        Event::ChainReorg(r) => format!(
            "ChainReorg {}->{} fork {} -{} +{}",
            r.old_height, r.new_height, r.fork_height, r.disconnected, r.connected
        ),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_new_subscription_starts_after_the_tip_and_stores_that_start_at_once() {
    let chain = FakeChain::with_blocks(5);
    let store = Arc::new(Cursors::default());
    let bus = EventManager::new();
    let feed = open(&chain, &store, &bus, None, 10, &ALL);
    assert!(next(&feed).is_empty());
    let stored = store.load("m").unwrap().expect("stored at open");
    assert_eq!(stored.seq, 0);
    assert_eq!(stored.at.map(|p| p.height), Some(5));
    chain.extend();
    let events = next(&feed);
    assert_eq!(events.iter().map(describe).collect::<Vec<_>>(), ["NewBlock 6"]);
    let mark = &events[0].mark;
    assert_eq!((mark.seq, mark.network.as_str(), mark.height), (1, "regtest", 6));
    assert_eq!(mark.hash, chain.active()[6]);
}

#[test]
fn a_module_far_behind_is_sent_one_window_at_a_time_as_it_acknowledges() {
    let chain = FakeChain::with_blocks(500);
    let store = Arc::new(Cursors::default());
    let bus = EventManager::new();
    let feed = open(&chain, &store, &bus, Some(0), 10, &ALL);
    let first = next(&feed);
    assert_eq!(first.len(), 10);
    assert_eq!(describe(&first[0]), "NewBlock 0");
    assert!(next(&feed).is_empty(), "the window is full");
    assert_eq!(feed.status().unacked, 10);
    assert_eq!(feed.status().lag_blocks, 501);
    let cursor = feed.ack(first[4].mark.seq).expect("acked");
    assert_eq!(cursor.at.map(|p| p.height), Some(4));
    assert_eq!(store.load("m").unwrap(), Some(cursor));
    let more = next(&feed);
    assert_eq!(more.len(), 5);
    assert_eq!(describe(&more[0]), "NewBlock 10");
    assert_eq!(feed.status().lag_blocks, 496);
}

#[test]
fn an_ack_of_a_number_not_sent_is_refused_and_an_old_one_changes_nothing() {
    let chain = FakeChain::with_blocks(3);
    let store = Arc::new(Cursors::default());
    let bus = EventManager::new();
    let feed = open(&chain, &store, &bus, Some(1), 10, &ALL);
    let sent = next(&feed);
    assert_eq!(sent.len(), 3);
    let err = feed.ack(99).expect_err("never sent");
    assert_eq!(err.code, ErrorCode::InvalidParams);
    let cursor = feed.ack(2).expect("acked");
    assert_eq!(feed.ack(1).expect("old"), cursor);
    assert_eq!(feed.cursor(), cursor);
}

#[test]
fn a_restart_resends_what_was_not_acknowledged_and_nothing_that_was() {
    let chain = FakeChain::with_blocks(10);
    let store = Arc::new(Cursors::default());
    let bus = EventManager::new();
    let feed = open(&chain, &store, &bus, Some(1), 100, &ALL);
    let sent = next(&feed);
    assert_eq!(sent.len(), 10);
    feed.ack(sent[5].mark.seq).expect("acked");
    drop(feed);
    let again = open(&chain, &store, &bus, Some(1), 100, &ALL);
    let resent = next(&again);
    assert_eq!(
        resent.iter().map(describe).collect::<Vec<_>>(),
        (7..=10).map(|h| format!("NewBlock {h}")).collect::<Vec<_>>()
    );
    // The same blocks, the same keys; new numbers after the acknowledged.
    assert_eq!(resent[0].mark.hash, sent[6].mark.hash);
    assert_eq!(resent[0].mark.seq, sent[5].mark.seq + 1);
}

#[test]
fn a_reorg_while_the_module_was_away_reaches_it_as_disconnects_to_the_fork_then_the_new_blocks() {
    let chain = FakeChain::with_blocks(10);
    let store = Arc::new(Cursors::default());
    let bus = EventManager::new();
    let feed = open(&chain, &store, &bus, Some(1), 100, &ALL);
    let sent = next(&feed);
    feed.ack(sent.last().unwrap().mark.seq).expect("acked");
    drop(feed);
    chain.reorg(3, 5);
    let again = open(&chain, &store, &bus, None, 100, &ALL);
    assert_eq!(
        next(&again).iter().map(describe).collect::<Vec<_>>(),
        [
            "ChainReorg 10->12 fork 7 -3 +5",
            "BlockDisconnected 10",
            "BlockDisconnected 9",
            "BlockDisconnected 8",
            "NewBlock 8",
            "NewBlock 9",
            "NewBlock 10",
            "NewBlock 11",
            "NewBlock 12",
        ]
    );
}

#[test]
fn types_left_out_are_not_sent_but_the_view_still_follows_the_chain() {
    let chain = FakeChain::with_blocks(4);
    let store = Arc::new(Cursors::default());
    let bus = EventManager::new();
    let feed = open(&chain, &store, &bus, None, 100, &[EventType::NewBlock]);
    chain.reorg(2, 3);
    let events = next(&feed);
    assert_eq!(
        events.iter().map(describe).collect::<Vec<_>>(),
        ["NewBlock 3", "NewBlock 4", "NewBlock 5"]
    );
    feed.ack(events[2].mark.seq).expect("acked");
    assert_eq!(
        feed.cursor().at,
        Some(ChainPoint {
            height: 5,
            hash: chain.active()[5]
        })
    );
}

/// xorshift64*: the property test's inputs, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// What a module that applies each event to its own copy of the chain
/// holds: its view, and the view it had stored when it acknowledged.
struct Module {
    view: Vec<Hash32>,
    received: Vec<(u64, Vec<Hash32>)>,
    acked: Vec<Hash32>,
}

impl Module {
    /// Applies one event, checking it fits the view (a new block on its
    /// tip, a disconnect of its tip).
    fn apply(&mut self, e: &DurableEvent, seed: u64) {
        match Event::decode(e.ty.name(), &e.payload).expect("decodes") {
            Event::NewBlock(b) => {
                assert_eq!(b.height, self.view.len() as u64, "seed {seed}: NewBlock out of place");
                if let Some(tip) = self.view.last() {
                    assert_eq!(&b.header[4..36], &tip.0, "seed {seed}: NewBlock not on the view's tip");
                }
                self.view.push(b.block_hash);
            }
            Event::BlockDisconnected(b) => {
                assert_eq!(
                    self.view.last(),
                    Some(&b.block_hash),
                    "seed {seed}: disconnect of a block not the view's tip"
                );
                self.view.pop();
            }
            Event::ChainReorg(r) => {
                assert_eq!(self.view.last(), Some(&r.old_tip), "seed {seed}: reorg from elsewhere");
            }
            other => panic!("seed {seed}: unexpected {other:?}"),
        }
        self.received.push((e.mark.seq, self.view.clone()));
    }
}

#[test]
fn after_any_reorgs_crashes_and_acks_the_module_view_ends_equal_to_the_active_chain() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let chain = FakeChain::with_blocks(rng.below(6));
        let store = Arc::new(Cursors::default());
        let bus = EventManager::new();
        let window = 1 + rng.below(8) as usize;
        let mut feed = open(&chain, &store, &bus, Some(0), window, &ALL);
        let mut module = Module {
            view: Vec::new(),
            received: Vec::new(),
            acked: Vec::new(),
        };
        for _ in 0..60 {
            match rng.below(10) {
                0..=2 => {
                    chain.extend();
                }
                3 => {
                    let depth = rng.below(chain.height().min(4) + 1) as usize;
                    chain.reorg(depth, rng.below(5) as usize);
                    if chain.active().is_empty() {
                        chain.extend();
                    }
                }
                4..=6 => {
                    for e in next(&feed) {
                        module.apply(&e, seed);
                    }
                }
                7 | 8 => {
                    if !module.received.is_empty() {
                        let i = rng.below(module.received.len() as u64) as usize;
                        let (seq, view) = module.received[i].clone();
                        feed.ack(seq).expect("ack of a received event");
                        module.received.drain(..=i);
                        module.acked = view;
                    }
                }
                _ => {
                    // The module crashes: it keeps what it had stored when
                    // it acknowledged; the node resumes at the cursor.
                    drop(feed);
                    module.view = module.acked.clone();
                    module.received.clear();
                    feed = open(&chain, &store, &bus, Some(0), window, &ALL);
                    assert_eq!(
                        feed.cursor().at.map(|p| p.hash),
                        module.view.last().copied(),
                        "seed {seed}: the cursor is not the acknowledged view"
                    );
                }
            }
        }
        // Catch up: acknowledge what it has, then deliver and acknowledge
        // until nothing is left.
        if let Some((seq, _)) = module.received.last() {
            feed.ack(*seq).expect("ack");
        }
        loop {
            let events = next(&feed);
            if events.is_empty() {
                break;
            }
            for e in &events {
                module.apply(e, seed);
            }
            feed.ack(events.last().unwrap().mark.seq).expect("ack");
            module.received.clear();
        }
        assert_eq!(
            module.view,
            chain.active(),
            "seed {seed}: the view is not the active chain"
        );
        assert_eq!(feed.status().lag_blocks, 0, "seed {seed}");
    }
}
