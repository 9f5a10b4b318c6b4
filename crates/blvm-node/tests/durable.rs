//! Durable chain events with the real `blvm-node` and a real module
//! process (`durable-module`): a block received but not acknowledged comes
//! again after the module crashes; after the node is killed with SIGKILL
//! and started again every module resumes at its cursor with no gap; a
//! reorg that happens while the module is unloaded reaches it, when it is
//! loaded again, as disconnects back to the fork and then the new blocks.

mod harness;

use std::path::Path;

use blvm_node::cli::RpcClient;
use harness::{bins, mine_to, temp_dir, NodeProcess, OP_TRUE_ADDRESS};
use serde_json::{json, Value};

/// Installs `durable-module` as `name` in `<dir>/modules`.
fn install(dir: &Path, name: &str) {
    install_with(
        dir,
        name,
        "\"subscribe_events\", \"read_blockchain\", \"read_filesystem\", \"write_filesystem\"",
    );
}

/// Installs `durable-module` as `name` requesting `capabilities` (TOML
/// list items).
fn install_with(dir: &Path, name: &str, capabilities: &str) {
    let module = dir.join("modules").join(name);
    std::fs::create_dir_all(&module).expect("module dir");
    std::fs::write(
        module.join("module.toml"),
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [{capabilities}]\n"),
    )
    .expect("manifest");
    std::fs::copy(bins().join("durable-module"), module.join(name)).expect("binary");
}

fn rpc(node: &mut NodeProcess, dir: &Path) -> RpcClient {
    let addr = node.rpc_addr();
    RpcClient::from_cookie(addr, &dir.join(".cookie")).expect("cookie")
}

fn mine(rpc: &RpcClient, n: u32) -> Vec<String> {
    mine_to(rpc, n, OP_TRUE_ADDRESS)
}

fn hash_at(rpc: &RpcClient, height: u64) -> String {
    match rpc.call("getblockhash", json!([height])).expect("getblockhash") {
        Value::String(h) => h,
        other => panic!("getblockhash answered {other}"),
    }
}

/// One `durable <dseq> <event> <height> <hash>` line of a module.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    seq: u64,
    event: String,
    height: u64,
    hash: String,
}

/// What module `name` said it received, in order.
fn received(node: &NodeProcess, name: &str) -> Vec<Received> {
    node.module_said(name, "durable ")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Received {
                seq: f[1].parse().expect("seq"),
                event: f[2].to_owned(),
                height: f[3].parse().expect("height"),
                hash: f[4].to_owned(),
            }
        })
        .collect()
}

