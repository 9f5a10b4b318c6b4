//! Manifest parsing and validation: the seed's example parses, and each kind
//! of bad manifest is refused with an error naming the field.

use std::path::Path;

use blvm_module_protocol::Permission;
use semver::Version;

use super::support::{manifest, SEED_EXAMPLE};
use crate::registry::manifest::MAX_MANIFEST_LEN;
use crate::registry::{ManifestError, ManifestErrorKind, ModuleManifest, Threshold};

const ORIGIN: &str = "modules/foo/module.toml";

fn parse(text: &str) -> Result<ModuleManifest, ManifestError> {
    ModuleManifest::from_toml_str(text, Path::new(ORIGIN))
}

#[track_caller]
fn refused(text: &str) -> ManifestError {
    match parse(text) {
        Ok(m) => panic!("manifest was accepted: {m:?}\n{text}"),
        Err(e) => e,
    }
}

/// Asserts the refusal names `field` both in `field()` and in its message.
#[track_caller]
fn assert_refused_at(text: &str, field: &str) -> ManifestError {
    let e = refused(text);
    assert_eq!(e.field(), field, "wrong field in: {e}");
    assert_eq!(e.path(), Path::new(ORIGIN));
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("{ORIGIN}: field `{field}`: ")), "{shown}");
    e
}

