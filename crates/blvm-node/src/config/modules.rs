//! The `[modules]` section: the operator's say over every module and over
//! each one, `[modules.<name>]`.
//!
//! ```toml
//! [modules]                      # defaults for every module
//! capabilities = ["subscribe_events", "read_blockchain", "read_chain_state"]
//! event_queue_capacity = 100
//! max_metric_series = 1000       # metric series a module may report
//!
//! [modules.block-stats]
//! capabilities = ["subscribe_events", "read_blockchain"]   # replaces the default for it
//! event_queue_capacity = 1000
//! max_metric_series = 50
//! verbose = "true"               # any other key: the module's own configuration
//! ```
//!
//! `capabilities` is an allow-list: a module gets what its manifest
//! requests *and* the list allows (absent: everything it requests). A
//! module's own list replaces the default one, it is not combined with it.
//! `capabilities`, `event_queue_capacity` and `max_metric_series` in
//! `[modules.<name>]` are the node's and never reach the module; every other
//! key is merged over the module's `config.toml`.

use std::collections::BTreeMap;

use blvm_module_protocol::PermissionSet;

use super::ConfigError;

/// The largest event queue the config may ask for: queues are allocated
/// up front, a few tens of bytes per slot.
pub const MAX_EVENT_QUEUE_CAPACITY: u64 = 1_000_000;

/// The largest series cap the config may set: every series is kept in
/// memory and written at every scrape.
pub const MAX_METRIC_SERIES: u64 = 1_000_000;

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
                other => {
                    return Err(invalid(format!(
                        "[modules] {other}: expected `capabilities`, `event_queue_capacity`, `max_metric_series` \
                         or a [modules.<name>] table"
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

fn queue_capacity(section: &str, value: &toml::Value) -> Result<usize, ConfigError> {
    match value.as_integer().and_then(|n| u64::try_from(n).ok()) {
        // At most a million: fits any usize.
        Some(n @ 1..=MAX_EVENT_QUEUE_CAPACITY) => Ok(n as usize),
        _ => Err(invalid(format!(
            "{section} event_queue_capacity: expected events from 1 to {MAX_EVENT_QUEUE_CAPACITY}, got {}",
            shown(value)
        ))),
    }
}

fn series_cap(section: &str, value: &toml::Value) -> Result<usize, ConfigError> {
    match value.as_integer().and_then(|n| u64::try_from(n).ok()) {
        // At most a million: fits any usize. 0 is allowed: no metrics.
        Some(n @ 0..=MAX_METRIC_SERIES) => Ok(n as usize),
        _ => Err(invalid(format!(
            "{section} max_metric_series: expected series from 0 to {MAX_METRIC_SERIES}, got {}",
            shown(value)
        ))),
    }
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
