"""Every request of §8.2, sent by the SDK in a real module on a real node
under its sandbox, through the probe module's JSON-RPC method; and a
permission denial. Bytes travel as {"hex": …} in the probe's JSON."""
import msgpack
import pytest

from blvm_module.requests import REQUESTS
from blvm_module.testing.node import OP_TRUE_SCRIPT

from conftest import COIN, coinbase_txid, op_true_spend, probe_call


def h(display_hex: str) -> dict:
    return {"hex": bytes.fromhex(display_hex)[::-1].hex()}


def b(raw: bytes) -> dict:
    return {"hex": raw.hex()}


def val(x):
    return bytes.fromhex(x["hex"]) if isinstance(x, dict) and set(x) == {"hex"} else x


def tip(node):
    return node.rpc("getbestblockhash")


# method -> (params(node), check(node, result))
CASES = {
    "ping": (lambda n: {}, lambda n, r: r == {}),
    "get_block": (lambda n: {"hash": h(tip(n))},
                  lambda n, r: val(r["block"]).hex() == n.rpc("getblock", tip(n), 0)),
    "get_block_header": (lambda n: {"hash": h(tip(n))},
                         lambda n, r: len(val(r["header"])) == 80 and r["height"] == n.rpc("getblockcount")),
    "get_block_by_height": (lambda n: {"height": 1},
                            lambda n, r: val(r["block"]).hex() == n.rpc("getblock", n.rpc("getblockhash", 1), 0)),
    "get_block_hash": (lambda n: {"height": 0}, lambda n, r: val(r["hash"])[::-1].hex() == n.rpc("getblockhash", 0)),
    "get_transaction": (lambda n: {"txid": h(coinbase_txid(n, 1))},
                        lambda n, r: r["tx"] is None or val(r["block_hash"])[::-1].hex() == n.rpc("getblockhash", 1)),
    "has_transaction": (lambda n: {"txid": h("00" * 32)}, lambda n, r: r["found"] is False),
    "get_chain_tip": (lambda n: {}, lambda n, r: val(r["hash"])[::-1].hex() == tip(n)),
    "get_block_height": (lambda n: {}, lambda n, r: r["height"] == n.rpc("getblockcount")),
    "get_chain_info": (lambda n: {}, lambda n, r: r["network"] == "regtest" and len(val(r["chain_work"])) == 32),
    "get_utxo": (lambda n: {"txid": h(coinbase_txid(n, 1)), "vout": 0},
                 lambda n, r: r["utxo"]["value"] == 50 * COIN and r["utxo"]["is_coinbase"] is True
                 and val(r["utxo"]["script_pubkey"]) == OP_TRUE_SCRIPT and r["utxo"]["height"] == 1),
    "get_mempool_transactions": (lambda n: {}, lambda n, r: isinstance(r["txids"], list)),
    "get_mempool_transaction": (lambda n: {"txid": h("11" * 32)}, lambda n, r: r == {"tx": None, "fee": None}),
    "get_mempool_size": (lambda n: {}, lambda n, r: set(r) == {"count", "vsize", "total_fee"}),
    "check_transaction_in_mempool": (lambda n: {"txid": h("22" * 32)}, lambda n, r: r == {"found": False}),
    "get_fee_estimate": (lambda n: {"target_blocks": 6}, lambda n, r: "sat_per_vb" in r),
    "get_block_template": (lambda n: {}, lambda n, r: r["height"] == n.rpc("getblockcount") + 1
                           and val(r["prev_hash"])[::-1].hex() == tip(n)),
    "submit_transaction": (lambda n: {"tx": b(bytes.fromhex(op_true_spend(coinbase_txid(n, 2), 0, 50 * COIN - 10_000)))},
                           lambda n, r: val(r["txid"])[::-1].hex() in n.rpc("getrawmempool")),
    "submit_block": (lambda n: {"block": b(bytes.fromhex(n.rpc("getblock", tip(n), 0)))},
                     lambda n, r: r["status"] == "duplicate"),
    "get_network_stats": (lambda n: {}, lambda n, r: r == {"peer_count": 0, "bytes_sent": 0, "bytes_received": 0}),
    "get_network_peers": (lambda n: {}, lambda n, r: r == {"peers": []}),
    "subscribe_events": (lambda n: {"events": ["ModuleLoaded"]}, lambda n, r: "ModuleLoaded" in r["subscribed"]),
    "unsubscribe_events": (lambda n: {"events": ["ModuleLoaded"]}, lambda n, r: "ModuleLoaded" not in r["subscribed"]),
    "subscribe_durable": (lambda n: {"events": ["NewBlock"]},
                          lambda n, r: r["durable"] == ["NewBlock"] and "seq" in r["cursor"]),
    "ack_events": (lambda n: {"seq": 0}, lambda n, r: "cursor" in r),
    "storage_put": (lambda n: {"tree": "tips", "key": b(b"best"), "value": b(b"\x00\x00\x00\x01")},
                    lambda n, r: r["generation"] > 0 and r["existed"] is False),
    "storage_get": (lambda n: {"tree": "tips", "key": b(b"best")},
                    lambda n, r: val(r["value"]) == b"\x00\x00\x00\x01" and r["generation"] > 0),
    "storage_scan": (lambda n: {"tree": "tips", "prefix": b(b"b")},
                     lambda n, r: [val(e["key"]) for e in r["entries"]] == [b"best"] and r["cursor"] is None),
    "storage_batch": (lambda n: {"ops": [{"op": "put", "tree": "tips", "key": b(b"old"), "value": b(b"x")},
                                         {"op": "delete", "tree": "tips", "key": b(b"old")}]},
                      lambda n, r: r["applied"] is True and len(r["generations"]) == 2),
    "storage_delete": (lambda n: {"tree": "tips", "key": b(b"best")}, lambda n, r: r["existed"] is True),
    "storage_create_tree": (lambda n: {"tree": "empty"}, lambda n, r: r == {"changed": True}),
    "storage_list_trees": (lambda n: {}, lambda n, r: "empty" in r["trees"]),
    "storage_drop_tree": (lambda n: {"tree": "empty"}, lambda n, r: r == {"changed": True}),
    "storage_usage": (lambda n: {}, lambda n, r: r["max_bytes"] > 0 and r["max_keys"] > 0),
    "report_metrics": (lambda n: {"metrics": [{"name": "blocks_seen", "kind": "counter", "help": "Blocks seen.",
                                               "labels": {"kind": "full"}, "value": 1}]},
                       lambda n, r: r["series"] == 1 and r["max_series"] > 0),
    "read_metrics": (lambda n: {"source": "sdkprobe"},
                     lambda n, r: [m["name"] for m in r["metrics"]] == ["module_sdkprobe_blocks_seen"]
                     and r["metrics"][0]["value"] == 1.0),
    "fs_create_dir": (lambda n: {"path": "cache"}, lambda n, r: r == {"changed": True, "removed": 0}),
    "fs_remove_dir": (lambda n: {"path": "cache", "recursive": True}, lambda n, r: r["changed"] is True),
    "fs_usage": (lambda n: {}, lambda n, r: set(r) == {"used_bytes", "free_bytes", "quota_bytes", "used_inodes",
                                                        "total_inodes"}),
    "discover_modules": (lambda n: {}, lambda n, r: {m["name"] for m in r["modules"]} >= {"sdkprobe", "sdklimited"}
                         and any(x["name"] == "echo" for m in r["modules"] for x in m["methods"])),
    "register_module_api": (lambda n: {"methods": [{"name": "extra", "description": "More."}]},
                            lambda n, r: [m["name"] for m in r["methods"]] == ["echo", "extra"]),
    "call_module": (lambda n: {"module": "sdklimited", "method": "echo", "params": b(b"hi"), "timeout_ms": 5000},
                    lambda n, r: val(r["result"]) == b"sdkprobe:hi"),
    "publish_event": (lambda n: {"event": "sdkprobe.Ping", "payload": b(msgpack.packb({"n": 1}))},
                      lambda n, r: isinstance(r["delivered"], int)),
    "register_rpc_endpoint": (lambda n: {"method": "sdkprobe_extra", "args": "", "help": "Extra."},
                              lambda n, r: r["endpoints"] == 3 and r["max_endpoints"] > 0),
    "unregister_rpc_endpoint": (lambda n: {"method": "sdkprobe_extra"}, lambda n, r: r == {"removed": True}),
    "timer_schedule": (lambda n: {"kind": "repeat", "ms": 3_600_000},
                       lambda n, r: r["timer_id"] >= 1 and r["timers"] >= 1),
    "timer_list": (lambda n: {}, lambda n, r: any(t["kind"] == "repeat" and t["ms"] == 3_600_000 for t in r["timers"])),
    "timer_cancel": (lambda n: {"timer_id": 1}, lambda n, r: isinstance(r["cancelled"], bool)),
}
# Dependent requests run after what they need (storage_get after storage_put …).
ORDER = ["storage_put", "storage_get", "storage_scan", "storage_batch", "storage_delete", "storage_create_tree",
         "storage_list_trees", "storage_drop_tree", "report_metrics", "read_metrics", "fs_create_dir",
         "fs_remove_dir", "register_module_api", "register_rpc_endpoint", "unregister_rpc_endpoint",
         "timer_schedule", "timer_list", "timer_cancel", "subscribe_events", "unsubscribe_events",
         "subscribe_durable", "ack_events"]
METHODS = [r.method for r in REQUESTS if r.method not in ORDER] + ORDER


def test_every_request_has_a_case():
    assert set(CASES) == {r.method for r in REQUESTS}


@pytest.mark.parametrize("method", METHODS)
def test_request(probe_node, method):
    params, ok = CASES[method]
    answer = probe_call(probe_node, "sdkprobe", method, params(probe_node))
    assert "result" in answer, answer
    assert ok(probe_node, answer["result"]), answer


def test_permission_denied_names_the_capability(probe_node):
    answer = probe_call(probe_node, "sdklimited", "get_utxo", {"txid": h("00" * 32), "vout": 0})
    assert answer["error"]["class"] == "PermissionDenied", answer
    assert answer["error"]["code"] == "permission_denied" and answer["error"]["capability"] == "read_utxo"


def test_an_error_response_is_a_node_error(probe_node):
    answer = probe_call(probe_node, "sdkprobe", "get_fee_estimate", {"target_blocks": 0})
    assert answer["error"]["class"] == "InvalidParams", answer
