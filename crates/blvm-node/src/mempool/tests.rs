//! Mempool tests on real regtest blocks mined by [`crate::miner`] and real
//! P2WPKH signatures, so scripts are verified by libbitcoinconsensus.

use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, Sequence, TxOut, Txid};

use super::testutil::{funded, key, mine_one, out, sign, spend, spend_with, Key, TestChain};
use super::*;
use crate::miner;

const COIN: u64 = 100_000_000;

/// A regtest chain of 101 blocks paying `k`: the coinbases of heights 1 and
/// 2 are mature for a transaction in block 102, the others are not.
fn setup() -> (TestChain, Mempool, Key) {
    let k = key(7);
    let (chain, mempool) = funded(101, &k);
    (chain, mempool, k)
}

fn coinbase(chain: &TestChain, height: u32) -> (OutPoint, TxOut) {
    chain.coinbase_outpoint(height)
}

#[test]
fn valid_spend_is_accepted_with_fee_and_vsize() {
    let (chain, mp, k) = setup();
    let prev = coinbase(&chain, 1);
    assert_eq!(prev.1.value, Amount::from_sat(50 * COIN));
    let tx = spend(
        &k,
        std::slice::from_ref(&prev),
        vec![out(&k.script, 50 * COIN - 10_000)],
    );
    let acc = mp.accept(tx.clone(), &chain).expect("accepted");
    assert_eq!(acc.txid, tx.compute_txid());
    assert_eq!(acc.wtxid, tx.compute_wtxid());
    assert_eq!(acc.fee, Amount::from_sat(10_000));
    assert_eq!(acc.vsize, tx.vsize() as u64);
    assert!((acc.fee_rate_sat_vb - 10_000.0 / tx.vsize() as f64).abs() < 1e-9);
    assert_eq!(acc.mempool_size, 1);

    assert!(mp.contains(&acc.txid));
    assert_eq!(mp.txids(), vec![acc.txid]);
    assert_eq!(mp.spends(&prev.0), Some(acc.txid));
    let entry = mp.get(&acc.txid).expect("entry");
    assert_eq!(entry.fee, acc.fee);
    assert_eq!(entry.height, 101);
    assert_eq!(entry.ancestors.count, 1);
    assert!(entry.parents.is_empty());
    let info = mp.info();
    assert_eq!(info.size, 1);
    assert_eq!(info.bytes, acc.vsize);
    assert_eq!(info.total_fee, acc.fee);
    assert!(info.usage > 0);
    assert_eq!(info.min_fee_rate, 1.0);
    let summary = mp.fee_rate_summary().expect("summary");
    assert_eq!(summary.count, 1);
    assert_eq!(summary.median, acc.fee_rate_sat_vb);
}

#[test]
fn double_spend_and_duplicate_are_rejected() {
    let (chain, mp, k) = setup();
    let prev = coinbase(&chain, 1);
    let tx = spend(
        &k,
        std::slice::from_ref(&prev),
        vec![out(&k.script, 50 * COIN - 10_000)],
    );
    mp.accept(tx.clone(), &chain).expect("accepted");

    let again = mp.accept(tx, &chain).unwrap_err();
    assert_eq!(again.reason(), "txn-already-in-mempool");
    assert_eq!(again.kind(), RejectKind::AlreadyInMempool);

    let double = spend(&k, &[prev], vec![out(&k.script, 50 * COIN - 20_000)]);
    let err = mp.accept(double, &chain).unwrap_err();
    assert_eq!(err.reason(), "txn-mempool-conflict");
    assert_eq!(err.code(), RPC_VERIFY_REJECTED);
    assert_eq!(mp.len(), 1);
}

