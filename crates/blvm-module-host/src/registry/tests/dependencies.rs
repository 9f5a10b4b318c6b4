//! Dependency resolution: a deterministic load order, and each failure by
//! name while unrelated modules still load.

use std::collections::BTreeMap;
use std::path::Path;

use super::support::manifest;
use crate::registry::{resolve, resolve_with_failures, ModuleManifest, ResolutionErrorKind};

/// A manifest for `name` at `version` with `deps` as `(name, range)`.
fn module(name: &str, version: &str, deps: &[(&str, &str)]) -> ModuleManifest {
    let mut extra = String::from("[dependencies]\n");
    for (dep, range) in deps {
        extra.push_str(&format!("\"{dep}\" = \"{range}\"\n"));
    }
    ModuleManifest::from_toml_str(&manifest(name, version, &extra), Path::new("module.toml")).expect("valid manifest")
}

#[test]
fn diamond_loads_dependencies_first_ties_by_name() {
    let modules = [
        module("a-app", "1.0.0", &[("b-left", "^1"), ("c-right", "^1")]),
        module("c-right", "1.0.0", &[("d-base", ">=1.0.0")]),
        module("b-left", "1.0.0", &[("d-base", "~1.2.3")]),
        module("d-base", "1.2.5", &[]),
    ];
    let r = resolve(&modules);
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(r.order, ["d-base", "b-left", "c-right", "a-app"]);
    // The input order does not matter.
    let reversed: Vec<_> = modules.iter().rev().collect();
    assert_eq!(resolve(reversed).order, r.order);
}

#[test]
fn independent_modules_load_in_name_order() {
    let r = resolve(&[module("zeta", "1.0.0", &[]), module("alpha", "1.0.0", &[])]);
    assert_eq!(r.order, ["alpha", "zeta"]);
}

#[test]
fn cycle_is_reported_naming_every_module_in_order_and_unrelated_still_loads() {
    let modules = [
        module("x", "1.0.0", &[("y", "*")]),
        module("y", "1.0.0", &[("z", "*")]),
        module("z", "1.0.0", &[("x", "*")]),
        module("unrelated", "1.0.0", &[]),
    ];
    let r = resolve(&modules);
    assert_eq!(r.order, ["unrelated"]);
    let e = &r.failed["y"];
    assert_eq!(
        e.kind,
        ResolutionErrorKind::Cycle {
            cycle: vec!["y".into(), "z".into(), "x".into(), "y".into()]
        }
    );
    assert_eq!(
        e.to_string(),
        "module `y` cannot load: dependency cycle: y -> z -> x -> y"
    );
    assert!(matches!(&r.failed["x"].kind, ResolutionErrorKind::Cycle { cycle } if cycle.join(",") == "x,y,z,x"));
    assert!(matches!(&r.failed["z"].kind, ResolutionErrorKind::Cycle { cycle } if cycle.join(",") == "z,x,y,z"));
}

#[test]
fn missing_dependency_is_reported_by_name_and_unrelated_still_loads() {
    let r = resolve(&[
        module("wallet", "1.0.0", &[("indexer", ">=0.5.0")]),
        module("other", "1.0.0", &[]),
    ]);
    assert_eq!(r.order, ["other"]);
    let e = &r.failed["wallet"];
    assert_eq!(
        e.kind,
        ResolutionErrorKind::Missing {
            dependency: "indexer".into(),
            required: ">=0.5.0".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "module `wallet` cannot load: depends on `indexer` >=0.5.0, which is not installed"
    );
}

#[test]
fn unsatisfied_range_names_module_dependency_range_and_version_found() {
    let r = resolve(&[
        module("wallet", "1.0.0", &[("indexer", ">=1.0, <2.0")]),
        module("indexer", "2.1.0", &[]),
        module("other", "1.0.0", &[]),
    ]);
    assert_eq!(r.order, ["indexer", "other"]);
    assert_eq!(
        r.failed["wallet"].to_string(),
        "module `wallet` cannot load: depends on `indexer` >=1.0, <2.0, but version 2.1.0 is installed"
    );
}

#[test]
fn dependent_of_a_failed_module_is_not_loadable_and_says_why() {
    let r = resolve(&[
        module("top", "1.0.0", &[("middle", "*")]),
        module("middle", "1.0.0", &[("bottom", "^3")]),
        module("bottom", "1.0.0", &[]),
        module("loner", "1.0.0", &[]),
    ]);
    assert_eq!(r.order, ["bottom", "loner"]);
    assert_eq!(
        r.failed["top"].to_string(),
        "module `top` cannot load: depends on `middle`, which failed: depends on `bottom` ^3, but version 1.0.0 is installed"
    );
    assert!(
        matches!(&r.failed["top"].kind, ResolutionErrorKind::DependencyFailed { dependency, .. } if dependency == "middle")
    );
}

#[test]
fn dependent_of_a_cycle_is_not_loadable_and_says_why() {
    let r = resolve(&[
        module("a", "1.0.0", &[("b", "*")]),
        module("b", "1.0.0", &[("a", "*")]),
        module("user", "1.0.0", &[("a", "*")]),
    ]);
    assert!(r.order.is_empty());
    assert_eq!(
        r.failed["user"].to_string(),
        "module `user` cannot load: depends on `a`, which failed: dependency cycle: a -> b -> a"
    );
}

#[test]
fn modules_refused_earlier_fail_their_dependents_with_the_reason() {
    let excluded = BTreeMap::from([("indexer".to_owned(), "binary hash mismatch".to_owned())]);
    let modules = [
        module("wallet", "1.0.0", &[("indexer", "*")]),
        module("indexer", "1.0.0", &[]),
    ];
    let r = resolve_with_failures(&modules, &excluded);
    assert!(r.order.is_empty());
    assert!(
        !r.failed.contains_key("indexer"),
        "excluded modules are reported by whoever excluded them"
    );
    assert_eq!(
        r.failed["wallet"].to_string(),
        "module `wallet` cannot load: depends on `indexer`, which failed: binary hash mismatch"
    );
}

#[test]
fn duplicate_names_fail_both_and_their_dependents() {
    let r = resolve(&[
        module("dup", "1.0.0", &[]),
        module("dup", "2.0.0", &[]),
        module("user", "1.0.0", &[("dup", "*")]),
    ]);
    assert!(r.order.is_empty());
    assert_eq!(r.failed["dup"].kind, ResolutionErrorKind::Duplicate);
    assert!(r.failed["user"].to_string().contains("depends on `dup`, which failed"));
}

#[test]
fn node_dependency_is_not_treated_as_a_module() {
    let r = resolve(&[module("foo", "1.0.0", &[("blvm-node", ">=9.0.0")])]);
    assert_eq!(
        r.order,
        ["foo"],
        "blvm-node is checked by check_compatibility, not here"
    );
}

#[test]
fn every_module_ends_in_order_or_failed() {
    let modules = [
        module("a", "1.0.0", &[("b", "*"), ("missing", "*")]),
        module("b", "1.0.0", &[("c", "*")]),
        module("c", "1.0.0", &[("b", "*")]),
        module("d", "1.0.0", &[("a", "*")]),
        module("e", "1.0.0", &[]),
    ];
    let r = resolve(&modules);
    assert_eq!(r.order.len() + r.failed.len(), modules.len());
    assert_eq!(r.order, ["e"]);
    assert!(matches!(r.failed["a"].kind, ResolutionErrorKind::Missing { .. }));
    assert!(matches!(
        r.failed["d"].kind,
        ResolutionErrorKind::DependencyFailed { .. }
    ));
}
