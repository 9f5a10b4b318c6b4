"""The SDK's codec against the checked-in vectors of
crates/blvm-module-protocol/tests/vectors: each decodes, its typed value
(params, result, control frame, event) decodes through the SDK's shapes, and
re-encoding gives the vector's bytes (the node's encoding is canonical:
fields in table order, shortest integers)."""
import struct

import msgpack
import pytest

from blvm_module import events as ev
from blvm_module.frames import (DurableMark, ErrorObject, FrameDecoder, Hello, Log, Refused, Shutdown,
                                Welcome, encode_frame)
from blvm_module.invocations import BY_METHOD as INVOCATIONS
from blvm_module.requests import BY_METHOD as REQUESTS
from blvm_module.schema import from_wire, to_wire

from conftest import VECTORS

ALL = sorted(p.name for p in VECTORS.glob("*.bin"))
CONTROL = {"hello": Hello, "welcome": Welcome, "refused": Refused, "log": Log, "shutdown": Shutdown}

# The request each response vector answers (the README's table).
ANSWERS = {
    "response_success.bin": "get_block_header", "storage_get_response.bin": "storage_get",
    "report_metrics_response.bin": "report_metrics", "read_metrics_response.bin": "read_metrics",
    "fs_create_dir_response.bin": "fs_create_dir", "fs_usage_response.bin": "fs_usage",
    "call_module_response.bin": "call_module", "register_rpc_endpoint_response.bin": "register_rpc_endpoint",
    "timer_schedule_response.bin": "timer_schedule", "timer_list_response.bin": "timer_list",
    "subscribe_durable_response.bin": "subscribe_durable", "ack_events_response.bin": "ack_events",
}
INVOCATION_ANSWERS = {"invocation_response.bin": "rpc_call", "health_check_response.bin": "health_check",
                      "rpc_call_error_response.bin": "rpc_call"}


def test_every_vector_of_the_readme_is_here():
    import re
    listed = set(re.findall(r"^\| `([a-z_]+\.bin)` \|", (VECTORS / "README.md").read_text(), re.M))
    assert listed and listed == set(ALL)


def typed_reencode(name: str, frame: dict) -> dict:
    """The frame rebuilt from the SDK's typed decoding of it."""
    kind = frame["type"]
    if kind in CONTROL:
        return {"type": kind, **to_wire(from_wire(CONTROL[kind], frame))}
    if kind == "request":
        method = frame["method"]
        row = REQUESTS.get(method) or INVOCATIONS[method]
        params = from_wire(row.params, frame["params"])
        return {"type": "request", "id": frame["id"], "method": method, "params": to_wire(params)}
    if kind == "response":
        if "error" in frame:
            return {"type": "response", "id": frame["id"], "error": to_wire(from_wire(ErrorObject, frame["error"]))
                    if "capability" in frame["error"] else
                    {k: v for k, v in to_wire(from_wire(ErrorObject, frame["error"])).items() if k != "capability"}}
        if name in ANSWERS:
            result = from_wire(REQUESTS[ANSWERS[name]].result, frame["result"])
        else:
            result = from_wire(INVOCATIONS[INVOCATION_ANSWERS[name]].result, frame["result"])
        wire = to_wire(result)
        if name == "invocation_response.bin":
            wire = {k: v for k, v in wire.items() if v is not None}  # `error` absent, as the spec allows
        return {"type": "response", "id": frame["id"], "result": wire}
    if kind == "event":
        event = ev.event_from_frame(frame, 0)
        out = {"type": "event", "seq": event.seq, "event": event.name}
        if event.origin is not None:
            out["origin"] = event.origin
        typed = event.typed()
        out["payload"] = to_wire(typed) if typed is not None else event.payload
        if event.durable is not None:
            out["durable"] = to_wire(event.durable)
        return out
    raise AssertionError(f"{name}: unexpected frame type {kind}")


@pytest.mark.parametrize("name", ALL)
def test_vector_decodes_and_reencodes_to_the_same_bytes(name):
    data = (VECTORS / name).read_bytes()
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4
    decoder = FrameDecoder()
    # Split at every point: a frame may arrive over several reads (§2).
    frames = []
    for i in range(len(data)):
        frames += decoder.feed(data[i:i + 1])
    assert len(frames) == 1 and not decoder.buf
    frame = frames[0]
    rebuilt = typed_reencode(name, frame)
    if name == "request_with_unknown_field.bin":
        assert rebuilt == {k: v for k, v in frame.items() if k != "x_future"}
        assert encode_frame(rebuilt) == (VECTORS / "request.bin").read_bytes()
    else:
        assert encode_frame(rebuilt) == data, name


def test_unknown_event_keeps_its_payload_bytes():
    data = (VECTORS / "event_unknown_type.bin").read_bytes()
    (frame,) = FrameDecoder().feed(data)
    event = ev.event_from_frame(frame, 1)
    assert not event.known and event.typed() is None
    assert event.name == "QuantumBlockTeleported" and event.payload["qubits"] == 1024
    assert event.payload_bytes == data[-56:]


def test_durable_event_and_gap():
    (frame,) = FrameDecoder().feed((VECTORS / "event_durable.bin").read_bytes())
    event = ev.event_from_frame(frame, 4)
    assert event.seq == 7 and event.missed == 2
    assert event.durable == DurableMark(2, "main", 1, event.payload["block_hash"])
    block = event.typed()
    assert block.height == 1 and block.header[4:36].hex().startswith("6fe28c0a")


def test_frame_decoder_refuses_what_section_13_refuses():
    from blvm_module.frames import FrameError
    for bad in [struct.pack(">I", 1) + b"\x01", struct.pack(">I", 2) + b"\x80\x80",
                struct.pack(">I", 2 ** 31), struct.pack(">I", 1) + b"\xc1"]:
        with pytest.raises(FrameError):
            FrameDecoder().feed(bad)
    payload = msgpack.packb({"no": "type"})
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">I", len(payload)) + payload)
