//! The update attacks of the TUF spec against the installer, as a node
//! meets them: block-stats 0.1.0 (its real manifest, packed and signed by
//! its maintainer; a real file of this repository as its binary) is
//! installed from an honest repository through the state directory and
//! `client::install`; 0.1.1 is published; then the repository, or the
//! server in front of it, turns hostile and the node's next run refreshes
//! its trusted state and runs `client::update`. Each test checks the typed
//! error, that its one-line message names what happened, and that
//! `modules/` (every file's bytes and mode, `blvm.lock` included, no
//! staging folder left) and the stored trusted state are byte for byte as
//! before. Where it is cheap, the honest repository then updates, so the
//! refusal is the attack's and not a broken fixture's.
//!
//! The same attacks against the bare metadata verifier are in
//! `tuf_attacks.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use blvm_registry::client::{
    self, ChangeKind, DownloadOptions, HttpRepository, InstallError, InstallPolicy, Progress, Report, Repository,
    StateError, TrustedState,
};
use blvm_registry::layout;
use blvm_registry::tuf::metadata::{Hashes, MetaFile, Metadata, Snapshot, Targets, Timestamp};
use blvm_registry::tuf::{
    FetchError, Lifetimes, RepositoryKeys, RoleName, RoleSigners, Signed, SigningKey, VerifyError,
};
use hex_conservative::DisplayHex;
use semver::VersionReq;
use sha2::{Digest, Sha256};

use crate::http_client::server::{serve_file, Conn, Request, Served, Server};
use crate::http_client::{endless_length, most_sent_for, within_deadline};
use crate::install::{binary, binary_error, node, v, versions, walk, Fixture, Spec};
use crate::support::{now, read};

/// The module installed, updated and attacked.
const NAME: &str = "block-stats";
/// The version installed from the honest repository.
const V1: &str = "0.1.0";
/// The version published next, which the attacks are about.
const V2: &str = "0.1.1";

const HOUR: Duration = Duration::from_secs(60 * 60);

/// Why a node's run failed: its refresh was refused, or its update.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Install(#[from] InstallError),
}

/// What a node keeps between runs, as paths (so a run can move to a
/// thread), and the operator's policy.
#[derive(Clone)]
struct Node {
    state_dir: PathBuf,
    root_file: PathBuf,
    modules: PathBuf,
    policy: InstallPolicy,
}

impl Node {
    fn of(f: &Fixture) -> Node {
        Node {
            state_dir: f.dir.join("state"),
            root_file: f.root_file.clone(),
            modules: f.modules.clone(),
            policy: f.policy(),
        }
    }

    /// A run's first step: the stored state, refreshed from `repo` at `now`
    /// (and stored if it verifies).
    fn refreshed<R: Repository + ?Sized>(&self, repo: &R, now: SystemTime) -> Result<TrustedState, StateError> {
        let mut state = TrustedState::open(&self.state_dir, &self.root_file, now)?;
        state.refresh(repo, now)?;
        Ok(state)
    }

    /// A run that installs `block-stats` at `^0.1`.
    fn install<R: Repository + ?Sized>(&self, repo: &R, now: SystemTime) -> Result<Report, RunError> {
        let state = self.refreshed(repo, now)?;
        let registry = client::Registry { repo, state: &state };
        let req = VersionReq::parse("^0.1").expect("range");
        Ok(client::install(
            &registry,
            &self.policy_at(now),
            &node(),
            &self.modules,
            NAME,
            &req,
        )?)
    }

    /// A run that updates `block-stats`.
    fn update<R: Repository + ?Sized>(&self, repo: &R, now: SystemTime) -> Result<Report, RunError> {
        let state = self.refreshed(repo, now)?;
        self.update_with(repo, &state, now)
    }

    /// The update of a run whose refresh is done.
    fn update_with<R: Repository + ?Sized>(
        &self,
        repo: &R,
        state: &TrustedState,
        now: SystemTime,
    ) -> Result<Report, RunError> {
        let registry = client::Registry { repo, state };
        Ok(client::update(
            &registry,
            &self.policy_at(now),
            &node(),
            &self.modules,
            NAME,
        )?)
    }

    fn policy_at(&self, now: SystemTime) -> InstallPolicy {
        InstallPolicy {
            now,
            ..self.policy.clone()
        }
    }
}

