//! The `[modules]` section: the operator's say over every module and over
//! each one, `[modules.<name>]`.
//!
//! ```toml
//! [modules]                      # defaults for every module
//! capabilities = ["subscribe_events", "read_blockchain", "read_chain_state"]
//! event_queue_capacity = 100
//! max_metric_series = 1000       # metric series a module may report
//! call_timeout_ms = 10000        # longest a call_module waits for its answer
//! max_api_methods = 64           # API methods a module may register
//! publish_rate = 1000            # events a module may publish per second …
//! publish_burst = 1000           # … and at once
//! max_rpc_endpoints = 32         # JSON-RPC methods a module may register
//! rpc_timeout_ms = 10000         # how long a JSON-RPC call waits for the module
//! max_timers = 64                # timers a module may have at once
//! timer_fire_timeout_ms = 30000  # how long a timer fire waits for the answer
//!
//! [modules.block-stats]
//! capabilities = ["subscribe_events", "read_blockchain"]   # replaces the default for it
//! event_queue_capacity = 1000
//! max_metric_series = 50
//! rpc_timeout_ms = 2000
//! max_timers = 8
//! timer_fire_timeout_ms = 5000
//! verbose = "true"               # any other key: the module's own configuration
//! ```
//!
//! `capabilities` is an allow-list: a module gets what its manifest
//! requests *and* the list allows (absent: everything it requests). A
//! module's own list replaces the default one, it is not combined with it.
//! `capabilities`, `event_queue_capacity`, `max_metric_series`,
//! `max_rpc_endpoints`, `rpc_timeout_ms`, `max_timers`, `timer_fire_timeout_ms` and the inter-module keys
//! ([`INTER_MODULE_KEYS`]) in `[modules.<name>]` are the node's and never
//! reach the module; every other key is merged over the module's
//! `config.toml`. A module's own inter-module key replaces the default for
//! it; the keys it does not set keep the default.

use std::collections::BTreeMap;
use std::time::Duration;

use blvm_module_protocol::PermissionSet;

use super::ConfigError;

/// The largest event queue the config may ask for: queues are allocated
/// up front, a few tens of bytes per slot.
pub const MAX_EVENT_QUEUE_CAPACITY: u64 = 1_000_000;

/// The largest series cap the config may set: every series is kept in
/// memory and written at every scrape.
pub const MAX_METRIC_SERIES: u64 = 1_000_000;

/// The inter-module limit keys, valid in `[modules]` and in each
/// `[modules.<name>]`, with their ranges: `call_timeout_ms`,
/// `max_api_methods`, `publish_rate`, `publish_burst`.
pub const INTER_MODULE_KEYS: [(&str, u64, u64); 4] = [
    ("call_timeout_ms", 1, 3_600_000),
    ("max_api_methods", 0, 10_000),
    ("publish_rate", 1, 1_000_000),
    ("publish_burst", 1, 1_000_000),
];

/// Inter-module limit keys as written: each `None` when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterModuleKeys {
    /// `call_timeout_ms`.
    pub call_timeout_ms: Option<u64>,
    /// `max_api_methods`.
    pub max_api_methods: Option<u64>,
    /// `publish_rate`.
    pub publish_rate: Option<u64>,
    /// `publish_burst`.
    pub publish_burst: Option<u64>,
}

impl InterModuleKeys {
    fn slot(&mut self, key: &str) -> Option<&mut Option<u64>> {
        match key {
            "call_timeout_ms" => Some(&mut self.call_timeout_ms),
            "max_api_methods" => Some(&mut self.max_api_methods),
            "publish_rate" => Some(&mut self.publish_rate),
            "publish_burst" => Some(&mut self.publish_burst),
            _ => None,
        }
    }

