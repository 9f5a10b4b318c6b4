//! btcd's reorganisation test chain: blocks 0..4, then a competing branch
//! 3A, 4A, 5A off block 2 that becomes heavier. 3A double-spends what 3
//! spent, so the UTXO set must really be rolled back.

mod chain;

use bitcoin::{BlockHash, Network};
use blvm_node::chain::{Chain, ChainEvent, ChainOptions, ProcessOutcome};
use chain::{data, framed_blocks, tempdir, Recorder};

#[test]
fn heavier_branch_reorganises_and_listener_sees_it_in_order() {
    let dir = tempdir();
    let rec = Recorder::new();
    let opts = ChainOptions {
        coinbase_maturity: 1,
        listener: Some(rec.clone()),
        ..Default::default()
    };
    let chain = Chain::open_with(dir.path(), Network::Bitcoin, opts).unwrap();

    let main = framed_blocks("btcd-reorg/blk_0_to_4.dat");
    let stats = chain.import_blk_file(&data("btcd-reorg/blk_0_to_4.dat")).unwrap();
    assert_eq!(stats.blocks, 4);
    assert_eq!(chain.tip().hash, main[4].block_hash());
    let utxos_before = chain.utxo_stats();

    let a3 = framed_blocks("btcd-reorg/blk_3A.dat").remove(0);
    let a4 = framed_blocks("btcd-reorg/blk_4A.dat").remove(0);
    let a5 = framed_blocks("btcd-reorg/blk_5A.dat").remove(0);
    assert!(matches!(
        chain.process_block(&a3).unwrap(),
        ProcessOutcome::SideBranch { height: 3, .. }
    ));
    assert!(matches!(
        chain.process_block(&a4).unwrap(),
        ProcessOutcome::SideBranch { height: 4, .. }
    ));
    assert_eq!(
        chain.tip().hash,
        main[4].block_hash(),
        "equal work keeps the first-seen tip"
    );
    assert_eq!(chain.utxo_stats(), utxos_before);
    rec.take();

    let outcome = chain.process_block(&a5).unwrap();
    let ProcessOutcome::Reorg(summary) = outcome else {
        panic!("expected a reorg, got {outcome:?}")
    };
    assert_eq!(summary.disconnected, vec![main[4].block_hash(), main[3].block_hash()]);
    assert_eq!(
        summary.connected,
        vec![a3.block_hash(), a4.block_hash(), a5.block_hash()]
    );
    let tip = chain.tip();
    assert_eq!((tip.hash, tip.height), (a5.block_hash(), 5));
    assert!(!chain.is_on_active_chain(&main[3].block_hash()));
    assert!(chain.is_on_active_chain(&a3.block_hash()));

    // The listener saw: disconnected 4, 3; connected 3A, 4A, 5A; then Reorg.
    let seen: Vec<(&str, BlockHash)> = rec
        .take()
        .iter()
        .filter_map(|e| match e {
            ChainEvent::BlockDisconnected { block, .. } => Some(("disconnected", block.block_hash())),
            ChainEvent::BlockConnected { block, .. } => Some(("connected", block.block_hash())),
            ChainEvent::Reorg {
                new_tip, fork_height, ..
            } => {
                assert_eq!(*fork_height, 2);
                Some(("reorg", *new_tip))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("disconnected", main[4].block_hash()),
            ("disconnected", main[3].block_hash()),
            ("connected", a3.block_hash()),
            ("connected", a4.block_hash()),
            ("connected", a5.block_hash()),
            ("reorg", a5.block_hash()),
        ]
    );

    // UTXO set = a fresh chain that only ever saw 0,1,2,3A,4A,5A.
    let fresh_dir = tempdir();
    let fresh = Chain::open_with(
        fresh_dir.path(),
        Network::Bitcoin,
        ChainOptions {
            coinbase_maturity: 1,
            ..Default::default()
        },
    )
    .unwrap();
    for b in main[1..3].iter().chain([&a3, &a4, &a5]) {
        fresh.process_block(b).unwrap();
    }
    assert_eq!(fresh.tip().hash, a5.block_hash());
    assert_eq!(chain.utxo_stats(), fresh.utxo_stats());
    assert_eq!(chain.scan_utxo_set().unwrap(), fresh.utxo_stats());
    // What block 3 spent and 3A double-spent is gone; block 3's outputs are gone too.
    for tx in &main[3].txdata[1..] {
        for input in &tx.input {
            assert!(chain.coin(&input.previous_output).is_none());
        }
        assert!(
            chain.transaction(&tx.compute_txid()).is_none()
                || a3.txdata.iter().any(|t| t.compute_txid() == tx.compute_txid())
        );
    }
    for tx in &a5.txdata {
        assert_eq!(chain.transaction(&tx.compute_txid()).unwrap().1, a5.block_hash());
    }

    // Invalidating 3A goes back to the old branch; reconsidering returns.
    let s = chain.invalidate_block(&a3.block_hash()).unwrap().unwrap();
    assert_eq!(s.new_tip, main[4].block_hash());
    assert_eq!(chain.utxo_stats(), utxos_before);
    let s = chain.reconsider_block(&a3.block_hash()).unwrap().unwrap();
    assert_eq!(s.new_tip, a5.block_hash());
    assert_eq!(chain.utxo_stats(), fresh.utxo_stats());

    // Reopen: same tip.
    drop(chain);
    let chain = Chain::open_with(
        dir.path(),
        Network::Bitcoin,
        ChainOptions {
            coinbase_maturity: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(chain.tip().hash, a5.block_hash());
}

#[test]
fn out_of_order_blocks_are_held_until_their_parent_arrives() {
    let dir = tempdir();
    let chain = Chain::open_with(
        dir.path(),
        Network::Bitcoin,
        ChainOptions {
            coinbase_maturity: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let main = framed_blocks("btcd-reorg/blk_0_to_4.dat");
    // Write a blk file with the blocks in the order 4, 2, 3, 1 and zero padding.
    let mut file = Vec::new();
    for b in [&main[4], &main[2], &main[3], &main[1]] {
        let raw = bitcoin::consensus::serialize(b);
        file.extend_from_slice(&[0xf9, 0xbe, 0xb4, 0xd9]);
        file.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        file.extend_from_slice(&raw);
        file.extend_from_slice(&[0; 16]);
    }
    let path = dir.path().join("blk00000.dat");
    std::fs::write(&path, file).unwrap();
    let stats = chain.import_blk_file(&path).unwrap();
    assert_eq!((stats.blocks, stats.orphans), (4, 0));
    assert_eq!(chain.tip().hash, main[4].block_hash());
}
