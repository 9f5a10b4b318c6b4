"""modules/fee-histogram on a real node under the sandbox (strict as root
where the host allows): python-bitcoinrpc's AuthServiceProxy calls
`feehistogram` and gets the right buckets for real transactions, spending
regtest coinbases (P2WSH(OP_TRUE), no signature), some in the mempool
before the module starts (its initial read), the rest after (its events)."""
from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException

from blvm_module.bitcoin import tx_vsize

from conftest import COIN, REPO, coinbase_txid, op_true_spend

MODULE = REPO / "modules" / "fee-histogram"
# sat/vB of each transaction, and the bucket (lower bound) it falls in.
RATES = [2, 4, 7, 15, 60, 250, 1200]
EXPECTED = {2: 1, 3: 1, 5: 1, 10: 1, 50: 1, 200: 1, 1000: 1}


def spend(node, height, rate):
    probe = op_true_spend(coinbase_txid(node, height), 0, 50 * COIN - 1000)
    vsize = tx_vsize(bytes.fromhex(probe))
    fee = rate * vsize
    return op_true_spend(coinbase_txid(node, height), 0, 50 * COIN - fee), fee, vsize


def test_fee_histogram_answers_python_bitcoinrpc_under_the_sandbox(blvm_node):
    node = blvm_node
    node.mine(110)
    txs = [spend(node, h, rate) for h, rate in zip(range(1, 1 + len(RATES)), RATES)]
    for tx, _, _ in txs[:3]:
        node.submit_tx(tx)
    node.install_module(MODULE)
    node.load_module("fee-histogram")
    node.wait_rpc_method("feehistogram")
    status = node.module_status("fee-histogram")
    if node.sandbox == "strict":
        for layer in ("mountns", "uid-drop", "landlock", "seccomp", "pidns"):
            assert layer in status["sandbox_layers"], status["sandbox_layers"]
    for tx, _, _ in txs[3:]:
        node.submit_tx(tx)
    assert len(node.rpc("getrawmempool")) == len(RATES)

    rpc = AuthServiceProxy(node.cookie_url, timeout=60)

    def complete():
        answer = rpc.feehistogram()
        return answer if answer["count"] == len(RATES) else None

    answer = node.wait_until(complete, what="every transaction in the histogram")
    by_min = {b["min"]: b for b in answer["buckets"]}
    assert {m: b["count"] for m, b in by_min.items() if b["count"]} == EXPECTED
    assert answer["vsize"] == sum(v for _, _, v in txs)
    assert sum(b["total_fee"] for b in answer["buckets"]) == sum(f for _, f, _ in txs)
    assert by_min[1000]["max"] is None and answer["unit"] == "sat/vB"
    # Custom edges, and a JSON-RPC error of the module's choosing.
    two = rpc.feehistogram([0, 100])
    assert [b["count"] for b in two["buckets"]] == [5, 2]
    try:
        rpc.feehistogram([5, 1])
        raise AssertionError("expected a JSON-RPC error")
    except JSONRPCException as e:
        assert e.error == {"code": -8, "message": "edges must be a non-empty list of strictly ascending numbers"}
    # A block empties the mempool; the module follows.
    node.mine(1)
    node.wait_until(lambda: rpc.feehistogram()["count"] == 0, what="the histogram to empty after a block")
    assert any("fee histogram ready" in line for line in node.module_logs("fee-histogram"))