/// Waits until module `name` acknowledged the `NewBlock` of `height`.
fn wait_acked(node: &mut NodeProcess, name: &str, height: u64) {
    let fields = format!(" module=\"{name}\" stream=\"stdout\"");
    let needle = format!(" NewBlock {height} ");
    let line = node.wait_line(&format!("{name} receiving NewBlock {height}"), |l| {
        l.contains(&needle) && l.ends_with(&fields)
    });
    let seq = line
        .split("durable ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("dseq")
        .to_owned();
    let acked = format!("acked {seq}{fields}");
    node.wait_line(&format!("{name} acknowledging {seq}"), |l| l.ends_with(&acked));
}

fn new_blocks(r: &[Received]) -> Vec<u64> {
    r.iter().filter(|e| e.event == "NewBlock").map(|e| e.height).collect()
}

#[test]
fn a_module_killed_between_receiving_and_acknowledging_a_block_receives_it_again() {
    let dir = temp_dir("durable-crash");
    install(&dir, "indexer");
    let conf = "block_interval = 0\n[supervision]\nrestart_backoff_ms = 50\n\
                [modules.indexer]\ncrash_before_ack_at = \"3\"\n[sandbox]\ndisk_mb = 8\n";
    let mut node = NodeProcess::start(&dir, conf);
    let rpc = rpc(&mut node, &dir);
    node.wait_line("indexer subscribing", |l| l.contains("subscribed 0 0"));
    let hashes = mine(&rpc, 5);
    wait_acked(&mut node, "indexer", 5);
    let seen = received(&node, "indexer");
    assert_eq!(new_blocks(&seen), [1, 2, 3, 3, 4, 5], "{seen:?}");
    // The block it crashed on came again: the same block at the same place
    // after the cursor, so the same number.
    let threes: Vec<&Received> = seen.iter().filter(|e| e.height == 3).collect();
    assert_eq!(threes[0].hash, hashes[2]);
    assert_eq!(threes[1].hash, hashes[2]);
    assert_eq!(threes[1].seq, threes[0].seq);
    // The second spawn resumed at the cursor the first one left: after 2.
    assert!(
        node.module_said("indexer", "subscribed ")
            .contains(&"subscribed 2 2".to_owned()),
        "{:?}",
        node.module_said("indexer", "subscribed ")
    );
    node.stop();
}

#[test]
fn after_the_node_is_killed_and_restarted_every_module_resumes_at_its_cursor_with_no_gap() {
    let dir = temp_dir("durable-kill");
    install(&dir, "live");
    install(&dir, "backfill");
    let conf = "block_interval = 0\n[modules.backfill]\nevents = \"NewBlock\"\nstart_height = \"0\"\n\
                [sandbox]\ndisk_mb = 8\n";
    let mut node = NodeProcess::start(&dir, conf);
    let rpc = rpc(&mut node, &dir);
    node.wait_line("live subscribing", |l| {
        l.contains("subscribed 0 0") && l.contains("\"live\"")
    });
    let mut hashes = mine(&rpc, 6);
    wait_acked(&mut node, "live", 6);
    wait_acked(&mut node, "backfill", 6);
    let live_before = received(&node, "live");
    let backfill_before = received(&node, "backfill");
    node.kill();

    let mut node = NodeProcess::start(&dir, conf);
    let rpc = RpcClient::from_cookie(node.rpc_addr(), &dir.join(".cookie")).expect("cookie");
    hashes.extend(mine(&rpc, 4));
    wait_acked(&mut node, "live", 10);
    wait_acked(&mut node, "backfill", 10);
    for (name, before, first) in [("live", live_before, 1), ("backfill", backfill_before, 0)] {
        let after = received(&node, name);
        assert_eq!(
            node.module_said(name, "subscribed "),
            [format!("subscribed {} 6", before.last().expect("received").seq)],
            "{name} resumes at its cursor"
        );
        let mut heights = new_blocks(&before);
        heights.extend(new_blocks(&after));
        assert_eq!(
            heights,
            (first..=10).collect::<Vec<u64>>(),
            "{name}: every block once, in order"
        );
        // Numbers go on across the node's restart.
        assert_eq!(after[0].seq, before.last().expect("received").seq + 1, "{name}");
        for e in before.iter().chain(&after).filter(|e| e.height >= 1) {
            assert_eq!(e.hash, hashes[e.height as usize - 1], "{name} at {}", e.height);
        }
        // Caught up: its status says so.
        let status = rpc.call("getmodulestatus", json!([name])).expect("status");
        let durable = &status["durable"];
        assert_eq!(durable["cursor"]["height"], 10, "{name}: {durable}");
        assert_eq!(durable["cursor"]["hash"], hashes[9].as_str(), "{name}: {durable}");
        assert_eq!(durable["lag_blocks"], 0, "{name}: {durable}");
        assert_eq!(durable["unacked"], 0, "{name}: {durable}");
    }
    node.stop();
}

#[test]
fn a_reorg_while_the_module_is_unloaded_reaches_it_as_disconnects_to_the_fork_then_the_new_blocks() {
    let dir = temp_dir("durable-reorg");
    install(&dir, "follower");
    let conf = "block_interval = 0\n[sandbox]\ndisk_mb = 8\n";
    let mut node = NodeProcess::start(&dir, conf);
    let rpc = rpc(&mut node, &dir);
    node.wait_line("follower subscribing", |l| l.contains("subscribed 0 0"));
    let old = mine(&rpc, 6);
    wait_acked(&mut node, "follower", 6);
    let before = received(&node, "follower").len();
    rpc.call("unloadmodule", json!(["follower"])).expect("unloaded");

    // Heights 4..6 replaced by a longer branch of 4 blocks.
    rpc.call("invalidateblock", json!([old[3]])).expect("invalidated");
    // To another address (P2WSH of OP_2; OP_TRUE_ADDRESS is OP_TRUE's): the same
    // template again would be the same, invalid, block.
    let other = bitcoin::Address::p2wsh(&bitcoin::ScriptBuf::from(vec![0x52]), bitcoin::Network::Regtest);
    let new = mine_to(&rpc, 4, &other.to_string());
    assert_eq!(hash_at(&rpc, 7), new[3]);
    rpc.call("loadmodule", json!(["follower"])).expect("loaded");
    wait_acked(&mut node, "follower", 7);
    let after: Vec<Received> = received(&node, "follower").split_off(before);
    let got: Vec<(String, u64, String)> = after
        .iter()
        .map(|e| (e.event.clone(), e.height, e.hash.clone()))
        .collect();
    let mut want = vec![("ChainReorg(fork=3,-3,+4)".to_owned(), 7, new[3].clone())];
    for h in [6u64, 5, 4] {
        want.push(("BlockDisconnected".into(), h, old[h as usize - 1].clone()));
    }
    for h in 4u64..=7 {
        want.push(("NewBlock".into(), h, new[h as usize - 4].clone()));
    }
    assert_eq!(got, want);
    node.stop();
}

#[test]
fn bad_durable_requests_get_clear_errors_and_leave_the_module_and_the_others_running() {
    let dir = temp_dir("durable-bad");
    install(&dir, "mempoolish");
    install_with(&dir, "blind", "\"subscribe_events\"");
    install(&dir, "good");
    let conf = "block_interval = 0\n[modules.mempoolish]\nevents = \"NewTransaction\"\n[sandbox]\ndisk_mb = 8\n";
    let mut node = NodeProcess::start(&dir, conf);
    let rpc = rpc(&mut node, &dir);
    for name in ["mempoolish", "blind"] {
        let fields = format!(" module=\"{name}\" stream=\"stdout\"");
        node.wait_line(&format!("{name}'s ack refused"), |l| {
            l.contains("ack refused") && l.ends_with(&fields)
        });
    }
    let refused = node.module_said("mempoolish", "refused ");
    assert!(
        refused[0].contains("invalid_params")
            && refused[0].contains("NewTransaction")
            && refused[0].contains("durably"),
        "{refused:?}"
    );
    let refused = node.module_said("blind", "refused ");
    assert!(
        refused[0].contains("permission_denied") && refused[0].contains("read_blockchain"),
        "{refused:?}"
    );
    for name in ["mempoolish", "blind"] {
        let ack = node.module_said(name, "ack refused ");
        assert!(
            ack[0].contains("invalid_params") && ack[0].contains("without a durable subscription"),
            "{ack:?}"
        );
    }
    // The refused keep their connections; the good one is served.
    mine(&rpc, 1);
    wait_acked(&mut node, "good", 1);
    for name in ["mempoolish", "blind", "good"] {
        let status = rpc.call("getmodulestatus", json!([name])).expect("status");
        assert_eq!(status["state"], "running", "{name}: {status}");
    }
    node.stop();
}