/// A repository with 0.1.0 installed from it by a node, and that node.
fn installed(name: &str) -> (Fixture, Node) {
    installed_in(Fixture::new(name))
}

fn installed_in(mut f: Fixture) -> (Fixture, Node) {
    f.publish(&Spec::new(NAME, V1, binary(0)));
    let node = Node::of(&f);
    let report = node.install(&f.repo(), f.time).expect("0.1.0 installs");
    assert_eq!(
        versions(&report),
        [(NAME.into(), ChangeKind::Installed { version: v(V1) })]
    );
    (f, node)
}

/// Publishes 0.1.1.
fn publish_v2(f: &mut Fixture) {
    f.publish(&Spec::new(NAME, V2, binary(1)));
}

#[track_caller]
fn assert_updated_to_v2(report: &Report, f: &Fixture) {
    assert_eq!(
        versions(report),
        [(NAME.into(), ChangeKind::Updated { old: v(V1), new: v(V2) })]
    );
    assert_eq!(installed_binary(f), binary(1), "the exact bytes of 0.1.1");
}

fn installed_binary(f: &Fixture) -> Vec<u8> {
    std::fs::read(f.modules.join(NAME).join(NAME)).expect("the installed binary")
}

/// Every file of `modules/` (mode and bytes; the lock file included; the
/// staging area checked empty) and of the stored trusted state.
#[derive(PartialEq)]
struct Untouched {
    modules: BTreeMap<PathBuf, (u32, Vec<u8>)>,
    state: BTreeMap<PathBuf, (u32, Vec<u8>)>,
}

fn untouched(f: &Fixture) -> Untouched {
    let modules = f.snapshot();
    assert!(
        modules.contains_key(Path::new("blvm.lock")),
        "the lock file is compared too"
    );
    let dir = f.dir.join("state");
    let mut state = BTreeMap::new();
    walk(&dir, &dir, &mut state);
    assert!(
        state.contains_key(Path::new("timestamp.json")),
        "the stored state is compared"
    );
    Untouched { modules, state }
}

#[track_caller]
fn assert_untouched(f: &Fixture, before: &Untouched) {
    let after = untouched(f);
    let changed = |a: &BTreeMap<PathBuf, (u32, Vec<u8>)>, b: &BTreeMap<PathBuf, (u32, Vec<u8>)>| {
        a.keys()
            .chain(b.keys())
            .filter(|path| a.get(*path) != b.get(*path))
            .map(|path| path.display().to_string())
            .collect::<BTreeSet<_>>()
    };
    assert!(
        after == *before,
        "changed in modules/: {:?}; in the stored state: {:?}",
        changed(&before.modules, &after.modules),
        changed(&before.state, &after.state)
    );
}

/// The verifier's refusal of a run's refresh.
#[track_caller]
fn refused(err: &RunError) -> &VerifyError {
    match err {
        RunError::State(StateError::Refresh { source, .. }) => source,
        other => panic!("not a refused refresh: {other}"),
    }
}

/// The installer's refusal of a run's update.
#[track_caller]
fn install_error(err: &RunError) -> &InstallError {
    match err {
        RunError::Install(e) => e,
        other => panic!("not an install error: {other}"),
    }
}

/// The message is one line and says `what`.
#[track_caller]
fn assert_message(err: &RunError, what: &str) {
    let message = err.to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(message.contains(what), "{message:?} says {what:?}");
}

fn metadata_file(f: &Fixture, file: &str) -> PathBuf {
    f.writer.metadata_dir().join(file)
}

fn timestamp(f: &Fixture) -> Signed<Timestamp> {
    read(&metadata_file(f, "timestamp.json"))
}

/// The repository's current snapshot version.
fn snapshot_version(f: &Fixture) -> u64 {
    timestamp(f).signed.meta["snapshot.json"].version
}

fn snapshot(f: &Fixture) -> Signed<Snapshot> {
    read(&metadata_file(f, &format!("{}.snapshot.json", snapshot_version(f))))
}

/// The repository's current targets version.
fn targets_version(f: &Fixture) -> u64 {
    snapshot(f).signed.meta["targets.json"].version
}

/// What snapshot or timestamp lists for a file of these bytes.
fn meta(version: u64, bytes: &[u8]) -> MetaFile {
    MetaFile {
        version,
        length: Some(bytes.len() as u64),
        hashes: Some(Hashes {
            sha256: Sha256::digest(bytes).to_lower_hex_string(),
        }),
    }
}

