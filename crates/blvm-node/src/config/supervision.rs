//! The `[supervision]` section: how the node checks that its running
//! modules are alive, and how it restarts those that crash.
//!
//! ```toml
//! [supervision]
//! health_check_interval = 10   # seconds between health checks of a module; 0 = none
//! health_check_timeout = 5     # seconds it has to answer (and may stay stopped) before it is restarted
//! restart_backoff_ms = 500     # wait before the first restart after a crash; doubles with each crash
//! max_restart_backoff_ms = 30000   # the longest wait
//! max_crashes = 5              # crashes within crash_window after which the module is failed
//! crash_window = 300           # seconds crashes are counted in
//! handshake_timeout = 10       # seconds from spawn to a completed handshake (a slow
//!                              # interpreter on a loaded host may need more)
//! ```
//!
//! A module whose main process is stopped (`SIGSTOP`) is `unresponsive` at
//! once, whatever the interval; one that does not answer a health check
//! within the timeout, or stays stopped that long, is killed and restarted
//! as a crash.

use std::time::Duration;

use blvm_module_host::manager::RestartPolicy;

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
    /// Milliseconds before the first restart of a crashed module; doubled
    /// for each further crash in the window.
    pub restart_backoff_ms: Option<u64>,
    /// The longest wait before a restart, milliseconds.
    pub max_restart_backoff_ms: Option<u64>,
    /// Crashes within `crash_window` after which the module is `failed`.
    pub max_crashes: Option<u32>,
    /// Seconds crashes are counted in.
    pub crash_window: Option<u64>,
    /// Seconds a spawned module has to complete its handshake before it
    /// is killed and its start fails.
    pub handshake_timeout: Option<u64>,
}

/// The liveness and restart settings the module manager takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervision {
    /// `None`: no health checks.
    pub health_check_interval: Option<Duration>,
    /// The deadline.
    pub health_check_timeout: Duration,
    /// Restarts after crashes.
    pub restart: RestartPolicy,
    /// From spawn to a completed handshake.
    pub handshake_timeout: Duration,
}

impl SupervisionSettings {
    /// The written values over the manager's defaults (10 s and 5 s; 0.5 s
    /// to 30 s of backoff, failed at the fifth crash within 300 s; 10 s to
    /// complete a handshake).
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
        let positive = |name: &str, v: Option<u64>| match v {
            Some(0) => Err(ConfigError::Invalid {
                key: "supervision",
                message: format!("[supervision] {name}: expected a number above 0, got 0"),
            }),
            other => Ok(other),
        };
        let base = defaults.restart;
        let initial = positive("restart_backoff_ms", self.restart_backoff_ms)?
            .map_or(base.initial_backoff, Duration::from_millis);
        let max = positive("max_restart_backoff_ms", self.max_restart_backoff_ms)?
            .map_or(base.max_backoff, Duration::from_millis);
        if max < initial {
            return Err(ConfigError::Invalid {
                key: "supervision",
                message: format!(
                    "[supervision] max_restart_backoff_ms: {} is below restart_backoff_ms {}",
                    max.as_millis(),
                    initial.as_millis()
                ),
            });
        }
        let restart = RestartPolicy {
            initial_backoff: initial,
            max_backoff: max,
            max_crashes: positive("max_crashes", self.max_crashes.map(u64::from))?
                .map_or(base.max_crashes, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            window: positive("crash_window", self.crash_window)?.map_or(base.window, Duration::from_secs),
        };
        let handshake_timeout = positive("handshake_timeout", self.handshake_timeout)?
            .map_or(defaults.handshake_timeout, Duration::from_secs);
        Ok(Supervision {
            health_check_interval: interval,
            health_check_timeout: timeout,
            restart,
            handshake_timeout,
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
    fn the_handshake_deadline_is_10_s_unless_written_and_never_0() {
        let s = SupervisionSettings::default().resolve().expect("defaults");
        assert_eq!(s.handshake_timeout, Duration::from_secs(10));
        let file: SupervisionSettings = toml::from_str("handshake_timeout = 60\n").expect("parses");
        assert_eq!(
            file.resolve().expect("valid").handshake_timeout,
            Duration::from_secs(60)
        );
        let zero: SupervisionSettings = toml::from_str("handshake_timeout = 0\n").expect("parses");
        assert!(zero.resolve().unwrap_err().to_string().contains("handshake_timeout"));
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

    #[test]
    fn restart_policy_is_read_over_its_defaults_and_checked() {
        let s = SupervisionSettings::default().resolve().expect("defaults");
        assert_eq!(
            (
                s.restart.initial_backoff,
                s.restart.max_backoff,
                s.restart.max_crashes,
                s.restart.window
            ),
            (
                Duration::from_millis(500),
                Duration::from_secs(30),
                5,
                Duration::from_secs(300)
            )
        );
        let file: SupervisionSettings = toml::from_str(
            "restart_backoff_ms = 200\nmax_restart_backoff_ms = 800\nmax_crashes = 3\ncrash_window = 60\n",
        )
        .expect("parses");
        let r = file.resolve().expect("valid").restart;
        assert_eq!(
            (r.initial_backoff, r.max_backoff, r.max_crashes, r.window),
            (
                Duration::from_millis(200),
                Duration::from_millis(800),
                3,
                Duration::from_secs(60)
            )
        );
        for (text, key) in [
            ("max_crashes = 0\n", "max_crashes"),
            ("restart_backoff_ms = 0\n", "restart_backoff_ms"),
            ("crash_window = 0\n", "crash_window"),
            (
                "restart_backoff_ms = 5000\nmax_restart_backoff_ms = 100\n",
                "max_restart_backoff_ms",
            ),
        ] {
            let zero: SupervisionSettings = toml::from_str(text).expect("parses");
            assert!(zero.resolve().unwrap_err().to_string().contains(key), "{text}");
        }
    }
}
