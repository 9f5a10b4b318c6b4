//! The `[maintenance]` section: how often the node runs its own periodic
//! work, and so publishes the events of the Maintenance category.
//!
//! ```toml
//! [maintenance]
//! health_interval = 60       # seconds between HealthCheck events; 0 = none
//! utxo_audit_interval = 3600 # seconds between UTXO audits (MaintenanceStarted/Completed); 0 = none
//! ```
//!
//! Both run once at start, then every interval.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[maintenance]` as written; `None` = the built-in default.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSettings {
    /// Seconds between two `HealthCheck` events; 0 turns them off.
    pub health_interval: Option<u64>,
    /// Seconds between two UTXO audits; 0 turns them off.
    pub utxo_audit_interval: Option<u64>,
}

/// The resolved periods; `None`: never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maintenance {
    /// `HealthCheck`, default 60 s ([disk] has its own period).
    pub health_interval: Option<Duration>,
    /// The UTXO audit, default 1 h.
    pub utxo_audit_interval: Option<Duration>,
}

impl MaintenanceSettings {
    /// The written values over the defaults (60 s and 3600 s).
    pub fn resolve(&self) -> Result<Maintenance, ConfigError> {
        let period = |v: Option<u64>, default: u64| match v.unwrap_or(default) {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        };
        Ok(Maintenance {
            health_interval: period(self.health_interval, 60),
            utxo_audit_interval: period(self.utxo_audit_interval, 3600),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_minute_and_an_hour_and_zero_turns_one_off() {
        let d = MaintenanceSettings::default().resolve().expect("defaults");
        assert_eq!(
            (d.health_interval, d.utxo_audit_interval),
            (Some(Duration::from_secs(60)), Some(Duration::from_secs(3600)))
        );
        let file: MaintenanceSettings =
            toml::from_str("health_interval = 1\nutxo_audit_interval = 0\n").expect("parses");
        let m = file.resolve().expect("valid");
        assert_eq!(
            (m.health_interval, m.utxo_audit_interval),
            (Some(Duration::from_secs(1)), None)
        );
        assert!(toml::from_str::<MaintenanceSettings>("health = 1\n").is_err());
    }
}
