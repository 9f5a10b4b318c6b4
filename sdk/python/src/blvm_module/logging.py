"""A :class:`logging.Handler` that sends records to the node as ``log``
frames (§5.7, §11): the node records them under the module's name."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .integration import ModuleIntegration

#: The node's log text is cut at 8 KiB (§11); longer messages are cut here first.
MAX_MESSAGE = 8000


def level_name(levelno: int) -> str:
    """The protocol's level for a :mod:`logging` level number."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


class IpcLogHandler(logging.Handler):
    """Sends each record as a ``log`` frame: level mapped to the five of the
    protocol, ``target`` the logger's name, the record's ``fields`` extra
    (a dict) as fields. Safe from any thread."""

    def __init__(self, integration: "ModuleIntegration", level: int = logging.NOTSET):
        super().__init__(level)
        self.integration = integration

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if len(message) > MAX_MESSAGE:
                message = message[:MAX_MESSAGE] + " [truncated by the module]"
            fields = getattr(record, "fields", None)
            self.integration.log(level_name(record.levelno), message, record.name,
                                 fields if isinstance(fields, dict) else None)
        except Exception:  # noqa: BLE001 - logging must not raise
            self.handleError(record)
