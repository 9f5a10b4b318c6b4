"""blvm-module: write blvm node modules in Python.

The package speaks the module IPC protocol versions in
:data:`PROTOCOL_VERSIONS` (docs/ipc-protocol.md); a node that shares none
refuses the handshake, which :meth:`ModuleIntegration.connect` raises as
:class:`VersionMismatch`.

Exports are loaded lazily, so the standard-library-only parts
(:mod:`blvm_module.schema`, :mod:`blvm_module.requests`,
:mod:`blvm_module.testing.validator`) import without ``msgpack``.
"""
from __future__ import annotations

__version__ = "0.1.0"

#: The protocol versions this package speaks, offered in ``hello``.
PROTOCOL_VERSIONS: tuple[int, ...] = (1,)

_EXPORTS = {
    "ModuleIntegration": "integration",
    "NodeApi": "node_api",
    "Module": "module",
    "Event": "events",
    "MissedEvents": "events",
    "ModuleEnv": "env",
    "IpcLogHandler": "logging",
    "REQUESTS": "requests",
    "INVOCATIONS": "invocations",
    "BlvmError": "errors",
    "HandshakeError": "errors",
    "VersionMismatch": "errors",
    "ProtocolError": "errors",
    "ConnectionClosed": "errors",
    "NodeError": "errors",
    "PermissionDenied": "errors",
    "MethodNotFound": "errors",
    "InvalidParams": "errors",
    "Rejected": "errors",
    "QuotaExceeded": "errors",
    "AlreadyRegistered": "errors",
    "ModuleNotRunning": "errors",
    "InvocationError": "errors",
    "JsonRpcError": "errors",
}

__all__ = ["PROTOCOL_VERSIONS", "__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'blvm_module' has no attribute {name!r}")
