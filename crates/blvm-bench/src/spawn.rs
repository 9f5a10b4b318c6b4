//! Spawn → ready: how long the manager takes from "load this module" to a
//! completed handshake, with the sandbox off and on, against spawning
//! `/bin/true` (fork, exec, exit, reap) in the same rounds.
//!
//! Each round measures, interleaved: `/bin/true` × n, a load with the
//! sandbox off × n, a load with the whole sandbox × n (a warm node: the
//! module's data dir image already exists and is attached), and one cold
//! load of the sandboxed module on a fresh data dir (its image is created
//! with `mkfs.ext4` and attached). Each load is followed by an unload
//! outside the timed span. The figure of a round is its median; the run
//! prints the median of the rounds' figures and their min–max, and each
//! ratio computed inside its round.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blvm_module_host::manager::{ManagerConfig, ModuleManager};
use blvm_testkit::MemoryChain;

type Error = Box<dyn std::error::Error>;

/// Median of `v` (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The node's own CPU time (user + system) so far, µs.
fn cpu_us() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

/// Installs `binary` as module `m` under `root/modules`.
fn install(root: &Path, binary: &Path) -> Result<(), Error> {
    let dir = root.join("modules").join("m");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(binary, dir.join("m"))?;
    std::fs::write(
        dir.join("module.toml"),
        "name = \"m\"\nversion = \"1.0.0\"\nentry_point = \"m\"\ncapabilities = []\n",
    )?;
    Ok(())
}

/// A started manager over `root`, the sandbox on or off.
async fn manager(root: &Path, sandbox: bool) -> Result<ModuleManager, Error> {
    let mut config = ManagerConfig::new(root.join("modules"), root.join("data"), root.join("sock"));
    config.sandbox.enabled = sandbox;
    config.shutdown_grace = Duration::from_secs(5);
    let manager = ModuleManager::with_config(config);
    manager
        .start(
            root.join("sock").join("node.sock"),
            Arc::new(MemoryChain::mainnet_0_438()),
        )
        .await?;
    Ok(manager)
}

/// Loads `m`, returns the wall and node CPU µs to its handshake, unloads it.
async fn load_once(manager: &ModuleManager) -> Result<(f64, f64), Error> {
    let (t, c) = (Instant::now(), cpu_us());
    let report = manager.auto_load_modules().await?;
    let (wall, cpu) = (t.elapsed().as_secs_f64() * 1e6, cpu_us() - c);
    if report.loaded.len() != 1 {
        return Err(format!("the module did not load: {report:?}").into());
    }
    manager.unload_module("m").await?;
    Ok((wall, cpu))
}

/// What one round measured (medians, µs).
struct Round {
    bin_true: f64,
    off: f64,
    on: f64,
    on_cpu: f64,
    cold: f64,
    layers: Vec<String>,
}

async fn round(dir: &Path, module: &Path, n: usize, k: usize) -> Result<Round, Error> {
    let mut t = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        Command::new("/bin/true").status()?;
        t.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let mut results = Vec::new();
    for sandbox in [false, true] {
        let root = dir.join(format!("warm-{sandbox}-{k}"));
        install(&root, module)?;
        let manager = manager(&root, sandbox).await?;
        load_once(&manager).await?; // warm-up: creates the image
        let mut wall = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..n {
            let (w, c) = load_once(&manager).await?;
            wall.push(w);
            cpu.push(c);
        }
        let layers = if sandbox {
            manager.auto_load_modules().await?;
            let layers = manager.module_status("m").map(|s| s.sandbox_layers).unwrap_or_default();
            manager.unload_module("m").await?;
            layers
        } else {
            Vec::new()
        };
        manager.shutdown().await;
        results.push((median(&mut wall), median(&mut cpu), layers));
        let _ = std::fs::remove_dir_all(&root);
    }
    let cold_root = dir.join(format!("cold-{k}"));
    install(&cold_root, module)?;
    let cold_manager = manager(&cold_root, true).await?;
    let (cold, _) = load_once(&cold_manager).await?;
    cold_manager.shutdown().await;
    let _ = std::fs::remove_dir_all(&cold_root);
    let (on, on_cpu, layers) = results.pop().ok_or("no sandboxed figure")?;
    let (off, _, _) = results.pop().ok_or("no unsandboxed figure")?;
    Ok(Round {
        bin_true: median(&mut t),
        off,
        on,
        on_cpu,
        cold,
        layers,
    })
}

/// Runs `rounds` rounds of `n` loads each; returns their figures, each
/// round's median, and the ratios taken inside each round.
pub fn spawn_ready(dir: &Path, module: &Path, rounds: usize, n: usize) -> Result<crate::rounds::Rounds, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir: PathBuf = dir.join("spawn");
    std::fs::create_dir_all(&dir)?;
    let mut all = Vec::new();
    for k in 0..rounds {
        all.push(rt.block_on(round(&dir, module, n, k))?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = crate::rounds::Rounds::new();
    for round in &all {
        r.record("/bin/true: fork, exec, exit, reap", "us", round.bin_true);
        r.record("load → handshake, sandbox off", "us", round.off);
        r.record("load → handshake, whole sandbox (warm)", "us", round.on);
        r.record("node CPU per sandboxed load", "us", round.on_cpu);
        r.record("load → handshake, whole sandbox, new data dir", "us", round.cold);
    }
    r.ratio(
        "sandbox off / /bin/true",
        "load → handshake, sandbox off",
        "/bin/true: fork, exec, exit, reap",
    );
    r.ratio(
        "sandbox on / /bin/true",
        "load → handshake, whole sandbox (warm)",
        "/bin/true: fork, exec, exit, reap",
    );
    r.ratio(
        "sandbox on / sandbox off",
        "load → handshake, whole sandbox (warm)",
        "load → handshake, sandbox off",
    );
    if !rustix::process::geteuid().is_root() {
        say!("spawn      (not root: the sandbox is partial, see the layers below)");
    }
    if let Some(r) = all.first() {
        say!("spawn      layers: {}", r.layers.join(" "));
    }
    Ok(r)
}
