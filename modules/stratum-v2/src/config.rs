//! The module's configuration (`config.toml`, or `[modules.stratum-v2]`
//! in the node's config file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::Error;

/// Where the module listens when `listen` is not set: Bitcoin Core's
/// Template Provider port, on the loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8442";
/// The least fee improvement, in satoshis, worth a new template.
pub const DEFAULT_FEE_DELTA_SAT: u64 = 1000;
/// The least time between two templates on the same tip.
pub const DEFAULT_TEMPLATE_INTERVAL: Duration = Duration::from_millis(10_000);
/// How long the certificate signed for each Noise handshake is valid.
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::from_secs(3600);

/// The settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The TCP address pools connect to (`listen`).
    pub listen: SocketAddr,
    /// A template on the same tip is sent only when its fees beat the last
    /// one sent by at least this much (`fee_delta_sat`).
    pub fee_delta_sat: u64,
    /// ... and at most once per this interval (`template_interval_ms`).
    pub template_interval: Duration,
    /// The validity of each handshake's certificate (`cert_validity_sec`).
    pub cert_validity: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8442)),
            fee_delta_sat: DEFAULT_FEE_DELTA_SAT,
            template_interval: DEFAULT_TEMPLATE_INTERVAL,
            cert_validity: DEFAULT_CERT_VALIDITY,
        }
    }
}

fn number(config: &BTreeMap<String, String>, key: &'static str) -> Result<Option<u64>, Error> {
    config
        .get(key)
        .map(|v| {
            v.trim().parse::<u64>().map_err(|e| Error::Config {
                key,
                why: format!("`{v}` is not a non-negative integer: {e}"),
            })
        })
        .transpose()
}

impl Config {
    /// From the module's flattened configuration (`welcome.config`);
    /// every key is optional.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a value that does not parse.
    pub fn from_map(config: &BTreeMap<String, String>) -> Result<Config, Error> {
        let mut c = Config::default();
        if let Some(listen) = config.get("listen") {
            c.listen = listen.trim().parse().map_err(|e| Error::Config {
                key: "listen",
                why: format!("`{listen}` is not an `ip:port` address: {e}"),
            })?;
        }
        if let Some(v) = number(config, "fee_delta_sat")? {
            c.fee_delta_sat = v;
        }
        if let Some(v) = number(config, "template_interval_ms")? {
            c.template_interval = Duration::from_millis(v);
        }
        if let Some(v) = number(config, "cert_validity_sec")? {
            if v == 0 || v > u64::from(u32::MAX) {
                return Err(Error::Config {
                    key: "cert_validity_sec",
                    why: format!("{v} is not between 1 and {}", u32::MAX),
                });
            }
            c.cert_validity = Duration::from_secs(v);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_map(&BTreeMap::new()).expect("defaults");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.fee_delta_sat, 1000);
        assert_eq!(c.template_interval, Duration::from_secs(10));
        let c = Config::from_map(&map(&[
            ("listen", "127.0.0.1:18442"),
            ("fee_delta_sat", "5"),
            ("template_interval_ms", "250"),
            ("cert_validity_sec", "60"),
        ]))
        .expect("config");
        assert_eq!(c.listen.port(), 18442);
        assert_eq!(c.fee_delta_sat, 5);
        assert_eq!(c.template_interval, Duration::from_millis(250));
        assert_eq!(c.cert_validity, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("listen", "localhost"),
            ("fee_delta_sat", "-1"),
            ("template_interval_ms", "soon"),
            ("cert_validity_sec", "0"),
        ] {
            let e = Config::from_map(&map(&[(key, value)])).expect_err(key);
            assert!(e.to_string().contains(key), "{e}");
        }
    }
}