/// Signs `signed` with `keys` and writes it as `metadata/<file>`; returns
/// the bytes.
fn forge<T: Metadata>(f: &Fixture, file: &str, signed: T, keys: &[&SigningKey]) -> Vec<u8> {
    let bytes = Signed::sign(signed, keys).expect("forged metadata signs").to_bytes();
    std::fs::write(metadata_file(f, file), &bytes).expect("forged metadata written");
    bytes
}

/// A timestamp one version above the repository's, listing `snapshot`,
/// signed by `key`.
fn forge_timestamp(f: &Fixture, snapshot: MetaFile, key: &SigningKey) {
    let mut timestamp = timestamp(f).signed;
    timestamp.version += 1;
    timestamp.meta.insert("snapshot.json".into(), snapshot);
    forge(f, "timestamp.json", timestamp, &[key]);
}

#[test]
fn rollback_an_older_timestamp_served_on_the_next_run_is_refused_and_the_module_stays() {
    let (mut f, node) = installed("attack-rollback-timestamp");
    let v1_era = std::fs::read(metadata_file(&f, "timestamp.json")).expect("timestamp");
    publish_v2(&mut f);
    let report = node.update(&f.repo(), f.time).expect("0.1.1 installs");
    assert_updated_to_v2(&report, &f);

    // The next run is served the timestamp of 0.1.0's time, whose
    // snapshot and targets (still in the repository under consistent
    // snapshots) list only 0.1.0: without the check, a downgrade.
    let before = untouched(&f);
    std::fs::write(metadata_file(&f, "timestamp.json"), &v1_era).expect("replayed");
    let err = node.update(&f.repo(), f.time).expect_err("rollback");
    assert!(
        matches!(
            refused(&err),
            VerifyError::Rollback {
                role: RoleName::Timestamp,
                found,
                trusted,
            } if found < trusted
        ),
        "{err}"
    );
    assert_message(&err, "rollback attack: timestamp version");
    assert_untouched(&f, &before);
    assert_eq!(installed_binary(&f), binary(1));
}

#[test]
fn rollback_an_older_snapshot_served_on_the_next_run_is_refused_and_the_module_stays() {
    let (mut f, node) = installed("attack-rollback-snapshot");
    let v1_snapshot = snapshot_version(&f);
    let v1_snapshot_bytes =
        std::fs::read(metadata_file(&f, &format!("{v1_snapshot}.snapshot.json"))).expect("snapshot");
    publish_v2(&mut f);
    let report = node.update(&f.repo(), f.time).expect("0.1.1 installs");
    assert_updated_to_v2(&report, &f);

    // With the online timestamp key, a newer timestamp that lists the
    // snapshot of 0.1.0's time.
    let before = untouched(&f);
    let key = &f.writer.keys().timestamp.keys[0];
    forge_timestamp(&f, meta(v1_snapshot, &v1_snapshot_bytes), key);
    let err = node.update(&f.repo(), f.time).expect_err("rollback");
    assert!(
        matches!(
            refused(&err),
            VerifyError::Rollback {
                role: RoleName::Snapshot,
                found,
                trusted,
            } if *found == v1_snapshot && trusted > found
        ),
        "{err}"
    );
    assert_message(&err, "rollback attack: snapshot version");
    assert_untouched(&f, &before);
    assert_eq!(installed_binary(&f), binary(1));
}

#[test]
fn indefinite_freeze_an_expired_timestamp_is_refused_and_the_module_stays() {
    let lifetimes = Lifetimes {
        timestamp: HOUR,
        ..Lifetimes::default()
    };
    let keys = RepositoryKeys::generate().expect("keys");
    let (mut f, node) = installed_in(Fixture::with("attack-freeze", keys, lifetimes, now()));
    let frozen = std::fs::read(metadata_file(&f, "timestamp.json")).expect("timestamp");

    // Two hours later the repository has published 0.1.1; a mirror keeps
    // serving the metadata it had, signed and once valid.
    f.time = now() + 2 * HOUR;
    publish_v2(&mut f);
    let honest = std::fs::read(metadata_file(&f, "timestamp.json")).expect("timestamp");
    std::fs::write(metadata_file(&f, "timestamp.json"), &frozen).expect("frozen");
    let before = untouched(&f);
    let err = node.update(&f.repo(), f.time).expect_err("frozen");
    assert!(
        matches!(
            refused(&err),
            VerifyError::Expired {
                role: RoleName::Timestamp,
                ..
            }
        ),
        "{err}"
    );
    assert_message(&err, "freeze attack: timestamp metadata expired at");
    assert_untouched(&f, &before);

    std::fs::write(metadata_file(&f, "timestamp.json"), &honest).expect("thawed");
    let report = node.update(&f.repo(), f.time).expect("the current timestamp updates");
    assert_updated_to_v2(&report, &f);
}

