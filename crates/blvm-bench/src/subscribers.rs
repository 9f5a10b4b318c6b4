//! Import with subscribers (`import8`): a whole node (chain, module host,
//! event bus) importing mainnet blocks 0..438 into a fresh data directory
//! with no module and with 8 modules subscribed to `NewBlock`
//! (`bench-module` in `events` mode, loaded by the node's module manager
//! with the default sandbox where the machine allows it), in interleaved
//! rounds (none then 8, 8 then none, …) after one uncounted warm-up; the ratio of the
//! import's wall time, 8 / none, is taken inside each round (the issue's
//! target: within 5 %). The node's CPU per block is shown beside it, so a
//! slowdown can be told apart from more work.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blvm_node::config::{NodeConfig, Settings};
use blvm_node::node::{Node, NodeBackendImpl};

use crate::rounds::Rounds;
use crate::spinner::process_cpu;
use crate::Error;

/// Subscribed modules on the measured side.
const MODULES: usize = 8;

/// Runs `rounds` interleaved rounds; `module` is `bench-module`.
pub(crate) fn run(dir: &Path, module: &Path, rounds: usize) -> Result<Rounds, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (mut r, mut warm_up) = (Rounds::new(), Rounds::new());
    for round in 0..=rounds {
        let r = if round == 0 { &mut warm_up } else { &mut r };
        // The side that goes first alternates (none, 8 | 8, none …): the
        // previous node's shutdown and data dir removal can still be
        // writing back while the next import commits its blocks.
        let order = if round % 2 == 0 { [0, MODULES] } else { [MODULES, 0] };
        for subscribers in order {
            one(
                &rt,
                dir,
                &format!("import8-{round}-{subscribers}"),
                module,
                subscribers,
                r,
            )?;
        }
    }
    r.ratio(
        "import wall: 8 modules / none",
        "8 modules: import wall",
        "none: import wall",
    );
    r.ratio(
        "node CPU: 8 modules / none",
        "8 modules: node CPU/block",
        "none: node CPU/block",
    );
    Ok(r)
}

/// One import into a fresh node in `dir/<tag>` with `subscribers`
/// modules subscribed.
fn one(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    tag: &str,
    module: &Path,
    subscribers: usize,
    r: &mut Rounds,
) -> Result<(), Error> {
    let datadir = dir.join(tag);
    let _ = std::fs::remove_dir_all(&datadir);
    std::fs::create_dir_all(&datadir)?;
    let settings = Settings {
        network: Some("main".into()),
        datadir: Some(datadir.clone()),
        rpcport: Some(0),
        block_interval: Some(0),
        ..Settings::default()
    };
    let config = NodeConfig::resolve(settings)?;
    for i in 0..subscribers {
        install(&config.modules_dir, module, &format!("sub{i}"))?;
    }
    let node = Node::open(config)?;
    let result = (|| {
        rt.block_on(node.manager.start(
            datadir.join("sockets").join("node.sock"),
            Arc::new(NodeBackendImpl::new(&node)),
        ))?;
        if subscribers > 0 {
            let report = rt.block_on(node.manager.auto_load_modules())?;
            if let Some((name, why)) = report.failed.iter().next() {
                return Err(format!("{name} not loaded: {why}").into());
            }
            wait_subscribed(&node, subscribers)?;
        }
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../blvm-node/tests/data/blocks-000000-000438.dat");
        let (cpu0, t) = (process_cpu(), Instant::now());
        let stats = node.import(&[file])?;
        let (wall, cpu) = (t.elapsed(), process_cpu().saturating_sub(cpu0));
        let what = if subscribers == 0 {
            "none".to_string()
        } else {
            format!("{subscribers} modules")
        };
        let blocks = stats.blocks.max(1) as f64;
        r.record(&format!("{what}: import wall"), "ms", wall.as_secs_f64() * 1e3);
        r.record(
            &format!("{what}: node CPU/block"),
            "us",
            cpu.as_secs_f64() * 1e6 / blocks,
        );
        Ok(())
    })();
    rt.block_on(node.manager.shutdown());
    drop(node);
    let _ = std::fs::remove_dir_all(&datadir);
    result
}

/// Waits (up to 10 s) until `n` modules have subscribed to an event.
fn wait_subscribed(node: &Node, n: usize) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let subscribed = (0..n)
            .filter_map(|i| node.manager.module_status(&format!("sub{i}"))?.module_id)
            .filter(|id| !node.manager.events().subscriptions(id).is_empty())
            .count();
        if subscribed == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{subscribed} of {n} modules subscribed within 10 s").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Installs `binary` as module `name`, in `events` mode, allowed to
/// subscribe.
fn install(modules_dir: &Path, binary: &Path, name: &str) -> Result<(), Error> {
    let dir = modules_dir.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(binary, dir.join(name))?;
    std::fs::write(
        dir.join("module.toml"),
        format!(
            "name = \"{name}\"\nversion = \"1.0.0\"\nentry_point = \"{name}\"\ncapabilities = [\"subscribe_events\", \"read_blockchain\"]\n"
        ),
    )?;
    std::fs::write(dir.join("config.toml"), "mode = \"events\"\n")?;
    Ok(())
}
