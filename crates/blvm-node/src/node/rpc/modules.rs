//! Module administration: `listmodules`, `loadmodule`, `unloadmodule`,
//! `reloadmodule`, `getmodulestatus`, `getmoduledeliverystats`,
//! `removemodulestorage`.

use std::sync::Arc;

use blvm_module_host::api::durable::DurableStatus;
use blvm_module_host::api::events::DeliveryStats;
use blvm_module_host::manager::{CrashRecord, ModuleStatus};
use blvm_module_protocol::methods::events::ChainPoint;
use serde_json::{json, Value};

use super::Method;
use crate::node::Node;
use crate::rpc::{Params, RpcError};

pub(super) const METHODS: &[(&str, &str, Method)] = &[
    ("listmodules", "listmodules\nLists the loaded modules with their version and state.", listmodules),
    ("loadmodule", "loadmodule \"name\"\nVerifies and loads a module from the modules directory.", loadmodule),
    ("unloadmodule", "unloadmodule \"name\"\nStops a module (its dependents first) and forgets it.", unloadmodule),
    ("reloadmodule", "reloadmodule \"name\"\nRestarts a module from disk, verifying it again first.", reloadmodule),
    ("getmodulestatus", "getmodulestatus ( \"name\" )\nStatus of one module or of all: state, pid, uptime, restarts and crashes, last error, capabilities granted and requested, resource usage, delivery stats.", getmodulestatus),
    ("getmoduledeliverystats", "getmoduledeliverystats ( \"module_id\" )\nEvent delivery counters of one module spawn or of all.", getmoduledeliverystats),
    ("removemodulestorage", "removemodulestorage \"name\"\nDeletes everything a module keeps in its module storage (refused while it is loaded). Answers whether there was anything.", removemodulestorage),
];

/// Runs a manager future from the RPC's blocking thread.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

fn stats_json(s: &DeliveryStats) -> Value {
    json!({
        "module_id": s.module_id,
        "module_name": s.module_name,
        "delivered": s.delivered,
        "dropped_full": s.dropped_full,
        "dropped_closed": s.dropped_closed,
        "encode_errors": s.encode_errors,
        "queue_capacity": s.queue_capacity,
    })
}

fn crash_json(c: &CrashRecord) -> Value {
    json!({
        "time": c.at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "backoff_ms": c.backoff.map(|b| b.as_millis() as u64),
        "restarted_after_ms": c.restarted_after.map(|d| d.as_millis() as u64),
    })
}

fn status_json(s: &ModuleStatus) -> Value {
    let mut status = json!({
        "name": s.name,
        "version": s.version,
        "state": s.state.as_str(),
        "module_id": s.module_id,
        "pid": s.pid,
        "uptime": s.uptime.map(|u| u.as_secs()),
        "restarts": s.restarts,
        "last_error": s.last_error,
        "capabilities": s.capabilities.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "requested_capabilities": s.requested_capabilities.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "crashes": s.crashes.iter().map(crash_json).collect::<Vec<_>>(),
        "cpu_time_ms": s.usage.map(|u| u.cpu_time_ms),
        "rss_bytes": s.usage.map(|u| u.rss_bytes),
        "processes": s.usage.map(|u| u.processes),
        "max_open_files": s.usage.map(|u| u.max_open_files),
        "delivery": s.delivery.as_ref().map(stats_json),
        "sandbox_layers": s.sandbox_layers,
        "signed_by": s.signed_by,
        "tier": s.tier,
        "rate_limited": s.rate_limited,
        "logs_dropped": s.logs_dropped,
        "unresponsive": s.unresponsive,
        "health_checks": s.health_checks,
        "limit_cgroups": s.limit_cgroups,
        "cpu_quota_percent": s.cpu_quota_percent,
        "cpu_weight": s.cpu_weight,
        "resource_warnings": s.resource_warnings,
        "uid": s.run_as.map(|ids| ids.uid),
        "gid": s.run_as.map(|ids| ids.gid),
        "disk_used_bytes": s.disk.map(|d| d.used),
        "disk_size_bytes": s.disk.map(|d| d.size),
        "storage_bytes": s.storage.map(|u| u.bytes),
        "storage_keys": s.storage.map(|u| u.keys),
        "storage_max_bytes": s.storage.map(|u| u.max_bytes),
        "storage_max_keys": s.storage.map(|u| u.max_keys),
        "metric_series": s.metric_series,
        "max_metric_series": s.max_metric_series,
        "rpc_endpoints": s.rpc_endpoints,
        "max_rpc_endpoints": s.max_rpc_endpoints,
        "rpc_timeout_ms": s.rpc_timeout.as_millis() as u64,
        "inter_module": inter_module(s),
    });
    // Added apart: one more field in the `json!` above passes the
    // macro's recursion limit.
    if let Value::Object(fields) = &mut status {
        fields.extend(timers_json(s));
        fields.insert("durable".into(), s.durable.as_ref().map_or(Value::Null, durable_json));
    }
    status
}

