"""The connection to the node: handshake and version negotiation (§6), one
reader task dispatching every frame (§14 checklist item 9), requests matched
to responses by id (§7.1), invocations answered concurrently (§9), events
with their delivery sequence (§10.3), log frames (§11), and ``shutdown``
(§12). Named like the Rust SDK's ``ModuleIntegration``.
"""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from . import PROTOCOL_VERSIONS, __version__
from .env import ModuleEnv
from .errors import (ConnectionClosed, HandshakeError, InvocationError, NodeError, ProtocolError,
                     VersionMismatch)
from .events import Event, MissedEvents, event_from_frame
from .frames import (LOG_LEVELS, MAX_FRAME_LEN, FrameDecoder, FrameError, Refused, Shutdown, Welcome,
                     encode_frame)
from .node_api import NodeApi
from .requests import Request
from .schema import SchemaError, from_wire, to_wire

#: An invocation handler: gets the params map, returns the result map (or
#: raises :class:`InvocationError`).
InvocationHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

_END = object()


def _socket_address(path: str) -> str:
    # `@name` is a Linux abstract socket (as Go's net package spells it); the
    # pytest plugin's frame recorder hands modules such an address.
    return "\0" + path[1:] if path.startswith("@") else path


class ModuleIntegration:
    """One module's connection to the node.

    Create it with :meth:`connect` or :meth:`from_env`; both return after the
    handshake, so a version mismatch raises :class:`VersionMismatch` there.
    ``node`` has a typed method for every request; ``events()`` yields the
    events; ``on_invocation`` registers handlers for the node's requests.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, welcome: Welcome,
                 module_name: str):
        self._reader = reader
        self._writer = writer
        self.welcome = welcome
        self.module_name = module_name
        self.node = NodeApi(self)
        self._next_id = 1
        self._pending: dict[int, tuple[asyncio.Future, str]] = {}
        self._events: asyncio.Queue = asyncio.Queue()
        self._handlers: dict[str, InvocationHandler] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closed = asyncio.Event()
        self._shutdown = asyncio.Event()
        self.shutdown_frame: Shutdown | None = None
        self.last_seq = 0
        self.missed_total = 0
        self.close_reason: str | None = None
        self._loop = asyncio.get_running_loop()
        self._reader_task = asyncio.create_task(self._read_loop(), name="blvm-module-reader")

    # --- connecting -------------------------------------------------------

    @classmethod
    async def connect(cls, socket_path: str, module_id: str, module_name: str, version: str, token: str,
                      *, protocol_versions: list[int] | None = None, timeout: float = 10.0) -> "ModuleIntegration":
        """Connects, sends ``hello`` and waits for the node's answer.

        Raises :class:`VersionMismatch` when the node refuses
        ``unsupported_version`` or welcomes a version not in
        ``protocol_versions`` (default :data:`blvm_module.PROTOCOL_VERSIONS`),
        :class:`HandshakeError` for any other refusal or a broken answer.
        """
        offered = list(PROTOCOL_VERSIONS if protocol_versions is None else protocol_versions)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, _socket_address(socket_path))
        except OSError as e:
            sock.close()
            raise HandshakeError(f"cannot connect to the node's socket {socket_path}: {e}") from e
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_FRAME_LEN + 4)
        hello = {"type": "hello", "protocol_versions": offered, "module_id": module_id,
                 "module_name": module_name, "version": version, "token": token}
        writer.write(encode_frame(hello))
        try:
            first = await asyncio.wait_for(_read_one(reader), timeout)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, FrameError) as e:
            writer.close()
            raise HandshakeError(f"no answer to hello from the node: {e!r}") from e
        kind = first.get("type")
        if kind == "refused":
            writer.close()
            try:
                refused = from_wire(Refused, first)
            except SchemaError:
                refused = Refused(str(first.get("code")), str(first.get("reason")))
            if refused.code == "unsupported_version":
                raise VersionMismatch(
                    f"the node refused protocol versions {offered} (unsupported_version: {refused.reason}); "
                    f"blvm-module {__version__} speaks versions {list(PROTOCOL_VERSIONS)}",
                    refused.code, refused.reason)
            raise HandshakeError(f"the node refused the handshake: {refused.code}: {refused.reason}",
                                 refused.code, refused.reason)
        if kind != "welcome":
            writer.close()
            raise HandshakeError(f"the node answered hello with a `{kind}` frame, not welcome or refused")
        try:
            welcome = from_wire(Welcome, first)
        except SchemaError as e:
            writer.close()
            raise HandshakeError(f"the node's welcome does not decode: {e}") from e
        if welcome.protocol_version not in offered:
            writer.close()
            raise VersionMismatch(
                f"the node chose protocol version {welcome.protocol_version}, which blvm-module "
                f"{__version__} does not speak (it offered {offered})")
        return cls(reader, writer, welcome, module_name)

    @classmethod
    async def from_env(cls, **kwargs) -> "ModuleIntegration":
        """:meth:`connect` with the variables the node set (§2)."""
        env = ModuleEnv.from_env()
        return await cls.connect(env.socket_path, env.module_id, env.module_name, env.version, env.token,
                                 **kwargs)

    # --- what the welcome said -------------------------------------------

    @property
    def capabilities(self) -> frozenset[str]:
        """The capabilities granted, fixed for the connection."""
        return frozenset(self.welcome.capabilities)

    @property
    def config(self) -> dict[str, str]:
        """The module's configuration, dotted keys to strings."""
        return self.welcome.config

    @property
    def data_dir(self) -> str:
        """The module's data directory."""
        return self.welcome.data_dir

    @property
    def protocol_version(self) -> int:
        """The version in force."""
        return self.welcome.protocol_version

    # --- sending ----------------------------------------------------------

    def _send(self, frame: dict[str, Any]) -> None:
        if self._closed.is_set():
            raise ConnectionClosed("the connection to the node is closed")
        self._writer.write(encode_frame(frame))

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sends a request by name with a params map; returns the result map.
        Prefer the typed methods of ``node``."""
        if self._closed.is_set():
            raise ConnectionClosed("the connection to the node is closed")
        rid = self._next_id
        self._next_id += 1
        fut = self._loop.create_future()
        self._pending[rid] = (fut, method)
        try:
            self._send({"type": "request", "id": rid, "method": method, "params": params or {}})
            await self._writer.drain()
            return await fut
        finally:
            self._pending.pop(rid, None)

    async def request(self, row: Request, params: Any) -> Any:
        """Sends the request of a table row with a params dataclass; decodes its result."""
        result = await self.call(row.method, to_wire(params))
        try:
            return from_wire(row.result, result if result is not None else {}, row.method)
        except SchemaError as e:
            raise ProtocolError(f"the node's answer to {row.method} does not decode: {e}") from e

    def log(self, level: str, message: str, target: str = "", fields: dict[str, Any] | None = None) -> None:
        """Sends a ``log`` frame (never answered). Callable from any thread."""
        if level not in LOG_LEVELS:
            raise ValueError(f"log level {level!r} is not one of {LOG_LEVELS}")
        frame = {"type": "log", "level": level, "target": target, "message": message,
                 "fields": {str(k): str(v) for k, v in (fields or {}).items()}}
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            if not self._closed.is_set():
                self._send(frame)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: None if self._closed.is_set() else self._send(frame))

    # --- invocations ------------------------------------------------------

    def on_invocation(self, method: str, handler: InvocationHandler) -> None:
        """Answers the node's ``method`` invocations with ``handler(params) -> result``.
        ``health_check`` is answered ``{}`` by the reader itself unless a handler is set."""
        self._handlers[method] = handler

    def _answer(self, rid: int, result: dict | None = None, error: dict | None = None) -> None:
        if self._closed.is_set():
            return
        frame = {"type": "response", "id": rid}
        if error is not None:
            frame["error"] = error
        else:
            frame["result"] = result or {}
        self._send(frame)

    async def _invoke(self, rid: int, method: str, handler: InvocationHandler, params: dict) -> None:
        try:
            result = await handler(params)
            self._answer(rid, result=to_wire(result) if result is not None else {})
        except InvocationError as e:
            self._answer(rid, error={"code": e.code, "message": e.message})
        except asyncio.CancelledError:
            self._answer(rid, error={"code": "internal", "message": "the module is shutting down"})
            raise
        except Exception as e:  # noqa: BLE001 - every invocation gets exactly one answer
            self._answer(rid, error={"code": "internal", "message": f"{type(e).__name__}: {e}"})

    # --- reading ----------------------------------------------------------

    async def _read_loop(self) -> None:
        decoder = FrameDecoder()
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    self.close_reason = self.close_reason or "the node closed the connection"
                    break
                for frame in decoder.feed(data):
                    self._dispatch(frame)
        except FrameError as e:
            self.close_reason = f"protocol violation by the node: {e}"
        except (ConnectionError, OSError) as e:
            self.close_reason = f"connection error: {e}"
        except asyncio.CancelledError:
            self.close_reason = self.close_reason or "closed by the module"
        finally:
            self._finish()

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "response":
            rid = frame.get("id")
            entry = self._pending.get(rid) if isinstance(rid, int) else None
            if entry is None:
                return  # a response to nothing: ignored (§7.1)
            fut, method = entry
            if fut.done():
                return
            if "error" in frame and frame["error"] is not None:
                error = frame["error"] if isinstance(frame["error"], dict) else {}
                fut.set_exception(NodeError.from_error(error, method))
            else:
                result = frame.get("result")
                fut.set_result(result if isinstance(result, dict) else {})
        elif kind == "event":
            seq, name = frame.get("seq"), frame.get("event")
            if not isinstance(seq, int) or not isinstance(name, str):
                return
            event = event_from_frame(frame, self.last_seq)
            self.missed_total += event.missed
            self.last_seq = max(self.last_seq, seq)
            self._events.put_nowait(event)
        elif kind == "request":
            rid, method = frame.get("id"), frame.get("method")
            if not isinstance(rid, int) or not isinstance(method, str):
                return
            params = frame.get("params") if isinstance(frame.get("params"), dict) else {}
            handler = self._handlers.get(method)
            if handler is None:
                if method == "health_check":
                    self._answer(rid, result={})  # at once, from the reader (§9.1)
                else:
                    self._answer(rid, error={"code": "method_not_found",
                                             "message": f"module `{self.module_name}` does not handle `{method}`"})
                return
            task = asyncio.create_task(self._invoke(rid, method, handler, params), name=f"invocation-{method}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "shutdown":
            try:
                self.shutdown_frame = from_wire(Shutdown, frame)
            except SchemaError:
                self.shutdown_frame = Shutdown(str(frame.get("reason")), 0)
            self._shutdown.set()
            self._events.put_nowait(_END)
        # Anything else (an unknown frame type, hello, log) is ignored (§4.4).

    def _finish(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for fut, _ in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(ConnectionClosed(self.close_reason or "the connection closed"))
        self._events.put_nowait(_END)
        self._shutdown.set()
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001
            pass

    # --- events -----------------------------------------------------------

    async def events(self, markers: bool = False) -> AsyncIterator[Event | MissedEvents]:
        """Yields events in delivery order until ``shutdown`` or the end of the
        connection. With ``markers``, a :class:`MissedEvents` comes before an
        event that follows a gap; without, see ``event.missed``."""
        while True:
            item = await self._events.get()
            if item is _END:
                self._events.put_nowait(_END)  # other iterators end too
                return
            if markers and item.missed:
                yield MissedEvents(item.missed, item.seq - item.missed - 1, item.seq)
            yield item

    async def ack(self, event: Event):
        """Acknowledges a durable event (``ack_events`` with its durable seq)."""
        if event.durable is None:
            raise ValueError("not an event of a durable subscription")
        return await self.node.ack_events(seq=event.durable.seq)

    # --- the end ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self._closed.is_set()

    @property
    def shutting_down(self) -> bool:
        """Whether the node sent ``shutdown`` (or the connection ended)."""
        return self._shutdown.is_set()

    async def wait_shutdown(self) -> Shutdown | None:
        """Waits for ``shutdown`` or the end of the connection; returns the
        shutdown frame (``None`` when the connection ended without one)."""
        await self._shutdown.wait()
        return self.shutdown_frame

    async def close(self) -> None:
        """Cancels invocation handlers, closes the connection and waits for the reader."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._writer.drain()
        except Exception:  # noqa: BLE001
            pass
        self._reader_task.cancel()
        try:
            await self._reader_task
        except asyncio.CancelledError:
            pass
        self._finish()
        try:
            await self._writer.wait_closed()
        except Exception:  # noqa: BLE001
            pass


async def _read_one(reader: asyncio.StreamReader) -> dict[str, Any]:
    decoder = FrameDecoder()
    head = await reader.readexactly(4)
    n = int.from_bytes(head, "big")
    if n > MAX_FRAME_LEN:
        raise FrameError(f"frame of {n} bytes")
    body = await reader.readexactly(n)
    (frame,) = decoder.feed(head + body)
    return frame
