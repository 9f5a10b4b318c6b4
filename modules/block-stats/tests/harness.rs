//! block-stats under the module test harness: a real mainnet block
//! connected, its statistics as block-stats records them (asked of the
//! node, served as JSON-RPC), a reorg that drops and re-adds them, and
//! every frame it sent checked at the end.

use bitcoin::consensus::deserialize;
use bitcoin::Block;
use blvm_module_testkit::ModuleTest;
use blvm_sdk::protocol::methods::chain::ByHash;
use serde_json::{json, Value};

fn harness() -> blvm_module_testkit::ModuleTestBuilder {
    ModuleTest::builder(
        env!("CARGO_BIN_EXE_block-stats"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/module.toml"),
    )
}

/// The summary of one block as block-stats must report it, from the
/// block's own bytes.
fn expected(height: u64, raw: &[u8]) -> Value {
    let block: Block = deserialize(raw).expect("a real block parses");
    let outputs: u64 = block
        .txdata
        .iter()
        .flat_map(|tx| &tx.output)
        .map(|o| o.value.to_sat())
        .sum();
    json!({
        "blocks": 1,
        "txs": block.txdata.len(),
        "bytes": raw.len(),
        "weight": block.weight().to_wu(),
        "outputs_sat": outputs,
        "first_height": height,
        "last_height": height,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_block_is_fetched_recorded_and_served_and_a_reorg_drops_and_re_adds_it() {
    // Block 170 holds the first transaction from one person to another.
    let test = harness().tip(169).start().await.expect("block-stats loads");
    test.wait_for_request(|r| r.method == "subscribe_events").await;
    test.wait_for_log(|l| l.message.contains("following the chain")).await;

    let block = test.connect_block();
    assert_eq!(block.height, 170);
    // It asks the node for the block it was told of…
    let asked = test
        .wait_for_request(|r| r.method == "get_block" && r.params::<ByHash>().is_ok_and(|p| p.hash == block.block_hash))
        .await;
    assert_eq!(asked.error, None);
    // …and logs what it found in it.
    let raw = test.chain().block_bytes(170);
    let want = expected(170, &raw);
    let line = test
        .wait_for_log(|l| l.message.starts_with(&format!("block 170 {}", block.block_hash)))
        .await;
    assert!(
        line.message.contains(&format!("{} txs", want["txs"])),
        "{}",
        line.message
    );
    let endpoint = test.rpc_endpoint("blockstats_summary").await;
    assert!(
        endpoint.help.starts_with("blockstats_summary ( last )\n\n"),
        "{}",
        endpoint.help
    );
    assert_eq!(test.rpc("blockstats_summary", json!([])).await.expect("served"), want);

    // A reorg of one block: the block's statistics are dropped with it and
    // recorded again when the new branch connects it.
    let reorg = test.reorg(1).await;
    assert_eq!((reorg.fork_height, reorg.new_height), (169, 170));
    test.wait_for_log(|l| l.message.contains("block 170") && l.message.contains("disconnected"))
        .await;
    let is_this_block = |r: &blvm_module_testkit::SentRequest| {
        r.method == "get_block" && r.params::<ByHash>().is_ok_and(|p| p.hash == block.block_hash)
    };
    test.wait_for_requests(2, is_this_block).await;
    // It publishes its summary after recording a block (not after
    // dropping one): the second publication comes once the block is back.
    test.wait_for_requests(2, |r| r.method == "publish_event").await;
    assert_eq!(test.rpc("blockstats_summary", json!([])).await.expect("served"), want);

    // A bad call is the module's own JSON-RPC error, not a crash.
    let err = test.rpc("blockstats_summary", json!(["x"])).await.expect_err("refused");
    assert!(err.to_string().contains("last must be"), "{err}");
    test.finish().await;
}
