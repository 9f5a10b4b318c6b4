//! Discovery over real temp dirs: broken folders, duplicate names, binaries
//! escaping the folder, config flattening.

use std::collections::BTreeMap;

use super::support::{manifest, write_executable, write_module, TempDir};
use crate::registry::{discover, parse_config, ConfigError, DiscoveryErrorKind};

#[test]
fn missing_modules_dir_holds_no_modules() {
    let tmp = TempDir::new("missing-dir");
    let d = discover(&tmp.path().join("modules"));
    assert!(d.modules.is_empty() && d.errors.is_empty());
}

#[test]
fn a_module_folder_is_discovered_with_binary_and_flattened_config() {
    let tmp = TempDir::new("discovered");
    let dir = write_module(
        tmp.path(),
        "anything",
        &manifest("foo", "1.0.0", "entry_point = \"foo-bin\""),
        Some("foo-bin"),
    );
    std::fs::write(dir.join("config.toml"), "mode = \"fast\"\n[limits]\nmax_peers = 8\n").expect("writable");
    let d = discover(tmp.path());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let m = &d.modules[0];
    assert_eq!(m.name(), "foo");
    assert_eq!(m.binary_path, dir.canonicalize().expect("exists").join("foo-bin"));
    assert_eq!(m.config.get("limits.max_peers").map(String::as_str), Some("8"));
    assert_eq!(m.config.get("mode").map(String::as_str), Some("fast"));
}

#[test]
fn a_broken_folder_does_not_stop_the_others() {
    let tmp = TempDir::new("broken");
    write_module(tmp.path(), "b-good", &manifest("good", "1.0.0", ""), Some("good"));
    write_module(tmp.path(), "a-bad-version", &manifest("bad", "1.0", ""), Some("bad"));
    write_module(tmp.path(), "c-no-binary", &manifest("nobin", "1.0.0", ""), None);
    std::fs::create_dir_all(tmp.path().join("d-empty")).expect("writable");
    std::fs::create_dir_all(tmp.path().join(".hidden")).expect("writable");
    std::fs::write(tmp.path().join("README"), "not a module").expect("writable");

    let d = discover(tmp.path());
    assert!(d.is_partial());
    assert_eq!(d.modules.iter().map(|m| m.name()).collect::<Vec<_>>(), ["good"]);
    assert_eq!(d.errors.len(), 3, "{:?}", d.errors);
    assert!(matches!(&d.errors[0].kind, DiscoveryErrorKind::Manifest(e) if e.field() == "version"));
    assert!(
        d.errors[0]
            .to_string()
            .contains("a-bad-version/module.toml: field `version`"),
        "{}",
        d.errors[0]
    );
    assert!(matches!(&d.errors[1].kind, DiscoveryErrorKind::BinaryMissing { entry_point } if entry_point == "nobin"));
    assert!(matches!(d.errors[2].kind, DiscoveryErrorKind::MissingManifest));
    assert_eq!(d.failed_names().keys().collect::<Vec<_>>(), ["nobin"]);
}

#[test]
fn two_folders_with_one_name_are_both_refused_naming_each_other() {
    let tmp = TempDir::new("duplicate");
    let one = write_module(tmp.path(), "one", &manifest("same", "1.0.0", ""), Some("same"));
    let two = write_module(tmp.path(), "two", &manifest("same", "2.0.0", ""), Some("same"));
    write_module(tmp.path(), "three", &manifest("other", "1.0.0", ""), Some("other"));
    let d = discover(tmp.path());
    assert_eq!(d.modules.iter().map(|m| m.name()).collect::<Vec<_>>(), ["other"]);
    assert_eq!(d.errors.len(), 2);
    let (one, two) = (one.canonicalize().expect("exists"), two.canonicalize().expect("exists"));
    for (e, other) in d.errors.iter().zip([&two, &one]) {
        assert!(
            matches!(&e.kind, DiscoveryErrorKind::DuplicateName { name, others } if name == "same" && others == std::slice::from_ref(other))
        );
        assert!(e.to_string().contains(&other.display().to_string()), "{e}");
    }
}

