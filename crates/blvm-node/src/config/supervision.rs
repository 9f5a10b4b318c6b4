//! The `[supervision]` section: how the node checks that its running
//! modules are alive.
//!
//! ```toml
//! [supervision]
//! health_check_interval = 10   # seconds between health checks of a module; 0 = none
//! health_check_timeout = 5     # seconds it has to answer (and may stay stopped) before it is restarted
//! ```
//!
//! A module whose main process is stopped (`SIGSTOP`) is `unresponsive` at
//! once, whatever the interval; one that does not answer a health check
//! within the timeout, or stays stopped that long, is killed and restarted
//! as a crash.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// `[supervision]` as written; `None` = the built-in default.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionSettings {
    /// Seconds between two health checks of a running module; 0 turns them
    /// off (a stopped process is still noticed).
    pub health_check_interval: Option<u64>,
    /// Seconds a module has to answer a health check, and may stay stopped,
    /// before it is killed and restarted.
    pub health_check_timeout: Option<u64>,
}

/// The liveness settings the module manager takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervision {
    /// `None`: no health checks.
    pub health_check_interval: Option<Duration>,
    /// The deadline.
    pub health_check_timeout: Duration,
}

impl SupervisionSettings {
    /// The written values over the manager's defaults (10 s and 5 s).
    pub fn resolve(&self) -> Result<Supervision, ConfigError> {
        let defaults = blvm_module_host::ManagerConfig::new("", "", "");
        let interval = match self.health_check_interval {
            Some(0) => None,
            Some(secs) => Some(Duration::from_secs(secs)),
            None => defaults.health_check_interval,
        };
        let timeout = match self.health_check_timeout {
            Some(0) => {
                return Err(ConfigError::Invalid {
                    key: "supervision",
                    message: "[supervision] health_check_timeout: expected seconds above 0, got 0".into(),
                })
            }
            Some(secs) => Duration::from_secs(secs),
            None => defaults.health_check_timeout,
        };
        Ok(Supervision {
            health_check_interval: interval,
            health_check_timeout: timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_check_every_10_s_answered_within_5_s() {
        let s = SupervisionSettings::default().resolve().expect("defaults resolve");
        assert_eq!(s.health_check_interval, Some(Duration::from_secs(10)));
        assert_eq!(s.health_check_timeout, Duration::from_secs(5));
    }

    #[test]
    fn zero_turns_checks_off_and_a_zero_timeout_is_refused() {
        let file: SupervisionSettings =
            toml::from_str("health_check_interval = 0\nhealth_check_timeout = 2\n").expect("parses");
        let s = file.resolve().expect("valid");
        assert_eq!(
            (s.health_check_interval, s.health_check_timeout),
            (None, Duration::from_secs(2))
        );
        let zero: SupervisionSettings = toml::from_str("health_check_timeout = 0\n").expect("parses");
        assert!(zero.resolve().unwrap_err().to_string().contains("health_check_timeout"));
        assert!(toml::from_str::<SupervisionSettings>("health_interval = 3\n").is_err());
    }
}
