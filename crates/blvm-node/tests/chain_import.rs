//! Import of real mainnet blocks 0..438 with every check on, and blocks
//! that Core refuses, made by corrupting real ones.

mod chain;

use bitcoin::Network;
use blvm_node::chain::{BlockError, Chain, ChainEvent, ProcessOutcome};
use chain::{data, framed_blocks, tempdir, Recorder};

const TIP_438: &str = "0000000025c6b644f8add734be7e666fa4afa43ca0204d623a0c0b1fd2104c7a";

#[test]
fn mainnet_0_to_438_connects_with_every_check() {
    let dir = tempdir();
    let rec = Recorder::new();
    let opts = blvm_node::chain::ChainOptions {
        listener: Some(rec.clone()),
        ..Default::default()
    };
    let chain = Chain::open_with(dir.path(), Network::Bitcoin, opts).unwrap();
    let stats = chain.import_blk_file(&data("blocks-000000-000438.dat")).unwrap();
    let tip = chain.tip();
    assert_eq!(tip.hash.to_string(), TIP_438);
    assert_eq!(tip.height, 438);
    assert_eq!(chain.utxo_stats(), (443, 2_190_000_000_000));
    assert_eq!(chain.scan_utxo_set().unwrap(), (443, 2_190_000_000_000));
    // Genesis was already there; 438 new blocks, 445 transactions.
    assert_eq!(
        (stats.blocks, stats.duplicates, stats.rejected, stats.orphans),
        (438, 1, 0, 0)
    );
    assert_eq!(stats.txs, 445);
    eprintln!(
        "import mainnet 1..438: {:?}, {:.0} blocks/s, {:.0} tx/s",
        stats.elapsed,
        stats.blocks_per_second(),
        stats.txs_per_second()
    );
    // The 7 spends were script-verified, once per block.
    let events = rec.take();
    let scripts = events
        .iter()
        .filter(|e| matches!(e, ChainEvent::ScriptVerificationCompleted { success: true, .. }))
        .count();
    assert!(scripts >= 1, "script verification events");
    let connected = events
        .iter()
        .filter(|e| matches!(e, ChainEvent::BlockConnected { .. }))
        .count();
    assert_eq!(connected, 438);

    // Block 170: the first bitcoin transaction (Satoshi to Hal Finney) is indexed.
    let txid = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
        .parse()
        .unwrap();
    let (tx, in_block) = chain.transaction(&txid).unwrap();
    assert_eq!(tx.compute_txid(), txid);
    assert_eq!(chain.header(&in_block).unwrap().height, 170);
    // Re-importing changes nothing; reopening keeps everything.
    let again = chain.import_blk_file(&data("blocks-000000-000438.dat")).unwrap();
    assert_eq!((again.blocks, again.duplicates), (0, 439));
    drop(chain);
    let chain = Chain::open(dir.path(), Network::Bitcoin).unwrap();
    assert_eq!(chain.tip().hash.to_string(), TIP_438);
    assert_eq!(chain.utxo_stats(), (443, 2_190_000_000_000));
}

#[test]
fn invalidate_and_reconsider_switch_and_restore() {
    let dir = tempdir();
    let rec = Recorder::new();
    let opts = blvm_node::chain::ChainOptions {
        listener: Some(rec.clone()),
        ..Default::default()
    };
    let chain = Chain::open_with(dir.path(), Network::Bitcoin, opts).unwrap();
    chain.import_blk_file(&data("blocks-000000-000438.dat")).unwrap();
    let h430 = chain.block_hash(430).unwrap();
    rec.take();
    let summary = chain.invalidate_block(&h430).unwrap().unwrap();
    assert_eq!(summary.disconnected.len(), 9);
    assert_eq!(chain.tip().height, 429);
    assert_eq!(chain.utxo_stats(), chain.scan_utxo_set().unwrap());
    assert!(chain.header(&h430).unwrap().status.is_invalid());
    let events = rec.take();
    let disc: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            ChainEvent::BlockDisconnected { height, .. } => Some(*height),
            _ => None,
        })
        .collect();
    assert_eq!(disc, (430..=438).rev().collect::<Vec<_>>());
    assert!(matches!(events.last(), Some(ChainEvent::Reorg { new_height: 429, .. })));
    // The invalid block is refused when offered again.
    let b430 = chain.block(&h430).unwrap();
    assert_eq!(chain.process_block(&b430).unwrap_err().reason(), "duplicate-invalid");

    let summary = chain.reconsider_block(&h430).unwrap().unwrap();
    assert_eq!(summary.connected.len(), 9);
    assert_eq!(chain.tip().hash.to_string(), TIP_438);
    assert_eq!(chain.utxo_stats(), (443, 2_190_000_000_000));
}

