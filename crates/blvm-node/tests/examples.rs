//! The example modules of `modules/` on the real `blvm-node` binary, as
//! the main command runs them, using the module services: `block-stats`
//! keeps its table in module storage (it survives a node restart), serves
//! it as the JSON-RPC method `blockstats_summary` (with help), exports
//! metrics, logs a summary from a timer and publishes
//! `block-stats.summary`; `fee-watcher` receives that event and calls
//! `block-stats`' API method `summary`.

mod harness;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use blvm_node::cli::RpcClient;
use harness::{bins, temp_dir, NodeProcess};
use serde_json::json;

/// A regtest address to mine to (P2WSH of a 32-byte script hash).
const PAYEE: &str = "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85";

/// Installs example module `name` from `modules/<name>` (its manifest as
/// shipped) with `config` as its `config.toml`.
fn install_example(modules: &Path, name: &str, config: &str) {
    let dir = modules.join(name);
    std::fs::create_dir_all(&dir).expect("module dir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules").join(name);
    std::fs::copy(shipped.join("module.toml"), dir.join("module.toml")).expect("manifest");
    std::fs::write(dir.join("config.toml"), config).expect("config");
    std::fs::copy(bins().join(name), dir.join(name)).expect("binary");
}

/// `GET /metrics` over HTTP/1.0: the body.
fn metrics(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connects to the metrics address");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

const CONF: &str = "metrics_bind = \"127.0.0.1:0\"\n[sandbox]\ndisk_mb = 8\n";

#[test]
fn the_example_modules_keep_serve_export_and_share_block_statistics_across_a_node_restart() {
    let dir = temp_dir("examples");
    let datadir = dir.join("data");
    let modules = datadir.join("modules");
    install_example(&modules, "block-stats", "summary_every_ms = \"200\"\n");
    install_example(&modules, "fee-watcher", "");
    let mut node = NodeProcess::start(&datadir, CONF);
    let addr = node.metrics_addr();
    node.wait_line("`serving blockstats_summary`", |l| {
        l.contains("serving blockstats_summary") && l.contains("0 blocks kept")
    });
    node.wait_line("fee-watcher watching", |l| l.contains("block-stats' summaries"));
    let client = RpcClient::from_cookie(node.rpc_addr(), &datadir.join(".cookie")).expect("cookie");
    let mined = client.call("generatetoaddress", json!([3, PAYEE])).expect("mined");
    assert_eq!(mined.as_array().map(Vec::len), Some(3));
    node.wait_line("block-stats recording block 3", |l| {
        l.contains("block 3 ") && l.contains("txs") && l.contains("block-stats")
    });

    // The JSON-RPC method, with its help, as a client calls Core's.
    let summary = client.call("blockstats_summary", json!([])).expect("summary");
    assert_eq!(
        (
            summary["blocks"].clone(),
            summary["first_height"].clone(),
            summary["last_height"].clone()
        ),
        (json!(3), json!(1), json!(3)),
        "{summary}"
    );
    assert_eq!(
        client.call("blockstats_summary", json!([2])).expect("last 2")["blocks"],
        json!(2)
    );
    let help = client.call("help", json!(["blockstats_summary"])).expect("help");
    assert!(
        help.as_str()
            .is_some_and(|h| h.starts_with("blockstats_summary ( last )")),
        "{help}"
    );
    let listed = client.call("help", json!([])).expect("help");
    assert!(
        listed.as_str().is_some_and(|h| h.contains("blockstats_summary")),
        "{listed}"
    );

    // The other module heard the published event and called the API.
    node.wait_line("fee-watcher's comparison", |l| {
        l.contains("block-stats says: 3 blocks up to height Some(3)")
    });
    node.wait_line("block-stats' API call", |l| {
        l.contains("module `fee-watcher` asked for the summary")
    });
    // The timer's summary.
    node.wait_line("the timer's summary", |l| l.contains("summary: 3 blocks"));
    // Metrics.
    let body = metrics(addr);
    for line in [
        "module_block_stats_blocks_seen_total 3",
        "module_block_stats_table_blocks 3",
        "module_block_stats_last_block_txs 1",
    ] {
        assert!(
            body.lines().any(|l| l == line || l == format!("{line}.0")),
            "no `{line}` in:\n{body}"
        );
    }
    node.stop();

    // A new node process on the same data dir: the table is back from
    // storage before any block arrives.
    let mut node = NodeProcess::start(&datadir, CONF);
    node.wait_line("`3 blocks kept from before`", |l| {
        l.contains("3 blocks kept from before")
    });
    let client = RpcClient::from_cookie(node.rpc_addr(), &datadir.join(".cookie")).expect("cookie");
    let summary = client.call("blockstats_summary", json!({"last": 10})).expect("summary");
    assert_eq!(summary["blocks"], json!(3), "{summary}");
    node.stop();
}
