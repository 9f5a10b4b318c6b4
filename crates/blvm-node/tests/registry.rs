//! The registry end to end, with the real binaries: `blvm-registry`
//! serves a registry, a maintainer publishes `block-stats` with
//! `blvm-module`, and an operator installs it into a running `blvm-node`
//! (`module install`), sees it load, updates it to a newer version and
//! rolls it back, each step seen by a module subscribed to the lifecycle
//! events.

mod harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use harness::{bins, install_recorder, temp_dir, NodeProcess};
use serde_json::Value;

/// `blvm-registry serve`, killed on drop.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(dir: &Path) -> Served {
        let mut child = Command::new(bins().join("blvm-registry"))
            .arg("serve")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("blvm-registry serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Served { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn blvm_module(args: &[&str]) -> Output {
    Command::new(bins().join("blvm-module"))
        .args(args)
        .output()
        .expect("blvm-module runs")
}

/// Prepares version `version` of block-stats in `work/<version>/`: the
/// repository's manifest at that version, the built binary (a later
/// version with a trailing marker, so its bytes differ as a new build's
/// would), packed and signed by `key` as alice, with `governance` added
/// to its `[governance]`. Returns the manifest.
fn prepare_with(work: &Path, version: &str, key: &Path, governance: &str) -> PathBuf {
    let dir = work.join(version);
    std::fs::create_dir_all(&dir).expect("dir");
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules/block-stats/module.toml"))
            .expect("block-stats manifest");
    let manifest = manifest.replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
    let manifest = format!("{manifest}\n[governance]\ntier = \"community\"\nmaintainers = [\"alice\"]\nthreshold = \"1-of-1\"\n{governance}");
    std::fs::write(dir.join("module.toml"), manifest).expect("manifest");
    let mut binary = std::fs::read(bins().join("block-stats")).expect("block-stats binary");
    binary.extend_from_slice(format!("build {version}").as_bytes());
    std::fs::write(dir.join("block-stats"), binary).expect("binary");
    let path = dir.join("module.toml");
    let path_str = path.to_str().expect("utf8");
    ok(blvm_module(&["pack", path_str]), "pack");
    ok(
        blvm_module(&[
            "sign",
            path_str,
            "--key",
            key.to_str().expect("utf8"),
            "--name",
            "alice",
            "--write",
        ]),
        "sign",
    );
    path
}

fn prepare(work: &Path, version: &str, key: &Path) -> PathBuf {
    prepare_with(work, version, key, "")
}

fn publish(url: &str, key: &Path, manifest: &Path) {
    ok(
        blvm_module(&[
            "publish",
            "--registry",
            url,
            "--key",
            key.to_str().expect("utf8"),
            manifest.to_str().expect("utf8"),
        ]),
        "publish",
    );
}

fn run_module(datadir: &Path, port: u16, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blvm-node"))
        .arg("--datadir")
        .arg(datadir)
        .arg("--conf")
        .arg(datadir.join("blvm.toml"))
        .args(["--rpcport", &port.to_string(), "module"])
        .args(args)
        .output()
        .expect("blvm-node module runs")
}

