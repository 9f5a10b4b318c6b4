//! The free-space watch: the file systems the node writes — its chain
//! store's (`<datadir>/chain`) and its modules' data dir's — read every
//! `[disk] check_interval_secs` on a blocking thread of their own, never
//! on the block path (a hung network file system stalls the watch, not
//! block processing).
//!
//! Each file system is watched once, however many of the paths lie on it.
//! When its free space falls below the threshold ([`DiskWatchConfig`]) the
//! node logs a warning and publishes `DiskSpaceLow`, once for the crossing
//! ([`Crossing`]). While it stays low the warning is logged again only when
//! free space has fallen by a further quarter of the threshold since the
//! last one, and never published again; once free space is back above the
//! threshold by a tenth of it (so a file system hovering at the threshold
//! does not flap), the recovery is logged and the next fall is a new
//! crossing. Low file systems are listed in `getblockchaininfo` and
//! `getnetworkinfo` `warnings` ([`DiskWatch::warnings`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use blvm_module_protocol::events as ev;

use super::Node;
use crate::config::DiskWatchConfig;

/// What one reading changed for a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing to report.
    Unchanged,
    /// Free space fell below the threshold: warn and publish.
    Low,
    /// Still low, and lower by a further margin than at the last warning:
    /// warn again (not published).
    Worse,
    /// Back above the threshold with room to spare.
    Recovered,
}

/// The hysteresis of one file system's warning: where it was last warned
/// about, if it is low.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crossing {
    /// Free bytes at the last warning, while low.
    warned_at: Option<u64>,
}

impl Crossing {
    /// True between a [`Change::Low`] and the next [`Change::Recovered`].
    pub fn is_low(&self) -> bool {
        self.warned_at.is_some()
    }

    /// Takes one reading of `free` bytes against `threshold`.
    pub fn observe(&mut self, free: u64, threshold: u64) -> Change {
        match self.warned_at {
            None if free < threshold => {
                self.warned_at = Some(free);
                Change::Low
            }
            None => Change::Unchanged,
            Some(_) if free >= threshold.saturating_add(threshold / 10) => {
                self.warned_at = None;
                Change::Recovered
            }
            Some(last) if free.saturating_add(threshold / 4) <= last && threshold > 0 => {
                self.warned_at = Some(free);
                Change::Worse
            }
            Some(_) => Change::Unchanged,
        }
    }
}

/// One file system as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskReport {
    /// The watched paths on it (the chain store's first).
    pub paths: Vec<PathBuf>,
    /// Bytes available (to an unprivileged writer, as a module is).
    pub available_bytes: u64,
    /// Its size.
    pub total_bytes: u64,
    /// Low below this many bytes available.
    pub threshold_bytes: u64,
    /// Below its threshold (and not recovered yet).
    pub low: bool,
}

impl DiskReport {
    /// `available_bytes` in percent of `total_bytes`.
    pub fn percent_free(&self) -> f64 {
        if self.total_bytes == 0 {
            return 100.0;
        }
        self.available_bytes as f64 * 100.0 / self.total_bytes as f64
    }

    fn paths_text(&self) -> String {
        let paths: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        paths.join(", ")
    }
}

/// The watch's state: the paths, and per file system its crossing and
/// last reading.
#[derive(Debug)]
pub struct DiskWatch {
    config: DiskWatchConfig,
    paths: Vec<PathBuf>,
    /// By device number.
    state: Mutex<BTreeMap<u64, (Crossing, DiskReport)>>,
}

