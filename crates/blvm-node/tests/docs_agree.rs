//! The docs' tables against the code, as the protocol's vector tests do
//! for the wire format: the status fields (what `getmodulestatus` of a
//! real module returns, and the `ModuleStatus` struct), the delivery
//! counters, the node's and the manager's event tables (names and
//! capabilities from the protocol crate), and the limits the pages state.
//! Every list comes from the code, so a field, an event or a limit added
//! there without its line in the docs fails here.

mod harness;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use blvm_module_host::api::events::{DEFAULT_QUEUE_CAPACITY, RETIRED_STATS_KEPT};
use blvm_module_host::ipc::{IpcServerConfig, MAX_HELLO_LEN};
use blvm_module_host::manager::ManagerConfig;
use blvm_module_host::registry::manifest::MAX_READ_ONLY_PATHS;
use blvm_module_protocol::events::EventType;
use blvm_module_protocol::methods::mining::SubmitBlockResult;
use blvm_node::cli::{ClientError, RpcClient};
use blvm_node::config::{NodeConfig, Settings};
use blvm_node::node::{register_methods, Node, NodeBackendImpl};
use blvm_node::rpc::{MethodTable, RpcAuth, RpcServer};
use serde_json::{json, Value};

fn doc(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(name))
        .unwrap_or_else(|e| panic!("docs/{name}: {e}"))
}

/// The text under the heading that starts with `heading` (`"## 9. "`), up
/// to the next heading of the same or a higher level.
fn section(text: &str, heading: &str) -> String {
    let start = text
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("no heading `{heading}`"));
    let level = heading.chars().take_while(|c| *c == '#').count();
    let body = &text[start + 1..];
    let end = body[heading.len()..]
        .match_indices("\n#")
        .find(|(i, _)| {
            let rest = &body[heading.len() + i + 1..];
            rest.chars().take_while(|c| *c == '#').count() <= level
        })
        .map_or(body.len(), |(i, _)| heading.len() + i);
    body[..end].to_owned()
}

/// The rows of the table whose header line starts with `header`, as
/// cells (a `\|` inside a cell is kept as `|`).
fn table(text: &str, header: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(header))
        .unwrap_or_else(|| panic!("no table `{header}`"));
    lines[at + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.replace("\\|", "\u{0}")
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().replace('\u{0}', "|"))
                .collect()
        })
        .collect()
}

