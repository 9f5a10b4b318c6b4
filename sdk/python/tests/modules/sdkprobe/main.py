#!/usr/bin/python3
"""The SDK's test module: every request of the SDK through a JSON-RPC method
(`<name>_call [method, params]`, bytes as {"hex": …}), the events, timer
fires and module calls it saw (`<name>_seen`), an API method `echo`, and its
log lines through IpcLogHandler."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor"))

import logging  # noqa: E402

from blvm_module import Module, NodeError  # noqa: E402
from blvm_module.logging import IpcLogHandler  # noqa: E402
from blvm_module.requests import BY_METHOD  # noqa: E402
from blvm_module.schema import from_wire, to_wire  # noqa: E402

NAME = os.environ.get("BLVM_MODULE_NAME", "sdkprobe")
module = Module(NAME)
seen = {"events": [], "timers": [], "calls": [], "once": 0}
log = logging.getLogger(NAME)


def dehex(v):
    if isinstance(v, dict):
        if set(v) == {"hex"}:
            return bytes.fromhex(v["hex"])
        return {k: dehex(x) for k, x in v.items()}
    if isinstance(v, list):
        return [dehex(x) for x in v]
    return v


def enhex(v):
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, dict):
        return {k: enhex(x) for k, x in v.items()}
    if isinstance(v, list):
        return [enhex(x) for x in v]
    return v


@module.rpc(f"{NAME}_call", args='"method" {params}', help="Sends one request through the SDK.")
async def call(params):
    method, p = params
    row = BY_METHOD[method]
    try:
        result = await module.integration.request(row, from_wire(row.params, dehex(p)))
    except NodeError as e:
        return {"error": {"code": e.code, "message": e.message, "capability": e.capability,
                          "class": type(e).__name__}}
    return {"result": enhex(to_wire(result))}


@module.rpc(f"{NAME}_seen", help="What the module saw.")
async def what_it_saw(params):
    return enhex(seen)


@module.api("echo", "Answers the caller's name and its params.")
async def echo(caller, params):
    seen["calls"].append(caller)
    return caller.encode() + b":" + params


@module.timer(after_ms=10)
async def once(fired):
    seen["once"] += 1


@module.timer()
async def by_hand(fired):
    seen["timers"].append({"timer_id": fired.timer_id, "fire": fired.fire, "height": fired.height})


if NAME == "sdkprobe":
    @module.on_event("NewBlock", "MempoolTransactionAdded")
    async def on_event(event):
        seen["events"].append({"name": event.name, "seq": event.seq, "missed": event.missed,
                               "height": event.payload.get("height")})


@module.on_start
async def start(integration):
    logging.getLogger().addHandler(IpcLogHandler(integration))
    logging.getLogger().setLevel(logging.INFO)
    log.info("probe ready", extra={"fields": {"capabilities": len(integration.capabilities)}})


if __name__ == "__main__":
    module.run()
