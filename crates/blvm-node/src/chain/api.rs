//! [`Chain`]: opening the store and the read API.
//!
//! Locking: `writer` serialises every change (one block at a time, as Core's
//! `cs_main` does for connection); `state` is the in-memory index, held for
//! reading by queries and for writing only for the moment after a commit
//! when the index and counters are brought in step. UTXO and block reads go
//! to redb read transactions, which never wait for a writer (MVCC).

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::{Block, BlockHash, CompactTarget, Network, OutPoint, Transaction, Txid};
use redb::{Database, ReadableTable};

use super::error::ChainError;
use super::events::{ChainEvent, ChainListener};
use super::import::Orphans;
use super::index::BlockIndex;
use super::params::ChainParams;
use super::store::{self, BlockStatus, IndexRecord};
use super::view::{ChainView, Coin};

/// A clock returning Unix seconds; replaceable so tests can check `time-too-new`.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How a [`Chain`] validates and whom it tells.
#[derive(Clone)]
pub struct ChainOptions {
    /// Blocks before a coinbase output may be spent (100; btcd's reorg test chain needs 1).
    pub coinbase_maturity: u32,
    /// Verify input scripts with libbitcoinconsensus.
    pub check_scripts: bool,
    /// Receives [`ChainEvent`]s.
    pub listener: Option<Arc<dyn ChainListener>>,
    /// The clock for the two-hours-in-the-future rule; system time when `None`.
    pub clock: Option<Clock>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            coinbase_maturity: 100,
            check_scripts: true,
            listener: None,
            clock: None,
        }
    }
}

impl std::fmt::Debug for ChainOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainOptions")
            .field("coinbase_maturity", &self.coinbase_maturity)
            .field("check_scripts", &self.check_scripts)
            .field("listener", &self.listener.is_some())
            .field("clock", &self.clock.is_some())
            .finish()
    }
}

/// The active tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TipInfo {
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u32,
    /// Total work of the chain up to it, 32 bytes big-endian.
    pub chain_work: [u8; 32],
    /// Its compact target.
    pub bits: u32,
    /// Median time past of the tip.
    pub median_time_past: u32,
}

/// A block index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// The header.
    pub header: Header,
    /// Its height.
    pub height: u32,
    /// Total chain work up to and including it, 32 bytes big-endian.
    pub chain_work: [u8; 32],
    /// Its validation state.
    pub status: BlockStatus,
}

pub(crate) struct State {
    pub index: BlockIndex,
    pub utxo_count: u64,
    pub utxo_value: u64,
}

/// The block chain in a redb store: see the [module docs](super).
pub struct Chain {
    pub(crate) db: Database,
    pub(crate) cp: ChainParams,
    pub(crate) opts: ChainOptions,
    pub(crate) state: RwLock<State>,
    /// Held for every change to the store.
    pub(crate) writer: Mutex<()>,
    pub(crate) orphans: Mutex<Orphans>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tip = self.tip();
        f.debug_struct("Chain")
            .field("network", &self.network())
            .field("tip", &tip.hash)
            .field("height", &tip.height)
            .finish()
    }
}

impl Chain {
    /// Opens (or creates, with the genesis block) the chain stored in `dir`.
    pub fn open(dir: &Path, network: Network) -> Result<Chain, ChainError> {
        Chain::open_with(dir, network, ChainOptions::default())
    }

