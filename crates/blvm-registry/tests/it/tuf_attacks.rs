//! The update attacks of the TUF spec, each refused by our verifier
//! against a repository our writer built.

use blvm_registry::tuf::metadata::{Hashes, MetaFile, Root, Snapshot, Targets, Timestamp};
use std::time::Duration;

use blvm_registry::tuf::{FetchError, Lifetimes, RepositoryKeys, RoleName, RoleSigners, TrustedMetadata, VerifyError};
use hex_conservative::DisplayHex;
use sha2::{Digest, Sha256};

use crate::support::{hours_later, now, Repo, TARGET, TARGET_BYTES};

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

#[test]
fn a_fresh_client_verifies_the_writers_repository_and_its_target() {
    let repo = Repo::new("fresh");
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("the repository verifies");
    let info = client.target(TARGET).expect("the target is signed");
    assert_eq!(info.length(), TARGET_BYTES.len() as u64);
    assert_eq!(info.custom().expect("custom data")["manifest_sha256"], "00".repeat(32));
    let bytes = std::fs::read(repo.writer.targets_dir().join(info.url_path())).expect("target at its url path");
    info.verify(&bytes).expect("the target matches");
    assert!(matches!(client.target("other"), Err(VerifyError::UnknownTarget { .. })));
}

#[test]
fn arbitrary_package_a_target_whose_hash_does_not_match_is_refused() {
    let repo = Repo::new("arbitrary-hash");
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("the repository verifies");
    let info = client.target(TARGET).expect("the target is signed");
    let mut evil = TARGET_BYTES.to_vec();
    evil[0] ^= 1;
    let err = info.verify(&evil).expect_err("a tampered binary is refused");
    assert!(
        matches!(err, VerifyError::TargetMismatch { what: "sha256", .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with("arbitrary package attack: target"), "{err}");
}

#[test]
fn arbitrary_package_a_target_whose_length_does_not_match_is_refused() {
    let repo = Repo::new("arbitrary-length");
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("the repository verifies");
    let info = client.target(TARGET).expect("the target is signed");
    let err = info.verify(&TARGET_BYTES[1..]).expect_err("a short binary is refused");
    assert!(
        matches!(err, VerifyError::TargetMismatch { what: "length", .. }),
        "{err}"
    );
    let longer = [TARGET_BYTES, b"!"].concat();
    let err = info.verify(&longer).expect_err("a long binary is refused");
    assert!(
        matches!(err, VerifyError::TargetMismatch { what: "length", .. }),
        "{err}"
    );
}

#[test]
fn arbitrary_package_tampered_targets_metadata_is_refused() {
    let repo = Repo::new("arbitrary-targets");
    // Point the target at another binary (and manifest digest) without the
    // targets key: the snapshot's hash of targets.json no longer matches.
    let mut targets = repo.read::<serde_json::Value>("1.targets.json");
    targets.signed["targets"][TARGET]["custom"]["manifest_sha256"] = "11".repeat(32).into();
    std::fs::write(repo.metadata("1.targets.json"), targets.to_bytes()).expect("tampered");
    let err = repo
        .client()
        .refresh(&repo.source(), now())
        .expect_err("tampered targets refused");
    assert!(
        matches!(
            err,
            VerifyError::MetaFileMismatch {
                role: RoleName::Targets,
                listed_by: RoleName::Snapshot,
                ..
            }
        ),
        "{err}"
    );

    // With the snapshot and timestamp re-signed to match (their online keys
    // stolen), the targets signature is what refuses it.
    let keys = repo.writer.keys();
    let targets_bytes = targets.to_bytes();
    let mut snapshot = repo.read::<Snapshot>("1.snapshot.json").signed;
    snapshot.meta.insert("targets.json".into(), meta(1, &targets_bytes));
    let snapshot_bytes = repo.forge("1.snapshot.json", snapshot, &[&keys.snapshot.keys[0]]);
    let mut timestamp = repo.read::<Timestamp>("timestamp.json").signed;
    timestamp.meta.insert("snapshot.json".into(), meta(1, &snapshot_bytes));
    repo.forge("timestamp.json", timestamp, &[&keys.timestamp.keys[0]]);
    let err = repo
        .client()
        .refresh(&repo.source(), now())
        .expect_err("unsigned targets refused");
    assert!(
        matches!(
            err,
            VerifyError::BelowThreshold {
                role: RoleName::Targets,
                valid: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rollback_an_older_timestamp_is_refused() {
    let mut repo = Repo::new("rollback-timestamp");
    let old_timestamp = std::fs::read(repo.metadata("timestamp.json")).expect("timestamp 1");
    repo.writer.commit(now()).expect("second commit");
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("version 2 verifies");

    std::fs::write(repo.metadata("timestamp.json"), old_timestamp).expect("timestamp 1 served again");
    let err = client
        .refresh(&repo.source(), now())
        .expect_err("the old timestamp is refused");
    assert!(
        matches!(
            err,
            VerifyError::Rollback {
                role: RoleName::Timestamp,
                found: 1,
                trusted: 2
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "rollback attack: timestamp version 1 is older than the trusted version 2"
    );
    assert_eq!(
        client.timestamp().expect("still trusted").version,
        2,
        "the trusted state is untouched"
    );
}

#[test]
fn rollback_is_refused_after_a_restart_from_stored_metadata_even_once_it_expired() {
    let mut repo = Repo::new("rollback-restart");
    // Timestamp 2 once lived for 30 days, timestamp 3 for the usual day.
    let month = Lifetimes {
        timestamp: Duration::from_secs(30 * 24 * 60 * 60),
        ..Lifetimes::default()
    };
    repo.writer.set_lifetimes(month);
    repo.writer.commit(now()).expect("second commit");
    let long_lived = std::fs::read(repo.metadata("timestamp.json")).expect("timestamp 2");
    repo.writer.set_lifetimes(Lifetimes::default());
    repo.writer.commit(now()).expect("third commit");
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("version 3 verifies");
    let (root, timestamp, snapshot) = (
        client.root_bytes().to_vec(),
        client.timestamp_bytes().expect("trusted").to_vec(),
        client.snapshot_bytes().expect("trusted").to_vec(),
    );

    // Two days later the client starts again from what it stored; its
    // timestamp 3 has expired, the replayed timestamp 2 has not.
    let later = hours_later(48);
    let mut restarted =
        TrustedMetadata::from_stored(&root, Some(&timestamp), Some(&snapshot), later).expect("stored root verifies");
    std::fs::write(repo.metadata("timestamp.json"), long_lived).expect("timestamp 2 served again");
    let err = restarted
        .refresh(&repo.source(), later)
        .expect_err("the replayed timestamp is refused");
    assert!(
        matches!(
            err,
            VerifyError::Rollback {
                role: RoleName::Timestamp,
                found: 2,
                trusted: 3
            }
        ),
        "{err}"
    );
    assert_eq!(restarted.snapshot().expect("stored snapshot kept").version, 3);
}

#[test]
fn rollback_an_older_snapshot_is_refused() {
    let mut repo = Repo::new("rollback-snapshot");
    repo.writer.commit(now()).expect("second commit");
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("version 2 verifies");

    // With the online timestamp key, a newer timestamp that lists snapshot 1.
    let old_snapshot = std::fs::read(repo.metadata("1.snapshot.json")).expect("snapshot 1");
    let mut timestamp = repo.read::<Timestamp>("timestamp.json").signed;
    timestamp.version = 3;
    timestamp.meta.insert("snapshot.json".into(), meta(1, &old_snapshot));
    repo.forge("timestamp.json", timestamp, &[&repo.writer.keys().timestamp.keys[0]]);
    let err = client
        .refresh(&repo.source(), now())
        .expect_err("the old snapshot is refused");
    assert!(
        matches!(
            err,
            VerifyError::Rollback {
                role: RoleName::Snapshot,
                found: 1,
                trusted: 2
            }
        ),
        "{err}"
    );

    // And a snapshot (snapshot key stolen too) that rolls targets back.
    let mut snapshot = repo.read::<Snapshot>("1.snapshot.json").signed;
    snapshot.version = 3;
    let snapshot_bytes = repo.forge("3.snapshot.json", snapshot, &[&repo.writer.keys().snapshot.keys[0]]);
    let mut timestamp = repo.read::<Timestamp>("timestamp.json").signed;
    timestamp.meta.insert("snapshot.json".into(), meta(3, &snapshot_bytes));
    repo.forge("timestamp.json", timestamp, &[&repo.writer.keys().timestamp.keys[0]]);
    let err = client
        .refresh(&repo.source(), now())
        .expect_err("the old targets are refused");
    assert!(
        matches!(
            err,
            VerifyError::Rollback {
                role: RoleName::Targets,
                found: 1,
                trusted: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn indefinite_freeze_an_expired_timestamp_is_refused() {
    let repo = Repo::new("freeze");
    let mut client = repo.client();
    client
        .refresh(&repo.source(), hours_later(23))
        .expect("a day-long timestamp is valid for 23 hours");
    // The mirror keeps serving the same, once valid, metadata.
    let err = client
        .refresh(&repo.source(), hours_later(25))
        .expect_err("the expired timestamp is refused");
    assert!(
        matches!(
            err,
            VerifyError::Expired {
                role: RoleName::Timestamp,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("freeze attack: timestamp metadata expired at 2027-01-16T"),
        "{err}"
    );
}

#[test]
fn indefinite_freeze_an_expired_root_is_refused() {
    let repo = Repo::new("freeze-root");
    let err = repo
        .client()
        .refresh(&repo.source(), hours_later(366 * 24))
        .expect_err("expired root refused");
    assert!(
        matches!(
            err,
            VerifyError::Expired {
                role: RoleName::Root,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn mix_and_match_targets_served_for_another_version_are_refused() {
    let mut repo = Repo::new("mix-and-match");
    repo.writer.commit(now()).expect("second commit");
    // targets 1 served where snapshot 2 expects targets 2: the listed hash.
    let old_targets = std::fs::read(repo.metadata("1.targets.json")).expect("targets 1");
    std::fs::write(repo.metadata("2.targets.json"), &old_targets).expect("served as 2");
    let err = repo
        .client()
        .refresh(&repo.source(), now())
        .expect_err("mismatched targets refused");
    assert!(
        matches!(
            err,
            VerifyError::MetaFileMismatch {
                role: RoleName::Targets,
                listed_by: RoleName::Snapshot,
                ..
            }
        ),
        "{err}"
    );

    // A snapshot that lists only versions (as python-tuf writes by
    // default): the version inside the file.
    let keys = repo.writer.keys();
    let mut snapshot = repo.read::<Snapshot>("2.snapshot.json").signed;
    snapshot.version = 3;
    snapshot.meta.insert(
        "targets.json".into(),
        MetaFile {
            version: 2,
            length: None,
            hashes: None,
        },
    );
    repo.forge("3.snapshot.json", snapshot, &[&keys.snapshot.keys[0]]);
    let mut timestamp = repo.read::<Timestamp>("timestamp.json").signed;
    timestamp.version = 3;
    timestamp.meta.insert(
        "snapshot.json".into(),
        MetaFile {
            version: 3,
            length: None,
            hashes: None,
        },
    );
    repo.forge("timestamp.json", timestamp, &[&keys.timestamp.keys[0]]);
    let err = repo
        .client()
        .refresh(&repo.source(), now())
        .expect_err("mismatched targets refused");
    assert!(
        matches!(
            err,
            VerifyError::VersionMismatch {
                role: RoleName::Targets,
                found: 1,
                expected: 2,
                listed_by: RoleName::Snapshot
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "mix-and-match attack: targets version 1 is not the version 2 that snapshot lists"
    );

    // Snapshot 2's file served as snapshot 3.
    std::fs::copy(repo.metadata("2.snapshot.json"), repo.metadata("3.snapshot.json")).expect("served as 3");
    let err = repo
        .client()
        .refresh(&repo.source(), now())
        .expect_err("mismatched snapshot refused");
    assert!(
        matches!(
            err,
            VerifyError::VersionMismatch {
                role: RoleName::Snapshot,
                found: 2,
                expected: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn fast_forward_recovery_after_a_timestamp_key_rotation() {
    let mut repo = Repo::new("fast-forward");
    let mut client = repo.client();
    // Whoever stole the timestamp key pushed the client to version 1000.
    let mut timestamp = repo.read::<Timestamp>("timestamp.json").signed;
    timestamp.version = 1000;
    let stolen = &repo.writer.keys().timestamp.keys[0];
    repo.forge("timestamp.json", timestamp.clone(), &[stolen]);
    client
        .refresh(&repo.source(), now())
        .expect("the fast-forwarded timestamp verifies");
    assert_eq!(client.timestamp().expect("trusted").version, 1000);

    // Without a rotation, the repository's own next timestamp is a rollback.
    repo.writer.commit(now()).expect("second commit");
    let err = client.refresh(&repo.source(), now()).expect_err("stuck at 1000");
    assert!(
        matches!(
            err,
            VerifyError::Rollback {
                role: RoleName::Timestamp,
                found: 2,
                ..
            }
        ),
        "{err}"
    );

    // The repository rotates the timestamp key in root 2 and re-signs.
    let old = repo
        .writer
        .rotate_keys(RoleName::Timestamp, RoleSigners::generate(1, 1).expect("key"), now());
    let old = old.expect("timestamp key rotated");
    repo.writer.commit(now()).expect("third commit");
    client
        .refresh(&repo.source(), now())
        .expect("the client recovers through root 2");
    assert_eq!(client.root().version, 2);
    assert_eq!(client.timestamp().expect("trusted").version, 3);

    // The old key's metadata is no longer trusted.
    timestamp.version = 1001;
    repo.forge("timestamp.json", timestamp, &[&old.keys[0]]);
    let err = client
        .refresh(&repo.source(), now())
        .expect_err("the rotated-out key is refused");
    assert!(
        matches!(
            err,
            VerifyError::BelowThreshold {
                role: RoleName::Timestamp,
                valid: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn root_rotation_is_followed_and_a_root_not_signed_by_the_old_root_is_refused() {
    let mut repo = Repo::new("root-rotation");
    let first = repo
        .writer
        .rotate_keys(RoleName::Root, RoleSigners::generate(2, 2).expect("keys"), now());
    first.expect("root rotated to 2");
    repo.writer
        .rotate_keys(RoleName::Root, RoleSigners::generate(1, 1).expect("key"), now())
        .expect("root 3");
    repo.writer.commit(now()).expect("commit under root 3");
    let mut client = repo.client();
    client
        .refresh(&repo.source(), now())
        .expect("a client shipped with root 1 follows 2 and 3");
    assert_eq!(client.root().version, 3);

    // A root 4 signed by its own new keys only: the trusted root's threshold fails.
    let mut root = repo.read::<Root>("3.root.json").signed;
    root.version = 4;
    let attacker = RoleSigners::generate(1, 1).expect("key");
    let attacker_id = attacker.keys[0].key_id();
    root.keys.insert(attacker_id.clone(), attacker.keys[0].public());
    root.roles.root.keyids = vec![attacker_id];
    repo.forge("4.root.json", root.clone(), &[&attacker.keys[0]]);
    let err = client
        .refresh(&repo.source(), now())
        .expect_err("a root the old root did not sign");
    assert!(
        matches!(
            err,
            VerifyError::BelowThreshold {
                role: RoleName::Root,
                valid: 0,
                threshold: 1
            }
        ),
        "{err}"
    );

    // Signed by the old root only: the new root's own threshold fails.
    repo.forge("4.root.json", root, &[&repo.writer.keys().root.keys[0]]);
    let err = client
        .refresh(&repo.source(), now())
        .expect_err("a root its own keys did not sign");
    assert!(
        matches!(
            err,
            VerifyError::BelowThreshold {
                role: RoleName::Root,
                valid: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(client.root().version, 3, "the trusted root is untouched");
}

#[test]
fn key_compromise_below_the_threshold_is_refused() {
    let keys = RepositoryKeys {
        root: RoleSigners::generate(1, 1).expect("key"),
        targets: RoleSigners::generate(3, 2).expect("keys"),
        snapshot: RoleSigners::generate(1, 1).expect("key"),
        timestamp: RoleSigners::generate(1, 1).expect("key"),
    };
    let repo = Repo::with_keys("threshold", keys);
    repo.client()
        .refresh(&repo.source(), now())
        .expect("two of three targets keys signed");

    // One stolen targets key signs new targets, its signature given twice;
    // snapshot and timestamp follow.
    let keys = repo.writer.keys();
    let mut targets = repo.read::<Targets>("1.targets.json").signed;
    targets.version = 2;
    targets.targets.get_mut(TARGET).expect("target").hashes.sha256 = "22".repeat(32);
    let stolen = &keys.targets.keys[0];
    let targets_bytes = repo.forge("2.targets.json", targets, &[stolen, stolen]);
    let mut snapshot = repo.read::<Snapshot>("1.snapshot.json").signed;
    snapshot.version = 2;
    snapshot.meta.insert("targets.json".into(), meta(2, &targets_bytes));
    let snapshot_bytes = repo.forge("2.snapshot.json", snapshot, &[&keys.snapshot.keys[0]]);
    let mut timestamp = repo.read::<Timestamp>("timestamp.json").signed;
    timestamp.version = 2;
    timestamp.meta.insert("snapshot.json".into(), meta(2, &snapshot_bytes));
    repo.forge("timestamp.json", timestamp, &[&keys.timestamp.keys[0]]);
    let err = repo
        .client()
        .refresh(&repo.source(), now())
        .expect_err("one key of a threshold of two");
    assert!(
        matches!(
            err,
            VerifyError::BelowThreshold {
                role: RoleName::Targets,
                valid: 1,
                threshold: 2
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "key compromise: targets metadata has valid signatures from 1 trusted key(s), its threshold is 2"
    );
}

#[test]
fn key_compromise_a_signature_by_an_untrusted_key_counts_for_nothing() {
    let repo = Repo::new("untrusted-key");
    let mut timestamp = repo.read::<Timestamp>("timestamp.json").signed;
    timestamp.version = 2;
    let stranger = RoleSigners::generate(1, 1).expect("key");
    let bytes = blvm_registry::tuf::Signed::sign(timestamp, &[&stranger.keys[0]]).expect("signs");
    // Once under its own key id, once claiming the trusted key's id.
    let mut claimed = bytes.signatures[0].clone();
    claimed.keyid = repo.writer.keys().timestamp.keys[0].key_id();
    let mut forged = bytes.clone();
    forged.signatures.push(claimed);
    std::fs::write(repo.metadata("timestamp.json"), forged.to_bytes()).expect("forged");
    let err = repo
        .client()
        .refresh(&repo.source(), now())
        .expect_err("an untrusted key");
    assert!(
        matches!(
            err,
            VerifyError::BelowThreshold {
                role: RoleName::Timestamp,
                valid: 0,
                threshold: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn endless_data_the_downloader_gets_the_signed_length_and_a_check_that_stops_past_it() {
    let repo = Repo::new("length-limit");
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("the repository verifies");
    let info = client.target(TARGET).expect("the target is signed");
    assert_eq!(
        info.length(),
        TARGET_BYTES.len() as u64,
        "the limit a downloader stops at"
    );
    let mut checker = info.checker();
    checker.update(TARGET_BYTES).expect("the signed bytes");
    assert_eq!(checker.remaining(), 0);
    let err = checker.update(b"and more").expect_err("a byte past the signed length");
    assert!(
        matches!(err, VerifyError::TargetMismatch { what: "length", .. }),
        "{err}"
    );

    // Metadata too: a timestamp past the limit is not read to its end.
    let padded = [
        std::fs::read(repo.metadata("timestamp.json")).expect("timestamp"),
        vec![b' '; 20_000],
    ]
    .concat();
    std::fs::write(repo.metadata("timestamp.json"), padded).expect("padded");
    let err = client.refresh(&repo.source(), now()).expect_err("an endless timestamp");
    assert!(
        matches!(
            err,
            VerifyError::Fetch {
                source: FetchError::TooLong { limit: 16384 },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn every_single_byte_corruption_of_signed_metadata_is_refused_without_a_panic() {
    let repo = Repo::new("corruption");
    let mut client = repo.client();
    client.refresh(&repo.source(), now()).expect("the repository verifies");
    let timestamp = std::fs::read(repo.metadata("timestamp.json")).expect("timestamp");
    let base = repo.client();
    base.clone()
        .update_timestamp(&timestamp, now())
        .expect("the intact timestamp verifies");
    for at in 0..timestamp.len() {
        let mut corrupt = timestamp.clone();
        corrupt[at] ^= 0x01;
        let mut trusted = base.clone();
        let refused = trusted.update_timestamp(&corrupt, now());
        assert!(
            refused.is_err(),
            "a flip at byte {at} is refused: {:?}",
            String::from_utf8_lossy(&corrupt)
        );
        assert!(trusted.timestamp().is_none(), "nothing is trusted after a refusal");
    }
    for at in 0..repo.trusted_root.len() {
        let mut corrupt = repo.trusted_root.clone();
        corrupt[at] ^= 0x01;
        assert!(
            TrustedMetadata::from_root(&corrupt).is_err(),
            "a flip at root byte {at} is refused"
        );
    }
}