#[test]
fn seed_example_manifest_parses_into_typed_fields() {
    let m = parse(SEED_EXAMPLE).expect("the seed's example is valid");
    assert_eq!(m.name().as_str(), "lightning-network");
    assert_eq!(m.version(), &Version::new(1, 2, 3));
    assert_eq!(m.description(), Some("Lightning Network implementation"));
    assert_eq!(m.author(), Some("Alice <alice@example.com>"));
    assert_eq!(m.entry_point(), "lightning-network", "entry_point defaults to the name");

    let g = m.governance().expect("governance present");
    assert_eq!(g.tier.as_deref(), Some("application"));
    assert_eq!(g.maintainers, ["alice", "bob", "charlie"]);
    assert_eq!(g.threshold, Threshold::new(2, 3));
    assert_eq!(g.review_period_days, Some(14));

    let s = m.signatures().expect("signatures present");
    assert_eq!(s.threshold, Threshold::new(2, 3).expect("valid"));
    assert_eq!(s.maintainers.len(), 2);
    assert_eq!(s.maintainers[0].name, "alice");
    assert_eq!(s.maintainers[0].key[0], 0x02);
    assert_eq!(s.maintainers[1].key[0], 0x03);

    let b = m.binary().expect("binary present");
    assert_eq!(
        b.hash.expect("hash present").to_string(),
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
    assert_eq!(b.size, Some(1234567));
    assert!(b
        .download_url
        .as_deref()
        .is_some_and(|u| u.ends_with("/lightning-network/1.2.3")));

    let deps: Vec<&str> = m.dependencies().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(deps, ["another-module", "blvm-node"]);
    assert_eq!(m.node_requirement().map(|d| d.raw.as_str()), Some(">=1.0.0"));
    assert_eq!(m.module_dependencies().count(), 1);

    let c = m.compatibility();
    assert_eq!(c.min_node_version, Some(Version::new(1, 0, 0)));
    assert_eq!(c.min_protocol_version, Some(Version::new(1, 0, 0)));
    assert_eq!(c.min_consensus_version, Some(Version::new(1, 0, 0)));
    assert_eq!(c.tested_with, [Version::new(1, 0, 0), Version::new(1, 1, 0)]);

    let caps: Vec<Permission> = m.capabilities().iter().collect();
    assert_eq!(caps, [Permission::ReadBlockchain, Permission::SubscribeEvents]);
}

#[test]
fn entry_point_and_config_schema_are_read() {
    let m = parse(&manifest(
        "foo",
        "0.1.0",
        "entry_point = \"foo-bin\"\n[config_schema]\n\"limits.max_peers\" = \"how many peers\"",
    ))
    .expect("valid");
    assert_eq!(m.entry_point(), "foo-bin");
    assert_eq!(
        m.config_schema().get("limits.max_peers").map(String::as_str),
        Some("how many peers")
    );
}

#[test]
fn short_version_is_refused_with_the_documented_message() {
    let e = refused(&manifest("foo", "1.2", ""));
    assert_eq!(
        e.to_string(),
        "modules/foo/module.toml: field `version`: expected a semantic version like 1.2.3, got \"1.2\""
    );
}

#[test]
fn missing_name_or_version_is_refused() {
    let e = assert_refused_at("version = \"1.0.0\"", "name");
    assert!(matches!(e.kind(), ManifestErrorKind::Missing { .. }));
    assert_refused_at("name = \"foo\"", "version");
}

#[test]
fn invalid_names_are_refused() {
    let too_long = "a".repeat(65);
    for bad in [
        "",
        "Foo",
        "-foo",
        "_foo",
        "foo bar",
        "foo.bar",
        "föö",
        "foo/bar",
        too_long.as_str(),
    ] {
        let e = assert_refused_at(&manifest(bad, "1.0.0", ""), "name");
        assert!(e.to_string().contains("expected a module name"), "{e}");
    }
}

#[test]
fn valid_names_at_the_edges_are_accepted() {
    let longest = "a".repeat(64);
    for good in ["a", "0", "9lives", "a-b_c", longest.as_str()] {
        parse(&manifest(good, "1.0.0", "")).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn the_node_name_is_reserved() {
    let e = assert_refused_at(&manifest("blvm-node", "1.0.0", ""), "name");
    assert!(e.to_string().contains("reserved"), "{e}");
}

#[test]
fn wrong_toml_type_is_refused_naming_the_field() {
    let e = assert_refused_at("name = \"foo\"\nversion = 1", "version");
    assert!(matches!(e.kind(), ManifestErrorKind::WrongType { .. }), "{e}");
    let e = assert_refused_at(&manifest("foo", "1.0.0", "[binary]\nsize = -1"), "binary.size");
    assert!(e.to_string().contains("-1"), "{e}");
    assert_refused_at(
        &manifest("foo", "1.0.0", "[governance]\nthreshold = 2"),
        "governance.threshold",
    );
}

#[test]
fn unknown_capability_is_refused_naming_it() {
    let e = assert_refused_at(
        &manifest(
            "foo",
            "1.0.0",
            "capabilities = [\"read_blockchain\", \"read_everything\"]",
        ),
        "capabilities[1]",
    );
    assert!(matches!(e.kind(), ManifestErrorKind::UnknownCapability { name } if name == "read_everything"));
    assert!(e.to_string().contains("unknown capability `read_everything`"), "{e}");
}

#[test]
fn every_permission_name_is_accepted_as_a_capability() {
    let names: Vec<String> = Permission::ALL.iter().map(|p| format!("\"{p}\"")).collect();
    let m = parse(&manifest(
        "foo",
        "1.0.0",
        &format!("capabilities = [{}]", names.join(", ")),
    ))
    .expect("valid");
    assert_eq!(m.capabilities().iter().count(), 24);
}

#[test]
fn each_range_syntax_parses_and_matches_as_cargo_does() {
    let cases: &[(&str, &str, &str)] = &[
        (">=1.0.0", "1.5.0", "0.9.9"),
        ("^1.2", "1.9.0", "2.0.0"),
        ("~1.2.3", "1.2.9", "1.3.0"),
        ("=1.0.0", "1.0.0", "1.0.1"),
        ("*", "7.0.0", "1.0.0-alpha"),
        (">=1.0, <2.0", "1.99.0", "2.0.0"),
        ("1.2.3", "1.4.0", "1.2.2"),
    ];
    for (range, inside, outside) in cases {
        let m = parse(&manifest("foo", "1.0.0", &format!("[dependencies]\nbar = \"{range}\""))).expect(range);
        let dep = &m.dependencies()[0];
        assert_eq!(dep.raw, *range);
        assert!(
            dep.req.matches(&Version::parse(inside).expect("test version")),
            "{range} should match {inside}"
        );
        assert!(
            !dep.req.matches(&Version::parse(outside).expect("test version")),
            "{range} should not match {outside}"
        );
    }
}

#[test]
fn malformed_dependency_range_is_refused_naming_the_dependency() {
    for bad in ["", ">=1.0.0.0", "=> 1.0", "latest", ">=1.0 <2.0 ||"] {
        let e = assert_refused_at(
            &manifest("foo", "1.0.0", &format!("[dependencies]\nbar = \"{bad}\"")),
            "dependencies.bar",
        );
        assert!(e.to_string().contains("expected a version range"), "{e}");
    }
}

#[test]
fn invalid_dependency_name_is_refused() {
    assert_refused_at(
        &manifest("foo", "1.0.0", "[dependencies]\nBar = \"*\""),
        "dependencies.Bar",
    );
}

#[test]
fn a_dependency_on_itself_is_refused() {
    let e = assert_refused_at(
        &manifest("foo", "1.0.0", "[dependencies]\nfoo = \"*\""),
        "dependencies.foo",
    );
    assert!(matches!(e.kind(), ManifestErrorKind::SelfDependency));
}

#[test]
fn malformed_thresholds_are_refused() {
    for bad in [
        "2of3",
        "0-of-3",
        "4-of-3",
        "2-of-3 ",
        "-1-of-3",
        "2-of-",
        "two-of-three",
        "2-of-3-of-4",
    ] {
        let e = assert_refused_at(
            &manifest("foo", "1.0.0", &format!("[governance]\nthreshold = \"{bad}\"")),
            "governance.threshold",
        );
        assert!(e.to_string().contains("M-of-N"), "{e}");
    }
}

#[test]
fn threshold_n_must_equal_the_number_of_maintainers() {
    let e = assert_refused_at(
        &manifest(
            "foo",
            "1.0.0",
            "[governance]\nmaintainers = [\"a\", \"b\"]\nthreshold = \"2-of-3\"",
        ),
        "governance.threshold",
    );
    assert!(e.to_string().contains("2-of-3 does not match the 2 maintainers"), "{e}");
    assert_refused_at(
        &manifest(
            "foo",
            "1.0.0",
            "[governance]\nmaintainers = [\"a\", \"b\"]\n[signatures]\nthreshold = \"1-of-3\"",
        ),
        "signatures.threshold",
    );
}

#[test]
fn governance_and_signature_thresholds_must_agree() {
    let text = SEED_EXAMPLE.replacen(
        "threshold = \"2-of-3\"\n\n# Binary",
        "threshold = \"3-of-3\"\n\n# Binary",
        1,
    );
    let e = assert_refused_at(&text, "signatures.threshold");
    assert!(matches!(e.kind(), ManifestErrorKind::ThresholdsDisagree { .. }), "{e}");
}

#[test]
fn a_signer_who_is_not_a_maintainer_is_refused() {
    let text = SEED_EXAMPLE.replacen("name = \"bob\"", "name = \"mallory\"", 1);
    let e = assert_refused_at(&text, "signatures.maintainers[1].name");
    assert!(e.to_string().contains("`mallory`"), "{e}");
}

#[test]
fn malformed_signature_keys_are_refused() {
    let good = "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc";
    for bad in [
        "02abc...",
        "04a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc",
        &good[..64],
    ] {
        let text = SEED_EXAMPLE.replacen(good, bad, 1);
        let e = assert_refused_at(&text, "signatures.maintainers[0].key");
        assert!(e.to_string().contains("compressed secp256k1 public key"), "{e}");
    }
}

#[test]
fn malformed_binary_hash_is_refused() {
    let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    for bad in [
        hex.to_owned(),
        format!("sha256:{}", &hex[..62]),
        format!("sha256:{}zz", &hex[..62]),
        format!("md5:{hex}"),
    ] {
        let e = assert_refused_at(
            &manifest("foo", "1.0.0", &format!("[binary]\nhash = \"{bad}\"")),
            "binary.hash",
        );
        assert!(e.to_string().contains("`sha256:` followed by 64 hex digits"), "{e}");
    }
}

#[test]
fn entry_point_outside_the_folder_is_refused() {
    for bad in ["/usr/bin/foo", "../foo", "..", "bin/foo", "bin\\\\foo", "", "."] {
        let e = assert_refused_at(
            &manifest("foo", "1.0.0", &format!("entry_point = \"{bad}\"")),
            "entry_point",
        );
        assert!(e.to_string().contains("a file name inside the module's folder"), "{e}");
    }
}

#[test]
fn unknown_top_level_key_is_refused_with_a_suggestion() {
    let e = refused("nmae = \"foo\"\nname = \"foo\"\nversion = \"1.0.0\"");
    assert_eq!(e.field(), "nmae");
    assert!(e.to_string().ends_with("unknown key (did you mean `name`?)"), "{e}");
    // `[resources]` is known; a misspelt limit inside it is refused by name.
    let e = refused(&manifest("foo", "1.0.0", "[resources]\nmemory = 1"));
    assert_eq!(e.field(), "resources.memory");
}

#[test]
fn unknown_key_in_a_checked_section_is_refused() {
    let e = assert_refused_at(&manifest("foo", "1.0.0", "[binary]\nhsah = \"x\""), "binary.hsah");
    assert!(e.to_string().contains("did you mean `hash`"), "{e}");
    assert_refused_at(
        &manifest("foo", "1.0.0", "[compatibility]\nmin_node_verison = \"1.0.0\""),
        "compatibility.min_node_verison",
    );
}

#[test]
fn unknown_key_in_governance_is_accepted() {
    parse(&manifest(
        "foo",
        "1.0.0",
        "[governance]\ntier = \"core\"\nescalation_contact = \"ops\"",
    ))
    .expect("accepted");
}

#[test]
fn invalid_compatibility_versions_are_refused() {
    assert_refused_at(
        &manifest("foo", "1.0.0", "[compatibility]\nmin_node_version = \"1\""),
        "compatibility.min_node_version",
    );
    assert_refused_at(
        &manifest("foo", "1.0.0", "[compatibility]\ntested_with = [\"1.0.0\", \"x\"]"),
        "compatibility.tested_with[1]",
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let e = refused("name = \"foo\"\nversion = \"1.0.0\"\nthis is not toml\n");
    assert_eq!(e.field(), "");
    assert!(matches!(e.kind(), ManifestErrorKind::Syntax { line: 3, .. }), "{e}");
}

#[test]
fn oversized_manifest_is_refused_before_parsing() {
    let padding = format!("# {}\n", "x".repeat(MAX_MANIFEST_LEN as usize));
    let e = refused(&manifest("foo", "1.0.0", &padding));
    assert!(matches!(e.kind(), ManifestErrorKind::TooLarge { .. }), "{e}");

    let dir = super::support::TempDir::new("oversized-manifest");
    let path = dir.path().join("module.toml");
    std::fs::write(&path, manifest("foo", "1.0.0", &padding)).expect("writable");
    let e = ModuleManifest::from_file(&path).expect_err("too large");
    assert!(
        matches!(e.kind(), ManifestErrorKind::TooLarge { max, .. } if *max == MAX_MANIFEST_LEN),
        "{e}"
    );
    assert!(e.to_string().starts_with(&path.display().to_string()), "{e}");
}

#[test]
fn unreadable_manifest_file_is_an_io_error_naming_the_file() {
    let e = ModuleManifest::from_file(Path::new("/nonexistent/blvm/module.toml")).expect_err("missing");
    assert!(matches!(e.kind(), ManifestErrorKind::Io(_)));
    assert!(
        e.to_string().starts_with("/nonexistent/blvm/module.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn seed_layout_with_capabilities_last_is_refused_with_a_hint() {
    // The seed writes `capabilities` after `[compatibility]`; TOML reads that
    // as `compatibility.capabilities`. The earlier implementation ignored
    // it and the module silently got no capabilities.
    let verbatim = format!("{SEED_EXAMPLE}\ncapabilities = [\"read_blockchain\"]\n");
    let verbatim = verbatim.replacen(
        "capabilities = [\n    \"read_blockchain\",\n    \"subscribe_events\"\n]\n",
        "",
        1,
    );
    let e = assert_refused_at(&verbatim, "compatibility.capabilities");
    assert!(e.to_string().contains("move it above the first [section]"), "{e}");

    let after_governance = manifest(
        "foo",
        "1.0.0",
        "[governance]\ntier = \"x\"\ncapabilities = [\"read_utxo\"]",
    );
    let e = assert_refused_at(&after_governance, "governance.capabilities");
    assert!(matches!(e.kind(), ManifestErrorKind::MisplacedKey { key } if key == "capabilities"));
}

#[test]
fn resources_section_is_parsed_and_bad_limits_are_refused_naming_the_field() {
    let m = parse(&manifest(
        "foo",
        "1.0.0",
        "[resources]\nmemory_mb = 256\nmax_processes = 16\ncpu_percent = 25\nmax_open_files = 128",
    ))
    .expect("valid");
    let r = m.resources();
    assert_eq!(
        (r.memory_bytes, r.max_processes, r.cpu_percent, r.max_open_files),
        (Some(256 << 20), Some(16), Some(25), Some(128))
    );
    assert_refused_at(
        &manifest("foo", "1.0.0", "[resources]\nmemory_mb = 0"),
        "resources.memory_mb",
    );
    assert_refused_at(
        &manifest("foo", "1.0.0", "[resources]\ncpu_percent = 0"),
        "resources.cpu_percent",
    );
    assert_refused_at(
        &manifest("foo", "1.0.0", "[resources]\nmax_threads = 4"),
        "resources.max_threads",
    );
}

#[test]
fn resources_read_only_is_a_list_of_normal_absolute_paths() {
    let m = parse(&manifest(
        "foo",
        "1.0.0",
        "[resources]\nread_only = [\"/opt/python3.12\", \"/srv/venvs/foo\"]",
    ))
    .expect("valid");
    assert_eq!(
        m.read_only(),
        &[
            std::path::PathBuf::from("/opt/python3.12"),
            std::path::PathBuf::from("/srv/venvs/foo")
        ]
    );
    for bad in ["venv", "/", "/opt/../etc", "/opt/./py", "/opt//py", "/opt/py/"] {
        assert_refused_at(
            &manifest("foo", "1.0.0", &format!("[resources]\nread_only = [\"{bad}\"]")),
            "resources.read_only[0]",
        );
    }
}
