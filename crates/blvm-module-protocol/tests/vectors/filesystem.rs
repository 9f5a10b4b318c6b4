//! The vectors of the filesystem methods (`docs/ipc-protocol.md` §8.5):
//! one request per method, the answers of `fs_create_dir` and `fs_usage`,
//! and the refusal of a path that leaves the data dir. The example module
//! keeps a block cache in `cache/blocks` of its 16 MiB data dir.

use blvm_module_protocol::methods::filesystem::{CreateDir, DirChanged, FsUsage, RemoveDir};

use super::*;

/// What the node answers an `fs_create_dir` of `../escape`.
pub(super) const ESCAPE_MESSAGE: &str =
    "`../escape` is not beneath the data dir (an absolute path, a `..` leaving it, or another mount)";

fn create() -> CreateDir {
    CreateDir {
        path: "cache/blocks".into(),
    }
}

fn created() -> DirChanged {
    DirChanged {
        changed: true,
        removed: 0,
    }
}

fn remove() -> RemoveDir {
    RemoveDir {
        path: "cache".into(),
        recursive: true,
    }
}

fn usage() -> FsUsage {
    FsUsage {
        used_bytes: Some(1_376_256),
        free_bytes: Some(14_532_608),
        quota_bytes: Some(16 << 20),
        used_inodes: Some(14),
        total_inodes: Some(4096),
    }
}

fn escape() -> RemoteError {
    RemoteError::new(ErrorCode::InvalidParams, ESCAPE_MESSAGE)
}

fn response<R: Serialize>(name: &'static str, id: u64, result: &R) -> Vector {
    Vector {
        name,
        bytes: encoded(name, |out| encode::response(out, id, result)),
    }
}

/// The filesystem vectors, in the order the spec shows them.
pub(super) fn vectors() -> Vec<Vector> {
    vec![
        request("fs_create_dir_request", 30, Method::FsCreateDir.name(), &create()),
        response("fs_create_dir_response", 30, &created()),
        request("fs_remove_dir_request", 31, Method::FsRemoveDir.name(), &remove()),
        request("fs_usage_request", 32, Method::FsUsage.name(), &Empty {}),
        response("fs_usage_response", 32, &usage()),
        Vector {
            name: "fs_path_refused",
            bytes: encoded("path refusal", |out| encode::response_err(out, 33, &escape())),
        },
    ]
}

#[track_caller]
fn check_response<R: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, id: u64, expected: &R) {
    let bytes = read_vector(name);
    let frame = decode_only_frame(&bytes);
    let Frame::Response(r) = &frame else {
        panic!("{name}.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, id, "{name}");
    let result = r.result.as_ref().expect("a success response");
    let answer: R = decode_body("result", result).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&answer, expected, "{name}");
    assert_re_encodes_to(&frame, &bytes);
}

#[test]
fn filesystem_request_vectors_decode_to_their_params_under_manage_filesystem_and_re_encode_exactly() {
    check_request(
        "fs_create_dir_request",
        30,
        Method::FsCreateDir,
        Permission::ManageFilesystem,
        &create(),
    );
    check_request(
        "fs_remove_dir_request",
        31,
        Method::FsRemoveDir,
        Permission::ManageFilesystem,
        &remove(),
    );
    check_request(
        "fs_usage_request",
        32,
        Method::FsUsage,
        Permission::ManageFilesystem,
        &Empty {},
    );
}

#[test]
fn filesystem_answer_vectors_decode_to_their_results_and_re_encode_exactly() {
    check_response("fs_create_dir_response", 30, &created());
    check_response("fs_usage_response", 32, &usage());
}

#[test]
fn path_refused_vector_decodes_to_invalid_params_naming_the_path_and_re_encodes_exactly() {
    let bytes = read_vector("fs_path_refused");
    let frame = decode_only_frame(&bytes);
    let Frame::Response(r) = &frame else {
        panic!("fs_path_refused.bin decoded as {frame:?}")
    };
    assert_eq!(r.id, 33);
    let error = r.result.as_ref().expect_err("an error response");
    assert_eq!(error.code, ErrorCode::InvalidParams);
    assert_eq!(error.message, ESCAPE_MESSAGE);
    assert_eq!(error.capability, None);
    assert_re_encodes_to(&frame, &bytes);
}