#[test]
fn immature_coinbase_spend_is_rejected() {
    let (chain, mp, k) = setup();
    // Height 2 is exactly mature at height 102; height 3 is not.
    let ok = spend(&k, &[coinbase(&chain, 2)], vec![out(&k.script, 50 * COIN - 1_000)]);
    mp.accept(ok, &chain)
        .expect("coinbase with 100 confirmations at tip+1 is spendable");
    let tx = spend(&k, &[coinbase(&chain, 3)], vec![out(&k.script, 50 * COIN - 1_000)]);
    let err = mp.accept(tx, &chain).unwrap_err();
    assert_eq!(err.reason(), "bad-txns-premature-spend-of-coinbase");
    assert_eq!(err.debug(), Some("tried to spend coinbase at depth 99"));
    assert_eq!(err.code(), RPC_VERIFY_REJECTED);
}

#[test]
fn overspend_is_rejected() {
    let (chain, mp, k) = setup();
    let tx = spend(&k, &[coinbase(&chain, 1)], vec![out(&k.script, 50 * COIN + 1)]);
    let err = mp.accept(tx, &chain).unwrap_err();
    assert_eq!(err.reason(), "bad-txns-in-belowout");
    assert_eq!(
        err.to_string(),
        "bad-txns-in-belowout, value in (50.00) < value out (50.00000001)"
    );
}

#[test]
fn bad_signatures_fail_script_verification() {
    let (chain, mp, k) = setup();
    let prev = coinbase(&chain, 1);
    // Signed, then an output changed: the signature no longer commits to the tx.
    let mut tampered = spend(
        &k,
        std::slice::from_ref(&prev),
        vec![out(&k.script, 50 * COIN - 10_000)],
    );
    tampered.output[0].value = Amount::from_sat(50 * COIN - 20_000);
    let err = mp.accept(tampered, &chain).unwrap_err();
    assert!(
        err.reason().starts_with("mandatory-script-verify-flag-failed ("),
        "{err}"
    );
    assert_eq!(err.code(), RPC_VERIFY_REJECTED);

    // Signed by another key: the witness program does not match.
    let other = key(8);
    let unsigned = spend(
        &k,
        std::slice::from_ref(&prev),
        vec![out(&k.script, 50 * COIN - 10_000)],
    );
    let wrong_key = sign(&other, unsigned, &[prev]);
    let err = mp.accept(wrong_key, &chain).unwrap_err();
    assert!(err.reason().starts_with("mandatory-script-verify-flag-failed"), "{err}");
    assert!(mp.is_empty());
}

#[test]
fn missing_inputs_fee_and_context_free_checks() {
    let (chain, mp, k) = setup();
    let fake = (OutPoint::new(Txid::from_byte_array([9; 32]), 0), out(&k.script, COIN));
    let err = mp
        .accept(spend(&k, &[fake], vec![out(&k.script, COIN / 2)]), &chain)
        .unwrap_err();
    assert_eq!(err.reason(), "bad-txns-inputs-missingorspent");
    assert_eq!(err.code(), RPC_VERIFY_ERROR);

    let prev = coinbase(&chain, 1);
    let zero_fee = spend(&k, std::slice::from_ref(&prev), vec![out(&k.script, 50 * COIN)]);
    let err = mp.accept(zero_fee.clone(), &chain).unwrap_err();
    assert_eq!(err.reason(), "min relay fee not met");
    assert_eq!(
        err.to_string(),
        format!("min relay fee not met, 0 < {}", zero_fee.vsize())
    );

    let dup = spend(&k, &[prev.clone(), prev.clone()], vec![out(&k.script, COIN)]);
    assert_eq!(
        mp.accept(dup, &chain).unwrap_err().reason(),
        "bad-txns-inputs-duplicate"
    );

    let cb = chain.blocks[1].txdata[0].clone();
    assert_eq!(mp.accept(cb, &chain).unwrap_err().reason(), "coinbase");

    let no_outputs = spend(&k, &[prev], vec![]);
    assert_eq!(
        mp.accept(no_outputs, &chain).unwrap_err().reason(),
        "bad-txns-vout-empty"
    );

    // A permissive mempool waives the fee minimum only when configured to.
    let free = Mempool::new(MempoolConfig {
        min_relay_fee_sat_vb: 0.0,
        ..MempoolConfig::default()
    });
    free.accept(zero_fee, &chain)
        .expect("zero fee accepted at a zero minimum");
}

