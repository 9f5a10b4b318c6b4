"""Declarative modules: decorators for RPC methods, module API methods,
timers, events and invocations, and :meth:`Module.run`, which connects,
registers everything with the node, serves until ``shutdown`` and exits 0.

::

    module = Module("blockwatch")

    @module.rpc("blockwatch_status", help="The tip height.")
    async def status(params):
        return {"tip": module.state.get("tip")}

    @module.on_event("NewBlock")
    async def on_block(event):
        module.state["tip"] = event.payload["height"]

    if __name__ == "__main__":
        module.run()
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .errors import HandshakeError, InvocationError, JsonRpcError
from .events import Event
from .integration import ModuleIntegration
from .invocations import ModuleCallParams, RpcCallParams, TimerFiredParams
from .requests import ApiMethod
from .schema import SchemaError, from_wire

log = logging.getLogger("blvm_module")


@dataclass
class _Timer:
    handler: Callable[[TimerFiredParams], Awaitable[Any]]
    kind: str
    ms: int | None
    height: int | None


class Module:
    """A module's handlers, registered with decorators, and its main loop."""

    def __init__(self, name: str | None = None):
        self.name = name
        self.integration: ModuleIntegration | None = None
        self.state: dict[str, Any] = {}
        self._rpc: dict[str, tuple[Callable, str, str]] = {}
        self._api: dict[str, tuple[Callable, str]] = {}
        self._timers: list[_Timer] = []
        self._timer_by_id: dict[int, _Timer] = {}
        self._events: dict[str, list[Callable[[Event], Awaitable[Any]]]] = {}
        self._any_event: list[Callable[[Event], Awaitable[Any]]] = []
        self._invocations: dict[str, Callable[[dict], Awaitable[dict]]] = {}
        self._on_start: list[Callable[[ModuleIntegration], Awaitable[Any]]] = []
        self._other_timers: list[Callable[[TimerFiredParams], Awaitable[Any]]] = []
        self._on_missed: list[Callable[[int, Event], Awaitable[Any]]] = []

    # --- decorators -------------------------------------------------------

    def rpc(self, method: str, args: str = "", help: str = ""):
        """Registers a JSON-RPC method on the node (``register_rpc_endpoint``).
        The handler gets the JSON-RPC params (a list, or a dict for named
        arguments) and returns anything ``json.dumps`` takes; raise
        :class:`~blvm_module.errors.JsonRpcError` for a JSON-RPC error."""
        def deco(fn):
            self._rpc[method] = (fn, args, help)
            return fn
        return deco

    def api(self, method: str, description: str = ""):
        """Registers a method of this module's API (``register_module_api``),
        called by other modules' ``call_module``. The handler gets
        ``(caller, params: bytes)`` and returns ``bytes``."""
        def deco(fn):
            self._api[method] = (fn, description)
            return fn
        return deco

    def timer(self, *, every_ms: int | None = None, after_ms: int | None = None, at_height: int | None = None):
        """Schedules a timer at start (``timer_schedule``): exactly one of
        ``every_ms`` (repeat), ``after_ms`` (once) or ``at_height``. The
        handler gets :class:`~blvm_module.invocations.TimerFiredParams`.
        With no argument, the handler gets the fires of timers scheduled by
        hand (``node.timer_schedule``)."""
        given = [x is not None for x in (every_ms, after_ms, at_height)]
        if sum(given) > 1:
            raise ValueError("give at most one of every_ms, after_ms, at_height")

        def deco(fn):
            if not any(given):
                self._other_timers.append(fn)
            elif every_ms is not None:
                self._timers.append(_Timer(fn, "repeat", every_ms, None))
            elif after_ms is not None:
                self._timers.append(_Timer(fn, "once", after_ms, None))
            else:
                self._timers.append(_Timer(fn, "height", None, at_height))
            return fn
        return deco

    def on_event(self, *names: str):
        """Handles events of these types (subscribed at start); no names: every event."""
        def deco(fn):
            if not names:
                self._any_event.append(fn)
            for n in names:
                self._events.setdefault(n, []).append(fn)
            return fn
        return deco

    def invocation(self, method: str):
        """Handles a raw invocation (``health_check`` or one a newer node adds):
        ``handler(params: dict) -> dict``."""
        def deco(fn):
            self._invocations[method] = fn
            return fn
        return deco

    def on_start(self, fn):
        """Runs ``fn(integration)`` after subscribing and before registering
        RPC methods, APIs and timers (read the node's state here)."""
        self._on_start.append(fn)
        return fn

    def on_missed(self, fn):
        """Runs ``fn(count, event)`` when events were dropped before ``event`` (§10.3)."""
        self._on_missed.append(fn)
        return fn

    # --- serving ----------------------------------------------------------

    async def _rpc_call(self, params: dict) -> dict:
        call = from_wire(RpcCallParams, params)
        entry = self._rpc.get(call.method)
        if entry is None:
            raise InvocationError("method_not_found", f"no JSON-RPC method `{call.method}` here")
        try:
            args = json.loads(call.params_json) if call.params_json else []
        except ValueError as e:
            raise InvocationError("invalid_params", f"params_json is not JSON: {e}") from None
        try:
            value = await entry[0](args)
        except JsonRpcError as e:
            return {"result_json": "", "error": {"code": e.code, "message": e.message}}
        return {"result_json": json.dumps(value)}

    async def _module_call(self, params: dict) -> dict:
        call = from_wire(ModuleCallParams, params)
        entry = self._api.get(call.method)
        if entry is None:
            raise InvocationError("method_not_found", f"no API method `{call.method}` here")
        result = await entry[0](call.caller, call.params)
        return {"result": bytes(result or b"")}

    async def _timer_fired(self, params: dict) -> dict:
        fired = from_wire(TimerFiredParams, params)
        timer = self._timer_by_id.get(fired.timer_id)
        if timer is not None:
            await timer.handler(fired)
        else:
            for fn in self._other_timers:
                await fn(fired)
        return {}

    async def serve(self, integration: ModuleIntegration) -> None:
        """Subscribes, runs ``on_start``, registers, then dispatches events
        until ``shutdown`` or the end of the connection."""
        self.integration = integration
        node = integration.node
        for method, handler in self._invocations.items():
            integration.on_invocation(method, handler)
        if self._rpc:
            integration.on_invocation("rpc_call", self._rpc_call)
        if self._api:
            integration.on_invocation("module_call", self._module_call)
        if self._timers or self._other_timers:
            integration.on_invocation("timer_fired", self._timer_fired)
        # Subscribing marks the module ready (§6.1): events queue from here.
        await node.subscribe_events(events=sorted(self._events))
        for fn in self._on_start:
            await fn(integration)
        if self._api:
            await node.register_module_api(methods=[ApiMethod(m, d) for m, (_, d) in self._api.items()])
        for method, (_, args, help_text) in self._rpc.items():
            await node.register_rpc_endpoint(method=method, args=args, help=help_text)
        for timer in self._timers:
            answer = await node.timer_schedule(kind=timer.kind, ms=timer.ms, height=timer.height)
            self._timer_by_id[answer.timer_id] = timer
        async for event in integration.events():
            if event.missed:
                for fn in self._on_missed:
                    await fn(event.missed, event)
            for fn in self._events.get(event.name, []) + self._any_event:
                try:
                    await fn(event)
                except SchemaError as e:  # a payload that does not decode: skip it (§10.2)
                    log.warning("skipping %s event seq %d: %s", event.name, event.seq, e)

    async def main(self) -> int:
        """Connects from the environment, serves, closes; returns the exit status."""
        try:
            integration = await ModuleIntegration.from_env()
        except HandshakeError as e:
            print(f"blvm-module: {e}", file=sys.stderr)
            return 1
        serving = asyncio.create_task(self.serve(integration))
        shutdown = asyncio.create_task(integration.wait_shutdown())
        done, _ = await asyncio.wait({serving, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        if serving in done and serving.exception() is not None and not integration.shutting_down:
            await integration.close()
            raise serving.exception()
        await shutdown
        serving.cancel()
        try:
            await serving
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - leaving anyway
            pass
        await integration.close()
        # 0 after `shutdown`; 1 when the connection ended without one (§12).
        return 0 if integration.shutdown_frame is not None else 1

    def run(self) -> None:
        """The module's entry point: runs :meth:`main` and exits with its status."""
        sys.exit(asyncio.run(self.main()))