#[test]
fn mix_and_match_targets_of_another_snapshot_are_refused_and_the_module_stays() {
    let (mut f, node) = installed("attack-mix-and-match");
    publish_v2(&mut f);
    let targets = targets_version(&f);
    let v2_targets_file = metadata_file(&f, &format!("{targets}.targets.json"));
    let v2_targets = std::fs::read(&v2_targets_file).expect("targets");

    // The targets of 0.1.0's time, served where 0.1.1's snapshot lists its
    // own: the hash the snapshot lists.
    let before = untouched(&f);
    let v1_targets = std::fs::read(metadata_file(&f, &format!("{}.targets.json", targets - 1))).expect("targets");
    std::fs::write(&v2_targets_file, &v1_targets).expect("mixed");
    let err = node.update(&f.repo(), f.time).expect_err("mixed");
    assert!(
        matches!(
            refused(&err),
            VerifyError::MetaFileMismatch {
                role: RoleName::Targets,
                listed_by: RoleName::Snapshot,
                ..
            }
        ),
        "{err}"
    );
    assert_message(&err, "mix-and-match attack: targets metadata does not match the");
    assert_untouched(&f, &before);

    // A snapshot that lists versions only (as python-tuf writes by
    // default), signed with the online snapshot key: the version inside
    // the targets file.
    let keys = f.writer.keys();
    let mut snapshot = snapshot(&f).signed;
    snapshot.version += 1;
    snapshot.meta.insert(
        "targets.json".into(),
        MetaFile {
            version: targets,
            length: None,
            hashes: None,
        },
    );
    let version = snapshot.version;
    let bytes = forge(
        &f,
        &format!("{version}.snapshot.json"),
        snapshot,
        &[&keys.snapshot.keys[0]],
    );
    forge_timestamp(&f, meta(version, &bytes), &keys.timestamp.keys[0]);
    let err = node.update(&f.repo(), f.time).expect_err("mixed");
    assert!(
        matches!(
            refused(&err),
            VerifyError::VersionMismatch {
                role: RoleName::Targets,
                found,
                expected,
                listed_by: RoleName::Snapshot,
            } if *found == targets - 1 && *expected == targets
        ),
        "{err}"
    );
    assert_message(&err, "mix-and-match attack: targets version");
    assert_untouched(&f, &before);

    // With the targets file it lists, the same snapshot updates.
    std::fs::write(&v2_targets_file, &v2_targets).expect("unmixed");
    let report = node.update(&f.repo(), f.time).expect("matching targets update");
    assert_updated_to_v2(&report, &f);
}

#[test]
fn fast_forward_recovery_after_a_root_rotation_the_client_follows_the_new_root_and_installs() {
    let (mut f, node) = installed("attack-fast-forward");
    // Whoever stole the timestamp key pushed the node to timestamp 1000.
    let mut timestamp = timestamp(&f).signed;
    timestamp.version = 1000;
    forge(&f, "timestamp.json", timestamp, &[&f.writer.keys().timestamp.keys[0]]);
    let report = node
        .update(&f.repo(), f.time)
        .expect("the fast-forwarded timestamp verifies");
    assert_eq!(
        versions(&report),
        [(NAME.into(), ChangeKind::Unchanged { version: v(V1) })]
    );

    // The repository's own next timestamp is a rollback now: stuck.
    publish_v2(&mut f);
    let err = node.update(&f.repo(), f.time).expect_err("stuck at 1000");
    assert!(
        matches!(
            refused(&err),
            VerifyError::Rollback {
                role: RoleName::Timestamp,
                trusted: 1000,
                ..
            }
        ),
        "{err}"
    );

    // The repository rotates the timestamp and snapshot keys (roots 2 and
    // 3) and signs its metadata again with the new keys.
    for role in [RoleName::Timestamp, RoleName::Snapshot] {
        let new = RoleSigners::generate(1, 1).expect("key");
        f.writer.rotate_keys(role, new, f.time).expect("rotated");
    }
    f.writer.commit(f.time).expect("commit under root 3");
    let report = node
        .update(&f.repo(), f.time)
        .expect("the node recovers through the new roots");
    assert_updated_to_v2(&report, &f);
    let stored = |file: &str| std::fs::read(f.dir.join("state").join(file)).expect("stored");
    let repository = |file: &str| std::fs::read(metadata_file(&f, file)).expect("repository file");
    assert_eq!(stored("root.json"), repository("3.root.json"), "the new root is stored");
    assert_eq!(stored("timestamp.json"), repository("timestamp.json"));
    assert!(
        read::<serde_json::Value>(&f.dir.join("state/timestamp.json")).signed["version"]
            .as_u64()
            .is_some_and(|version| version < 1000),
        "the fast-forwarded timestamp is no longer the reference"
    );
}

