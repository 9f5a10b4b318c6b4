"""The environment the node gives a module process (docs/ipc-protocol.md §2),
the same variables as the Rust SDK's ``env.rs``."""
from __future__ import annotations

import os
from dataclasses import dataclass

SOCKET = "BLVM_MODULE_SOCKET"
MODULE_ID = "BLVM_MODULE_ID"
MODULE_NAME = "BLVM_MODULE_NAME"
MODULE_VERSION = "BLVM_MODULE_VERSION"
TOKEN = "BLVM_MODULE_TOKEN"
DATA_DIR = "BLVM_MODULE_DATA_DIR"


class MissingEnv(KeyError):
    """A required variable is not set (the process was not started by a node)."""


@dataclass(frozen=True)
class ModuleEnv:
    """The connection details the node handed to this process."""
    socket_path: str
    module_id: str
    module_name: str
    version: str
    token: str
    data_dir: str = ""

    def __repr__(self) -> str:  # never show the token
        return (f"ModuleEnv(socket_path={self.socket_path!r}, module_id={self.module_id!r}, "
                f"module_name={self.module_name!r}, version={self.version!r}, data_dir={self.data_dir!r})")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "ModuleEnv":
        """Reads every variable; all but the data dir are required."""
        env = os.environ if environ is None else environ

        def var(name: str) -> str:
            try:
                return env[name]
            except KeyError:
                raise MissingEnv(f"{name} is not set: a module is started by the node, which sets it") from None

        return cls(var(SOCKET), var(MODULE_ID), var(MODULE_NAME), var(MODULE_VERSION), var(TOKEN),
                   env.get(DATA_DIR, ""))
