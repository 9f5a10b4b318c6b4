#!/usr/bin/python3
"""A module in Python of several files (this entry point, `wire.py`, the
package `pkg`), for the tests of script modules: it connects, subscribes
to nothing, answers health checks and `module_call` (`whoami`, `read`),
and exits 0 on `shutdown`. Standard library only.
"""
import os
import sys

import wire
from pkg import answers


def main():
    env = os.environ
    conn = wire.Connection(env["BLVM_MODULE_SOCKET"])
    conn.send({"type": "hello", "protocol_versions": [1],
               "module_id": env["BLVM_MODULE_ID"], "module_name": env["BLVM_MODULE_NAME"],
               "version": env["BLVM_MODULE_VERSION"], "token": env["BLVM_MODULE_TOKEN"]})
    answer = conn.recv()
    if answer.get("type") != "welcome":
        print(f"refused: {answer.get('code')}: {answer.get('reason')}", file=sys.stderr)
        sys.exit(1)
    conn.send({"type": "request", "id": 1, "method": "subscribe_events", "params": {"events": []}})
    while True:
        frame = conn.recv()
        kind = frame.get("type")
        if kind == "shutdown":
            sys.exit(0)
        if kind != "request":
            continue
        rid, method, params = frame["id"], frame["method"], frame.get("params") or {}
        if method == "health_check":
            conn.send({"type": "response", "id": rid, "result": {}})
        elif method == "module_call" and params.get("method") == "whoami":
            result = answers.whoami().encode()
            conn.send({"type": "response", "id": rid, "result": {"result": result}})
        elif method == "module_call" and params.get("method") == "read":
            result = answers.read(params["params"].decode()).encode()
            conn.send({"type": "response", "id": rid, "result": {"result": result}})
        else:
            conn.send({"type": "response", "id": rid, "error": {
                "code": "method_not_found", "message": f"unknown method `{method}`"}})


if __name__ == "__main__":
    try:
        main()
    except EOFError:
        sys.exit(1)
