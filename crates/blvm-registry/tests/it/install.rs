//! The installer against repositories our writer built: block-stats and
//! fee-watcher's real manifests, packed and signed with the maintainer
//! tools, published as the registry lays them out, and real executable
//! files of this repository as their binaries. Every refusal checks the
//! typed error and that `modules/` and the lock file did not change.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use blvm_module_host::registry::{discover, NodeVersions};
use blvm_module_host::security::{Keyring, SignatureError, SignaturePolicy};
use blvm_registry::client::{
    self, ChangeKind, DirectoryRepository, InstallError, InstallPolicy, LockFile, PolicyError, Registry, Report,
    Repository, ResolveError, TrustedState,
};
use blvm_registry::layout::{self, VersionRecord};
use blvm_registry::maintainer;
use blvm_registry::tuf::{
    FetchError, Lifetimes, MetadataSource, RepositoryKeys, RepositoryWriter, TargetInfo, VerifyError,
};
use semver::{Version, VersionReq};

use crate::support::{now, temp_dir};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A file of this repository, read as a module binary.
fn repo_file(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)).expect("repository file read")
}

/// Real executables of this repository, one per version published.
pub(crate) fn binary(n: usize) -> Vec<u8> {
    const FILES: [&str; 4] = [
        ".ci/run",
        "scripts/run-node.sh",
        "crates/blvm-test-modules/python/main.py",
        "modules/block-stats/src/main.rs",
    ];
    repo_file(FILES[n % FILES.len()])
}

pub(crate) fn node() -> NodeVersions {
    NodeVersions::new(Version::new(0, 1, 0), Version::new(0, 1, 0))
}

pub(crate) struct Maintainer {
    name: &'static str,
    key_file: PathBuf,
    pub(crate) public: String,
}

/// One version to publish.
pub(crate) struct Spec {
    name: &'static str,
    version: &'static str,
    binary: Vec<u8>,
    dependencies: Vec<(&'static str, &'static str)>,
    tier: Option<&'static str>,
    review_period_days: Option<u32>,
    /// Indexes into the fixture's maintainers.
    signers: Vec<usize>,
    threshold: u32,
    published: SystemTime,
    yanked: bool,
}

impl Spec {
    pub(crate) fn new(name: &'static str, version: &'static str, binary: Vec<u8>) -> Spec {
        Spec {
            name,
            version,
            binary,
            dependencies: Vec::new(),
            tier: Some("community"),
            review_period_days: None,
            signers: vec![0],
            threshold: 1,
            published: now() - 30 * DAY,
            yanked: false,
        }
    }
}

pub(crate) struct Fixture {
    /// When the repository is written and the client runs.
    pub(crate) time: SystemTime,
    pub(crate) dir: PathBuf,
    pub(crate) writer: RepositoryWriter,
    pub(crate) root_file: PathBuf,
    pub(crate) maintainers: Vec<Maintainer>,
    pub(crate) modules: PathBuf,
}

impl Fixture {
    pub(crate) fn new(name: &str) -> Fixture {
        Fixture::at(name, now())
    }

    /// A fixture whose repository is written at `time`.
    fn at(name: &str, time: SystemTime) -> Fixture {
        Fixture::with(
            name,
            RepositoryKeys::generate().expect("keys"),
            Lifetimes::default(),
            time,
        )
    }

    /// A fixture whose repository has `keys` and `lifetimes`, written at
    /// `time`.
    pub(crate) fn with(name: &str, keys: RepositoryKeys, lifetimes: Lifetimes, time: SystemTime) -> Fixture {
        let dir = temp_dir(&format!("install-{name}"));
        let writer = RepositoryWriter::create(dir.join("repo"), keys, lifetimes, time).expect("repository created");
        let root_file = dir.join("trusted-root.json");
        std::fs::write(&root_file, writer.root_bytes()).expect("root written");
        let maintainers = ["alice", "bob"]
            .into_iter()
            .map(|name| {
                let key_file = dir.join(format!("{name}.key"));
                let public = maintainer::keygen(&key_file).expect("keygen");
                Maintainer { name, key_file, public }
            })
            .collect();
        let modules = dir.join("modules");
        Fixture {
            time,
            dir,
            writer,
            root_file,
            maintainers,
            modules,
        }
    }