/// `blvm-node module ARGS` against the running node on `port`.
fn module(datadir: &Path, port: u16, args: &[&str]) -> Value {
    let text = ok(
        run_module(datadir, port, args),
        &format!("blvm-node module {}", args.join(" ")),
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `blvm-node module ARGS` that must fail; returns its one-line error.
fn module_fails(datadir: &Path, port: u16, args: &[&str]) -> String {
    let out = run_module(datadir, port, args);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

/// A served registry with block-stats 0.1.0 published by alice, and a
/// node data dir that holds the registry's trusted root.
struct Setup {
    _tmp: harness::TempDir,
    served: Served,
    work: PathBuf,
    datadir: PathBuf,
    key: PathBuf,
    public: String,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let tmp = temp_dir(tag);
        let (registry_dir, work, datadir) = (tmp.join("registry"), tmp.join("work"), tmp.join("node"));
        std::fs::create_dir_all(&work).expect("work dir");
        std::fs::create_dir_all(&datadir).expect("datadir");
        let init = ok(
            Command::new(bins().join("blvm-registry"))
                .arg("init")
                .arg(&registry_dir)
                .output()
                .expect("blvm-registry init"),
            "init",
        );
        let root = init
            .lines()
            .find_map(|l| l.strip_prefix("trusted root: "))
            .expect("the trusted root is printed");
        std::fs::copy(root, datadir.join("registry-root.json")).expect("the operator copies the root");
        let served = Served::start(&registry_dir);
        let key = work.join("alice.key");
        let keygen = ok(blvm_module(&["keygen", key.to_str().expect("utf8")]), "keygen");
        let public = keygen
            .lines()
            .find_map(|l| l.strip_prefix("public key: "))
            .expect("public key")
            .to_owned();
        publish(&served.url, &key, &prepare(&work, "0.1.0", &key));
        Setup {
            _tmp: tmp,
            served,
            work,
            datadir,
            key,
            public,
        }
    }
}

#[test]
fn a_module_published_to_a_served_registry_installs_into_a_running_node_loads_updates_and_rolls_back() {
    let Setup {
        _tmp,
        served,
        work,
        datadir,
        key,
        public,
    } = Setup::new("registry-e2e");

    // A node that trusts the registry's root and alice's key (a signed
    // module needs its manifest's 1-of-1 from trusted keys), and an
    // unsigned recorder watching the lifecycle events.
    install_recorder(
        &datadir.join("modules"),
        "recorder",
        "\"subscribe_events\"",
        "events = \"ModuleDiscovered,ModuleInstalled,ModuleUpdated,ModuleReloaded,ModuleRemoved\"\n",
    );
    let conf = format!(
        "block_interval = 0\n[registry]\nurl = \"{}\"\nroot = \"registry-root.json\"\n\
         [trust.keys]\nalice = \"{public}\"\n[sandbox]\ndisk_mb = 8\n",
        served.url
    );
    let mut node = NodeProcess::start(&datadir, &conf);
    let port = node.rpc_addr().port();
    node.wait_line("the recorder loaded", |l| {
        l.contains("module loaded") && l.contains("recorder")
    });

    let search = module(&datadir, port, &["search", "block"]);
    assert_eq!(search[0]["name"], "block-stats", "{search}");

    let installed = module(&datadir, port, &["install", "block-stats"]);
    assert_eq!(installed["changes"][0]["change"], "installed", "{installed}");
    assert_eq!(installed["changes"][0]["signed_by"][0], "alice", "{installed}");
    assert_eq!(installed["loaded"][0], "block-stats", "{installed}");
    let status = module(&datadir, port, &["status", "block-stats"]);
    assert_eq!(
        (status["version"].as_str(), status["state"].as_str()),
        (Some("0.1.0"), Some("running"))
    );
    assert_eq!(status["signed_by"][0], "alice");
    assert_eq!(
        (status["tier"].as_str(), installed["changes"][0]["tier"].as_str()),
        (Some("community"), Some("community"))
    );
    node.wait_line("ModuleInstalled", |l| {
        l.contains("recorded ") && l.contains("ModuleInstalled block-stats 0.1.0")
    });

    publish(&served.url, &key, &prepare(&work, "0.1.1", &key));
    let updated = module(&datadir, port, &["update", "block-stats"]);
    assert_eq!(updated["changes"][0]["change"], "updated", "{updated}");
    assert_eq!(updated["reloaded"][0], "block-stats", "{updated}");
    let status = module(&datadir, port, &["status", "block-stats"]);
    assert_eq!(
        (status["version"].as_str(), status["state"].as_str()),
        (Some("0.1.1"), Some("running"))
    );
    node.wait_line("ModuleUpdated", |l| {
        l.contains("recorded ") && l.contains("ModuleUpdated block-stats 0.1.0 0.1.1")
    });

    // A version still inside its review period: the update is refused
    // with the override to use, and what runs and what is installed stay.
    publish(
        &served.url,
        &key,
        &prepare_with(&work, "0.1.2", &key, "review_period_days = 7\n"),
    );
    let lock = std::fs::read(datadir.join("modules/blvm.lock")).expect("lock file");
    let refused = module_fails(&datadir, port, &["update", "block-stats"]);
    assert!(
        refused.contains("review period") && refused.contains("block-stats@0.1.2"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read(datadir.join("modules/blvm.lock")).expect("lock file"),
        lock
    );
    let status = module(&datadir, port, &["status", "block-stats"]);
    assert_eq!(
        (status["version"].as_str(), status["state"].as_str()),
        (Some("0.1.1"), Some("running"))
    );

    let rolled = module(&datadir, port, &["rollback", "block-stats"]);
    assert_eq!(rolled["changes"][0]["change"], "updated", "{rolled}");
    let status = module(&datadir, port, &["status", "block-stats"]);
    assert_eq!(
        (status["version"].as_str(), status["state"].as_str()),
        (Some("0.1.0"), Some("running"))
    );
    node.wait_line("the rollback's ModuleUpdated", |l| {
        l.contains("recorded ") && l.contains("ModuleUpdated block-stats 0.1.1 0.1.0")
    });
    node.stop();
    let recorded = node.module_said("recorder", "recorded ");
    let lifecycle: Vec<&str> = recorded
        .iter()
        .filter(|l| l.contains("block-stats"))
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .collect();
    assert_eq!(
        lifecycle,
        [
            "ModuleDiscovered block-stats 0.1.0 registry",
            "ModuleInstalled block-stats 0.1.0",
            "ModuleDiscovered block-stats 0.1.1 registry",
            "ModuleUpdated block-stats 0.1.0 0.1.1",
            "ModuleReloaded block-stats 0.1.0 0.1.1",
            "ModuleUpdated block-stats 0.1.1 0.1.0",
            "ModuleReloaded block-stats 0.1.1 0.1.0",
        ],
        "{recorded:#?}"
    );
}

#[test]
fn the_auto_load_fetches_pinned_modules_that_modules_lacks_and_starts_without_one_it_cannot_get() {
    let Setup {
        _tmp,
        served,
        datadir,
        public,
        ..
    } = Setup::new("registry-pins");

    let conf = format!(
        "block_interval = 0\n[registry]\nurl = \"{}\"\nroot = \"registry-root.json\"\n\
         [registry.pins]\nblock-stats = \"^0.1\"\nghost = \"^1\"\n\
         [trust.keys]\nalice = \"{public}\"\n[sandbox]\ndisk_mb = 8\n",
        served.url
    );
    let mut node = NodeProcess::start(&datadir, &conf);
    let port = node.rpc_addr().port();
    let missing = node.wait_line("the ghost pin's warning", |l| l.contains("pinned module not fetched"));
    assert!(missing.contains("ghost"), "{missing}");
    node.wait_line("block-stats loaded", |l| {
        l.contains("module loaded") && l.contains("block-stats")
    });
    let status = module(&datadir, port, &["status", "block-stats"]);
    assert_eq!(
        (status["version"].as_str(), status["state"].as_str()),
        (Some("0.1.0"), Some("running"))
    );
    let lock = std::fs::read_to_string(datadir.join("modules/blvm.lock")).expect("lock file");
    assert!(
        lock.contains("block-stats") && lock.contains("requested = \"^0.1\""),
        "{lock}"
    );
    node.stop();
}
