"""Checks the frames a module sends against docs/ipc-protocol.md, byte by
byte: framing (§3), a strict MessagePack decoder (one map, nothing after it,
``str`` keys, no duplicate keys, valid UTF-8, no ext types), the frame
tables (§5, §13), requests' params against the method table (§8.2),
responses to invocations against §9, and log levels.

Standard library only: it runs inside the module's sandbox, in the frame
recorder (:mod:`blvm_module.testing.recorder`).
"""
from __future__ import annotations

import struct
from typing import Any

from ..frames import LOG_LEVELS, MAX_FRAME_LEN, MAX_HELLO_LEN, ErrorObject, Hello, Log
from ..invocations import BY_METHOD as INVOCATIONS
from ..requests import BY_METHOD as REQUESTS
from ..schema import SchemaError, check


class MsgpackError(ValueError):
    """Bytes that are not one well-formed MessagePack value."""


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.i = 0

    def take(self, n: int) -> bytes:
        if self.i + n > len(self.data):
            raise MsgpackError(f"truncated: needs {n} bytes at offset {self.i}, {len(self.data) - self.i} left")
        out = self.data[self.i:self.i + n]
        self.i += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def value(self, depth: int = 0) -> Any:
        if depth > 256:
            raise MsgpackError("nested more than 256 levels")
        at = self.i
        b = self.take(1)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F:
            return self.map(b & 0x0F, depth, at)
        if 0x90 <= b <= 0x9F:
            return [self.value(depth + 1) for _ in range(b & 0x0F)]
        if 0xA0 <= b <= 0xBF:
            return self.str(b & 0x1F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if b in simple:
            return simple[b]
        if b in (0xC4, 0xC5, 0xC6):
            return self.take(self.uint({0xC4: 1, 0xC5: 2, 0xC6: 4}[b]))
        if b == 0xCA:
            return struct.unpack(">f", self.take(4))[0]
        if b == 0xCB:
            return struct.unpack(">d", self.take(8))[0]
        if 0xCC <= b <= 0xCF:
            return self.uint(1 << (b - 0xCC))
        if 0xD0 <= b <= 0xD3:
            n = 1 << (b - 0xD0)
            return int.from_bytes(self.take(n), "big", signed=True)
        if b in (0xD9, 0xDA, 0xDB):
            return self.str(self.uint({0xD9: 1, 0xDA: 2, 0xDB: 4}[b]))
        if b in (0xDC, 0xDD):
            return [self.value(depth + 1) for _ in range(self.uint(2 if b == 0xDC else 4))]
        if b in (0xDE, 0xDF):
            return self.map(self.uint(2 if b == 0xDE else 4), depth, at)
        if b == 0xC1:
            raise MsgpackError(f"invalid marker 0xc1 at offset {at}")
        raise MsgpackError(f"ext type (marker 0x{b:02x}) at offset {at}: the protocol has none")

    def str(self, n: int) -> str:
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MsgpackError(f"a str that is not UTF-8 at offset {self.i - n}: {e}") from None

    def map(self, n: int, depth: int, at: int) -> dict:
        out: dict = {}
        for _ in range(n):
            k = self.value(depth + 1)
            if not isinstance(k, str):
                raise MsgpackError(f"a map key that is not a str ({type(k).__name__}) in the map at offset {at}")
            if k in out:
                raise MsgpackError(f"duplicate key {k!r} in the map at offset {at}")
            out[k] = self.value(depth + 1)
        return out


def strict_unpack(payload: bytes) -> dict:
    """One MessagePack map and nothing after it, or :class:`MsgpackError`."""
    if not payload:
        raise MsgpackError("empty payload: not a map")
    r = _Reader(payload)
    value = r.value()
    if r.i != len(payload):
        raise MsgpackError(f"{len(payload) - r.i} bytes after the map")
    if not isinstance(value, dict):
        raise MsgpackError(f"the payload is a {type(value).__name__}, not a map")
    return value


def _u64(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64


class FrameChecker:
    """Validates the module → node byte stream; learns the node's
    invocations (``note_node_frame``) to check the module's answers."""

    def __init__(self):
        self.buf = bytearray()
        self.frames = 0
        self.bytes = 0
        self.problems: list[str] = []
        self.broken = False
        self.invocations: dict[int, str] = {}
        self.answered: set[int] = set()

    def _problem(self, text: str) -> None:
        self.problems.append(f"frame {self.frames + 1}: {text}")

    def note_node_frame(self, frame: dict) -> None:
        """A frame the node sent (decoded leniently)."""
        if frame.get("type") == "request" and isinstance(frame.get("id"), int):
            self.invocations[frame["id"]] = str(frame.get("method"))

    def feed(self, data: bytes) -> None:
        """Bytes the module sent."""
        self.bytes += len(data)
        if self.broken:
            return
        self.buf += data
        while len(self.buf) >= 4:
            (n,) = struct.unpack(">I", self.buf[:4])
            limit = MAX_HELLO_LEN if self.frames == 0 else MAX_FRAME_LEN
            if n > limit:
                self._problem(f"length prefix {n} above the maximum {limit} (§3)")
                self.broken = True
                return
            if len(self.buf) < 4 + n:
                return
            payload = bytes(self.buf[4:4 + n])
            del self.buf[:4 + n]
            self.check_payload(payload)
            self.frames += 1

    def finish(self) -> None:
        """The module's side of the stream ended."""
        if self.buf and not self.broken:
            if len(self.buf) < 4:
                self._problem(f"the stream ended inside a length prefix ({len(self.buf)} of 4 bytes)")
            else:
                (n,) = struct.unpack(">I", self.buf[:4])
                self._problem(f"the stream ended inside a frame: truncated, {len(self.buf) - 4} of {n} payload bytes")

    def check_payload(self, payload: bytes) -> None:
        """One frame's payload."""
        try:
            frame = strict_unpack(payload)
        except MsgpackError as e:
            self._problem(f"not one well-formed MessagePack map: {e} (§3, §13)")
            return
        kind = frame.get("type")
        if not isinstance(kind, str):
            self._problem("no `type` str (§13)")
            return
        if self.frames == 0 and kind != "hello":
            self._problem(f"the first frame is `{kind}`, not hello (§6.1)")
            return
        try:
            if kind == "hello":
                if self.frames != 0:
                    self._problem("a second hello (§5)")
                    return
                check(frame, Hello)
            elif kind == "log":
                check(frame, Log)
                if frame["level"] not in LOG_LEVELS:
                    self._problem(f"log level {frame['level']!r} is not one of {LOG_LEVELS} (§5.7)")
            elif kind == "request":
                self._check_request(frame)
            elif kind == "response":
                self._check_response(frame)
            elif kind in ("welcome", "refused", "event", "shutdown"):
                self._problem(f"a module must not send `{kind}` (§5, §13)")
            else:
                self._problem(f"`{kind}` is not a frame type of protocol version 1 (§5)")
        except SchemaError as e:
            self._problem(f"`{kind}` frame: {e}")

    def _check_request(self, frame: dict) -> None:
        if not _u64(frame.get("id")):
            self._problem("a request without a u64 `id` (§13)")
            return
        method = frame.get("method")
        if not isinstance(method, str):
            self._problem("a request without a str `method` (§13)")
            return
        params = frame.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self._problem(f"request {method}: `params` is a {type(params).__name__}, not a map (§5.4)")
            return
        row = REQUESTS.get(method)
        if row is None:
            self._problem(f"request `{method}`: not a method of protocol version 1 (§8.2)")
            return
        try:
            check(params, row.params, f"{method}.params")
        except SchemaError as e:
            self._problem(f"request {e} (§8.2)")

    def _check_response(self, frame: dict) -> None:
        rid = frame.get("id")
        if not _u64(rid):
            self._problem("a response without a u64 `id` (§13)")
            return
        has_result, has_error = frame.get("result") is not None, frame.get("error") is not None
        if has_result == has_error:
            self._problem(f"response {rid}: must carry exactly one of `result` and `error` (§5.5)")
            return
        method = self.invocations.get(rid)
        if method is None:
            self._problem(f"response {rid}: answers no invocation of the node (§7.1)")
            return
        if rid in self.answered:
            self._problem(f"response {rid}: a second answer to invocation {method} (§9)")
            return
        self.answered.add(rid)
        if has_error:
            check(frame["error"], ErrorObject, f"response {rid} ({method}).error")
            return
        if not isinstance(frame["result"], dict):
            self._problem(f"response {rid} ({method}): `result` is not a map (§5.5)")
            return
        row = INVOCATIONS.get(method)
        if row is not None:
            check(frame["result"], row.result, f"response {rid} ({method}).result")
