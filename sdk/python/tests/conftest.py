"""Paths shared by the SDK's tests: the repository root, found from this file."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "crates" / "blvm-module-protocol" / "tests" / "vectors"
DOCS = REPO / "docs"
SDK = REPO / "sdk" / "python"

import hashlib  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402

from blvm_module.testing.node import OP_TRUE_SCRIPT, BlvmNode  # noqa: E402
from blvm_module.testing.plugin import _check  # noqa: E402

pytest_plugins = ["pytester"]

MODULES = Path(__file__).resolve().parent / "modules"
#: Every capability but network_access, lightning and payment reads.
ALL_CAPS = ["read_blockchain", "read_utxo", "read_chain_state", "subscribe_events", "send_transactions",
            "read_mempool", "read_network", "read_storage", "write_storage", "manage_storage",
            "read_filesystem", "write_filesystem", "manage_filesystem", "register_rpc_endpoint",
            "manage_timers", "report_metrics", "read_metrics", "discover_modules", "publish_events",
            "call_module", "register_module_api"]
#: The second probe's: no chain, UTXO or mempool reads.
LIMITED_CAPS = ["subscribe_events", "register_rpc_endpoint", "register_module_api", "call_module",
                "manage_timers"]
COIN = 100_000_000


def op_true_spend(prev_txid_display: str, vout: int, out_value: int) -> str:
    """A segwit transaction spending a P2WSH(OP_TRUE) output (the node's
    default coinbase script) to P2WSH(OP_TRUE): witness [OP_TRUE], no signature."""
    tx = bytearray()
    tx += (2).to_bytes(4, "little") + b"\x00\x01"
    tx += b"\x01" + bytes.fromhex(prev_txid_display)[::-1] + vout.to_bytes(4, "little") + b"\x00" + b"\xff" * 4
    tx += b"\x01" + out_value.to_bytes(8, "little") + bytes([len(OP_TRUE_SCRIPT)]) + OP_TRUE_SCRIPT
    tx += b"\x01\x01\x51"
    tx += b"\x00" * 4
    return tx.hex()


def coinbase_txid(node: BlvmNode, height: int) -> str:
    return node.rpc("getblock", node.rpc("getblockhash", height), 1)["tx"][0]


def probe_call(node: BlvmNode, module: str, method: str, params: dict) -> dict:
    return node.rpc(f"{module}_call", method, params)


@pytest.fixture(scope="module")
def probe_node():
    """One node for a test file: 110 blocks mined to OP_TRUE, `sdkprobe`
    (every capability above) and `sdklimited` (LIMITED_CAPS) loaded."""
    root = Path(tempfile.mkdtemp(prefix="blvm-test-", dir="/tmp"))
    node = BlvmNode(root)
    node.start()
    node.mine(110)
    node.install_module(MODULES / "sdkprobe", "sdkprobe", capabilities=ALL_CAPS,
                        manifest_extra='publishes = ["sdkprobe.Ping"]\n')
    node.install_module(MODULES / "sdkprobe", "sdklimited", capabilities=LIMITED_CAPS)
    for name in ("sdkprobe", "sdklimited"):
        node.load_module(name)
        node.wait_rpc_method(f"{name}_seen")
    yield node
    _check(node)
    shutil.rmtree(root, ignore_errors=True)


def sha256d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()