#[test]
fn lock_time_and_bip68_finality() {
    let (chain, mp, k) = setup();
    let prev = coinbase(&chain, 1);
    let outs = || vec![out(&k.script, 50 * COIN - 10_000)];
    // nLockTime 102 is not final in block 102; 101 is.
    let tx = spend_with(
        &k,
        std::slice::from_ref(&prev),
        outs(),
        2,
        102,
        Sequence::ENABLE_LOCKTIME_NO_RBF,
    );
    assert_eq!(mp.test_accept(&tx, &chain).unwrap_err().reason(), "non-final");
    let tx = spend_with(
        &k,
        std::slice::from_ref(&prev),
        outs(),
        2,
        101,
        Sequence::ENABLE_LOCKTIME_NO_RBF,
    );
    mp.test_accept(&tx, &chain).expect("final lock time");

    // Relative height lock: coin at height 2 with 101 blocks needs height 103.
    let prev2 = coinbase(&chain, 2);
    let tx = spend_with(
        &k,
        std::slice::from_ref(&prev2),
        outs(),
        2,
        0,
        Sequence::from_height(101),
    );
    let err = mp.test_accept(&tx, &chain).unwrap_err();
    assert_eq!(err.reason(), "non-BIP68-final");
    let tx = spend_with(
        &k,
        std::slice::from_ref(&prev2),
        outs(),
        2,
        0,
        Sequence::from_height(100),
    );
    mp.test_accept(&tx, &chain).expect("relative lock met");
    // Version 1 does not enforce BIP68.
    let tx = spend_with(
        &k,
        std::slice::from_ref(&prev2),
        outs(),
        1,
        0,
        Sequence::from_height(101),
    );
    mp.test_accept(&tx, &chain).expect("version 1 ignores sequence locks");
    // Time locks on confirmed coins cannot be checked through ChainView: refused.
    let tx = spend_with(&k, &[prev2], outs(), 2, 0, Sequence::from_512_second_intervals(1));
    assert_eq!(mp.test_accept(&tx, &chain).unwrap_err().reason(), "non-BIP68-final");
    assert!(mp.is_empty(), "test_accept adds nothing");
}

#[test]
fn unconfirmed_chains_confirmation_and_fee_estimate() {
    let (mut chain, mp, k) = setup();
    assert_eq!(mp.estimate_fee(1), None, "no data, no estimate");
    let parent = spend(&k, &[coinbase(&chain, 1)], vec![out(&k.script, 50 * COIN - 2_000)]);
    let p = mp.accept(parent.clone(), &chain).expect("parent");
    let prev = (OutPoint::new(p.txid, 0), parent.output[0].clone());
    let child = spend(&k, &[prev], vec![out(&k.script, 50 * COIN - 12_000)]);
    let c = mp
        .accept(child.clone(), &chain)
        .expect("child of an unconfirmed parent");
    assert_eq!(c.fee, Amount::from_sat(10_000));

    let ce = mp.get(&c.txid).expect("child entry");
    assert_eq!(ce.parents, vec![p.txid]);
    assert_eq!(ce.ancestors.count, 2);
    assert_eq!(ce.ancestors.fees, Amount::from_sat(12_000));
    let pe = mp.get(&p.txid).expect("parent entry");
    assert_eq!(pe.children, vec![c.txid]);
    assert_eq!(pe.descendants.count, 2);

    let (block, removed) = mine_one(&mut chain, &mp, &k.script);
    assert_eq!(block.txdata.len(), 3);
    assert_eq!(
        removed,
        vec![(p.txid, RemovalReason::Block), (c.txid, RemovalReason::Block)]
    );
    assert!(mp.is_empty());
    assert_eq!(mp.info().bytes, 0);
    assert_eq!(mp.info().total_fee, Amount::ZERO);
    assert_eq!(mp.fee_rate_summary(), None);

    // Both confirmed in the next block: the estimate is the median (nearest
    // rank) of the two observed rates, i.e. the lower one.
    let est = mp.estimate_fee(1).expect("estimate after a confirmation");
    let lower = p.fee_rate_sat_vb.min(c.fee_rate_sat_vb);
    assert!((est - lower).abs() < 1e-9, "{est} vs {lower}");
    assert_eq!(mp.estimate_fee(6), Some(est));

    // The child is confirmed and unspent: resubmitting it is "already known".
    let err = mp.accept(child, &chain).unwrap_err();
    assert_eq!(err.reason(), "txn-already-known");
    assert_eq!(err.code(), RPC_VERIFY_ALREADY_IN_CHAIN);
    // The parent's only output is spent: its inputs are simply missing.
    assert_eq!(
        mp.accept(parent, &chain).unwrap_err().reason(),
        "bad-txns-inputs-missingorspent"
    );
}