/// The status's durable subscription (operator guide 31).
fn durable_json(d: &DurableStatus) -> Value {
    let point = |p: Option<ChainPoint>| p.map(|p| json!({"height": p.height, "hash": p.hash.to_string()}));
    json!({
        "events": d.types.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "cursor_seq": d.cursor.seq,
        "cursor": point(d.cursor.at),
        "sent": point(d.sent),
        "unacked": d.unacked,
        "lag_blocks": d.lag_blocks,
    })
}

/// The status's timer fields (operator guide 27).
fn timers_json(s: &ModuleStatus) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("timers".into(), json!(s.timers));
    fields.insert("max_timers".into(), json!(s.max_timers));
    fields.insert(
        "timer_fire_timeout_ms".into(),
        json!(u64::try_from(s.timer_fire_timeout.as_millis()).unwrap_or(u64::MAX)),
    );
    fields
}

/// The status's `inter_module` object: its limits, its API, what it may
/// publish.
fn inter_module(s: &ModuleStatus) -> Value {
    json!({
        "call_timeout_ms": u64::try_from(s.inter_module.call_timeout.as_millis()).unwrap_or(u64::MAX),
        "max_api_methods": s.inter_module.max_api_methods,
        "publish_rate": s.inter_module.publish_rate.per_second,
        "publish_burst": s.inter_module.publish_rate.burst,
        "api_methods": s.api_methods,
        "publishes": s.publishes,
    })
}

fn name(p: &Params) -> Result<String, RpcError> {
    p.required(0, "name")
}

fn listmodules(node: &Arc<Node>, _: &Params) -> Result<Value, RpcError> {
    Ok(json!(node
        .manager
        .status()
        .iter()
        .map(|s| json!({"name": s.name, "version": s.version, "state": s.state.as_str()}))
        .collect::<Vec<_>>()))
}

fn loadmodule(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let name = name(p)?;
    let discovery = blvm_module_host::registry::discover(&node.config.modules_dir);
    let Some(module) = discovery.modules.iter().find(|m| m.name() == name) else {
        let why = discovery
            .errors
            .iter()
            .map(|e| e.to_string())
            .find(|e| e.contains(&name))
            .unwrap_or_else(|| format!("no module `{name}` in {}", node.config.modules_dir.display()));
        return Err(RpcError::invalid_parameter(why));
    };
    block_on(node.manager.load_discovered(module)).map_err(|e| RpcError::misc(e.to_string()))?;
    Ok(node
        .manager
        .module_status(&name)
        .map_or(Value::Null, |s| status_json(&s)))
}

fn unloadmodule(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let name = name(p)?;
    block_on(node.manager.unload_module(&name)).map_err(|e| RpcError::misc(e.to_string()))?;
    Ok(Value::Null)
}

fn reloadmodule(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let name = name(p)?;
    block_on(node.manager.reload_module(&name)).map_err(|e| RpcError::misc(e.to_string()))?;
    Ok(node
        .manager
        .module_status(&name)
        .map_or(Value::Null, |s| status_json(&s)))
}

fn getmodulestatus(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    match p.get::<String>(0, "name")? {
        Some(name) => node
            .manager
            .module_status(&name)
            .map(|s| status_json(&s))
            .ok_or_else(|| RpcError::invalid_parameter(format!("module `{name}` is not loaded"))),
        None => Ok(json!(node.manager.status().iter().map(status_json).collect::<Vec<_>>())),
    }
}

fn getmoduledeliverystats(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let events = node.manager.events();
    match p.get::<String>(0, "module_id")? {
        Some(id) => events
            .get_delivery_stats(&id)
            .map(|s| stats_json(&s))
            .ok_or_else(|| RpcError::invalid_parameter(format!("no delivery stats for `{id}`"))),
        None => Ok(json!(events
            .get_all_delivery_stats()
            .iter()
            .map(stats_json)
            .collect::<Vec<_>>())),
    }
}

fn removemodulestorage(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let name = name(p)?;
    let removed = node
        .manager
        .remove_storage(&name)
        .map_err(|e| RpcError::misc(e.to_string()))?;
    Ok(json!({ "removed": removed }))
}
