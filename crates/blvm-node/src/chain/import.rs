//! Import of Bitcoin Core `blk*.dat` files and raw blocks.
//!
//! A `blk*.dat` file is a sequence of records `[network magic][u32 LE
//! length][raw block]`; Core pre-allocates files, so runs of zero bytes
//! between or after records are skipped by scanning for the next magic, as
//! Core's `LoadExternalBlockFile` does. Blocks arrive out of order in real
//! files: a block whose parent is unknown is held in memory (bounded) until
//! its parent is processed, then processed with it.

use std::collections::HashMap;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitcoin::consensus::deserialize;
use bitcoin::{Block, BlockHash};

use super::api::Chain;
use super::error::{BlockError, ChainError};
use super::events::ChainEvent;
use super::reorg::ProcessOutcome;

/// Largest block record accepted (Core's `MAX_BLOCK_SERIALIZED_SIZE`); a
/// larger length is corruption and is skipped before allocating.
const MAX_BLOCK_SERIALIZED_SIZE: usize = 4_000_000;
/// Memory held for blocks waiting for their parent; beyond it they are dropped.
const MAX_ORPHAN_BYTES: usize = 256 << 20;

/// Blocks waiting for their parent, by parent hash.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    by_parent: HashMap<BlockHash, Vec<(Block, usize)>>,
    bytes: usize,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ImportStats {
    /// Blocks accepted (connected or stored on a side branch).
    pub blocks: u64,
    /// Transactions in the accepted blocks.
    pub txs: u64,
    /// Blocks already known.
    pub duplicates: u64,
    /// Blocks refused (invalid or undecodable).
    pub rejected: u64,
    /// Blocks still waiting for their parent when the import ended.
    pub orphans: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl ImportStats {
    /// Accepted blocks per second.
    pub fn blocks_per_second(&self) -> f64 {
        self.blocks as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Transactions of accepted blocks per second.
    pub fn txs_per_second(&self) -> f64 {
        self.txs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl Chain {
    /// Imports a Core `blk*.dat` file (this chain's network magic).
    /// Invalid blocks are counted and skipped; only store failures abort.
    pub fn import_blk_file(&self, path: &Path) -> Result<ImportStats, ChainError> {
        let file = std::fs::File::open(path).map_err(|source| ChainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.emit(ChainEvent::ImportStarted {
            path: path.to_path_buf(),
        });
        let stats = self.import_blk_reader(BufReader::with_capacity(1 << 20, file), path)?;
        self.emit(ChainEvent::ImportCompleted {
            path: path.to_path_buf(),
            blocks: stats.blocks,
            txs: stats.txs,
            elapsed: stats.elapsed,
        });
        Ok(stats)
    }

    /// [`Chain::import_blk_file`] from any reader; `name` is for messages.
    pub fn import_blk_reader(&self, r: impl Read, name: &Path) -> Result<ImportStats, ChainError> {
        let start = Instant::now();
        let mut records = BlkRecords::new(r, self.cp.magic(), name);
        let mut stats = ImportStats::default();
        while let Some(record) = records.next_record()? {
            self.import_record(record, &mut stats)?;
        }
        self.finish_import(&mut stats, start);
        Ok(stats)
    }

    /// Processes one record of a `blk*.dat` stream ([`BlkRecords`]) and
    /// counts it in `stats`: a block whose parent is unknown is held, and
    /// the held blocks it is the parent of are processed after it. Emits
    /// [`ChainEvent::ImportProgress`] when it accepted a block. Only a
    /// store failure is an error.
    ///
    /// The caller decides what happens between records: the node takes
    /// its writer lock for one record and publishes that record's events
    /// before the next, so an import is seen block by block.
    pub fn import_record(&self, record: BlkRecord, stats: &mut ImportStats) -> Result<(), ChainError> {
        let accepted = stats.blocks;
        match record {
            BlkRecord::Block { block, size } => self.import_block(block, size, stats)?,
            BlkRecord::Undecodable => stats.rejected += 1,
        }
        if stats.blocks > accepted {
            self.emit(ChainEvent::ImportProgress {
                blocks: stats.blocks,
                height: self.tip().height,
            });
        }
        Ok(())
    }

    /// Ends an import begun at `start`: the blocks still waiting for their
    /// parent, and the wall time.
    pub fn finish_import(&self, stats: &mut ImportStats, start: Instant) {
        stats.orphans = self
            .orphans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_parent
            .values()
            .map(|v| v.len() as u64)
            .sum();
        stats.elapsed = start.elapsed();
    }

    /// Processes one raw block (consensus bytes). A block whose parent is
    /// unknown is held until the parent arrives and reported as the
    /// `prev-blk-not-found` error.
    pub fn import_raw_block(&self, bytes: &[u8]) -> Result<ProcessOutcome, BlockError> {
        let block: Block = deserialize(bytes)
            .map_err(|e| BlockError::Invalid(super::error::Reject::new("block-decode-failed", e.to_string())))?;
        let mut stats = ImportStats::default();
        let hash = block.block_hash();
        let result = self.process_block(&block);
        match &result {
            Ok(_) => self.process_orphans_of(hash, &mut stats)?,
            Err(BlockError::Orphan(parent)) => self.hold_orphan(*parent, block, bytes.len()),
            Err(_) => {}
        }
        result
    }

    fn import_block(&self, block: Block, size: usize, stats: &mut ImportStats) -> Result<(), ChainError> {
        let hash = block.block_hash();
        match self.process_counted(&block, stats)? {
            Counted::Orphan(parent) => {
                self.hold_orphan(parent, block, size);
                Ok(())
            }
            Counted::Rejected => Ok(()),
            Counted::Connected | Counted::Duplicate => self.process_orphans_of(hash, stats),
        }
    }

    /// Processes one block and counts the outcome in `stats`; only a
    /// store failure is an error.
    fn process_counted(&self, block: &Block, stats: &mut ImportStats) -> Result<Counted, ChainError> {
        match self.process_block(block) {
            Ok(ProcessOutcome::Duplicate { .. }) => {
                stats.duplicates += 1;
                Ok(Counted::Duplicate)
            }
            Ok(_) => {
                stats.blocks += 1;
                stats.txs += block.txdata.len() as u64;
                Ok(Counted::Connected)
            }
            Err(BlockError::Orphan(parent)) => Ok(Counted::Orphan(parent)),
            Err(BlockError::Chain(e)) => Err(e),
            Err(e) => {
                tracing::warn!(hash = %block.block_hash(), error = %e, "block refused");
                stats.rejected += 1;
                Ok(Counted::Rejected)
            }
        }
    }

    fn hold_orphan(&self, parent: BlockHash, block: Block, size: usize) {
        let mut o = self.orphans.lock().unwrap_or_else(|e| e.into_inner());
        if o.bytes + size > MAX_ORPHAN_BYTES {
            tracing::warn!(hash = %block.block_hash(), "orphan pool full, dropping block");
            return;
        }
        o.bytes += size;
        o.by_parent.entry(parent).or_default().push((block, size));
    }

    /// Processes the held blocks whose parent is `hash`, and theirs in turn.
    fn process_orphans_of(&self, hash: BlockHash, stats: &mut ImportStats) -> Result<(), ChainError> {
        let mut queue = vec![hash];
        while let Some(parent) = queue.pop() {
            let children = {
                let mut o = self.orphans.lock().unwrap_or_else(|e| e.into_inner());
                let c = o.by_parent.remove(&parent).unwrap_or_default();
                o.bytes -= c.iter().map(|(_, s)| s).sum::<usize>();
                c
            };
            for (block, size) in children {
                match self.process_counted(&block, stats)? {
                    Counted::Connected => queue.push(block.block_hash()),
                    // Its parent was just connected, so this cannot happen;
                    // were it to, the block waits again rather than vanish.
                    Counted::Orphan(parent) => self.hold_orphan(parent, block, size),
                    Counted::Duplicate | Counted::Rejected => {}
                }
            }
        }
        Ok(())
    }
}

/// What importing one block did.
enum Counted {
    Connected,
    Duplicate,
    /// Its parent is unknown: held until it arrives.
    Orphan(BlockHash),
    Rejected,
}

/// One record of a `blk*.dat` stream.
#[derive(Debug)]
pub enum BlkRecord {
    /// A block, and the length of its record.
    Block {
        /// The block.
        block: Block,
        /// Its serialized size.
        size: usize,
    },
    /// A record whose bytes are no block (logged when read).
    Undecodable,
}

/// Reads the records of a `blk*.dat` stream one at a time, as Core's
/// `LoadExternalBlockFile` does: bytes up to the next magic are skipped, a
/// record of impossible length is skipped with a warning, a truncated last
/// record ends the stream.
pub struct BlkRecords<R> {
    r: R,
    magic: [u8; 4],
    name: PathBuf,
}

impl<R: Read> BlkRecords<R> {
    /// Records of `r`, framed with `magic`; `name` is for messages.
    pub fn new(r: R, magic: [u8; 4], name: &Path) -> Self {
        BlkRecords {
            r,
            magic,
            name: name.to_path_buf(),
        }
    }

    /// The next record, `None` at the end of the stream. Only a read
    /// failure is an error.
    pub fn next_record(&mut self) -> Result<Option<BlkRecord>, ChainError> {
        let name = &self.name;
        let io_err = |source| ChainError::Io {
            path: name.clone(),
            source,
        };
        loop {
            if !find_magic(&mut self.r, self.magic).map_err(io_err)? {
                return Ok(None);
            }
            let mut len = [0u8; 4];
            match self.r.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(io_err(e)),
            }
            let len = u32::from_le_bytes(len) as usize;
            if !(80..=MAX_BLOCK_SERIALIZED_SIZE).contains(&len) {
                tracing::warn!(file = %name.display(), len, "skipping record with impossible length");
                continue;
            }
            let mut raw = vec![0u8; len];
            match self.r.read_exact(&mut raw) {
                Ok(()) => {}
                // A truncated last record: Core stops there too.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(io_err(e)),
            }
            return Ok(Some(match deserialize::<Block>(&raw) {
                Ok(block) => BlkRecord::Block { block, size: len },
                Err(e) => {
                    tracing::warn!(file = %name.display(), error = %e, "undecodable block record");
                    BlkRecord::Undecodable
                }
            }));
        }
    }
}

/// Advances `r` past the next occurrence of `magic`; false at end of input.
fn find_magic(r: &mut impl Read, magic: [u8; 4]) -> std::io::Result<bool> {
    let mut window = [0u8; 4];
    let mut filled = 0;
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        window = [window[1], window[2], window[3], byte[0]];
        filled = (filled + 1).min(4);
        if filled == 4 && window == magic {
            return Ok(true);
        }
    }
}
