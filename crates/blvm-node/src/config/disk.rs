//! The `[disk]` section: when the node warns that a file system it writes
//! (its chain store's, its modules' data dir's) is running out of space.
//!
//! ```toml
//! [disk]
//! check_interval_secs = 10   # how often free space is read (never on the block path)
//! warn_free_percent = 10     # warn when less than this share of the file system is free,
//! warn_free_mb = 1024        # or less than this many MiB, whichever is more
//! ```
//!
//! `warn_free_percent = 0` with `warn_free_mb = 0` turns the warning off.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[disk]` as written; `None` = the built-in default.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSettings {
    /// Seconds between two readings of free space.
    pub check_interval_secs: Option<u64>,
    /// Warn below this percentage of the file system free.
    pub warn_free_percent: Option<f64>,
    /// Warn below this many MiB free.
    pub warn_free_mb: Option<u64>,
}

/// When free space counts as low, and how often it is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskWatchConfig {
    /// Time between two readings.
    pub interval: Duration,
    /// Low below this percentage of the file system's size free.
    pub warn_free_percent: f64,
    /// Low below this many bytes free.
    pub warn_free_bytes: u64,
}

impl Default for DiskWatchConfig {
    /// Every 10 s; low under 10% or under 1 GiB free, whichever is more.
    /// A module writing flat out fills some hundreds of MB per second, so
    /// a reading every 10 s warns before a threshold of a GiB is gone on
    /// all but the smallest disks (the per-module disk quota is what stops
    /// it; this is the operator's notice).
    fn default() -> DiskWatchConfig {
        DiskWatchConfig {
            interval: Duration::from_secs(10),
            warn_free_percent: 10.0,
            warn_free_bytes: 1 << 30,
        }
    }
}

impl DiskWatchConfig {
    /// Free bytes under which a file system of `total` bytes is low: the
    /// larger of the two thresholds (0: never low).
    pub fn threshold(&self, total: u64) -> u64 {
        // Precision loss above 2^53 bytes is irrelevant for a threshold.
        let by_percent = (total as f64 * self.warn_free_percent / 100.0) as u64;
        by_percent.max(self.warn_free_bytes)
    }
}

impl DiskSettings {
    /// The watch's configuration, checked.
    pub fn resolve(&self) -> Result<DiskWatchConfig, ConfigError> {
        let base = DiskWatchConfig::default();
        let invalid = |message: String| ConfigError::Invalid { key: "disk", message };
        let interval = match self.check_interval_secs {
            Some(0) => {
                return Err(invalid(
                    "[disk] check_interval_secs: expected a number of seconds above 0, got 0".into(),
                ))
            }
            Some(s) => Duration::from_secs(s),
            None => base.interval,
        };
        let percent = match self.warn_free_percent {
            Some(p) if !(0.0..=100.0).contains(&p) => {
                return Err(invalid(format!("[disk] warn_free_percent: expected 0 to 100, got {p}")))
            }
            Some(p) => p,
            None => base.warn_free_percent,
        };
        let bytes = match self.warn_free_mb {
            Some(mb) => mb.checked_mul(1 << 20).ok_or_else(|| {
                invalid(format!(
                    "[disk] warn_free_mb: {mb} MiB does not fit in 64 bits of bytes"
                ))
            })?,
            None => base.warn_free_bytes,
        };
        Ok(DiskWatchConfig {
            interval,
            warn_free_percent: percent,
            warn_free_bytes: bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DiskWatchConfig, String> {
        let s: DiskSettings = toml::from_str(text).map_err(|e| e.to_string())?;
        s.resolve().map_err(|e| e.to_string())
    }

    #[test]
    fn absent_keys_keep_the_defaults_and_written_ones_are_read() {
        assert_eq!(parse("").expect("resolves"), DiskWatchConfig::default());
        let c = parse("check_interval_secs = 2\nwarn_free_percent = 5.5\nwarn_free_mb = 100\n").expect("resolves");
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.warn_free_percent, 5.5);
        assert_eq!(c.warn_free_bytes, 100 << 20);
        // An integer percentage reads as one.
        assert_eq!(
            parse("warn_free_percent = 100\n").expect("resolves").warn_free_percent,
            100.0
        );
    }

    #[test]
    fn the_threshold_is_the_larger_of_percent_and_bytes() {
        let c = DiskWatchConfig::default();
        // 10% of 100 GiB beats 1 GiB; 1 GiB beats 10% of 4 GiB.
        assert_eq!(c.threshold(100 << 30), 10 << 30);
        assert_eq!(c.threshold(4 << 30), 1 << 30);
        let off = DiskWatchConfig {
            warn_free_percent: 0.0,
            warn_free_bytes: 0,
            ..c
        };
        assert_eq!(off.threshold(100 << 30), 0);
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        for (text, key) in [
            ("check_interval_secs = 0\n", "check_interval_secs"),
            ("warn_free_percent = 101.0\n", "warn_free_percent"),
            ("warn_free_percent = -1.0\n", "warn_free_percent"),
            ("warn_free_mb = 17592186044416\n", "warn_free_mb"),
            ("warn_free = 1\n", "warn_free"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
