//! The `stratum-v2` module on the real `blvm-node` binary, against a
//! Template Distribution client built on the Stratum V2 reference crates
//! (`tests/sv2`): templates, a mined block the node takes, new tips, bad
//! clients, the sandbox without `network_access`, fee-driven templates
//! under coinbase constraints, and the NewBlock → SetNewPrevHash latency
//! over 100 blocks. Every wait is on a message, a log line or a status,
//! never a fixed sleep.

mod harness;
mod sv2;

use std::time::{Duration, Instant};

use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use serde_json::{json, Value};
use sv2::{coinbase, grind, percentiles, solved_block, start, Client, Msg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COIN: u64 = 100_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn a_reference_client_gets_templates_mines_a_block_the_node_takes_and_follows_the_next_tip() {
    let rt = runtime();
    let mut n = start("sv2-mine", "template_interval_ms = 200", |m| m);
    n.wait_listening();
    // A mature coinbase, and a spend of it waiting in the mempool.
    let hashes = n.mine(101);
    let spend = n.spend_of(&n.block(&hashes[0]), 10_000);
    let txid = n.send(&spend);
    let authority = n.authority();
    let status = n.status();
    assert_eq!(status["listening"], json!(n.listen.to_string()), "{status:#}");
    assert_eq!(status["network_access"], json!(true));

    let (mined_by_client, stale) = rt.block_on(async {
        let mut c = Client::connect(n.listen, authority).await;
        c.setup().await;
        c.constraints(100, 4).await;
        let (t, p) = c.new_tip().await;
        assert_eq!(p.display(), n.tip());
        assert_eq!(p.n_bits, 0x207f_ffff, "regtest");
        // Height 102 (`01 66`), subsidy plus the fee, the spend as the
        // one leaf beside the coinbase, the witness commitment kept.
        assert_eq!(t.coinbase_prefix, [0x01, 102]);
        assert_eq!(t.coinbase_tx_value_remaining, 50 * COIN + 10_000);
        assert_eq!(t.merkle_path, vec![spend.compute_txid().to_byte_array()]);
        assert_eq!(t.coinbase_tx_outputs_count, 1);
        assert_eq!(&t.coinbase_tx_outputs[9..15], &[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]);
        assert_eq!(t.coinbase_tx_input_sequence, u32::MAX);

        c.request_transactions(t.template_id).await;
        let transactions = match c.recv().await {
            Msg::TxData {
                template_id,
                transactions,
            } => {
                assert_eq!(template_id, t.template_id);
                transactions
            }
            other => panic!("expected the transaction data, got {other:?}"),
        };
        assert_eq!(transactions, vec![serialize(&spend)]);

        // Grind it as a pool's miner would and submit the solution.
        let cb = coinbase(&t, 7);
        let header = grind(&t, &p, &cb);
        c.submit(t.template_id, &header, &cb).await;
        let (_, p2) = c.new_tip().await;
        assert_eq!(
            p2.display(),
            header.block_hash().to_string(),
            "the client's block is the tip"
        );
        assert_eq!(n.tip(), header.block_hash().to_string());
        let stored = n.block(&n.tip());
        assert_eq!(stored, solved_block(header, cb, &transactions));
        assert!(stored.check_merkle_root() && stored.check_witness_commitment());
        assert!(stored.txdata.iter().any(|tx| tx.compute_txid().to_string() == txid));

        // A block mined on the node reaches the client at once.
        let mined = n.mine(1).remove(0);
        let (t3, p3) = c.new_tip().await;
        assert_eq!(p3.display(), mined);
        assert!(t3.merkle_path.is_empty(), "the mempool is empty: {t3:?}");
        assert_eq!(t3.coinbase_prefix, [0x01, 104]);

        // The first template is of an earlier tip now; an id never sent
        // is unknown.
        c.request_transactions(t.template_id).await;
        assert_eq!(
            c.recv().await,
            Msg::TxDataError {
                template_id: t.template_id,
                code: "stale-template-id".into()
            }
        );
        c.request_transactions(999_999).await;
        assert_eq!(
            c.recv().await,
            Msg::TxDataError {
                template_id: 999_999,
                code: "template-id-not-found".into()
            }
        );
        let local = c.local;
        (header.block_hash().to_string(), (t.template_id, local))
    });

    let status = n.status();
    assert_eq!(status["solutions"]["accepted"], json!(1), "{status:#}");
    assert_eq!(status["solutions"]["submitted"], json!(1));
    let last = &status["last_solution"];
    assert_eq!(last["block_hash"], json!(mined_by_client));
    assert_eq!(
        (last["status"].clone(), last["height"].clone()),
        (json!("accepted"), json!(102))
    );
    assert_eq!(last["template_id"], json!(stale.0));
    assert!(status["templates_sent"].as_u64().is_some_and(|s| s >= 3), "{status:#}");
    // What the node and the module published, as a subscriber saw it.
    let client = stale.1.to_string();
    n.wait_recorded("BlockMined", &format!("102 {mined_by_client}"));
    n.wait_recorded("MiningJobCreated", &format!("{} 102", stale.0));
    n.wait_recorded("StratumClientConnected", &format!("{client} 2"));
    // Its SubmitSolution (0x76), as the module received it.
    n.wait_recorded("StratumV2MessageReceived", &format!("{client} 000076"));
    n.wait_recorded("StratumClientDisconnected", &client);
    n.node.stop();
}

#[test]
fn bad_clients_get_the_protocols_error_or_a_closed_connection_while_a_good_one_is_served() {
    let rt = runtime();
    let mut n = start("sv2-bad", "", |m| m);
    n.wait_listening();
    let authority = n.authority();
    rt.block_on(async {
        let mut good = Client::connect(n.listen, authority).await;
        good.setup().await;
        good.constraints(100, 4).await;
        good.new_tip().await;

        // Garbage before the handshake: 64 bytes taken as a key, then a
        // "frame" that does not decrypt.
        let mut raw = tokio::net::TcpStream::connect(n.listen).await.expect("connects");
        let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        raw.write_all(&garbage).await.expect("written");
        let mut answer = Vec::new();
        let read = tokio::time::timeout(harness::DEADLINE, raw.read_to_end(&mut answer))
            .await
            .expect("closed in time");
        assert!(read.is_ok() || answer.len() <= 234, "{read:?}");
        assert!(
            answer.len() <= 234,
            "at most the handshake's answer: {} bytes",
            answer.len()
        );

        // The wrong subprotocol, version or flags: SetupConnection.Error, closed.
        for (protocol, min, max, flags, code) in [
            (0, 2, 2, 0, "unsupported-protocol"),
            (1, 2, 2, 0, "unsupported-protocol"),
            (2, 3, 4, 0, "protocol-version-mismatch"),
            (2, 2, 2, 1, "unsupported-feature-flags"),
        ] {
            let mut c = Client::connect(n.listen, authority).await;
            match c.setup_with(protocol, min, max, flags).await {
                Msg::SetupError { code: got, flags: f } => {
                    assert_eq!(
                        (got.as_str(), f),
                        (code, flags),
                        "protocol {protocol} v{min}..{max} flags {flags}"
                    )
                }
                other => panic!("expected SetupConnection.Error, got {other:?}"),
            }
            c.closed().await;
        }

        // A message a template provider never receives.
        let mut c = Client::connect(n.listen, authority).await;
        c.setup().await;
        c.writer.send_payload(0x99, vec![1, 2, 3]).await.expect("sent");
        c.closed().await;

        // A frame of 1 MiB, eight times the limit.
        let mut c = Client::connect(n.listen, authority).await;
        c.setup().await;
        let _ = c.writer.send_payload(0x76, vec![0; 1 << 20]).await;
        c.closed().await;

        // A solution for a template of an earlier tip: not submitted.
        let mut s = Client::connect(n.listen, authority).await;
        s.setup().await;
        s.constraints(100, 4).await;
        let (t1, p1) = s.new_tip().await;
        let mined = n.mine(1).remove(0);
        let (_, p) = s.new_tip().await;
        assert_eq!(p.display(), mined);
        let cb = coinbase(&t1, 1);
        let header = grind(&t1, &p1, &cb);
        s.submit(t1.template_id, &header, &cb).await;
        s.request_transactions(t1.template_id).await;
        assert_eq!(
            s.recv().await,
            Msg::TxDataError {
                template_id: t1.template_id,
                code: "stale-template-id".into()
            },
            "the stale solution was not answered; the connection goes on"
        );
        assert_eq!(n.tip(), mined, "the stale block is not the tip");

        // The good client was served throughout, and still is.
        let (_, p) = good.new_tip().await;
        assert_eq!(p.display(), mined);
        let next = n.mine(1).remove(0);
        assert_eq!(good.new_tip().await.1.display(), next);
        assert_eq!(s.new_tip().await.1.display(), next);

        let status = n.status();
        assert_eq!(status["solutions"]["stale"], json!(1), "{status:#}");
        assert_eq!(status["solutions"]["submitted"], json!(0));
        let clients = status["clients"].as_array().expect("clients");
        assert_eq!(clients.len(), 2, "only the good ones are left: {status:#}");
        assert!(status["clients_refused"].as_u64().is_some_and(|r| r >= 7), "{status:#}");
        assert_eq!(good.in_status(&status)["vendor"], json!("blvm-test-client"));
    });
    assert_eq!(n.rpc.call("getblockcount", json!([])).expect("count"), json!(2));
    n.node.stop();
}

#[test]
fn without_network_access_the_module_cannot_listen_and_its_status_says_why() {
    let mut n = start("sv2-nonet", "", |m| {
        let without = m.replace("    \"network_access\",\n", "");
        assert_ne!(without, m, "the shipped manifest asks for network_access");
        without
    });
    n.node.wait_line("the module's listen error", |l| {
        l.contains("cannot listen on") && l.contains("network_access")
    });
    let status = n.status();
    assert_eq!(status["network_access"], json!(false), "{status:#}");
    assert_eq!(status["listening"], Value::Null);
    let why = status["listen_error"].as_str().expect("a reason");
    println!("listen_error without network_access: {why}");
    assert!(why.contains(&n.listen.to_string()), "{why}");
    assert!(why.contains("not granted `network_access`"), "{why}");
    assert!(
        std::net::TcpStream::connect(n.listen).is_err(),
        "nothing listens on {}",
        n.listen
    );
    n.node.stop();
}

#[test]
fn a_fee_paying_transaction_gives_a_roomy_client_a_new_template_but_not_a_client_without_room() {
    let rt = runtime();
    let mut n = start("sv2-fees", "template_interval_ms = 100\nfee_delta_sat = 1000", |m| m);
    n.wait_listening();
    let hashes = n.mine(101);
    let first = n.block(&hashes[0]);
    let authority = n.authority();
    rt.block_on(async {
        let mut roomy = Client::connect(n.listen, authority).await;
        roomy.setup().await;
        roomy.constraints(100, 4).await;
        let (t0, _) = roomy.new_tip().await;
        // Outputs of a million bytes: the whole block is the coinbase's.
        let mut full = Client::connect(n.listen, authority).await;
        full.setup().await;
        full.constraints(1_000_000, 0).await;
        let (f0, _) = full.new_tip().await;
        assert!(t0.merkle_path.is_empty() && f0.merkle_path.is_empty());
        let status = n.status();
        assert_eq!(full.in_status(&status)["reserved_weight"], json!(4 * (317 + 1_000_000)));
        assert_eq!(roomy.in_status(&status)["reserved_weight"], json!(2000));
        let full_updates = full.in_status(&status)["mempool_updates"].as_u64().expect("count");

        let spend = n.spend_of(&first, 10_000);
        n.send(&spend);
        let t1 = roomy.template().await;
        assert!(!t1.future, "a template on the same tip is not a future one");
        assert!(t1.template_id > t0.template_id);
        assert_eq!(t1.coinbase_tx_value_remaining, t0.coinbase_tx_value_remaining + 10_000);
        assert_eq!(t1.merkle_path, vec![spend.compute_txid().to_byte_array()]);
        roomy.request_transactions(t1.template_id).await;
        assert_eq!(
            roomy.recv().await,
            Msg::TxData {
                template_id: t1.template_id,
                transactions: vec![serialize(&spend)]
            }
        );

        // The other client's template would hold nothing more: once the
        // module has looked, its answer to a request is the next message.
        n.wait_status("the full client's mempool look", |s| {
            full.in_status(s)["mempool_updates"].as_u64() > Some(full_updates)
        });
        full.request_transactions(f0.template_id).await;
        assert_eq!(
            full.recv().await,
            Msg::TxData {
                template_id: f0.template_id,
                transactions: vec![]
            },
            "no new template before the answer"
        );
        let status = n.status();
        assert_eq!(full.in_status(&status)["templates_sent"], json!(1), "{status:#}");
        assert_eq!(roomy.in_status(&status)["templates_sent"], json!(2));
    });
    n.node.stop();
}

#[test]
fn a_hundred_blocks_reach_a_client_in_order_with_their_latency_and_the_metrics_show_the_modules_series() {
    let rt = runtime();
    let mut n = start("sv2-latency", "", |m| m);
    n.wait_listening();
    let authority = n.authority();
    let (client_latency, _client) = rt.block_on(async {
        let mut c = Client::connect(n.listen, authority).await;
        c.setup().await;
        c.constraints(100, 4).await;
        c.new_tip().await;
        let mut latency = Vec::new();
        for height in 1..=100u8 {
            let sent = Instant::now();
            let hash = n.mine(1).remove(0);
            let (t, p) = c.new_tip().await;
            latency.push(c.arrived - sent);
            assert_eq!(p.display(), hash, "block {height} in order");
            // BIP34: the next height, OP_1 .. OP_16, then one byte.
            let next = height + 1;
            let push = if next <= 16 {
                vec![0x50 + next]
            } else {
                vec![0x01, next]
            };
            assert_eq!(t.coinbase_prefix, push, "the template for height {next}");
        }
        // Still connected while the metrics are read.
        (latency, c)
    });
    let status = n.status();
    let module = &status["new_block_to_prev_hash"];
    assert_eq!(module["count"], json!(100), "{status:#}");
    let (p50, p99) = percentiles(&client_latency);
    println!(
        "NewBlock -> SetNewPrevHash over 100 regtest blocks: in the module (NewBlock received to the frame written) \
         p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; at the client (generatetoaddress sent to SetNewPrevHash read) \
         p50 {p50:.3} ms, p99 {p99:.3} ms",
        module["p50_ms"].as_f64().unwrap_or(f64::NAN),
        module["p99_ms"].as_f64().unwrap_or(f64::NAN),
        module["max_ms"].as_f64().unwrap_or(f64::NAN),
    );

    // The module's series on the node's /metrics (reported asynchronously).
    let deadline = Instant::now() + harness::DEADLINE;
    let body = loop {
        let body = n.metrics();
        if body.contains("module_stratum_v2_new_block_to_prev_hash_seconds_count 100") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the latency histogram never counted 100:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    for series in [
        "module_stratum_v2_new_block_to_prev_hash_seconds_bucket{le=\"0.001\"}",
        "module_stratum_v2_clients_connected 1",
        "module_stratum_v2_templates_sent_total 101",
    ] {
        assert!(body.contains(series), "{series} missing from:\n{body}");
    }
    n.node.stop();
}
