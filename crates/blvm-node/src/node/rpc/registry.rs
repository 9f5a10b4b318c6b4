//! Installing modules from the registry into a running node:
//! `installmodule`, `updatemodule`, `removemodule`, `rollbackmodule`,
//! `searchmodules`. Each publishes the lifecycle events of what it changed
//! in `modules/`, then loads, reloads or unloads what runs to match.

use std::sync::Arc;

use blvm_registry::client::{Change, ChangeKind, Report};
use semver::VersionReq;
use serde_json::{json, Value};

use super::Method;
use crate::node::registry::{events_of, NodeRegistry, RegistryError};
use crate::node::Node;
use crate::rpc::{Params, RpcError};

pub(super) const METHODS: &[(&str, &str, Method)] = &[
    ("installmodule", "installmodule \"name\" ( \"range\" load )\nInstalls a module and its dependencies from the [registry] (the highest acceptable version in range, default \"*\"), verified before anything is written, and loads them unless load is false.", installmodule),
    ("updatemodule", "updatemodule \"name\"\nUpdates an installed module within the range it was installed with, and reloads it if it runs.", updatemodule),
    ("removemodule", "removemodule \"name\" ( force )\nRemoves a module installed from the registry (refused while another depends on it, unless force), unloading it first if it runs.", removemodule),
    ("rollbackmodule", "rollbackmodule \"name\"\nPuts back the version a module had before its last install or update, and reloads it if it runs.", rollbackmodule),
    ("searchmodules", "searchmodules ( \"query\" )\nModules of the registry's signed metadata whose name or description contains query: versions, yanked flags, tiers.", searchmodules),
];

/// Runs a manager future from the RPC's blocking thread.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

fn registry(node: &Node) -> Result<NodeRegistry, RpcError> {
    NodeRegistry::new(&node.config, node.manager.config().node_versions.clone())
        .ok_or_else(|| RpcError::misc(RegistryError::NotConfigured.to_string()))
}

fn failed(e: RegistryError) -> RpcError {
    RpcError::misc(e.to_string())
}

fn change_json(change: &Change) -> Value {
    let (kind, version, old) = match &change.kind {
        ChangeKind::Installed { version } => ("installed", version, None),
        ChangeKind::Updated { old, new } => ("updated", new, Some(old.to_string())),
        ChangeKind::Removed { version } => ("removed", version, None),
        ChangeKind::Unchanged { version } => ("unchanged", version, None),
    };
    json!({
        "name": change.name,
        "change": kind,
        "version": version.to_string(),
        "old_version": old,
        "tier": change.tier,
        "signed_by": change.signers,
        "review_overridden": change.review_overridden,
    })
}

/// Publishes `report`'s events and answers with its changes.
fn answer(node: &Node, report: &Report, from_registry: bool) -> Value {
    for event in events_of(report, from_registry) {
        node.publish(event);
    }
    json!({ "changes": report.changes.iter().map(change_json).collect::<Vec<_>>() })
}

/// Reloads each changed module that runs, so what runs is what is
/// installed; returns the names reloaded.
fn reload_changed(node: &Node, report: &Report) -> Result<Vec<String>, RpcError> {
    let mut reloaded = Vec::new();
    for change in &report.changes {
        if matches!(change.kind, ChangeKind::Updated { .. }) && node.manager.module_status(&change.name).is_some() {
            block_on(node.manager.reload_module(&change.name))
                .map_err(|e| RpcError::misc(format!("{} was updated on disk but not reloaded: {e}", change.name)))?;
            reloaded.push(change.name.clone());
        }
    }
    Ok(reloaded)
}

fn with_field(mut value: Value, key: &str, field: Value) -> Value {
    if let Value::Object(fields) = &mut value {
        fields.insert(key.to_owned(), field);
    }
    value
}

fn installmodule(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let name: String = p.required(0, "name")?;
    let range = p.get::<String>(1, "range")?.unwrap_or_else(|| "*".into());
    let req = VersionReq::parse(&range)
        .map_err(|e| RpcError::invalid_parameter(format!("range `{range}` is not a semver range: {e}")))?;
    let load = p.get::<bool>(2, "load")?.unwrap_or(true);
    let report = registry(node)?.install(&name, &req).map_err(failed)?;
    let answer = answer(node, &report, true);
    let mut loaded = Vec::new();
    if load {
        // Dependencies come first in the report: load in its order.
        for change in &report.changes {
            let newly = matches!(change.kind, ChangeKind::Installed { .. } | ChangeKind::Unchanged { .. });
            if !newly || node.manager.module_status(&change.name).is_some() {
                continue;
            }
            let folder = node.config.modules_dir.join(&change.name);
            let module = blvm_module_host::registry::discovery::read_module_folder(&folder)
                .map_err(|e| RpcError::misc(format!("{} was installed but cannot be loaded: {e}", change.name)))?;
            block_on(node.manager.load_discovered(&module))
                .map_err(|e| RpcError::misc(format!("{} was installed but did not load: {e}", change.name)))?;
            loaded.push(change.name.clone());
        }
    }
    let reloaded = reload_changed(node, &report)?;
    Ok(with_field(
        with_field(answer, "loaded", json!(loaded)),
        "reloaded",
        json!(reloaded),
    ))
}

fn updatemodule(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let name: String = p.required(0, "name")?;
    let report = registry(node)?.update(&name).map_err(failed)?;
    let answer = answer(node, &report, true);
    let reloaded = reload_changed(node, &report)?;
    Ok(with_field(answer, "reloaded", json!(reloaded)))
}

fn removemodule(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let name: String = p.required(0, "name")?;
    let force = p.get::<bool>(1, "force")?.unwrap_or(false);
    let report = registry(node)?.remove(&name, force).map_err(failed)?;
    // Gone from disk; the running process uses its staged copy until it is
    // unloaded here (its dependents first).
    let unloaded = node.manager.module_status(&name).is_some();
    if unloaded {
        block_on(node.manager.unload_module(&name)).map_err(|e| RpcError::misc(e.to_string()))?;
    }
    let answer = answer(node, &report, false);
    Ok(with_field(answer, "unloaded", json!(unloaded)))
}

fn rollbackmodule(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let name: String = p.required(0, "name")?;
    let report = registry(node)?.rollback(&name).map_err(failed)?;
    let answer = answer(node, &report, false);
    let reloaded = reload_changed(node, &report)?;
    Ok(with_field(answer, "reloaded", json!(reloaded)))
}

fn searchmodules(node: &Arc<Node>, p: &Params) -> Result<Value, RpcError> {
    let query = p.get::<String>(0, "query")?.unwrap_or_default();
    let hits = registry(node)?.search(&query).map_err(failed)?;
    Ok(json!(hits
        .iter()
        .map(|hit| json!({
            "name": hit.name,
            "description": hit.description,
            "versions": hit.versions.iter().map(|v| json!({
                "version": v.version.to_string(),
                "yanked": v.yanked,
                "tier": v.tier,
                "published": v.published,
            })).collect::<Vec<_>>(),
        }))
        .collect::<Vec<_>>()))
}