    /// The manifest of `spec`: the module's own manifest at this version
    /// with `[dependencies]` and `[governance]`, packed and signed.
    fn manifest(&self, spec: &Spec) -> String {
        let base = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../modules")
                .join(spec.name)
                .join("module.toml"),
        )
        .expect("the module's manifest");
        let mut text = base.replacen("version = \"0.1.0\"", &format!("version = \"{}\"", spec.version), 1);
        if !spec.dependencies.is_empty() {
            text.push_str("\n[dependencies]\n");
            for (name, range) in &spec.dependencies {
                text.push_str(&format!("\"{name}\" = \"{range}\"\n"));
            }
        }
        text.push_str("\n[governance]\nmaintainers = [\"alice\", \"bob\"]\n");
        text.push_str(&format!("threshold = \"{}-of-2\"\n", spec.threshold));
        if let Some(tier) = spec.tier {
            text.push_str(&format!("tier = \"{tier}\"\n"));
        }
        if let Some(days) = spec.review_period_days {
            text.push_str(&format!("review_period_days = {days}\n"));
        }
        let work = self.dir.join(format!("build-{}-{}", spec.name, spec.version));
        std::fs::create_dir_all(&work).expect("work dir");
        let manifest = work.join("module.toml");
        let binary = work.join("binary");
        std::fs::write(&manifest, &text).expect("manifest");
        std::fs::write(&binary, &spec.binary).expect("binary");
        maintainer::pack(&manifest, Some(&binary)).expect("pack");
        let mut packed = std::fs::read_to_string(&manifest).expect("packed");
        if !spec.signers.is_empty() {
            let entries: Vec<String> = spec
                .signers
                .iter()
                .map(|&i| {
                    let m = &self.maintainers[i];
                    maintainer::sign(&manifest, &m.key_file, m.name).expect("sign")
                })
                .collect();
            packed.push_str(&format!(
                "\n[signatures]\nthreshold = \"{}-of-2\"\nmaintainers = [{}]\n",
                spec.threshold,
                entries.join(", ")
            ));
        }
        packed
    }

    /// Publishes `spec` as the registry does; returns the manifest.
    pub(crate) fn publish(&mut self, spec: &Spec) -> String {
        self.publish_with_custom(spec, serde_json::Map::new())
    }

    /// Publishes `spec` with `extra` keys beside the version record in the
    /// manifest target's custom data.
    fn publish_with_custom(&mut self, spec: &Spec, extra: serde_json::Map<String, serde_json::Value>) -> String {
        let manifest = self.manifest(spec);
        let binary = spec.binary.clone();
        self.publish_parts(spec, &manifest, &binary, extra);
        manifest
    }

    /// Publishes `manifest` and `binary` as version `spec` (a registry
    /// that signs whatever it is given).
    fn publish_parts(
        &mut self,
        spec: &Spec,
        manifest: &str,
        binary: &[u8],
        extra: serde_json::Map<String, serde_json::Value>,
    ) {
        let record = VersionRecord {
            name: spec.name.into(),
            version: spec.version.into(),
            published: humantime::format_rfc3339_seconds(spec.published).to_string(),
            yanked: spec.yanked,
            tier: spec.tier.map(str::to_owned),
            publisher: self.maintainers[0].public.clone(),
            binary: layout::binary_target(spec.name, spec.version),
        };
        let mut custom = record.to_custom();
        if let Some(object) = custom.as_object_mut() {
            object.extend(extra);
        }
        self.writer
            .add_target(
                &layout::manifest_target(spec.name, spec.version),
                manifest.as_bytes(),
                Some(custom),
            )
            .expect("manifest target");
        self.writer
            .add_target(&layout::binary_target(spec.name, spec.version), binary, None)
            .expect("binary target");
        self.writer.commit(self.time).expect("commit");
    }

    pub(crate) fn repo(&self) -> DirectoryRepository {
        DirectoryRepository::new(self.writer.dir())
    }

    /// The trusted state, refreshed (a state dir per fixture, as a node
    /// keeps one).
    fn state(&self) -> TrustedState {
        let mut state = TrustedState::open(self.dir.join("state"), &self.root_file, self.time).expect("state opens");
        state.refresh(&self.repo(), self.time).expect("the repository verifies");
        state
    }

    /// Trusts both maintainers; no tier policy; at `now()`.
    pub(crate) fn policy(&self) -> InstallPolicy {
        let mut keyring = Keyring::new();
        for m in &self.maintainers {
            keyring.trust(m.name, &m.public).expect("key");
        }
        InstallPolicy::new(SignaturePolicy { keyring, required: 0 }, self.time)
    }

    fn install_with(&self, policy: &InstallPolicy, name: &str, range: &str) -> Result<Report, InstallError> {
        self.install_from(&self.repo(), policy, name, range)
    }

    pub(crate) fn install_from<R: Repository>(
        &self,
        repo: &R,
        policy: &InstallPolicy,
        name: &str,
        range: &str,
    ) -> Result<Report, InstallError> {
        let state = self.state();
        let registry = Registry { repo, state: &state };
        let req = VersionReq::parse(range).expect("range");
        client::install(&registry, policy, &node(), &self.modules, name, &req)
    }

    pub(crate) fn install(&self, name: &str, range: &str) -> Result<Report, InstallError> {
        self.install_with(&self.policy(), name, range)
    }

    pub(crate) fn update_from<R: Repository>(&self, repo: &R, name: &str) -> Result<Report, InstallError> {
        let state = self.state();
        let registry = Registry { repo, state: &state };
        client::update(&registry, &self.policy(), &node(), &self.modules, name)
    }

    /// Where target `path` lives in the repository's `targets/`.
    pub(crate) fn target_file(&self, path: &str) -> PathBuf {
        let info = self.state().metadata().target(path).expect("signed target");
        self.writer.targets_dir().join(info.url_path())
    }

    /// Every file and folder under `modules/` with its mode and bytes, but
    /// the installer's lock and the staging area (checked empty).
    pub(crate) fn snapshot(&self) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        let staging = self.modules.join(".staging");
        if let Ok(entries) = std::fs::read_dir(&staging) {
            assert_eq!(entries.count(), 0, "a staging folder was left behind");
        }
        let mut out = BTreeMap::new();
        walk(&self.modules, &self.modules, &mut out);
        out
    }

    pub(crate) fn lock(&self) -> LockFile {
        LockFile::read(&self.modules).expect("lock file")
    }
}