#[test]
fn fast_forward_recovery_metadata_signed_by_the_rotated_out_timestamp_or_snapshot_key_is_refused_and_the_module_stays()
{
    let (mut f, node) = installed("attack-rotated-out");
    publish_v2(&mut f);
    let old_timestamp = f
        .writer
        .rotate_keys(RoleName::Timestamp, RoleSigners::generate(1, 1).expect("key"), f.time)
        .expect("rotated");
    let old_snapshot = f
        .writer
        .rotate_keys(RoleName::Snapshot, RoleSigners::generate(1, 1).expect("key"), f.time)
        .expect("rotated");
    f.writer.commit(f.time).expect("commit under root 3");
    let report = node.update(&f.repo(), f.time).expect("0.1.1 under the new keys");
    assert_updated_to_v2(&report, &f);

    // The holder of the old keys signs a newer snapshot and timestamp.
    let before = untouched(&f);
    let mut snapshot = snapshot(&f).signed;
    snapshot.version += 1;
    let version = snapshot.version;
    let bytes = forge(
        &f,
        &format!("{version}.snapshot.json"),
        snapshot,
        &[&old_snapshot.keys[0]],
    );
    forge_timestamp(&f, meta(version, &bytes), &old_timestamp.keys[0]);
    let err = node.update(&f.repo(), f.time).expect_err("the old timestamp key");
    assert!(
        matches!(
            refused(&err),
            VerifyError::BelowThreshold {
                role: RoleName::Timestamp,
                valid: 0,
                threshold: 1
            }
        ),
        "{err}"
    );
    assert_message(
        &err,
        "key compromise: timestamp metadata has valid signatures from 0 trusted key(s)",
    );
    assert_untouched(&f, &before);

    // With the new timestamp key too (online, on the server the attacker
    // holds), the snapshot the old key signed is refused.
    forge_timestamp(&f, meta(version, &bytes), &f.writer.keys().timestamp.keys[0]);
    let err = node.update(&f.repo(), f.time).expect_err("the old snapshot key");
    assert!(
        matches!(
            refused(&err),
            VerifyError::BelowThreshold {
                role: RoleName::Snapshot,
                valid: 0,
                threshold: 1
            }
        ),
        "{err}"
    );
    assert_message(
        &err,
        "key compromise: snapshot metadata has valid signatures from 0 trusted key(s)",
    );
    assert_untouched(&f, &before);
}