impl DiskWatch {
    /// Watches the file systems of `paths` (a path not created yet is
    /// watched through its nearest existing ancestor).
    pub fn new(config: DiskWatchConfig, paths: Vec<PathBuf>) -> DiskWatch {
        DiskWatch {
            config,
            paths,
            state: Mutex::new(BTreeMap::new()),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &DiskWatchConfig {
        &self.config
    }

    /// Reads every file system now; returns each one's report and what
    /// changed. Blocking (`statvfs`).
    pub fn check(&self) -> Vec<(DiskReport, Change)> {
        let mut readings: BTreeMap<u64, (Vec<PathBuf>, u64, u64)> = BTreeMap::new();
        for path in &self.paths {
            let Some(at) = existing_ancestor(path) else { continue };
            let (Ok(stat), Ok(fs)) = (rustix::fs::stat(at), rustix::fs::statvfs(at)) else {
                tracing::debug!(path = %path.display(), "cannot read free space");
                continue;
            };
            let entry = readings.entry(stat.st_dev).or_insert_with(|| {
                (
                    Vec::new(),
                    fs.f_bavail.saturating_mul(fs.f_frsize),
                    fs.f_blocks.saturating_mul(fs.f_frsize),
                )
            });
            entry.0.push(path.clone());
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (dev, (paths, available, total)) in readings {
            let threshold = self.config.threshold(total);
            let (crossing, report) = state.entry(dev).or_insert_with(|| {
                (
                    Crossing::default(),
                    DiskReport {
                        paths: Vec::new(),
                        available_bytes: 0,
                        total_bytes: 0,
                        threshold_bytes: 0,
                        low: false,
                    },
                )
            });
            let change = crossing.observe(available, threshold);
            *report = DiskReport {
                paths,
                available_bytes: available,
                total_bytes: total,
                threshold_bytes: threshold,
                low: crossing.is_low(),
            };
            out.push((report.clone(), change));
        }
        out
    }

    /// Every file system as last read.
    pub fn reports(&self) -> Vec<DiskReport> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.values().map(|(_, r)| r.clone()).collect()
    }

    /// One line per low file system, for the RPC's `warnings`.
    pub fn warnings(&self) -> Vec<String> {
        self.reports()
            .iter()
            .filter(|r| r.low)
            .map(|r| {
                format!(
                    "disk space low: {} MiB of {} MiB free ({:.1}%, warning below {} MiB) on the file system of {}",
                    r.available_bytes >> 20,
                    r.total_bytes >> 20,
                    r.percent_free(),
                    r.threshold_bytes >> 20,
                    r.paths_text()
                )
            })
            .collect()
    }
}

/// `path`, or its nearest ancestor that exists.
fn existing_ancestor(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

impl Node {
    /// Reads free space now, logs and publishes what changed (see the
    /// module doc). Blocking: run it off the async workers.
    pub fn check_disk_space(&self) {
        for (report, change) in self.disk.check() {
            let path = report.paths_text();
            let (available, total, threshold) = (report.available_bytes, report.total_bytes, report.threshold_bytes);
            let percent = format!("{:.1}", report.percent_free());
            match change {
                Change::Unchanged => {}
                Change::Low => {
                    tracing::warn!(
                        available_bytes = available,
                        total_bytes = total,
                        threshold_bytes = threshold,
                        "disk space low: {percent}% free on the file system of {path}; the chain store fails \
                         blocks when it is full"
                    );
                    self.publish(ev::DiskSpaceLow {
                        available_bytes: available,
                        total_bytes: total,
                        percent_free: report.percent_free(),
                        disk_path: report
                            .paths
                            .first()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                    });
                }
                Change::Worse => tracing::warn!(
                    available_bytes = available,
                    total_bytes = total,
                    threshold_bytes = threshold,
                    "disk space still low and falling: {percent}% free on the file system of {path}"
                ),
                Change::Recovered => tracing::info!(
                    available_bytes = available,
                    total_bytes = total,
                    threshold_bytes = threshold,
                    "disk space recovered: {percent}% free on the file system of {path}"
                ),
            }
        }
    }

    /// Low file systems, one line each (empty when none is).
    pub fn disk_warnings(&self) -> Vec<String> {
        self.disk.warnings()
    }

    /// Starts the watch: a reading every interval, each on a blocking
    /// thread, the first one interval from now (so that modules loaded
    /// with the node have subscribed when a disk already low at start is
    /// published: that is published once). Must be called inside a tokio
    /// runtime; abort the handle to stop it.
    pub fn spawn_disk_watch(self: &Arc<Node>) -> tokio::task::JoinHandle<()> {
        let node = Arc::clone(self);
        tokio::spawn(async move {
            let every = node.disk.config().interval;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            // A reading that took longer than the interval is followed by
            // the next one, not by a burst of the missed ones.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let n = Arc::clone(&node);
                if let Err(e) = tokio::task::spawn_blocking(move || n.check_disk_space()).await {
                    tracing::error!("disk space check: {e}");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_crossing_warns_once_again_only_when_worse_by_a_quarter_and_recovers_above_a_tenth_more() {
        let threshold = 8 * GIB;
        let mut c = Crossing::default();
        let mut seen = Vec::new();
        for free in [
            20 * GIB, // fine
            7 * GIB,  // crosses: low
            6 * GIB,  // lower, but by less than a quarter (2 GiB) of the threshold
            5 * GIB,  // 2 GiB below the last warning: worse
            5 * GIB,  // unchanged
            8 * GIB,  // at the threshold again, but not a tenth above it
            9 * GIB,  // 8.8 GiB needed: recovered
            9 * GIB,  // fine
            7 * GIB,  // a new crossing
        ] {
            seen.push(c.observe(free, threshold));
        }
        use Change::*;
        assert_eq!(
            seen,
            [Unchanged, Low, Unchanged, Worse, Unchanged, Unchanged, Recovered, Unchanged, Low]
        );
        assert!(c.is_low());
    }

    #[test]
    fn hovering_at_the_threshold_does_not_flap() {
        let threshold = 10 * GIB;
        let mut c = Crossing::default();
        let changes: Vec<Change> = (0..20)
            .map(|i| c.observe(if i % 2 == 0 { threshold - 1 } else { threshold + 1 }, threshold))
            .collect();
        assert_eq!(changes.iter().filter(|c| **c == Change::Low).count(), 1);
        assert!(!changes.contains(&Change::Recovered));
    }

    #[test]
    fn a_zero_threshold_is_never_low() {
        let mut c = Crossing::default();
        assert_eq!(c.observe(0, 0), Change::Unchanged);
        assert!(!c.is_low());
    }

    #[test]
    fn paths_on_one_file_system_are_watched_once_and_a_missing_path_through_its_ancestor() {
        let dir = std::env::temp_dir().join(format!("blvm-disk-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let config = DiskWatchConfig {
            warn_free_percent: 100.0,
            ..DiskWatchConfig::default()
        };
        let watch = DiskWatch::new(config, vec![dir.join("chain"), dir.clone()]);
        let first = watch.check();
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].0.paths, [dir.join("chain"), dir.clone()]);
        assert_eq!(first[0].1, Change::Low, "100% is above any free space");
        assert_eq!(watch.check()[0].1, Change::Unchanged, "once per crossing");
        assert_eq!(watch.warnings().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