pub(crate) fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.expect("entry").path();
        let relative = path.strip_prefix(root).expect("under root").to_owned();
        if relative == Path::new(".install.lock") || relative == Path::new(".staging") {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        if meta.is_dir() {
            out.insert(relative, (meta.permissions().mode(), Vec::new()));
            walk(root, &path, out);
        } else {
            out.insert(
                relative,
                (meta.permissions().mode(), std::fs::read(&path).expect("file")),
            );
        }
    }
}

pub(crate) fn versions(report: &Report) -> Vec<(String, ChangeKind)> {
    report
        .changes
        .iter()
        .map(|c| (c.name.clone(), c.kind.clone()))
        .collect()
}

#[track_caller]
fn resolve_error(err: &InstallError) -> &ResolveError {
    match err {
        InstallError::Resolve(e) => e,
        other => panic!("not a resolution error: {other}"),
    }
}

#[track_caller]
fn policy_error(err: &InstallError) -> &PolicyError {
    match err {
        InstallError::Policy(e) => e,
        other => panic!("not a policy refusal: {other}"),
    }
}

#[track_caller]
pub(crate) fn binary_error(err: &InstallError) -> &VerifyError {
    match err {
        InstallError::Binary { source, .. } => source,
        other => panic!("not a binary download error: {other}"),
    }
}

pub(crate) fn v(s: &str) -> Version {
    Version::parse(s).expect("version")
}

#[test]
fn install_writes_module_toml_an_executable_binary_and_a_lock_entry_update_rollback_and_remove() {
    let mut f = Fixture::new("lifecycle");
    let manifest_010 = f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));

    let report = f.install("block-stats", "^0.1").expect("installs");
    assert_eq!(
        versions(&report),
        [("block-stats".into(), ChangeKind::Installed { version: v("0.1.0") })]
    );
    assert_eq!(report.changes[0].signers, ["alice"]);
    assert_eq!(report.changes[0].tier.as_deref(), Some("community"));
    let folder = f.modules.join("block-stats");
    assert_eq!(
        std::fs::read_to_string(folder.join("module.toml")).expect("manifest"),
        manifest_010
    );
    assert_eq!(std::fs::read(folder.join("block-stats")).expect("binary"), binary(0));
    let mode = std::fs::metadata(folder.join("block-stats"))
        .expect("binary")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let discovery = discover(&f.modules);
    assert!(discovery.errors.is_empty(), "{:?}", discovery.errors);
    assert_eq!(discovery.modules.len(), 1, "the node discovers it, and nothing else");
    let entry = f.lock().modules["block-stats"].clone();
    assert_eq!(entry.requested, "^0.1");
    assert_eq!(entry.current.version, "0.1.0");
    assert_eq!(entry.current.signers, ["alice"]);
    assert_eq!(entry.current.tier.as_deref(), Some("community"));
    assert_eq!(entry.current.registry, f.repo().describe());
    use hex_conservative::DisplayHex;
    use sha2::{Digest, Sha256};
    assert_eq!(
        entry.current.manifest_sha256,
        Sha256::digest(manifest_010.as_bytes()).to_lower_hex_string()
    );
    assert_eq!(
        entry.current.binary_sha256,
        Sha256::digest(binary(0)).to_lower_hex_string()
    );
    assert!(entry.previous.is_none());

    // The operator configures the module; an update keeps that.
    std::fs::write(folder.join("config.toml"), "interval = 5\n").expect("config");
    f.publish(&Spec::new("block-stats", "0.1.1", binary(1)));
    f.publish(&Spec::new("block-stats", "0.2.0", binary(2)));
    let report = f.update_from(&f.repo(), "block-stats").expect("updates");
    assert_eq!(
        versions(&report),
        [(
            "block-stats".into(),
            ChangeKind::Updated {
                old: v("0.1.0"),
                new: v("0.1.1")
            }
        )],
        "update stays within ^0.1"
    );
    assert_eq!(std::fs::read(folder.join("block-stats")).expect("binary"), binary(1));
    assert_eq!(
        std::fs::read_to_string(folder.join("config.toml")).expect("config"),
        "interval = 5\n"
    );
    let previous = f.modules.join(".previous/block-stats");
    assert_eq!(
        std::fs::read(previous.join("block-stats")).expect("previous"),
        binary(0)
    );
    let entry = f.lock().modules["block-stats"].clone();
    assert_eq!(entry.current.version, "0.1.1");
    assert_eq!(entry.previous.as_ref().map(|p| p.version.as_str()), Some("0.1.0"));
    assert_eq!(discover(&f.modules).modules.len(), 1, ".previous is never discovered");

    let report = client::rollback(&f.modules, "block-stats").expect("rolls back");
    assert_eq!(
        versions(&report),
        [(
            "block-stats".into(),
            ChangeKind::Updated {
                old: v("0.1.1"),
                new: v("0.1.0")
            }
        )]
    );
    assert_eq!(std::fs::read(folder.join("block-stats")).expect("binary"), binary(0));
    assert_eq!(
        std::fs::read_to_string(folder.join("module.toml")).expect("manifest"),
        manifest_010
    );
    let entry = f.lock().modules["block-stats"].clone();
    assert_eq!(entry.current.version, "0.1.0");
    assert_eq!(entry.previous.as_ref().map(|p| p.version.as_str()), Some("0.1.1"));

    let report = client::remove(&f.modules, "block-stats", false).expect("removes");
    assert_eq!(
        versions(&report),
        [("block-stats".into(), ChangeKind::Removed { version: v("0.1.0") })]
    );
    assert!(!folder.exists() && !previous.exists());
    assert!(f.lock().modules.is_empty());
    assert!(matches!(
        client::rollback(&f.modules, "block-stats"),
        Err(InstallError::NotInstalled { .. })
    ));
}

