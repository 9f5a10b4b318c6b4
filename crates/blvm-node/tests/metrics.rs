//! The real `blvm-node` binary's Prometheus exposition: `--metrics-bind`
//! (here its config key) serves the node's own metrics, its metrics about
//! each module and a real module's reported series on `GET /metrics`, and
//! Prometheus' own `promtool check metrics` accepts the text.

mod harness;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use blvm_node::cli::RpcClient;
use harness::{bins, mine_to, temp_dir, NodeProcess, OP_TRUE_ADDRESS};
use serde_json::json;

/// What `.ci/run` installs promtool with.
const INSTALL: &str = "command -v promtool || (apt-get update && apt-get install -y prometheus)";

/// `GET path` over HTTP/1.0; the status line, the headers and the body.
fn http_get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connects to the metrics address");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_lowercase(), body.to_owned())
}

/// `promtool check metrics` on `text`: `None` when promtool is missing
/// outside CI (the test is then skipped); fails in CI without it.
fn promtool_check(text: &str) -> Option<(bool, String)> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping the promtool check: cannot run promtool ({e}); install it with `{INSTALL}`");
            return None;
        }
        Err(e) => panic!("cannot run promtool ({e}): run .ci/run's install step, `{INSTALL}`"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("text written to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

/// Whether the exposition `body` has the sample line `line` (a value
/// written as `2` or `2.0`).
fn has_sample(body: &str, line: &str) -> bool {
    body.lines().any(|l| l == line || l == format!("{line}.0"))
}

#[test]
fn the_nodes_metrics_endpoint_serves_its_own_and_a_modules_series_and_promtool_accepts_it() {
    let dir = temp_dir("metrics");
    let datadir = dir.join("data");
    let module = datadir.join("modules").join("gauges");
    std::fs::create_dir_all(&module).expect("module dir");
    std::fs::write(
        module.join("module.toml"),
        "name = \"gauges\"\nversion = \"1.0.0\"\nentry_point = \"gauges\"\ncapabilities = [\"report_metrics\"]\n",
    )
    .expect("manifest");
    // Names and label values a Prometheus parser would choke on unless the
    // node sanitizes and escapes them.
    std::fs::write(
        module.join("config.toml"),
        "report = \"counter blocks_seen 3 kind=full;gauge Queue.Depth 7 path=a\\\"b\\\\c;histogram fetch_seconds 0.2,3\"\n",
    )
    .expect("config");
    std::fs::copy(bins().join("metrics-module"), module.join("gauges")).expect("binary");
    let mut node = NodeProcess::start(&datadir, "metrics_bind = \"127.0.0.1:0\"\n[sandbox]\ndisk_mb = 8\n");
    let addr = node.metrics_addr();
    let reported = node.wait_line("`reported`", |l| l.contains("reported "));
    assert!(reported.contains("reported OK 3 1000"), "{reported}");
    let rpc = node.rpc_addr();
    let client = RpcClient::from_cookie(rpc, &datadir.join(".cookie")).expect("cookie");
    assert_eq!(
        client.call("getblockcount", json!([])).expect("getblockcount"),
        json!(0)
    );

    let (status, headers, body) = http_get(addr, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    assert!(headers.contains("content-type: text/plain; version=0.0.4"), "{headers}");
    for line in [
        "blvm_chain_height 0",
        "blvm_chain_headers 0",
        "blvm_mempool_transactions 0",
        "blvm_mempool_vsize_bytes 0",
        "blvm_rpc_calls_total{method=\"getblockcount\"} 1",
        "blvm_module_up{module=\"gauges\"} 1",
        "blvm_module_restarts_total{module=\"gauges\"} 0",
        "module_gauges_blocks_seen_total{kind=\"full\"} 3",
        "module_gauges_queue_depth{path=\"a\\\"b\\\\c\"} 7",
        "module_gauges_fetch_seconds_count 2",
    ] {
        assert!(has_sample(&body, line), "no `{line}` in:\n{body}");
    }
    for prefix in [
        "blvm_module_resident_memory_bytes{module=\"gauges\"} ",
        "blvm_module_cpu_seconds_total{module=\"gauges\"} ",
        "blvm_module_requests_total{module=\"gauges\"} ",
        "blvm_module_rate_limited_requests_total{module=\"gauges\"} ",
        "blvm_module_events_delivered_total{module=\"gauges\"} ",
        "blvm_module_events_dropped_total{module=\"gauges\",reason=\"queue_full\"} ",
    ] {
        assert!(
            body.lines().any(|l| l.starts_with(prefix)),
            "no `{prefix}…` in:\n{body}"
        );
    }
    let (status, _, _) = http_get(addr, "/");
    assert!(status.contains(" 404 "), "{status}");

    if let Some((accepted, said)) = promtool_check(&body) {
        assert!(
            accepted,
            "promtool check metrics refused the exposition: {said}\n{body}"
        );
    }
    node.stop();
}

#[test]
fn a_module_that_stops_acknowledging_durable_events_shows_its_lag_and_unacknowledged_count() {
    let dir = temp_dir("metrics-durable");
    let module = dir.join("modules").join("indexer");
    std::fs::create_dir_all(&module).expect("module dir");
    std::fs::write(
        module.join("module.toml"),
        "name = \"indexer\"\nversion = \"1.0.0\"\nentry_point = \"indexer\"\n\
         capabilities = [\"subscribe_events\", \"read_blockchain\"]\n",
    )
    .expect("manifest");
    std::fs::copy(bins().join("durable-module"), module.join("indexer")).expect("binary");
    let conf = "block_interval = 0\nmetrics_bind = \"127.0.0.1:0\"\n\
                [modules.indexer]\nhold_acks_after = \"1\"\n[sandbox]\ndisk_mb = 8\n";
    let mut node = NodeProcess::start(&dir, conf);
    let addr = node.metrics_addr();
    node.wait_line("indexer subscribing", |l| l.contains("subscribed 0 "));
    let rpc = node.rpc_addr();
    let rpc = RpcClient::from_cookie(rpc, &dir.join(".cookie")).expect("cookie");
    let lag = "blvm_module_durable_lag_blocks{module=\"indexer\"}";
    let unacked = "blvm_module_durable_unacked{module=\"indexer\"}";

    // Block 1 acknowledged: caught up.
    mine_to(&rpc, 1, OP_TRUE_ADDRESS);
    node.wait_line("indexer acknowledging block 1", |l| l.contains("acked 1 "));
    let (_, _, body) = http_get(addr, "/metrics");
    assert!(has_sample(&body, &format!("{lag} 0")), "{body}");
    assert!(has_sample(&body, &format!("{unacked} 0")), "{body}");

    // Blocks 2 and 3 received and held: two behind, two outstanding.
    mine_to(&rpc, 2, OP_TRUE_ADDRESS);
    let third = node.wait_line("indexer receiving block 3", |l| l.contains(" NewBlock 3 "));
    let seq = third
        .split("durable ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("the event's durable seq")
        .to_owned();
    node.wait_line("indexer holding block 3", |l| l.contains(&format!("held {seq} ")));
    let (_, _, body) = http_get(addr, "/metrics");
    assert!(has_sample(&body, &format!("{lag} 2")), "{body}");
    assert!(has_sample(&body, &format!("{unacked} 2")), "{body}");
    if let Some((accepted, said)) = promtool_check(&body) {
        assert!(
            accepted,
            "promtool check metrics refused the exposition: {said}\n{body}"
        );
    }
    node.stop();
}
