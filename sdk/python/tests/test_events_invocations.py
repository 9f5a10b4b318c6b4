"""Events in order with their delivery sequence, and every invocation: an
rpc_call from python-bitcoinrpc, a module_call from another module, timer
fires, health checks; then shutdown on unload with exit status 0."""
from bitcoinrpc.authproxy import AuthServiceProxy

from conftest import ALL_CAPS, LIMITED_CAPS, MODULES, probe_call


def seen(node, name="sdkprobe"):
    return node.rpc(f"{name}_seen")


def test_new_block_events_arrive_in_order_with_increasing_seq(blvm_node):
    blvm_node.install_module(MODULES / "sdkprobe", "sdkprobe", capabilities=ALL_CAPS)
    blvm_node.load_module("sdkprobe")
    blvm_node.wait_rpc_method("sdkprobe_seen")
    blvm_node.mine(5)
    events = blvm_node.wait_until(
        lambda: (e := [x for x in seen(blvm_node)["events"] if x["name"] == "NewBlock"]) and len(e) == 5 and e,
        what="five NewBlock events")
    assert [e["height"] for e in events] == [1, 2, 3, 4, 5]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5 and seqs[0] >= 1
    assert all(e["missed"] == 0 for e in events)


def test_invocations_rpc_call_module_call_timers_health_check(blvm_node_factory):
    node = blvm_node_factory(start=False)
    node.supervision.update(health_check_interval=1, health_check_timeout=5)
    node.start()
    node.install_module(MODULES / "sdkprobe", "sdkprobe", capabilities=ALL_CAPS)
    node.install_module(MODULES / "sdkprobe", "sdklimited", capabilities=LIMITED_CAPS)
    for name in ("sdkprobe", "sdklimited"):
        node.load_module(name)
        node.wait_rpc_method(f"{name}_seen")
    # rpc_call, as python-bitcoinrpc calls Bitcoin Core.
    proxy = AuthServiceProxy(node.cookie_url, timeout=60)
    assert proxy.sdkprobe_call("get_block_height", {}) == {"result": {"height": 0}}
    # module_call: sdklimited calls sdkprobe's API; the node names the caller.
    answer = probe_call(node, "sdklimited", "call_module",
                        {"module": "sdkprobe", "method": "echo", "params": {"hex": b"x".hex()}})
    assert bytes.fromhex(answer["result"]["result"]["hex"]) == b"sdklimited:x"
    assert seen(node)["calls"] == ["sdklimited"]
    # timer_fired: the decorator's once-timer, and a height timer scheduled by hand.
    node.wait_until(lambda: seen(node)["once"] == 1, what="the once timer's fire")
    timer = probe_call(node, "sdkprobe", "timer_schedule", {"kind": "height", "height": 2})["result"]
    node.mine(2)
    fires = node.wait_until(lambda: seen(node)["timers"], what="the height timer's fire")
    assert fires == [{"timer_id": timer["timer_id"], "fire": 1, "height": 2}]
    # health_check: answered by the SDK's reader.
    node.wait_until(lambda: node.module_status("sdkprobe")["health_checks"] >= 2, what="two health checks")
    assert node.module_status("sdkprobe")["state"] == "running"
    # Its log line, sent through IpcLogHandler, is in the node's log under its name.
    assert any("probe ready" in line for line in node.module_logs("sdkprobe"))


def test_unload_sends_shutdown_and_the_module_exits_0(blvm_node):
    blvm_node.install_module(MODULES / "sdkprobe", "sdkprobe", capabilities=ALL_CAPS)
    blvm_node.load_module("sdkprobe")
    blvm_node.wait_rpc_method("sdkprobe_seen")
    blvm_node.unload_module("sdkprobe")
    blvm_node.wait_for_log(r"module process exited module=sdkprobe .*status=exit status 0")
    summaries = blvm_node.wait_until(lambda: blvm_node.frame_summaries("sdkprobe"), what="the recorder's summary")
    assert summaries[0]["exit"] == 0 and summaries[0]["problems"] == 0 and summaries[0]["frames"] > 5
