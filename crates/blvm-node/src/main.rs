//! `blvm-node`: run the reference node, import blocks, or administer the
//! modules of a running node.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use blvm_module_protocol::events as ev;
use blvm_node::chain::ChainError;
use blvm_node::cli::{signing, Cli, Command, ModuleAction, RpcClient};
use blvm_node::config::{NodeConfig, Settings};
use blvm_node::node::{register_methods, serve_module_endpoints, Node, NodeBackendImpl, NodeError};
use blvm_node::rpc::{CookieFile, MethodTable, RpcAuth, RpcServer};
use clap::Parser;

fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match command(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error as one line: its causes joined by `: `, a cause left out when
/// the message before it already says it (errors that print their source),
/// line breaks folded. Never a backtrace: the `Debug` form, which prints
/// one when `RUST_BACKTRACE` is set, is not used.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A command line clap refuses: its first line, and where to look. Help
/// and version requests are printed as clap prints them.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    let first = match e.kind() {
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            "a subcommand is missing".to_owned()
        }
        _ => rendered
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("invalid command line")
            .trim_start_matches("error: ")
            .to_owned(),
    };
    eprintln!("Error: {first} (see `blvm-node --help`)");
    ExitCode::from(2)
}

/// A panic prints one line, never a backtrace, whatever `RUST_BACKTRACE`
/// says: on the main thread as the command's error (the process then
/// exits), on another (a task the node survives) as a note of the bug.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned())
            .replace('\n', " ");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        match thread.name() {
            Some("main") => eprintln!("Error: internal error: {message}{at} (a bug in blvm-node)"),
            name => eprintln!(
                "blvm-node: internal error in thread {}: {message}{at} (a bug in blvm-node)",
                name.unwrap_or("?")
            ),
        }
    }));
}

fn command(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        None | Some(Command::Run) => run(config),
        Some(Command::Import { files, rpc: false }) => import(config, &files),
        Some(Command::Import { files, rpc: true }) => import_over_rpc(&config, &files),
        Some(Command::Module { action }) => {
            let Some((method, params)) = action.request() else {
                return offline(&config, action);
            };
            let result = client(&config)?.call(method, params)?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        }
    }
}

/// A JSON-RPC client of the node this config describes.
fn client(config: &NodeConfig) -> anyhow::Result<RpcClient> {
    Ok(match &config.rpc_user_pass {
        Some((u, p)) => RpcClient::new(config.rpc_addr, u, p),
        None => RpcClient::from_cookie(config.rpc_addr, &config.datadir.join(".cookie"))
            .context("no rpcuser/rpcpassword, and no cookie file (is the node running with this --datadir?)")?,
    })
}

/// The `module` actions that need no running node.
fn offline(config: &NodeConfig, action: ModuleAction) -> anyhow::Result<()> {
    match action {
        ModuleAction::Keygen { file } => {
            let public = signing::keygen(&file)?;
            println!("secret key written to {} (keep it private)", file.display());
            println!("public key: {public}");
            println!("for operators' config, [trust.keys]: <your name> = \"{public}\"");
        }
        ModuleAction::Sign(args) => println!("{}", signing::run_sign(&args)?),
        ModuleAction::Verify { manifest } => println!("{}", signing::verify(&manifest, &config.signatures)?),
        _ => anyhow::bail!("not an offline action"),
    }
    Ok(())
}