    /// `base` with the keys set here replacing its values.
    pub fn over(
        &self,
        base: blvm_module_host::services::modules::ModuleCallLimits,
    ) -> blvm_module_host::services::modules::ModuleCallLimits {
        use std::time::Duration;
        let mut l = base;
        if let Some(ms) = self.call_timeout_ms {
            l.call_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = self.max_api_methods {
            l.max_api_methods = n as usize;
        }
        if let Some(n) = self.publish_rate {
            l.publish_rate.per_second = n as u32;
        }
        if let Some(n) = self.publish_burst {
            l.publish_rate.burst = n as u32;
        }
        l
    }
}

/// Reads inter-module key `key` of `section` into `keys`; false when
/// `key` is not one of them.
fn inter_module_key(
    keys: &mut InterModuleKeys,
    section: &str,
    key: &str,
    value: &toml::Value,
) -> Result<bool, ConfigError> {
    let Some((_, min, max)) = INTER_MODULE_KEYS.iter().find(|(k, _, _)| *k == key) else {
        return Ok(false);
    };
    let n = in_range(section, key, "a whole number", (*min, *max), value)?;
    if let Some(slot) = keys.slot(key) {
        *slot = Some(n);
    }
    Ok(true)
}

/// The most JSON-RPC methods the config may let one module register.
pub const MAX_RPC_ENDPOINTS: u64 = 1000;

/// The longest JSON-RPC deadline the config may set, in ms (10 minutes):
/// each waiting call holds a thread of the server's pool.
pub const MAX_RPC_TIMEOUT_MS: u64 = 600_000;

/// The largest timer cap the config may set: each timer holds a task.
pub const MAX_TIMERS: u64 = 100_000;

/// The longest fire deadline the config may set, in ms (one hour).
pub const MAX_TIMER_FIRE_TIMEOUT_MS: u64 = 3_600_000;

/// `[modules]` resolved: what the module manager takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulesConfig {
    /// `[modules] capabilities`; `None`: all (a module gets what it
    /// requests).
    pub default_capabilities: Option<PermissionSet>,
    /// `[modules.<name>] capabilities`.
    pub capabilities: BTreeMap<String, PermissionSet>,
    /// `[modules] event_queue_capacity`; `None`: the host's default (100).
    pub event_queue_capacity: Option<usize>,
    /// `[modules.<name>] event_queue_capacity`.
    pub event_queue_capacities: BTreeMap<String, usize>,
    /// `[modules] max_metric_series`; `None`: the host's default (1000).
    pub max_metric_series: Option<usize>,
    /// `[modules.<name>] max_metric_series`.
    pub max_metric_series_per_module: BTreeMap<String, usize>,
    /// `[modules]`'s inter-module keys.
    pub inter_module: InterModuleKeys,
    /// Each `[modules.<name>]`'s inter-module keys, where it sets any.
    pub inter_module_per_module: BTreeMap<String, InterModuleKeys>,
    /// `[modules] max_rpc_endpoints`; `None`: the host's default (32).
    pub max_rpc_endpoints: Option<usize>,
    /// `[modules.<name>] max_rpc_endpoints`.
    pub max_rpc_endpoints_per_module: BTreeMap<String, usize>,
    /// `[modules] rpc_timeout_ms`; `None`: the host's default (10 s).
    pub rpc_timeout: Option<Duration>,
    /// `[modules.<name>] rpc_timeout_ms`.
    pub rpc_timeout_per_module: BTreeMap<String, Duration>,
    /// `[modules] max_timers`; `None`: the host's default (64).
    pub max_timers: Option<usize>,
    /// `[modules.<name>] max_timers`.
    pub max_timers_per_module: BTreeMap<String, usize>,
    /// `[modules] timer_fire_timeout_ms`; `None`: the host's default (30 s).
    pub timer_fire_timeout: Option<Duration>,
    /// `[modules.<name>] timer_fire_timeout_ms`.
    pub timer_fire_timeouts: BTreeMap<String, Duration>,
    /// The other keys of each `[modules.<name>]`, flattened to dotted keys.
    pub module_configs: BTreeMap<String, BTreeMap<String, String>>,
}

