//! `blvm-registry`: create a module registry (`init`) and serve it
//! (`serve`): TUF metadata and targets, search, publish and yank.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use blvm_registry::server::{Registry, ServeOptions, Server};
use clap::Parser;

/// `blvm-registry`: a module registry in a directory, served over HTTP.
#[derive(Debug, Parser)]
#[command(name = "blvm-registry", version, about)]
enum Cli {
    /// Create a registry in DIR: role keys (DIR/keys, keep private), an
    /// empty signed repository and no name claims. Prints the trusted
    /// root file to copy to nodes.
    Init {
        /// The registry directory (created if missing).
        dir: PathBuf,
    },
    /// Serve the registry in DIR. Prints `listening on http://ADDR`.
    Serve {
        /// The registry directory (from `init`).
        dir: PathBuf,
        /// Address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8420")]
        listen: String,
        /// The largest publish request, in bytes.
        #[arg(long, default_value_t = ServeOptions::default().max_upload)]
        max_upload: usize,
        /// How long each signed timestamp stays valid, in seconds; it is
        /// re-signed every third of that.
        #[arg(long, default_value_t = ServeOptions::default().timestamp_lifetime.as_secs())]
        timestamp_lifetime: u64,
        /// How long a publish or yank request may take to arrive, in
        /// seconds.
        #[arg(long, default_value_t = ServeOptions::default().upload_timeout.as_secs())]
        upload_timeout: u64,
        /// How many publish requests may be received at once (each holds
        /// up to --max-upload bytes in memory).
        #[arg(long, default_value_t = ServeOptions::default().max_concurrent_uploads)]
        max_concurrent_uploads: usize,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blvm-registry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli {
        Cli::Init { dir } => {
            let root = Registry::init(&dir, SystemTime::now())?;
            println!("registry created in {}", dir.display());
            println!("trusted root: {}", root.display());
        }
        Cli::Serve {
            dir,
            listen,
            max_upload,
            timestamp_lifetime,
            upload_timeout,
            max_concurrent_uploads,
        } => {
            anyhow::ensure!(timestamp_lifetime > 0, "--timestamp-lifetime must be at least 1 second");
            let options = ServeOptions {
                max_upload,
                timestamp_lifetime: Duration::from_secs(timestamp_lifetime),
                upload_timeout: Duration::from_secs(upload_timeout),
                max_concurrent_uploads,
            };
            let server = Server::open(&dir, options).with_context(|| format!("cannot open {}", dir.display()))?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let addr = listener.local_addr().context("no local address")?;
                // Tests and scripts read this line to learn the port.
                let mut stdout = std::io::stdout();
                writeln!(stdout, "listening on http://{addr}").and_then(|()| stdout.flush())?;
                tracing::info!(%addr, registry = %dir.display(), "serving");
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                server.serve(listener, shutdown).await.context("serving failed")
            })?;
        }
    }
    Ok(())
}