/// The `backticked` names of a cell.
fn names(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Whitespace folded to single spaces, so a phrase can be found across
/// the line breaks of a paragraph.
fn folded(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[track_caller]
fn assert_same(what: &str, documented: BTreeSet<String>, code: BTreeSet<String>) {
    let missing: Vec<_> = code.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: the code has, the docs lack: {missing:?}; the docs list, the code lacks: {extra:?}"
    );
}

/// The recorder module's binary, built once.
fn recorder_bin() -> PathBuf {
    harness::bins().join("recorder-module")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_delivery_tables_list_exactly_what_the_node_returns_and_ended_spawns_keep_their_counters() {
    let dir = std::env::temp_dir().join(format!("blvm-node-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let folder = dir.join("modules/recorder");
    std::fs::create_dir_all(&folder).expect("module dir");
    std::fs::write(
        folder.join("module.toml"),
        "name = \"recorder\"\nversion = \"1.0.0\"\nentry_point = \"recorder\"\n\
         capabilities = [\"subscribe_events\", \"read_blockchain\"]\n",
    )
    .expect("manifest");
    std::fs::write(folder.join("config.toml"), "events = \"NewBlock\"\n").expect("config");
    std::fs::copy(recorder_bin(), folder.join("recorder")).expect("binary");
    let mut config = NodeConfig::resolve(Settings {
        datadir: Some(dir.join("data")),
        block_interval: Some(0),
        ..Settings::default()
    })
    .expect("config");
    config.modules_dir = dir.join("modules");
    let node = Node::open(config).expect("node");
    node.manager
        .start(
            dir.join("data/sockets/node.sock"),
            Arc::new(NodeBackendImpl::new(&node)),
        )
        .await
        .expect("manager");
    let report = node.manager.auto_load_modules().await.expect("modules");
    assert_eq!(report.loaded, vec!["recorder".to_string()], "{report:?}");
    let table_ = MethodTable::new();
    register_methods(&table_, &node);
    let auth = RpcAuth {
        user_pass: Some(("u".into(), "p".into())),
        cookie: None,
    };
    let rpc = RpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), auth, Arc::new(table_)).expect("rpc");
    let client = RpcClient::new(rpc.local_addr(), "u", "p");
    let call = |method: &'static str, params: Value| {
        let client = client.clone();
        tokio::task::spawn_blocking(move || client.call(method, params))
    };
    let status = call("getmodulestatus", json!(["recorder"]))
        .await
        .expect("thread")
        .expect("status");
    let guide = doc("operator-guide.md");

    // Operator guide 4.4: the RPC's status fields.
    let fields: BTreeSet<String> = status.as_object().expect("an object").keys().cloned().collect();
    let rows = table(&section(&guide, "### 4.4 "), "| status field |");
    assert_same(
        "operator guide 4.4, status fields",
        rows.iter().flat_map(|r| names(&r[0])).collect(),
        fields.clone(),
    );
    // Section 5: the example of `blvm-node module status` shows them all.
    let five = section(&guide, "## 5. ");
    let example_start =
        five.find("module status block-stats\n{").expect("the status example") + "module status block-stats\n".len();
    let example_len = five[example_start..].find("\n}\n").expect("its end") + 2;
    let example: Value = serde_json::from_str(&five[example_start..example_start + example_len]).expect("JSON");
    assert_same(
        "operator guide 5, the module status example",
        example.as_object().expect("object").keys().cloned().collect(),
        fields,
    );
    // Section 18: the delivery counters.
    let counters: BTreeSet<String> = status["delivery"]
        .as_object()
        .expect("delivery counters")
        .keys()
        .cloned()
        .collect();
    let rows = table(&section(&guide, "## 18. "), "| field | counts |");
    assert_same(
        "operator guide 18, delivery counters",
        rows.iter().flat_map(|r| names(&r[0])).collect(),
        counters,
    );
    // Section 17: the library's `ModuleStatus`, its fields read from its
    // `Debug` form (the top-level `name: value` pairs).
    let debug = format!("{:?}", node.manager.module_status("recorder").expect("status"));
    let rows = table(&section(&guide, "## 17. "), "| `ModuleStatus` field |");
    assert_same(
        "operator guide 17, ModuleStatus fields",
        rows.iter().flat_map(|r| names(&r[0])).collect(),
        top_level_fields(&debug),
    );

    // Sections 4.4 and 18: a replaced spawn's and an unloaded module's
    // counters stay readable.
    let first = status["module_id"].as_str().expect("id").to_owned();
    call("reloadmodule", json!(["recorder"]))
        .await
        .expect("thread")
        .expect("reloaded");
    let replaced = call("getmoduledeliverystats", json!([first.clone()]))
        .await
        .expect("thread")
        .expect("the replaced spawn's counters");
    assert_eq!(replaced["module_id"], json!(first));
    let second = node
        .manager
        .module_status("recorder")
        .and_then(|s| s.module_id)
        .expect("id");
    assert_ne!(second, first);
    call("unloadmodule", json!(["recorder"]))
        .await
        .expect("thread")
        .expect("unloaded");
    let unloaded = call("getmoduledeliverystats", json!([second.clone()]))
        .await
        .expect("thread")
        .expect("the unloaded spawn's counters");
    assert_eq!(unloaded["queue_capacity"], json!(DEFAULT_QUEUE_CAPACITY));
    let all = call("getmoduledeliverystats", json!([]))
        .await
        .expect("thread")
        .expect("all");
    let ids: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["module_id"].as_str())
        .collect();
    assert_eq!(ids, vec![first.as_str(), second.as_str()]);
    match call("getmoduledeliverystats", json!(["nobody-0"]))
        .await
        .expect("thread")
    {
        Err(ClientError::Rpc { code, .. }) => assert_eq!(code, -8),
        other => panic!("{other:?}"),
    }
    rpc.shutdown().await;
    node.manager.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The field names at the top level of a `Debug` struct form.
fn top_level_fields(debug: &str) -> BTreeSet<String> {
    let body = &debug[debug.find('{').expect("a struct") + 1..];
    let mut fields = BTreeSet::new();
    let (mut depth, mut in_str, mut token) = (0i32, false, String::new());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => in_str = !in_str,
            '\\' if in_str => {
                chars.next();
            }
            _ if in_str => {}
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            ':' if depth == 0 && chars.peek() == Some(&' ') => {
                fields.insert(token.trim().trim_start_matches(',').trim().to_owned());
                token.clear();
                continue;
            }
            ',' if depth == 0 => token.clear(),
            _ => {}
        }
        if depth == 0 && !in_str && c != ',' {
            token.push(c);
        }
    }
    fields
}

#[test]
fn event_tables_name_real_events_with_the_capabilities_the_protocol_requires() {
    let guide = doc("operator-guide.md");
    let capability = |ty: EventType| ty.required_permission().map(|p| p.as_str().to_owned());
    // Section 7: the node's events, with the capability of each.
    let rows = table(
        &section(&guide, "## 7. "),
        "| event | published when | from | capability |",
    );
    assert!(rows.len() > 10, "{rows:?}");
    for row in &rows {
        let events = names(&row[0]);
        let caps = names(&row[3]);
        for (i, name) in events.iter().enumerate() {
            let ty = EventType::from_name(name).unwrap_or_else(|| panic!("section 7 names no event `{name}`"));
            let documented = match caps.len() {
                0 => {
                    assert_eq!(row[3], "none", "{name}");
                    None
                }
                1 => Some(caps[0].clone()),
                _ => Some(caps[i].clone()),
            };
            assert_eq!(documented, capability(ty), "section 7, capability of `{name}`");
        }
    }
    // Section 23: the manager's, none needing more than subscribe_events.
    let lifecycle = section(&guide, "## 23. ");
    for row in table(&lifecycle, "| event | when |") {
        for name in names(&row[0]) {
            let ty = EventType::from_name(&name).unwrap_or_else(|| panic!("section 23 names no event `{name}`"));
            assert_eq!(capability(ty), None, "section 23 says `{name}` needs no capability");
        }
    }
    for name in ["ModuleStarted", "ModuleStopped", "ModuleReloaded"] {
        assert!(EventType::from_name(name).is_some(), "{name}");
        assert!(lifecycle.contains(&format!("`{name}`")), "section 23 mentions {name}");
    }
}