#[test]
fn binary_path_escaping_via_dotdot_is_refused() {
    let tmp = TempDir::new("dotdot");
    let modules = tmp.path().join("modules");
    write_executable(&tmp.path().join("outside"));
    write_module(
        &modules,
        "foo",
        &manifest("foo", "1.0.0", "entry_point = \"../outside\""),
        None,
    );
    let d = discover(&modules);
    assert!(d.modules.is_empty());
    assert!(
        matches!(&d.errors[0].kind, DiscoveryErrorKind::Manifest(e) if e.field() == "entry_point"),
        "{}",
        d.errors[0]
    );
}

#[cfg(unix)]
#[test]
fn binary_path_escaping_via_a_symlink_is_refused() {
    let tmp = TempDir::new("symlink");
    let modules = tmp.path().join("modules");
    let outside = tmp.path().join("outside");
    write_executable(&outside);
    let dir = write_module(&modules, "foo", &manifest("foo", "1.0.0", ""), None);
    std::os::unix::fs::symlink(&outside, dir.join("foo")).expect("symlink");
    let d = discover(&modules);
    assert!(d.modules.is_empty());
    match &d.errors[0].kind {
        DiscoveryErrorKind::BinaryEscapes { entry_point, resolved } => {
            assert_eq!(entry_point, "foo");
            assert_eq!(resolved, &outside.canonicalize().expect("exists"));
        }
        other => panic!("expected BinaryEscapes, got {other:?}"),
    }
    assert!(
        d.errors[0].to_string().contains("outside the module's folder"),
        "{}",
        d.errors[0]
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_within_the_folder_is_accepted() {
    let tmp = TempDir::new("symlink-inside");
    let dir = write_module(tmp.path(), "foo", &manifest("foo", "1.0.0", ""), Some("foo-1.0.0"));
    std::os::unix::fs::symlink("foo-1.0.0", dir.join("foo")).expect("symlink");
    let d = discover(tmp.path());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert!(d.modules[0].binary_path.ends_with("foo-1.0.0"));
}

#[cfg(unix)]
#[test]
fn a_binary_without_execute_permission_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("not-executable");
    let dir = write_module(tmp.path(), "foo", &manifest("foo", "1.0.0", ""), Some("foo"));
    std::fs::set_permissions(dir.join("foo"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let d = discover(tmp.path());
    assert!(matches!(
        d.errors[0].kind,
        DiscoveryErrorKind::BinaryNotExecutable { .. }
    ));
}

#[test]
fn a_broken_config_refuses_the_module_naming_the_file() {
    let tmp = TempDir::new("bad-config");
    let dir = write_module(tmp.path(), "foo", &manifest("foo", "1.0.0", ""), Some("foo"));
    std::fs::write(dir.join("config.toml"), "this is = = not toml").expect("writable");
    let d = discover(tmp.path());
    assert!(matches!(
        d.errors[0].kind,
        DiscoveryErrorKind::Config(ConfigError::Syntax { .. })
    ));
    assert!(
        d.errors[0].to_string().contains("config.toml: not valid TOML"),
        "{}",
        d.errors[0]
    );
}

#[test]
fn config_flattens_tables_arrays_and_scalars_to_dotted_keys() {
    let config = parse_config(
        r#"
name = "x"
enabled = true
ratio = 0.5
peers = ["a:1", "b,2"]
[limits]
max_peers = 8
[limits.nested]
deep = "yes"
[[servers]]
host = "h1"
"#,
    )
    .expect("valid config");
    let expected: BTreeMap<String, String> = [
        ("enabled", "true"),
        ("limits.max_peers", "8"),
        ("limits.nested.deep", "yes"),
        ("name", "x"),
        ("peers.0", "a:1"),
        ("peers.1", "b,2"),
        ("ratio", "0.5"),
        ("servers.0.host", "h1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(config, expected);
}

#[test]
fn config_keys_that_flatten_onto_one_are_refused() {
    let e = parse_config("\"a.b\" = 1\n[a]\nb = 2\n").expect_err("collision");
    assert!(matches!(&e, ConfigError::DuplicateKey { key } if key == "a.b"), "{e}");
}
