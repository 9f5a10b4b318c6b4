"""Control frames (docs/ipc-protocol.md §5) as dataclasses, and the frame
codec: a 4-byte big-endian length, then one MessagePack map (§3).

The shapes are standard library only; :func:`encode_frame` and
:class:`FrameDecoder` need ``msgpack``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from .schema import U32, U64, Hash

#: Default maximum payload (§3): 16 MiB.
MAX_FRAME_LEN = 16 * 1024 * 1024
#: Maximum first frame (``hello``) before the handshake (§3).
MAX_HELLO_LEN = 64 * 1024
#: The five log levels of §5.7, a closed set.
LOG_LEVELS = ("error", "warn", "info", "debug", "trace")
#: Frame types a module may send.
MODULE_FRAME_TYPES = ("hello", "request", "response", "log")
#: Frame types the node sends.
NODE_FRAME_TYPES = ("welcome", "refused", "request", "response", "event", "shutdown")


@dataclass
class Hello:
    """The module's first frame."""
    protocol_versions: list[U32]
    module_id: str
    module_name: str
    version: str
    token: str


@dataclass
class Welcome:
    """The handshake succeeded."""
    protocol_version: U32
    node_version: str
    capabilities: list[str]
    config: dict[str, str] = field(default_factory=dict)
    data_dir: str = ""


@dataclass
class Refused:
    """The handshake failed."""
    code: str
    reason: str


@dataclass
class Log:
    """A line for the node's log."""
    level: str
    target: str | None
    message: str
    fields: dict[str, str] | None


@dataclass
class Shutdown:
    """Stop now, within ``grace_ms``."""
    reason: str
    grace_ms: U64


@dataclass
class ErrorObject:
    """The ``error`` of a failed response."""
    code: str
    message: str
    capability: str | None = None


@dataclass
class DurableMark:
    """``durable`` of an event of a durable subscription (§10.6)."""
    seq: U64
    network: str
    height: U64
    hash: Hash


def encode_frame(value: dict[str, Any]) -> bytes:
    """The bytes of one frame: length prefix and MessagePack payload."""
    import msgpack

    payload = msgpack.packb(value, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


class FrameError(Exception):
    """A frame that breaks §3 or §13: the stream cannot go on."""


class FrameDecoder:
    """Buffers bytes and yields complete frames (decoded maps)."""

    def __init__(self, max_len: int = MAX_FRAME_LEN):
        self.buf = bytearray()
        self.max_len = max_len

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Adds bytes; returns every frame now complete."""
        import msgpack

        self.buf += data
        frames = []
        while len(self.buf) >= 4:
            (n,) = struct.unpack(">I", self.buf[:4])
            if n > self.max_len:
                raise FrameError(f"frame of {n} bytes exceeds the maximum of {self.max_len}")
            if len(self.buf) < 4 + n:
                break
            payload = bytes(self.buf[4:4 + n])
            del self.buf[:4 + n]
            try:
                value = msgpack.unpackb(payload, raw=False, strict_map_key=True)
            except Exception as e:  # noqa: BLE001 - msgpack raises several kinds
                raise FrameError(f"payload is not one MessagePack value: {e}") from e
            if not isinstance(value, dict):
                raise FrameError(f"payload is a {type(value).__name__}, not a map")
            if not isinstance(value.get("type"), str):
                raise FrameError("frame has no `type` string")
            frames.append(value)
        return frames