/// Resolves the whole `[modules]` table: tables are modules, other values
/// are the defaults (only `capabilities` and `event_queue_capacity`).
pub fn resolve(table: &toml::Table) -> Result<ModulesConfig, ConfigError> {
    let mut out = ModulesConfig::default();
    for (key, value) in table {
        let toml::Value::Table(section) = value else {
            match key.as_str() {
                "capabilities" => out.default_capabilities = Some(capabilities("[modules]", value)?),
                "event_queue_capacity" => out.event_queue_capacity = Some(queue_capacity("[modules]", value)?),
                "max_metric_series" => out.max_metric_series = Some(series_cap("[modules]", value)?),
                "max_rpc_endpoints" => out.max_rpc_endpoints = Some(endpoint_cap("[modules]", value)?),
                "rpc_timeout_ms" => out.rpc_timeout = Some(rpc_timeout("[modules]", value)?),
                "max_timers" => out.max_timers = Some(timer_cap("[modules]", value)?),
                "timer_fire_timeout_ms" => out.timer_fire_timeout = Some(fire_timeout("[modules]", value)?),
                other if inter_module_key(&mut out.inter_module, "[modules]", other, value)? => {}
                other => {
                    return Err(invalid(format!(
                        "[modules] {other}: expected `capabilities`, `event_queue_capacity`, `max_metric_series`, \
                         `max_rpc_endpoints`, `rpc_timeout_ms`, `max_timers`, `timer_fire_timeout_ms`, \
                         `call_timeout_ms`, `max_api_methods`, \
                         `publish_rate`, `publish_burst` or a [modules.<name>] table"
                    )))
                }
            }
            continue;
        };
        let where_ = format!("[modules.{key}]");
        let mut own = section.clone();
        if let Some(v) = own.remove("capabilities") {
            out.capabilities.insert(key.clone(), capabilities(&where_, &v)?);
        }
        if let Some(v) = own.remove("event_queue_capacity") {
            out.event_queue_capacities
                .insert(key.clone(), queue_capacity(&where_, &v)?);
        }
        if let Some(v) = own.remove("max_metric_series") {
            out.max_metric_series_per_module
                .insert(key.clone(), series_cap(&where_, &v)?);
        }
        if let Some(v) = own.remove("max_timers") {
            out.max_timers_per_module.insert(key.clone(), timer_cap(&where_, &v)?);
        }
        if let Some(v) = own.remove("timer_fire_timeout_ms") {
            out.timer_fire_timeouts.insert(key.clone(), fire_timeout(&where_, &v)?);
        }
        let mut keys = InterModuleKeys::default();
        for (k, _, _) in INTER_MODULE_KEYS {
            if let Some(v) = own.remove(k) {
                inter_module_key(&mut keys, &where_, k, &v)?;
            }
        }
        if keys != InterModuleKeys::default() {
            out.inter_module_per_module.insert(key.clone(), keys);
        }
        if let Some(v) = own.remove("max_rpc_endpoints") {
            out.max_rpc_endpoints_per_module
                .insert(key.clone(), endpoint_cap(&where_, &v)?);
        }
        if let Some(v) = own.remove("rpc_timeout_ms") {
            out.rpc_timeout_per_module
                .insert(key.clone(), rpc_timeout(&where_, &v)?);
        }
        let flat = blvm_module_host::registry::flatten_config(&own).map_err(|e| invalid(format!("{where_}: {e}")))?;
        out.module_configs.insert(key.clone(), flat);
    }
    Ok(out)
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid {
        key: "modules",
        message,
    }
}

fn capabilities(section: &str, value: &toml::Value) -> Result<PermissionSet, ConfigError> {
    let bad = || {
        invalid(format!(
            "{section} capabilities: expected a list of capability names, got {}",
            shown(value)
        ))
    };
    let names = value.as_array().ok_or_else(bad)?;
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.as_str().ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    PermissionSet::from_names(names).map_err(|e| {
        invalid(format!(
            "{section} capabilities: unknown capability `{}` (the names are in ipc-protocol.md §8.1)",
            e.name
        ))
    })
}

/// A value for a message (this `toml` build cannot print one).
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::String(s) => format!("\"{s}\""),
        other => format!("a {}", other.type_str()),
    }
}

/// Every numeric limit key of `[modules]` and `[modules.<name>]` that is
/// not an inter-module one ([`INTER_MODULE_KEYS`]): its name, the unit its
/// error message counts in, and its range. One table, so that every key is
/// checked and worded alike.
const LIMIT_KEYS: [(&str, &str, u64, u64); 6] = [
    // At most a million: fits any usize.
    ("event_queue_capacity", "events", 1, MAX_EVENT_QUEUE_CAPACITY),
    // 0 is allowed for the caps: no metrics, endpoints or timers.
    ("max_metric_series", "series", 0, MAX_METRIC_SERIES),
    ("max_rpc_endpoints", "methods", 0, MAX_RPC_ENDPOINTS),
    ("max_timers", "timers", 0, MAX_TIMERS),
    ("rpc_timeout_ms", "milliseconds", 1, MAX_RPC_TIMEOUT_MS),
    ("timer_fire_timeout_ms", "milliseconds", 1, MAX_TIMER_FIRE_TIMEOUT_MS),
];

/// Limit key `key` of `section` (one of [`LIMIT_KEYS`]) read and checked
/// against its range.
fn limit(section: &str, key: &str, value: &toml::Value) -> Result<u64, ConfigError> {
    let (_, unit, min, max) = LIMIT_KEYS
        .iter()
        .copied()
        .find(|(k, ..)| *k == key)
        // Only this file calls it, with the keys of the table.
        .unwrap_or((key, "units", 0, 0));
    in_range(section, key, unit, (min, max), value)
}

