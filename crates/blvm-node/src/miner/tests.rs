//! Miner tests on a regtest chain built from blocks this miner mined.

use bitcoin::{Amount, KnownHrp, OutPoint};

use super::*;
use crate::mempool::testutil::{funded, key, out, spend, TestChain};
use crate::mempool::RemovalReason;

const COIN: u64 = 100_000_000;

#[test]
fn template_includes_the_transaction_and_pays_subsidy_plus_fee() {
    let k = key(3);
    let (mut chain, mp) = funded(101, &k);
    let (op, prev) = chain.coinbase_outpoint(1);
    let tx = spend(&k, &[(op, prev)], vec![out(&k.script, 50 * COIN - 10_000)]);
    let acc = mp.accept(tx.clone(), &chain).expect("accepted");
    assert_eq!(mp.estimate_fee(1), None);

    let t = build_template(&chain, &mp, k.script.clone(), 0);
    assert_eq!(t.height, 102);
    assert_eq!(t.prev_hash, chain.tip().0);
    assert_eq!(t.bits, chain.next_block_bits());
    assert_eq!(t.time, t.min_time, "a time below MTP+1 is raised");
    assert_eq!(t.min_time, chain.median_time_past() + 1);
    assert_eq!(t.transactions.len(), 1);
    assert_eq!(t.transactions[0].txid, acc.txid);
    assert_eq!(t.transactions[0].fee, Amount::from_sat(10_000));
    assert!(t.transactions[0].depends.is_empty());
    assert_eq!(t.subsidy, Amount::from_sat(50 * COIN));
    assert_eq!(t.total_fees, Amount::from_sat(10_000));
    assert_eq!(t.coinbase_value, Amount::from_sat(50 * COIN + 10_000));
    assert_eq!(t.coinbase.output[0].value, t.coinbase_value);
    assert_eq!(t.coinbase.output[0].script_pubkey, k.script);
    let commitment = t.witness_commitment.clone().expect("witness commitment");
    assert_eq!(t.coinbase.output[1].script_pubkey, commitment);
    assert_eq!(&commitment.as_bytes()[..6], &[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]);
    assert!(t.weight > 0 && t.weight < MAX_BLOCK_WEIGHT);

    let block = assemble(&t);
    assert!(block.check_merkle_root());
    assert!(block.check_witness_commitment());
    let first = block.txdata[0].input[0]
        .script_sig
        .instructions()
        .next()
        .expect("push")
        .expect("valid");
    assert_eq!(first.script_num(), Some(102), "BIP34 height push");

    let mined = mine(block, 100_000).expect("regtest target is trivial");
    assert!(mined.header.validate_pow(mined.header.target()).is_ok());
    assert!(mined.check_merkle_root());
    assert!(mined.check_witness_commitment());
    assert_eq!(mined.txdata[1], tx);

    let height = chain.connect(mined.clone());
    assert_eq!(height, 102);
    let new_coin = chain
        .coin(&OutPoint::new(mined.txdata[1].compute_txid(), 0))
        .expect("confirmed output");
    assert_eq!(new_coin.height, 102);
    let removed = mp.remove_for_block(&mined, height);
    assert_eq!(removed, vec![(acc.txid, RemovalReason::Block)]);
    let est = mp.estimate_fee(1).expect("observed");
    assert!((est - acc.fee_rate_sat_vb).abs() < 1e-9);
}

#[test]
fn packages_by_ancestor_fee_rate_in_dependency_order() {
    let k = key(4);
    let (chain, mp) = funded(101, &k);
    // Parent paying little, child paying a lot (CPFP), unrelated middle payer.
    let parent = spend(&k, &[chain.coinbase_outpoint(1)], vec![out(&k.script, 50 * COIN - 150)]);
    let p = mp.accept(parent.clone(), &chain).expect("parent");
    let child = spend(
        &k,
        &[(OutPoint::new(p.txid, 0), parent.output[0].clone())],
        vec![out(&k.script, 50 * COIN - 5_150)],
    );
    let c = mp.accept(child, &chain).expect("child");
    let middle = spend(
        &k,
        &[chain.coinbase_outpoint(2)],
        vec![out(&k.script, 50 * COIN - 2_000)],
    );
    let m = mp.accept(middle, &chain).expect("middle");
    assert!(p.fee_rate_sat_vb < m.fee_rate_sat_vb && m.fee_rate_sat_vb < c.fee_rate_sat_vb);

    let t = build_template(&chain, &mp, k.script.clone(), chain.next_time());
    let order: Vec<_> = t.transactions.iter().map(|t| t.txid).collect();
    assert_eq!(order, vec![p.txid, c.txid, m.txid]);
    assert_eq!(t.transactions[1].depends, vec![1]);
    assert_eq!(t.total_fees, Amount::from_sat(150 + 5_000 + 2_000));
    let block = assemble(&t);
    assert!(block.check_merkle_root() && block.check_witness_commitment());

    // With room for one transaction only, the middle one is the best that fits.
    let entries = mp.entries();
    let budget = entries.iter().find(|e| e.txid == m.txid).expect("middle").weight;
    let chosen: Vec<_> = select_transactions(&entries, budget, 80_000)
        .into_iter()
        .map(|t| t.txid)
        .collect();
    assert_eq!(chosen, vec![m.txid]);
    assert!(select_transactions(&entries, 10, 80_000).is_empty());
}

