"""Exceptions: node error responses (§7.3) as :class:`NodeError` subclasses
by code, handshake failures, and the end of the connection."""
from __future__ import annotations


class BlvmError(Exception):
    """Base of every error of this package."""


class HandshakeError(BlvmError):
    """The handshake did not give a usable connection (§6)."""

    def __init__(self, message: str, code: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason


class VersionMismatch(HandshakeError):
    """The node and this package share no protocol version (``unsupported_version``,
    or a ``welcome`` naming a version this package does not speak)."""


class ProtocolError(BlvmError):
    """The peer broke the protocol (§13); the connection is closed."""


class ConnectionClosed(BlvmError):
    """The connection ended; requests in flight fail with it (``connection_closed``)."""

    code = "connection_closed"


class NodeError(BlvmError):
    """An error response: ``code`` (§7.3, an open set), ``message`` for humans,
    ``capability`` for ``permission_denied``."""

    code: str = "internal"

    def __init__(self, code: str, message: str, capability: str | None = None, method: str | None = None):
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code}: {message}")
        self.code = code
        self.message = message
        self.capability = capability
        self.method = method

    @staticmethod
    def from_error(error: dict, method: str | None = None) -> "NodeError":
        """The exception for an ``error`` object, of the class its code maps to."""
        code = error.get("code") if isinstance(error.get("code"), str) else "internal"
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        capability = error.get("capability") if isinstance(error.get("capability"), str) else None
        cls = ERRORS_BY_CODE.get(code, NodeError)
        return cls(code, message, capability, method)


class PermissionDenied(NodeError):
    """``permission_denied``: ``capability`` names what is missing."""


class MethodNotFound(NodeError):
    """``method_not_found``."""


class InvalidParams(NodeError):
    """``invalid_params``."""


class Unavailable(NodeError):
    """``unavailable``: retry later."""


class Rejected(NodeError):
    """``rejected``: a submitted transaction or block was refused."""


class ModuleCrashed(NodeError):
    """``module_crashed``."""


class RateLimited(NodeError):
    """``rate_limited``: back off and retry."""


class QuotaExceeded(NodeError):
    """``quota_exceeded``."""


class ModuleNotRunning(NodeError):
    """``module_not_running``."""


class Timeout(NodeError):
    """``timeout``."""


class AlreadyRegistered(NodeError):
    """``already_registered``."""


class Internal(NodeError):
    """``internal``."""


ERRORS_BY_CODE: dict[str, type[NodeError]] = {
    "permission_denied": PermissionDenied,
    "method_not_found": MethodNotFound,
    "invalid_params": InvalidParams,
    "unavailable": Unavailable,
    "rejected": Rejected,
    "module_crashed": ModuleCrashed,
    "rate_limited": RateLimited,
    "quota_exceeded": QuotaExceeded,
    "module_not_running": ModuleNotRunning,
    "timeout": Timeout,
    "already_registered": AlreadyRegistered,
    "internal": Internal,
}


class InvocationError(BlvmError):
    """Raise in an invocation handler to answer with an error response
    (``code`` of §7.3; ``method_not_found``, ``invalid_params`` …)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class JsonRpcError(BlvmError):
    """Raise in an ``@module.rpc`` handler: the JSON-RPC client receives
    ``{"code": code, "message": message}`` (use Core's codes: -8, -5 …)."""

    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
