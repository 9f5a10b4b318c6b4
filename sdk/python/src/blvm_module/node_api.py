"""Typed async methods for every request of docs/ipc-protocol.md §8.2,
built from the table :data:`blvm_module.requests.REQUESTS` (named like the
Rust SDK's ``NodeApiIpc``).

Each method takes the fields of its params dataclass as arguments (those
with a default may be left out) and returns its result dataclass; an error
response raises a :class:`~blvm_module.errors.NodeError` subclass.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import TYPE_CHECKING, Any

from .requests import REQUESTS, Request
from .schema import hints, type_name

if TYPE_CHECKING:
    from .integration import ModuleIntegration


class NodeApi:
    """The node's methods, over one connection. Every §8.2 method is an
    ``async`` method of the same name: ``await api.get_block_hash(height=0)``."""

    def __init__(self, integration: "ModuleIntegration"):
        self._integration = integration

    async def request(self, row: Request, params: Any) -> Any:
        """Sends one request of the table with a params dataclass; returns its result dataclass."""
        return await self._integration.request(row, params)


def _make(row: Request):
    fields = dataclasses.fields(row.params)
    h = hints(row.params)
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for f in fields:
        default = inspect.Parameter.empty
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = None  # filled by the dataclass
        parameters.append(inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            default=default, annotation=h[f.name]))
    signature = inspect.Signature(parameters, return_annotation=row.result)

    async def method(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        values = {k: v for k, v in bound.arguments.items() if k != "self"}
        return await self._integration.request(row, row.params(**values))

    method.__name__ = method.__qualname__ = row.method
    method.__signature__ = signature
    args = ", ".join(f"{f.name}: {type_name(h[f.name])}" for f in fields) or "{}"
    cap = f"`{row.capability}`" if row.capability else "none"
    method.__doc__ = (f"{row.doc}\n\n``{row.method}`` ({args}) → {row.result.__name__}; "
                      f"capability: {cap}.")
    return method


for _row in REQUESTS:
    setattr(NodeApi, _row.method, _make(_row))
del _row