    /// [`Chain::open`] with options.
    pub fn open_with(dir: &Path, network: Network, opts: ChainOptions) -> Result<Chain, ChainError> {
        std::fs::create_dir_all(dir).map_err(|source| ChainError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = dir.join("chain.redb");
        let db = Database::create(&file).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => ChainError::Locked(file.clone()),
            other => other.into(),
        })?;
        let cp = ChainParams::new(network);
        init_store(&db, &cp)?;
        let state = load_state(&db)?;
        Ok(Chain {
            db,
            cp,
            opts,
            state: RwLock::new(state),
            writer: Mutex::new(()),
            orphans: Mutex::new(Orphans::default()),
        })
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock leaves the index as it was after the
        // last commit (it is updated only after commits), so poison is benign.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn emit(&self, event: ChainEvent) {
        if let Some(l) = &self.opts.listener {
            l.on_event(&event);
        }
    }

    pub(crate) fn now(&self) -> u64 {
        match &self.opts.clock {
            Some(c) => c(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// The network of this chain.
    pub fn network(&self) -> Network {
        self.cp.network()
    }

    /// The network's consensus parameters.
    pub fn chain_params(&self) -> &ChainParams {
        &self.cp
    }

    /// The options the chain was opened with.
    pub fn options(&self) -> &ChainOptions {
        &self.opts
    }

    /// The active tip.
    pub fn tip(&self) -> TipInfo {
        let st = self.read_state();
        let hash = st.index.tip();
        let rec = st.index.get(&hash);
        TipInfo {
            hash,
            height: st.index.tip_height(),
            chain_work: rec.map(|r| r.work.to_be_bytes()).unwrap_or([0; 32]),
            bits: rec.map(|r| r.header.bits.to_consensus()).unwrap_or(0),
            median_time_past: st.index.median_time_past(&hash),
        }
    }

    /// Hash of the active block at `height`.
    pub fn block_hash(&self, height: u32) -> Option<BlockHash> {
        self.read_state().index.active.get(height as usize).copied()
    }

    /// The index entry of any known block (active, side branch or invalid).
    pub fn header(&self, hash: &BlockHash) -> Option<HeaderInfo> {
        self.read_state().index.get(hash).map(|r| HeaderInfo {
            header: r.header,
            height: r.height,
            chain_work: r.work.to_be_bytes(),
            status: r.status,
        })
    }

    /// Whether `hash` is on the active chain.
    pub fn is_on_active_chain(&self, hash: &BlockHash) -> bool {
        self.read_state().index.is_active(hash)
    }

    /// Raw bytes of a stored block.
    pub fn block_bytes(&self, hash: &BlockHash) -> Option<Vec<u8>> {
        self.try_block_bytes(hash).unwrap_or_else(|e| {
            tracing::error!(%hash, error = %e, "reading block");
            None
        })
    }

    pub(crate) fn try_block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, ChainError> {
        let rtx = self.db.begin_read()?;
        let t = rtx.open_table(store::BLOCKS)?;
        Ok(t.get(&store::hash_key(hash))?.map(|v| v.value().to_vec()))
    }

    /// A stored block.
    pub fn block(&self, hash: &BlockHash) -> Option<Block> {
        let bytes = self.block_bytes(hash)?;
        deserialize(&bytes).ok()
    }

    /// A transaction of the active chain with the block that holds it.
    pub fn transaction(&self, txid: &Txid) -> Option<(Transaction, BlockHash)> {
        let found = (|| -> Result<Option<(BlockHash, u32)>, ChainError> {
            let rtx = self.db.begin_read()?;
            let t = rtx.open_table(store::TX_INDEX)?;
            Ok(t.get(&store::txid_key(txid))?
                .map(|v| store::decode_tx_location(v.value())))
        })();
        let (hash, pos) = match found {
            Ok(Some(x)) => x,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(%txid, error = %e, "reading tx index");
                return None;
            }
        };
        let block = self.block(&hash)?;
        block.txdata.into_iter().nth(pos as usize).map(|tx| (tx, hash))
    }

    /// An unspent output of the active chain.
    pub fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        let r = (|| -> Result<Option<Coin>, ChainError> {
            let rtx = self.db.begin_read()?;
            let t = rtx.open_table(store::UTXO)?;
            t.get(&store::outpoint_key(outpoint))?
                .map(|v| store::decode_coin(v.value()))
                .transpose()
        })();
        r.unwrap_or_else(|e| {
            tracing::error!(%outpoint, error = %e, "reading utxo");
            None
        })
    }

    /// Number of unspent outputs and their total value in satoshis (kept
    /// incrementally, no scan).
    pub fn utxo_stats(&self) -> (u64, u64) {
        let st = self.read_state();
        (st.utxo_count, st.utxo_value)
    }

    /// Scans the whole UTXO set and checks it against the counters and the
    /// active chain against the index: a consistency check for tests and
    /// `verifychain`-style tooling. Returns the scanned (count, value).
    pub fn scan_utxo_set(&self) -> Result<(u64, u64), ChainError> {
        let rtx = self.db.begin_read()?;
        let t = rtx.open_table(store::UTXO)?;
        let (mut n, mut v) = (0u64, 0u64);
        for item in t.iter()? {
            let (_, val) = item?;
            n += 1;
            v += store::decode_coin(val.value())?.txout.value.to_sat();
        }
        Ok((n, v))
    }

    /// The bits the next block must carry (no minimum-difficulty exception).
    pub fn next_block_bits(&self) -> CompactTarget {
        let st = self.read_state();
        st.index.next_bits(&st.index.tip(), None, &self.cp)
    }
}