#[test]
fn arbitrary_package_a_tampered_binary_in_targets_is_refused_and_the_installed_version_stays() {
    let mut f = Fixture::new("tampered-binary");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));
    f.install("block-stats", "^0.1").expect("installs");
    f.publish(&Spec::new("block-stats", "0.1.1", binary(1)));
    let file = f.target_file(&layout::binary_target("block-stats", "0.1.1"));
    let mut evil = std::fs::read(&file).expect("binary");
    evil[0] ^= 1;
    std::fs::write(&file, evil).expect("tampered");

    let before = f.snapshot();
    let err = f.update_from(&f.repo(), "block-stats").expect_err("refused");
    assert!(
        matches!(binary_error(&err), VerifyError::TargetMismatch { what: "sha256", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("arbitrary package attack"), "{err}");
    assert_eq!(f.snapshot(), before);
}

#[test]
fn a_binary_the_registry_signs_but_the_maintainers_did_not_pin_is_refused() {
    let mut f = Fixture::new("unpinned-binary");
    let spec = Spec::new("block-stats", "0.1.0", binary(0));
    let manifest = f.manifest(&spec);
    // The targets key signs another binary under the maintainers' manifest.
    f.publish_parts(&spec, &manifest, &binary(1), serde_json::Map::new());

    let before = f.snapshot();
    let err = f.install("block-stats", "*").expect_err("refused");
    assert!(
        matches!(
            &err,
            InstallError::BinaryMismatch {
                what: client::PinField::Hash,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn arbitrary_package_a_tampered_manifest_in_targets_is_refused_and_nothing_is_written() {
    let mut f = Fixture::new("tampered-manifest");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));
    let file = f.target_file(&layout::manifest_target("block-stats", "0.1.0"));
    let text = std::fs::read_to_string(&file).expect("manifest");
    std::fs::write(&file, text.replace("read_storage", "read_mempool")).expect("tampered");

    let before = f.snapshot();
    let err = f.install("block-stats", "*").expect_err("refused");
    assert!(
        matches!(
            resolve_error(&err),
            ResolveError::Manifest {
                source: VerifyError::TargetMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(f.snapshot(), before);
    assert!(!f.modules.join("block-stats").exists());
}

#[test]
fn extraneous_dependencies_a_dependency_added_to_a_signed_manifest_is_refused() {
    let mut f = Fixture::new("extraneous-added");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));
    f.publish(&Spec::new("fee-watcher", "0.1.0", binary(1)));
    // The attacker appends a dependency to the file the signed targets pin.
    let file = f.target_file(&layout::manifest_target("fee-watcher", "0.1.0"));
    let mut text = std::fs::read_to_string(&file).expect("manifest");
    text.push_str("\n[dependencies]\n\"block-stats\" = \"*\"\n");
    std::fs::write(&file, text).expect("tampered");

    let before = f.snapshot();
    let err = f.install("fee-watcher", "*").expect_err("refused");
    assert!(
        matches!(
            resolve_error(&err),
            ResolveError::Manifest {
                source: VerifyError::TargetMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(f.snapshot(), before);
    assert!(!f.modules.join("block-stats").exists());
}

#[test]
fn extraneous_dependencies_listed_only_outside_the_signed_manifest_are_never_installed() {
    let mut f = Fixture::new("extraneous-unsigned");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));
    // A dependency beside the version record in the target's custom data,
    let extra = serde_json::json!({"dependencies": {"block-stats": "*"}});
    let extra = extra.as_object().cloned().unwrap_or_default();
    let manifest = f.publish_with_custom(&Spec::new("fee-watcher", "0.1.0", binary(1)), extra);
    // in a REST-style answer, and in a manifest at the unprefixed path.
    let api = f.writer.dir().join("api/v1/modules");
    std::fs::create_dir_all(&api).expect("api dir");
    std::fs::write(
        api.join("fee-watcher.json"),
        r#"{"name":"fee-watcher","dependencies":{"block-stats":"*"}}"#,
    )
    .expect("api file");
    std::fs::write(
        f.writer.targets_dir().join("fee-watcher/0.1.0/module.toml"),
        format!("{manifest}\n[dependencies]\n\"block-stats\" = \"*\"\n"),
    )
    .expect("unprefixed manifest");

    let report = f.install("fee-watcher", "*").expect("installs");
    assert_eq!(
        versions(&report),
        [("fee-watcher".into(), ChangeKind::Installed { version: v("0.1.0") })]
    );
    assert!(!f.modules.join("block-stats").exists());
    assert_eq!(f.lock().modules.keys().collect::<Vec<_>>(), ["fee-watcher"]);
}

#[test]
fn review_period_a_version_published_now_is_refused_installed_by_exact_override_and_after_the_period() {
    let mut f = Fixture::new("review");
    let mut spec = Spec::new("block-stats", "0.1.0", binary(0));
    spec.review_period_days = Some(7);
    spec.published = now();
    f.publish(&spec);

    let before = f.snapshot();
    let err = f.install("block-stats", "*").expect_err("too young");
    assert!(
        matches!(
            policy_error(&err),
            PolicyError::UnderReview {
                review_period_days: 7,
                remaining_hours: 168,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("override with block-stats@0.1.0"), "{err}");
    assert_eq!(f.snapshot(), before);

    // An override of another version or another module does not count.
    for (name, version) in [("block-stats", "0.1.1"), ("fee-watcher", "0.1.0")] {
        let mut policy = f.policy();
        policy.review_overrides = BTreeSet::from([(name.to_owned(), v(version))]);
        let err = f
            .install_with(&policy, "block-stats", "*")
            .expect_err("still too young");
        assert!(matches!(policy_error(&err), PolicyError::UnderReview { .. }), "{err}");
        assert_eq!(f.snapshot(), before);
    }

    let mut policy = f.policy();
    policy.review_overrides = BTreeSet::from([("block-stats".to_owned(), v("0.1.0"))]);
    let report = f.install_with(&policy, "block-stats", "*").expect("overridden");
    assert!(report.changes[0].review_overridden);

    // Eight days later no override is needed.
    client::remove(&f.modules, "block-stats", false).expect("removed");
    let mut policy = f.policy();
    policy.now = now() + 8 * DAY;
    let report = f.install_with(&policy, "block-stats", "*").expect("the period is over");
    assert_eq!(
        versions(&report),
        [("block-stats".into(), ChangeKind::Installed { version: v("0.1.0") })]
    );
    assert!(!report.changes[0].review_overridden);
}

#[test]
fn a_tier_the_operator_does_not_accept_is_refused_and_an_untiered_module_needs_untiered() {
    let mut f = Fixture::new("tier");
    let mut spec = Spec::new("block-stats", "0.1.0", binary(0));
    spec.tier = Some("experimental");
    f.publish(&spec);
    let mut spec = Spec::new("fee-watcher", "0.1.0", binary(1));
    spec.tier = None;
    f.publish(&spec);

    let mut policy = f.policy();
    policy.tiers = BTreeMap::from([("community".to_owned(), 0)]);
    let before = f.snapshot();
    let err = f.install_with(&policy, "block-stats", "*").expect_err("refused");
    assert!(
        matches!(policy_error(&err), PolicyError::TierNotAccepted { tier, .. } if tier == "experimental"),
        "{err}"
    );
    assert_eq!(f.snapshot(), before);
    let err = f.install_with(&policy, "fee-watcher", "*").expect_err("refused");
    assert!(
        matches!(policy_error(&err), PolicyError::TierNotAccepted { tier, .. } if tier == client::UNTIERED),
        "{err}"
    );
    assert_eq!(f.snapshot(), before);

    policy.tiers.insert("experimental".to_owned(), 1);
    policy.tiers.insert(client::UNTIERED.to_owned(), 0);
    let report = f.install_with(&policy, "block-stats", "*").expect("accepted now");
    assert_eq!(report.changes[0].tier.as_deref(), Some("experimental"));
    f.install_with(&policy, "fee-watcher", "*").expect("accepted now");
}

#[test]
fn maintainer_signatures_under_the_threshold_or_from_an_unknown_key_are_refused() {
    let mut f = Fixture::new("signatures");
    // 2-of-2 declared, only alice signed.
    let mut spec = Spec::new("block-stats", "0.1.0", binary(0));
    spec.threshold = 2;
    f.publish(&spec);
    // 1-of-2, signed by alice.
    f.publish(&Spec::new("fee-watcher", "0.1.0", binary(1)));

    let before = f.snapshot();
    let insufficient = |err: &InstallError, valid: u32, required: u32| {
        matches!(
            policy_error(err),
            PolicyError::Signatures {
                source: SignatureError::Insufficient { valid: v, required: r, .. },
                ..
            } if *v == valid && *r == required
        )
    };

    let err = f
        .install("block-stats", "*")
        .expect_err("under the manifest's threshold");
    assert!(insufficient(&err, 1, 2), "{err}");
    assert_eq!(f.snapshot(), before);

    // Alice's key is not in the operator's keyring.
    let mut policy = f.policy();
    let mut keyring = Keyring::new();
    keyring.trust("bob", &f.maintainers[1].public).expect("key");
    policy.signatures.keyring = keyring;
    let err = f.install_with(&policy, "fee-watcher", "*").expect_err("unknown key");
    assert!(insufficient(&err, 0, 1), "{err}");
    assert!(err.to_string().contains("not in the keyring"), "{err}");
    assert_eq!(f.snapshot(), before);

    // The operator's own requirement, and a tier's, are stricter.
    let mut policy = f.policy();
    policy.signatures.required = 2;
    let err = f
        .install_with(&policy, "fee-watcher", "*")
        .expect_err("operator requires 2");
    assert!(insufficient(&err, 1, 2), "{err}");
    let mut policy = f.policy();
    policy.tiers = BTreeMap::from([("community".to_owned(), 2)]);
    let err = f
        .install_with(&policy, "fee-watcher", "*")
        .expect_err("the tier requires 2");
    assert!(insufficient(&err, 1, 2), "{err}");
    assert_eq!(f.snapshot(), before);

    f.install("fee-watcher", "*")
        .expect("1-of-2 from a trusted key installs");
}

/// A repository whose binary downloads break off halfway.
struct Interrupted(DirectoryRepository);

impl MetadataSource for Interrupted {
    fn fetch(&self, file: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.0.fetch(file, limit)
    }
}

impl Repository for Interrupted {
    fn fetch_target(&self, info: &TargetInfo) -> Result<Vec<u8>, VerifyError> {
        if !info.path().ends_with("/binary") {
            return self.0.fetch_target(info);
        }
        let bytes = std::fs::read(self.0.dir().join("targets").join(info.url_path())).expect("target");
        let mut checker = info.checker();
        checker.update(&bytes[..bytes.len() / 2])?;
        Err(VerifyError::Fetch {
            file: info.url_path().to_owned(),
            source: FetchError::Io(std::io::ErrorKind::ConnectionReset.into()),
        })
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

#[test]
fn a_download_interrupted_halfway_leaves_the_old_version_installed_and_no_staging_dir() {
    let mut f = Fixture::new("interrupted");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));
    f.install("block-stats", "^0.1").expect("installs");
    f.publish(&Spec::new("block-stats", "0.1.1", binary(1)));

    let before = f.snapshot();
    let err = f
        .update_from(&Interrupted(f.repo()), "block-stats")
        .expect_err("interrupted");
    assert!(matches!(binary_error(&err), VerifyError::Fetch { .. }), "{err}");
    assert_eq!(f.snapshot(), before, "the old version stays, byte for byte");
    assert_eq!(
        std::fs::read(f.modules.join("block-stats/block-stats")).expect("binary"),
        binary(0)
    );

    // A crash mid-staging leaves a folder there; the next run cleans it.
    let stale = f.modules.join(".staging/block-stats.0123456789abcdef");
    std::fs::create_dir_all(&stale).expect("stale");
    std::fs::write(stale.join("block-stats"), b"half").expect("stale file");
    f.update_from(&f.repo(), "block-stats").expect("updates");
    assert!(!stale.exists());
    assert_eq!(
        std::fs::read(f.modules.join("block-stats/block-stats")).expect("binary"),
        binary(1)
    );
}

#[test]
fn transitive_dependencies_are_installed_within_their_ranges_and_the_node_version() {
    let mut f = Fixture::new("transitive");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));
    let mut yanked = Spec::new("block-stats", "0.1.5", binary(1));
    yanked.yanked = true;
    f.publish(&yanked);
    let mut too_new_for_the_node = Spec::new("block-stats", "0.2.0", binary(2));
    too_new_for_the_node.dependencies = vec![("blvm-node", ">=9.0.0")];
    f.publish(&too_new_for_the_node);
    f.publish(&Spec::new("block-stats", "1.0.0", binary(3)));
    let mut watcher = Spec::new("fee-watcher", "0.1.0", binary(3));
    watcher.dependencies = vec![("block-stats", ">=0.1.0, <1.0.0")];
    f.publish(&watcher);

    let report = f.install("fee-watcher", "*").expect("installs");
    assert_eq!(
        versions(&report),
        [
            ("block-stats".into(), ChangeKind::Installed { version: v("0.1.0") }),
            ("fee-watcher".into(), ChangeKind::Installed { version: v("0.1.0") }),
        ],
        "0.1.5 is yanked, 0.2.0 needs a newer node, 1.0.0 is out of range"
    );
    let lock = f.lock();
    assert_eq!(lock.modules["block-stats"].requested, ">=0.1.0, <1.0.0");
    assert_eq!(lock.modules["fee-watcher"].requested, "^0.1.0");
    let discovery = discover(&f.modules);
    let resolution = blvm_module_host::registry::resolve(discovery.manifests());
    assert_eq!(
        resolution.order,
        ["block-stats", "fee-watcher"],
        "{:?}",
        resolution.failed
    );

    // Removing what another module needs is refused, unless forced.
    let before = f.snapshot();
    let err = client::remove(&f.modules, "block-stats", false).expect_err("needed");
    assert!(
        matches!(&err, InstallError::InUse { by, .. } if by == &["fee-watcher"]),
        "{err}"
    );
    assert_eq!(f.snapshot(), before);
    client::remove(&f.modules, "block-stats", true).expect("forced");
}

#[test]
fn an_installed_dependency_in_range_is_kept() {
    let mut f = Fixture::new("keep-installed");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));
    f.install("block-stats", "=0.1.0").expect("installs");
    f.publish(&Spec::new("block-stats", "0.1.1", binary(1)));
    let mut watcher = Spec::new("fee-watcher", "0.1.0", binary(2));
    watcher.dependencies = vec![("block-stats", "^0.1")];
    f.publish(&watcher);

    let report = f.install("fee-watcher", "*").expect("installs");
    assert_eq!(
        versions(&report),
        [("fee-watcher".into(), ChangeKind::Installed { version: v("0.1.0") })]
    );
    assert_eq!(f.lock().modules["block-stats"].current.version, "0.1.0");

    // A version the installed fee-watcher's range excludes is a conflict.
    f.publish(&Spec::new("block-stats", "1.0.0", binary(3)));
    let before = f.snapshot();
    let err = f.install("block-stats", "^1").expect_err("conflict");
    assert!(
        matches!(resolve_error(&err), ResolveError::Conflict { by, required, .. } if by == "fee-watcher" && required == "^0.1"),
        "{err}"
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn resolution_errors_name_the_module_the_range_and_what_exists() {
    let mut f = Fixture::new("resolve-errors");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));
    let mut newer = Spec::new("block-stats", "0.2.0", binary(1));
    newer.dependencies = vec![("blvm-node", ">=9.0.0")];
    f.publish(&newer);
    let mut a = Spec::new("block-stats", "0.3.0", binary(2));
    a.dependencies = vec![("fee-watcher", "=0.3.0")];
    f.publish(&a);
    let mut b = Spec::new("fee-watcher", "0.3.0", binary(3));
    b.dependencies = vec![("block-stats", "=0.3.0")];
    f.publish(&b);

    let before = f.snapshot();
    let err = f.install("no-such-module", "*").expect_err("unknown");
    assert!(
        matches!(resolve_error(&err), ResolveError::NoSuchModule { .. }),
        "{err}"
    );
    let err = f.install("block-stats", "^5").expect_err("out of range");
    assert!(
        matches!(resolve_error(&err), ResolveError::NoVersionInRange { available, .. } if available.len() == 3),
        "{err}"
    );
    assert!(err.to_string().contains("0.1.0, 0.2.0, 0.3.0"), "{err}");
    let err = f.install("block-stats", "=0.2.0").expect_err("incompatible");
    assert!(
        matches!(resolve_error(&err), ResolveError::Incompatible { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("blvm-node >=9.0.0"), "{err}");
    let err = f.install("fee-watcher", "=0.3.0").expect_err("cycle");
    assert!(
        matches!(resolve_error(&err), ResolveError::Cycle { cycle } if cycle == &["fee-watcher", "block-stats", "fee-watcher"]),
        "{err}"
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn a_failed_refresh_leaves_the_stored_trusted_state_as_it_was() {
    let mut f = Fixture::new("state");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));
    let state = f.state();
    assert!(state.metadata().targets().is_some());
    let stored = |name: &str| std::fs::read(f.dir.join("state").join(name)).expect("stored");
    let before: Vec<Vec<u8>> = ["root.json", "timestamp.json", "snapshot.json"].map(stored).to_vec();
    // A timestamp the repository did not sign.
    std::fs::write(f.writer.metadata_dir().join("timestamp.json"), b"{}").expect("broken");
    let mut state = TrustedState::open(f.dir.join("state"), &f.root_file, now()).expect("opens");
    let err = state.refresh(&f.repo(), now()).expect_err("refused");
    assert!(matches!(err, client::StateError::Refresh { .. }), "{err}");
    let after: Vec<Vec<u8>> = ["root.json", "timestamp.json", "snapshot.json"].map(stored).to_vec();
    assert_eq!(before, after);
}

fn blvm_module(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_blvm-module"))
        .args(args)
        .output()
        .expect("blvm-module runs")
}

#[test]
fn the_cli_installs_lists_searches_rolls_back_and_removes_a_module() {
    // The CLI runs at the real time: the repository is written at it.
    let mut f = Fixture::at("cli", SystemTime::now());
    let mut spec = Spec::new("block-stats", "0.1.0", binary(0));
    spec.published = f.time - 30 * DAY;
    f.publish(&spec);
    let (registry, root, modules, state) = (
        f.writer.dir().display().to_string(),
        f.root_file.display().to_string(),
        f.modules.display().to_string(),
        f.dir.join("state").display().to_string(),
    );
    let alice = format!("alice={}", f.maintainers[0].public);
    let source = [
        "--registry",
        registry.as_str(),
        "--root",
        root.as_str(),
        "--state-dir",
        state.as_str(),
    ];
    let local = ["--modules-dir", modules.as_str()];
    let run = |command: &[&str], extra: &[&[&str]]| {
        let mut args = command.to_vec();
        for more in extra {
            args.extend_from_slice(more);
        }
        blvm_module(&args)
    };
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let out = run(&["install", "block-stats", "--accept-tier", "core"], &[&source, &local]);
    assert!(!out.status.success(), "the community tier is not accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tier `community` is not accepted"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");

    let trust = ["--trust", alice.as_str(), "--required", "1"];
    let out = ok(run(&["install", "block-stats"], &[&source, &local, &trust]));
    assert!(
        out.contains("block-stats: installed 0.1.0 (tier community, signed by alice)"),
        "{out}"
    );
    let out = ok(run(&["list"], &[&local]));
    assert!(out.contains("block-stats 0.1.0 (from "), "{out}");
    assert!(out.contains("range ^0.1.0"), "{out}");
    let out = ok(run(&["search", "statistics"], &[&source]));
    assert!(out.starts_with("block-stats: Keeps per-block statistics"), "{out}");

    spec = Spec::new("block-stats", "0.1.1", binary(1));
    spec.published = f.time - DAY;
    f.publish(&spec);
    let out = ok(run(&["update", "block-stats"], &[&source, &local, &trust]));
    assert!(out.contains("updated 0.1.0 -> 0.1.1"), "{out}");
    let out = ok(run(&["rollback", "block-stats"], &[&local]));
    assert!(out.contains("updated 0.1.1 -> 0.1.0"), "{out}");
    assert_eq!(
        std::fs::read(f.modules.join("block-stats/block-stats")).expect("binary"),
        binary(0)
    );
    let out = ok(run(&["remove", "block-stats"], &[&local]));
    assert!(out.contains("removed 0.1.0"), "{out}");
    assert!(!f.modules.join("block-stats").exists());
}

/// Writes version `spec` into `modules/<folder>/` as an operator
/// installing by hand would.
fn install_by_hand(f: &Fixture, spec: &Spec, folder: &str) {
    let dir = f.modules.join(folder);
    std::fs::create_dir_all(&dir).expect("folder");
    std::fs::write(dir.join("module.toml"), f.manifest(spec)).expect("manifest");
    std::fs::write(dir.join(spec.name), &spec.binary).expect("binary");
    std::fs::set_permissions(dir.join(spec.name), std::fs::Permissions::from_mode(0o755)).expect("mode");
}

#[test]
fn a_module_installed_by_hand_becomes_the_previous_version_and_rollback_brings_it_back() {
    let mut f = Fixture::new("by-hand");
    let hand = Spec::new("block-stats", "0.1.0", binary(0));
    install_by_hand(&f, &hand, "block-stats");
    f.publish(&Spec::new("block-stats", "0.1.1", binary(1)));

    let report = f.install("block-stats", "^0.1").expect("installs over it");
    assert_eq!(
        versions(&report),
        [(
            "block-stats".into(),
            ChangeKind::Updated {
                old: v("0.1.0"),
                new: v("0.1.1")
            }
        )]
    );
    let previous = f.lock().modules["block-stats"]
        .previous
        .clone()
        .expect("previous recorded");
    assert_eq!(previous.version, "0.1.0");
    assert_eq!(previous.registry, "", "not from a registry");
    client::rollback(&f.modules, "block-stats").expect("rolls back");
    assert_eq!(
        std::fs::read(f.modules.join("block-stats/block-stats")).expect("binary"),
        binary(0)
    );
}

#[test]
fn a_module_installed_by_hand_at_the_registrys_version_is_replaced_by_the_verified_copy() {
    let mut f = Fixture::new("by-hand-same");
    // Same version, other bytes: a local build the registry never signed.
    install_by_hand(&f, &Spec::new("block-stats", "0.1.0", binary(7)), "block-stats");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));

    let report = f.install("block-stats", "*").expect("installs over it");
    assert_eq!(
        versions(&report),
        [(
            "block-stats".into(),
            ChangeKind::Updated {
                old: v("0.1.0"),
                new: v("0.1.0")
            }
        )]
    );
    assert_eq!(
        std::fs::read(f.modules.join("block-stats/block-stats")).expect("binary"),
        binary(0),
        "the registry's bytes run now"
    );
    assert!(f.lock().modules.contains_key("block-stats"));
    // Once it is the installer's, asking again changes nothing.
    let again = f.install("block-stats", "*").expect("installed");
    assert!(
        matches!(again.changes[0].kind, ChangeKind::Unchanged { .. }),
        "{again:?}"
    );
}

#[test]
fn a_module_installed_by_hand_in_another_folder_is_not_installed_beside() {
    let mut f = Fixture::new("elsewhere");
    install_by_hand(&f, &Spec::new("block-stats", "0.1.0", binary(0)), "my-stats");
    f.publish(&Spec::new("block-stats", "0.1.1", binary(1)));

    let before = f.snapshot();
    let err = f.install("block-stats", "*").expect_err("refused");
    assert!(matches!(&err, InstallError::InstalledElsewhere { .. }), "{err}");
    assert_eq!(f.snapshot(), before);
}

#[test]
fn the_stored_timestamp_refuses_a_rollback_on_the_next_run() {
    let mut f = Fixture::new("state-rollback");
    f.publish(&Spec::new("block-stats", "0.1.0", binary(0)));
    let old_timestamp = std::fs::read(f.writer.metadata_dir().join("timestamp.json")).expect("timestamp");
    f.publish(&Spec::new("block-stats", "0.1.1", binary(1)));
    f.state(); // this run trusts, and stores, the second timestamp

    // The next run is served the first timestamp again.
    std::fs::write(f.writer.metadata_dir().join("timestamp.json"), old_timestamp).expect("replayed");
    let mut state = TrustedState::open(f.dir.join("state"), &f.root_file, now()).expect("opens");
    let err = state.refresh(&f.repo(), now()).expect_err("rollback");
    assert!(
        matches!(
            err,
            client::StateError::Refresh {
                source: VerifyError::Rollback { .. },
                ..
            }
        ),
        "{err}"
    );
}