#[test]
fn key_compromise_below_the_threshold_metadata_signed_by_one_of_two_targets_keys_is_refused_and_the_module_stays() {
    let keys = RepositoryKeys {
        root: RoleSigners::generate(1, 1).expect("key"),
        targets: RoleSigners::generate(2, 2).expect("keys"),
        snapshot: RoleSigners::generate(1, 1).expect("key"),
        timestamp: RoleSigners::generate(1, 1).expect("key"),
    };
    let (mut f, node) = installed_in(Fixture::with("attack-threshold", keys, Lifetimes::default(), now()));
    publish_v2(&mut f);
    let honest = std::fs::read(metadata_file(&f, "timestamp.json")).expect("timestamp");

    // The attacker holds one of the two targets keys and the server's
    // online snapshot and timestamp keys. It signs targets that swap
    // 0.1.1's binary for its own (the key's signature given twice),
    // places that binary where the client will fetch it, and lists the
    // new targets.
    let evil = binary(3);
    let sha256 = Sha256::digest(&evil).to_lower_hex_string();
    let path = layout::binary_target(NAME, V2);
    let version = targets_version(&f) + 1;
    let mut targets = read::<Targets>(&metadata_file(&f, &format!("{}.targets.json", version - 1))).signed;
    targets.version = version;
    let entry = targets.targets.get_mut(&path).expect("0.1.1's binary is signed");
    entry.length = evil.len() as u64;
    entry.hashes.sha256 = sha256.clone();
    let evil_file = f.writer.targets_dir().join(format!("{NAME}/{V2}/{sha256}.binary"));
    std::fs::write(&evil_file, &evil).expect("the attacker's binary");
    let keys = f.writer.keys();
    let stolen = &keys.targets.keys[0];
    let targets_bytes = forge(&f, &format!("{version}.targets.json"), targets, &[stolen, stolen]);
    let mut snapshot = snapshot(&f).signed;
    snapshot.version += 1;
    snapshot
        .meta
        .insert("targets.json".into(), meta(version, &targets_bytes));
    let snapshot_version = snapshot.version;
    let snapshot_bytes = forge(
        &f,
        &format!("{snapshot_version}.snapshot.json"),
        snapshot,
        &[&keys.snapshot.keys[0]],
    );
    forge_timestamp(&f, meta(snapshot_version, &snapshot_bytes), &keys.timestamp.keys[0]);

    let before = untouched(&f);
    let err = node.update(&f.repo(), f.time).expect_err("one key of two");
    assert!(
        matches!(
            refused(&err),
            VerifyError::BelowThreshold {
                role: RoleName::Targets,
                valid: 1,
                threshold: 2
            }
        ),
        "{err}"
    );
    assert_message(
        &err,
        "key compromise: targets metadata has valid signatures from 1 trusted key(s), its threshold is 2",
    );
    assert_untouched(&f, &before);
    assert_eq!(installed_binary(&f), binary(0));

    // The repository's own metadata, signed by both keys, updates.
    std::fs::write(metadata_file(&f, "timestamp.json"), &honest).expect("honest again");
    let report = node.update(&f.repo(), f.time).expect("two keys of two");
    assert_updated_to_v2(&report, &f);
}

/// Whether `path` is the request for 0.1.1's binary.
fn is_v2_binary(path: &str) -> bool {
    path.starts_with(&format!("/targets/{NAME}/{V2}/")) && path.ends_with(".binary")
}

/// A server that is honest but for 0.1.1's binary, and the requests for
/// that binary it read (their range starts), in order.
struct Hostile {
    server: Server,
    requests: Arc<Mutex<Vec<Option<u64>>>>,
}

impl Hostile {
    fn requests(&self) -> Vec<Option<u64>> {
        self.requests.lock().expect("not poisoned").clone()
    }

    /// The first request for 0.1.1's binary once served (its handler
    /// ends when the client closes).
    fn first_served(&self) -> Served {
        std::iter::from_fn(|| Some(self.server.next_served()))
            .find(|s| is_v2_binary(&s.request.path))
            .expect("0.1.1's binary was requested")
    }
}

/// A fixture whose repository is served over HTTP by a server that is
/// honest but for 0.1.1's binary, which `hostile` answers (with the
/// binary's bytes); 0.1.0 installed over HTTP from it, 0.1.1 published.
fn behind_a_hostile_server(
    name: &str,
    hostile: impl Fn(&Request, &mut Conn, &[u8]) -> io::Result<()> + Send + Sync + 'static,
) -> (Fixture, Node, Hostile) {
    let mut f = Fixture::new(name);
    let dir = f.writer.dir().to_owned();
    let v2_binary = binary(1);
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    let server = Server::start(move |request, conn| {
        if is_v2_binary(&request.path) {
            seen.lock().expect("not poisoned").push(request.range_start());
            hostile(request, conn, &v2_binary)
        } else {
            serve_file(&dir, request, conn)
        }
    });
    f.publish(&Spec::new(NAME, V1, binary(0)));
    let node = Node::of(&f);
    let report = node
        .install(&http(&server.url, quiet()), f.time)
        .expect("0.1.0 installs over HTTP");
    assert_eq!(
        versions(&report),
        [(NAME.into(), ChangeKind::Installed { version: v(V1) })]
    );
    publish_v2(&mut f);
    (f, node, Hostile { server, requests })
}

