//! fee-watcher under the module test harness: a real transaction entering
//! the mempool (block 170's, the first payment between two people,
//! submitted over the chain up to 169), its fee and the mempool as
//! fee-watcher reports them, and a block-stats summary it follows up with
//! a call that, with no block-stats loaded, fails and is logged.

use blvm_module_testkit::{MemoryChain, ModuleTest};
use blvm_sdk::protocol::methods::modules::CallModule;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_entering_the_mempool_is_reported_with_its_fee_and_the_mempool_totals() {
    let test = ModuleTest::builder(
        env!("CARGO_BIN_EXE_fee-watcher"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/module.toml"),
    )
    .tip(169)
    .start()
    .await
    .expect("fee-watcher loads");
    test.wait_for_log(|l| l.message.contains("watching the mempool")).await;

    let txid = MemoryChain::mainnet_up_to(170).non_coinbase_txids()[0];
    let raw = MemoryChain::raw_tx(&txid).expect("block 170's transaction");
    let added = test
        .submit_transaction(&raw)
        .expect("a valid spend over the chain up to 169");
    test.wait_for_log(|l| {
        l.message
            .starts_with(&format!("mempool + {txid} ({:.2} sat/vB)", added.fee_rate))
    })
    .await;
    // It asks the node for the totals and logs them once its estimates
    // are new (the first time).
    test.wait_for_request(|r| r.method == "get_mempool_size").await;
    let totals = test.wait_for_log(|l| l.message.starts_with("mempool: 1 txs")).await;
    assert!(
        totals
            .message
            .contains(&format!("{} vB, {} sat in fees", added.vsize, added.fee_sats)),
        "{}",
        totals.message
    );
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_stats_summary_is_followed_by_a_call_to_block_stats_whose_failure_is_logged() {
    let test = ModuleTest::builder(
        env!("CARGO_BIN_EXE_fee-watcher"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/module.toml"),
    )
    .start()
    .await
    .expect("fee-watcher loads");
    test.wait_for_log(|l| l.message.contains("watching the mempool")).await;
    // An empty map: fee-watcher reads nothing of the event but its origin.
    test.publish_from("block-stats", "block-stats.summary", vec![0x80]);
    let call = test.wait_for_request(|r| r.method == "call_module").await;
    let call: CallModule = call.params().expect("call_module params");
    assert_eq!((call.module.as_str(), call.method.as_str()), ("block-stats", "summary"));
    test.wait_for_log(|l| l.message.starts_with("cannot ask block-stats:"))
        .await;
    test.finish().await;
}
