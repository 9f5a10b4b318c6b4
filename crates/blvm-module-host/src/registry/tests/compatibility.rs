//! Compatibility: the `[compatibility]` minimums and the `blvm-node` range
//! against the node's versions, refused with both versions named.

use std::path::Path;

use semver::Version;

use super::support::manifest;
use crate::registry::{check_compatibility, CompatibilityErrorKind, ModuleManifest, NodeVersions, VersionKind};

fn module(extra: &str) -> ModuleManifest {
    ModuleManifest::from_toml_str(&manifest("foo", "1.0.0", extra), Path::new("module.toml")).expect("valid manifest")
}

fn node() -> NodeVersions {
    NodeVersions {
        node: Version::new(1, 4, 0),
        protocol: Version::new(1, 0, 0),
        consensus: Version::new(2, 1, 0),
    }
}

#[test]
fn module_without_requirements_is_compatible() {
    check_compatibility(&module(""), &node()).expect("compatible");
}

#[test]
fn satisfied_requirements_are_compatible() {
    let m = module(
        "[dependencies]\n\"blvm-node\" = \">=1.0, <2.0\"\n[compatibility]\nmin_node_version = \"1.4.0\"\n\
         min_protocol_version = \"1.0.0\"\nmin_consensus_version = \"2.0.0\"",
    );
    check_compatibility(&m, &node()).expect("compatible");
}

#[test]
fn too_new_min_node_version_is_refused_naming_both_versions() {
    let e =
        check_compatibility(&module("[compatibility]\nmin_node_version = \"1.5.0\""), &node()).expect_err("refused");
    assert_eq!(e.module, "foo");
    assert!(matches!(
        e.kind,
        CompatibilityErrorKind::TooOld {
            what: VersionKind::Node,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "module `foo` is incompatible with this node: its min_node_version is 1.5.0, but this node's node version is 1.4.0"
    );
}

#[test]
fn too_new_min_protocol_version_is_refused() {
    let e = check_compatibility(&module("[compatibility]\nmin_protocol_version = \"2.0.0\""), &node())
        .expect_err("refused");
    let shown = e.to_string();
    assert!(
        shown.contains("min_protocol_version is 2.0.0") && shown.contains("protocol version is 1.0.0"),
        "{shown}"
    );
}

#[test]
fn too_new_min_consensus_version_is_refused() {
    let e = check_compatibility(&module("[compatibility]\nmin_consensus_version = \"2.1.1\""), &node())
        .expect_err("refused");
    let shown = e.to_string();
    assert!(
        shown.contains("min_consensus_version is 2.1.1") && shown.contains("consensus version is 2.1.0"),
        "{shown}"
    );
}

#[test]
fn node_dependency_range_is_checked_against_the_node_version() {
    let e = check_compatibility(&module("[dependencies]\n\"blvm-node\" = \"^2\""), &node()).expect_err("refused");
    assert!(matches!(&e.kind, CompatibilityErrorKind::NodeOutOfRange { required, .. } if required == "^2"));
    assert!(
        e.to_string()
            .contains("needs blvm-node ^2, but this node is version 1.4.0"),
        "{e}"
    );
}

#[test]
fn prerelease_node_is_older_than_its_release() {
    let mut versions = node();
    versions.node = Version::parse("1.5.0-rc.1").expect("valid");
    check_compatibility(&module("[compatibility]\nmin_node_version = \"1.5.0\""), &versions).expect_err("rc < release");
}

#[test]
fn new_takes_the_protocol_version_from_the_wire_protocol() {
    let v = NodeVersions::new(Version::new(0, 1, 0), Version::new(1, 0, 0));
    assert_eq!(
        v.protocol,
        Version::new(u64::from(blvm_module_protocol::PROTOCOL_VERSION), 0, 0)
    );
}
