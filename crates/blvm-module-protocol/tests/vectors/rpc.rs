//! The vectors of the RPC endpoint methods (`docs/ipc-protocol.md` §8.6):
//! `block-stats` registers `blockstats_summary`, takes it away again, is
//! refused a node method, and answers one `rpc_call` with a JSON-RPC error
//! of its choosing.

use blvm_module_protocol::methods::invocation::RpcCallError;
use blvm_module_protocol::methods::rpc::{RegisterRpcEndpoint, RegisterRpcEndpointResult, UnregisterRpcEndpoint};

use super::*;

/// What the node answers a module registering `getblockcount`.
pub(super) const TAKEN_MESSAGE: &str = "`getblockcount` is a method of the node; a module cannot replace it";

fn register() -> RegisterRpcEndpoint {
    RegisterRpcEndpoint {
        method: "blockstats_summary".into(),
        args: "( blocks )".into(),
        help: "Statistics of the last blocks.".into(),
    }
}

fn registered() -> RegisterRpcEndpointResult {
    RegisterRpcEndpointResult {
        endpoints: 1,
        max_endpoints: 32,
        timeout_ms: 10_000,
    }
}

fn unregister() -> UnregisterRpcEndpoint {
    UnregisterRpcEndpoint {
        method: "blockstats_summary".into(),
    }
}

fn taken() -> RemoteError {
    RemoteError::new(ErrorCode::AlreadyRegistered, TAKEN_MESSAGE)
}

fn rpc_refused() -> RpcCallResult {
    RpcCallResult {
        result_json: String::new(),
        error: Some(RpcCallError {
            code: -8,
            message: "blocks must be at least 1".into(),
        }),
    }
}

/// The RPC endpoint vectors, in the order the spec shows them.
pub(super) fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            name: "register_rpc_endpoint_request",
            bytes: encoded("register_rpc_endpoint", |out| {
                encode::request(out, 30, Method::RegisterRpcEndpoint.name(), &register())
            }),
        },
        Vector {
            name: "register_rpc_endpoint_response",
            bytes: encoded("register_rpc_endpoint answer", |out| {
                encode::response(out, 30, &registered())
            }),
        },
        Vector {
            name: "register_rpc_endpoint_taken",
            bytes: encoded("already_registered answer", |out| {
                encode::response_err(out, 31, &taken())
            }),
        },
        Vector {
            name: "unregister_rpc_endpoint_request",
            bytes: encoded("unregister_rpc_endpoint", |out| {
                encode::request(out, 32, Method::UnregisterRpcEndpoint.name(), &unregister())
            }),
        },
        Vector {
            name: "rpc_call_error_response",
            bytes: encoded("rpc_call error answer", |out| encode::response(out, 3, &rpc_refused())),
        },
    ]
}

#[test]
fn rpc_endpoint_vectors_decode_to_their_values_and_capability() {
    for (name, id, method, expected) in [
        ("register_rpc_endpoint_request", 30, Method::RegisterRpcEndpoint, None),
        (
            "unregister_rpc_endpoint_request",
            32,
            Method::UnregisterRpcEndpoint,
            Some(unregister()),
        ),
    ] {
        let frame = decode_only_frame(&read_vector(name));
        let Frame::Request(r) = &frame else {
            panic!("{name}.bin decoded as {frame:?}")
        };
        assert_eq!((r.id, Method::from_name(&r.method)), (id, Some(method)), "{name}");
        assert_eq!(method.required_permission(), Some(Permission::RegisterRpcEndpoint));
        match expected {
            Some(u) => assert_eq!(r.params::<UnregisterRpcEndpoint>().expect("params"), u),
            None => assert_eq!(r.params::<RegisterRpcEndpoint>().expect("params"), register()),
        }
    }
    let frame = decode_only_frame(&read_vector("register_rpc_endpoint_taken"));
    let Frame::Response(r) = &frame else {
        panic!("{frame:?}")
    };
    assert_eq!(r.result.as_ref().expect_err("an error"), &taken());
    let frame = decode_only_frame(&read_vector("rpc_call_error_response"));
    let Frame::Response(r) = &frame else {
        panic!("{frame:?}")
    };
    let answer: RpcCallResult = decode_body("result", r.result.as_ref().expect("a result")).expect("decodes");
    assert_eq!(answer, rpc_refused());
    // A module of before the `error` field answers `result_json` alone.
    let frame = decode_only_frame(&read_vector("invocation_response"));
    let Frame::Response(r) = &frame else {
        panic!("{frame:?}")
    };
    let answer: RpcCallResult = decode_body("result", r.result.as_ref().expect("a result")).expect("decodes");
    assert_eq!(answer.error, None);
}