/// Flags over the config file over defaults. The file is `--conf`, or
/// `<datadir>/blvm.toml` when it exists.
fn load_config(cli: &Cli) -> anyhow::Result<NodeConfig> {
    let flags = cli.settings.clone();
    let file = match &cli.conf {
        Some(path) => Settings::from_file(path)?,
        None => {
            let datadir = NodeConfig::resolve(flags.clone().or(Settings::default()))?.datadir;
            let default = datadir.join("blvm.toml");
            if default.exists() {
                Settings::from_file(&default)?
            } else {
                Settings::default()
            }
        }
    };
    let mut merged = flags.or(file);
    if let Some(mode) = &cli.sandbox_mode {
        merged.sandbox.mode = Some(mode.clone());
    }
    Ok(NodeConfig::resolve(merged)?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn import(config: NodeConfig, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.datadir)?;
    let datadir = config.datadir.clone();
    let node = match Node::open(config) {
        Err(NodeError::Chain(ChainError::Locked(_))) => anyhow::bail!(
            "a node is running on {} (its chain store is locked): import into it with `{}`, or stop it first",
            datadir.display(),
            with_rpc_flag(std::env::args().skip(1))
        ),
        other => other?,
    };
    let stats = node.import(files)?;
    let tip = node.chain.tip();
    println!(
        "imported {} blocks ({} transactions) in {:.2?}: {:.0} blocks/s, {:.0} tx/s; tip {} at height {} ({} already known, {} rejected, {} orphans)",
        stats.blocks,
        stats.txs,
        stats.elapsed,
        stats.blocks_per_second(),
        stats.txs_per_second(),
        tip.hash,
        tip.height,
        stats.duplicates,
        stats.rejected,
        stats.orphans
    );
    Ok(())
}

/// This command line again, with `--rpc` after `import`: what to run
/// instead of an import the running node's lock refuses.
fn with_rpc_flag(args: impl Iterator<Item = String>) -> String {
    let mut out = vec!["blvm-node".to_owned()];
    let mut added = false;
    for arg in args {
        let quoted = if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
            format!("'{}'", arg.replace('\'', "'\\''"))
        } else {
            arg
        };
        let is_import = quoted == "import";
        out.push(quoted);
        if is_import && !added {
            out.push("--rpc".to_owned());
            added = true;
        }
    }
    out.join(" ")
}

/// `import --rpc`: the running node imports the files (`importblocks`),
/// named by absolute paths since the node reads them from its own working
/// directory.
fn import_over_rpc(config: &NodeConfig, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let files = files
        .iter()
        .map(|f| std::path::absolute(f).with_context(|| format!("{}", f.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let r = client(config)?.call("importblocks", serde_json::json!([files]))?;
    println!(
        "imported {} blocks ({} transactions) in {} ms into the running node; tip {} at height {} ({} already known, {} rejected, {} orphans)",
        r["blocks"], r["transactions"], r["elapsed_ms"], r["tip"].as_str().unwrap_or("?"), r["height"], r["already_known"], r["rejected"], r["orphans"]
    );
    Ok(())
}

fn run(config: NodeConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&config.datadir).with_context(|| format!("creating {}", config.datadir.display()))?;
    let rt = runtime()?;
    rt.block_on(async move {
        let node = match Node::open(config.clone()) {
            Err(NodeError::Chain(ChainError::Locked(_))) => anyhow::bail!(
                "a node is already running on {} (its chain store is locked)",
                config.datadir.display()
            ),
            other => other?,
        };
        let socket = config.datadir.join("sockets").join("node.sock");
        node.manager
            .start(&socket, Arc::new(NodeBackendImpl::new(&node)))
            .await?;
        let table = Arc::new(MethodTable::new());
        register_methods(&table, &node);
        serve_module_endpoints(&node, &table);
        blvm_node::node::metrics::install(&node, Some(Arc::clone(&table)));
        let cookie = match &config.rpc_user_pass {
            Some(_) => None,
            None => Some(CookieFile::create(&config.datadir)?),
        };
        let auth = RpcAuth {
            user_pass: config.rpc_user_pass.clone(),
            cookie,
        };
        let rpc = RpcServer::bind(config.rpc_addr, auth, Arc::clone(&table) as _)?;
        let metrics = match config.metrics_bind {
            Some(addr) => Some(
                blvm_node::node::metrics::MetricsServer::bind(addr, Arc::clone(node.manager.metrics()))
                    .with_context(|| format!("binding the metrics exposition to {addr}"))?,
            ),
            None => None,
        };
        tracing::info!(
            network = blvm_node::config::core_name(config.network),
            rpc = %rpc.local_addr(),
            datadir = %config.datadir.display(),
            height = node.chain.tip().height,
            "blvm-node started"
        );
        fetch_missing_pins(&node).await;
        let report = node.manager.auto_load_modules().await?;
        for name in &report.loaded {
            tracing::info!(module = %name, "module loaded");
        }
        for (name, why) in &report.failed {
            tracing::warn!(module = %name, "module not loaded: {why}");
        }
        node.announce_startup(started);
        let tasks = background_tasks(&node, &config);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
            _ = term.recv() => tracing::info!("terminated"),
            _ = node.stopped() => tracing::info!("stop requested over RPC"),
        }
        for t in tasks {
            t.abort();
        }
        // Events, RPC, modules, in the order of `node::lifecycle`.
        drop(metrics);
        let took = node.shut_down("requested", Some(rpc)).await;
        tracing::info!(shutdown_ms = took.as_millis() as u64, "blvm-node stopped");
        Ok::<_, anyhow::Error>(())
    })
}

/// Installs the `[registry.pins]` that `modules/` lacks, before the
/// auto-load: a registry that is unreachable or refuses is logged, and
/// the node starts with what it has.
async fn fetch_missing_pins(node: &Arc<Node>) {
    let Some(registry) =
        blvm_node::node::registry::NodeRegistry::new(&node.config, node.manager.config().node_versions.clone())
    else {
        return;
    };
    if !registry.config().fetch_missing {
        return;
    }
    for (name, req) in registry.missing_pins() {
        let fetcher = registry.clone();
        let pinned = name.clone();
        let result = tokio::task::spawn_blocking(move || fetcher.install(&pinned, &req)).await;
        match result {
            Ok(Ok(report)) => {
                for event in blvm_node::node::registry::events_of(&report, true) {
                    node.publish(event);
                }
                for change in &report.changes {
                    tracing::info!(module = %change.name, change = ?change.kind, "module fetched from the registry");
                }
            }
            Ok(Err(e)) => tracing::warn!(module = %name, "pinned module not fetched: {e}"),
            Err(e) => tracing::warn!(module = %name, "pinned module not fetched: {e}"),
        }
    }
}

/// The block timer, health checks and maintenance.
fn background_tasks(node: &Arc<Node>, config: &NodeConfig) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if config.block_interval > 0 {
        if config.network != bitcoin::Network::Regtest {
            tracing::warn!("the block timer only runs on regtest");
        } else {
            let node = Arc::clone(node);
            let every = Duration::from_secs(config.block_interval);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let n = Arc::clone(&node);
                    let mined = tokio::task::spawn_blocking(move || {
                        let script = n.coinbase_script().clone();
                        n.generate(1, &script, 10_000_000)
                    })
                    .await;
                    match mined {
                        Ok(Ok(hashes)) => {
                            tracing::info!(height = node.chain.tip().height, hash = ?hashes.first(), "block produced")
                        }
                        Ok(Err(e)) => tracing::warn!("block timer: {e}"),
                        Err(e) => tracing::error!("block timer task: {e}"),
                    }
                }
            }));
        }
    }
    let health = Arc::clone(node);
    // `[maintenance]`: a period of `None` is "never".
    if let Some(every) = config.maintenance.health_interval {
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                health_check(&health);
            }
        }));
    }
    // Free space of the chain store's and the modules' file systems:
    // `DiskSpaceLow` and a warning once per crossing (`node::disk`).
    tasks.push(node.spawn_disk_watch());
    let audit = Arc::clone(node);
    let Some(every) = config.maintenance.utxo_audit_interval else {
        return tasks;
    };
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let n = Arc::clone(&audit);
            let _ = tokio::task::spawn_blocking(move || utxo_audit(&n)).await;
        }
    }));
    tasks
}

