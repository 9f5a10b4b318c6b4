"""The frame recorder: the entry point the pytest plugin gives a module
under test, so that every frame the module sends is checked on the way.

The node spawns this script (it is the module's process, so the node's
``SO_PEERCRED`` pid check passes); it connects to the node's socket itself,
starts the module's real entry point as its child with
``BLVM_MODULE_SOCKET`` naming an abstract Unix socket (``@…``, within the
module's own sandbox), and relays bytes both ways unchanged while
:class:`~blvm_module.testing.validator.FrameChecker` checks the module's.
Each problem, and a summary when the module's side ends, is written to
stderr as ``BLVM-FRAME-CHECK <kind> <base64 JSON>``; the node logs module
stderr, where the plugin reads it. The recorder exits with the child's status.

Standard library only. Run as a script: ``recorder.py`` beside
``blvm_frame_recorder.json`` (``{"entry": "main.py"}``) and ``_blvm_check/``
(a copy of ``blvm_module``).
"""
import base64
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_blvm_check"))

from blvm_module.testing.validator import FrameChecker  # noqa: E402

MARK = "BLVM-FRAME-CHECK"


def report(kind, value):
    data = base64.b64encode(json.dumps(value).encode()).decode()
    sys.stderr.write(f"{MARK} {kind} {data}\n")
    sys.stderr.flush()


class NodeSide:
    """Decodes the node's frames leniently to learn its invocation ids."""

    def __init__(self, checker, lock):
        self.buf = bytearray()
        self.checker = checker
        self.lock = lock

    def feed(self, data):
        import blvm_module.testing.validator as v
        self.buf += data
        while len(self.buf) >= 4:
            (n,) = struct.unpack(">I", self.buf[:4])
            if len(self.buf) < 4 + n:
                return
            payload = bytes(self.buf[4:4 + n])
            del self.buf[:4 + n]
            try:
                frame = v.strict_unpack(payload)
            except v.MsgpackError:
                continue
            with self.lock:
                self.checker.note_node_frame(frame)


def main():
    with open(os.path.join(HERE, "blvm_frame_recorder.json")) as f:
        entry = os.path.join(HERE, json.load(f)["entry"])
    node_path = os.environ["BLVM_MODULE_SOCKET"]
    name = f"blvm-recorder-{os.getpid()}-{secrets.token_hex(8)}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(1)
    env = dict(os.environ, BLVM_MODULE_SOCKET="@" + name)
    child = subprocess.Popen([entry], env=env)
    listener.settimeout(0.5)
    module = None
    while module is None:
        try:
            module, _ = listener.accept()
        except socket.timeout:
            if child.poll() is not None:
                report("summary", {"frames": 0, "bytes": 0, "problems": 0, "exit": child.returncode,
                                   "note": "the module exited without connecting"})
                sys.exit(child.returncode)
    listener.close()
    module.settimeout(None)
    node = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    node.connect(node_path)
    checker = FrameChecker()
    lock = threading.Lock()
    node_side = NodeSide(checker, lock)
    reported = [0]

    def module_to_node():
        try:
            while True:
                data = module.recv(65536)
                if not data:
                    break
                with lock:
                    checker.feed(data)
                    new = checker.problems[reported[0]:]
                    reported[0] = len(checker.problems)
                for p in new:
                    report("problem", {"problem": p})
                node.sendall(data)
        except OSError:
            pass
        finally:
            with lock:
                checker.finish()
                new = checker.problems[reported[0]:]
                reported[0] = len(checker.problems)
            for p in new:
                report("problem", {"problem": p})
            try:
                node.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def node_to_module():
        try:
            while True:
                data = node.recv(65536)
                if not data:
                    break
                node_side.feed(data)
                module.sendall(data)
        except OSError:
            pass
        finally:
            try:
                module.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    up = threading.Thread(target=module_to_node, daemon=True)
    down = threading.Thread(target=node_to_module, daemon=True)
    up.start()
    down.start()
    code = child.wait()
    up.join(timeout=5)
    report("summary", {"frames": checker.frames, "bytes": checker.bytes, "problems": len(checker.problems),
                       "exit": code})
    node.close()
    module.close()
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