#[test]
fn mempool_chain_limit() {
    let (chain, mp, k) = setup();
    let mut prev = coinbase(&chain, 1);
    let mut value = prev.1.value.to_sat();
    for i in 0..26 {
        value -= 1_000;
        let tx = spend(&k, std::slice::from_ref(&prev), vec![out(&k.script, value)]);
        let res = mp.accept(tx.clone(), &chain);
        if i < 25 {
            res.expect("within the 25-ancestor limit");
        } else {
            let err = res.unwrap_err();
            assert_eq!(err.reason(), "too-long-mempool-chain");
        }
        prev = (OutPoint::new(tx.compute_txid(), 0), tx.output[0].clone());
    }
    assert_eq!(mp.len(), 25);
}

#[test]
fn block_spending_the_same_coin_evicts_conflicts_with_descendants() {
    let (mut chain, mp, k) = setup();
    let prev = coinbase(&chain, 1);
    let a = spend(&k, std::slice::from_ref(&prev), vec![out(&k.script, 50 * COIN - 5_000)]);
    let a_id = mp.accept(a.clone(), &chain).expect("a").txid;
    let c = spend(
        &k,
        &[(OutPoint::new(a_id, 0), a.output[0].clone())],
        vec![out(&k.script, 50 * COIN - 9_000)],
    );
    let c_id = mp.accept(c, &chain).expect("c").txid;
    let other = spend(&k, &[coinbase(&chain, 2)], vec![out(&k.script, 50 * COIN - 5_000)]);
    let other_id = mp.accept(other, &chain).expect("unrelated").txid;

    // A block (not from this mempool) confirms a different spend of the coin.
    let b = spend(&k, &[prev], vec![out(&k.script, 50 * COIN - 7_000)]);
    let b_tx = miner::TemplateTx {
        tx: std::sync::Arc::new(b.clone()),
        txid: b.compute_txid(),
        wtxid: b.compute_wtxid(),
        fee: Amount::from_sat(7_000),
        weight: b.weight().to_wu(),
        sigop_cost: 1,
        depends: vec![],
    };
    let t = miner::build_template_with_transactions(&chain, k.script.clone(), chain.next_time(), vec![b_tx]);
    let block = miner::mine(miner::assemble(&t), 100_000).expect("mined");
    let height = chain.connect(block.clone());
    let removed = mp.remove_for_block(&block, height);
    assert_eq!(
        removed,
        vec![(a_id, RemovalReason::Conflict), (c_id, RemovalReason::Conflict)]
    );
    assert_eq!(mp.txids(), vec![other_id]);
    assert_eq!(mp.spends(&OutPoint::new(a_id, 0)), None);
    // Evicted transactions were not confirmed: no fee sample.
    assert_eq!(mp.estimate_fee(10), None);
}

