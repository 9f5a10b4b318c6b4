#!/usr/bin/env python3
"""Compares the test vectors with msgpack-python, an independent encoder.

For every vector, `msgpack.packb` of the same value (keys in the same order,
`bytes` for `bin`) must give the file's bytes, and `msgpack.unpackb` of the
file's payload must give that value. Run by hand (`pip install msgpack`):

    python3 crates/blvm-module-protocol/tests/vectors/msgpack_python_check.py
"""
import os
import struct
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))

BLOCK_1_HASH = bytes.fromhex("00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048")[::-1]
BLOCK_1_HEADER = bytes.fromhex(
    "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000"
    "982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299"
)
TOKEN = "8f3a5c0e9b7d41f2a6c8e0b3d5f7193a2c4e6a8b0d1f3e5c7a9b1d3f5e7c9a0b"

VECTORS = {
    "hello": {"type": "hello", "protocol_versions": [1], "module_id": "blockwatch-1",
              "module_name": "blockwatch", "version": "0.3.1", "token": TOKEN},
    "welcome": {"type": "welcome", "protocol_version": 1, "node_version": "0.1.0",
                "capabilities": ["read_blockchain", "read_chain_state", "subscribe_events"],
                "config": {"alert.min_height": "1"}, "data_dir": "/var/lib/blvm/modules/blockwatch"},
    "refused": {"type": "refused", "code": "bad_token", "reason": "wrong token for module `blockwatch-1`"},
    "request": {"type": "request", "id": 1, "method": "get_block_header", "params": {"hash": BLOCK_1_HASH}},
    "response_success": {"type": "response", "id": 1, "result": {"header": BLOCK_1_HEADER, "height": 1}},
    "response_error": {"type": "response", "id": 3, "error": {
        "code": "method_not_found", "message": "unknown method `get_private_keys`"}},
    "response_error_permission_denied": {"type": "response", "id": 2, "error": {
        "code": "permission_denied", "message": "`get_utxo` requires the `read_utxo` capability",
        "capability": "read_utxo"}},
    "event": {"type": "event", "seq": 1, "event": "NewBlock",
              "payload": {"block_hash": BLOCK_1_HASH, "height": 1, "header": BLOCK_1_HEADER}},
    "event_unknown_type": {"type": "event", "seq": 2, "event": "QuantumBlockTeleported",
                           "payload": {"block_hash": BLOCK_1_HASH, "qubits": 1024}},
    "log": {"type": "log", "level": "info", "target": "blockwatch::chain", "message": "new tip",
            "fields": {"height": "1"}},
    "shutdown": {"type": "shutdown", "reason": "unload", "grace_ms": 5000},
    "invocation_request": {"type": "request", "id": 1, "method": "rpc_call",
                           "params": {"method": "blockwatch_status", "params_json": "[]"}},
    "invocation_response": {"type": "response", "id": 1, "result": {"result_json": '{"tip_height":1}'}},
    "request_with_unknown_field": {"type": "request", "id": 1, "x_future": [1, "two", {"three": 3}],
                                   "method": "get_block_header", "params": {"hash": BLOCK_1_HASH}},
    "storage_get_request": {"type": "request", "id": 10, "method": "storage_get",
                            "params": {"tree": "tips", "key": b"best"}},
    "storage_get_response": {"type": "response", "id": 10,
                             "result": {"value": b"\x00\x00\x00\x01", "generation": 7}},
    "storage_put_request": {"type": "request", "id": 11, "method": "storage_put",
                            "params": {"tree": "tips", "key": b"best", "value": b"\x00\x00\x00\x01"}},
    "storage_quota_exceeded": {"type": "response", "id": 11, "error": {
        "code": "quota_exceeded",
        "message": "quota exceeded: the write would store 1203 bytes in 101 keys; "
                   "the quota is 1048576 bytes and 100 keys"}},
    "storage_delete_request": {"type": "request", "id": 12, "method": "storage_delete",
                               "params": {"tree": "tips", "key": b"best"}},
    "storage_scan_request": {"type": "request", "id": 13, "method": "storage_scan",
                             "params": {"tree": "tips", "prefix": b"b", "start": None, "end": None,
                                        "cursor": None, "limit": 100}},
    "storage_batch_request": {"type": "request", "id": 14, "method": "storage_batch", "params": {"ops": [
        {"op": "put", "tree": "tips", "key": b"best", "value": b"\x00\x00\x00\x02", "expect_generation": 7},
        {"op": "delete", "tree": "tips", "key": b"old", "value": None, "expect_generation": None}]}},
    "storage_create_tree_request": {"type": "request", "id": 15, "method": "storage_create_tree",
                                    "params": {"tree": "tips"}},
    "storage_drop_tree_request": {"type": "request", "id": 16, "method": "storage_drop_tree",
                                  "params": {"tree": "tips"}},
    "storage_list_trees_request": {"type": "request", "id": 17, "method": "storage_list_trees", "params": {}},
    "storage_usage_request": {"type": "request", "id": 18, "method": "storage_usage", "params": {}},
    "fs_create_dir_request": {"type": "request", "id": 30, "method": "fs_create_dir",
                              "params": {"path": "cache/blocks"}},
    "fs_create_dir_response": {"type": "response", "id": 30, "result": {"changed": True, "removed": 0}},
    "fs_remove_dir_request": {"type": "request", "id": 31, "method": "fs_remove_dir",
                              "params": {"path": "cache", "recursive": True}},
    "fs_usage_request": {"type": "request", "id": 32, "method": "fs_usage", "params": {}},
    "fs_usage_response": {"type": "response", "id": 32, "result": {
        "used_bytes": 1376256, "free_bytes": 14532608, "quota_bytes": 16777216,
        "used_inodes": 14, "total_inodes": 4096}},
    "fs_path_refused": {"type": "response", "id": 33, "error": {
        "code": "invalid_params",
        "message": "`../escape` is not beneath the data dir (an absolute path, a `..` leaving it, "
                   "or another mount)"}},
}


def main():
    ok = True
    for name, value in VECTORS.items():
        with open(os.path.join(HERE, name + ".bin"), "rb") as f:
            data = f.read()
        payload = msgpack.packb(value)
        encoded = struct.pack(">I", len(payload)) + payload
        (length,) = struct.unpack(">I", data[:4])
        decoded = msgpack.unpackb(data[4:4 + length])
        same = encoded == data and decoded == value and length == len(data) - 4
        print(f"{'ok ' if same else 'BAD'} {name}.bin")
        ok &= same
    print("msgpack-python", ".".join(map(str, msgpack.version)), "agrees" if ok else "DISAGREES")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
