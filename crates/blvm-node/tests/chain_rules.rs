//! Consensus rules on regtest blocks built here (regtest proof of work is
//! cheap, so a broken block can be re-mined and fail on the rule under test
//! rather than on its hash).

mod chain;

use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::{Block, Network, OutPoint, Txid};
use blvm_node::chain::{Chain, ChainEvent, ChainOptions, ChainView, ProcessOutcome};
use chain::{coinbase, mine, next, spend, tempdir, Recorder, REGTEST_BITS};

const COIN: u64 = 100_000_000;

fn regtest(maturity: u32) -> (chain::TempDir, Chain, Block) {
    let dir = tempdir();
    let chain = Chain::open_with(
        dir.path(),
        Network::Regtest,
        ChainOptions {
            coinbase_maturity: maturity,
            ..Default::default()
        },
    )
    .unwrap();
    let genesis = chain.block(&chain.tip().hash).unwrap();
    (dir, chain, genesis)
}

fn reason(chain: &Chain, b: &Block) -> String {
    chain.process_block(b).unwrap_err().reason().to_string()
}

#[test]
fn header_rules() {
    let (_d, chain, g) = regtest(100);
    // Wrong bits (harder than required), still meeting its own target.
    let b = mine(
        &g.header,
        coinbase(1, 50 * COIN),
        vec![],
        0x2000_ffff,
        g.header.time + 600,
    );
    assert_eq!(reason(&chain, &b), "bad-diffbits");
    // Time not after the median time past.
    let b = mine(&g.header, coinbase(1, 50 * COIN), vec![], REGTEST_BITS, g.header.time);
    assert_eq!(reason(&chain, &b), "time-too-old");
    // More than two hours ahead of the clock.
    let now = chain.tip().median_time_past as u64 + 10_000;
    let dir = tempdir();
    let clock: blvm_node::chain::Clock = Arc::new(move || now);
    let c2 = Chain::open_with(
        dir.path(),
        Network::Regtest,
        ChainOptions {
            clock: Some(clock),
            ..Default::default()
        },
    )
    .unwrap();
    let b = mine(
        &g.header,
        coinbase(1, 50 * COIN),
        vec![],
        REGTEST_BITS,
        (now + 7201) as u32,
    );
    assert_eq!(reason(&c2, &b), "time-too-new");
    let b = mine(
        &g.header,
        coinbase(1, 50 * COIN),
        vec![],
        REGTEST_BITS,
        (now + 7200) as u32,
    );
    assert!(c2.process_block(&b).is_ok());
    // BIP34: the coinbase must start with the height.
    let b = mine(
        &g.header,
        coinbase(2, 50 * COIN),
        vec![],
        REGTEST_BITS,
        g.header.time + 600,
    );
    assert_eq!(reason(&chain, &b), "bad-cb-height");
    assert_eq!(chain.tip().height, 0);
}

#[test]
fn utxo_and_value_rules() {
    let (_d, chain, g) = regtest(100);
    // Overpaying coinbase.
    let b = mine(
        &g.header,
        coinbase(1, 50 * COIN + 1),
        vec![],
        REGTEST_BITS,
        g.header.time + 600,
    );
    assert_eq!(reason(&chain, &b), "bad-cb-amount");
    // Spending an output that does not exist.
    let missing = OutPoint {
        txid: Txid::from_byte_array([7; 32]),
        vout: 0,
    };
    let b = next(&g.header, 1, vec![spend(missing, &[COIN])]);
    assert_eq!(reason(&chain, &b), "bad-txns-inputs-missingorspent");

    let b1 = next(&g.header, 1, vec![]);
    assert!(matches!(
        chain.process_block(&b1).unwrap(),
        ProcessOutcome::Connected { height: 1, .. }
    ));
    let cb1 = OutPoint {
        txid: b1.txdata[0].compute_txid(),
        vout: 0,
    };
    assert_eq!(chain.coin(&cb1).unwrap().height, 1);
    assert!(ChainView::coin(&chain, &cb1).unwrap().is_coinbase);
    // Immature coinbase spend (maturity 100).
    let b = next(&b1.header, 2, vec![spend(cb1, &[COIN])]);
    assert_eq!(reason(&chain, &b), "bad-txns-premature-spend-of-coinbase");
    assert_eq!(chain.utxo_stats(), (1, 50 * COIN));
}