/// `HealthCheck` (free space has its own watch, `Node::spawn_disk_watch`).
fn health_check(node: &Node) {
    let tip = node.chain.tip();
    let modules = node.manager.status();
    let failed = modules.iter().filter(|m| m.state.as_str() == "failed").count();
    node.publish(ev::HealthCheck {
        check_type: "periodic".into(),
        node_healthy: true,
        health_report: Some(format!(
            "height {}, mempool {} txs, {} modules ({failed} failed)",
            tip.height,
            node.mempool.len(),
            modules.len()
        )),
    });
}

/// Recounts the UTXO set and compares it with the running counters.
fn utxo_audit(node: &Node) {
    let started = Instant::now();
    node.publish(ev::MaintenanceStarted {
        maintenance_type: "utxo_audit".into(),
        estimated_duration_ms: None,
    });
    let counters = node.chain.utxo_stats();
    let (success, results) = match node.chain.scan_utxo_set() {
        Ok(scanned) => (
            scanned == counters,
            format!("{} outputs, {} sat (counters {:?})", scanned.0, scanned.1, counters),
        ),
        Err(e) => (false, e.to_string()),
    };
    if !success {
        tracing::error!("UTXO audit failed: {results}");
    }
    node.publish(ev::MaintenanceCompleted {
        maintenance_type: "utxo_audit".into(),
        success,
        duration_ms: started.elapsed().as_millis() as u64,
        results: Some(results),
    });
}