/// `value` as a whole number in `min..=max`, or the error naming `section`,
/// `key` and what was expected (`<unit> from <min> to <max>`).
fn in_range(
    section: &str,
    key: &str,
    unit: &str,
    (min, max): (u64, u64),
    value: &toml::Value,
) -> Result<u64, ConfigError> {
    value
        .as_integer()
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            invalid(format!(
                "{section} {key}: expected {unit} from {min} to {max}, got {}",
                shown(value)
            ))
        })
}

fn queue_capacity(section: &str, value: &toml::Value) -> Result<usize, ConfigError> {
    // Every limit's maximum fits any usize.
    limit(section, "event_queue_capacity", value).map(|n| n as usize)
}

fn series_cap(section: &str, value: &toml::Value) -> Result<usize, ConfigError> {
    limit(section, "max_metric_series", value).map(|n| n as usize)
}

fn endpoint_cap(section: &str, value: &toml::Value) -> Result<usize, ConfigError> {
    limit(section, "max_rpc_endpoints", value).map(|n| n as usize)
}

fn timer_cap(section: &str, value: &toml::Value) -> Result<usize, ConfigError> {
    limit(section, "max_timers", value).map(|n| n as usize)
}

fn rpc_timeout(section: &str, value: &toml::Value) -> Result<Duration, ConfigError> {
    limit(section, "rpc_timeout_ms", value).map(Duration::from_millis)
}