#[test]
fn empty_template_and_subsidy() {
    let chain = TestChain::new();
    let mp = crate::mempool::Mempool::default();
    let k = key(5);
    let t = build_template(&chain, &mp, k.script.clone(), 1_700_000_000);
    assert_eq!(t.height, 1);
    assert!(t.transactions.is_empty());
    assert_eq!(t.coinbase_value, Amount::from_sat(50 * COIN));
    assert!(t.witness_commitment.is_some(), "segwit active: Core always commits");
    let block = assemble(&t);
    assert!(block.check_merkle_root() && block.check_witness_commitment());
    assert!(block.txdata[0].input[0].script_sig.len() >= 2);

    assert_eq!(block_subsidy(149, Network::Regtest), Amount::from_sat(50 * COIN));
    assert_eq!(block_subsidy(150, Network::Regtest), Amount::from_sat(25 * COIN));
    assert_eq!(block_subsidy(210_000, Network::Bitcoin), Amount::from_sat(25 * COIN));
    assert_eq!(block_subsidy(64 * 210_000, Network::Bitcoin), Amount::ZERO);

    let addr = Address::p2wpkh(&k.pk, KnownHrp::Regtest);
    assert_eq!(coinbase_script_for_address(&addr), k.script);
}

#[test]
fn extranonce_rolls_when_the_nonce_space_runs_out() {
    let k = key(6);
    let (chain, mp) = funded(3, &k);
    let t = build_template(&chain, &mp, k.script.clone(), chain.next_time());
    let mut block = assemble(&t);
    assert_eq!(extranonce(&block), Some(0));
    let root = block.header.merkle_root;
    assert!(set_extranonce(&mut block, 7));
    assert_eq!(extranonce(&block), Some(7));
    assert_ne!(block.header.merkle_root, root);
    assert!(block.check_merkle_root() && block.check_witness_commitment());
    let first = block.txdata[0].input[0]
        .script_sig
        .instructions()
        .next()
        .expect("push")
        .expect("valid");
    assert_eq!(first.script_num(), Some(4), "height push kept");

    // Start at the last nonce: either it works, or the extranonce moves on.
    let mut block = assemble(&t);
    block.header.nonce = u32::MAX;
    let mined = mine(block, 100_000).expect("mined");
    assert!(mined.header.validate_pow(mined.header.target()).is_ok());
    assert!(mined.check_merkle_root() && mined.check_witness_commitment());
    let x = extranonce(&mined).expect("extranonce");
    assert!(
        (mined.header.nonce == u32::MAX && x == 0) || x == 1,
        "nonce {} extranonce {x}",
        mined.header.nonce
    );
}

#[test]
fn a_reserve_that_leaves_no_room_for_a_transaction_leaves_it_out() {
    let k = key(7);
    let (chain, mp) = funded(101, &k);
    let tx = spend(
        &k,
        &[chain.coinbase_outpoint(1)],
        vec![out(&k.script, 50 * COIN - 10_000)],
    );
    let acc = mp.accept(tx, &chain).expect("accepted");
    let weight = mp.entries()[0].weight;

    let roomy = build_template_reserving(&chain, &mp, k.script.clone(), 0, CoinbaseReserve::new(100_000, 400));
    assert_eq!(roomy.transactions.len(), 1);
    assert_eq!(roomy.transactions[0].txid, acc.txid);

    // Exactly the transaction's weight too little.
    let tight = CoinbaseReserve::new(MAX_BLOCK_WEIGHT - weight + 1, 400);
    let t = build_template_reserving(&chain, &mp, k.script.clone(), 0, tight);
    assert!(t.transactions.is_empty(), "no room: {:?}", t.transactions);
    assert_eq!(t.coinbase_value, t.subsidy, "no fees without the transaction");
    // Exactly enough.
    let exact = CoinbaseReserve::new(MAX_BLOCK_WEIGHT - weight, 400);
    assert_eq!(
        build_template_reserving(&chain, &mp, k.script.clone(), 0, exact)
            .transactions
            .len(),
        1
    );
    // No sigop budget left.
    let no_sigops = CoinbaseReserve::new(4_000, MAX_BLOCK_SIGOPS_COST);
    let sigops = mp.entries()[0].sigop_cost;
    let t = build_template_reserving(&chain, &mp, k.script.clone(), 0, no_sigops);
    assert_eq!(t.transactions.is_empty(), sigops > 0);

    // Clamped: at least the minimum, at most the block.
    assert_eq!(CoinbaseReserve::new(0, 0).weight, CoinbaseReserve::MIN_WEIGHT);
    assert_eq!(CoinbaseReserve::new(u64::MAX, u64::MAX).weight, MAX_BLOCK_WEIGHT);
    assert_eq!(CoinbaseReserve::new(u64::MAX, u64::MAX).sigops, MAX_BLOCK_SIGOPS_COST);
    assert_eq!(CoinbaseReserve::default(), CoinbaseReserve::new(4_000, 400));
}
