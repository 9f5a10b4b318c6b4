"""Invocations: requests the node sends a module (docs/ipc-protocol.md §9),
in one table like :data:`blvm_module.requests.REQUESTS`. Standard library only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .requests import Empty
from .schema import I32, U64, Bin


@dataclass
class RpcCallParams:
    """A JSON-RPC call of an endpoint the module registered."""
    method: str
    params_json: str


@dataclass
class RpcError:
    """A JSON-RPC error the module answers instead of a result."""
    code: I32
    message: str


@dataclass
class RpcCallResult:
    """``result_json``: JSON text; or ``error``."""
    result_json: str
    error: RpcError | None = None


@dataclass
class ModuleCallParams:
    """A call of this module's API by ``caller`` (set by the node)."""
    caller: str
    method: str
    params: Bin


@dataclass
class ModuleCallResult:
    """``result``: opaque bytes."""
    result: Bin


@dataclass
class TimerFiredParams:
    """A timer fire: its id, when, which fire (from 1) and a height timer's height."""
    timer_id: U64
    fired_at_ms: U64
    fire: U64 = 0
    height: U64 | None = None


class Invocation(NamedTuple):
    """One row of the §9 invocation table."""
    method: str
    params: type
    result: type


#: Every invocation of protocol version 1.
INVOCATIONS: list[Invocation] = [
    Invocation("rpc_call", RpcCallParams, RpcCallResult),
    Invocation("module_call", ModuleCallParams, ModuleCallResult),
    Invocation("timer_fired", TimerFiredParams, Empty),
    Invocation("health_check", Empty, Empty),
]

BY_METHOD: dict[str, Invocation] = {i.method: i for i in INVOCATIONS}
