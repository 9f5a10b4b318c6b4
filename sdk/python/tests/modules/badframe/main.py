#!/usr/bin/python3
"""A module that does its handshake through the SDK, then sends one bad
frame chosen by its config `bad` (via the SDK's raw writer), then behaves."""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor"))

import msgpack  # noqa: E402

from blvm_module import Module  # noqa: E402

module = Module("badframe")
BAD = {
    "not_a_map": msgpack.packb([1, 2, 3]),
    "unknown_type": msgpack.packb({"type": "gossip", "text": "hi"}),
    "wrong_field_type": msgpack.packb({"type": "request", "id": 99, "method": "get_block_hash",
                                       "params": {"height": "seven"}}),
    "bad_log_level": msgpack.packb({"type": "log", "level": "loud", "message": "x"}),
}


@module.on_start
async def start(integration):
    bad = integration.config.get("bad", "")
    if bad in BAD:
        integration._writer.write(struct.pack(">I", len(BAD[bad])) + BAD[bad])
    elif bad == "truncated":
        integration._writer.write(struct.pack(">I", 100) + b"\x81\xa4type")
        await integration._writer.drain()
        os._exit(0)
    integration.log("info", "badframe sent", fields={"bad": bad})


@module.rpc("badframe_ok")
async def ok(params):
    return True


if __name__ == "__main__":
    module.run()