#[test]
fn corrupted_mainnet_blocks_are_refused_with_core_reasons() {
    let dir = tempdir();
    let chain = Chain::open(dir.path(), Network::Bitcoin).unwrap();
    let blocks = framed_blocks("blocks-000000-000438.dat");

    // Corrupt a transaction: the header (and its proof of work) is intact,
    // the merkle root no longer matches.
    let mut bad = blocks[1].clone();
    bad.txdata[0].input[0].script_sig = bitcoin::ScriptBuf::from_bytes(vec![1, 2, 3]);
    assert_eq!(chain.process_block(&bad).unwrap_err().reason(), "bad-txnmrklroot");

    // Change the nonce: the hash no longer meets the target.
    let mut bad = blocks[1].clone();
    bad.header.nonce ^= 1;
    assert_eq!(chain.process_block(&bad).unwrap_err().reason(), "high-hash");

    // Skipping block 1: block 2's parent is unknown.
    let err = chain.process_block(&blocks[2]).unwrap_err();
    assert!(matches!(err, BlockError::Orphan(_)));
    assert_eq!(err.reason(), "prev-blk-not-found");

    // A mutated block is not remembered: the intact one is still accepted.
    assert!(matches!(
        chain.process_block(&blocks[1]).unwrap(),
        ProcessOutcome::Connected { height: 1, .. }
    ));
    assert!(matches!(
        chain.process_block(&blocks[1]).unwrap(),
        ProcessOutcome::Duplicate { .. }
    ));
}

/// `blocks` framed as a `blk*.dat` stream (mainnet magic).
fn frame(blocks: &[&bitcoin::Block]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in blocks {
        let raw = bitcoin::consensus::serialize(*b);
        out.extend_from_slice(&[0xf9, 0xbe, 0xb4, 0xd9]);
        out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        out.extend_from_slice(&raw);
    }
    out
}

#[test]
fn blocks_out_of_order_are_held_until_their_parent_arrives() {
    let blocks = framed_blocks("blocks-000000-000438.dat");
    // Real blocks 11..=20 before 1..=10: each of the first ten waits for
    // its parent, and all of them connect once block 10 does.
    let reordered: Vec<&bitcoin::Block> = blocks[11..=20].iter().chain(&blocks[1..=10]).collect();
    let dir = tempdir();
    let chain = Chain::open(dir.path(), Network::Bitcoin).unwrap();
    let stats = chain
        .import_blk_reader(&frame(&reordered)[..], std::path::Path::new("reordered"))
        .unwrap();
    assert_eq!((stats.blocks, stats.orphans, stats.rejected), (20, 0, 0));
    assert_eq!(chain.tip().height, 20);
    assert_eq!(chain.tip().hash, blocks[20].block_hash());

    // With block 5 missing, 1..=4 connect and 6..=10 are still held.
    let gap: Vec<&bitcoin::Block> = blocks[6..=10].iter().chain(&blocks[1..=4]).collect();
    let dir = tempdir();
    let chain = Chain::open(dir.path(), Network::Bitcoin).unwrap();
    let stats = chain
        .import_blk_reader(&frame(&gap)[..], std::path::Path::new("gap"))
        .unwrap();
    assert_eq!((stats.blocks, stats.orphans), (4, 5));
    assert_eq!(chain.tip().height, 4);
    // The missing block arrives: everything held connects behind it.
    let stats = chain
        .import_blk_reader(&frame(&[&blocks[5]])[..], std::path::Path::new("block 5"))
        .unwrap();
    assert_eq!((stats.blocks, stats.orphans), (6, 0));
    assert_eq!(chain.tip().height, 10);
}