fn quiet() -> DownloadOptions {
    DownloadOptions {
        progress: Progress::Quiet,
        ..DownloadOptions::default()
    }
}

fn http(url: &str, options: DownloadOptions) -> HttpRepository {
    HttpRepository::new(url, options).expect("the server's URL is valid")
}

/// The node's next run over HTTP with `options`, on a thread with a
/// deadline (a client that reads forever fails instead of hanging): the
/// refresh, which the server answers honestly, then the update. Returns
/// what `modules/` and the stored state were after the refresh, and the
/// update's result.
fn update_over_http(
    f: &Fixture,
    node: &Node,
    server: &Server,
    options: DownloadOptions,
) -> (Untouched, Result<Report, RunError>) {
    let repo = http(&server.url, options);
    let state = node.refreshed(&repo, f.time).expect("the metadata is honest");
    let before = untouched(f);
    let (node, time) = (node.clone(), f.time);
    let result = within_deadline(move || node.update_with(&repo, &state, time));
    (before, result)
}

#[test]
fn endless_data_a_server_sending_past_the_signed_length_is_cut_off_and_the_module_stays() {
    let (f, node, server) = behind_a_hostile_server("attack-endless", |_, conn, binary| {
        conn.head("200 OK", &[])?;
        conn.send(binary)?;
        conn.endless(b'x', endless_length())
    });
    let (before, result) = update_over_http(&f, &node, &server.server, quiet());
    let err = result.expect_err("more than the signed length");
    let length = binary(1).len();
    assert!(
        matches!(
            binary_error(install_error(&err)),
            VerifyError::TargetMismatch { what: "length", .. }
        ),
        "{err}"
    );
    assert_message(
        &err,
        &format!("has length more than {length}, the signed length is {length}"),
    );
    assert_untouched(&f, &before);
    assert_eq!(server.requests(), [None], "refused, not retried");
    let served = server.first_served();
    assert!(served.error.is_some(), "the client closed before the server was done");
    assert!(
        served.sent <= most_sent_for(length as u64 + 64 * 1024),
        "the client stopped reading at the signed length: the server wrote {} bytes",
        served.sent
    );
}

#[test]
fn slow_retrieval_a_trickling_server_is_cut_off_and_the_module_stays() {
    let (f, node, server) = behind_a_hostile_server("attack-slow", |_, conn, binary| {
        conn.head("200 OK", &[("Content-Length", binary.len().to_string())])?;
        // The attack: one byte every 100 ms, never quite a stall.
        conn.trickle(binary, Duration::from_millis(100))
    });
    let options = DownloadOptions {
        min_rate_bytes_per_sec: 100,
        rate_window: Duration::from_secs(1),
        read_timeout: Duration::from_secs(10),
        ..quiet()
    };
    let (before, result) = update_over_http(&f, &node, &server.server, options);
    let err = result.expect_err("too slow");
    let VerifyError::Fetch {
        source: FetchError::TooSlow { rate, min: 100 },
        ..
    } = binary_error(install_error(&err))
    else {
        panic!("expected slow retrieval, got: {err}");
    };
    assert!(*rate < 100, "{err}");
    assert_message(&err, "slow retrieval: ");
    assert_untouched(&f, &before);
    assert_eq!(server.requests(), [None], "a slow server is not retried");
    assert!(
        server.first_served().sent < 1000,
        "cut off after a few bytes of the binary"
    );
}

#[test]
fn an_interrupted_download_over_http_resumes_and_installs_the_exact_bytes() {
    let (f, node, server) = behind_a_hostile_server("attack-resume", |request, conn, binary| {
        let half = binary.len() / 2;
        match request.range_start() {
            // The connection drops halfway through the binary,
            None => {
                conn.head("200 OK", &[("Content-Length", binary.len().to_string())])?;
                conn.send(&binary[..half])
            }
            // and the rest comes with a range request.
            Some(start) => conn.partial(start, &binary[start as usize..], binary.len() as u64),
        }
    });
    let (_, result) = update_over_http(&f, &node, &server.server, quiet());
    let report = result.expect("resumed");
    assert_updated_to_v2(&report, &f);
    assert_eq!(
        f.lock().modules[NAME].current.binary_sha256,
        Sha256::digest(binary(1)).to_lower_hex_string()
    );
    assert_eq!(
        server.requests(),
        [None, Some(binary(1).len() as u64 / 2)],
        "the retry asked for the second half"
    );
}
