#!/usr/bin/python3
"""fee-histogram: keeps a histogram of the mempool's fee rates (sat/vB) and
serves it as the JSON-RPC method `feehistogram`.

At start it reads the mempool (`get_mempool_transactions`, then each
transaction's fee and size); from then on it follows
`MempoolTransactionAdded` / `MempoolTransactionRemoved`, and reads the
mempool again after a block or when events were missed (§10.3).

It runs on the system's python3 (/usr/bin/python3, visible under the
sandbox) with the blvm-module SDK and msgpack vendored into `vendor/`
beside this file (`install.sh DEST` does that).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor"))

import logging  # noqa: E402

from blvm_module import JsonRpcError, Module  # noqa: E402
from blvm_module.bitcoin import tx_vsize  # noqa: E402
from blvm_module.logging import IpcLogHandler  # noqa: E402

#: Lower bounds of the buckets, sat/vB; the last bucket has no upper bound.
EDGES = [0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000]

module = Module("fee-histogram")
log = logging.getLogger("fee_histogram")
#: txid -> (fee in satoshis, vsize)
mempool: dict[bytes, tuple[int, int]] = {}


async def resync() -> None:
    """Reads the whole mempool from the node."""
    node = module.integration.node
    txids = (await node.get_mempool_transactions()).txids
    fresh = {}
    for txid in txids:
        if txid in mempool:
            fresh[txid] = mempool[txid]
            continue
        entry = await node.get_mempool_transaction(txid=txid)
        if entry.tx is not None and entry.fee is not None:
            fresh[txid] = (entry.fee, tx_vsize(entry.tx))
    mempool.clear()
    mempool.update(fresh)


def histogram(edges: list[float]) -> dict:
    """The buckets [edges[i], edges[i+1]) with count, vsize and fees."""
    buckets = [{"min": lo, "max": hi, "count": 0, "vsize": 0, "total_fee": 0}
               for lo, hi in zip(edges, edges[1:] + [None])]
    for fee, vsize in mempool.values():
        rate = fee / vsize
        for b in reversed(buckets):
            if rate >= b["min"]:
                b["count"] += 1
                b["vsize"] += vsize
                b["total_fee"] += fee
                break
    return {"unit": "sat/vB", "count": len(mempool), "vsize": sum(v for _, v in mempool.values()),
            "buckets": buckets}


@module.rpc("feehistogram", args="( [edges,...] )",
            help="The mempool's fee rates (sat/vB) as buckets [min, max): count, vsize and total fee of each.\n"
                 "edges: ascending lower bounds (default 0 1 2 3 5 10 20 50 100 200 500 1000).")
async def feehistogram(params):
    edges = EDGES
    if params:
        edges = params[0] if isinstance(params, list) else params.get("edges", EDGES)
        if (not isinstance(edges, list) or not edges
                or not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in edges)
                or edges != sorted(set(edges))):
            raise JsonRpcError(-8, "edges must be a non-empty list of strictly ascending numbers")
    return histogram(edges)


@module.on_event("MempoolTransactionAdded")
async def added(event):
    tx = event.typed()
    mempool[tx.txid] = (tx.fee_sats, tx.vsize)


@module.on_event("MempoolTransactionRemoved")
async def removed(event):
    mempool.pop(event.typed().txid, None)


@module.on_event("NewBlock")
async def block(event):
    await resync()


@module.on_missed
async def missed(count, event):
    log.warning("missed %d events: reading the mempool again", count)
    await resync()


@module.on_start
async def start(integration):
    logging.getLogger().addHandler(IpcLogHandler(integration))
    logging.getLogger().setLevel(logging.INFO)
    await resync()
    log.info("fee histogram ready", extra={"fields": {"transactions": len(mempool)}})


if __name__ == "__main__":
    module.run()
