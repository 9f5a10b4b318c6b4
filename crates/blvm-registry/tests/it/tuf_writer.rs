//! The repository writer across a restart.

use blvm_registry::tuf::{Lifetimes, RepositoryKeys, RepositoryWriter, RoleName, RoleSigners, SigningKey, WriteError};

use crate::support::{hours_later, now, Repo, TARGET};

/// Copies of the writer's keys, as a restarted server loads them.
fn copy(signers: &RoleSigners) -> RoleSigners {
    RoleSigners {
        keys: signers
            .keys
            .iter()
            .map(|key| SigningKey::from_secret(key.secret()))
            .collect(),
        threshold: signers.threshold,
    }
}

fn copy_keys(keys: &RepositoryKeys) -> RepositoryKeys {
    RepositoryKeys {
        root: copy(&keys.root),
        targets: copy(&keys.targets),
        snapshot: copy(&keys.snapshot),
        timestamp: copy(&keys.timestamp),
    }
}

#[test]
fn a_reopened_repository_goes_on_from_its_versions_and_targets() {
    let repo = Repo::new("reopen");
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("version 1 verifies");
    let dir = repo.writer.dir().to_owned();
    let keys = copy_keys(repo.writer.keys());
    drop(repo);

    let mut writer = RepositoryWriter::open(&dir, keys, Lifetimes::default()).expect("reopened");
    writer
        .add_target("fee-watcher/0.1.0/fee-watcher", b"another module", None)
        .expect("target");
    writer.commit(now()).expect("commit after the restart");
    client
        .refresh(&blvm_registry::tuf::DirectorySource::new(writer.metadata_dir()), now())
        .expect("the client follows version 2, no rollback");
    assert_eq!(client.timestamp().expect("trusted").version, 2);
    assert_eq!(client.targets().expect("trusted").version, 2);
    client.target(TARGET).expect("the first target is still signed");
    client
        .target("fee-watcher/0.1.0/fee-watcher")
        .expect("the new target is signed");
}

#[test]
fn a_repository_is_not_reopened_with_keys_its_root_does_not_list() {
    let repo = Repo::new("reopen-wrong-keys");
    let mut keys = copy_keys(repo.writer.keys());
    keys.snapshot = RoleSigners::generate(1, 1).expect("key");
    let err = RepositoryWriter::open(repo.writer.dir(), keys, Lifetimes::default()).expect_err("wrong keys");
    assert!(
        matches!(
            err,
            WriteError::KeysMismatch {
                role: RoleName::Snapshot,
                root_version: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn a_re_signed_timestamp_keeps_a_client_going_past_the_first_ones_expiry() {
    let mut repo = Repo::new("refresh-timestamp");
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("version 1 verifies");
    let err = client
        .refresh(&repo.source(), hours_later(30))
        .expect_err("timestamp 1 has expired");
    assert!(
        matches!(
            err,
            blvm_registry::tuf::VerifyError::Expired {
                role: RoleName::Timestamp,
                ..
            }
        ),
        "{err}"
    );

    repo.writer
        .refresh_timestamp(hours_later(20))
        .expect("timestamp re-signed");
    client
        .refresh(&repo.source(), hours_later(30))
        .expect("timestamp 2 is valid until 44 hours");
    assert_eq!(client.timestamp().expect("trusted").version, 2);
    assert_eq!(client.snapshot().expect("trusted").version, 1, "the same snapshot");
}