#[test]
fn disconnected_block_transactions_come_back_and_reorg_evicts_invalid() {
    let (mut chain, mp, k) = setup();
    let prev = coinbase(&chain, 1);
    let tx = spend(&k, std::slice::from_ref(&prev), vec![out(&k.script, 50 * COIN - 3_000)]);
    let txid = mp.accept(tx.clone(), &chain).expect("accepted").txid;
    // A mempool transaction spending a coin that is mature only at tip+1 = 102.
    let young = spend(&k, &[coinbase(&chain, 2)], vec![out(&k.script, 50 * COIN - 3_000)]);
    let young_id = mp.accept(young, &chain).expect("young").txid;
    let (block, _) = mine_one(&mut chain, &mp, &k.script);
    assert!(mp.is_empty());
    assert!(mp.estimate_fee(1).is_some());
    // A child of the confirmed transaction, accepted while its parent is confirmed.
    let child = spend(
        &k,
        &[(OutPoint::new(txid, 0), tx.output[0].clone())],
        vec![out(&k.script, 50 * COIN - 9_000)],
    );
    let child_id = mp.accept(child, &chain).expect("child").txid;
    assert!(mp.get(&child_id).expect("child").parents.is_empty());

    // Disconnect block 102: both come back; the child is linked to its parent again.
    let disconnected = chain.disconnect();
    assert_eq!(disconnected.block_hash(), block.block_hash());
    let back = mp.readd_disconnected(&disconnected, &chain);
    let back_ids: Vec<Txid> = back.iter().map(|a| a.txid).collect();
    assert_eq!(back_ids.len(), 2);
    assert!(back_ids.contains(&txid) && back_ids.contains(&young_id));
    assert_eq!(mp.get(&child_id).expect("child").parents, vec![txid]);
    assert_eq!(
        mp.estimate_fee(1),
        None,
        "samples of the disconnected block are forgotten"
    );
    assert!(mp.remove_invalid_after_reorg(&chain).is_empty());

    // Disconnect block 101 too: the coin at height 2 is immature at 101.
    chain.disconnect();
    let removed = mp.remove_invalid_after_reorg(&chain);
    assert_eq!(removed, vec![(young_id, RemovalReason::Reorg)]);

    // A competing block confirms another spend of the first coin; the chain
    // changed without remove_for_block: the reorg sweep evicts tx and child.
    let rival = spend(&k, &[prev], vec![out(&k.script, 50 * COIN - 4_000)]);
    let rival_tx = miner::TemplateTx {
        tx: std::sync::Arc::new(rival.clone()),
        txid: rival.compute_txid(),
        wtxid: rival.compute_wtxid(),
        fee: Amount::from_sat(4_000),
        weight: rival.weight().to_wu(),
        sigop_cost: 1,
        depends: vec![],
    };
    let t = miner::build_template_with_transactions(&chain, k.script.clone(), chain.next_time() + 1, vec![rival_tx]);
    let rival_block = miner::mine(miner::assemble(&t), 100_000).expect("mined");
    chain.connect(rival_block);
    let removed = mp.remove_invalid_after_reorg(&chain);
    assert_eq!(
        removed,
        vec![(txid, RemovalReason::Reorg), (child_id, RemovalReason::Reorg)]
    );
    assert!(mp.is_empty());
}

#[test]
fn error_codes_and_strings() {
    let e = MempoolError::new(RejectKind::MissingInputs, "bad-txns-inputs-missingorspent");
    assert_eq!(e.code(), -25);
    assert_eq!(
        MempoolError::new(RejectKind::AlreadyInChain, "txn-already-known").code(),
        -27
    );
    assert_eq!(
        MempoolError::new(RejectKind::Conflict, "txn-mempool-conflict").code(),
        -26
    );
    assert_eq!(RemovalReason::SizeLimit.as_str(), "sizelimit");
    assert_eq!(format_money(Amount::from_sat(123_450_000)), "1.2345");
    assert_eq!(format_money(Amount::ZERO), "0.00");
}

#[test]
fn mempool_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Mempool>();
}