fn fire_timeout(section: &str, value: &toml::Value) -> Result<Duration, ConfigError> {
    limit(section, "timer_fire_timeout_ms", value).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use blvm_module_protocol::Permission;

    use super::*;

    fn parse(text: &str) -> Result<ModulesConfig, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let modules = table
            .get("modules")
            .and_then(|m| m.as_table())
            .cloned()
            .unwrap_or_default();
        resolve(&modules).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_per_module_keys_are_the_nodes_and_the_rest_is_the_modules_config() {
        let c = parse(
            "[modules]\ncapabilities = [\"subscribe_events\"]\nevent_queue_capacity = 50\n\
             [modules.block-stats]\ncapabilities = [\"read_blockchain\", \"subscribe_events\"]\n\
             event_queue_capacity = 1000\nverbose = \"true\"\n[modules.block-stats.report]\nevery = 6\n",
        )
        .expect("resolves");
        assert_eq!(
            c.default_capabilities,
            Some([Permission::SubscribeEvents].into_iter().collect())
        );
        assert_eq!(
            c.capabilities["block-stats"],
            [Permission::ReadBlockchain, Permission::SubscribeEvents]
                .into_iter()
                .collect()
        );
        assert_eq!(
            (c.event_queue_capacity, c.event_queue_capacities["block-stats"]),
            (Some(50), 1000)
        );
        // The node's keys never reach the module.
        assert_eq!(
            c.module_configs["block-stats"],
            BTreeMap::from([
                ("report.every".to_string(), "6".to_string()),
                ("verbose".to_string(), "true".to_string())
            ])
        );
        // Nothing written: the host's defaults.
        assert_eq!(parse("").expect("resolves"), ModulesConfig::default());
        assert_eq!(
            parse("[modules.x]\ncapabilities = []\n")
                .expect("resolves")
                .capabilities["x"],
            PermissionSet::empty()
        );
    }

    #[test]
    fn the_series_cap_has_a_default_and_a_per_module_key_that_never_reaches_the_module() {
        let c = parse("[modules]\nmax_metric_series = 200\n[modules.block-stats]\nmax_metric_series = 0\nx = \"1\"\n")
            .expect("resolves");
        assert_eq!(c.max_metric_series, Some(200));
        assert_eq!(c.max_metric_series_per_module["block-stats"], 0);
        assert!(!c.module_configs["block-stats"].contains_key("max_metric_series"));
        for text in [
            "[modules]\nmax_metric_series = -1\n",
            "[modules.x]\nmax_metric_series = 1000001\n",
            "[modules]\nmax_metric_series = \"many\"\n",
        ] {
            let e = parse(text).expect_err(text);
            assert!(
                e.contains("max_metric_series: expected series from 0 to 1000000"),
                "{e}"
            );
        }
    }

    #[test]
    fn inter_module_keys_have_defaults_and_per_module_values_that_never_reach_the_module() {
        let c = parse(
            "[modules]\ncall_timeout_ms = 2000\npublish_rate = 10\n[modules.pay]\npublish_burst = 3\nx = \"1\"\n",
        )
        .expect("resolves");
        let base = c.inter_module.over(Default::default());
        assert_eq!(base.call_timeout, std::time::Duration::from_secs(2));
        assert_eq!((base.publish_rate.per_second, base.max_api_methods), (10, 64));
        let pay = c.inter_module_per_module["pay"].over(base);
        assert_eq!((pay.publish_rate.per_second, pay.publish_rate.burst), (10, 3));
        assert_eq!(pay.call_timeout, std::time::Duration::from_secs(2));
        assert_eq!(c.module_configs["pay"].keys().collect::<Vec<_>>(), ["x"]);
        let e = parse("[modules.pay]\ncall_timeout_ms = 0\n").expect_err("0 ms");
        assert!(
            e.contains("[modules.pay] call_timeout_ms: expected a whole number from 1"),
            "{e}"
        );
    }

    #[test]
    fn the_rpc_endpoint_limits_have_a_default_and_a_per_module_key_that_never_reaches_the_module() {
        let c = parse(
            "[modules]\nrpc_timeout_ms = 3000\nmax_rpc_endpoints = 4\n\
             [modules.block-stats]\nrpc_timeout_ms = 50\nmax_rpc_endpoints = 0\nx = \"1\"\n",
        )
        .expect("resolves");
        assert_eq!(
            (c.rpc_timeout, c.max_rpc_endpoints),
            (Some(Duration::from_millis(3000)), Some(4))
        );
        assert_eq!(c.rpc_timeout_per_module["block-stats"], Duration::from_millis(50));
        assert_eq!(c.max_rpc_endpoints_per_module["block-stats"], 0);
        assert!(!c.module_configs["block-stats"].contains_key("rpc_timeout_ms"));
        assert!(!c.module_configs["block-stats"].contains_key("max_rpc_endpoints"));
        for (text, needle) in [
            (
                "[modules]\nrpc_timeout_ms = 0\n",
                "rpc_timeout_ms: expected milliseconds from 1 to 600000",
            ),
            (
                "[modules.x]\nrpc_timeout_ms = \"1s\"\n",
                "rpc_timeout_ms: expected milliseconds",
            ),
            (
                "[modules]\nmax_rpc_endpoints = 1001\n",
                "max_rpc_endpoints: expected methods from 0 to 1000",
            ),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn the_timer_cap_and_fire_deadline_have_a_default_and_per_module_keys_that_never_reach_the_module() {
        let c = parse(
            "[modules]\nmax_timers = 16\ntimer_fire_timeout_ms = 2000\n\
             [modules.block-stats]\nmax_timers = 0\ntimer_fire_timeout_ms = 50\nx = \"1\"\n",
        )
        .expect("resolves");
        assert_eq!(
            (c.max_timers, c.timer_fire_timeout),
            (Some(16), Some(Duration::from_secs(2)))
        );
        assert_eq!(
            (
                c.max_timers_per_module["block-stats"],
                c.timer_fire_timeouts["block-stats"]
            ),
            (0, Duration::from_millis(50))
        );
        assert!(!c.module_configs["block-stats"].contains_key("max_timers"));
        assert!(!c.module_configs["block-stats"].contains_key("timer_fire_timeout_ms"));
        for (text, needle) in [
            (
                "[modules]\nmax_timers = -1\n",
                "max_timers: expected timers from 0 to 100000",
            ),
            (
                "[modules.x]\nmax_timers = 100001\n",
                "max_timers: expected timers from 0 to 100000",
            ),
            (
                "[modules]\ntimer_fire_timeout_ms = 0\n",
                "timer_fire_timeout_ms: expected milliseconds from 1 to 3600000",
            ),
            (
                "[modules.x]\ntimer_fire_timeout_ms = \"soon\"\n",
                "[modules.x] timer_fire_timeout_ms: expected milliseconds",
            ),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn bad_values_are_refused_naming_the_section_and_key() {
        for (text, needle) in [
            ("[modules]\ncapabilities = [\"read_everything\"]\n", "`read_everything`"),
            ("[modules.x]\ncapabilities = \"all\"\n", "[modules.x] capabilities"),
            (
                "[modules.x]\nevent_queue_capacity = 0\n",
                "[modules.x] event_queue_capacity",
            ),
            ("[modules]\nevent_queue_capacity = 1000001\n", "from 1 to 1000000"),
            ("[modules]\nverbose = true\n", "[modules] verbose"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