#[test]
fn the_limits_the_pages_state_are_the_ones_the_code_applies() {
    let protocol = doc("ipc-protocol.md");
    let guide = doc("operator-guide.md");
    // The limit before the handshake: protocol 3 and 6, security 2.6.
    assert_eq!(MAX_HELLO_LEN, 64 * 1024);
    let hello = format!("64 KiB ({MAX_HELLO_LEN} bytes");
    for heading in ["## 3. ", "## 6. "] {
        assert!(
            folded(&section(&protocol, heading)).contains(&hello),
            "ipc-protocol.md `{heading}` states `{hello}…`"
        );
    }
    assert!(folded(&doc("security.md")).contains("Before authentication the limit is 64 KiB"));
    // The handshake deadline.
    let handshake = IpcServerConfig::default().handshake_timeout.as_secs();
    assert!(folded(&section(&protocol, "### 6.1 ")).contains(&format!("({handshake} seconds by default")));
    // NodeShutdown.timeout_ms is the modules' grace period (operator guide 9).
    let manager = ManagerConfig::new("m", "d", "s");
    let grace = manager.shutdown_grace.as_millis();
    assert!(
        folded(&section(&guide, "## 9. "))
            .contains(&format!("`timeout_ms` = {grace}: the grace period each module gets")),
        "operator guide 9 gives NodeShutdown.timeout_ms as {grace}"
    );
    // Event queues (protocol 10.4) and the ended spawns' counters kept
    // (operator guide 18).
    assert_eq!(manager.event_queue_capacity, DEFAULT_QUEUE_CAPACITY);
    assert!(folded(&section(&protocol, "### 10.4 ")).contains(&format!("{DEFAULT_QUEUE_CAPACITY} by default")));
    assert!(folded(&section(&guide, "## 18. ")).contains(&format!("the last {RETIRED_STATS_KEPT} of them")));
    assert!(folded(&section(&guide, "### 4.4 ")).contains(&format!("the last {RETIRED_STATS_KEPT} that ended")));
    // Every `submit_block` status (protocol 8.2).
    let rows = table(&section(&protocol, "### 8.2 "), "| method |");
    let submit = rows
        .iter()
        .find(|r| r[0] == "`submit_block`")
        .expect("a submit_block row");
    for status in SubmitBlockResult::STATUSES {
        assert!(
            submit[2].contains(&format!("`{status}`")),
            "8.2 lacks status `{status}`"
        );
    }
    // Timers: the cap and the fire deadline (protocol 8.8, operator guide 27).
    let timers = &manager.timers;
    let eight_eight = folded(&section(&protocol, "### 8.8 "));
    assert!(eight_eight.contains(&format!("({} by default", timers.max_timers)));
    assert!(eight_eight.contains(&format!("({} s by default", timers.fire_timeout.as_secs())));
    let twenty_seven = folded(&section(&guide, "## 27. "));
    assert!(twenty_seven.contains(&format!("{} by default, `[modules] max_timers`", timers.max_timers)));
    assert!(twenty_seven.contains(&format!(
        "{} ms by default, `[modules] timer_fire_timeout_ms`",
        timers.fire_timeout.as_millis()
    )));
    // A manifest's read-only paths (author guide 11.3).
    assert!(folded(&doc("module-author-guide.md")).contains(&format!("up to {MAX_READ_ONLY_PATHS} absolute paths")));
    // Modules' JSON-RPC methods: the default deadline and cap (operator
    // guide 4.5, protocol 8.6).
    let rpc = &manager.rpc_endpoints;
    let (timeout, cap) = (rpc.timeout.as_millis(), rpc.max_endpoints);
    let four_five = folded(&section(&guide, "### 4.5 "));
    assert!(
        four_five.contains(&format!(
            "`rpc_timeout_ms` for the module's answer ({timeout} by default"
        )),
        "operator guide 4.5 gives the deadline as {timeout} ms"
    );
    assert!(
        four_five.contains(&format!("({cap} by default")),
        "operator guide 4.5 gives the cap as {cap}"
    );
    let eight_seven = folded(&section(&protocol, "### 8.7 "));
    assert!(eight_seven.contains(&format!("(the operator's, {timeout} by default)")));
    assert!(eight_seven.contains(&format!("(the operator's cap, {cap} by default)")));
}
