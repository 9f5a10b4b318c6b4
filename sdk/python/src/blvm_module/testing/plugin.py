"""The pytest plugin (entry point ``pytest11``): fixtures that run a real
``blvm-node`` and the modules under test, and fail a test whose modules sent
a frame that is not valid per docs/ipc-protocol.md.

Fixtures:

``blvm_node``
    A started :class:`~blvm_module.testing.node.BlvmNode` on a temporary data
    dir (regtest, a free JSON-RPC port, no block timer, the sandbox strict as
    root where the host has mount namespaces, else permissive). Teardown
    stops it, then fails the test if the frame recorder reported a problem
    in any frame a module installed with ``install_module`` sent.
``blvm_node_factory``
    ``factory(start=True)`` makes more nodes, or one not yet started (to
    install modules whose interpreter needs ``[sandbox.read_only_by_module]``).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from .node import BlvmNode


def _check(node: BlvmNode) -> None:
    node.stop()
    problems = node.frame_problems()
    if problems:
        pytest.fail("frames that are not valid per docs/ipc-protocol.md (node log: "
                    f"{node.log_path}):\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def blvm_node_factory(request):
    """Makes :class:`BlvmNode`\\ s; each is stopped and its modules' frames checked at teardown."""
    made: list[tuple[BlvmNode, Path]] = []

    def factory(start: bool = True, sandbox: str | None = None) -> BlvmNode:
        # A short root: a module's socket path must fit in 107 bytes.
        root = Path(tempfile.mkdtemp(prefix="blvm-test-", dir="/tmp"))
        node = BlvmNode(root, sandbox=sandbox)
        made.append((node, root))
        if start:
            node.start()
        return node

    yield factory
    failures = []
    for node, root in made:
        try:
            _check(node)
        except pytest.fail.Exception as e:
            failures.append(str(e))
        else:
            shutil.rmtree(root, ignore_errors=True)
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


@pytest.fixture
def blvm_node(blvm_node_factory) -> BlvmNode:
    """A started node (see the module's docstring)."""
    return blvm_node_factory()
