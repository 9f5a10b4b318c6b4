"""The frame validator: unit tests of what it refuses, and, with pytester,
that the plugin fails a test whose module sent a malformed frame to a real
node (and passes one whose module behaved)."""
import struct

import msgpack
import pytest

from blvm_module.testing.validator import FrameChecker

from conftest import MODULES

HELLO = msgpack.packb({"type": "hello", "protocol_versions": [1], "module_id": "m-0", "module_name": "m",
                       "version": "1", "token": "00" * 32})


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def problems(*payloads: bytes, tail: bytes = b"", invocations=None) -> list[str]:
    c = FrameChecker()
    for rid, method in (invocations or {}).items():
        c.note_node_frame({"type": "request", "id": rid, "method": method})
    data = frame(HELLO) + b"".join(frame(p) for p in payloads) + tail
    for i in range(0, len(data), 7):
        c.feed(data[i:i + 7])
    c.finish()
    return c.problems


def test_a_good_stream_has_no_problem(tmp_path):
    assert problems(msgpack.packb({"type": "request", "id": 1, "method": "subscribe_events",
                                   "params": {"events": []}}),
                    msgpack.packb({"type": "response", "id": 4, "result": {}}),
                    msgpack.packb({"type": "log", "level": "info", "target": "", "message": "m", "fields": {}}),
                    invocations={4: "health_check"}) == []


@pytest.mark.parametrize("payload,expected", [
    (msgpack.packb([1]), "not a map"),
    (b"", "empty payload"),
    (msgpack.packb({"type": "x"}) + b"\x00", "bytes after the map"),
    (b"\x81\x01\x02", "not a str"),
    (b"\x82\xa4type\xa3log\xa4type\xa3log", "duplicate key"),
    (b"\x81\xa4type\xa2\xff\xfe", "not UTF-8"),
    (msgpack.packb({"type": "gossip"}), "not a frame type of protocol version 1"),
    (msgpack.packb({"type": "event", "seq": 1, "event": "NewBlock"}), "must not send `event`"),
    (msgpack.packb({"type": "log", "level": "loud", "message": "x"}), "log level"),
    (msgpack.packb({"type": "log", "level": "info", "message": 5}), "expected str"),
    (msgpack.packb({"type": "request", "id": -1, "method": "ping"}), "u64 `id`"),
    (msgpack.packb({"type": "request", "id": 1, "method": "get_block", "params": {"hash": b"\x00" * 31}}),
     "a hash is 32 bytes"),
    (msgpack.packb({"type": "request", "id": 1, "method": "get_block_hash", "params": {"height": "1"}}),
     "expected u64"),
    (msgpack.packb({"type": "request", "id": 1, "method": "get_private_keys"}), "not a method"),
    (msgpack.packb({"type": "response", "id": 9, "result": {}}), "answers no invocation"),
])
def test_what_the_validator_refuses(payload, expected):
    found = problems(payload)
    assert len(found) == 1 and expected in found[0], found


def test_wrong_answer_shape_and_truncation():
    found = problems(msgpack.packb({"type": "response", "id": 3, "result": {"result_json": 5}}),
                     invocations={3: "rpc_call"})
    assert "result_json: expected str" in found[0]
    assert "truncated" in problems(tail=struct.pack(">I", 50) + b"\x81")[0]
    assert "above the maximum" in problems(tail=struct.pack(">I", 2 ** 30))[0]


INNER = '''
import pytest
from pathlib import Path

MODULE = Path({module!r})


@pytest.mark.parametrize("bad", ["none", "not_a_map", "unknown_type", "wrong_field_type", "bad_log_level",
                                 "truncated"])
def test_module(blvm_node, bad):
    blvm_node.install_module(MODULE, "badframe", capabilities=["subscribe_events", "register_rpc_endpoint",
                                                               "read_blockchain"])
    (blvm_node.modules_dir / "badframe" / "config.toml").write_text(f'bad = "{{bad}}"\\n')
    blvm_node.load_module("badframe")
    blvm_node.wait_until(lambda: blvm_node.frame_reports("badframe") or
                         any("badframe sent" in l for l in blvm_node.module_logs("badframe")),
                         what="the module's bad frame")
'''


def test_the_plugin_fails_a_test_whose_module_sent_a_malformed_frame(pytester, monkeypatch):
    import os
    from conftest import REPO
    monkeypatch.setenv("BLVM_NODE_BIN", os.environ.get("BLVM_NODE_BIN") or str(REPO / "target/debug/blvm-node"))
    pytester.makepyfile(test_inner=INNER.format(module=str(MODULES / "badframe")))
    # The plugin as the outer run loads it (python_sdk.rs): from the
    # checkout's source on PYTHONPATH, not an installed copy's entry point,
    # which a machine without `pip install ./sdk/python` does not have.
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-p", "no:blvm_module",
                                           "-p", "blvm_module.testing.plugin")
    # The clean module passes; each malformed frame errors the test at teardown.
    result.assert_outcomes(passed=6, errors=5)
    text = result.stdout.str()
    for expected in ["not a map", "`gossip` is not a frame type", "get_block_hash.params.height: expected u64",
                     "log level 'loud'", "truncated"]:
        assert expected in text, expected
    assert "frames that are not valid per docs/ipc-protocol.md" in text
