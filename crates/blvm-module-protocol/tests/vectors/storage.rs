//! The vectors of the module storage methods (`docs/ipc-protocol.md`
//! §8.3): one request per method, the answer of a `storage_get`, and a
//! `quota_exceeded` refusal. The example module keeps its best tip's
//! height (4 bytes, big-endian) under the key `best` of its tree `tips`.

use blvm_module_protocol::methods::storage::{Batch, BatchOp, BatchOpKind, GetResult, Put, Scan, TreeKey, TreeName};

use super::*;

/// What the node answers a write past the module's key quota.
pub(super) const QUOTA_MESSAGE: &str =
    "quota exceeded: the write would store 1203 bytes in 101 keys; the quota is 1048576 bytes and 100 keys";

fn best() -> TreeKey {
    TreeKey {
        tree: "tips".into(),
        key: b"best".to_vec(),
    }
}

fn put() -> Put {
    Put {
        tree: "tips".into(),
        key: b"best".to_vec(),
        value: vec![0, 0, 0, 1],
    }
}

fn scan() -> Scan {
    Scan {
        tree: "tips".into(),
        prefix: Some(b"b".to_vec()),
        limit: Some(100),
        ..Scan::default()
    }
}

fn batch() -> Batch {
    Batch {
        ops: vec![
            BatchOp {
                op: BatchOpKind::Put,
                tree: "tips".into(),
                key: b"best".to_vec(),
                value: Some(vec![0, 0, 0, 2]),
                expect_generation: Some(7),
            },
            BatchOp {
                op: BatchOpKind::Delete,
                tree: "tips".into(),
                key: b"old".to_vec(),
                value: None,
                expect_generation: None,
            },
        ],
    }
}

fn tips() -> TreeName {
    TreeName { tree: "tips".into() }
}

fn got() -> GetResult {
    GetResult {
        value: Some(vec![0, 0, 0, 1]),
        generation: 7,
    }
}

fn quota_exceeded() -> RemoteError {
    RemoteError::new(ErrorCode::QuotaExceeded, QUOTA_MESSAGE)
}

/// The storage vectors, in the order the spec shows them.
pub(super) fn vectors() -> Vec<Vector> {
    vec![
        request("storage_get_request", 10, Method::StorageGet.name(), &best()),
        Vector {
            name: "storage_get_response",
            bytes: encoded("storage_get answer", |out| encode::response(out, 10, &got())),
        },
        request("storage_put_request", 11, Method::StoragePut.name(), &put()),
        Vector {
            name: "storage_quota_exceeded",
            bytes: encoded("quota_exceeded answer", |out| {
                encode::response_err(out, 11, &quota_exceeded())
            }),
        },
        request("storage_delete_request", 12, Method::StorageDelete.name(), &best()),
        request("storage_scan_request", 13, Method::StorageScan.name(), &scan()),
        request("storage_batch_request", 14, Method::StorageBatch.name(), &batch()),
        request(
            "storage_create_tree_request",
            15,
            Method::StorageCreateTree.name(),
            &tips(),
        ),
        request("storage_drop_tree_request", 16, Method::StorageDropTree.name(), &tips()),
        request(
            "storage_list_trees_request",
            17,
            Method::StorageListTrees.name(),
            &Empty {},
        ),
        request("storage_usage_request", 18, Method::StorageUsage.name(), &Empty {}),
    ]
}

#[test]
fn storage_request_vectors_decode_to_their_params_and_capabilities_and_re_encode_exactly() {
    use Permission::{ManageStorage, ReadStorage, WriteStorage};
    check_request("storage_get_request", 10, Method::StorageGet, ReadStorage, &best());
    check_request("storage_put_request", 11, Method::StoragePut, WriteStorage, &put());
    check_request(
        "storage_delete_request",
        12,
        Method::StorageDelete,
        WriteStorage,
        &best(),
    );
    check_request("storage_scan_request", 13, Method::StorageScan, ReadStorage, &scan());
    check_request(
        "storage_batch_request",
        14,
        Method::StorageBatch,
        WriteStorage,
        &batch(),
    );
    check_request(
        "storage_create_tree_request",
        15,
        Method::StorageCreateTree,
        ManageStorage,
        &tips(),
    );
    check_request(
        "storage_drop_tree_request",
        16,
        Method::StorageDropTree,
        ManageStorage,
        &tips(),
    );
    check_request(
        "storage_list_trees_request",
        17,
        Method::StorageListTrees,
        ManageStorage,
        &Empty {},
    );
    check_request(
        "storage_usage_request",
        18,
        Method::StorageUsage,
        ManageStorage,
        &Empty {},
    );
}

#[test]
fn storage_get_response_vector_decodes_to_the_value_and_its_generation_and_re_encodes_exactly() {
    let bytes = read_vector("storage_get_response");
    let frame = decode_only_frame(&bytes);
    let Frame::Response(r) = &frame else {
        panic!("storage_get_response.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 10);
    let result = r.result.as_ref().expect("a success response");
    let answer: GetResult = decode_body("result", result).expect("the result is a GetResult");
    assert_eq!(answer, got());
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn quota_exceeded_vector_decodes_to_the_refusal_without_capability_and_re_encodes_exactly() {
    let bytes = read_vector("storage_quota_exceeded");
    let frame = decode_only_frame(&bytes);
    let Frame::Response(r) = &frame else {
        panic!("storage_quota_exceeded.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 11);
    let error = r.result.as_ref().expect_err("an error response");
    assert_eq!(error.code, ErrorCode::QuotaExceeded);
    assert_eq!(error.code.as_str(), "quota_exceeded");
    assert_eq!(error.message, QUOTA_MESSAGE);
    assert_eq!(error.capability, None);
    assert_re_encodes_to(&frame, &bytes);
}
