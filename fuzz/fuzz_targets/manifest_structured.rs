//! Structure-aware manifests: the parser's own raw shape (`RawManifest`)
//! filled in from the fuzz bytes (`blvm_fuzz::arb`, strings mostly from a
//! dictionary of real names, versions, ranges, capabilities, events, keys
//! and thresholds) and rendered as TOML, so that inputs get past the TOML
//! and type checks to validation. Property (`blvm_fuzz::manifest::check`):
//! a manifest that parses has one signing digest, and its canonical
//! encoding re-parses to the same manifest with the same digest.
#![no_main]

use std::sync::OnceLock;

use blvm_fuzz::arb::{to_toml, Source};
use blvm_module_host::registry::RawManifest;
use blvm_module_protocol::{EventType, Permission};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "02a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const KEY2: &str = "03a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f91";
const SIG: &str = "3044022001020304050607080910111213141516171819202122232425262728293031320220010203040506070809101112131415161718192021222324252627282930313233";

fn names(list: impl Iterator<Item = &'static str>, extra: &[&'static str]) -> &'static [&'static str] {
    Box::leak(list.chain(extra.iter().copied()).collect::<Vec<_>>().into_boxed_slice())
}

/// Strings to prefer, by the field they go into.
fn dict(field: &str, key: bool) -> &'static [&'static str] {
    static CAPABILITIES: OnceLock<&'static [&'static str]> = OnceLock::new();
    static EVENTS: OnceLock<&'static [&'static str]> = OnceLock::new();
    const MAINTAINERS: &[&str] = &["alice", "bob", "carol", " ", ""];
    const VERSIONS: &[&str] = &["0.1.0", "1.0.0", "1.2.3-rc.1", "2.0.0+build.5", "1.2", "v1"];
    match (field, key) {
        ("name", _) => &[
            "block-stats",
            "fee-watcher",
            "a",
            "x_y-1",
            "blvm-node",
            "Block",
            "alice",
            "bob",
        ],
        ("version" | "min_consensus_version" | "min_protocol_version" | "min_node_version" | "tested_with", _) => {
            VERSIONS
        }
        ("description" | "author" | "tier", _) => &["blvm developers", "core", "community", "", " "],
        ("entry_point", _) => &["block-stats", "run.sh", "..", "a/b", "/bin/sh", "a\\b"],
        ("dependencies", true) => &["blvm-node", "block-stats", "fee-watcher", "Bad", ""],
        ("dependencies", false) => &[
            ">=1.0.0",
            "^1.2",
            "~1.2.3",
            "=1.0.0",
            "*",
            ">=1.0, <2.0",
            "1.2.3",
            "nope",
        ],
        ("capabilities", _) => {
            CAPABILITIES.get_or_init(|| names(Permission::ALL.iter().map(|p| p.as_str()), &["root"]))
        }
        ("publishes", _) => EVENTS.get_or_init(|| {
            names(
                EventType::ALL.iter().map(|t| t.name()),
                &["block-stats.summary", "fee-watcher.x", "other.Event", "."],
            )
        }),
        ("config_schema", true) => &["interval", "limits.max_peers", ""],
        ("config_schema", false) => &["seconds between summaries"],
        ("governance", true) => &[
            "tier",
            "maintainers",
            "threshold",
            "review_period_days",
            "registry_note",
            "name",
        ],
        ("governance", false) => &["core", "alice", "bob", "2-of-3", "1-of-1"],
        ("maintainers", _) => MAINTAINERS,
        ("threshold", _) => &["1-of-1", "2-of-3", "1-of-2", "2-of-2", "0-of-1", "3-of-2", "2of3"],
        ("key", _) => &[KEY, KEY2, "04a1", ""],
        ("signature", _) => &[SIG, "00", "zz"],
        ("hash", _) => &[
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "sha256:abc",
            "md5:00",
        ],
        ("download_url", _) => &["https://example.org/m.tar.gz", "http://x", "ftp://x"],
        ("read_only", _) => &["/usr/bin/python3", "/opt/venv", "/", "/a/../b", "rel/ative"],
        _ => &[],
    }
}

fuzz_target!(|data: &[u8]| {
    let mut src = Source::new(data, dict);
    let Ok((_, rec)) = src.value::<RawManifest>() else {
        return;
    };
    let Some(toml::Value::Table(table)) = to_toml(&rec) else {
        return;
    };
    let Ok(text) = toml::to_string(&table) else {
        return;
    };
    blvm_fuzz::manifest::check(&text);
});