impl ChainView for Chain {
    fn tip(&self) -> (BlockHash, u32) {
        let st = self.read_state();
        (st.index.tip(), st.index.tip_height())
    }

    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        Chain::coin(self, outpoint)
    }

    fn median_time_past(&self) -> u32 {
        let st = self.read_state();
        st.index.median_time_past(&st.index.tip())
    }

    fn next_block_bits(&self) -> CompactTarget {
        Chain::next_block_bits(self)
    }

    fn params(&self) -> &bitcoin::params::Params {
        &self.cp.params
    }

    fn script_flags(&self, height: u32) -> u32 {
        self.cp.script_flags(height)
    }
}

/// Creates the tables and the genesis block on first open; checks the network otherwise.
fn init_store(db: &Database, cp: &ChainParams) -> Result<(), ChainError> {
    let name = cp.network().to_core_arg();
    let wtx = db.begin_write()?;
    {
        let mut meta = wtx.open_table(store::META)?;
        if let Some(found) = meta.get(store::META_NETWORK)? {
            let found = String::from_utf8_lossy(found.value()).into_owned();
            if found != name {
                return Err(ChainError::WrongNetwork {
                    expected: name.into(),
                    found,
                });
            }
            return Ok(());
        }
        let genesis = cp.genesis();
        let hash = genesis.block_hash();
        let key = store::hash_key(&hash);
        let rec = IndexRecord {
            header: genesis.header,
            height: 0,
            work: genesis.header.work(),
            status: BlockStatus::Valid,
        };
        wtx.open_table(store::INDEX)?.insert(&key, rec.encode().as_slice())?;
        wtx.open_table(store::BLOCKS)?
            .insert(&key, serialize(&genesis).as_slice())?;
        wtx.open_table(store::ACTIVE)?.insert(0, &key)?;
        // The genesis coinbase is not in the UTXO set nor the tx index: Core
        // never added it, so it is unspendable.
        wtx.open_table(store::TX_INDEX)?;
        wtx.open_table(store::UTXO)?;
        wtx.open_table(store::UNDO)?;
        meta.insert(store::META_NETWORK, name.as_bytes())?;
        meta.insert(store::META_TIP, key.as_slice())?;
        meta.insert(store::META_UTXO_COUNT, store::u64_bytes(0).as_slice())?;
        meta.insert(store::META_UTXO_VALUE, store::u64_bytes(0).as_slice())?;
    }
    wtx.commit()?;
    Ok(())
}

/// Loads the index and rebuilds the active chain from the committed tip.
fn load_state(db: &Database) -> Result<State, ChainError> {
    let rtx = db.begin_read()?;
    let mut index = BlockIndex::default();
    for item in rtx.open_table(store::INDEX)?.iter()? {
        let (k, v) = item?;
        index.map.insert(
            BlockHash::from_raw_hash(bitcoin::hashes::Hash::from_byte_array(*k.value())),
            IndexRecord::decode(v.value())?,
        );
    }
    let meta = rtx.open_table(store::META)?;
    let get = |k: &str| -> Result<Vec<u8>, ChainError> {
        Ok(meta
            .get(k)?
            .ok_or_else(|| ChainError::Corrupt(format!("meta {k} missing")))?
            .value()
            .to_vec())
    };
    let tip_bytes: [u8; 32] = get(store::META_TIP)?
        .try_into()
        .map_err(|_| ChainError::Corrupt("tip".into()))?;
    let tip = BlockHash::from_raw_hash(bitcoin::hashes::Hash::from_byte_array(tip_bytes));
    let tip_height = index
        .get(&tip)
        .ok_or_else(|| ChainError::Corrupt("tip not in index".into()))?
        .height;
    let mut active = vec![tip; tip_height as usize + 1];
    let mut cur = tip;
    for h in (0..=tip_height).rev() {
        let rec = index
            .get(&cur)
            .ok_or_else(|| ChainError::Corrupt(format!("missing ancestor at {h}")))?;
        if rec.height != h {
            return Err(ChainError::Corrupt(format!("height mismatch at {h}")));
        }
        active[h as usize] = cur;
        cur = rec.header.prev_blockhash;
    }
    index.active = active;
    Ok(State {
        index,
        utxo_count: store::read_u64(&get(store::META_UTXO_COUNT)?)?,
        utxo_value: store::read_u64(&get(store::META_UTXO_VALUE)?)?,
    })
}