#[test]
fn spends_double_spends_scripts_and_a_failing_branch() {
    let (_d, chain, g) = regtest(1);
    let b1 = next(&g.header, 1, vec![]);
    chain.process_block(&b1).unwrap();
    let cb1 = OutPoint {
        txid: b1.txdata[0].compute_txid(),
        vout: 0,
    };
    // Outputs worth more than the input.
    let b = next(&b1.header, 2, vec![spend(cb1, &[51 * COIN])]);
    assert_eq!(reason(&chain, &b), "bad-txns-in-belowout");
    // A spend and a spend of its output in the same block, fee paid to the coinbase.
    let t1 = spend(cb1, &[30 * COIN, 19 * COIN]);
    let t2 = spend(
        OutPoint {
            txid: t1.compute_txid(),
            vout: 0,
        },
        &[29 * COIN],
    );
    let fee = 2 * COIN;
    let b2 = mine(
        &b1.header,
        coinbase(2, 50 * COIN + fee),
        vec![t1.clone(), t2.clone()],
        REGTEST_BITS,
        b1.header.time + 600,
    );
    chain.process_block(&b2).unwrap();
    // b1's coinbase is spent; t1:1, t2:0 and b2's coinbase remain (2 BTC went to fees).
    assert_eq!(chain.utxo_stats(), (3, 19 * COIN + 29 * COIN + 52 * COIN));
    assert_eq!(chain.utxo_stats(), chain.scan_utxo_set().unwrap());
    // A double spend within a block.
    let d = spend(
        OutPoint {
            txid: t1.compute_txid(),
            vout: 1,
        },
        &[COIN],
    );
    let d2 = spend(
        OutPoint {
            txid: t1.compute_txid(),
            vout: 1,
        },
        &[2 * COIN],
    );
    let b = next(&b2.header, 3, vec![d, d2]);
    assert_eq!(reason(&chain, &b), "bad-txns-inputs-missingorspent");
    // An output whose script fails for any spender (OP_VERIFY on an empty stack).
    let t3 = {
        let mut t = spend(
            OutPoint {
                txid: t1.compute_txid(),
                vout: 1,
            },
            &[18 * COIN],
        );
        t.output[0].script_pubkey = bitcoin::blockdata::script::Builder::new()
            .push_opcode(bitcoin::opcodes::all::OP_RETURN)
            .push_int(1)
            .push_opcode(bitcoin::opcodes::all::OP_DROP)
            .into_script();
        t.output.push(bitcoin::TxOut {
            value: bitcoin::Amount::ZERO,
            script_pubkey: bitcoin::blockdata::script::Builder::new()
                .push_opcode(bitcoin::opcodes::all::OP_VERIFY)
                .into_script(),
        });
        t
    };
    let b3 = mine(
        &b2.header,
        coinbase(3, 50 * COIN + COIN),
        vec![t3.clone()],
        REGTEST_BITS,
        b2.header.time + 600,
    );
    chain.process_block(&b3).unwrap();
    // OP_RETURN outputs never enter the UTXO set; the OP_VERIFY one does.
    assert!(chain
        .coin(&OutPoint {
            txid: t3.compute_txid(),
            vout: 0
        })
        .is_none());
    let verify_out = OutPoint {
        txid: t3.compute_txid(),
        vout: 1,
    };
    assert!(chain.coin(&verify_out).is_some());
    // Spending it with an empty scriptSig: OP_VERIFY on an empty stack fails.
    let b = next(&b3.header, 4, vec![spend(verify_out, &[0])]);
    assert!(reason(&chain, &b).starts_with("mandatory-script-verify-flag-failed"));
    let tip3 = chain.tip();
    assert_eq!(tip3.height, 3);

    // A heavier branch from b1 whose second block is invalid (spends a
    // missing coin): the chain tries it, marks it and its child invalid,
    // and returns to b3.
    let x2 = mine(
        &b1.header,
        coinbase(2, 50 * COIN),
        vec![],
        REGTEST_BITS,
        b1.header.time + 601,
    );
    let missing = OutPoint {
        txid: Txid::from_byte_array([9; 32]),
        vout: 0,
    };
    let x3 = next(&x2.header, 3, vec![spend(missing, &[COIN])]);
    let x4 = next(&x3.header, 4, vec![]);
    assert!(matches!(
        chain.process_block(&x2).unwrap(),
        ProcessOutcome::SideBranch { .. }
    ));
    assert!(matches!(
        chain.process_block(&x3).unwrap(),
        ProcessOutcome::SideBranch { .. }
    ));
    let err = chain.process_block(&x4).unwrap_err();
    assert_eq!(err.reason(), "bad-txns-inputs-missingorspent");
    assert_eq!(chain.tip().hash, tip3.hash);
    assert!(chain.header(&x3.block_hash()).unwrap().status.is_invalid());
    assert!(chain.header(&x4.block_hash()).unwrap().status.is_invalid());
    assert!(!chain.header(&x2.block_hash()).unwrap().status.is_invalid());
    assert_eq!(chain.utxo_stats(), chain.scan_utxo_set().unwrap());
}

#[test]
fn events_around_a_connected_block() {
    let dir = tempdir();
    let rec = Recorder::new();
    let chain = Chain::open_with(
        dir.path(),
        Network::Regtest,
        ChainOptions {
            listener: Some(rec.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let g = chain.block(&chain.tip().hash).unwrap();
    let b1 = next(&g.header, 1, vec![]);
    chain.process_block(&b1).unwrap();
    let names: Vec<&str> = rec
        .take()
        .iter()
        .map(|e| match e {
            ChainEvent::BlockValidationStarted { .. } => "started",
            ChainEvent::UtxoValidationStarted { .. } => "utxo-started",
            ChainEvent::UtxoValidationCompleted { success: true, .. } => "utxo-ok",
            ChainEvent::BlockConnected { height: 1, .. } => "connected",
            ChainEvent::BlockValidationCompleted { success: true, .. } => "completed",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(names, ["started", "utxo-started", "utxo-ok", "connected", "completed"]);
    let bad = mine(
        &b1.header,
        coinbase(2, 51 * COIN),
        vec![],
        REGTEST_BITS,
        b1.header.time + 600,
    );
    chain.process_block(&bad).unwrap_err();
    let ev = rec.take();
    assert!(ev
        .iter()
        .any(|e| matches!(e, ChainEvent::ConsensusRuleViolation { rule, .. } if rule == "bad-cb-amount")));
    assert!(matches!(
        ev.last(),
        Some(ChainEvent::BlockValidationCompleted {
            success: false,
            error: Some(_),
            ..
        })
    ));
}
